//! The platforms' checks against known vectors.
//!
//! Vectors from each platform's documentation where it publishes one (Slack's signing
//! example, Feishu's decryption example), and otherwise computed independently with Python's
//! `hmac`, `hashlib` and `cryptography` following the documented algorithm.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;
use oclaw_bots::triggers::platform::*;
use serde_json::json;

fn req<'a>(
    method: &'a str,
    headers: &'a HashMap<String, String>,
    query: &'a HashMap<String, String>,
    body: &'a [u8],
    now: i64,
) -> Request<'a> {
    Request {
        method,
        headers,
        query,
        body,
        now,
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn slack_signature_matches_the_documented_example() {
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        slack::signature(
            "8f742231b10e8888abcd99yyyzzz85a5",
            "1531420618",
            body.as_bytes()
        ),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
}

fn slack_settings() -> SlackSettings {
    SlackSettings {
        path: "/hooks/slack".into(),
        signing_secret: "s3cret".into(),
        bot_token: "xoxb-1".into(),
        api_base: "http://127.0.0.1:1".into(),
    }
}

#[test]
fn slack_events_are_checked_then_read() {
    let s = slack_settings();
    let q = HashMap::new();
    let body = json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "text": "hi", "user": "U1", "channel": "C1"}}).to_string();
    let now = 1_800_000_000;
    let sig = slack::signature("s3cret", &now.to_string(), body.as_bytes());
    let h = map(&[
        ("x-slack-request-timestamp", &now.to_string()),
        ("x-slack-signature", &sig),
    ]);
    match ingress(
        &PlatformTrigger::Slack(s.clone()),
        &req("POST", &h, &q, body.as_bytes(), now),
    )
    .unwrap()
    {
        Ingress::Message { inbound, reply_to } => {
            assert_eq!(inbound.text.as_deref(), Some("hi"));
            assert_eq!(inbound.conversation.as_deref(), Some("C1"));
            assert_eq!(inbound.idempotency_key.as_deref(), Some("slack:Ev1"));
            assert_eq!(reply_to["channel"], "C1");
        }
        other => panic!("{other:?}"),
    }
    // Replay outside the window, a tampered body, a wrong secret, no signature.
    let t = PlatformTrigger::Slack(s);
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, body.as_bytes(), now + 301)),
        Err(Refusal::Unauthorized(_))
    ));
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, b"{\"type\":\"x\"}", now)),
        Err(Refusal::Unauthorized(_))
    ));
    let bad = map(&[
        ("x-slack-request-timestamp", &now.to_string()),
        (
            "x-slack-signature",
            &slack::signature("other", &now.to_string(), body.as_bytes()),
        ),
    ]);
    assert!(matches!(
        ingress(&t, &req("POST", &bad, &q, body.as_bytes(), now)),
        Err(Refusal::Unauthorized(_))
    ));
    assert!(matches!(
        ingress(&t, &req("POST", &HashMap::new(), &q, body.as_bytes(), now)),
        Err(Refusal::Unauthorized(_))
    ));
    // URL verification is answered with the challenge; the bot's own messages are ignored.
    let v = json!({"type": "url_verification", "challenge": "abc"}).to_string();
    let h = map(&[
        ("x-slack-request-timestamp", &now.to_string()),
        (
            "x-slack-signature",
            &slack::signature("s3cret", &now.to_string(), v.as_bytes()),
        ),
    ]);
    match ingress(&t, &req("POST", &h, &q, v.as_bytes(), now)).unwrap() {
        Ingress::Answer { body, .. } => assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["challenge"],
            "abc"
        ),
        other => panic!("{other:?}"),
    }
    let own = json!({"type": "event_callback", "event": {"type": "message", "bot_id": "B1", "text": "x", "channel": "C1"}}).to_string();
    let h = map(&[
        ("x-slack-request-timestamp", &now.to_string()),
        (
            "x-slack-signature",
            &slack::signature("s3cret", &now.to_string(), own.as_bytes()),
        ),
    ]);
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, own.as_bytes(), now)).unwrap(),
        Ingress::Ignore(_)
    ));
}

