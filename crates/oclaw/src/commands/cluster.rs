//! `oclaw init` and `oclaw deploy core`: read the OpenClawCluster file; with the kubernetes
//! driver apply the objects it becomes to the API server (server-side apply, then prune), or
//! with `--dry-run` print them. Submitting to Nomad is not built (OC-5002 says so).

use std::process::ExitCode;

use oclaw_cluster::kubernetes::{self, RenderOptions, COMPONENTS};
use oclaw_cluster::OpenClawCluster;
use oclaw_core::ErrorCode;

use super::{EXIT_FAILURE, EXIT_INVALID};
use crate::cli::{ClusterArgs, DeployCommand, DriverArg, InitArgs, OutputArg};

fn fail(code: ErrorCode, message: impl std::fmt::Display, exit: u8) -> ExitCode {
    eprintln!("error[{}]: {message}", code.code());
    ExitCode::from(exit)
}

fn load(args: &ClusterArgs, image: Option<&str>) -> Result<OpenClawCluster, ExitCode> {
    let file = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        fail(
            ErrorCode::ConfigUnreadable,
            format!("{file}: cannot read the cluster file: {e}"),
            EXIT_INVALID,
        )
    })?;
    let mut cluster = OpenClawCluster::parse(&file, &text).map_err(|e| {
        eprintln!("error[{}]: {e}", e.code.code());
        ExitCode::from(EXIT_INVALID)
    })?;
    if let Some(registry) = image {
        cluster.spec.image = Some(registry.trim_end_matches('/').to_string());
    }
    Ok(cluster)
}

/// Prints the rendered objects, or explains what is not built.
fn emit(cluster: &OpenClawCluster, args: &ClusterArgs, options: &RenderOptions) -> ExitCode {
    match (args.driver, args.dry_run) {
        (DriverArg::Kubernetes, dry_run) => {
            let mut objects = kubernetes::render(cluster, options);
            let rule = if cluster.spec.monitoring.enabled {
                match oclaw_node::monitoring::prometheus_rule(&cluster.metadata.namespace) {
                    Ok(yaml) => Some(yaml),
                    Err(e) => return fail(ErrorCode::ConfigInvalidValue, e, EXIT_FAILURE),
                }
            } else {
                None
            };
            if !dry_run {
                if let Some(rule) = rule.and_then(|r| serde_yaml::from_str(&r).ok()) {
                    objects.push(rule);
                }
                return apply_to_kubernetes(cluster, &objects, options);
            }
            match args.output {
                OutputArg::Yaml => {
                    let mut out = kubernetes::to_yaml(&objects);
                    if let Some(rule) = rule {
                        out.push_str("---\n");
                        out.push_str(&rule);
                    }
                    print!("{out}");
                }
                OutputArg::Json => {
                    if let Some(rule) = rule.and_then(|r| serde_yaml::from_str(&r).ok()) {
                        objects.push(rule);
                    }
                    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
                    println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
                }
            }
            ExitCode::SUCCESS
        }
        (DriverArg::Nomad, true) if args.output == OutputArg::Yaml => {
            print!("{}", oclaw_cluster::nomad::render(cluster, options));
            ExitCode::SUCCESS
        }
        (DriverArg::Nomad, true) => fail(ErrorCode::InvalidField, "the Nomad job is HCL: leave out -o json", EXIT_INVALID),
        (DriverArg::Nomad, false) => fail(
            ErrorCode::DriverUnavailable,
            "submitting to Nomad is not built yet; render the job and run it yourself: oclaw deploy core --driver nomad --dry-run > oclaw.nomad.hcl && nomad job run oclaw.nomad.hcl",
            EXIT_FAILURE,
        ),
        (DriverArg::Local, _) => fail(
            ErrorCode::DriverUnavailable,
            "the local driver prints no manifests; leave out --dry-run, or use --driver kubernetes",
            EXIT_INVALID,
        ),
    }
}

/// Server-side apply of `objects` to the API server of the current kubeconfig context.
fn apply_to_kubernetes(
    cluster: &OpenClawCluster,
    objects: &[serde_json::Value],
    options: &RenderOptions,
) -> ExitCode {
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = rt.block_on(super::kube_apply::apply(
        objects,
        &cluster.metadata.name,
        &cluster.metadata.namespace,
        &options.components,
    ));
    match result {
        Ok(done) => {
            println!(
                "cluster {} applied to namespace {}: {} objects applied, {} pruned (field manager `{}`)",
                cluster.metadata.name,
                cluster.metadata.namespace,
                done.applied.len(),
                done.pruned.len(),
                super::kube_apply::FIELD_MANAGER
            );
            ExitCode::SUCCESS
        }
        Err((code, message)) => fail(code, message, EXIT_FAILURE),
    }
}

pub fn init(args: InitArgs) -> ExitCode {
    if args.network_plugin != "cni" {
        return fail(
            ErrorCode::ConfigInvalidValue,
            format!(
                "--network-plugin `{}`: only `cni` is supported",
                args.network_plugin
            ),
            EXIT_INVALID,
        );
    }
    let cluster = match load(&args.cluster, args.image_registry.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.cluster.driver == DriverArg::Local && !args.cluster.dry_run {
        let text = std::fs::read_to_string(&args.cluster.config).unwrap_or_default();
        return super::local::init(&cluster, &text);
    }
    if !args.cluster.dry_run {
        eprintln!(
            "cluster `{}` (namespace {}, version {}, image {}): file is valid",
            cluster.metadata.name,
            cluster.metadata.namespace,
            cluster.version(),
            cluster.image()
        );
    }
    emit(&cluster, &args.cluster, &RenderOptions::default())
}

/// Parses the seed's `[api-server,worker,scheduler]` (brackets optional).
pub fn parse_components(s: &str) -> Result<Vec<String>, String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let mut out = Vec::new();
    for c in inner.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !COMPONENTS.contains(&c) {
            return Err(format!(
                "unknown component `{c}`{}; components: {}",
                oclaw_core::suggest::hint(c, COMPONENTS),
                COMPONENTS.join(", ")
            ));
        }
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    }
    if out.is_empty() {
        return Err("--components names no component".into());
    }
    Ok(out)
}

pub fn deploy(what: DeployCommand) -> ExitCode {
    let DeployCommand::Core {
        cluster: args,
        components,
        ha_mode,
        image_registry,
        namespace,
        wait,
    } = what;
    let components = match parse_components(&components) {
        Ok(c) => c,
        Err(m) => return fail(ErrorCode::InvalidField, m, EXIT_INVALID),
    };
    if args.driver == DriverArg::Local && !args.dry_run {
        return super::local::deploy(
            &namespace,
            components,
            ha_mode,
            wait.then_some(std::time::Duration::from_secs(180)),
        );
    }
    let cluster = match load(&args, image_registry.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    emit(
        &cluster,
        &args,
        &RenderOptions {
            components,
            ha: ha_mode,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_component_list_parses() {
        assert_eq!(
            parse_components("[api-server,worker,scheduler]").unwrap(),
            vec!["api-server", "worker", "scheduler"]
        );
        assert_eq!(parse_components("worker").unwrap(), vec!["worker"]);
        assert!(parse_components("[api-server,wroker]")
            .unwrap_err()
            .contains("did you mean `worker`"));
        assert!(parse_components("[]").is_err());
    }
}
