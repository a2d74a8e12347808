//! The kubernetes driver applying the seed's cluster through `kube` — against a stand-in API
//! server written here (no Kubernetes API server can run on our machines): it records every
//! request and answers like the API server does for server-side apply, list and delete. What it
//! checks is what the driver sends; what a real API server does with it is not exercised.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    content_type: String,
    authorization: String,
    body: String,
}

/// A deployment of this cluster the file no longer has (its component is deployed): pruned.
fn stale(name: &str, component: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name,
        "namespace": "oclaw-system", "labels": {"app.kubernetes.io/managed-by": "oclaw",
        "app.kubernetes.io/instance": "production-cluster", "app.kubernetes.io/component": component}}})
}

fn answer(req: &Request) -> (u16, String) {
    let path = req.target.split('?').next().unwrap_or("");
    match req.method.as_str() {
        // Server-side apply answers the object as applied.
        "PATCH" => (200, req.body.clone()),
        "DELETE" => {
            let name = path.rsplit('/').next().unwrap_or("");
            (200, stale(name, "worker").to_string())
        }
        "GET" if path.contains("monitoring.coreos.com") => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                "reason": "NotFound", "message": "the server could not find the requested resource"})
            .to_string(),
        ),
        "GET" if path.ends_with("/deployments") => (
            200,
            json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "7"},
                "items": [stale("oclaw-retired-worker", "worker"), stale("api-server", "api-server")]})
            .to_string(),
        ),
        "GET" => (
            200,
            json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"}, "items": []})
                .to_string(),
        ),
        _ => (405, "{}".to_string()),
    }
}

/// Starts the stand-in on a free port; answers its URL and the recorded requests.
async fn stand_in() -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Request>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let target = parts.next().unwrap_or("").to_string();
                    let (mut length, mut content_type, mut authorization) =
                        (0usize, String::new(), String::new());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "content-type" => content_type = v.trim().to_string(),
                            "authorization" => authorization = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let req = Request {
                        method,
                        target,
                        content_type,
                        authorization,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let (status, text) = answer(&req);
                    log.lock().unwrap().push(req);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/production.yaml"),
        oclaw_cluster::model::SEED_EXAMPLE,
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_core_applies_server_side_and_prunes_against_a_stand_in_api_server() {
    let (url, seen) = stand_in().await;
    let dir = seed_dir();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: stand-in, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: ops, user: {{token: s3cret-token}}}}]\ncontexts: [{{name: ops, context: {{cluster: stand-in, user: ops}}}}]\ncurrent-context: ops\n"
        ),
    )
    .unwrap();
    let args = [
        "deploy",
        "core",
        "--components",
        "[api-server,worker,scheduler]",
        "--ha-mode",
        "true",
        "--driver",
        "kubernetes",
        "--config",
        "config/production.yaml",
    ];
    let rendered = common::oclaw()
        .args(args)
        .args(["--dry-run", "-o", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let rendered: Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let objects = rendered["items"].as_array().unwrap().len();

    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        common::oclaw()
            .args(args)
            .current_dir(&dir_path)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{objects} objects applied, 1 pruned")),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));

    let seen = seen.lock().unwrap().clone();
    let patches: Vec<&Request> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), objects, "{seen:#?}");
    for p in &patches {
        assert!(
            p.target.contains("fieldManager=oclaw") && p.target.contains("force=true"),
            "{p:?}"
        );
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{p:?}");
        assert_eq!(p.authorization, "Bearer s3cret-token");
        let body: Value = serde_json::from_str(&p.body).unwrap();
        assert!(
            body["kind"].is_string() && body["metadata"]["name"].is_string(),
            "{p:?}"
        );
    }
    let targets: Vec<&str> = patches
        .iter()
        .map(|p| p.target.split('?').next().unwrap())
        .collect();
    assert_eq!(
        targets[0], "/api/v1/namespaces/oclaw-system",
        "the namespace comes first"
    );
    for expected in [
        "/apis/apps/v1/namespaces/oclaw-system/deployments/api-server",
        "/apis/autoscaling/v2/namespaces/oclaw-system/horizontalpodautoscalers/worker-hpa",
        "/apis/policy/v1/namespaces/oclaw-system/poddisruptionbudgets/api-server",
        "/api/v1/namespaces/oclaw-system/configmaps/oclaw-config",
        "/apis/monitoring.coreos.com/v1/namespaces/oclaw-system/prometheusrules/oclaw-alerts",
    ] {
        assert!(
            targets.contains(&expected),
            "{expected} not applied: {targets:#?}"
        );
    }
    // Pruned: the retired deployment, not the current one; kinds the server lacks are skipped.
    let deletes: Vec<&str> = seen
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(deletes[0]
        .starts_with("/apis/apps/v1/namespaces/oclaw-system/deployments/oclaw-retired-worker"));
    let list = seen
        .iter()
        .find(|r| r.method == "GET" && r.target.contains("/deployments?"))
        .unwrap();
    assert!(
        list.target
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Doclaw"),
        "{list:?}"
    );
}

#[test]
fn without_an_api_server_configured_the_driver_says_so() {
    let dir = seed_dir();
    let out = common::oclaw()
        .args([
            "init",
            "--config",
            "config/production.yaml",
            "--driver",
            "kubernetes",
        ])
        .current_dir(dir.path())
        .env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OC-5002") && stderr.contains("--dry-run"),
        "{stderr}"
    );
}
