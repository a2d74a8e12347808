//! TLS where users need it, against real servers of the tests' own with a certificate authority
//! made for each test (`openssl`): PostgreSQL with libpq's `sslmode` meanings, the API's own
//! HTTPS (`api.tls`) and the CLI trusting its authority, MQTT over TLS (Mosquitto) and NATS over
//! TLS (nats-server).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::tls::{TestCa, TlsPostgres};
use futures_util::StreamExt;
use oclaw_store::postgres::{PgOptions, PgStore};
use serde_json::{json, Value};

async fn open(url: &str) -> Result<PgStore, String> {
    let options = PgOptions {
        pool_size: 2,
        timeout: Duration::from_secs(5),
    };
    PgStore::open(url, options).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_follow_sslmode_and_check_the_authority_and_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "db");
    let other = TestCa::new(dir.path(), "other");
    let Some(pg) = TlsPostgres::start(&ca) else {
        return;
    };
    let root = ca.ca.display();
    let url = |host: &str, params: &str| {
        format!("postgres://postgres@{host}:{}/postgres?{params}", pg.port)
    };
    // The server takes TLS connections only, so every store that opens (and migrates) went over TLS.
    open(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .unwrap();
    // verify-ca checks the chain, not the name; require encrypts without checking.
    open(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .await
    .unwrap();
    open(&url("127.0.0.1", "sslmode=require")).await.unwrap();
    // A name the certificate does not carry, another authority, no TLS at all: refused.
    let e = open(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .err()
    .unwrap();
    assert!(e.contains("certificate"), "{e}");
    let e = open(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other.ca.display()),
    ))
    .await
    .err()
    .unwrap();
    assert!(e.contains("certificate"), "{e}");
    let e = open(&url("localhost", "sslmode=disable"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");
    let e = open(&url("localhost", "sslmode=verify-full&sslcert=/c.pem"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("client certificates"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "api");
    let node = common::start(
        dir.path(),
        &format!(
            "api:\n  tls: {{cert_file: \"{}\", key_file: \"{}\"}}\n",
            ca.cert.display(),
            ca.key.display()
        ),
    );
    let port = node.url.rsplit(':').next().unwrap().to_string();
    assert!(node.url.starts_with("https://"), "{}", node.url);
    let base = format!("https://localhost:{port}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&ca.ca).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let answer = trusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let submitted = trusting
        .post(format!("{base}/v1/bots/hello/invoke"))
        .json(&json!({"input": {"name": "TLS"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 200);
    let answer: Value = submitted.json().await.unwrap();
    assert_eq!(answer["output"]["greeting"], "Hello, TLS!", "{answer}");
    // A client that does not trust the authority, and plain HTTP, get nothing.
    assert!(common::client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
    let plain = common::client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // The CLI trusts the authority given with --ca-file.
    let out = common::oclaw()
        .args(["bot", "list", "-o", "json", "--server", &base, "--ca-file"])
        .arg(&ca.ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello"));
    let out = common::oclaw()
        .args(["bot", "list", "--server", &base])
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_tls_carries_messages_and_replies() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "mqtt");
    let port = common::free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\nuser root\n",
            ca.ca.display(),
            ca.cert.display(),
            ca.key.display()
        ),
    )
    .unwrap();
    let _broker =
        common::PrivateServer::start("mosquitto", &["-c", &conf.display().to_string()], port);
    let prefix = format!("oclaw-tls/{}", common::unique());
    let node = common::start(
        dir.path(),
        &format!(
            "channels:
  mqtt: {{url: \"mqtts://localhost:{port}\", ca_file: \"{}\"}}
bots:
  - metadata: {{name: plant-monitor}}
    spec:
      triggers:
        - mqtt: {{topic: \"{prefix}/+/temp\", reply_topic: \"{prefix}/alerts\"}}
      steps:
        - id: judge
          uses: template
          with: {{value: {{celsius: \"{{{{ input.data.payload.celsius }}}}\"}}}}
",
            ca.ca.display()
        ),
    );
    let mut o = MqttOptions::new(format!("t-{}", common::unique()), "localhost", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(&ca.ca).unwrap(),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut events) = AsyncClient::new(o, 100);
    client
        .subscribe(format!("{prefix}/alerts"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send(p.payload.to_vec());
            }
        }
    });
    // The node subscribes once connected: publish until a reply comes back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "no reply over TLS: {}",
            node.logs()
        );
        client
            .publish(
                format!("{prefix}/7/temp"),
                QoS::AtLeastOnce,
                false,
                json!({"celsius": 42}).to_string(),
            )
            .await
            .unwrap();
        if let Ok(Some(reply)) =
            tokio::time::timeout(Duration::from_millis(700), replies.recv()).await
        {
            let v: Value = serde_json::from_slice(&reply).unwrap();
            assert_eq!(v["celsius"], 42, "{v}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_tls_carries_messages_and_replies() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "nats");
    let port = common::free_port();
    let store = dir.path().join("js").display().to_string();
    let (cert, key) = (ca.cert.display().to_string(), ca.key.display().to_string());
    let _server = common::PrivateServer::start(
        "nats-server",
        &[
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            &store,
            "--tls",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
        port,
    );
    let url = format!("tls://localhost:{port}");
    let prefix = format!("oclawtls{}", common::unique());
    let node = common::start(
        dir.path(),
        &format!(
            "channels:
  nats: {{url: \"{url}\", ca_file: \"{}\", stream: \"TLS{}\"}}
bots:
  - metadata: {{name: order-handler}}
    spec:
      triggers:
        - nats: {{subject: \"{prefix}.orders.created\", reply_subject: \"{prefix}.orders.processed\"}}
      steps:
        - id: handle
          uses: template
          with: {{value: {{order: \"{{{{ input.data.payload.order }}}}\"}}}}
",
            ca.ca.display(),
            common::unique()
        ),
    );
    let nc = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca.ca.clone())
        .connect(url.as_str())
        .await
        .unwrap();
    // A client that does not trust the authority is refused.
    assert!(async_nats::ConnectOptions::new()
        .require_tls(true)
        .connect(url.as_str())
        .await
        .is_err());
    let mut replies = nc
        .subscribe(format!("{prefix}.orders.processed"))
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let js = async_nats::jetstream::new(nc.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no reply over TLS: {}",
            node.logs()
        );
        // The stream exists once the node has connected and made it.
        let published = js
            .publish(
                format!("{prefix}.orders.created"),
                json!({"order": 5}).to_string().into(),
            )
            .await;
        let acked = match published {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if !acked {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(v["order"], 5, "{v}");
        break;
    }
}
