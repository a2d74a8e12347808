//! The WebAssembly sandbox: one wasmtime engine per process (Cranelift, epoch interruption,
//! fuel, a pooling allocator), modules compiled once and pre-linked (`InstancePre`), and a fresh
//! instance per call from the pool — no state leaks from one call (or bot) to the next, and an
//! instantiation costs microseconds.
//!
//! The ABI (version 1, a core module; docs/plugins.md is the reference):
//! - exports `memory`, `oclaw_abi_v1: () -> ()`, `oclaw_alloc: (len i32) -> ptr i32` and
//!   `oclaw_call: (name_ptr, name_len, input_ptr, input_len) -> status i32`;
//! - status 0: success, the output (JSON) was handed over with `oclaw.output`; 1: permanent
//!   failure, 2: failure worth retrying — the output is then the message;
//! - imports only from module `oclaw`: `output(ptr, len)`, `log(level, ptr, len)`,
//!   `kv_get(key_ptr, key_len) -> i64`, `kv_set(key_ptr, key_len, val_ptr, val_len) -> i32`,
//!   `http_fetch(req_ptr, req_len) -> i64`. A host function that hands back bytes allocates
//!   them with the module's `oclaw_alloc` and answers `(ptr << 32) | len`, or -1 for nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use oclaw_core::ErrorCode;
use oclaw_skills::{SkillCall, SkillContext, SkillError};
use serde_json::Value;
use tokio::sync::Semaphore;
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, InstanceAllocationStrategy, InstancePre, Linker,
    Module, PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline, ValType,
};

use crate::manifest::{Limits, PluginFiles};
use crate::PluginError;

/// Largest output (or log line, key, request) a plugin may hand over in one call.
const MAX_TRANSFER: usize = 4 << 20;
/// Log lines one call may write; the rest are counted and dropped.
const MAX_LOG_LINES: u32 = 100;
/// How often the engine's epoch advances: the granularity of time limits, and how often a
/// long-running call yields its thread to other tasks.
const TICK: Duration = Duration::from_millis(2);

/// Host functions: name, capability needed (None: always allowed).
pub const HOST_FUNCTIONS: &[(&str, Option<&str>)] = &[
    ("output", None),
    ("log", Some("log")),
    ("kv_get", Some("kv")),
    ("kv_set", Some("kv")),
    ("http_fetch", Some("http")),
];

