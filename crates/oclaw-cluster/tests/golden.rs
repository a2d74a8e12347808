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
    if std::env::var("OCLAW_UPDATE_GOLDEN").is_ok() {
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
    let got = oclaw_cluster::nomad::render(&cluster, &RenderOptions::default());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seed.nomad.hcl");
    if std::env::var("OCLAW_UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        got == want,
        "rendered job differs from {}; review and regenerate:\n{got}",
        path.display()
    );
}
