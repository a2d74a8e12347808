//! `oclaw task submit|get|list|cancel|retry`: tasks through a running api-server's HTTP API.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{
    cells, get_list, item_rows, print_table, print_task, read_input, task_exit, Client,
    ClientError, TASK_FIELDS, TASK_HEADERS,
};
use crate::cli::TaskCommand;

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
        TaskCommand::Retry { id, server } => {
            let client = Client::new(&server)?;
            let (_, t) = client
                .call(Method::POST, &format!("/v1/tasks/{id}/retry"), None)
                .await?;
            print_task(&client, &t);
            Ok(ExitCode::SUCCESS)
        }
    }
}
