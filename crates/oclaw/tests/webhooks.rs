//! Webhook triggers against a real node over real HTTP: signed requests (HMAC-SHA256 with a
//! replay window), bearer-token webhooks, the API-token fallback, sync replies and async 202s.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{client, start_process_env};
use serde_json::{json, Value};

const CONFIG: &str = r#"
api:
  tokens: [api-token]
bots:
  - metadata: {name: orders}
    spec:
      triggers:
        - webhook: {path: /hooks/orders, secret: "{{ secrets.ORDERS_HMAC }}", mode: sync}
      steps:
        - id: answer
          uses: template
          with: {value: {order: "{{ input.data.order }}", text: "{{ input.text }}", channel: "{{ input.channel }}"}}
  - metadata: {name: tickets}
    spec:
      triggers:
        - webhook: {path: /hooks/tickets, token: "t0ken"}
      steps:
        - {id: echo, uses: template, with: {value: "{{ input.data }}"}}
  - metadata: {name: plain}
    spec:
      triggers:
        - webhook: {path: /hooks/plain/in, mode: sync}
      steps:
        - {id: echo, uses: template, with: {value: "{{ input.text }}"}}
"#;

fn sign(secret: &str, t: i64, body: &str) -> String {
    // HMAC-SHA256 by hand (RFC 2104) so the test does not share the node's implementation.
    fn sha256(data: &[u8]) -> [u8; 32] {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(data)?;
                c.wait_with_output()
            })
            .unwrap();
        let hex = String::from_utf8(out.stdout).unwrap();
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        d
    }
    let mut key = secret.as_bytes().to_vec();
    key.resize(64, 0);
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha256(&[ipad, format!("{t}.{body}").into_bytes()].concat());
    let outer = sha256(&[opad, inner.to_vec()].concat());
    let hex: String = outer.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, Value) {
    let mut r = c.post(url).body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.send().await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_authenticate_then_run_their_bot() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("oclaw.db").display());
    let node = start_process_env(
        dir.path(),
        CONFIG,
        &["serve", "--listen", "127.0.0.1:0"],
        &storage,
        &[("OCLAW_SECRET_ORDERS_HMAC", "s3cret")],
    );
    let c = client();
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"order": 42, "text": "ship it"}"#;
    let orders = format!("{}/hooks/orders", node.url);

    // Signed and fresh: the sync webhook answers with the bot's output.
    let (code, out) = post(
        &c,
        &orders,
        body,
        &[("x-oclaw-signature", sign("s3cret", now, body))],
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        out,
        json!({"order": 42, "text": "ship it", "channel": "webhook"})
    );

    // Wrong key, tampered body, missing header, replayed (6 minutes old): 401 OC-2012, no task.
    for (headers, sent) in [
        (vec![("x-oclaw-signature", sign("wrong", now, body))], body),
        (
            vec![("x-oclaw-signature", sign("s3cret", now, body))],
            r#"{"order": 43}"#,
        ),
        (vec![], body),
        (
            vec![("x-oclaw-signature", sign("s3cret", now - 360, body))],
            body,
        ),
    ] {
        let (code, out) = post(&c, &orders, sent, &headers).await;
        assert_eq!(code, 401, "{out}");
        assert_eq!(out["error"]["code"], "OC-2012", "{out}");
    }
    let tasks: Value = c
        .get(format!("{}/v1/tasks?bot=orders", node.url))
        .bearer_auth("api-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tasks["items"].as_array().unwrap().len(),
        1,
        "refused requests made no task"
    );
    assert!(
        node.logs().contains("webhook refused"),
        "refusals are logged"
    );
    assert!(
        !node.logs().contains("s3cret"),
        "the secret never reaches the log"
    );

    // Token webhook (async): 202 with the task id; the right token only; a retry with the same
    // Idempotency-Key is the same task.
    let tickets = format!("{}/hooks/tickets", node.url);
    let (code, _) = post(
        &c,
        &tickets,
        r#"{"id": 1}"#,
        &[("authorization", "Bearer nope".into())],
    )
    .await;
    assert_eq!(code, 401);
    let auth = ("authorization", "Bearer t0ken".to_string());
    let key = ("idempotency-key", "evt-1".to_string());
    let (code, first) = post(&c, &tickets, r#"{"id": 1}"#, &[auth.clone(), key.clone()]).await;
    assert_eq!(code, 202, "{first}");
    let (_, again) = post(&c, &tickets, r#"{"id": 1}"#, &[auth, key]).await;
    assert_eq!(first["task_id"], again["task_id"]);
    let id = first["task_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t: Value = c
            .get(format!("{}/v1/tasks/{id}", node.url))
            .bearer_auth("api-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["status"] == "succeeded" {
            assert_eq!(t["output"], json!({"id": 1}));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A webhook with neither secret nor token needs the API token when the node has tokens.
    let plain = format!("{}/hooks/plain/in", node.url);
    let (code, _) = post(&c, &plain, "hello", &[]).await;
    assert_eq!(code, 401);
    let (code, out) = post(
        &c,
        &plain,
        "hello",
        &[("authorization", "Bearer api-token".into())],
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out, json!("hello"), "a text body arrives as input.text");

    // Unknown webhook paths are 404, and GET is not a webhook.
    let (code, out) = post(&c, &format!("{}/hooks/nope", node.url), "{}", &[]).await;
    assert_eq!(
        (code, out["error"]["code"].clone()),
        (404, json!("OC-2010"))
    );
    // Four requests became tasks, two sync ones were answered, six were refused.
    common::assert_channel_telemetry(
        &node.url,
        "webhook",
        common::ChannelCounts {
            received: 4.0,
            sent: 2.0,
            error: 6.0,
            ..Default::default()
        },
    )
    .await;
}
