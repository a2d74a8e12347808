//! Two tenants on one real node: every route tried with the other tenant's ids, tokens,
//! approvals, events and knowledge answers 404 (or 403 for a missing role) and leaks nothing;
//! a viewer changes nothing; a revoked token stops at once (on every api-server of a
//! PostgreSQL cluster); the audit chain tells an edited entry; templates cannot read the
//! node's settings.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{oclaw, start_process, start_process_env, Node};
use oclaw_store::testing::fresh_postgres_url;
use serde_json::{json, Value};

const BOOT: &str = "boot-admin-token-4f1c9a7e";
/// A globex bot that tries to start acme's bot, by enqueueing it and by calling it.
const SNEAK: &str = r#"
  - metadata: {name: sneak-enqueue, tenant: globex}
    spec:
      steps:
        - {id: go, uses: task.enqueue, with: {bot: acme-flow, input: {k: 99}}}
  - metadata: {name: sneak-call, tenant: globex}
    spec:
      retry: {max_attempts: 1}
      steps:
        - {id: go, uses: bot.call, with: {bot: acme-flow, input: {k: 98}}}"#;
const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const SECRET: &str = "acme-s3cr3t-value";

fn config() -> String {
    let flow = |name: &str, tenant: &str| {
        format!(
            r#"
  - metadata: {{name: {name}, tenant: {tenant}}}
    spec:
      steps:
        - id: approval
          approval: {{message: "ship {{{{ input.k }}}}?", timeout: 1h, on_timeout: reject}}
        - id: parcel
          wait: {{event: parcel, key: "{{{{ input.k }}}}", timeout: 1h}}
        - id: done
          uses: template
          with: {{value: {{env: "{{{{ env | tojson }}}}", approved: "{{{{ steps.approval.output.approved }}}}", secret: "{{{{ secrets.API_KEY | default('none') | length }}}}"}}}}"#
        )
    };
    format!(
        "api:\n  tokens: [{BOOT}]\ntemplates:\n  env: [OCLAW_STORAGE__URL, OCLAW_API__TOKENS, TEAM_COLOR]\nbots:{}{}{SNEAK}\n",
        flow("acme-flow", "acme"),
        flow("globex-flow", "globex")
    )
}

struct Api {
    c: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .c
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn token(&self, tenant: &str, role: &str) -> (String, String) {
        let (code, t) = self
            .call(
                BOOT,
                "POST",
                "/v1/tokens",
                Some(json!({"tenant": tenant, "role": role, "name": format!("{tenant} {role}")})),
            )
            .await;
        assert_eq!(code, 201, "{t}");
        assert_eq!(t["tenant"], tenant);
        (
            t["id"].as_str().unwrap().into(),
            t["token"].as_str().unwrap().into(),
        )
    }

    async fn until(&self, token: &str, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, t) = self
                .call(token, "GET", &format!("/v1/tasks/{id}"), None)
                .await;
            if code == 200 && t["status"] == status {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_objects_do_not_exist_roles_hold_and_the_audit_log_tells_who_did_what() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("oclaw.db").display());
    let mut node: Node = start_process_env(
        dir.path(),
        &config(),
        &["serve", "--listen", "127.0.0.1:0"],
        &storage,
        &[("TEAM_COLOR", "teal"), ("OCLAW_SECRETS__KEY", KEY)],
    );
    let api = Api {
        c: common::client(),
        base: node.url.clone(),
    };
    let (a_op_id, a_op) = api.token("acme", "operator").await;
    let (_, a_view) = api.token("acme", "viewer").await;
    let (_, g_op) = api.token("globex", "operator").await;
    let (_, g_dev) = api.token("globex", "developer").await;
    let (_, a_dev) = api.token("acme", "developer").await;
    let secrets = [BOOT, &a_op, &a_view, &g_op, &g_dev, &a_dev, SECRET, KEY];

