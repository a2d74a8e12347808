//! `oclaw bot`, `oclaw queue` and `oclaw node`: bots, queues and cluster nodes listed and shown
//! through a running api-server's HTTP API, as tables or JSON.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{
    get_list, item_rows, print_json, print_table, read_input, task_exit, Client, ClientError,
};
use crate::cli::{BotCommand, NodeCommand, Output, QueueCommand};

pub async fn run_bot(cmd: BotCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        BotCommand::List { server } => {
            let client = Client::new(&server)?;
            if let Some(page) = get_list(&client, "/v1/bots").await? {
                print_table(
                    &["NAME", "QUEUE", "STEPS", "TRIGGERS"],
                    &item_rows(&page, bot_row),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BotCommand::Run {
            bot,
            input,
            timeout,
            server,
        } => {
            let client = Client::new(&server)?;
            let body = json!({"input": read_input(&input)?});
            let path = match &timeout {
                Some(t) => format!("/v1/bots/{bot}/invoke?timeout={t}"),
                None => format!("/v1/bots/{bot}/invoke"),
            };
            let (status, answer) = client.call(Method::POST, &path, Some(&body)).await?;
            if client.output == Output::Json {
                print_json(&answer);
            } else if status == 202 {
                println!(
                    "{} is still {}; follow it with: oclaw task get {} --wait",
                    answer["task_id"].as_str().unwrap_or("?"),
                    answer["status"].as_str().unwrap_or("running"),
                    answer["task_id"].as_str().unwrap_or("?")
                );
            } else if answer["status"] == "succeeded" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&answer["output"]).unwrap_or_default()
                );
            } else {
                eprintln!(
                    "{} {}: {} {}",
                    answer["task_id"].as_str().unwrap_or("?"),
                    answer["status"].as_str().unwrap_or("?"),
                    answer["error"]["code"].as_str().unwrap_or(""),
                    answer["error"]["message"].as_str().unwrap_or("")
                );
            }
            Ok(task_exit(answer["status"].as_str().unwrap_or("")))
        }
    }
}

pub async fn run_queue(cmd: QueueCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        QueueCommand::List { server } => {
            let client = Client::new(&server)?;
            if let Some(page) = get_list(&client, "/v1/queues").await? {
                let headers = [
                    "QUEUE",
                    "QUEUED",
                    "RUNNING",
                    "SCHEDULED",
                    "WAITING",
                    "DEAD",
                    "OLDEST",
                    "CAPACITY",
                ];
                print_table(&headers, &item_rows(&page, queue_row));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_node(cmd: NodeCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        NodeCommand::List { server } => {
            let client = Client::new(&server)?;
            if let Some(page) = get_list(&client, "/v1/cluster/nodes").await? {
                let headers = [
                    "NAME",
                    "COMPONENTS",
                    "STATUS",
                    "LEADER",
                    "IN-FLIGHT",
                    "ADDRESS",
                    "AGE",
                    "LAST-SEEN",
                ];
                print_table(&headers, &item_rows(&page, node_row));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A node's age from its start time, as kubectl shows it (`45s`, `12m`, `3h`, `2d`).
fn age(started: &Value) -> String {
    let Some(at) = started
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    else {
        return "-".into();
    };
    let secs = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    span(secs)
}

/// Seconds as kubectl shows an age.
fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn node_row(n: &Value) -> Vec<String> {
    let components: Vec<String> = n["components"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    let leader = match n["leader"].as_bool() {
        Some(true) => "yes",
        Some(false) => "standby",
        None => "-",
    };
    let in_flight = match (&n["in_flight"], &n["concurrency"]) {
        (Value::Number(a), Value::Number(b)) => format!("{a}/{b}"),
        _ => "-".into(),
    };
    vec![
        text(&n["id"]),
        components.join(","),
        text(&n["status"]),
        leader.into(),
        in_flight,
        text(&n["address"]),
        age(&n["started_at"]),
        match n["heartbeat_age_seconds"].as_f64() {
            Some(s) => format!("{} ago", span(s as i64)),
            None => "-".into(),
        },
    ]
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// NAME, QUEUE, STEPS (skills in order), TRIGGERS (`cron: ...`, `every: ...`).
fn bot_row(b: &Value) -> Vec<String> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let steps: Vec<String> = list(&b["steps"]).iter().map(|s| text(&s["uses"])).collect();
    let triggers: Vec<String> = list(&b["triggers"])
        .iter()
        .filter_map(|t| {
            t.as_object()?
                .iter()
                .next()
                .map(|(k, v)| format!("{k}: {}", text(v)))
        })
        .collect();
    let triggers = if triggers.is_empty() {
        "-".into()
    } else {
        triggers.join(", ")
    };
    vec![
        text(&b["name"]),
        text(&b["queue"]),
        steps.join(" → "),
        triggers,
    ]
}

fn queue_row(q: &Value) -> Vec<String> {
    let capacity = q["capacity"]
        .as_u64()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let oldest = format!(
        "{:.1}s",
        q["oldest_queued_age_seconds"].as_f64().unwrap_or(0.0)
    );
    vec![
        text(&q["name"]),
        text(&q["queued"]),
        text(&q["running"]),
        text(&q["scheduled"]),
        text(&q["waiting"]),
        text(&q["dead"]),
        oldest,
        capacity,
    ]
}
