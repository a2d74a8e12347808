//! `oclaw task submit|get|list|cancel|retry`, `oclaw event send` and `oclaw approval
//! list|approve|reject`: tasks and what they wait for, through a running api-server's HTTP API.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{
    cells, encode, get_list, item_rows, print_table, print_task, read_input, task_exit, Client,
    ClientError, TASK_FIELDS, TASK_HEADERS,
};
use crate::cli::{ApprovalCommand, EventCommand, TaskCommand};

async fn wait_for(client: &Client, id: &str) -> Result<Value, ClientError> {
    loop {
        let (_, t) = client
            .call(Method::GET, &format!("/v1/tasks/{id}"), None)
            .await?;
        if matches!(
            t["status"].as_str(),
            Some("succeeded" | "failed" | "dead" | "cancelled")
        ) {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run_task(cmd: TaskCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        TaskCommand::Submit {
            bot,
            input,
            queue,
            priority,
            delay,
            run_at,
            idempotency_key,
            max_attempts,
            wait,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut body = Map::new();
            body.insert("bot".into(), json!(bot));
            body.insert("input".into(), read_input(&input)?);
            let optional = [
                ("queue", queue.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("delay", delay.map(Value::from)),
                ("run_at", run_at.map(Value::from)),
                ("idempotency_key", idempotency_key.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            let (_, task) = client
                .call(Method::POST, "/v1/tasks", Some(&Value::Object(body)))
                .await?;
            if wait {
                let id = task["id"].as_str().unwrap_or_default().to_string();
                let done = wait_for(&client, &id).await?;
                print_task(&client, &done);
                return Ok(task_exit(done["status"].as_str().unwrap_or("")));
            }
            print_task(&client, &task);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Get { id, wait, server } => {
            let client = Client::new(&server)?;
            let task = if wait {
                wait_for(&client, &id).await?
            } else {
                client
                    .call(Method::GET, &format!("/v1/tasks/{id}"), None)
                    .await?
                    .1
            };
            print_task(&client, &task);
            Ok(if wait {
                task_exit(task["status"].as_str().unwrap_or(""))
            } else {
                ExitCode::SUCCESS
            })
        }
        TaskCommand::List {
            status,
            bot,
            queue,
            limit,
            cursor,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut query = vec![format!("limit={limit}")];
            for (k, v) in [
                ("status", status),
                ("bot", bot),
                ("queue", queue),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    query.push(format!("{k}={v}"));
                }
            }
            if let Some(page) = get_list(&client, &format!("/v1/tasks?{}", query.join("&"))).await?
            {
                print_table(TASK_HEADERS, &item_rows(&page, |t| cells(t, TASK_FIELDS)));
                if let Some(next) = page["next_cursor"].as_str() {
                    println!("more: --cursor {next}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Cancel { id, server } => {
            let client = Client::new(&server)?;
            let (_, t) = client
                .call(Method::POST, &format!("/v1/tasks/{id}/cancel"), None)
                .await?;
            print_task(&client, &t);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Retry {
            id,
            from_step,
            server,
        } => {
            let client = Client::new(&server)?;
            let path = match from_step {
                Some(step) => format!("/v1/tasks/{id}/retry?from_step={}", encode(&step)),
                None => format!("/v1/tasks/{id}/retry"),
            };
            let (_, t) = client.call(Method::POST, &path, None).await?;
            print_task(&client, &t);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A query or path value with the characters that would end or change it escaped.
pub async fn run_event(cmd: EventCommand) -> Result<ExitCode, ClientError> {
    let EventCommand::Send {
        name,
        key,
        data,
        server,
    } = cmd;
    let client = Client::new(&server)?;
    let data: Value = serde_json::from_str(&data)
        .map_err(|e| ClientError::Usage(format!("--data is not valid JSON: {e}")))?;
    let (_, answer) = client
        .call(
            Method::POST,
            "/v1/events",
            Some(&json!({"name": name, "key": key, "data": data})),
        )
        .await?;
    if client.output == crate::cli::Output::Json {
        super::client::print_json(&answer);
    } else {
        let woke: Vec<String> = answer["woke"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect();
        if woke.is_empty() {
            println!("no task waits for `{name}` with key `{key}`; the event is kept for a wait to come (events.retention)");
        } else {
            println!("woke {}", woke.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

const APPROVAL_HEADERS: &[&str] = &[
    "ID",
    "TASK",
    "BOT",
    "STEP",
    "STATUS",
    "MESSAGE",
    "APPROVERS",
    "DEADLINE",
];

fn approval_row(a: &Value) -> Vec<String> {
    let approvers = a["detail"]["approvers"]
        .as_array()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let names: Vec<&str> = l.iter().filter_map(Value::as_str).collect();
            format!(
                "{} of {}",
                a["detail"]["required"].as_u64().unwrap_or(1),
                names.join(",")
            )
        })
        .unwrap_or_else(|| "anyone".into());
    vec![
        a["id"].to_string(),
        a["task_id"].as_str().unwrap_or_default().to_string(),
        a["bot"].as_str().unwrap_or_default().to_string(),
        a["step"].as_str().unwrap_or_default().to_string(),
        a["status"].as_str().unwrap_or_default().to_string(),
        a["detail"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        approvers,
        a["deadline"].as_str().unwrap_or("-").to_string(),
    ]
}

pub async fn run_approval(cmd: ApprovalCommand) -> Result<ExitCode, ClientError> {
    let (id, decision, server, approve) = match cmd {
        ApprovalCommand::List {
            status,
            task,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut path = format!("/v1/approvals?status={}", encode(&status));
            if let Some(t) = task {
                path.push_str(&format!("&task={}", encode(&t)));
            }
            if let Some(page) = get_list(&client, &path).await? {
                print_table(APPROVAL_HEADERS, &item_rows(&page, approval_row));
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalCommand::Approve {
            id,
            decision,
            server,
        } => (id, decision, server, true),
        ApprovalCommand::Reject {
            id,
            decision,
            server,
        } => (id, decision, server, false),
    };
    let client = Client::new(&server)?;
    let verb = if approve { "approve" } else { "reject" };
    let mut body = json!({"by": decision.by});
    if let Some(c) = decision.comment {
        body["comment"] = json!(c);
    }
    let (_, a) = client
        .call(
            Method::POST,
            &format!("/v1/approvals/{}/{verb}", encode(&id)),
            Some(&body),
        )
        .await?;
    if client.output == crate::cli::Output::Json {
        super::client::print_json(&a);
    } else {
        print_table(APPROVAL_HEADERS, &[approval_row(&a)]);
        match a["output"]["approved"].as_bool() {
            Some(true) => println!("approved: task {} goes on", cell_text(&a["task_id"])),
            Some(false) => println!(
                "rejected: task {} goes on with approved = false",
                cell_text(&a["task_id"])
            ),
            None => println!("recorded; more approvals are needed"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cell_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}
