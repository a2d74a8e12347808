//! `oclaw token create|list|revoke` and `oclaw audit list|verify`, through a running node's
//! `/v1/tokens` and `/v1/audit`.

use std::process::ExitCode;

use oclaw_store::access::{verify_chain, AuditEntry};
use reqwest::Method;
use serde_json::json;

use super::client::{
    cell as text, encode, exit, get_list, item_rows, print_json, print_table, Client, ClientError,
};
use crate::cli::{AuditCommand, Output, SecretCommand, TokenCommand};

pub async fn run_token(cmd: TokenCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        TokenCommand::Create {
            tenant,
            role,
            name,
            server,
        } => {
            let client = Client::new(&server)?;
            let (_, t) = client
                .call(
                    Method::POST,
                    "/v1/tokens",
                    Some(&json!({"tenant": tenant, "role": role, "name": name})),
                )
                .await?;
            if client.output == Output::Json {
                print_json(&t);
            } else {
                println!(
                    "created token {} (tenant {}, role {})",
                    text(&t["id"]),
                    text(&t["tenant"]),
                    text(&t["role"])
                );
                println!("{}", text(&t["token"]));
                eprintln!("keep it now: it is stored only as a hash and cannot be shown again");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { tenant, server } => {
            let client = Client::new(&server)?;
            let path = match tenant {
                Some(t) => format!("/v1/tokens?tenant={}", encode(&t)),
                None => "/v1/tokens".into(),
            };
            if let Some(page) = get_list(&client, &path).await? {
                print_table(
                    &["ID", "TENANT", "ROLE", "NAME", "CREATED", "REVOKED"],
                    &item_rows(&page, |t| {
                        ["id", "tenant", "role", "name", "created_at", "revoked_at"]
                            .iter()
                            .map(|f| text(&t[*f]))
                            .collect()
                    }),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { id, server } => {
            let client = Client::new(&server)?;
            let (_, t) = client
                .call(Method::DELETE, &format!("/v1/tokens/{}", encode(&id)), None)
                .await?;
            if client.output == Output::Json {
                print_json(&t);
            } else {
                println!("revoked token {id} at {}", text(&t["revoked_at"]));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every entry after `after`, page by page.
async fn all_entries(client: &Client) -> Result<Vec<AuditEntry>, ClientError> {
    let mut out: Vec<AuditEntry> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=1000&cursor={c}"),
            None => "/v1/audit?limit=1000".into(),
        };
        let (_, page) = client.call(Method::GET, &path, None).await?;
        let items: Vec<AuditEntry> = serde_json::from_value(page["items"].clone())
            .map_err(|e| ClientError::Transport(format!("unexpected audit page: {e}")))?;
        out.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(out),
        }
    }
}

pub async fn run_audit(cmd: AuditCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        AuditCommand::List {
            tenant,
            after,
            limit,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut path = format!("/v1/audit?limit={limit}");
            if let Some(t) = tenant {
                path.push_str(&format!("&tenant={}", encode(&t)));
            }
            if let Some(a) = after {
                path.push_str(&format!("&cursor={a}"));
            }
            if let Some(page) = get_list(&client, &path).await? {
                print_table(
                    &[
                        "ID", "AT", "ACTOR", "TENANT", "ACTION", "TARGET", "FROM", "RESULT",
                    ],
                    &item_rows(&page, |e| {
                        [
                            "id", "at", "actor", "tenant", "action", "target", "source", "result",
                        ]
                        .iter()
                        .map(|f| text(&e[*f]))
                        .collect()
                    }),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { server } => {
            let client = Client::new(&server)?;
            let entries = all_entries(&client).await?;
            match verify_chain(&entries) {
                Ok(n) => {
                    if client.output == Output::Json {
                        print_json(&json!({"ok": true, "entries": n,
                            "first": entries.first().map(|e| e.id), "last": entries.last().map(|e| e.id)}));
                    } else {
                        match (entries.first(), entries.last()) {
                            (Some(a), Some(b)) => println!(
                                "audit log holds: {n} entries, {} to {}, every hash chained",
                                a.id, b.id
                            ),
                            _ => println!("audit log is empty"),
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    if client.output == Output::Json {
                        print_json(&json!({"ok": false, "entry": b.id, "why": b.why}));
                    } else {
                        eprintln!("audit log broken at entry {}: {}", b.id, b.why);
                    }
                    Ok(ExitCode::from(exit::FAILURE))
                }
            }
        }
    }
}

fn with_tenant(path: String, tenant: &Option<String>) -> String {
    match tenant {
        Some(t) => format!("{path}?tenant={}", encode(t)),
        None => path,
    }
}

pub async fn run_secret(cmd: SecretCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        SecretCommand::Set {
            name,
            value,
            tenant,
            server,
        } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut v).map_err(|e| {
                        ClientError::Usage(format!("reading the value from stdin: {e}"))
                    })?;
                    v.strip_suffix('\n').unwrap_or(&v).to_string()
                }
            };
            let client = Client::new(&server)?;
            let path = with_tenant(format!("/v1/secrets/{}", encode(&name)), &tenant);
            let (_, r) = client
                .call(Method::PUT, &path, Some(&json!({ "value": value })))
                .await?;
            if client.output == Output::Json {
                print_json(&r);
            } else if r["created"] == true {
                println!("set secret {name} (tenant {})", text(&r["tenant"]));
            } else {
                println!("replaced secret {name} (tenant {})", text(&r["tenant"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::List { tenant, server } => {
            let client = Client::new(&server)?;
            let path = with_tenant("/v1/secrets".into(), &tenant);
            if let Some(page) = get_list(&client, &path).await? {
                print_table(
                    &["NAME", "UPDATED"],
                    &item_rows(&page, |s| vec![text(&s["name"]), text(&s["updated_at"])]),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Remove {
            name,
            tenant,
            server,
        } => {
            let client = Client::new(&server)?;
            let path = with_tenant(format!("/v1/secrets/{}", encode(&name)), &tenant);
            client.call(Method::DELETE, &path, None).await?;
            if client.output != Output::Json {
                println!("removed secret {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
