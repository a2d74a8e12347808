//! WebSocket chat sessions against a real `oclaw serve` and a real WebSocket client
//! (tokio-tungstenite): the example FAQ bot, conversation memory and resume, ordering, bad
//! frames, heartbeats and a client that does not read.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, query: &str) -> Ws {
    let url = format!("{}/v1/ws?{query}", base.replace("http://", "ws://"));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// The next JSON text frame (pings and pongs skipped), within 10 s.
async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10s")
            .expect("the connection is open")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Sends a message and answers (ack, reply) frames.
async fn ask(ws: &mut Ws, text: &str) -> (Value, Value) {
    send(ws, json!({"type": "message", "text": text, "id": text})).await;
    let ack = next_frame(ws).await;
    let reply = next_frame(ws).await;
    (ack, reply)
}

async fn metric(base: &str, series: &str) -> f64 {
    let text = common::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faq_bot_answers_remembers_resumes_and_hands_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), "");
    let mut ws = connect(&node.url, "bot=faq-bot&user=alice").await;
    let hello = next_frame(&mut ws).await;
    assert_eq!(hello["type"], "session");
    let session = hello["session"].as_str().unwrap().to_string();

    let (ack, reply) = ask(&mut ws, "How long does a refund take?").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["task_id"], ack["task_id"]);
    assert_eq!(reply["id"], "How long does a refund take?");
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("3 to 5 business days"),
        "{reply}"
    );
    assert_eq!(reply["data"]["found"], true);
    assert_eq!(reply["data"]["turn"], 1);

    // Chinese knowledge entries answer Chinese questions.
    let (_, reply) = ask(&mut ws, "退款什么时候到账").await;
    assert!(
        reply["text"].as_str().unwrap().contains("工作日"),
        "{reply}"
    );
    assert_eq!(reply["data"]["turn"], 2, "history is kept between messages");

    // No answer: handed to the human queue, and the hand-off task carries the question.
    let (_, reply) = ask(&mut ws, "Can I pay with seashells?").await;
    assert_eq!(reply["data"]["found"], false, "{reply}");
    let ticket = reply["data"]["handoff"].as_str().unwrap().to_string();
    let task = common::wait_status(
        &common::client(),
        &node.url,
        &ticket,
        "succeeded",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(task["bot"], "support-inbox");
    assert_eq!(task["queue"], "human");
    assert_eq!(task["input"]["question"], "Can I pay with seashells?");
    assert_eq!(task["input"]["conversation"], session.as_str());
    assert_eq!(
        task["input"]["history"].as_array().unwrap().len(),
        4,
        "{task}"
    );
    drop(ws);

    // Resume: the same session continues the conversation.
    let mut ws = connect(
        &node.url,
        &format!("bot=faq-bot&user=alice&session={session}"),
    )
    .await;
    assert_eq!(next_frame(&mut ws).await["session"], session.as_str());
    let (_, reply) = ask(&mut ws, "where is my order").await;
    assert!(
        reply["text"].as_str().unwrap().contains("tracking"),
        "{reply}"
    );
    assert_eq!(reply["data"]["turn"], 4);

    // Another session starts fresh.
    let mut other = connect(&node.url, "bot=faq-bot").await;
    next_frame(&mut other).await;
    let (_, reply) = ask(&mut other, "How do I reset my password?").await;
    assert_eq!(reply["data"]["turn"], 1);

    assert!(
        metric(
            &node.url,
            "oclaw_channel_messages_total{channel=\"websocket\",event=\"received\"}"
        )
        .await
            >= 5.0
    );
    assert!(
        metric(
            &node.url,
            "oclaw_channel_messages_total{channel=\"websocket\",event=\"sent\"}"
        )
        .await
            >= 5.0
    );
    assert!(
        metric(
            &node.url,
            "oclaw_channel_reply_seconds_count{channel=\"websocket\"}"
        )
        .await
            >= 5.0
    );
    common::assert_channel_telemetry(
        &node.url,
        "websocket",
        common::ChannelCounts {
            received: 5.0,
            sent: 5.0,
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_a_session_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), "");
    let mut ws = connect(&node.url, "bot=faq-bot").await;
    next_frame(&mut ws).await;
    // Sent back to back: each becomes a task at once, but they run one at a time, in order,
    // each seeing the history of the ones before.
    for i in 0..8 {
        send(
            &mut ws,
            json!({"type": "message", "text": "where is my order", "id": i}),
        )
        .await;
    }
    let mut acks = 0;
    let mut turns = Vec::new();
    while turns.len() < 8 {
        let f = next_frame(&mut ws).await;
        match f["type"].as_str().unwrap() {
            "ack" => acks += 1,
            "reply" => turns.push((
                f["id"].as_i64().unwrap(),
                f["data"]["turn"].as_i64().unwrap(),
            )),
            other => panic!("unexpected {other}: {f}"),
        }
    }
    assert_eq!(acks, 8);
    let expected: Vec<(i64, i64)> = (0..8).map(|i| (i, i + 1)).collect();
    assert_eq!(turns, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), "");
    let c = common::client();
    // Refused before the upgrade, with codes.
    let r = c
        .get(format!("{}/v1/ws?bot=nope", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "OC-2003");
    let r = c
        .get(format!("{}/v1/ws?bot=hello", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "OC-2013");
    let r = c
        .get(format!("{}/v1/ws?bot=faq-bot", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a plain GET is not an upgrade");
    let r = c
        .get(format!("{}/v1/ws?bot=faq-bot&session=a%20b", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "OC-2002");

    let mut ws = connect(&node.url, "bot=faq-bot").await;
    next_frame(&mut ws).await;
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type":"shout","text":"x"}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"message","text":5}"#,
    ] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        let f = next_frame(&mut ws).await;
        assert_eq!(f["type"], "error", "{bad}: {f}");
        assert_eq!(f["error"]["code"], "OC-2014", "{bad}: {f}");
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut ws).await["error"]["code"], "OC-2014");
    // Still usable.
    send(&mut ws, json!({"type": "ping", "id": 7})).await;
    assert_eq!(next_frame(&mut ws).await, json!({"type": "pong", "id": 7}));
    let (_, reply) = ask(&mut ws, "What are your opening hours?").await;
    assert!(
        reply["text"].as_str().unwrap().contains("Monday"),
        "{reply}"
    );
    assert!(
        metric(
            &node.url,
            "oclaw_channel_messages_total{channel=\"websocket\",event=\"error\"}"
        )
        .await
            >= 6.0
    );
    common::assert_channel_telemetry(
        &node.url,
        "websocket",
        common::ChannelCounts {
            error: 6.0,
            ..Default::default()
        },
    )
    .await;
}

const ECHO: &str = "channels:
  websocket: {heartbeat: 300ms, outbound_buffer: 4, max_in_flight: 64, max_frame_bytes: 1048576}
bots:
  - metadata: {name: echo}
    spec:
      triggers: [{websocket: {}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_three_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), ECHO);
    let mut ws = connect(&node.url, "bot=echo").await;
    // Read nothing and answer no ping for a while: the server gives up after 3 × 300 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The client flushes its pending pongs when it reads, so it may see the closed socket
    // (broken pipe) before the close frame (1001); either way the server ended the session.
    let mut ended = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match msg {
            Ok(Message::Close(frame)) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
                ended = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the server kept a silent client");
    let logs = node.logs();
    assert!(
        logs.contains("client silent for three heartbeats"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected_not_buffered_forever() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), ECHO);
    let ws = connect(&node.url, "bot=echo").await;
    let (mut tx, rx) = ws.split();
    // 256 KiB echoed per message, never read: socket buffers fill, then the 4-frame outbox.
    let blob = "x".repeat(256 * 1024);
    let sender = tokio::spawn(async move {
        for i in 0..400 {
            let frame = json!({"type": "message", "data": {"i": i, "blob": blob}}).to_string();
            if tx.send(Message::Text(frame.into())).await.is_err() {
                return i;
            }
        }
        400
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if metric(
            &node.url,
            "oclaw_channel_messages_total{channel=\"websocket\",event=\"dropped\"}",
        )
        .await
            >= 1.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow client was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = tokio::time::timeout(Duration::from_secs(30), sender).await;
    assert!(
        sent.is_ok(),
        "the client's sends end once the server closes"
    );
    common::assert_channel_telemetry(
        &node.url,
        "websocket",
        common::ChannelCounts {
            dropped: 1.0,
            ..Default::default()
        },
    )
    .await;
    drop(rx);
    let logs = node.logs();
    assert!(logs.contains("OC-2015"), "{logs}");
    // The node is unharmed.
    let (status, _, _) = common::post(
        &common::client(),
        &format!("{}/v1/bots/echo/invoke", node.url),
        "{\"input\": 1}",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_asked_and_answered_in_the_same_chat_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
bots:
  - apiVersion: oclaw.io/v1
    kind: Bot
    metadata: {name: refunds}
    spec:
      triggers: [{websocket: {}}]
      steps:
        - id: ok
          approval: {message: "Refund for {{ input.text }}?", approvers: [ann]}
        - id: reply
          uses: template
          with: {text: "{{ 'refunded' if steps.ok.output.approved else 'refused' }} by {{ steps.ok.output.by }}: {{ steps.ok.output.comment or '' }}"}
"#;
    let node = common::start(dir.path(), config);
    let mut ws = connect(&node.url, "bot=refunds&user=ann").await;
    let session = next_frame(&mut ws).await;
    assert_eq!(session["type"], "session", "{session}");
    let (ack, asked) = ask(&mut ws, "order 7").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(asked["type"], "approval", "{asked}");
    assert_eq!(asked["message"], "Refund for order 7?");
    assert_eq!(asked["task_id"], ack["task_id"]);
    // Something else is a new message for the bot (which asks again), not a decision.
    let (_, again) = ask(&mut ws, "order 8").await;
    assert_eq!(again["type"], "approval", "{again}");
    // `approve ...` answers the newest open approval of the session; its reply is the task's.
    let (ack, reply) = ask(&mut ws, "approve ok by me").await;
    assert_eq!(ack["task_id"], again["task_id"], "{ack}");
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["text"], "refunded by ann: ok by me");
    let (ack, reply) = ask(&mut ws, "No.").await;
    assert_eq!(ack["task_id"], asked["task_id"]);
    assert_eq!(reply["text"], "refused by ann: ");
    // A session whose user is not an approver: refused with the code, recorded.
    let mut other = connect(&node.url, "bot=refunds&user=eve").await;
    next_frame(&mut other).await;
    let (_, asked) = ask(&mut other, "order 9").await;
    assert_eq!(asked["type"], "approval");
    let (refused, _) = {
        send(
            &mut other,
            json!({"type": "message", "text": "yes", "id": "y"}),
        )
        .await;
        (next_frame(&mut other).await, ())
    };
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["error"]["code"], "OC-2019", "{refused}");
}
