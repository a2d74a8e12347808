//! Golden file: the seed's cluster file renders to exactly `golden/seed.k8s.yaml`. A change to
//! the manifests shows up here as a diff to review; regenerate with
//! `OCLAW_UPDATE_GOLDEN=1 cargo test -p oclaw-cluster --test golden`.
#![allow(clippy::unwrap_used)]

use oclaw_cluster::kubernetes::{render, to_yaml, RenderOptions};
use oclaw_cluster::model::SEED_EXAMPLE;
use oclaw_cluster::OpenClawCluster;

#[test]
fn the_seed_cluster_renders_the_golden_manifests() {
    let mut cluster = OpenClawCluster::parse("production.yaml", SEED_EXAMPLE).unwrap();
    // Pin what varies with the build, so the file is stable across releases.
    cluster.spec.version = Some("1.3.0".into());
    cluster.spec.image = Some("registry.example.com/oclaw".into());
    let got = to_yaml(&render(&cluster, &RenderOptions::default()));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seed.k8s.yaml");
    if oclaw_core::ci::env_flag("OCLAW_UPDATE_GOLDEN") {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        got == want,
        "rendered manifests differ from {}; review and regenerate:\n{got}",
        path.display()
    );
}

#[test]
fn the_seed_cluster_renders_the_golden_nomad_job() {
    let mut cluster = OpenClawCluster::parse("production.yaml", SEED_EXAMPLE).unwrap();
    cluster.spec.version = Some("1.3.0".into());
    cluster.spec.image = Some("registry.example.com/oclaw".into());
    let got = oclaw_cluster::nomad::render_text(&cluster, &RenderOptions::default());
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seed.nomad.json");
    if oclaw_core::ci::env_flag("OCLAW_UPDATE_GOLDEN") {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        got == want,
        "rendered job differs from {}; review and regenerate:\n{got}",
        path.display()
    );
}

/// Without a database URL the cluster gets a CloudNativePG `Cluster` (three instances with a
/// synchronous replica in HA mode, one otherwise), and it is valid against the operator's
/// published CRD (`tests/fixtures/cloudnative-pg`, Apache-2.0, from the operator's repository):
/// the schema's own checks through Python's `jsonschema`, and no field the schema does not know.
#[test]
fn the_clusters_own_database_is_a_valid_cloudnative_pg_cluster() {
    let cluster = OpenClawCluster::parse("production.yaml", SEED_EXAMPLE).unwrap();
    for (ha, instances) in [(true, 3), (false, 1)] {
        let objs = render(
            &cluster,
            &RenderOptions {
                ha,
                ..RenderOptions::default()
            },
        );
        let db = objs
            .iter()
            .find(|o| o["kind"] == "Cluster" && o["apiVersion"] == "postgresql.cnpg.io/v1")
            .expect("a CloudNativePG Cluster");
        assert_eq!(db["spec"]["instances"], instances);
        assert_eq!(db["spec"]["storage"]["storageClass"], "ssd-provisioner");
        assert_eq!(db["spec"]["storage"]["size"], "100Gi");
        let sync = if ha {
            serde_json::json!(1)
        } else {
            serde_json::Value::Null
        };
        assert_eq!(db["spec"]["minSyncReplicas"], sync);
        // The components read the operator's application Secret.
        let api = objs
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "api-server")
            .unwrap();
        let env = &api["spec"]["template"]["spec"]["containers"][0]["env"][0];
        assert_eq!(
            env["valueFrom"]["secretKeyRef"]["name"], "production-cluster-db-app",
            "{env}"
        );
        assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], "uri");
        assert!(
            objs.iter().any(|o| o["kind"] == "PodMonitor"),
            "monitoring is on in the guide's file"
        );
        validate_against_crd(db);
    }
    // With an outside database there is none.
    let mut outside = cluster.clone();
    outside.spec.storage.secret = Some("my-db".into());
    let objs = render(&outside, &RenderOptions::default());
    assert!(!objs.iter().any(|o| o["kind"] == "Cluster"));
}

fn validate_against_crd(object: &serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    std::fs::write(&path, object.to_string()).unwrap();
    let crd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloudnative-pg/postgresql.cnpg.io_clusters.yaml");
    let script = r#"
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
schema = version["schema"]["openAPIV3Schema"]
obj = json.load(open(sys.argv[2]))
jsonschema.validate(obj, schema)
def unknown(value, schema, at):
    props = schema.get("properties")
    if isinstance(value, dict) and props is not None:
        for k, v in value.items():
            if k not in props:
                sys.exit(f"unknown field {at}.{k}")
            unknown(v, props[k], f"{at}.{k}")
unknown(obj["spec"], schema["properties"]["spec"], "spec")
print("valid")
"#;
    let out = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&crd)
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("python3: {e}"),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("No module named") {
        assert!(!oclaw_core::ci::under_ci(), "python3 jsonschema/yaml missing under CI=true (.ci/install-tools installs kubernetes-validate, which brings them): {text}");
        eprintln!("skipped: {text}");
        return;
    }
    assert!(
        out.status.success() && text.contains("valid"),
        "the CRD refuses the Cluster: {text}"
    );
}
