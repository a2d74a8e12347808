//! `oclaw serve` (every component in one process, embedded SQLite by default) and the single
//! components `api-server`, `scheduler`, `worker`: configuration loaded, logging set up, the
//! node started with its banner.

use std::process::ExitCode;

use oclaw_core::config::LogFormat;
use oclaw_core::config_load::load_node_config;
use oclaw_telemetry::LogStyle;

use super::{profile, runtime, EXIT_FAILURE, EXIT_INVALID};
use crate::cli::{ComponentArgs, ConfigArgs};

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Where a node looks for its configuration when none is named, in order.
pub const SEARCHED: &[&str] = &["oclaw.yaml", "/etc/oclaw/oclaw.yaml"];

/// What to start.
pub struct Launch {
    pub args: ConfigArgs,
    pub listen: Option<String>,
    pub node_id: Option<String>,
    pub components: oclaw_node::Components,
}

pub fn run_component(
    c: ComponentArgs,
    components: oclaw_node::Components,
    style: Option<LogStyle>,
) -> ExitCode {
    // Workers and schedulers expose only probes and metrics; a free port keeps several of them
    // on one host from colliding. The api-server keeps api.listen unless told.
    let listen = c
        .listen
        .or_else(|| (!components.api).then(|| "127.0.0.1:0".to_string()));
    run(
        Launch {
            args: c.config,
            listen,
            node_id: c.node_id,
            components,
        },
        style,
    )
}

pub fn run(launch: Launch, style: Option<LogStyle>) -> ExitCode {
    let Launch {
        args,
        listen,
        node_id,
        components,
    } = launch;
    // Without --config (or OCLAW_CONFIG): ./oclaw.yaml, then /etc/oclaw/oclaw.yaml.
    let path = args.config.clone().or_else(|| {
        SEARCHED
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
    });
    let file = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<defaults>".into());
    let mut config =
        match load_node_config(path.as_deref(), profile(args.profile), std::env::vars()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
    if let Some(l) = listen {
        config.api.listen = l;
    }
    let style = style.unwrap_or(match config.telemetry.log_format {
        LogFormat::Auto => LogStyle::Auto,
        LogFormat::Json => LogStyle::Json,
        LogFormat::Human => LogStyle::Human,
    });
    oclaw_telemetry::init_logging(style, &config.telemetry.log_level);
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(
            component = "node",
            error_code = oclaw_core::ErrorCode::SkillPanicked.code(),
            "panic: {info}"
        );
    }));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = oclaw_node::ServeOptions {
        config,
        components,
        node_id,
        config_file: file,
        banner: true,
    };
    match rt.block_on(oclaw_node::serve(options, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(component = "node", error_code = e.code().code(), "{e}");
            eprintln!("error: {e}");
            let config_error = e.code().code().starts_with("OC-1");
            ExitCode::from(if config_error {
                EXIT_INVALID
            } else {
                EXIT_FAILURE
            })
        }
    }
}
