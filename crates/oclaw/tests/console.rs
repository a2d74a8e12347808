//! The console and the WebChat widget in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver by `fantoccini`, against a real `oclaw serve` with
//! the example bots and a real small model (SmolLM2 through node-llama-cpp) for the streamed
//! chat: sign in, a node and a queue on the overview, a bot run watched live, a failed task
//! retried, a handed-off conversation taken over and answered (the WebSocket client sees it),
//! an approval approved, a viewer who sees no actions (and whom the API refuses anyway), the
//! widget on a plain page of another origin with a streamed answer, and the widget's outbox
//! across a restart of the node. Every page checked is run through axe-core (no serious or
//! critical violations) and the browser's console must stay free of errors. Screenshots go to
//! `target/ui-screenshots/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "console-admin-token-0123456789abcdef";

struct Browser {
    c: Client,
    driver: Child,
    shots: PathBuf,
    axe: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's log endpoint: the browser console's entries since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

impl Browser {
    async fn start(axe: String) -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
            return common::missing("chromium and chromedriver");
        };
        let port = common::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-US"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps: serde_json::Map<String, Value> = caps.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let c = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("chromedriver did not answer: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let shots = common::workspace_root().join("target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            c,
            driver: child,
            shots,
            axe,
        })
    }

    async fn goto(&self, url: &str) {
        self.c.goto(url).await.unwrap();
    }

    /// The text of the first element matching `css`, once it holds `needle` (within 20 s).
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(el) = self.c.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot("timeout").await;
        panic!("`{css}` never showed `{needle}`; it showed: {last}");
    }

    /// The first element matching `css`, within 20 s (a screenshot and the page's text when not).
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                self.shot("timeout").await;
                let text = self.js("return document.body.innerText").await;
                panic!("no `{css}` ({e}); the page shows: {text}");
            }
        }
    }

    /// Clicks the element; when a live refresh replaced it between finding and clicking, the
    /// new one.
    async fn click(&self, css: &str) {
        for _ in 0..5 {
            match self.element(css).await.click().await {
                Ok(()) => return,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {}
                Err(e) => panic!("clicking `{css}`: {e}"),
            }
        }
        panic!("`{css}` kept being replaced");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn count(&self, css: &str) -> usize {
        self.c.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn shot(&self, name: &str) {
        if let Ok(png) = self.c.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// axe-core over the page as it is: no serious or critical violation.
    async fn accessible(&self, page: &str) {
        self.c.execute(&self.axe, vec![]).await.unwrap();
        let result = self
            .c
            .execute_async(
                "const done = arguments[0]; axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))));",
                vec![],
            )
            .await
            .unwrap();
        let bad: Vec<&Value> = result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(
            bad.is_empty(),
            "accessibility violations on {page}: {bad:#?}"
        );
    }

    /// The browser console's entries at warning level or above since the last read.
    async fn console_errors(&self) -> Vec<String> {
        let log = self.c.issue_cmd(BrowserLog).await.unwrap();
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn which(program: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

fn http() -> reqwest::Client {
    common::client()
}

async fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let c = http();
    let req = match method {
        "POST" => c.post(url).json(&body.unwrap_or(json!({}))),
        _ => c.get(url),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_task(base: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, task) = call("GET", &format!("{base}/v1/tasks/{id}"), ADMIN, None).await;
        if done(&task) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id} stuck: {task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

use common::Ws;

async fn next_frame(ws: &mut Ws) -> Value {
    common::next_text_frame(ws, Duration::from_secs(20)).await
}

/// The next frame of `kind`, skipping others.
async fn frame_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let f = next_frame(ws).await;
        if f["type"] == kind {
            return f;
        }
    }
}

async fn say(ws: &mut Ws, id: &str, text: &str) {
    ws.send(Message::Text(
        json!({"type": "message", "id": id, "text": text})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
}

/// A plain page on another origin that embeds the widget.
async fn site(node: &str, token: &str) -> String {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\
         <link rel=\"icon\" href=\"data:,\"></head><body><main><h1>A shop</h1><p>Questions? Ask below.</p></main>\
         <script src=\"{node}/ui/webchat.js\" data-bot=\"assistant\" data-token=\"{token}\" data-title=\"Ask us\"></script>\
         </body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

/// The example bots (and the FAQ they read) with two more: a chat bot on the model and a bot
/// that fails.
fn bots(dir: &std::path::Path) -> PathBuf {
    let root = common::workspace_root();
    let bots = dir.join("bots");
    for (from, to) in [
        ("examples/bots", bots.clone()),
        ("examples/faq", dir.join("faq")),
    ] {
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(root.join(from)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        bots.join("console-test.yaml"),
        r#"
metadata: {name: assistant, description: Answers in a short sentence.}
spec:
  triggers: [{websocket: {}}]
  steps:
    - {id: answer, uses: llm.chat, with: {prompt: "{{ input.text }}", max_tokens: 16, temperature: 0}}
---
metadata: {name: broken, description: Fetches an address where nothing listens.}
spec:
  allow_private_network: true
  steps:
    - {id: fetch, uses: http.request, with: {url: "http://127.0.0.1:9/", timeout: 1s}}
"#,
    )
    .unwrap();
    bots
}

fn config(model_port: u16, bots: &std::path::Path) -> String {
    format!(
        r#"
api:
  tokens: ["{ADMIN}"]
bots_dir: "{}"
llm:
  providers:
    local: {{kind: openai, base_url: "http://127.0.0.1:{model_port}/v1", timeout: 60s}}
  default: local/smollm2-135m-instruct
"#,
        bots.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_webchat_widget_in_a_real_browser() {
    let root = common::workspace_root();
    let axe = root.join("crates/oclaw/tests/fixtures/axe/node_modules/axe-core/axe.min.js");
    let Ok(axe) = std::fs::read_to_string(&axe) else {
        return common::missing("axe-core (npm ci in tests/fixtures/axe)").unwrap_or(());
    };
    let Some(b) = Browser::start(axe).await else {
        return;
    };
    let Some((_model, model_port)) = common::real_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let storage = format!("sqlite://{}", dir.path().join("oclaw.db").display());
    let listen = format!("127.0.0.1:{port}");
    let serve = ["serve", "--listen", listen.as_str()];
    let config = config(model_port, &bots(dir.path()));
    let mut node = common::start_process(dir.path(), &config, &serve, &storage);
    let base = node.url.clone();
    let token = |role: &'static str| {
        let base = base.clone();
        async move {
            let (code, t) = call(
                "POST",
                &format!("{base}/v1/tokens"),
                ADMIN,
                Some(json!({"tenant": "default", "role": role, "name": format!("{role}-1")})),
            )
            .await;
            assert_eq!(code, 201, "{t}");
            t["token"].as_str().unwrap().to_string()
        }
    };
    let viewer = token("viewer").await;
    let operator = token("operator").await;

    // Sign in: the node has tokens, so the console asks for one.
    b.goto(&format!("{base}/ui/")).await;
    b.type_into("#token", ADMIN).await;
    b.click("#signin").await;
    // The overview: this node, Ready, and the example bots' queue.
    b.wait_text("main", "Ready").await;
    b.wait_text("main", "default").await;
    b.wait_text("#who", "admin").await;
    b.shot("overview").await;
    b.accessible("overview").await;

    // Run a bot with input and watch its task finish live (no reload).
    b.goto(&format!("{base}/ui/#/bots/hello")).await;
    b.type_into("#run-input", r#"{"name": "Console"}"#).await;
    b.click("#run").await;
    b.wait_text("main h1", "succeeded").await;
    b.wait_text("main", "Hello, Console!").await;
    b.shot("task-succeeded").await;
    b.accessible("task detail").await;

    // A failed task, opened and retried.
    let (code, failed) = call(
        "POST",
        &format!("{base}/v1/tasks"),
        ADMIN,
        Some(json!({"bot": "broken", "input": {}, "max_attempts": 1})),
    )
    .await;
    assert_eq!(code, 202, "{failed}");
    let id = failed["id"].as_str().unwrap().to_string();
    let before = wait_task(&base, &id, |t| {
        t["status"] == "dead" || t["status"] == "failed"
    })
    .await;
    b.goto(&format!("{base}/ui/#/tasks/{id}")).await;
    b.wait_text("#task-error", "OC-").await;
    b.shot("task-failed").await;
    b.click("#retry").await;
    let again = wait_task(&base, &id, |t| {
        (t["status"] == "dead" || t["status"] == "failed")
            && t["finished_at"] != before["finished_at"]
    })
    .await;
    assert!(again["error"]["code"].is_string(), "{again}");

    // A conversation handed off by the FAQ bot, taken over and answered from the console.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{listen}/v1/ws?bot=faq-bot&user=dana"),
    )
    .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {operator}").parse().unwrap(),
    );
    let (mut ws, _): (Ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(frame_of(&mut ws, "session").await["type"], "session");
    say(&mut ws, "q1", "Can I pay with seashells?").await;
    let reply = frame_of(&mut ws, "reply").await;
    assert!(reply["data"]["handoff"].is_string(), "{reply}");
    b.goto(&format!("{base}/ui/#/conversations")).await;
    b.wait_text("main", "seashells").await;
    b.click("main table a").await;
    b.click("#take").await;
    assert_eq!(frame_of(&mut ws, "agent").await["event"], "joined");
    b.type_into("#agent-text", "Yes, seashells are fine.").await;
    b.click("#send").await;
    let agent = frame_of(&mut ws, "message").await;
    assert_eq!(agent["role"], "agent");
    assert_eq!(agent["text"], "Yes, seashells are fine.");
    // While the agent holds it, the user's messages reach the agent, not the bot.
    say(&mut ws, "q2", "Great, how many?").await;
    let held = frame_of(&mut ws, "held").await;
    assert_eq!(held["id"], "q2");
    b.wait_text("#history", "Great, how many?").await;
    b.shot("conversation").await;
    b.accessible("conversation").await;
    b.click("#release").await;
    assert_eq!(frame_of(&mut ws, "agent").await["event"], "left");
    say(&mut ws, "q3", "How long does a refund take?").await;
    let back = frame_of(&mut ws, "reply").await;
    assert!(
        back["text"]
            .as_str()
            .unwrap()
            .contains("3 to 5 business days"),
        "the bot answers again once handed back: {back}"
    );

    // An approval, approved in the inbox.
    let (code, order) = call(
        "POST",
        &format!("{base}/v1/tasks"),
        ADMIN,
        Some(json!({"bot": "order-flow", "input": {"order": "O-UI-1", "items": [{"sku": "A-101", "qty": 1}]}})),
    )
    .await;
    assert_eq!(code, 202, "{order}");
    let order_id = order["id"].as_str().unwrap().to_string();
    wait_task(&base, &order_id, |t| t["status"] == "waiting").await;
    b.goto(&format!("{base}/ui/#/approvals")).await;
    b.wait_text("main", "O-UI-1").await;
    b.shot("approvals").await;
    b.accessible("approvals").await;
    b.click("main button.primary").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = call(
            "GET",
            &format!("{base}/v1/approvals?task={order_id}"),
            ADMIN,
            None,
        )
        .await;
        let a = &list["items"][0];
        if a["status"] == "done" && a["output"]["approved"] == true {
            assert_eq!(a["decisions"][0]["by"], "config", "{a}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the approval was not recorded: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The console in Chinese, and back.
    let lang = |l: &str| {
        format!("const s = document.getElementById('lang'); s.value = '{l}'; s.dispatchEvent(new Event('change')); return 0")
    };
    b.js(&lang("zh")).await;
    b.wait_text("nav", "概览").await;
    b.wait_text("main h1", "审批").await;
    b.shot("approvals-zh").await;
    b.js(&lang("en")).await;
    b.wait_text("nav", "Overview").await;
    // The chat page: the widget inline, under the console's Content-Security-Policy.
    b.goto(&format!("{base}/ui/#/chat/faq-bot")).await;
    b.wait_text("#chat-box .ocw-state", "Connected").await;
    b.type_into("#chat-box input", "How long does a refund take?")
        .await;
    b.click("#chat-box button").await;
    b.wait_text("#chat-box .ocw-bot", "business days").await;
    b.shot("chat").await;
    b.accessible("chat").await;
    for page in ["tasks", "bots", "knowledge", "audit"] {
        b.goto(&format!("{base}/ui/#/{page}")).await;
        b.wait_text("main h1", "").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.accessible(page).await;
    }
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");

    // A viewer sees no action, and the API refuses the action anyway.
    b.click("#signout").await;
    b.type_into("#token", &viewer).await;
    b.click("#signin").await;
    b.wait_text("#who", "viewer").await;
    b.goto(&format!("{base}/ui/#/tasks/{id}")).await;
    b.wait_text("#viewer-note", "read-only").await;
    b.wait_text("main h1", &id).await;
    assert_eq!(b.count("#retry").await, 0, "a viewer sees no retry button");
    b.goto(&format!("{base}/ui/#/bots/hello")).await;
    b.wait_text("main h1", "hello").await;
    assert_eq!(b.count("#run").await, 0, "a viewer sees no run form");
    b.shot("viewer").await;
    let (code, refused) = call(
        "POST",
        &format!("{base}/v1/tasks/{id}/retry"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(code, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "OC-2027");

    // The widget on a plain page of another origin: a streamed answer from the model.
    let page = site(&base, &operator).await;
    b.goto(&page).await;
    b.click(".ocw-launch").await;
    b.wait_text(".ocw-state", "Connected").await;
    b.type_into(".ocw input", "Say hello.").await;
    b.click(".ocw button").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.count(".ocw-bot").await == 0 || b.count(".ocw-pending").await > 0 {
        assert!(Instant::now() < deadline, "no answer in the widget");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = b.wait_text(".ocw-bot", "").await;
    let deltas = b.js("return window.OclawWebChat.current.deltas").await;
    assert!(
        deltas.as_u64().unwrap() > 0,
        "the answer came as delta frames"
    );
    b.shot("webchat").await;
    b.accessible("webchat page").await;

    // The node restarts: the widget waits to reconnect, keeps what is typed meanwhile, and
    // sends it on the same session when the node is back.
    let session = b.js("return window.OclawWebChat.current.session").await;
    node.terminate();
    b.wait_text(".ocw-state", "Waiting to reconnect").await;
    b.type_into(".ocw input", "Are you back?").await;
    b.click(".ocw button").await;
    assert_eq!(
        b.js("return window.OclawWebChat.current.outbox").await,
        json!(1)
    );
    let _node = common::start_process(dir.path(), &config, &serve, &storage);
    b.wait_text(".ocw-state", "Connected").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.count(".ocw-bot").await < 2 {
        assert!(Instant::now() < deadline, "no answer after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        b.js("return window.OclawWebChat.current.outbox").await,
        json!(0)
    );
    assert_eq!(
        b.js("return window.OclawWebChat.current.session").await,
        session,
        "the same session resumes"
    );
    b.shot("webchat-reconnected").await;
    assert!(!answer.is_empty());
    // Only the outage itself may show in the console (refused connections while it was down).
    let errors: Vec<String> = b
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("ERR_CONNECTION_REFUSED") && !e.contains("WebSocket connection"))
        .collect();
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
}

/// The console's numbers (not a test: run it with
/// `cargo test --release -p oclaw --test console -- --ignored --nocapture console_benchmark`):
/// the gzipped size of the first load, the time from navigation to the overview drawn, and the
/// tasks page over 1,000,000 tasks (first page and next page, through the API and in the
/// browser). Prints; asserts nothing about time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run by hand"]
async fn console_benchmark() {
    let root = common::workspace_root();
    let axe = std::fs::read_to_string(
        root.join("crates/oclaw/tests/fixtures/axe/node_modules/axe-core/axe.min.js"),
    )
    .unwrap_or_default();
    let Some(b) = Browser::start(axe).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), "");
    let base = node.url.clone();
    let c = http();
    // First load: the page, its script, its style and session.json, as a browser fetches them
    // (Accept-Encoding: gzip; the bytes on the wire), beside their size unpacked.
    let fetch = |f: &'static str, gzip: bool| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let mut r = c.get(format!("{base}/ui/{f}"));
            if gzip {
                r = r.header("accept-encoding", "gzip");
            }
            r.send().await.unwrap().bytes().await.unwrap().len()
        }
    };
    let (mut raw, mut wire) = (0, 0);
    for f in ["", "app.js", "app.css", "session.json"] {
        raw += fetch(f, false).await;
        wire += fetch(f, true).await;
    }
    println!(
        "first load: {wire} bytes gzipped on the wire ({raw} unpacked); webchat.js {} gzipped ({} unpacked)",
        fetch("webchat.js", true).await,
        fetch("webchat.js", false).await
    );
    // Navigation to the overview drawn (performance marks of the page: the frame, then the node's
    // data from the live stream), median of 5 loads.
    let (mut drawn, mut live) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        b.goto("about:blank").await;
        b.goto(&format!("{base}/ui/")).await;
        b.wait_text("main", "Ready").await;
        let ms = b
            .js("return [performance.getEntriesByName('oclaw:overview')[0].startTime, performance.getEntriesByName('oclaw:overview-live')[0].startTime]")
            .await;
        drawn.push(ms[0].as_f64().unwrap());
        live.push(ms[1].as_f64().unwrap());
    }
    drawn.sort_by(f64::total_cmp);
    live.sort_by(f64::total_cmp);
    println!(
        "navigation → overview drawn: median {:.0} ms, with the node's data {:.0} ms (drawn {drawn:.0?}, data {live:.0?})",
        drawn[2], live[2]
    );
    // 1,000,000 tasks (scheduled far ahead, so they stay in the store), 1,000 per batch.
    let n: usize = std::env::var("OCLAW_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    for i in 0..n.div_ceil(1000) {
        let tasks: Vec<Value> = (0..1000)
            .map(|j| json!({"bot": "hello", "input": {"name": format!("n{i}-{j}")}, "run_at": "2099-01-01T00:00:00Z"}))
            .collect();
        let r = c
            .post(format!("{base}/v1/tasks/batch"))
            .json(&json!({"tasks": tasks}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    println!(
        "stored {n} tasks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // One page of tasks through the API: milliseconds, and the page.
    let timed = |query: String| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let t0 = Instant::now();
            let page: Value = c
                .get(format!("{base}/v1/tasks?{query}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (t0.elapsed().as_secs_f64() * 1000.0, page)
        }
    };
    let mut first = Vec::new();
    let mut next = Vec::new();
    for _ in 0..20 {
        let (ms, page) = timed("limit=50".into()).await;
        first.push(ms);
        let cursor = page["next_cursor"].as_str().unwrap().to_string();
        next.push(timed(format!("limit=50&cursor={cursor}")).await.0);
    }
    first.sort_by(f64::total_cmp);
    next.sort_by(f64::total_cmp);
    println!(
        "GET /v1/tasks over {n} tasks: first page median {:.2} ms p95 {:.2} ms; next page median {:.2} ms p95 {:.2} ms",
        first[10], first[18], next[10], next[18]
    );
    // In the browser: the tasks page drawn after navigating to it, then the next page.
    b.goto(&format!("{base}/ui/#/overview")).await;
    b.wait_text("#signals", "").await;
    let mark_after = |since: f64| {
        let b = &b;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let marks = b
                    .js("return performance.getEntriesByName('oclaw:tasks').map(e => e.startTime)")
                    .await;
                if let Some(m) = marks
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_f64)
                    .find(|m| *m > since)
                {
                    return m - since;
                }
                assert!(Instant::now() < deadline, "the tasks page was never drawn");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let t0 = b
        .js("const t = performance.now(); location.hash = '#/tasks'; return t")
        .await
        .as_f64()
        .unwrap();
    let first_ms = mark_after(t0).await;
    let t1 = b
        .js("const t = performance.now(); document.getElementById('next-page').click(); return t")
        .await
        .as_f64()
        .unwrap();
    let next_ms = mark_after(t1).await;
    println!("in the browser over {n} tasks: tasks page drawn {first_ms:.0} ms after navigating to it, next page {next_ms:.0} ms after its click");
}

/// The conversation routes belong to the conversation's tenant and need the operator role; the
/// audit log names the agent. The WebSocket takes its token as a subprotocol (browsers cannot
/// set headers on one). Cross-origin reads: preflights answered, answers readable from another
/// origin only for requests that carried a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_belong_to_their_tenant_and_the_operator_role() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &format!("api: {{tokens: [\"{ADMIN}\"]}}\n"));
    let base = node.url.clone();
    let token = |tenant: &'static str, role: &'static str, name: &'static str| {
        let base = base.clone();
        async move {
            let (code, t) = call(
                "POST",
                &format!("{base}/v1/tokens"),
                ADMIN,
                Some(json!({"tenant": tenant, "role": role, "name": name})),
            )
            .await;
            assert_eq!(code, 201, "{t}");
            t["token"].as_str().unwrap().to_string()
        }
    };
    let agent = token("default", "operator", "ana").await;
    let viewer = token("default", "viewer", "vic").await;
    let other = token("acme", "operator", "mallory").await;

    // A chat through the subprotocol token; an unknown question is handed off.
    let ws_url = format!("{}/v1/ws?bot=faq-bot", base.replace("http://", "ws://"));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("oclaw, oclaw.bearer.{agent}").parse().unwrap(),
    );
    let (mut ws, answer): (Ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(answer.headers()["sec-websocket-protocol"], "oclaw");
    frame_of(&mut ws, "session").await;
    say(&mut ws, "q1", "Do you ship to the moon?").await;
    assert!(frame_of(&mut ws, "reply").await["data"]["handoff"].is_string());
    let mut bad = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .unwrap();
    bad.headers_mut().insert(
        "sec-websocket-protocol",
        "oclaw, oclaw.bearer.oct_0000".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a bad subprotocol token must be refused: {other:?}"),
    }

    let (_, list) = call("GET", &format!("{base}/v1/conversations"), &agent, None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let at = |what: &str| format!("{base}/v1/conversations/{id}{what}");
    // Another tenant: nothing listed, and the id does not exist for it.
    let (_, theirs) = call("GET", &format!("{base}/v1/conversations"), &other, None).await;
    assert_eq!(theirs["items"], json!([]), "{theirs}");
    for (method, path) in [("GET", ""), ("POST", "/take"), ("POST", "/release")] {
        let (code, body) = call(method, &at(path), &other, None).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (404, Some("OC-2032")),
            "{path}: {body}"
        );
        assert!(!body.to_string().contains("moon"), "{body}");
    }
    // A viewer reads but does not take over.
    let (code, _) = call("GET", &at(""), &viewer, None).await;
    assert_eq!(code, 200);
    let (code, body) = call("POST", &at("/take"), &viewer, None).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("OC-2027")),
        "{body}"
    );
    // The operator takes over and answers as themselves, and the audit log says so.
    let (code, taken) = call("POST", &at("/take"), &agent, None).await;
    assert_eq!(
        (code, taken["agent"].as_str()),
        (200, Some("ana")),
        "{taken}"
    );
    assert_eq!(frame_of(&mut ws, "agent").await["agent"], "ana");
    let (code, _) = call(
        "POST",
        &at("/messages"),
        &agent,
        Some(json!({"text": "Not yet!"})),
    )
    .await;
    assert_eq!(code, 200);
    let m = frame_of(&mut ws, "message").await;
    assert_eq!(
        (m["text"].as_str(), m["by"].as_str()),
        (Some("Not yet!"), Some("ana"))
    );
    let (_, audit) = call("GET", &format!("{base}/v1/audit?limit=1000"), ADMIN, None).await;
    let actions: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .unwrap_or_default()
                .contains("conversations")
        })
        .map(|e| {
            format!(
                "{} {} {}",
                e["action"].as_str().unwrap(),
                e["result"],
                e["tenant"]
            )
        })
        .collect();
    for expected in [
        "POST /v1/conversations/{id}/take \"404\" \"acme\"",
        "POST /v1/conversations/{id}/take \"200\" \"default\"",
        "POST /v1/conversations/{id}/messages \"200\" \"default\"",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }

    // Cross-origin: a preflight is answered; an answer is readable elsewhere only with a token.
    let c = http();
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/tasks/T1"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    let with = c
        .get(format!("{base}/v1/bots"))
        .header("origin", "https://shop.example")
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(with.headers()["access-control-allow-origin"], "*");
    let open = tempfile::tempdir().unwrap();
    let loopback = common::start(open.path(), "");
    let without = c
        .get(format!("{}/v1/bots", loopback.url))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        without.status(),
        200,
        "the loopback node serves its local user"
    );
    assert!(
        without
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "another site's page must not read what a tokenless loopback node answers"
    );
}