/// Why a call was stopped by the host (carried through wasmtime's error as its root cause).
#[derive(Debug)]
enum Fault {
    Timeout(Duration),
    Memory { limit: usize, desired: usize },
    Denied(String),
    BadTransfer(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Timeout(t) => write!(f, "ran longer than its limit of {t:?}"),
            Fault::Memory { limit, desired } => write!(
                f,
                "tried to grow its memory to {desired} bytes, past its limit of {limit} bytes"
            ),
            Fault::Denied(m) | Fault::BadTransfer(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Fault {}

/// What one call may do: the bot's grant intersected with the manifest's request.
#[derive(Debug, Clone, Default)]
struct Granted {
    log: bool,
    kv: bool,
    http: bool,
    http_allow: Vec<String>,
}

/// The store's data for one call.
struct CallState {
    plugin: Arc<str>,
    ctx: Option<SkillContext>,
    granted: Granted,
    output: Option<Vec<u8>>,
    memory_limit: usize,
    log_lines: u32,
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(Fault::Memory {
                limit: self.memory_limit,
                desired,
            }));
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The process's plugin engine.
pub struct Runtime {
    engine: Engine,
    /// Threads plugin calls run on (None: the caller's runtime).
    threads: Option<tokio::runtime::Runtime>,
    linker: Linker<CallState>,
    permits: Arc<Semaphore>,
    pub max_memory: usize,
    pub max_timeout: Duration,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Allowed from async code, unlike dropping the runtime itself.
        if let Some(rt) = self.threads.take() {
            rt.shutdown_background();
        }
    }
}

/// A plugin compiled and linked, ready to be called.
pub struct Compiled {
    pub files: PluginFiles,
    pub limits: Limits,
    /// The host functions the module imports.
    pub imports: Vec<String>,
    pre: InstancePre<CallState>,
}

fn invalid(message: String) -> PluginError {
    SkillError::permanent(ErrorCode::PluginInvalid, message)
}

impl Runtime {
    /// One engine with room for `concurrent` calls at once, each memory at most `max_memory`.
    /// `threads`: plugin calls run on that many threads of their own (0: on the caller's
    /// runtime).
    pub fn new(
        max_memory: usize,
        max_timeout: Duration,
        concurrent: u32,
        threads: usize,
    ) -> Result<Runtime, String> {
        let mut pool = PoolingAllocationConfig::new();
        let slots = concurrent.max(1);
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .max_memory_size(max_memory);
        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .consume_fuel(true)
            .max_wasm_stack(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| format!("plugin engine: {e}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("oclaw-plugin-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .map_err(|e| format!("plugin epoch thread: {e}"))?;
        let mut linker = Linker::new(&engine);
        define_host_functions(&mut linker).map_err(|e| format!("plugin host functions: {e}"))?;
        let threads = if threads == 0 {
            None
        } else {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("oclaw-plugin")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("plugin threads: {e}"))?,
            )
        };
        Ok(Runtime {
            engine,
            threads,
            linker,
            permits: Arc::new(Semaphore::new(slots as usize)),
            max_memory,
            max_timeout,
        })
    }

    /// Compiles and checks a plugin: a WebAssembly module of ABI 1 that imports only host
    /// functions its manifest asks for.
    pub fn compile(&self, files: PluginFiles) -> Result<Compiled, PluginError> {
        let name = files.manifest.name.clone();
        let module = Module::new(&self.engine, &files.module_bytes).map_err(|e| {
            invalid(format!(
                "plugin `{name}`: the module is not valid WebAssembly: {}",
                first_line(&e)
            ))
        })?;
        let mut imports = Vec::new();
        for imp in module.imports() {
            let full = format!("{}.{}", imp.module(), imp.name());
            let known = HOST_FUNCTIONS.iter().find(|(n, _)| *n == imp.name());
            match (imp.module(), known) {
                ("oclaw", Some((_, cap))) => {
                    if let Some(cap) = cap {
                        if !files.manifest.asks_for(cap) {
                            return Err(invalid(format!(
                                "plugin `{name}`: the module imports `{full}` but the manifest does not ask for capability `{cap}`"
                            )));
                        }
                    }
                    imports.push(imp.name().to_string());
                }
                _ => {
                    return Err(invalid(format!(
                        "plugin `{name}`: the module imports `{full}`; plugins get no ambient access (no WASI, files, clock or network) — only the `oclaw.*` host functions exist: {}",
                        HOST_FUNCTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
        let i32s = |n: usize| vec!["i32"; n];
        let expect: &[(&str, Vec<&str>, Vec<&str>)] = &[
            ("oclaw_abi_v1", vec![], vec![]),
            ("oclaw_alloc", i32s(1), i32s(1)),
            ("oclaw_call", i32s(4), i32s(1)),
        ];
        for (export, params, results) in expect {
            match module.get_export(export) {
                Some(ExternType::Func(ft)) => {
                    let p: Vec<&str> = ft.params().map(|t| val_name(&t)).collect();
                    let r: Vec<&str> = ft.results().map(|t| val_name(&t)).collect();
                    if &p != params || &r != results {
                        return Err(invalid(format!(
                            "plugin `{name}`: export `{export}` has type ({}) -> ({}), the ABI wants ({}) -> ({})",
                            p.join(", "), r.join(", "), params.join(", "), results.join(", ")
                        )));
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "plugin `{name}`: not an OpenClaw plugin of ABI 1 — the module does not export function `{export}`"
                    )))
                }
            }
        }
        let limits = files.manifest.limits(self.max_memory, self.max_timeout);
        match module.get_export("memory") {
            Some(ExternType::Memory(m)) => {
                let initial = m.minimum().saturating_mul(m.page_size());
                if initial > limits.memory_bytes as u64 {
                    return Err(invalid(format!(
                        "plugin `{name}`: its memory starts at {initial} bytes, more than its limit of {} bytes",
                        limits.memory_bytes
                    )));
                }
            }
            _ => {
                return Err(invalid(format!(
                    "plugin `{name}`: the module does not export its `memory`"
                )))
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| invalid(format!("plugin `{name}`: {}", first_line(&e))))?;
        Ok(Compiled {
            files,
            limits,
            imports,
            pre,
        })
    }

    /// Runs `skill` of `plugin` on `input`. With plugin threads, a call that runs longer than a
    /// tick finishes on them: a runaway plugin can only take those, never the threads serving
    /// the API and the other bots.
    pub async fn call(
        &self,
        plugin: Arc<Compiled>,
        ctx: Option<SkillContext>,
        skill: String,
        input: Value,
    ) -> Result<Value, PluginError> {
        let mut call = Box::pin(run_call(
            self.engine.clone(),
            self.permits.clone(),
            plugin,
            ctx,
            skill,
            input,
        ));
        let Some(rt) = &self.threads else {
            return call.await;
        };
        // A call starts on the caller's thread: most finish within microseconds, with no thread
        // hand-off. One still running after a tick of the epoch clock (its first yield, or a
        // host call that waits) moves to the plugin threads for the rest, so a runaway plugin
        // holds a node thread for one tick at most.
        let started = Instant::now();
        let quick = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending if started.elapsed() >= TICK => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        })
        .await;
        if let Some(result) = quick {
            return result;
        }
        // Dropping the caller (a task timeout, a shutdown) stops the call too.
        struct AbortOnDrop(tokio::task::JoinHandle<Result<Value, PluginError>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut guard = AbortOnDrop(rt.spawn(call));
        match (&mut guard.0).await {
            Ok(r) => r,
            Err(e) => Err(SkillError::permanent(
                ErrorCode::PluginTrapped,
                format!("plugin call stopped: {e}"),
            )),
        }
    }
}

/// One call: a fresh instance from the pool, limits set, input in, output out.
async fn run_call(
    engine: Engine,
    permits: Arc<Semaphore>,
    plugin: Arc<Compiled>,
    ctx: Option<SkillContext>,
    skill: String,
    input: Value,
) -> Result<Value, PluginError> {
    let ctx = ctx.as_ref();
    let skill = skill.as_str();
    let input = &input;
    let manifest = &plugin.files.manifest;
    let plugin_name: Arc<str> = Arc::from(manifest.name.as_str());
    let granted = ctx
        .and_then(|c| c.grants.get(&manifest.name))
        .map(|g| {
            let has = |cap: &str| manifest.asks_for(cap) && g.capabilities.iter().any(|c| c == cap);
            Granted {
                log: has("log"),
                kv: has("kv"),
                http: has("http"),
                http_allow: g.http_allow.clone(),
            }
        })
        .unwrap_or_default();
    let input_bytes = serde_json::to_vec(input)
        .map_err(|e| SkillError::invalid(format!("{}: input: {e}", manifest.name)))?;
    let _permit = permits.acquire().await.map_err(|_| {
        SkillError::transient(ErrorCode::PluginUnavailable, "plugin runtime closed")
    })?;
    let limits = plugin.limits;
    let mut store = Store::new(
        &engine,
        CallState {
            plugin: plugin_name.clone(),
            ctx: ctx.cloned(),
            granted,
            output: None,
            memory_limit: limits.memory_bytes,
            log_lines: 0,
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    store
        .set_fuel(if limits.fuel == 0 {
            u64::MAX
        } else {
            limits.fuel
        })
        .map_err(|e| SkillError::permanent(ErrorCode::PluginTrapped, e.to_string()))?;
    let started = Instant::now();
    let timeout = limits.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if started.elapsed() >= timeout {
            Err(wasmtime::Error::new(Fault::Timeout(timeout)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    let run = async {
        let instance = plugin.pre.instantiate_async(&mut store).await?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, "oclaw_alloc")?;
        let call =
            instance.get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "oclaw_call")?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| wasmtime::Error::msg("the module has no memory"))?;
        let place = async |store: &mut Store<CallState>, bytes: &[u8]| {
            let len =
                i32::try_from(bytes.len()).map_err(|_| wasmtime::Error::msg("value too large"))?;
            let ptr = alloc.call_async(&mut *store, len).await?;
            memory
                .write(&mut *store, ptr as u32 as usize, bytes)
                .map_err(|_| {
                    wasmtime::Error::new(Fault::BadTransfer(format!(
                        "oclaw_alloc({len}) answered {ptr}, which is outside its memory"
                    )))
                })?;
            Ok::<(i32, i32), wasmtime::Error>((ptr, len))
        };
        let (np, nl) = place(&mut store, skill.as_bytes()).await?;
        let (ip, il) = place(&mut store, &input_bytes).await?;
        call.call_async(&mut store, (np, nl, ip, il)).await
    };
    // The epoch callback stops a runaway guest; this bounds a call stuck in a host function.
    let outcome = tokio::time::timeout(timeout + Duration::from_millis(100), run).await;
    let who = format!(
        "plugin {}@{} skill `{skill}`",
        manifest.name, manifest.version
    );
    let status = match outcome {
        Err(_) => {
            return Err(SkillError::permanent(
                ErrorCode::PluginTimeout,
                format!("{who}: {}", Fault::Timeout(timeout)),
            ))
        }
        Ok(Err(e)) => return Err(classify(&who, e)),
        Ok(Ok(status)) => status,
    };
    let output = store.data_mut().output.take();
    match status {
        0 => {
            let bytes = output.ok_or_else(|| {
                SkillError::permanent(
                    ErrorCode::PluginBadOutput,
                    format!(
                        "{who}: returned success without handing over an output (oclaw.output)"
                    ),
                )
            })?;
            serde_json::from_slice(&bytes).map_err(|e| {
                SkillError::permanent(
                    ErrorCode::PluginBadOutput,
                    format!("{who}: output is not valid JSON ({e}): {}", preview(&bytes)),
                )
            })
        }
        1 | 2 => {
            let message = output
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|| "failed without a message".into());
            let message = format!("{who}: {message}");
            Err(if status == 2 {
                SkillError::transient(ErrorCode::SkillFailed, message)
            } else {
                SkillError::permanent(ErrorCode::SkillFailed, message)
            })
        }
        other => Err(SkillError::permanent(
            ErrorCode::PluginBadOutput,
            format!("{who}: answered status {other}; the ABI knows 0 (ok), 1 (failed), 2 (retry)"),
        )),
    }
}

fn val_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        _ => "other",
    }
}

fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines().next().unwrap_or("").to_string()
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
    if bytes.len() > 120 {
        format!("{s}…")
    } else {
        s
    }
}

/// Turns a failed call into the error the task records.
fn classify(who: &str, e: wasmtime::Error) -> PluginError {
    if let Some(f) = e.downcast_ref::<Fault>() {
        let code = match f {
            Fault::Timeout(_) => ErrorCode::PluginTimeout,
            Fault::Memory { .. } => ErrorCode::PluginMemoryLimit,
            Fault::Denied(_) => ErrorCode::PluginCapabilityDenied,
            Fault::BadTransfer(_) => ErrorCode::PluginTrapped,
        };
        return SkillError::permanent(code, format!("{who}: {f}"));
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => SkillError::permanent(
                ErrorCode::PluginTimeout,
                format!("{who}: ran out of fuel (its limits.fuel)"),
            ),
            Trap::Interrupt => SkillError::permanent(
                ErrorCode::PluginTimeout,
                format!("{who}: interrupted at its time limit"),
            ),
            other => {
                SkillError::permanent(ErrorCode::PluginTrapped, format!("{who}: trapped: {other}"))
            }
        };
    }
    SkillError::permanent(
        ErrorCode::PluginTrapped,
        format!("{who}: {}", first_line(&e)),
    )
}

/// Bytes the guest passed as (ptr, len).
fn read_guest(caller: &mut Caller<'_, CallState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let len = usize::try_from(len)
        .map_err(|_| wasmtime::Error::new(Fault::BadTransfer(format!("negative length {len}"))))?;
    if len > MAX_TRANSFER {
        return Err(wasmtime::Error::new(Fault::BadTransfer(format!(
            "handed over {len} bytes; the limit is {MAX_TRANSFER}"
        ))));
    }
    let memory = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return Err(wasmtime::Error::msg("the module has no memory")),
    };
    let start = ptr as u32 as usize;
    memory
        .data(&caller)
        .get(start..start.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            wasmtime::Error::new(Fault::BadTransfer(format!(
                "pointer {start}+{len} is outside its memory"
            )))
        })
}

/// Copies `bytes` into guest memory allocated with its `oclaw_alloc`; answers `(ptr << 32) | len`.
async fn give_guest(caller: &mut Caller<'_, CallState>, bytes: &[u8]) -> wasmtime::Result<i64> {
    let alloc = match caller.get_export("oclaw_alloc") {
        Some(Extern::Func(f)) => f.typed::<i32, i32>(&*caller)?,
        _ => return Err(wasmtime::Error::msg("the module has no oclaw_alloc")),
    };
    let len = i32::try_from(bytes.len()).map_err(|_| wasmtime::Error::msg("value too large"))?;
    let ptr = alloc.call_async(&mut *caller, len).await?;
    let memory = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return Err(wasmtime::Error::msg("the module has no memory")),
    };
    memory
        .write(&mut *caller, ptr as u32 as usize, bytes)
        .map_err(|_| {
            wasmtime::Error::new(Fault::BadTransfer(format!(
                "oclaw_alloc({len}) answered {ptr}, which is outside its memory"
            )))
        })?;
    Ok(((ptr as u32 as i64) << 32) | len as i64)
}

