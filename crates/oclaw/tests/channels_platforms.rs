//! Chat platforms end to end against a real `oclaw serve`: requests signed by each platform's
//! documented algorithm come in over real HTTP, and replies go out to a local HTTP server
//! standing in for the platform's API (the clouds cannot be reached here), which is why these
//! tests are named `..._against_a_stand_in_api`. Signature algorithms themselves are checked
//! against documented and independently computed vectors in `oclaw-channels`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One answer that satisfies every platform API the node calls.
const PLATFORM_OK: &str =
    r#"{"ok": true, "code": 0, "errcode": 0, "tenant_access_token": "t-123", "expire": 7200}"#;

fn config(api: &str) -> String {
    let echo = "      steps:\n        - id: reply\n          uses: template\n          with: {value: {text: \"echo: {{ input.text }}\"}}\n";
    format!(
        "bots:
  - metadata: {{name: slack-bot}}
    spec:
      triggers:
        - slack: {{path: /hooks/slack, signing_secret: \"{{{{ secrets.SLACK_SIGNING }}}}\", bot_token: xoxb-test, api_base: \"{api}\"}}
{echo}  - metadata: {{name: tg-bot}}
    spec:
      triggers:
        - telegram: {{path: /hooks/telegram, secret_token: tg-secret, bot_token: \"123:ABC\", api_base: \"{api}\"}}
{echo}  - metadata: {{name: feishu-bot}}
    spec:
      triggers:
        - feishu: {{path: /hooks/feishu, verification_token: vt-1, app_id: cli_1, app_secret: sec_1, api_base: \"{api}\"}}
{echo}  - metadata: {{name: ding-bot}}
    spec:
      triggers:
        - dingtalk: {{path: /hooks/dingtalk, app_secret: SECabc123, api_base: \"{api}\"}}
{echo}  - metadata: {{name: wecom-bot}}
    spec:
      triggers:
        - wecom: {{path: /hooks/wecom, token: QDG6eK, encoding_aes_key: jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C, webhook_key: wk-1, api_base: \"{api}\"}}
{echo}"
    )
}

async fn post_raw(url: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut r = common::client().post(url).body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Waits for the stand-in to receive a request on a path starting with `prefix`.
async fn wait_request(
    rec: &common::Recorder,
    prefix: &str,
    node: &common::Node,
) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = rec
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p.starts_with(prefix))
        {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no request to {prefix}: {:?}\nnode log:\n{}",
            rec.requests.lock().unwrap(),
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `X-Slack-Signature` for a body (the module's signer is checked against Slack's published
/// example in oclaw-channels).
fn slack_sig(secret: &str, ts: &str, body: &str) -> String {
    oclaw_channels::platforms::slack::signature(secret, ts, body.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_telegram_against_a_stand_in_api() {
    let api = common::recorder_answering(PLATFORM_OK).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start_process_env(
        dir.path(),
        &config(&api.url),
        &["serve", "--listen", "127.0.0.1:0"],
        &format!("sqlite://{}", dir.path().join("o.db").display()),
        &[("OCLAW_SECRET_SLACK_SIGNING", "slack-signing-secret")],
    );
    let now = chrono::Utc::now().timestamp().to_string();
    // Slack: URL verification, then a signed message (twice: Slack retries), then a forgery.
    let challenge =
        json!({"type": "url_verification", "challenge": "ch-42", "token": "x"}).to_string();
    let sig = slack_sig("slack-signing-secret", &now, &challenge);
    let (code, body) = post_raw(
        &format!("{}/hooks/slack", node.url),
        &[
            ("x-slack-request-timestamp", now.clone()),
            ("x-slack-signature", sig),
        ],
        &challenge,
    )
    .await;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap()["challenge"].clone()
        ),
        (200, json!("ch-42"))
    );
    let event = json!({"type": "event_callback", "event_id": "Ev42", "event": {"type": "message", "text": "hello slack", "user": "U1", "channel": "C9"}}).to_string();
    let sig = slack_sig("slack-signing-secret", &now, &event);
    for _ in 0..2 {
        let (code, body) = post_raw(
            &format!("{}/hooks/slack", node.url),
            &[
                ("x-slack-request-timestamp", now.clone()),
                ("x-slack-signature", sig.clone()),
                ("x-slack-retry-num", "1".into()),
            ],
            &event,
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    let (path, sent) = wait_request(&api, "/api/chat.postMessage", &node).await;
    assert_eq!(path, "/api/chat.postMessage");
    assert_eq!(sent, json!({"channel": "C9", "text": "echo: hello slack"}));
    assert!(api
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .any(|a| a == "Bearer xoxb-test"));
    let forged = slack_sig("wrong-secret", &now, &event);
    let (code, body) = post_raw(
        &format!("{}/hooks/slack", node.url),
        &[
            ("x-slack-request-timestamp", now.clone()),
            ("x-slack-signature", forged),
        ],
        &event,
    )
    .await;
    assert_eq!(code, 401);
    assert!(body.contains("OC-2012"), "{body}");
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let stale = slack_sig("slack-signing-secret", &old, &event);
    let (code, _) = post_raw(
        &format!("{}/hooks/slack", node.url),
        &[
            ("x-slack-request-timestamp", old),
            ("x-slack-signature", stale),
        ],
        &event,
    )
    .await;
    assert_eq!(code, 401, "a replay outside the window");
    let (_, tasks) = common::get(
        &common::client(),
        &format!("{}/v1/tasks?bot=slack-bot", node.url),
    )
    .await;
    assert_eq!(
        tasks["items"].as_array().unwrap().len(),
        1,
        "one task for the event and its retry: {tasks}"
    );

    // Telegram.
    let update = json!({"update_id": 77, "message": {"message_id": 5, "chat": {"id": 4242}, "from": {"id": 1}, "text": "hello telegram"}}).to_string();
    let (code, _) = post_raw(
        &format!("{}/hooks/telegram", node.url),
        &[("x-telegram-bot-api-secret-token", "tg-secret".into())],
        &update,
    )
    .await;
    assert_eq!(code, 200);
    let (path, sent) = wait_request(&api, "/bot123:ABC/sendMessage", &node).await;
    assert_eq!(path, "/bot123:ABC/sendMessage");
    assert_eq!(sent["chat_id"], 4242);
    assert_eq!(sent["text"], "echo: hello telegram");
    let (code, _) = post_raw(
        &format!("{}/hooks/telegram", node.url),
        &[("x-telegram-bot-api-secret-token", "nope".into())],
        &update,
    )
    .await;
    assert_eq!(code, 401);
    let (code, body) = post_raw(
        &format!("{}/hooks/telegram", node.url),
        &[("x-telegram-bot-api-secret-token", "tg-secret".into())],
        "not json",
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("OC-2014"), "{body}");
    assert!(node.logs().contains("telegram request refused"));
    assert!(
        !node.logs().contains("tg-secret"),
        "secrets stay out of the logs"
    );
    common::assert_channel_telemetry(
        &node.url,
        "telegram",
        common::ChannelCounts {
            received: 1.0,
            sent: 1.0,
            error: 2.0,
            ..Default::default()
        },
    )
    .await;
    common::assert_channel_telemetry(
        &node.url,
        "slack",
        common::ChannelCounts {
            received: 1.0,
            sent: 1.0,
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_dingtalk_and_wecom_against_a_stand_in_api() {
    let api = common::recorder_answering(PLATFORM_OK).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &config(&api.url));

    // Feishu: challenge, then a v2 message event; replies with a tenant token.
    let (code, body) = post_raw(
        &format!("{}/hooks/feishu", node.url),
        &[],
        &json!({"challenge": "c-1", "token": "vt-1", "type": "url_verification"}).to_string(),
    )
    .await;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap()["challenge"].clone()
        ),
        (200, json!("c-1"))
    );
    let event = json!({"schema": "2.0", "header": {"event_id": "fe-1", "event_type": "im.message.receive_v1", "token": "vt-1"},
        "event": {"sender": {"sender_id": {"open_id": "ou_9"}}, "message": {"chat_id": "oc_7", "message_type": "text", "content": "{\"text\":\"hello feishu\"}"}}}).to_string();
    assert_eq!(
        post_raw(&format!("{}/hooks/feishu", node.url), &[], &event)
            .await
            .0,
        200
    );
    let (_, token_req) = wait_request(
        &api,
        "/open-apis/auth/v3/tenant_access_token/internal",
        &node,
    )
    .await;
    assert_eq!(token_req, json!({"app_id": "cli_1", "app_secret": "sec_1"}));
    let (path, sent) = wait_request(&api, "/open-apis/im/v1/messages", &node).await;
    assert_eq!(path, "/open-apis/im/v1/messages?receive_id_type=chat_id");
    assert_eq!(sent["receive_id"], "oc_7");
    assert_eq!(
        serde_json::from_str::<Value>(sent["content"].as_str().unwrap()).unwrap()["text"],
        "echo: hello feishu"
    );
    assert!(api
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .any(|a| a == "Bearer t-123"));
    let forged = event.replace("vt-1", "vt-2");
    assert_eq!(
        post_raw(&format!("{}/hooks/feishu", node.url), &[], &forged)
            .await
            .0,
        401
    );

    // DingTalk: signed callback; the reply goes to the session webhook under api_base.
    let ts = (chrono::Utc::now().timestamp_millis()).to_string();
    let sign = oclaw_channels::platforms::dingtalk::sign("SECabc123", &ts);
    let msg = json!({"msgtype": "text", "text": {"content": "hello dingtalk"}, "msgId": "dm-1", "conversationId": "cid-1",
        "senderStaffId": "staff-1", "sessionWebhook": format!("{}/robot/sendBySession?session=s1", api.url)}).to_string();
    assert_eq!(
        post_raw(
            &format!("{}/hooks/dingtalk", node.url),
            &[("timestamp", ts.clone()), ("sign", sign.clone())],
            &msg
        )
        .await
        .0,
        200
    );
    let (_, sent) = wait_request(&api, "/robot/sendBySession", &node).await;
    assert_eq!(
        sent,
        json!({"msgtype": "text", "text": {"content": "echo: hello dingtalk"}})
    );
    assert_eq!(
        post_raw(
            &format!("{}/hooks/dingtalk", node.url),
            &[("timestamp", ts), ("sign", "AAAA".into())],
            &msg
        )
        .await
        .0,
        401
    );

    // WeCom: URL verification (GET) and an encrypted XML message, signed over the query.
    let enc = "sKqRbbiSUnDhFHOvPjtUMbKP30EJs7xB+/VBK2mvphNV1+MN+blbCHq5BIb7UC45TxsVbQC26y9EsHofAZcJYugB7SUBHA60wAI/CrWKi25oGvBwDlLMgqILwASec3wb3DtI1lwY0K1kDhnpUm8iY1ZAdR0lX5GnLpEqEWe3FdwenLpTTeK8roTK+nXE9MU5tTnrn6T9rn3ealRIo99Lf5E8SEsQmYpNwlnqTmXFcM0D5/TZeo0gjvMivUs0Dv3lEM8HfyoUEWDCZeDXUj4huclrrr2SbGmjuthcBBZ0kBLj23X6u/cwFFqRuV1/2W9hQpY8pLAdABjER49691acKhbJDwZmpPkeWsQ3nzru4Vj5QkefILGRmjalwcfBJ5Xb";
    let now = chrono::Utc::now().timestamp().to_string();
    let sig = oclaw_channels::platforms::wecom::signature("QDG6eK", &now, "n1", enc);
    let q = |extra: &str| {
        format!(
            "{}/hooks/wecom?msg_signature={sig}&timestamp={now}&nonce=n1{extra}",
            node.url
        )
    };
    let r = common::client()
        .get(q(&format!("&echostr={}", urlencode(enc))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Content><![CDATA[where is my order]]></Content>"));
    let xml = format!(
        "<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    );
    assert_eq!(post_raw(&q(""), &[], &xml).await.0, 200);
    let (path, sent) = wait_request(&api, "/cgi-bin/webhook/send", &node).await;
    assert_eq!(path, "/cgi-bin/webhook/send?key=wk-1");
    assert_eq!(
        sent,
        json!({"msgtype": "text", "text": {"content": "echo: where is my order"}})
    );
    // A signature that differs from the right one in its first digit.
    let flipped = if sig.starts_with('0') { '1' } else { '0' };
    let bad = format!(
        "{}/hooks/wecom?msg_signature={flipped}{}&timestamp={now}&nonce=n1",
        node.url,
        &sig[1..]
    );
    assert_eq!(post_raw(&bad, &[], &xml).await.0, 401);

    let metrics = common::metrics_text(&node.url).await;
    for ch in ["feishu", "dingtalk", "wecom"] {
        assert!(
            metrics.contains(&format!(
                "oclaw_channel_messages_total{{channel=\"{ch}\",event=\"sent\"}} 1"
            )),
            "{ch}: {metrics}"
        );
        common::assert_channel_telemetry(
            &node.url,
            ch,
            common::ChannelCounts {
                received: 1.0,
                sent: 1.0,
                // WeCom's badly signed request above.
                error: if ch == "wecom" { 1.0 } else { 0.0 },
                ..Default::default()
            },
        )
        .await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The one delivery task of the slack-bot's reply, once it exists.
async fn delivery_task(node: &common::Node) -> Option<Value> {
    let (_, tasks) = common::get(
        &common::client(),
        &format!("{}/v1/tasks?bot=oclaw.reply", node.url),
    )
    .await;
    let items = tasks["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() <= 1, "one delivery per reply: {tasks}");
    items.into_iter().next()
}

/// A reply is a durable task of its own: while the platform's API cannot be reached the
/// delivery fails and is retried (OC-4021 on the task), the node is killed with SIGKILL in
/// the meantime, and the restarted node delivers the reply — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_stand_in_api_cannot_take_is_retried_across_a_kill_and_delivered_once() {
    let port = common::free_port();
    let api_url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("o.db").display());
    let env = [("OCLAW_SECRET_SLACK_SIGNING", "slack-signing-secret")];
    let args = ["serve", "--listen", "127.0.0.1:0"];
    let mut node = common::start_process_env(dir.path(), &config(&api_url), &args, &storage, &env);
    let now = chrono::Utc::now().timestamp().to_string();
    let event = json!({"type": "event_callback", "event_id": "Ev77", "event": {"type": "message", "text": "are you there", "user": "U1", "channel": "C7"}}).to_string();
    let sig = slack_sig("slack-signing-secret", &now, &event);
    let (code, body) = post_raw(
        &format!("{}/hooks/slack", node.url),
        &[
            ("x-slack-request-timestamp", now.clone()),
            ("x-slack-signature", sig),
        ],
        &event,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // Nothing listens on the API's port: the delivery fails and waits for its next attempt.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        if let Some(t) = delivery_task(&node).await {
            if t["attempts"].as_u64() >= Some(1) && t["status"] == "scheduled" {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the delivery did not fail: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["error"]["code"], "OC-4021", "{failed}");
    assert_eq!(failed["queue"], "default");
    assert_eq!(failed["input"]["text"], "echo: are you there");
    node.kill9();

    // The platform comes back, and so does the node, on the same store.
    let api = common::recorder_at(port, PLATFORM_OK).await;
    let node = common::start_process_env(dir.path(), &config(&api_url), &args, &storage, &env);
    let (path, sent) = wait_request(&api, "/api/chat.postMessage", &node).await;
    assert_eq!(path, "/api/chat.postMessage");
    assert_eq!(
        sent,
        json!({"channel": "C7", "text": "echo: are you there"})
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = loop {
        let t = delivery_task(&node).await.unwrap();
        if t["status"] == "succeeded" {
            break t;
        }
        assert!(Instant::now() < deadline, "delivery not recorded: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["output"]["delivered"], true, "{done}");
    assert!(done["attempts"].as_u64() >= Some(2), "{done}");
    assert_eq!(
        api.requests.lock().unwrap().len(),
        1,
        "delivered once: {:?}",
        api.requests.lock().unwrap()
    );
}

async fn post_json(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let (code, v, _) = common::post(c, url, &body.to_string()).await;
    (code, v)
}

/// Every `sendMessage` the stand-in Telegram API received: (chat id, text).
fn telegram_sent(api: &common::Recorder) -> Vec<(Value, String)> {
    api.requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.ends_with("/sendMessage"))
        .map(|(_, b)| {
            (
                b["chat_id"].clone(),
                b["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_sent(
    api: &common::Recorder,
    count: usize,
    node: &common::Node,
) -> Vec<(Value, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = telegram_sent(api);
        if sent.len() >= count {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "{count} messages never sent: {sent:?}\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Telegram conversation the bot hands to a person: listed under `/v1/conversations`, taken
/// over (the bot stops answering: a message meanwhile reaches only the history), answered by
/// the agent through the platform's API as the bot's own replies are, and handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handed_off_telegram_conversation_is_answered_by_an_agent_against_a_stand_in_api() {
    let api = common::recorder_answering(PLATFORM_OK).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "bots:
  - metadata: {{name: tg-desk}}
    spec:
      triggers:
        - telegram: {{path: /hooks/telegram, secret_token: tg-secret, bot_token: \"123:ABC\", api_base: \"{}\"}}
      steps:
        - id: reply
          uses: template
          with:
            value:
              text: \"{{% if 'human' in input.text %}}A colleague will answer here.{{% else %}}echo: {{{{ input.text }}}}{{% endif %}}\"
              handoff: \"{{{{ 'human' in input.text }}}}\"
",
        api.url
    );
    let node = common::start(dir.path(), &config);
    let c = common::client();
    let say = |n: u64, text: &'static str| {
        let url = format!("{}/hooks/telegram", node.url);
        async move {
            let update = json!({"update_id": n, "message": {"message_id": n, "chat": {"id": 4242}, "from": {"id": 7}, "text": text}});
            let (code, _) = post_raw(
                &url,
                &[("x-telegram-bot-api-secret-token", "tg-secret".into())],
                &update.to_string(),
            )
            .await;
            assert_eq!(code, 200);
        }
    };
    say(1, "hello").await;
    assert_eq!(wait_sent(&api, 1, &node).await[0].1, "echo: hello");
    let (_, list) = common::get(&c, &format!("{}/v1/conversations", node.url)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "no hand-off yet: {list}"
    );

    say(2, "I want a human").await;
    assert_eq!(
        wait_sent(&api, 2, &node).await[1].1,
        "A colleague will answer here."
    );
    let (_, list) = common::get(&c, &format!("{}/v1/conversations?state=waiting", node.url)).await;
    let conv = list["items"][0].clone();
    assert_eq!(conv["bot"], "tg-desk", "{list}");
    assert_eq!(conv["channel"], "telegram");
    assert_eq!(conv["question"], "I want a human");
    assert!(
        conv.get("reply_to").is_none(),
        "where replies go stays inside the node: {conv}"
    );
    let id = conv["id"].as_str().unwrap().to_string();
    let at = |what: &str| format!("{}/v1/conversations/{id}{what}", node.url);

    // Replying before taking over is refused; so is an empty reply; unknown ids are 404.
    let (code, body) = post_json(&c, &at("/messages"), json!({"text": "hi"})).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("OC-2033")),
        "{body}"
    );
    let (code, body) = common::get(&c, &format!("{}/v1/conversations/abcd", node.url)).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("OC-2032")),
        "{body}"
    );
    let (code, body) = common::get(&c, &format!("{}/v1/conversations?state=lost", node.url)).await;
    assert_eq!(code, 400, "{body}");

    let (code, taken) = post_json(&c, &at("/take"), json!({})).await;
    assert_eq!(
        (code, taken["state"].as_str()),
        (200, Some("taken")),
        "{taken}"
    );
    let (code, body) = post_json(&c, &at("/messages"), json!({"text": "  "})).await;
    assert_eq!(code, 400, "{body}");
    let (code, sent) = post_json(
        &c,
        &at("/messages"),
        json!({"text": "Hi, I'm Ana. How can I help?"}),
    )
    .await;
    assert_eq!(code, 200, "{sent}");
    assert!(sent["delivery_task"].is_string(), "{sent}");
    let out = wait_sent(&api, 3, &node).await;
    assert_eq!(
        out[2],
        (json!(4242), "Hi, I'm Ana. How can I help?".to_string())
    );

    // Held: the user's message reaches the history, and the bot sends nothing.
    say(3, "My order is late").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, one) = common::get(&c, &at("")).await;
        let history = one["history"].as_array().unwrap().clone();
        if history.iter().any(|m| m["text"] == "My order is late") {
            let roles: Vec<&str> = history
                .iter()
                .map(|m| m["role"].as_str().unwrap())
                .collect();
            assert_eq!(
                roles,
                ["user", "bot", "user", "bot", "agent", "user"],
                "{one}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held message never reached the history: {one}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, tasks) = common::get(&c, &format!("{}/v1/tasks?bot=tg-desk&limit=1", node.url)).await;
    assert_eq!(tasks["items"][0]["output"]["held"], true, "{tasks}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        telegram_sent(&api).len(),
        3,
        "the bot said nothing while held"
    );

    // Handed back: the bot answers again.
    let (code, back) = post_json(&c, &at("/release"), json!({})).await;
    assert_eq!(
        (code, back["state"].as_str()),
        (200, Some("released")),
        "{back}"
    );
    say(4, "thanks").await;
    assert_eq!(wait_sent(&api, 4, &node).await[3].1, "echo: thanks");
}
