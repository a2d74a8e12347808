//! The HTTP client behind `oclaw task|bot|queue`: requests, error mapping, exit codes, output.

use std::process::ExitCode;

use serde_json::Value;

use crate::cli::{InputArgs, Output, ServerArgs};

/// Exit codes of client commands.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const BACK_PRESSURE: u8 = 5;
    pub const TASK_FAILED: u8 = 6;
    pub const STILL_RUNNING: u8 = 7;
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    pub output: Output,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or answered garbage.
    #[error("{0}")]
    Transport(String),
    /// The node answered with an error.
    #[error("{code} ({status}) {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The command's own input is wrong.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Transport(_) => exit::FAILURE,
            ClientError::Usage(_) => exit::INVALID,
            ClientError::Api { status, .. } => match status {
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                429 => exit::BACK_PRESSURE,
                400..=499 => exit::INVALID,
                _ => exit::FAILURE,
            },
        }
    }

    pub fn report(&self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.exit_code())
    }
}

impl Client {
    pub fn new(args: &ServerArgs) -> Result<Client, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http =
            reqwest::Client::builder().user_agent(concat!("oclaw-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Transport(format!("--ca-file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Transport(format!("--ca-file {}: {e}", path.display()))
            })?;
            http = http.tls_certs_merge(certs);
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Client {
            http,
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
            output: args.output,
        })
    }

    /// Sends a request; 2xx answers come back with their status, other answers as errors.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            ClientError::Transport(format!(
                "cannot reach {}: {} (is `oclaw serve` running? set --server or OCLAW_SERVER)",
                self.base,
                oclaw_core::error_code::with_causes(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        Err(ClientError::Api {
            status,
            code: value["error"]["code"].as_str().unwrap_or("?").to_string(),
            message: value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string()),
        })
    }
}

/// The task input from `--input`, `--input -` (stdin) or `--input-file`; null when none.
pub fn read_input(args: &InputArgs) -> Result<Value, ClientError> {
    let text = match (&args.input, &args.input_file) {
        (Some(s), _) if s == "-" => {
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                .map_err(|e| ClientError::Usage(format!("reading stdin: {e}")))?;
            buf
        }
        (Some(s), _) => s.clone(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|e| ClientError::Usage(format!("reading {}: {e}", p.display())))?,
        (None, None) => return Ok(Value::Null),
    };
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Usage(format!("--input is not valid JSON: {e}")))
}

/// A JSON value as a table cell: text as is, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows as aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Picks fields of a JSON object as table cells.
pub fn cells(v: &Value, fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| cell(&v[*f])).collect()
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The task table's columns and the task fields shown in them.
pub const TASK_HEADERS: &[&str] = &["ID", "BOT", "QUEUE", "STATUS", "ATTEMPTS", "CREATED"];
pub const TASK_FIELDS: &[&str] = &["id", "bot", "queue", "status", "attempts", "created_at"];

/// Prints one task: JSON, or a short human summary.
pub fn print_task(client: &Client, t: &Value) {
    if client.output == Output::Json {
        print_json(t);
        return;
    }
    print_table(TASK_HEADERS, &[cells(t, TASK_FIELDS)]);
    if !t["output"].is_null() {
        println!("output: {}", t["output"]);
    }
    if !t["error"].is_null() {
        println!(
            "error:  {} {}",
            cell(&t["error"]["code"]),
            cell(&t["error"]["message"])
        );
    }
    let steps: Vec<&str> = t["checkpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["step"].as_str())
        .filter(|s| !s.contains('@') && !s.contains('#'))
        .collect();
    if !steps.is_empty() {
        println!("steps done: {}", steps.join(", "));
    }
    for w in t["waits"].as_array().into_iter().flatten() {
        if w["status"] != "pending" {
            continue;
        }
        let what = match w["kind"].as_str() {
            Some("event") => format!(
                "event `{}` with key `{}`",
                cell(&w["name"]),
                cell(&w["key"])
            ),
            Some("approval") => format!("approval {} ({})", w["id"], cell(&w["detail"]["message"])),
            Some("sleep") => "a timer".to_string(),
            Some("child") => format!("child task T{}", cell(&w["key"])),
            _ => cell(&w["kind"]),
        };
        let until = w["deadline"]
            .as_str()
            .map(|d| format!(" until {d}"))
            .unwrap_or_default();
        println!("waits for: {what} at step `{}`{until}", cell(&w["step"]));
    }
}

/// Exit code for a finished (or unfinished) task.
pub fn task_exit(status: &str) -> ExitCode {
    ExitCode::from(match status {
        "succeeded" => exit::OK,
        "failed" | "dead" | "cancelled" => exit::TASK_FAILED,
        _ => exit::STILL_RUNNING,
    })
}

/// `GET path` of a list route: prints the page as JSON and returns `None` for `-o json`,
/// otherwise returns the page for a table.
pub async fn get_list(client: &Client, path: &str) -> Result<Option<Value>, ClientError> {
    let (_, page) = client.call(reqwest::Method::GET, path, None).await?;
    if client.output == Output::Json {
        print_json(&page);
        return Ok(None);
    }
    Ok(Some(page))
}

/// One table row per item of a list page.
pub fn item_rows(page: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    page["items"]
        .as_array()
        .map(|items| items.iter().map(row).collect())
        .unwrap_or_default()
}

/// A value for a URL's query string or path segment.
pub fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
