//! `oclaw bench drain|bare|latency|http|chat|llm|memory|fanout|plugin|resume|spread`: the benchmarks of `oclaw-bench`, run on a fresh
//! runtime with their report printed.

use std::process::ExitCode;

use super::{runtime, EXIT_FAILURE};
use crate::cli::BenchCommand;

pub fn run(cmd: BenchCommand) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = match cmd {
        BenchCommand::Drain {
            tasks,
            concurrency,
            batch,
            no_batch,
            storage_url,
            workers,
            history,
            prefetch,
            keys,
        } => rt.block_on(oclaw_bench::drain::drain(
            oclaw_bench::drain::DrainOptions {
                tasks,
                concurrency,
                batch,
                batching: !no_batch,
                storage_url,
                workers,
                history,
                prefetch,
                keys,
            },
        )),
        BenchCommand::Latency {
            samples,
            storage_url,
            workers,
        } => rt.block_on(oclaw_bench::drain::latency(
            samples,
            storage_url.as_deref(),
            workers,
        )),
        BenchCommand::Http {
            rate,
            duration,
            connections,
            batch,
            server,
            backlog,
        } => match oclaw_core::duration::parse_duration(&duration) {
            Ok(duration) => rt.block_on(oclaw_bench::http::http(
                oclaw_bench::http::HttpBenchOptions {
                    rate,
                    duration,
                    connections: connections.max(1),
                    batch: batch.max(1),
                    server,
                    backlog,
                },
            )),
            Err(e) => Err(e),
        },
        BenchCommand::Spread {
            tasks,
            task_time,
            storage_url,
        } => match oclaw_core::duration::parse_duration(&task_time) {
            Ok(task_time) => rt.block_on(oclaw_bench::spread::spread(
                oclaw_bench::spread::SpreadOptions {
                    tasks: tasks.max(1),
                    task_time,
                    storage_url,
                },
            )),
            Err(e) => Err(e),
        },
        BenchCommand::Chat {
            sessions,
            messages,
            server,
            mqtt,
            model_latency,
        } => match model_latency
            .as_deref()
            .map(oclaw_core::duration::parse_duration)
            .transpose()
        {
            Ok(model_latency) => rt.block_on(oclaw_bench::chat::chat(
                oclaw_bench::chat::ChatBenchOptions {
                    sessions: sessions.max(1),
                    messages: messages.max(1),
                    server,
                    mqtt,
                    model_latency,
                },
            )),
            Err(e) => Err(format!("--model-latency: {e}")),
        },
        BenchCommand::Llm { calls, latency } => {
            match oclaw_core::duration::parse_duration(&latency) {
                Ok(latency) => {
                    rt.block_on(oclaw_bench::llm::llm(oclaw_bench::llm::LlmBenchOptions {
                        calls: calls.max(1),
                        latency,
                    }))
                }
                Err(e) => Err(format!("--latency: {e}")),
            }
        }
        BenchCommand::Fanout { items, storage_url } => rt.block_on(oclaw_bench::fanout::fanout(
            oclaw_bench::fanout::FanoutOptions {
                items: items.max(1),
                storage_url,
            },
        )),
        BenchCommand::Waits {
            tasks,
            samples,
            storage_url,
        } => rt.block_on(oclaw_bench::waits::waits(
            oclaw_bench::waits::WaitsOptions {
                tasks: tasks.max(1),
                samples: samples.max(1),
                storage_url,
            },
        )),
        BenchCommand::Fairness {
            backlog,
            samples,
            storage_url,
        } => rt.block_on(oclaw_bench::fairness::fairness(
            oclaw_bench::fairness::FairnessOptions {
                backlog,
                samples: samples.max(1),
                storage_url,
            },
        )),
        BenchCommand::Kb {
            chunks,
            queries,
            storage_url,
            model_dir,
        } => rt.block_on(oclaw_bench::kb::kb(oclaw_bench::kb::KbOptions {
            chunks: chunks.max(1),
            queries: queries.max(1),
            storage_url,
            model_dir: Some(model_dir),
        })),
        BenchCommand::Bare {
            tasks,
            batch,
            storage_url: None,
            ..
        } => oclaw_bench::bare::sqlite(tasks.max(1), batch.max(1)),
        BenchCommand::Bare {
            tasks,
            batch,
            storage_url: Some(url),
            connections,
        } => rt.block_on(oclaw_bench::bare::postgres(
            &url,
            tasks.max(1),
            batch.max(1),
            connections.max(1),
        )),
        BenchCommand::Memory {
            idle,
            queued,
            soak,
            every,
            rate,
            bin,
        } => rt.block_on(oclaw_bench::memory::memory(
            oclaw_bench::memory::MemoryOptions {
                bin,
                idle: idle.0,
                queued,
                soak: soak.0,
                every: every.0,
                rate,
            },
        )),
        BenchCommand::Resume { rounds } => rt.block_on(oclaw_bench::resume::resume(
            oclaw_bench::resume::ResumeOptions {
                rounds: rounds.max(1),
            },
        )),
        BenchCommand::Plugin {
            calls,
            concurrency,
            plugin,
            skill,
            input,
            noisy,
            shared_threads,
        } => match serde_json::from_str(&input) {
            Ok(input) => rt.block_on(oclaw_bench::plugin::plugin(
                oclaw_bench::plugin::PluginBenchOptions {
                    noisy,
                    shared_threads,
                    calls: calls.max(1),
                    concurrency: concurrency.max(1),
                    plugin,
                    skill,
                    input,
                },
            )),
            Err(e) => Err(format!("--input is not JSON: {e}")),
        },
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