#[test]
fn telegram_secret_token() {
    let t = PlatformTrigger::Telegram(TelegramSettings {
        path: "/hooks/tg".into(),
        secret_token: "tok-1".into(),
        bot_token: "1:x".into(),
        api_base: "http://127.0.0.1:1".into(),
    });
    let q = HashMap::new();
    let body = json!({"update_id": 5, "message": {"message_id": 9, "chat": {"id": 42}, "from": {"id": 7}, "text": "hello"}}).to_string();
    let h = map(&[("x-telegram-bot-api-secret-token", "tok-1")]);
    match ingress(&t, &req("POST", &h, &q, body.as_bytes(), 0)).unwrap() {
        Ingress::Message { inbound, reply_to } => {
            assert_eq!(inbound.conversation.as_deref(), Some("42"));
            assert_eq!(inbound.user.as_deref(), Some("7"));
            assert_eq!(inbound.idempotency_key.as_deref(), Some("telegram:5"));
            assert_eq!(reply_to["chat_id"], 42);
        }
        other => panic!("{other:?}"),
    }
    let wrong = map(&[("x-telegram-bot-api-secret-token", "tok-2")]);
    assert!(matches!(
        ingress(&t, &req("POST", &wrong, &q, body.as_bytes(), 0)),
        Err(Refusal::Unauthorized(_))
    ));
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, b"nope", 0)),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn feishu_decrypts_the_documented_example_and_checks_signatures() {
    assert_eq!(
        feishu::decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap(),
        b"hello world"
    );
    assert!(feishu::decrypt("wrong key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").is_err());
    assert_eq!(
        feishu::signature("1700000000", "nonce123", "test key", br#"{"encrypt":"x"}"#),
        "f2ea06186377b3cb3c08ef77c06d9a240288a6d9ea43b4c19c514b9b520c0a9e"
    );
    let t = PlatformTrigger::Feishu(FeishuSettings {
        path: "/hooks/feishu".into(),
        verification_token: "vt".into(),
        encrypt_key: None,
        app_id: "a".into(),
        app_secret: "b".into(),
        api_base: "http://127.0.0.1:1".into(),
    });
    let q = HashMap::new();
    let h = HashMap::new();
    let challenge =
        json!({"challenge": "c1", "token": "vt", "type": "url_verification"}).to_string();
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, challenge.as_bytes(), 0)).unwrap(),
        Ingress::Answer { .. }
    ));
    let forged =
        json!({"challenge": "c1", "token": "nope", "type": "url_verification"}).to_string();
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, forged.as_bytes(), 0)),
        Err(Refusal::Unauthorized(_))
    ));
    let event = json!({"schema": "2.0", "header": {"event_id": "e1", "event_type": "im.message.receive_v1", "token": "vt"},
        "event": {"sender": {"sender_id": {"open_id": "ou_1"}}, "message": {"chat_id": "oc_1", "message_type": "text", "content": "{\"text\":\"退款多久到账\"}"}}}).to_string();
    match ingress(&t, &req("POST", &h, &q, event.as_bytes(), 0)).unwrap() {
        Ingress::Message { inbound, .. } => {
            assert_eq!(inbound.text.as_deref(), Some("退款多久到账"));
            assert_eq!(inbound.user.as_deref(), Some("ou_1"));
            assert_eq!(inbound.idempotency_key.as_deref(), Some("feishu:e1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dingtalk_sign() {
    assert_eq!(
        dingtalk::sign("SECabc123", "1700000000000"),
        "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="
    );
    let t = PlatformTrigger::DingTalk(DingTalkSettings {
        path: "/hooks/ding".into(),
        app_secret: "SECabc123".into(),
        api_base: "https://oapi.dingtalk.com".into(),
    });
    let q = HashMap::new();
    let body = json!({"msgtype": "text", "text": {"content": " hi "}, "msgId": "m1", "conversationId": "cid1", "senderStaffId": "s1", "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=x"}).to_string();
    let h = map(&[
        ("timestamp", "1700000000000"),
        ("sign", "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="),
    ]);
    match ingress(&t, &req("POST", &h, &q, body.as_bytes(), 1_700_000_100)).unwrap() {
        Ingress::Message { inbound, .. } => assert_eq!(inbound.text.as_deref(), Some("hi")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, body.as_bytes(), 1_700_003_601)),
        Err(Refusal::Unauthorized(_))
    ));
    let bad = map(&[
        ("timestamp", "1700000000001"),
        ("sign", "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="),
    ]);
    assert!(matches!(
        ingress(&t, &req("POST", &bad, &q, body.as_bytes(), 1_700_000_100)),
        Err(Refusal::Unauthorized(_))
    ));
}

const WECOM_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const WECOM_ENC: &str = "sKqRbbiSUnDhFHOvPjtUMbKP30EJs7xB+/VBK2mvphNV1+MN+blbCHq5BIb7UC45TxsVbQC26y9EsHofAZcJYugB7SUBHA60wAI/CrWKi25oGvBwDlLMgqILwASec3wb3DtI1lwY0K1kDhnpUm8iY1ZAdR0lX5GnLpEqEWe3FdwenLpTTeK8roTK+nXE9MU5tTnrn6T9rn3ealRIo99Lf5E8SEsQmYpNwlnqTmXFcM0D5/TZeo0gjvMivUs0Dv3lEM8HfyoUEWDCZeDXUj4huclrrr2SbGmjuthcBBZ0kBLj23X6u/cwFFqRuV1/2W9hQpY8pLAdABjER49691acKhbJDwZmpPkeWsQ3nzru4Vj5QkefILGRmjalwcfBJ5Xb";

#[test]
fn wecom_signature_decryption_and_xml() {
    assert_eq!(
        signature_of_vector(),
        "822a9dab86dfe9c56d8393832cb3486c32e362e4"
    );
    let (msg, receiver) = wecom::decrypt(WECOM_KEY, WECOM_ENC).unwrap();
    assert_eq!(receiver, "ww1");
    let msg = String::from_utf8(msg).unwrap();
    assert_eq!(
        wecom::xml_tag(&msg, "Content").as_deref(),
        Some("where is my order")
    );
    assert_eq!(wecom::xml_tag(&msg, "MsgId").as_deref(), Some("7001"));
    let t = PlatformTrigger::WeCom(WeComSettings {
        path: "/hooks/wecom".into(),
        token: "QDG6eK".into(),
        encoding_aes_key: WECOM_KEY.into(),
        webhook_key: None,
        api_base: "http://127.0.0.1:1".into(),
    });
    let q = map(&[
        ("msg_signature", "822a9dab86dfe9c56d8393832cb3486c32e362e4"),
        ("timestamp", "1700000000"),
        ("nonce", "nonce42"),
    ]);
    let body = format!("<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[{WECOM_ENC}]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>");
    let h = HashMap::new();
    match ingress(&t, &req("POST", &h, &q, body.as_bytes(), 1_700_000_010)).unwrap() {
        Ingress::Message { inbound, .. } => {
            assert_eq!(inbound.text.as_deref(), Some("where is my order"));
            assert_eq!(inbound.user.as_deref(), Some("zhangsan"));
            assert_eq!(inbound.idempotency_key.as_deref(), Some("wecom:7001"));
        }
        other => panic!("{other:?}"),
    }
    // URL verification: the same signature scheme over echostr.
    let mut gq = q.clone();
    gq.insert("echostr".into(), WECOM_ENC.into());
    assert!(matches!(
        ingress(&t, &req("GET", &h, &gq, b"", 1_700_000_010)).unwrap(),
        Ingress::Answer { .. }
    ));
    let mut bad = q.clone();
    bad.insert("nonce".into(), "nonce43".into());
    assert!(matches!(
        ingress(&t, &req("POST", &h, &bad, body.as_bytes(), 1_700_000_010)),
        Err(Refusal::Unauthorized(_))
    ));
    assert!(matches!(
        ingress(&t, &req("POST", &h, &q, body.as_bytes(), 1_700_000_400)),
        Err(Refusal::Unauthorized(_))
    ));
}

fn signature_of_vector() -> String {
    wecom::signature("QDG6eK", "1700000000", "nonce42", WECOM_ENC)
}
