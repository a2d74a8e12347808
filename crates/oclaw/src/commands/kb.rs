//! `oclaw kb create|add|list|search|remove` through a running node's `/v1/kb` API, and
//! `oclaw kb eval` on a scratch store in this process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{
    cell as text, encode, exit, get_list, item_rows, print_json, print_table, Client, ClientError,
};
use crate::cli::{KbCommand, Output};

/// One line of a passage, at most `n` characters.
fn excerpt(s: &str, n: usize) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= n {
        return line;
    }
    format!("{}…", line.chars().take(n - 1).collect::<String>())
}

pub async fn run(cmd: KbCommand) -> Result<ExitCode, ClientError> {
    match cmd {
        KbCommand::Create { name, server } => {
            let client = Client::new(&server)?;
            let (_, c) = client
                .call(Method::POST, "/v1/kb", Some(&json!({"name": name})))
                .await?;
            if client.output == Output::Json {
                print_json(&c);
            } else {
                println!("created collection {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::List { name: None, server } => {
            let client = Client::new(&server)?;
            if let Some(page) = get_list(&client, "/v1/kb").await? {
                print_table(
                    &["NAME", "DOCUMENTS", "CHUNKS", "EMBEDDER", "CREATED"],
                    &item_rows(&page, |c| {
                        vec![
                            text(&c["name"]),
                            text(&c["documents"]),
                            text(&c["chunks"]),
                            c["embedder"]
                                .as_str()
                                .map(|e| format!("{e} ({})", text(&c["dimensions"])))
                                .unwrap_or_else(|| "none (full-text)".into()),
                            text(&c["created_at"]),
                        ]
                    }),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::List {
            name: Some(name),
            server,
        } => {
            let client = Client::new(&server)?;
            let path = format!("/v1/kb/{}/documents?limit=1000", encode(&name));
            if let Some(page) = get_list(&client, &path).await? {
                print_table(
                    &["ID", "TITLE", "CHUNKS", "SOURCE", "UPDATED"],
                    &item_rows(&page, |d| {
                        vec![
                            text(&d["id"]),
                            text(&d["title"]),
                            text(&d["chunks"]),
                            text(&d["source"]),
                            text(&d["updated_at"]),
                        ]
                    }),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Search {
            name,
            query,
            k,
            mode,
            filter,
            server,
        } => {
            let client = Client::new(&server)?;
            let mut path = format!(
                "/v1/kb/{}/search?q={}&k={k}&mode={}",
                encode(&name),
                encode(&query),
                encode(&mode)
            );
            if let Some(f) = filter {
                path.push_str(&format!("&filter={}", encode(&f)));
            }
            let (_, r) = client.call(Method::GET, &path, None).await?;
            if client.output == Output::Json {
                print_json(&r);
                return Ok(ExitCode::SUCCESS);
            }
            let hits = r["hits"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Vec<String>> = hits
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    vec![
                        (i + 1).to_string(),
                        format!("{:.4}", h["score"].as_f64().unwrap_or_default()),
                        text(&h["document"]),
                        text(&h["title"]),
                        excerpt(h["text"].as_str().unwrap_or_default(), 70),
                    ]
                })
                .collect();
            print_table(&["#", "SCORE", "DOCUMENT", "TITLE", "TEXT"], &rows);
            match r["note"].as_str() {
                Some(note) => println!("{} hits ({note})", hits.len()),
                None => println!("{} hits ({})", hits.len(), text(&r["mode"])),
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Remove {
            name,
            id,
            yes,
            server,
        } => {
            let client = Client::new(&server)?;
            match id {
                Some(id) => {
                    client
                        .call(
                            Method::DELETE,
                            &format!("/v1/kb/{}/documents/{}", encode(&name), encode(&id)),
                            None,
                        )
                        .await?;
                    println!("removed document {id} from {name}");
                }
                None if !yes => {
                    return Err(ClientError::Usage(format!(
                        "this removes collection {name} with every document in it; add --yes, or give a document id"
                    )))
                }
                None => {
                    client
                        .call(Method::DELETE, &format!("/v1/kb/{}", encode(&name)), None)
                        .await?;
                    println!("removed collection {name}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Add {
            name,
            paths,
            url,
            id,
            title,
            metadata,
            no_wait,
            server,
        } => {
            let client = Client::new(&server)?;
            add(
                &client,
                AddArgs {
                    name,
                    paths,
                    urls: url,
                    id,
                    title,
                    metadata,
                    wait: !no_wait,
                },
            )
            .await
        }
        KbCommand::Eval {
            file,
            model_dir,
            lang,
            verbose,
            output,
        } => eval(&file, &model_dir, lang.as_deref(), verbose, output).await,
    }
}

struct AddArgs {
    name: String,
    paths: Vec<PathBuf>,
    urls: Vec<String>,
    id: Option<String>,
    title: Option<String>,
    metadata: Option<String>,
    wait: bool,
}

/// One document to send: its id and the body fields.
struct Doc {
    id: String,
    body: Map<String, Value>,
}

/// Documents that could not be sent: (id, reason).
type Refused = Vec<(String, String)>;

fn collect(args: &AddArgs) -> Result<(Vec<Doc>, Refused), ClientError> {
    let metadata = match &args.metadata {
        None => None,
        Some(m) => match serde_json::from_str::<Value>(m) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => {
                return Err(ClientError::Usage(
                    "--metadata must be a JSON object, e.g. '{\"lang\":\"en\"}'".into(),
                ))
            }
        },
    };
    let mut docs = Vec::new();
    let mut refused = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            return Err(ClientError::Usage(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let files = oclaw_knowledge::document_files(path).map_err(ClientError::Usage)?;
        let in_folder = path.is_dir();
        for (rel, file) in files {
            let id = if in_folder {
                rel
            } else {
                path.display().to_string()
            };
            let bytes = std::fs::read(&file)
                .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", file.display())))?;
            match String::from_utf8(bytes) {
                Ok(t) => {
                    let mut body = Map::new();
                    body.insert("id".into(), json!(id));
                    body.insert("source".into(), json!(file.display().to_string()));
                    body.insert("text".into(), json!(t));
                    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
                    let format = match ext.to_ascii_lowercase().as_str() {
                        "html" | "htm" => "html",
                        "txt" | "text" => "text",
                        _ => "markdown",
                    };
                    body.insert("format".into(), json!(format));
                    docs.push(Doc { id, body });
                }
                Err(_) => refused.push((id, "OC-2025 the document is not UTF-8 text".to_string())),
            }
        }
    }
    for u in &args.urls {
        let mut body = Map::new();
        body.insert("url".into(), json!(u));
        docs.push(Doc {
            id: u.clone(),
            body,
        });
    }
    if docs.len() == 1 {
        if let Some(id) = &args.id {
            docs[0].id = id.clone();
            docs[0].body.insert("id".into(), json!(id));
        }
    } else if args.id.is_some() {
        return Err(ClientError::Usage("--id names a single document".into()));
    }
    for d in &mut docs {
        if let Some(t) = &args.title {
            d.body.insert("title".into(), json!(t));
        }
        if let Some(m) = &metadata {
            d.body.insert("metadata".into(), m.clone());
        }
    }
    Ok((docs, refused))
}

fn progress(done: usize, total: usize, chunks: u64, failed: usize) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let mut line = format!(
        "\r[{}{}] {done}/{total} documents, {chunks} chunks",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    eprint!("{line}");
    let _ = std::io::stderr().flush();
}

async fn add(client: &Client, args: AddArgs) -> Result<ExitCode, ClientError> {
    let (docs, mut refused) = collect(&args)?;
    if docs.is_empty() && refused.is_empty() {
        return Err(ClientError::Usage(
            "nothing to add: give files, folders (with .md, .txt or .html files) or --url".into(),
        ));
    }
    let path = format!("/v1/kb/{}", encode(&args.name));
    match client.call(Method::GET, &path, None).await {
        Ok(_) => {}
        Err(ClientError::Api { status: 404, .. }) => {
            client
                .call(Method::POST, "/v1/kb", Some(&json!({"name": args.name})))
                .await?;
            eprintln!("created collection {}", args.name);
        }
        Err(e) => return Err(e),
    }
    let mut pending: Vec<(String, String)> = Vec::new();
    for d in docs {
        let (_, r) = client
            .call(
                Method::POST,
                &format!("{path}/documents"),
                Some(&Value::Object(d.body)),
            )
            .await?;
        pending.push((d.id, text(&r["task_id"])));
    }
    let total = pending.len() + refused.len();
    if !args.wait {
        for (id, task) in &pending {
            println!("{id}\tqueued as task {task}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (mut chunks, mut outcomes) = (0u64, std::collections::BTreeMap::<String, usize>::new());
    let mut done = refused.len();
    let interactive = client.output == Output::Table;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (id, task) in pending {
            let (_, t) = client
                .call(Method::GET, &format!("/v1/tasks/{}", encode(&task)), None)
                .await?;
            match t["status"].as_str() {
                Some("succeeded") => {
                    done += 1;
                    chunks += t["output"]["chunks"].as_u64().unwrap_or_default();
                    *outcomes.entry(text(&t["output"]["outcome"])).or_default() += 1;
                }
                Some("failed" | "dead" | "cancelled") => {
                    done += 1;
                    refused.push((
                        id,
                        format!(
                            "{} {}",
                            text(&t["error"]["code"]),
                            text(&t["error"]["message"])
                        ),
                    ));
                }
                _ => still.push((id, task)),
            }
        }
        pending = still;
        if interactive {
            progress(done, total, chunks, refused.len());
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if interactive {
        eprintln!();
    }
    let summary = json!({
        "collection": args.name,
        "documents": total,
        "chunks": chunks,
        "created": outcomes.get("created").copied().unwrap_or_default(),
        "replaced": outcomes.get("replaced").copied().unwrap_or_default(),
        "unchanged": outcomes.get("unchanged").copied().unwrap_or_default(),
        "failed": refused.iter().map(|(id, e)| json!({"document": id, "error": e})).collect::<Vec<_>>(),
    });
    if client.output == Output::Json {
        print_json(&summary);
    } else {
        println!(
            "{}: {} added, {} updated, {} unchanged, {} failed; {chunks} chunks indexed",
            args.name,
            summary["created"],
            summary["replaced"],
            summary["unchanged"],
            refused.len()
        );
        for (id, e) in &refused {
            println!("  {id}: {e}");
        }
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::TASK_FAILED)
    })
}

async fn eval(
    file: &Path,
    model_dir: &Path,
    lang: Option<&str>,
    verbose: bool,
    output: Output,
) -> Result<ExitCode, ClientError> {
    use oclaw_knowledge::eval::{self, EvalSet};
    let set = EvalSet::read(file).map_err(ClientError::Usage)?;
    let scratch = std::env::temp_dir().join(format!(
        "oclaw-kb-eval-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let url = format!("sqlite://{}", scratch.join("eval.db").display());
    let store = oclaw_store::open_store(&url, Default::default())
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let mut kb = oclaw_knowledge::KnowledgeBase::text_only();
    let with_model = model_dir.join("model.safetensors").is_file();
    if with_model {
        kb.embedder = Some(std::sync::Arc::new(oclaw_knowledge::LocalEmbedder::new(
            model_dir.to_path_buf(),
        )));
    } else {
        eprintln!(
            "no embedding model in {} (scripts/install-embedder.sh installs it): scoring full-text only",
            model_dir.display()
        );
    }
    if set.documents.is_none() {
        return Err(ClientError::Usage(format!(
            "{}: `documents` (a folder of the documents the questions are about) is required",
            file.display()
        )));
    }
    let scores = eval::run(&kb, store.as_ref(), &set, lang).await;
    drop(store);
    let _ = std::fs::remove_dir_all(&scratch);
    let scores = scores.map_err(|e| ClientError::Usage(e.to_string()))?;
    if output == Output::Json {
        print_json(&serde_json::to_value(&scores).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = scores
        .iter()
        .map(|s| {
            vec![
                s.mode.clone(),
                s.questions.to_string(),
                format!("{:.3}", s.recall_at_k),
                format!("{:.3}", s.mrr),
            ]
        })
        .collect();
    let recall = format!("RECALL@{}", set.k);
    print_table(&["MODE", "QUESTIONS", &recall, "MRR"], &rows);
    if verbose {
        for s in &scores {
            for q in &s.misses {
                println!("{} missed: {q}", s.mode);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
