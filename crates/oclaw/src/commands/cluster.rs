//! `oclaw init` and `oclaw deploy core`: read the OpenClawCluster file and run the driver's
//! pipeline for it (`oclaw_cluster::release`), or with `--dry-run` print the objects it becomes.
//! Submitting to Nomad is not built (OC-5002 says so).

use std::process::ExitCode;

use oclaw_cluster::driver::ReleaseAction;
use oclaw_cluster::driver::{Release, RenderOptions, COMPONENTS};
use oclaw_cluster::kubernetes;
use oclaw_cluster::release::{self, Deploy};
use oclaw_cluster::OpenClawCluster;
use oclaw_core::ErrorCode;

use super::output::{fail, report, Output};
use super::release::on_driver;
use super::{EXIT_FAILURE, EXIT_INVALID};
use crate::cli::{ClusterArgs, DeployCommand, DriverArg, InitArgs, OutputArg};

/// The cluster file, and its text to record: as written, or re-serialized when `--image-registry`
/// changed it.
fn load(args: &ClusterArgs, image: Option<&str>) -> Result<(OpenClawCluster, String), ExitCode> {
    let file = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        fail(
            ErrorCode::ConfigUnreadable,
            format!("{file}: cannot read the cluster file: {e}"),
            EXIT_INVALID,
        )
    })?;
    let mut cluster = OpenClawCluster::parse(&file, &text).map_err(|e| report(&e.into()))?;
    let Some(registry) = image else {
        return Ok((cluster, text));
    };
    cluster.spec.image = Some(registry.trim_end_matches('/').to_string());
    let text = serde_saphyr::to_string(&cluster).unwrap_or_default();
    Ok((cluster, text))
}

/// Prints the objects a driver would apply (`--dry-run`).
fn emit(cluster: &OpenClawCluster, args: &ClusterArgs, options: &RenderOptions) -> ExitCode {
    match args.driver {
        DriverArg::Kubernetes => {
            let mut objects = kubernetes::render(cluster, options);
            match kubernetes::prometheus_rule(cluster) {
                Ok(rule) => objects.extend(rule),
                Err(e) => return report(&e),
            }
            match args.output {
                OutputArg::Yaml => print!("{}", kubernetes::to_yaml(&objects)),
                OutputArg::Json => {
                    let list =
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&list).unwrap_or_default()
                    );
                }
            }
            ExitCode::SUCCESS
        }
        // Nomad has no YAML: its job is JSON whatever -o says.
        DriverArg::Nomad => {
            print!("{}", oclaw_cluster::nomad::render_text(cluster, options));
            ExitCode::SUCCESS
        }
        DriverArg::Local => fail(
            ErrorCode::DriverUnavailable,
            "the local driver prints no manifests; leave out --dry-run, or use --driver kubernetes",
            EXIT_INVALID,
        ),
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
    let (cluster, text) = match load(&args.cluster, args.image_registry.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.cluster.dry_run {
        return emit(&cluster, &args.cluster, &RenderOptions::default());
    }
    match args.cluster.driver {
        DriverArg::Local => init_local(&cluster, &text),
        // The shared objects (namespace, service account and RBAC, config, metrics service);
        // `deploy core` adds the components as revision 1.
        driver => {
            let namespace = cluster.metadata.namespace.clone();
            let release = Release {
                revision: 0,
                options: RenderOptions {
                    components: Vec::new(),
                    ha: true,
                },
                force: false,
            };
            println!(
                "cluster `{}` (namespace {namespace}, version {}, image {}): file is valid",
                cluster.metadata.name,
                cluster.version(),
                cluster.image()
            );
            let code = on_driver(driver, &namespace, |d| async move {
                release::run_pipeline(&d, &cluster, &release, &Output::HUMAN).await?;
                Ok(())
            });
            if code == ExitCode::SUCCESS {
                println!("next: oclaw deploy core --components \"[api-server,worker,scheduler]\" --ha-mode true --driver kubernetes");
            }
            code
        }
    }
}

/// `oclaw init` on the local driver: the cluster's directory and its supervisor.
fn init_local(cluster: &OpenClawCluster, text: &str) -> ExitCode {
    let done = match oclaw_cluster::drivers::local::init::init(cluster, text) {
        Ok(done) => done,
        Err(e) => return super::output::report(&e),
    };
    if let Some(w) = done.warning {
        eprintln!("warning: {w}");
    }
    match &done.database {
        None => {}
        Some(members) if members.is_empty() => println!(
            "database: the cluster's own PostgreSQL (spec.storage names no url), made by `deploy core`: \
             one server, or three replicated members with --ha-mode true; data in {}/postgres",
            done.dir.display()
        ),
        Some(members) => println!(
            "database: the cluster's own PostgreSQL, {} ({}), data in {}/postgres",
            oclaw_core::suggest::counted(members.iter().filter(|m| m.role != "etcd").count() as u64, "server"),
            members
                .iter()
                .map(|m| format!("{} {} {}", m.name, m.role, m.status))
                .collect::<Vec<_>>()
                .join(", "),
            done.dir.display()
        ),
    }
    println!(
        "cluster `{}` initialised (local driver): namespace {}, state in {}, supervisor pid {}",
        cluster.metadata.name,
        cluster.metadata.namespace,
        done.dir.display(),
        done.supervisor_pid
    );
    println!(
        "next: oclaw deploy core --components \"[api-server,worker,scheduler]\" --ha-mode true"
    );
    ExitCode::SUCCESS
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
        timeout,
    } = what;
    let components = match parse_components(&components) {
        Ok(c) => c,
        Err(m) => return fail(ErrorCode::InvalidField, m, EXIT_INVALID),
    };
    let options = RenderOptions {
        components,
        ha: ha_mode,
    };
    let out = Output {
        json: !args.dry_run && args.output == OutputArg::Json,
    };
    if args.dry_run {
        return match load(&args, image_registry.as_deref()) {
            Ok((cluster, _)) => emit(&cluster, &args, &options),
            Err(code) => code,
        };
    }
    // The local driver deploys the file `init` wrote; the others the file given (and its
    // namespace).
    let (text, namespace) = if args.driver == DriverArg::Local {
        let file =
            oclaw_cluster::drivers::local::record::cluster_dir(&namespace).join("cluster.yaml");
        match std::fs::read_to_string(&file) {
            Ok(t) => (t, namespace),
            Err(_) => {
                return fail(
                    ErrorCode::DriverUnavailable,
                    format!("no local cluster in namespace {namespace}; run `oclaw init --config FILE` first"),
                    EXIT_FAILURE,
                )
            }
        }
    } else {
        match load(&args, image_registry.as_deref()) {
            Ok((cluster, text)) => (text, cluster.metadata.namespace),
            Err(code) => return code,
        }
    };
    let description = format!(
        "deploy {}{}",
        options.components.join(","),
        if options.ha { " (HA)" } else { "" }
    );
    let job = Deploy {
        cluster_text: &text,
        action: ReleaseAction::Deploy,
        options,
        force: false,
        description,
        wait: wait.then_some(std::time::Duration::from_secs(timeout)),
    };
    on_driver(args.driver, &namespace, |d| async move {
        release::deploy(&d, job, &out).await
    })
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
        // The plain comma list, which no shell globs.
        assert_eq!(
            parse_components("api-server,worker").unwrap(),
            vec!["api-server", "worker"]
        );
        assert!(parse_components("[api-server,wroker]")
            .unwrap_err()
            .contains("did you mean `worker`"));
        assert!(parse_components("[]").is_err());
    }
}
