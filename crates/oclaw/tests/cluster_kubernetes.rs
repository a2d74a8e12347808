//! The kubernetes driver applying the seed's cluster through `kube` — against a stand-in API
//! server written here (no Kubernetes API server can run on our machines): it records every
//! request and answers like the API server does for server-side apply, list and delete. What it
//! checks is what the driver sends; what a real API server does with it is not exercised.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
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

/// The stand-in's objects, by collection path (`/apis/apps/v1/namespaces/ns/deployments`) and
/// name, and its stand-in for the Deployment controller: an applied Deployment gets a status
/// and pods at once — ready, unless their image is tagged `broken` (then they crash-loop).
#[derive(Default)]
struct Store {
    objects: std::collections::BTreeMap<(String, String), Value>,
    resource_version: u64,
}

/// `k=v`, `k!=v`, `!k` and `k` terms, comma-separated.
fn selected(o: &Value, selector: &str) -> bool {
    let labels = &o["metadata"]["labels"];
    selector.split(',').filter(|t| !t.is_empty()).all(|t| {
        if let Some((k, v)) = t.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = t.split_once('=') {
            labels[k].as_str() == Some(v)
        } else if let Some(k) = t.strip_prefix('!') {
            labels.get(k).is_none()
        } else {
            labels.get(t).is_some()
        }
    })
}

fn query(target: &str, key: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            url::form_urlencoded::parse(format!("x={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
    })
}

fn status(code: u16, reason: &str) -> (u16, String) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
            .to_string(),
    )
}