fn denied(state: &CallState, cap: &str, what: &str) -> wasmtime::Error {
    let bot = state.ctx.as_ref().map(|c| c.bot.as_str()).unwrap_or("-");
    wasmtime::Error::new(Fault::Denied(format!(
        "{what} needs capability `{cap}`, which bot `{bot}` does not grant to plugin `{}` (add it to spec.grants.{}.capabilities)",
        state.plugin, state.plugin
    )))
}

fn text(bytes: &[u8], what: &str) -> wasmtime::Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| wasmtime::Error::new(Fault::BadTransfer(format!("{what} is not UTF-8"))))
}

fn define_host_functions(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "oclaw",
        "output",
        |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read_guest(&mut caller, ptr, len)?;
            caller.data_mut().output = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "oclaw",
        "log",
        |mut caller: Caller<'_, CallState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            if !caller.data().granted.log {
                return Err(denied(caller.data(), "log", "oclaw.log"));
            }
            let line = read_guest(&mut caller, ptr, len)?;
            let state = caller.data_mut();
            state.log_lines += 1;
            if state.log_lines > MAX_LOG_LINES {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&line);
            let (bot, task) = state
                .ctx
                .as_ref()
                .map(|c| (c.bot.clone(), c.task_id.to_string()))
                .unwrap_or_default();
            let plugin = &*state.plugin;
            match level {
                0 => tracing::error!(component = "plugin", plugin, bot, task_id = %task, "{line}"),
                1 => tracing::warn!(component = "plugin", plugin, bot, task_id = %task, "{line}"),
                2 => tracing::info!(component = "plugin", plugin, bot, task_id = %task, "{line}"),
                _ => tracing::debug!(component = "plugin", plugin, bot, task_id = %task, "{line}"),
            }
            Ok(())
        },
    )?;
    linker.func_wrap_async(
        "oclaw",
        "kv_get",
        |mut caller: Caller<'_, CallState>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                if !caller.data().granted.kv {
                    return Err(denied(caller.data(), "kv", "oclaw.kv_get"));
                }
                let key = text(&read_guest(&mut caller, ptr, len)?, "the key")?;
                let Some(ctx) = caller.data().ctx.clone() else {
                    return Ok(-1);
                };
                let found = ctx
                    .store
                    .kv_get(&ctx.bot, &key, Utc::now())
                    .await
                    .map_err(|e| wasmtime::Error::msg(format!("kv_get: {e}")))?;
                match found {
                    None => Ok(-1i64),
                    Some(v) => {
                        let bytes = serde_json::to_vec(&v).unwrap_or_default();
                        give_guest(&mut caller, &bytes).await
                    }
                }
            })
        },
    )?;
    linker.func_wrap_async(
        "oclaw",
        "kv_set",
        |mut caller: Caller<'_, CallState>, (kp, kl, vp, vl): (i32, i32, i32, i32)| {
            Box::new(async move {
                if !caller.data().granted.kv {
                    return Err(denied(caller.data(), "kv", "oclaw.kv_set"));
                }
                let key = text(&read_guest(&mut caller, kp, kl)?, "the key")?;
                let raw = read_guest(&mut caller, vp, vl)?;
                let Ok(value) = serde_json::from_slice::<Value>(&raw) else {
                    return Ok(-1i32);
                };
                if key.is_empty() || key.len() > 512 {
                    return Ok(-1);
                }
                let Some(ctx) = caller.data().ctx.clone() else {
                    return Ok(-1);
                };
                let expires = chrono::Duration::from_std(ctx.cache_ttl)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(|d| Utc::now() + d);
                ctx.store
                    .kv_set(&ctx.bot, &key, &value, expires)
                    .await
                    .map_err(|e| wasmtime::Error::msg(format!("kv_set: {e}")))?;
                Ok(0)
            })
        },
    )?;
    linker.func_wrap_async(
        "oclaw",
        "http_fetch",
        |mut caller: Caller<'_, CallState>, (ptr, len): (i32, i32)| {
            Box::new(async move {
                if !caller.data().granted.http {
                    return Err(denied(caller.data(), "http", "oclaw.http_fetch"));
                }
                let raw = read_guest(&mut caller, ptr, len)?;
                let answer = match serde_json::from_slice::<Value>(&raw) {
                    Err(e) => serde_json::json!({"error": {"code": oclaw_core::ErrorCode::SkillInvalidInput.code(), "message": format!("request is not JSON: {e}")}}),
                    Ok(request) => {
                        let url = request.get("url").and_then(Value::as_str).unwrap_or("");
                        if !host_allowed(url, &caller.data().granted.http_allow) {
                            let who = caller.data();
                            return Err(wasmtime::Error::new(Fault::Denied(format!(
                                "oclaw.http_fetch of `{url}`: the host is not in spec.grants.{}.http_allow of bot `{}`",
                                who.plugin,
                                who.ctx.as_ref().map(|c| c.bot.as_str()).unwrap_or("-")
                            ))));
                        }
                        match caller.data().ctx.clone() {
                            None => serde_json::json!({"error": {"code": oclaw_core::ErrorCode::PluginCapabilityDenied.code(), "message": "no bot context"}}),
                            Some(ctx) => fetch(&ctx, request).await,
                        }
                    }
                };
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                give_guest(&mut caller, &bytes).await
            })
        },
    )?;
    Ok(())
}

