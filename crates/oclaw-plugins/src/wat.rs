//! Small plugins written in WebAssembly text, for benchmarks and tests: the ABI's exports with a
//! bump allocator around a body of the caller's, and the folder with a manifest around that.

use std::path::{Path, PathBuf};

/// A module of ABI 1: `imports` (more `(import "oclaw" ...)` lines), `data` segments, and the
/// body of `oclaw_call` (parameters 0..3: name ptr/len, input ptr/len; a local `$i`; `$output`).
pub fn module(imports: &str, data: &str, body: &str) -> String {
    format!(
        r#"(module
  (import "oclaw" "output" (func $output (param i32 i32)))
  {imports}
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 4096))
  {data}
  (func (export "oclaw_abi_v1"))
  (func (export "oclaw_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    (if (i32.gt_u (global.get $top) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.sub (i32.add (i32.div_u (global.get $top) (i32.const 65536)) (i32.const 1)) (memory.size))))))
    (local.get $p))
  (func (export "oclaw_call") (param i32 i32 i32 i32) (result i32)
    (local $i i32)
    {body}))"#
    )
}

/// Writes `<root>/src-<name>-<version>/` with `module.wat` and a manifest (one skill, `run`)
/// whose digest matches; answers the folder.
pub fn write_plugin(
    root: &Path,
    name: &str,
    version: &str,
    wat: &str,
    caps: &[&str],
    limits: &str,
) -> std::io::Result<PathBuf> {
    let dir = root.join(format!("src-{name}-{version}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("module.wat"), wat)?;
    let digest = crate::manifest::sha256_hex(wat.as_bytes());
    let manifest = format!(
        "name: {name}\nversion: {version}\nabi: 1\nmodule: module.wat\nsha256: \"{digest}\"\ncapabilities: [{}]\nlimits: {limits}\nskills:\n  - name: run\n    summary: \"{name}: a module in WebAssembly text\"\n",
        caps.join(", ")
    );
    std::fs::write(dir.join("plugin.yaml"), manifest)?;
    Ok(dir)
}