impl Store {
    fn put(&mut self, collection: &str, name: &str, mut o: Value) -> Value {
        self.resource_version += 1;
        let old_generation = self
            .objects
            .get(&(collection.to_string(), name.to_string()))
            .map(|old| {
                (
                    old["metadata"]["generation"].as_i64().unwrap_or(1),
                    old["spec"].clone(),
                )
            });
        let generation = match old_generation {
            Some((g, spec)) if spec == o["spec"] => g,
            Some((g, _)) => g + 1,
            None => 1,
        };
        // A field the applier leaves out keeps its value (the HPA's replicas), 1 at creation.
        if o["kind"] == "Deployment" && o["spec"].get("replicas").is_none() {
            let kept = self
                .objects
                .get(&(collection.to_string(), name.to_string()))
                .and_then(|old| old["spec"]["replicas"].as_u64())
                .unwrap_or(1);
            o["spec"]["replicas"] = json!(kept);
        }
        o["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        o["metadata"]["generation"] = json!(generation);
        if o["kind"] == "Deployment" {
            self.roll(collection, name, &mut o, generation);
        }
        self.objects
            .insert((collection.to_string(), name.to_string()), o.clone());
        if o["kind"] == "HorizontalPodAutoscaler" {
            self.autoscale(collection, &o);
        }
        o
    }

    /// The HPA controller, instantly: its target runs at least `minReplicas`.
    fn autoscale(&mut self, collection: &str, hpa: &Value) {
        let deployments = collection
            .replace("/autoscaling/v2/", "/apps/v1/")
            .replace("horizontalpodautoscalers", "deployments");
        let target = hpa["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1);
        let Some(mut d) = self
            .objects
            .get(&(deployments.clone(), target.clone()))
            .cloned()
        else {
            return;
        };
        if d["spec"]["replicas"].as_u64().unwrap_or(1) < min {
            d["spec"]["replicas"] = json!(min);
            self.put(&deployments, &target, d);
        }
    }

    /// The Deployment controller, instantly: old pods go, new ones come.
    fn roll(&mut self, collection: &str, name: &str, d: &mut Value, generation: i64) {
        let pods = collection
            .replace("/apis/apps/v1/", "/api/v1/")
            .replace("deployments", "pods");
        let template = d["spec"]["template"].clone();
        let replicas = d["spec"]["replicas"].as_u64().unwrap_or(1);
        let broken = template["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .contains("broken");
        let revision = template["metadata"]["labels"]["oclaw.dev/revision"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        self.objects
            .retain(|(c, n), _| !(c == &pods && n.starts_with(&format!("{name}-r"))));
        for i in 0..replicas {
            let pod_name = format!("{name}-r{revision}-{i}");
            let mut status = json!({"phase": "Running", "startTime": "2026-11-26T00:00:00Z",
                "conditions": [{"type": "Ready", "status": if broken { "False" } else { "True" }}],
                "containerStatuses": [{"name": name, "ready": !broken, "restartCount": 0, "state": {"running": {}}}]});
            if broken {
                status["containerStatuses"][0] = json!({"name": name, "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 2}}});
            }
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": "oclaw-system", "labels": template["metadata"]["labels"]},
                "spec": template["spec"], "status": status});
            self.objects.insert((pods.clone(), pod_name), pod);
        }
        let ready = if broken { 0 } else { replicas };
        d["status"] = json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": ready});
    }

    fn answer(&mut self, req: &Request) -> (u16, String) {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", ""));
        let list = |store: &Store, collection: &str| -> Vec<Value> {
            let selector = query(&req.target, "labelSelector").unwrap_or_default();
            store
                .objects
                .iter()
                .filter(|((c, _), o)| c == collection && selected(o, &selector))
                .map(|(_, o)| o.clone())
                .collect()
        };
        // `…/namespaces/<ns>/<plural>` and `/api/v1/namespaces` are collections.
        let is_collection = |p: &str| match p.split_once("/namespaces/") {
            None => true,
            Some((_, rest)) => rest.split('/').count() == 2,
        };
        match req.method.as_str() {
            "PATCH" if req.content_type == "application/merge-patch+json" => {
                let Some(mut o) = self.objects.get(&(parent.to_string(), last.to_string())).cloned() else {
                    return status(404, "NotFound");
                };
                let patch: Value = serde_json::from_str(&req.body).unwrap();
                for (k, v) in patch["metadata"]["annotations"].as_object().unwrap() {
                    o["metadata"]["annotations"][k] = v.clone();
                }
                (200, self.put(parent, last, o).to_string())
            }
            "PATCH" => {
                let body: Value = serde_json::from_str(&req.body).unwrap();
                (200, self.put(parent, last, body).to_string())
            }
            "POST" => {
                let body: Value = serde_json::from_str(&req.body).unwrap();
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                if self.objects.contains_key(&(path.clone(), name.clone())) {
                    return status(409, "AlreadyExists");
                }
                (201, self.put(&path, &name, body).to_string())
            }
            "GET" if is_collection(&path) => (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": self.resource_version.to_string()},
                    "items": list(self, &path)})
                .to_string(),
            ),
            // A pod's log: a crash-looping one logged its error, its previous run too.
            "GET" if last == "log" => {
                let (pods, pod) = parent.rsplit_once('/').unwrap();
                let Some(p) = self.objects.get(&(pods.to_string(), pod.to_string())) else {
                    return status(404, "NotFound");
                };
                let broken = p["status"]["containerStatuses"][0]["restartCount"] != 0;
                match (broken, query(&req.target, "previous").as_deref() == Some("true")) {
                    (false, true) => status(400, "BadRequest"),
                    (false, false) => (200, "{\"level\":\"INFO\",\"message\":\"node ready\"}\n".into()),
                    (true, _) => (200, "error[OC-1003]: unknown configuration key `wrker` (did you mean `worker`?)\n".into()),
                }
            }
            // The pod proxy to a pod's /metrics: tasks waiting 5 s on average; on pods whose
            // image is tagged `failing`, most tasks fail.
            "GET" if path.ends_with("/proxy/metrics") => {
                let pod = path.split("/pods/").nth(1).unwrap().split(':').next().unwrap();
                let Some(p) = self.objects.get(&(path.split("/pods/").next().unwrap().to_string() + "/pods", pod.to_string())) else {
                    return status(404, "NotFound");
                };
                let failing = p["spec"]["containers"][0]["image"].as_str().unwrap_or("").contains("failing");
                let (ok, failed) = if failing { (10, 40) } else { (50, 0) };
                (
                    200,
                    format!("oclaw_task_wait_seconds_sum 50\noclaw_task_wait_seconds_count 10\noclaw_queue_backlog{{queue=\"default\"}} 12\noclaw_tasks_total{{outcome=\"succeeded\"}} {ok}\noclaw_tasks_total{{outcome=\"failed\"}} {failed}\n"),
                )
            }
            "GET" => match self.objects.get(&(parent.to_string(), last.to_string())) {
                Some(o) => (200, o.to_string()),
                None => status(404, "NotFound"),
            },
            "DELETE" if is_collection(&path) => {
                let gone = list(self, &path);
                for o in &gone {
                    let name = o["metadata"]["name"].as_str().unwrap().to_string();
                    self.objects.remove(&(path.clone(), name));
                }
                (200, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": gone}).to_string())
            }
            "DELETE" => match self.objects.remove(&(parent.to_string(), last.to_string())) {
                // Garbage collection: a Deployment's pods go with it.
                Some(o) if o["kind"] == "Deployment" => {
                    let pods = parent.replace("/apis/apps/v1/", "/api/v1/").replace("deployments", "pods");
                    self.objects.retain(|(c, n), _| !(c == &pods && n.starts_with(&format!("{last}-r"))));
                    (200, o.to_string())
                }
                Some(o) => (200, o.to_string()),
                None => status(404, "NotFound"),
            },
            _ => status(405, "MethodNotAllowed"),
        }
    }
}

type Seen = Arc<Mutex<Vec<Request>>>;

/// Starts the stand-in on a free port; answers its URL, the recorded requests and its store.
async fn stand_in() -> (String, Seen, Arc<Mutex<Store>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Default::default();
    let store: Arc<Mutex<Store>> = Default::default();
    let (log, state) = (seen.clone(), store.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, state) = (log.clone(), state.clone());
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
                    let (status, text) = state.lock().unwrap().answer(&req);
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
    (url, seen, store)
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

/// Runs `oclaw` against the stand-in (off the runtime: the stand-in runs on it).
fn oclaw(
    dir: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> impl std::future::Future<Output = (Option<i32>, String, String)> {
    let (dir, kubeconfig) = (dir.to_path_buf(), kubeconfig.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    async move {
        let out = tokio::task::spawn_blocking(move || {
            common::oclaw()
                .args(&args)
                .current_dir(&dir)
                .env("KUBECONFIG", &kubeconfig)
                .env("OCLAW_DRIVER", "kubernetes")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The seed's cluster file at `version`, as `name` in `dir`.
fn cluster_file(dir: &Path, name: &str, version: &str) {
    let text = oclaw_cluster::model::SEED_EXAMPLE
        .replace("spec:\n", &format!("spec:\n  version: \"{version}\"\n"));
    std::fs::write(dir.join("config").join(name), text).unwrap();
}

fn history(text: &str) -> Vec<(u64, String, String, String)> {
    let list: Value = serde_json::from_str(text).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["action"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The pods' revisions, as the stand-in's controller made them.
fn pod_revisions(store: &Mutex<Store>) -> std::collections::BTreeSet<String> {
    store
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|((c, _), _)| c.ends_with("/pods"))
        .map(|(_, o)| {
            o["metadata"]["labels"]["oclaw.dev/revision"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// A stand-in API server and a folder with the seed's cluster file, versions of it and a
/// kubeconfig for the stand-in.
struct Setup {
    seen: Seen,
    store: Arc<Mutex<Store>>,
    dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

async fn setup() -> Setup {
    let (url, seen, store) = stand_in().await;
    let dir = seed_dir();
    for (file, version) in [
        ("v2.yaml", "2.0.0"),
        ("broken.yaml", "3.0.0-broken"),
        ("failing.yaml", "3.0.0-failing"),
    ] {
        cluster_file(dir.path(), file, version);
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: stand-in, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: ops, user: {{token: s3cret-token}}}}]\ncontexts: [{{name: ops, context: {{cluster: stand-in, user: ops}}}}]\ncurrent-context: ops\n"
        ),
    )
    .unwrap();
    Setup {
        seen,
        store,
        dir,
        kubeconfig,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_sequence_on_the_kubernetes_driver_against_a_stand_in_api_server() {
    let Setup {
        seen,
        store,
        dir,
        kubeconfig,
    } = setup().await;
    let d = dir.path();
    // A deployment of this cluster the file no longer has, left by an earlier deploy.
    store.lock().unwrap().put(
        "/apis/apps/v1/namespaces/oclaw-system/deployments",
        "oclaw-retired-worker",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "oclaw-retired-worker",
            "namespace": "oclaw-system", "labels": {"app.kubernetes.io/managed-by": "oclaw",
            "app.kubernetes.io/instance": "production-cluster", "app.kubernetes.io/component": "worker"}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"image": "old"}]}}}}),
    );
    let k = |args: &[&str]| oclaw(d, &kubeconfig, args);
    // `-o json`: progress on stderr, the result on stdout.
    let all_in = |file: &str, timeout: &str| {
        let args = [
            "upgrade",
            "--rollout-strategy",
            "all-in",
            "--confirm",
            "-o",
            "json",
        ];
        oclaw(
            d,
            &kubeconfig,
            &[&args[..], &["--config", file, "--timeout", timeout]].concat(),
        )
    };
    let mut printed = String::new();

    // init: the shared objects only.
    let (code, out, err) = k(&["init", "--config", "config/production.yaml"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    printed += &(out.clone() + &err);
    assert!(out.contains("next: oclaw deploy core"), "{out}");
    let kinds: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.target.clone())
        .collect();
    assert!(
        kinds
            .iter()
            .any(|t| t.starts_with("/api/v1/namespaces/oclaw-system/configmaps/oclaw-config")),
        "{kinds:#?}"
    );
    assert!(
        !kinds.iter().any(
            |t| t.contains("/deployments/") && !t.contains("/deployments/oclaw-rollout-guard?")
        ),
        "init deploys no component (only the shared rollout guard): {kinds:#?}"
    );

    // deploy core --wait: revision 1, every object applied server-side, the retired one pruned.
    let args = [
        "deploy",
        "core",
        "--components",
        "[api-server,worker,scheduler]",
        "--ha-mode",
        "true",
        "--config",
        "config/production.yaml",
    ];
    let (_, rendered, _) = oclaw(
        d,
        &kubeconfig,
        &[&args[..], &["--dry-run", "-o", "json"]].concat(),
    )
    .await;
    let rendered: Value = serde_json::from_str(&rendered).unwrap();
    let objects = rendered["items"].as_array().unwrap().len();
    seen.lock().unwrap().clear();
    let (code, out, err) = oclaw(d, &kubeconfig, &[&args[..], &["--wait"]].concat()).await;
    printed += &(out.clone() + &err);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("{objects} objects applied, 1 pruned")),
        "{out}"
    );
    assert!(
        out.contains("pruned Deployment oclaw-retired-worker"),
        "{out}"
    );
    assert!(out.contains("pods ready 8/8"), "{out}");
    {
        let seen = seen.lock().unwrap();
        let patches: Vec<&Request> = seen
            .iter()
            .filter(|r| r.method == "PATCH" && r.content_type != "application/merge-patch+json")
            .collect();
        assert_eq!(patches.len(), objects, "{seen:#?}");
        for p in &patches {
            assert!(
                p.target.contains("fieldManager=oclaw") && p.target.contains("force=true"),
                "{p:?}"
            );
            assert_eq!(p.content_type, "application/apply-patch+yaml", "{p:?}");
            assert_eq!(p.authorization, "Bearer s3cret-token");
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
            "/apis/monitoring.coreos.com/v1/namespaces/oclaw-system/prometheusrules/oclaw-alerts",
        ] {
            assert!(
                targets.contains(&expected),
                "{expected} not applied: {targets:#?}"
            );
        }
        let deletes: Vec<&str> = seen
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.target.split('?').next().unwrap())
            .collect();
        assert_eq!(
            deletes,
            ["/apis/apps/v1/namespaces/oclaw-system/deployments/oclaw-retired-worker"]
        );
        // The revision is recorded with create (a racing deploy gets a conflict), immutable.
        let post = seen.iter().find(|r| r.method == "POST").unwrap();
        assert_eq!(
            post.target.split('?').next().unwrap(),
            "/api/v1/namespaces/oclaw-system/configmaps"
        );
        let cm: Value = serde_json::from_str(&post.body).unwrap();
        assert_eq!(
            (cm["metadata"]["name"].as_str(), cm["immutable"].as_bool()),
            (Some("production-cluster-revision-1"), Some(true))
        );
    }
    assert_eq!(pod_revisions(&store), ["1".to_string()].into());

    // status: the pods from the API server.
    let (code, table, err) = k(&["status", "--namespace", "oclaw-system"]).await;
    assert_eq!(code, Some(0), "{err}");
    let pods: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(
        pods.len(),
        9,
        "8 component pods and the rollout guard: {table}"
    );
    assert!(
        pods.iter().any(|l| l.starts_with("oclaw-rollout-guard-")),
        "{table}"
    );
    assert!(
        pods.iter()
            .all(|l| l.contains("1/1") && l.contains("Running")),
        "{table}"
    );
    let (_, json_status, _) = k(&["status", "-o", "json"]).await;
    let s: Value = serde_json::from_str(&json_status).unwrap();
    assert_eq!(s["revision"], 1);
    assert_eq!(s["driver"], "kubernetes");
    let api = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api-server")
        .unwrap();
    assert_eq!(
        (api["desired"].as_u64(), api["ready"].as_u64()),
        (Some(3), Some(3))
    );

    // diagnose: Q3 reads an api-server's metrics through the API server's pod proxy.
    let (code, report, err) = k(&["diagnose"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        report.contains("Q1  pods that are not ready\n  none: 9 pods ready"),
        "{report}"
    );
    assert!(
        report.contains("mean wait before a task starts: 5.000s over 10 tasks")
            && report.contains("raise worker.concurrency"),
        "{report}"
    );
    assert!(seen.lock().unwrap().iter().any(|r| r
        .target
        .starts_with("/api/v1/namespaces/oclaw-system/pods/api-server-r1-0:8080/proxy/metrics")));
    let (code, log, _) = k(&["logs", "worker-r1-2"]).await;
    assert_eq!(code, Some(0));
    assert!(log.contains("node ready"), "{log}");
    let (code, _, err) = k(&["logs", "worker-r1-2", "--previous"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no previous log for pod worker-r1-2"), "{err}");
    assert!(
        err.contains("error[OC-5004]"),
        "a code that says what happened: {err}"
    );

    // check-upgrade reads the deployed revision and the pods from the API server.
    let this = env!("CARGO_PKG_VERSION");
    let (code, checks, _) = oclaw(
        d,
        &kubeconfig,
        &[
            "check-upgrade",
            "--from-version",
            this,
            "--to-version",
            "0.2.0",
        ],
    )
    .await;
    assert!(
        checks.contains(&format!("revision 1 runs {this}")) && checks.contains("9 pods ready"),
        "{checks}"
    );
    assert_eq!(code, Some(3), "another binary's schema warns: {checks}");

    // The HPA scales the workers up; an upgrade must not reset them to the floor.
    {
        let mut st = store.lock().unwrap();
        let key = (
            "/apis/apps/v1/namespaces/oclaw-system/deployments".to_string(),
            "worker".to_string(),
        );
        let mut w = st.objects[&key].clone();
        w["spec"]["replicas"] = json!(5);
        st.put(&key.0, &key.1, w);
    }

    // all-in upgrade to 2.0.0: revision 2, every pod replaced.
    let (code, out, err) = all_in("config/v2.yaml", "20").await;
    printed += &(out.clone() + &err);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(pod_revisions(&store), ["2".to_string()].into());
    assert!(err.contains("pods ready 10/10"), "5 workers kept: {err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            done["revision"].as_u64(),
            done["status"].as_str(),
            done["version"].as_str()
        ),
        (Some(2), Some("deployed"), Some("2.0.0")),
        "{out}"
    );
    assert!(
        done["applied"]
            .as_array()
            .unwrap()
            .contains(&json!("Deployment api-server")),
        "{out}"
    );

    // A revision whose pods never become ready: failed, and the one before comes back.
    let (code, out, err) = all_in("config/broken.yaml", "2").await;
    printed += &(out.clone() + &err);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("OC-5003") && err.contains("rolled back"),
        "{err}"
    );
    assert_eq!(pod_revisions(&store), ["4".to_string()].into());
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            done["revision"].as_u64(),
            done["status"].as_str(),
            done["rolled_back_to"].as_u64(),
            done["rollback_revision"].as_u64()
        ),
        (Some(3), Some("failed"), Some(2), Some(4)),
        "{out}"
    );

    // rollback to revision 1: a new revision with revision 1's file.
    let (code, out, err) = k(&["rollback", "--revision", "1"]).await;
    printed += &(out.clone() + &err);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (_, list, _) = k(&["upgrade", "history", "-o", "json"]).await;
    assert_eq!(
        history(&list),
        vec![
            (1, "deploy".into(), "superseded".into(), this.to_string()),
            (2, "upgrade".into(), "superseded".into(), "2.0.0".into()),
            (3, "upgrade".into(), "failed".into(), "3.0.0-broken".into()),
            (4, "rollback".into(), "superseded".into(), "2.0.0".into()),
            (5, "rollback".into(), "deployed".into(), this.to_string()),
        ]
    );
    let (_, table, _) = k(&["upgrade", "history"]).await;
    assert!(
        table.lines().next().unwrap().starts_with("REVISION"),
        "{table}"
    );
    assert_eq!(pod_revisions(&store), ["5".to_string()].into());
    let (code, _, err) = k(&["rollback", "--revision", "9"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no revision 9"), "{err}");

    // A bad revision deployed with --wait: not ready within --timeout, so the one before
    // comes back (revision 6 failed, revision 7 a copy of 5).
    let (code, out, err) = k(&[
        "deploy",
        "core",
        "--config",
        "config/broken.yaml",
        "--wait",
        "--timeout",
        "1",
    ])
    .await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("OC-5003") && err.contains("revision 6 did not become ready within 1s"),
        "{err}"
    );
    assert_eq!(pod_revisions(&store), ["7".to_string()].into());

    // A bad revision deployed without waiting: diagnose names the crash loop and its cause.
    let (code, out, err) = k(&["deploy", "core", "--config", "config/broken.yaml"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (_, report, _) = k(&["diagnose"]).await;
    assert!(
        report.contains("api-server-r8-0 (CrashLoopBackOff): Error (exit 2)")
            && report.contains("unknown configuration key `wrker`")
            && report.contains(
                "api-server-r8-0 restarted 3x, last: Error (exit 2) — it exited with an error"
            )
            && report.contains("no ready api-server to read metrics from"),
        "{report}"
    );
    let (code, checks, _) = k(&[
        "check-upgrade",
        "--from-version",
        "3.0.0",
        "--to-version",
        "3.1.0",
    ])
    .await;
    assert_eq!(code, Some(1), "{checks}");
    assert!(
        checks.contains("not ready: api-server-r8-0 (CrashLoopBackOff)"),
        "{checks}"
    );
    let (code, log, _) = k(&["logs", "api-server-r8-0", "--previous"]).await;
    assert_eq!(code, Some(0));
    assert!(log.contains("OC-1003"), "{log}");

    assert!(!printed.contains("s3cret"), "{printed}");
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

/// Deployments named `*-canary` in the stand-in, with their replicas.
fn canaries(store: &Mutex<Store>) -> Vec<(String, u64)> {
    store
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|((c, n), _)| c.ends_with("/deployments") && n.ends_with("-canary"))
        .map(|((_, n), o)| (n.clone(), o["spec"]["replicas"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_rollouts_on_the_kubernetes_driver_against_a_stand_in_api_server() {
    let Setup {
        store,
        dir,
        kubeconfig,
        ..
    } = setup().await;
    let d = dir.path();
    let k = |args: &[&str]| oclaw(d, &kubeconfig, args);
    let canary = |file: &str, timeout: &str| {
        let args = [
            "upgrade",
            "--rollout-strategy",
            "canary",
            "--canary-percent",
            "20",
            "--analysis-window",
            "1",
        ];
        oclaw(
            d,
            &kubeconfig,
            &[&args[..], &["--config", file, "--timeout", timeout]].concat(),
        )
    };
    let (code, out, err) = k(&[
        "deploy",
        "core",
        "--config",
        "config/production.yaml",
        "--wait",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");

    // A healthy canary: a share of each component beside it, analysed, paused.
    let (code, out, err) = canary("config/v2.yaml", "60").await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("Analyzing") && out.contains("Paused") && out.contains("promote it with"),
        "{out}"
    );
    assert_eq!(
        canaries(&store),
        vec![
            ("api-server-canary".to_string(), 1),
            ("scheduler-canary".to_string(), 1),
            ("worker-canary".to_string(), 1)
        ]
    );
    assert_eq!(
        pod_revisions(&store),
        ["1".to_string(), "2".to_string()].into()
    );
    let (_, table, _) = k(&["status"]).await;
    assert!(
        table.contains(
            "rollout: revision 2 (from 1) Paused, canary 20% — passed: 150 tasks, 0 failed"
        ),
        "{table}"
    );
    let (code, _, err) = canary("config/v2.yaml", "60").await;
    assert_eq!(code, Some(1));
    assert!(err.contains("already in a canary"), "{err}");

    // all-in --confirm promotes it: every pod on revision 2, the canary Deployments pruned.
    let (code, out, err) = k(&[
        "upgrade",
        "--rollout-strategy",
        "all-in",
        "--confirm",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains("Promoting") && err.contains("Succeeded"),
        "progress on stderr: {err}"
    );
    let rollout: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            rollout["status"]["phase"].as_str(),
            rollout["status"]["revision"].as_u64(),
            rollout["confirmed"].as_bool()
        ),
        (Some("Succeeded"), Some(2), Some(true)),
        "{out}"
    );
    assert!(canaries(&store).is_empty());
    assert_eq!(pod_revisions(&store), ["2".to_string()].into());

    // A canary whose tasks fail: aborted by its error rate, its Deployments deleted.
    let (code, out, err) = canary("config/failing.yaml", "60").await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("OC-5003") && err.contains("task error rate 80.0 %"),
        "{err}"
    );
    assert!(canaries(&store).is_empty());
    assert_eq!(pod_revisions(&store), ["2".to_string()].into());

    // A canary that never becomes ready: aborted when its timeout passes.
    let (code, _, err) = canary("config/broken.yaml", "3").await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did not finish within 3s"), "{err}");
    assert!(canaries(&store).is_empty());

    // A canary left paused: the rollout guard aborts it when its timeout passes, with no
    // `oclaw upgrade` running.
    let guard = {
        let (dir, kubeconfig) = (d.to_path_buf(), kubeconfig.clone());
        tokio::task::spawn_blocking(move || {
            common::oclaw()
                .args(["rollout-guard", "--every", "0.5"])
                .current_dir(&dir)
                .env("KUBECONFIG", &kubeconfig)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let (code, out, err) = canary("config/v2.yaml", "6").await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("Paused"), "{out}");
    assert_eq!(canaries(&store).len(), 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !canaries(&store).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the guard did not abort the canary"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = std::process::Command::new("kill")
        .arg(guard.id().to_string())
        .status();
    let guard_out = guard.wait_with_output().unwrap();
    let guard_log = String::from_utf8_lossy(&guard_out.stdout);
    assert!(
        guard_log.contains("rollout of revision 5: Aborted: the rollout did not finish within 6s"),
        "{guard_log}"
    );
    assert!(
        guard_out.status.success(),
        "SIGTERM stops the guard cleanly"
    );
    let (_, table, _) = k(&["status"]).await;
    assert!(!table.contains("rollout:"), "{table}");

    let (_, list, _) = k(&["upgrade", "history", "-o", "json"]).await;
    let this = env!("CARGO_PKG_VERSION");
    assert_eq!(
        history(&list),
        vec![
            (1, "deploy".into(), "superseded".into(), this.to_string()),
            (2, "upgrade".into(), "deployed".into(), "2.0.0".into()),
            (3, "upgrade".into(), "failed".into(), "3.0.0-failing".into()),
            (4, "upgrade".into(), "failed".into(), "3.0.0-broken".into()),
            (5, "upgrade".into(), "failed".into(), "2.0.0".into()),
        ]
    );

    // teardown: every object of the cluster goes; the namespace and the history stay.
    let (code, _, err) = k(&["teardown"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--confirm"), "{err}");
    let (code, out, err) = k(&["teardown", "--confirm"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let left: Vec<String> = store
        .lock()
        .unwrap()
        .objects
        .values()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        left,
        [
            "Namespace oclaw-system",
            "ConfigMap production-cluster-revision-1",
            "ConfigMap production-cluster-revision-2",
            "ConfigMap production-cluster-revision-3",
            "ConfigMap production-cluster-revision-4",
            "ConfigMap production-cluster-revision-5",
        ]
    );
    let (code, out, err) = k(&["deploy", "core", "--config", "config/production.yaml"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("revision 6 (deploy"), "{out}");
}