/// One outbound request through the node's `http.request` (SSRF guard, trace header);
/// answers `{status, headers, body}` or `{error: {code, message}}`.
async fn fetch(ctx: &SkillContext, request: Value) -> Value {
    let mut with = serde_json::Map::new();
    for key in ["url", "method", "headers", "query", "body", "timeout"] {
        if let Some(v) = request.get(key) {
            with.insert(key.into(), v.clone());
        }
    }
    with.insert("fail_on_status".into(), Value::Bool(false));
    let call = SkillCall {
        with: Value::Object(with),
        data: Value::Null,
    };
    use oclaw_skills::Skill;
    match oclaw_skills::HttpRequest.run(ctx, call).await {
        Ok(v) => v,
        Err(e) => serde_json::json!({"error": {"code": e.code.code(), "message": e.message}}),
    }
}

/// Whether `url`'s host (or host:port) is in the allowlist.
fn host_allowed(url: &str, allow: &[String]) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let with_port = parsed
        .port_or_known_default()
        .map(|p| format!("{host}:{p}"))
        .unwrap_or_else(|| host.to_string());
    allow
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&with_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_host_or_host_and_port() {
        let allow = vec!["example.com".to_string(), "127.0.0.1:8080".to_string()];
        assert!(host_allowed("https://example.com/x", &allow));
        assert!(host_allowed("http://example.com:81/x", &allow));
        assert!(host_allowed("http://127.0.0.1:8080/", &allow));
        assert!(!host_allowed("http://127.0.0.1:8081/", &allow));
        assert!(!host_allowed("http://evil.example.com/", &allow));
        assert!(!host_allowed("not a url", &allow));
    }
}
