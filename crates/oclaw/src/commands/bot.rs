use std::process::ExitCode;

use reqwest::Method;
use serde_json::json;

use super::client::{print_json, print_table, read_input, task_exit, Client, ClientError};
use crate::cli::{BotCommand, Output, QueueCommand};

pub async fn run_bot(cmd: BotCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        BotCommand::List { server } => {
            let client = Client::new(&server)?;
            let (_, page) = client.call(Method::GET, "/v1/bots", None).await?;
            if client.output == Output::Json {
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = page["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|b| {
                            let steps: Vec<String> = b["steps"]
                                .as_array()
                                .map(|s| {
                                    s.iter()
                                        .map(|x| x["uses"].as_str().unwrap_or("?").to_string())
                                        .collect()
                                })
                                .unwrap_or_default();
                            let triggers: Vec<String> = b["triggers"]
                                .as_array()
                                .map(|t| {
                                    t.iter()
                                        .map(|x| {
                                            x.as_object()
                                                .and_then(|o| o.iter().next())
                                                .map(|(k, v)| {
                                                    format!(
                                                        "{k}: {}",
                                                        v.as_str()
                                                            .map(str::to_string)
                                                            .unwrap_or_else(|| v.to_string())
                                                    )
                                                })
                                                .unwrap_or_default()
                                        })
                                        .collect()
                                })
                                .unwrap_or_default();
                            vec![
                                b["name"].as_str().unwrap_or("").to_string(),
                                b["queue"].as_str().unwrap_or("").to_string(),
                                steps.join(" → "),
                                if triggers.is_empty() {
                                    "-".into()
                                } else {
                                    triggers.join(", ")
                                },
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print_table(&["NAME", "QUEUE", "STEPS", "TRIGGERS"], &rows);
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
            let (_, page) = client.call(Method::GET, "/v1/queues", None).await?;
            if client.output == Output::Json {
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = page["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|q| {
                            vec![
                                q["name"].as_str().unwrap_or("").to_string(),
                                q["queued"].to_string(),
                                q["running"].to_string(),
                                q["scheduled"].to_string(),
                                q["dead"].to_string(),
                                format!(
                                    "{:.1}s",
                                    q["oldest_queued_age_seconds"].as_f64().unwrap_or(0.0)
                                ),
                                q["capacity"]
                                    .as_u64()
                                    .map(|c| c.to_string())
                                    .unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print_table(
                &[
                    "QUEUE",
                    "QUEUED",
                    "RUNNING",
                    "SCHEDULED",
                    "DEAD",
                    "OLDEST",
                    "CAPACITY",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