    // Secrets: set by a developer of the tenant, listed by name only, sealed in the store.
    let (code, e) = api
        .call(
            &a_op,
            "PUT",
            "/v1/secrets/API_KEY",
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (403, "OC-2027"), "{e}");
    let (code, r) = api
        .call(
            &a_dev,
            "PUT",
            "/v1/secrets/API_KEY",
            Some(json!({"value": SECRET})),
        )
        .await;
    assert_eq!(code, 201, "{r}");
    let (code, r) = api
        .call(
            &a_dev,
            "PUT",
            "/v1/secrets/bad-name",
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(code, 400, "{r}");
    let (_, listed) = api.call(&a_view, "GET", "/v1/secrets", None).await;
    assert_eq!(listed["items"][0]["name"], "API_KEY", "{listed}");
    assert!(!listed.to_string().contains(SECRET), "{listed}");
    let (_, other) = api.call(&g_op, "GET", "/v1/secrets", None).await;
    assert_eq!(other["items"], json!([]), "{other}");
    let (code, e) = api
        .call(&g_dev, "DELETE", "/v1/secrets/API_KEY", None)
        .await;
    assert_eq!(
        (code, code_of(&e)),
        (404, "OC-2031"),
        "another tenant's secret does not exist: {e}"
    );

    // Tokens are an admin's business.
    let (code, e) = api
        .call(
            &a_op,
            "POST",
            "/v1/tokens",
            Some(json!({"tenant": "acme", "role": "admin"})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (403, "OC-2027"), "{e}");
    let (code, e) = api.call(&a_op, "GET", "/v1/tokens", None).await;
    assert_eq!(code, 403, "{e}");
    let (code, e) = api.call("oct_forged", "GET", "/v1/tasks", None).await;
    assert_eq!((code, code_of(&e)), (401, "OC-2008"), "{e}");

    // Bots: each tenant sees its own; the other's is as unknown as one that does not exist.
    let (_, bots) = api.call(&g_op, "GET", "/v1/bots", None).await;
    let names: Vec<&str> = bots["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["globex-flow", "sneak-call", "sneak-enqueue"]);
    let (code, e) = api.call(&g_op, "GET", "/v1/bots/acme-flow", None).await;
    assert_eq!((code, code_of(&e)), (404, "OC-2003"));
    let (code, e) = api
        .call(
            &g_op,
            "POST",
            "/v1/tasks",
            Some(json!({"bot": "acme-flow", "input": {"k": 1}})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (404, "OC-2003"));
    // Only the caller's own words come back: the bots it may know, no tenant of another.
    assert_eq!(
        e["error"]["details"]["known"],
        json!(["globex-flow", "sneak-call", "sneak-enqueue"]),
        "{e}"
    );
    assert!(!e.to_string().contains("\"acme\""), "{e}");
    let (code, _) = api
        .call(
            &g_op,
            "POST",
            "/v1/bots/acme-flow/invoke?timeout=1s",
            Some(json!({"input": {}})),
        )
        .await;
    assert_eq!(code, 404);

    // A task of acme: invisible to globex on every task route.
    let (code, t) = api
        .call(
            &a_op,
            "POST",
            "/v1/tasks",
            Some(json!({"bot": "acme-flow", "input": {"k": 7}})),
        )
        .await;
    assert_eq!(code, 202, "{t}");
    assert_eq!(t["tenant"], "acme");
    let id = t["id"].as_str().unwrap().to_string();
    api.until(&a_op, &id, "waiting").await;
    for (method, path) in [
        ("GET", format!("/v1/tasks/{id}")),
        ("POST", format!("/v1/tasks/{id}/cancel")),
        ("POST", format!("/v1/tasks/{id}/retry")),
    ] {
        let (code, e) = api.call(&g_op, method, &path, None).await;
        assert_eq!(
            (code, code_of(&e)),
            (404, "OC-2004"),
            "{method} {path}: {e}"
        );
    }
    let (_, list) = api.call(&g_op, "GET", "/v1/tasks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (_, list) = api.call(&g_op, "GET", "/v1/tasks?tenant=acme", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "a tenant's token cannot name another tenant"
    );
    let (_, list) = api.call(BOOT, "GET", "/v1/tasks?tenant=acme", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "an admin sees every tenant"
    );

    // Approvals: globex neither sees nor decides acme's; acme's viewer cannot decide.
    let (_, approvals) = api.call(&g_op, "GET", "/v1/approvals", None).await;
    assert_eq!(
        approvals["items"].as_array().unwrap().len(),
        0,
        "{approvals}"
    );
    let (_, approvals) = api.call(&a_view, "GET", "/v1/approvals", None).await;
    let approval = approvals["items"][0]["id"].to_string();
    assert!(approval != "null", "{approvals}");
    let (code, e) = api
        .call(&g_op, "GET", &format!("/v1/approvals/{approval}"), None)
        .await;
    assert_eq!((code, code_of(&e)), (404, "OC-2018"));
    let (code, e) = api
        .call(
            &g_op,
            "POST",
            &format!("/v1/approvals/{approval}/approve"),
            Some(json!({"by": "mallory"})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (404, "OC-2018"), "{e}");
    let (code, e) = api
        .call(
            &a_view,
            "POST",
            &format!("/v1/approvals/{approval}/approve"),
            Some(json!({"by": "vic"})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (403, "OC-2027"), "{e}");
    let (code, e) = api
        .call(&a_view, "POST", &format!("/v1/tasks/{id}/cancel"), None)
        .await;
    assert_eq!(
        (code, code_of(&e)),
        (403, "OC-2027"),
        "a viewer changes nothing: {e}"
    );
    // A named token decides as itself: it cannot sign as someone else.
    let (code, e) = api
        .call(
            &a_op,
            "POST",
            &format!("/v1/approvals/{approval}/approve"),
            Some(json!({"by": "alice"})),
        )
        .await;
    assert_eq!((code, code_of(&e)), (403, "OC-2019"), "{e}");
    let (code, e) = api
        .call(
            &a_op,
            "POST",
            &format!("/v1/approvals/{approval}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["output"]["by"], "acme operator", "{e}");

    // Events: globex's event of the same name and key wakes nothing of acme's.
    api.until(&a_op, &id, "waiting").await;
    let (code, r) = api
        .call(
            &g_op,
            "POST",
            "/v1/events",
            Some(json!({"name": "parcel", "key": 7})),
        )
        .await;
    assert_eq!(code, 202, "{r}");
    assert_eq!(r["woke"], json!([]), "{r}");
    let (code, e) = api
        .call(
            &a_op,
            "POST",
            "/v1/events",
            Some(json!({"name": "par\u{1}cel", "key": 7})),
        )
        .await;
    assert_eq!(
        code, 400,
        "control characters in event names are refused: {e}"
    );
    let (_, r) = api
        .call(
            &a_op,
            "POST",
            "/v1/events",
            Some(json!({"name": "parcel", "key": 7})),
        )
        .await;
    assert_eq!(r["woke"], json!([id]), "{r}");
    let done = api.until(&a_op, &id, "succeeded").await;

    // Templates see only the variables allowed, never an OCLAW_ one.
    let env: Value = serde_json::from_str(done["output"]["env"].as_str().unwrap()).unwrap();
    assert_eq!(env, json!({"TEAM_COLOR": "teal"}), "{done}");
    assert_eq!(
        // (Its length: a task's output is stored in the clear, and this one must not hold it.)
        done["output"]["secret"],
        SECRET.len(),
        "the tenant's bots read its secrets: {done}"
    );

    // The same flow in globex: its own approval and event, and no acme secret.
    let (_, t) = api
        .call(
            &g_op,
            "POST",
            "/v1/tasks",
            Some(json!({"bot": "globex-flow", "input": {"k": 7}})),
        )
        .await;
    let gid = t["id"].as_str().unwrap().to_string();
    api.until(&g_op, &gid, "waiting").await;
    let (_, approvals) = api
        .call(&g_op, "GET", "/v1/approvals?status=pending", None)
        .await;
    let gapproval = approvals["items"][0]["id"].to_string();
    let (code, e) = api
        .call(
            &g_op,
            "POST",
            &format!("/v1/approvals/{gapproval}/approve"),
            Some(json!({"by": "globex operator"})),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    // globex's own event, sent before anything waited for it, was kept and resumes it at once.
    let gdone = api.until(&g_op, &gid, "succeeded").await;
    let parcel = gdone["waits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "event")
        .unwrap();
    assert_eq!(
        parcel["name"], "parcel",
        "the tenant's own name for its event: {parcel}"
    );
    assert_eq!(
        gdone["output"]["secret"], 4,
        "no acme secret for globex (`none`): {gdone}"
    );
    let out = done["output"].to_string();
    assert!(!out.contains("sqlite://") && !out.contains(BOOT), "{out}");

    // A bot cannot start another tenant's bot: an enqueued task fails before it runs, a call
    // finds no such bot.
    let (_, sneaked) = api
        .call(
            &g_op,
            "POST",
            "/v1/bots/sneak-enqueue/invoke?timeout=10s",
            Some(json!({"input": {}})),
        )
        .await;
    assert_eq!(sneaked["status"], "succeeded", "{sneaked}");
    let planted = sneaked["output"]["task_id"].as_str().unwrap().to_string();
    let failed = api.until(&g_op, &planted, "failed").await;
    assert_eq!(failed["tenant"], "globex", "{failed}");
    assert_eq!(failed["error"]["code"], "OC-4018", "{failed}");
    assert!(
        failed["checkpoints"].as_array().unwrap().is_empty(),
        "no step of acme's bot ran: {failed}"
    );
    let (_, called) = api
        .call(
            &g_op,
            "POST",
            "/v1/bots/sneak-call/invoke?timeout=10s",
            Some(json!({"input": {}})),
        )
        .await;
    assert_eq!(called["status"], "dead", "out of its one attempt: {called}");
    assert_eq!(called["error"]["code"], "OC-4018", "{called}");
    let (_, acme_tasks) = api
        .call(&a_view, "GET", "/v1/tasks?bot=acme-flow", None)
        .await;
    assert_eq!(
        acme_tasks["items"].as_array().unwrap().len(),
        1,
        "only acme's own task: {acme_tasks}"
    );

    // Knowledge: collections are per tenant; changing them needs the developer role.
    let (code, e) = api
        .call(&a_op, "POST", "/v1/kb", Some(json!({"name": "notes"})))
        .await;
    assert_eq!((code, code_of(&e)), (403, "OC-2027"), "{e}");
    let (code, e) = api
        .call(&g_dev, "POST", "/v1/kb", Some(json!({"name": "notes"})))
        .await;
    assert_eq!(code, 201, "{e}");
    let (code, e) = api.call(&a_op, "GET", "/v1/kb/notes", None).await;
    assert_eq!((code, code_of(&e)), (404, "OC-2022"));
    let (code, e) = api
        .call(&a_op, "GET", "/v1/kb/notes/search?q=x", None)
        .await;
    assert_eq!(code, 404, "{e}");
    let (_, kbs) = api.call(&a_view, "GET", "/v1/kb", None).await;
    assert_eq!(kbs["items"].as_array().unwrap().len(), 0, "{kbs}");

    // Revocation holds from the next request on.
    let (code, _) = api.call(&a_op, "GET", "/v1/tasks", None).await;
    assert_eq!(code, 200);
    let (code, r) = api
        .call(BOOT, "DELETE", &format!("/v1/tokens/{a_op_id}"), None)
        .await;
    assert_eq!(code, 200, "{r}");
    let (code, e) = api.call(&a_op, "GET", "/v1/tasks", None).await;
    assert_eq!((code, code_of(&e)), (401, "OC-2008"));
    let (code, e) = api.call(BOOT, "DELETE", "/v1/tokens/tok_nope", None).await;
    assert_eq!((code, code_of(&e)), (404, "OC-2028"));

    // The audit log: who did what, where, and how it ended; each tenant sees its own entries.
    let (_, log) = api.call(BOOT, "GET", "/v1/audit?limit=1000", None).await;
    let entries = log["items"].as_array().unwrap();
    let approve = entries
        .iter()
        .find(|e| e["action"] == "POST /v1/approvals/{id}/approve" && e["result"] == "200")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(approve["actor"], a_op_id.as_str());
    assert_eq!(approve["tenant"], "acme");
    assert_eq!(approve["source"], "127.0.0.1");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "POST /v1/approvals/{id}/approve"
                && e["result"] == "404"
                && e["tenant"] == "globex"),
        "refused attempts are recorded too: {log}"
    );
    assert!(entries
        .iter()
        .any(|e| e["action"] == "DELETE /v1/tokens/{id}"
            && e["actor"] == "config"
            && e["tenant"] == "acme"));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "POST /v1/kb" && e["tenant"] == "globex" && e["result"] == "201"));
    assert!(
        !entries.iter().any(|e| e["action"] == "POST /v1/tasks"),
        "runs are not changes"
    );
    let (_, own) = api.call(&g_op, "GET", "/v1/audit?tenant=acme", None).await;
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "globex"),
        "{own}"
    );

    let verify = |token: &str| {
        let out = oclaw()
            .args(["audit", "verify", "--server", &node.url, "--token", token])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = verify(BOOT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("audit log holds"), "{text}");
    // The CLI lists tokens without their secrets.
    let out = oclaw()
        .args(["token", "list", "--server", &node.url, "--token", BOOT])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("globex") && listed.contains("developer"),
        "{listed}"
    );
    assert!(!secrets.iter().any(|s| listed.contains(s)), "{listed}");

    let raw = std::fs::read(dir.path().join("oclaw.db")).unwrap();
    let wal = std::fs::read(dir.path().join("oclaw.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is sealed at rest"
        );
        for t in [&a_op, &g_dev] {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "tokens are kept hashed"
            );
        }
    }
    assert!(
        entries.iter().any(|e| e["action"] == "PUT /v1/secrets/{id}"
            && e["tenant"] == "acme"
            && e["result"] == "201"),
        "{log}"
    );

    // Someone with the database file edits an entry: verify names it.
    let edited = approve["id"].as_i64().unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("oclaw.db")).unwrap();
        db.execute(
            "UPDATE audit SET actor = 'someone-else' WHERE id = ?1",
            [edited],
        )
        .unwrap();
    }
    let (code, text) = verify(BOOT);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("entry {edited}")), "{text}");

    // No token ever reaches the log; the metrics name no tenant's token.
    node.terminate();
    let logs = node.logs();
    for s in secrets {
        assert!(!logs.contains(s), "a token is in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_at_once_on_every_api_server() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config();
    let one = start_process(
        dir.path(),
        &config,
        &["api-server", "--listen", "127.0.0.1:0"],
        &url,
    );
    let two = start_process(
        dir.path(),
        &config,
        &["api-server", "--listen", "127.0.0.1:0"],
        &url,
    );
    let a = Api {
        c: common::client(),
        base: one.url.clone(),
    };
    let b = Api {
        c: common::client(),
        base: two.url.clone(),
    };
    let (id, token) = a.token("acme", "viewer").await;
    for api in [&a, &b] {
        let (code, bots) = api.call(&token, "GET", "/v1/bots", None).await;
        assert_eq!(code, 200, "{bots}");
        assert_eq!(bots["items"].as_array().unwrap().len(), 1);
    }
    let (code, _) = a
        .call(BOOT, "DELETE", &format!("/v1/tokens/{id}"), None)
        .await;
    assert_eq!(code, 200);
    for api in [&b, &a] {
        let (code, e) = api.call(&token, "GET", "/v1/bots", None).await;
        assert_eq!((code, code_of(&e)), (401, "OC-2008"), "{e}");
    }
    // The audit chain is one across api-servers.
    let (code, _) = b
        .call(
            BOOT,
            "POST",
            "/v1/tokens",
            Some(json!({"tenant": "globex", "role": "viewer"})),
        )
        .await;
    assert_eq!(code, 201);
    let out = oclaw()
        .args(["audit", "verify", "--server", &b.base, "--token", BOOT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 entries"));
}

/// OIDC sign-in: a JWT of the configured issuer, for this audience, signed by a key of its JWKS,
/// acts with the tenant and role its claims name; a token that fails any of those is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_of_the_issuer_sign_in_with_their_tenant_and_role() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    let dir = tempfile::tempdir().unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let b64 = |b: &[u8]| {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, &x| (n << 8) | u32::from(x)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
        "x": b64(pair.public_key().as_ref())}]});
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let config = format!(
        "{}api:\n  oidc: {{issuer: \"https://id.example\", audience: oclaw, jwks_file: jwks.json, tenant_claim: team}}\n",
        config().replace(&format!("api:\n  tokens: [{BOOT}]\n"), "")
    );
    let node = common::start(dir.path(), &config);
    let api = Api {
        c: common::client(),
        base: node.url.clone(),
    };
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, der: &[u8], kid: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        encode(&h, &claims, &EncodingKey::from_ed_der(der)).unwrap()
    };
    let good = |team: &str, role: &str| json!({"iss": "https://id.example", "aud": "oclaw", "sub": "u-17", "exp": now + 600, "team": team, "role": role});

    let viewer = sign(good("acme", "viewer"), pkcs8.as_ref(), "k1");
    let (code, bots) = api.call(&viewer, "GET", "/v1/bots", None).await;
    assert_eq!(code, 200, "{bots}");
    let names: Vec<&str> = bots["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-flow"], "the team claim is the tenant");
    let (code, e) = api
        .call(
            &viewer,
            "POST",
            "/v1/tasks",
            Some(json!({"bot": "acme-flow"})),
        )
        .await;
    assert_eq!(
        (code, code_of(&e)),
        (403, "OC-2027"),
        "the role claim holds: {e}"
    );
    let operator = sign(good("globex", "operator"), pkcs8.as_ref(), "k1");
    let (code, t) = api
        .call(
            &operator,
            "POST",
            "/v1/tasks",
            Some(json!({"bot": "globex-flow", "input": {"k": 1}})),
        )
        .await;
    assert_eq!(code, 202, "{t}");
    assert_eq!(t["tenant"], "globex");

    let other = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let mut bad = vec![
        (
            "another key",
            sign(good("acme", "viewer"), other.as_ref(), "k1"),
        ),
        (
            "an unknown kid",
            sign(good("acme", "viewer"), pkcs8.as_ref(), "k9"),
        ),
        (
            "expired",
            sign(
                json!({"iss": "https://id.example", "aud": "oclaw", "sub": "u", "exp": now - 3600, "team": "acme", "role": "viewer"}),
                pkcs8.as_ref(),
                "k1",
            ),
        ),
        (
            "another audience",
            sign(
                json!({"iss": "https://id.example", "aud": "other", "sub": "u", "exp": now + 600, "team": "acme", "role": "viewer"}),
                pkcs8.as_ref(),
                "k1",
            ),
        ),
        (
            "another issuer",
            sign(
                json!({"iss": "https://evil.example", "aud": "oclaw", "sub": "u", "exp": now + 600, "team": "acme", "role": "viewer"}),
                pkcs8.as_ref(),
                "k1",
            ),
        ),
        (
            "no tenant",
            sign(
                json!({"iss": "https://id.example", "aud": "oclaw", "sub": "u", "exp": now + 600, "role": "viewer"}),
                pkcs8.as_ref(),
                "k1",
            ),
        ),
        (
            "an unknown role",
            sign(good("acme", "root"), pkcs8.as_ref(), "k1"),
        ),
    ];
    let hmac = encode(
        &Header::new(Algorithm::HS256),
        &good("acme", "admin"),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    bad.push(("HMAC-signed", hmac));
    for (what, token) in bad {
        let (code, e) = api.call(&token, "GET", "/v1/bots", None).await;
        assert_eq!((code, code_of(&e)), (401, "OC-2008"), "{what}: {e}");
    }
    // With OIDC configured, a caller without a token is not let in, even on loopback.
    let (code, _) = common::get(&common::client(), &format!("{}/v1/bots", node.url)).await;
    assert_eq!(code, 401);
}
