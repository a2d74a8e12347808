//! `oclaw init` and `oclaw deploy core` with the seed's cluster file: validation errors, the
//! seed's spellings, and rendered Kubernetes manifests checked by `kubernetes-validate --strict`
//! (the official OpenAPI schemas; PyPI, installed by `.ci/install-tools`). No Kubernetes API server
//! runs here: applying is not built and says so (OC-5002).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

/// The seed's §3.1 example, exactly as written.
const SEED: &str = oclaw_cluster::model::SEED_EXAMPLE;

/// `oclaw` kept away from the developer's own clusters: its home, `HOME` and `KUBECONFIG`
/// all point inside `dir`.
fn isolated(dir: &std::path::Path) -> std::process::Command {
    let mut c = common::oclaw();
    c.current_dir(dir)
        .env("OCLAW_HOME", dir.join("home"))
        .env("HOME", dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"));
    c
}

fn run(dir: &std::path::Path, args: &[&str]) -> (Output, String) {
    let out = isolated(dir).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// `kubernetes-validate --strict` (the official schemas) accepts the manifests in `path`.
fn kubernetes_validate(path: &std::path::Path) {
    match std::process::Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.30.0"])
        .arg(path)
        .output()
    {
        Ok(v) => assert!(
            v.status.success(),
            "kubernetes-validate refused the manifests: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        ),
        Err(e) => {
            assert!(
                !oclaw_core::ci::under_ci(),
                "kubernetes-validate is missing under CI=true: {e}"
            );
            eprintln!("skipping the schema check: kubernetes-validate not installed ({e}); .ci/install-tools installs it");
        }
    }
}

fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/production.yaml"), SEED).unwrap();
    dir
}

#[test]
fn the_seed_commands_parse_as_written_and_render_valid_manifests() {
    let dir = seed_dir();
    // §3.2 as written: the file is valid; applying is not built and says what to do instead.
    let (out, text) = run(
        dir.path(),
        &[
            "init",
            "--driver",
            "kubernetes",
            "--config",
            "config/production.yaml",
            "--image-registry",
            "registry.example.com/oclaw",
            "--network-plugin",
            "cni",
        ],
    );
    assert!(text.contains("file is valid"), "{text}");
    assert!(
        text.contains("OC-5002") && text.contains("--dry-run"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
    let (out, yaml) = run(
        dir.path(),
        &[
            "deploy",
            "core",
            "--driver",
            "kubernetes",
            "--components",
            "[api-server,worker,scheduler]",
            "--ha-mode",
            "true",
            "--dry-run",
            "-o",
            "yaml",
            "--image-registry",
            "registry.example.com/oclaw",
        ],
    );
    assert!(out.status.success(), "{yaml}");
    for kind in [
        "kind: Deployment",
        "kind: HorizontalPodAutoscaler",
        "kind: PodDisruptionBudget",
        "kind: ServiceMonitor",
        "kind: PrometheusRule",
        "type: LoadBalancer",
    ] {
        assert!(yaml.contains(kind), "{kind} missing");
    }
    assert!(
        yaml.contains("image: registry.example.com/oclaw:"),
        "{yaml}"
    );
    let (out, json) = run(
        dir.path(),
        &[
            "deploy",
            "core",
            "--driver",
            "kubernetes",
            "--components",
            "[worker]",
            "--ha-mode",
            "false",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{json}");
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"HorizontalPodAutoscaler"), "{kinds:?}");
    assert!(
        !json.contains("\"name\": \"api-server\""),
        "only the worker was asked for"
    );

    // Nomad (dev/test): a JSON job (Nomad's API form) with the same groups.
    let (out, job) = run(
        dir.path(),
        &[
            "deploy",
            "core",
            "--driver",
            "nomad",
            "--components",
            "[api-server,worker,scheduler]",
            "--ha-mode",
            "true",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{job}");
    let job: serde_json::Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["Job"]["ID"], "production-cluster");
    let groups: Vec<&str> = job["Job"]["TaskGroups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["Name"].as_str())
        .collect();
    assert_eq!(groups, ["api-server", "scheduler", "worker"]);
    let (_, text) = run(dir.path(), &["deploy", "core", "--driver", "nomad"]);
    assert!(
        text.contains("OC-5002") && text.contains("nomad job run"),
        "{text}"
    );

    // The official schemas, strict about unknown fields.
    let path = dir.path().join("all.yaml");
    std::fs::write(&path, &yaml).unwrap();
    kubernetes_validate(&path);
}

#[test]
fn bad_cluster_files_and_arguments_get_clear_errors() {
    let dir = seed_dir();
    std::fs::write(
        dir.path().join("bad.yaml"),
        SEED.replace("\"4000m\"", "\"1000m\""),
    )
    .unwrap();
    let (out, text) = run(dir.path(), &["init", "--config", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text.contains("OC-5001") && text.contains("bad.yaml:") && text.contains("above the limit"),
        "{text}"
    );
    std::fs::write(
        dir.path().join("typo.yaml"),
        SEED.replace("replica: 3", "replicas: 3"),
    )
    .unwrap();
    let (_, text) = run(dir.path(), &["init", "--config", "typo.yaml"]);
    assert!(
        text.contains("OC-1003") && text.contains("did you mean `replica`"),
        "{text}"
    );
    let (out, text) = run(
        dir.path(),
        &[
            "deploy",
            "core",
            "--components",
            "[api-server,wroker]",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text.contains("did you mean `worker`"), "{text}");
    let (_, text) = run(dir.path(), &["init", "--config", "missing.yaml"]);
    assert!(text.contains("OC-1001"), "{text}");
    let (_, text) = run(dir.path(), &["deploy", "core"]);
    assert!(
        text.contains("OC-5002") && text.contains("oclaw init"),
        "{text}"
    );
    // Without spec.storage.url the local cluster makes its own PostgreSQL, from server
    // binaries this host must have.
    let out = isolated(dir.path())
        .args(["init", "--config", "config/production.yaml"])
        .env("OCLAW_POSTGRES_BIN", dir.path().join("no-postgres"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("OC-5005") && text.contains("apt-get install postgresql"),
        "{text}"
    );
}

#[test]
fn the_cluster_schema_in_docs_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(dir.path(), &["docs", "cluster-schema"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/oclaw-cluster.schema.json"),
    )
    .unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "docs/oclaw-cluster.schema.json is stale; regenerate with `oclaw docs cluster-schema > docs/oclaw-cluster.schema.json`\n{text}"
    );
}

/// deploy/kubernetes/base is the guide's cluster as the renderer makes it (kept in sync here),
/// and the example overlay builds with `kubectl kustomize` into objects the official schemas
/// accept.
#[test]
fn the_kustomize_base_is_current_and_its_overlay_builds() {
    let dir = seed_dir();
    let (out, yaml) = run(
        dir.path(),
        &[
            "deploy",
            "core",
            "--driver",
            "kubernetes",
            "--components",
            "[api-server,worker,scheduler]",
            "--ha-mode",
            "true",
            "--dry-run",
            "-o",
            "yaml",
        ],
    );
    assert!(out.status.success(), "{yaml}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let base = root.join("base/oclaw.yaml");
    let header = "# Generated by `oclaw deploy core --driver kubernetes --dry-run -o yaml` from the deployment\n# guide's cluster file: do not edit, patch it in an overlay.\n";
    let rendered = format!("{header}{yaml}");
    if oclaw_core::ci::env_flag("OCLAW_UPDATE_GOLDEN") {
        std::fs::write(&base, &rendered).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&base).unwrap_or_default(),
        rendered,
        "deploy/kubernetes/base/oclaw.yaml is stale: OCLAW_UPDATE_GOLDEN=1 cargo test -p oclaw --test cluster_cli kustomize"
    );
    let built = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(root.join("overlays/example"))
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !oclaw_core::ci::under_ci(),
                "kubectl is missing under CI=true: {e}"
            );
            eprintln!("skipped: kubectl not installed ({e})");
            return;
        }
    };
    let text = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(
        text.contains("image: registry.example.com/oclaw/oclaw:"),
        "the overlay's image: {text}"
    );
    assert!(
        text.contains("minReplicas: 5") && text.contains("memory: 12Gi"),
        "the overlay's patches"
    );
    let path = dir.path().join("kustomized.yaml");
    std::fs::write(&path, text.as_bytes()).unwrap();
    kubernetes_validate(&path);
}

/// The image of deploy/image, built from scratch by buildah with this build's binary, runs and
/// carries the non-root user the manifests expect.
#[test]
fn the_image_builds_from_scratch_and_runs_as_the_unprivileged_user() {
    if std::process::Command::new("buildah")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::missing("buildah (Debian's buildah package)").unwrap_or(());
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "--root {} --runroot {} --storage-driver vfs",
        dir.path().join("storage").display(),
        dir.path().join("run").display()
    );
    let buildah = |args: &[&str]| {
        let out = std::process::Command::new("buildah")
            .args(storage.split(' '))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let built = std::process::Command::new("bash")
        .arg(common::workspace_root().join("deploy/image/build.sh"))
        .args([env!("CARGO_BIN_EXE_oclaw"), "localhost/oclaw:ci"])
        .env("BUILDAH_OPTS", &storage)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let config = buildah(&[
        "inspect",
        "--format",
        "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}",
        "localhost/oclaw:ci",
    ]);
    assert_eq!(
        config,
        "65532:65532 [/usr/bin/oclaw] [serve --listen 0.0.0.0:8080]"
    );
    let container = buildah(&["from", "localhost/oclaw:ci"]);
    let version = buildah(&[
        "run",
        "--isolation",
        "chroot",
        &container,
        "--",
        "/usr/bin/oclaw",
        "version",
    ]);
    assert_eq!(version, format!("oclaw {}", env!("CARGO_PKG_VERSION")));
    // Nothing but the binary, its libraries and the user files: no shell to exec into.
    let mounted = buildah(&["mount", &container]);
    let root = std::path::Path::new(&mounted);
    assert!(root.join("usr/bin/oclaw").is_file());
    assert!(!root.join("bin/sh").exists() && !root.join("usr/bin/sh").exists());
    buildah(&["umount", &container]);
    buildah(&["rm", &container]);
}

/// Installs, for the local driver, a stand-in for another release's binary that answers only
/// `version --json` with the given schema facts (what a real later release prints).
fn install_release_facts(
    dir: &std::path::Path,
    version: &str,
    schema: (i64, i64),
    min: (i64, i64),
) {
    let at = dir.join("home/versions").join(version);
    std::fs::create_dir_all(&at).unwrap();
    let script = format!(
        "#!/bin/sh\n[ \"$1 $2\" = \"version --json\" ] || exit 2\necho '{{\"version\": \"{version}\", \"schema\": {{\"sqlite\": {}, \"postgres\": {}}}, \"min_compatible\": {{\"sqlite\": {}, \"postgres\": {}}}}}'\n",
        schema.0, schema.1, min.0, min.1
    );
    let path = at.join("oclaw");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn check_upgrade_says_whether_a_rollback_runs_on_the_migrated_store() {
    let dir = tempfile::tempdir().unwrap();
    let this = env!("CARGO_PKG_VERSION");
    let (out, facts) = run(dir.path(), &["version", "--json"]);
    assert!(out.status.success());
    let facts: serde_json::Value = serde_json::from_str(&facts).unwrap();
    let sqlite = facts["schema"]["sqlite"].as_i64().unwrap();
    let pg = facts["schema"]["postgres"].as_i64().unwrap();
    assert_eq!(facts["version"], this);
    assert!(facts["min_compatible"]["sqlite"].as_i64().unwrap() <= sqlite);
    let line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("store schema"))
            .unwrap_or_default()
            .to_string()
    };
    // An additive release (it still serves this release's schema): reversible.
    install_release_facts(dir.path(), "0.2.0", (sqlite + 1, pg + 1), (sqlite, pg));
    let (_, checks) = run(
        dir.path(),
        &[
            "check-upgrade",
            "--from-version",
            this,
            "--to-version",
            "0.2.0",
        ],
    );
    assert!(
        line(&checks).contains("PASS") && line(&checks).contains("a rollback to"),
        "{checks}"
    );
    // One that needs its own schema: not reversible by a rollback, said before the upgrade.
    install_release_facts(
        dir.path(),
        "0.3.0",
        (sqlite + 2, pg + 2),
        (sqlite + 2, pg + 2),
    );
    let (_, checks) = run(
        dir.path(),
        &[
            "check-upgrade",
            "--from-version",
            this,
            "--to-version",
            "0.3.0",
        ],
    );
    let l = line(&checks);
    assert!(
        l.contains("WARN")
            && l.contains("not reversible")
            && l.contains(&format!("SQLite schema {sqlite} < {}", sqlite + 2)),
        "{checks}"
    );
    // No binary of the target here: unknown, and said so.
    let (_, checks) = run(
        dir.path(),
        &[
            "check-upgrade",
            "--from-version",
            this,
            "--to-version",
            "0.4.0",
        ],
    );
    assert!(
        line(&checks).contains("no binary of 0.4.0 here"),
        "{checks}"
    );
}
