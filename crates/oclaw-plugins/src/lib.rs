//! Skills from outside the binary: sandboxed WebAssembly plugins ([`PluginHost`]) and MCP tool
//! servers ([`mcp::McpHub`]). Both register into the node's one [`oclaw_skills::SkillRegistry`],
//! and listings show where each skill came from.

pub mod host;
pub mod manifest;
pub mod mcp;
pub mod schema;
pub mod wasm;
pub mod wat;

use std::path::Path;

use oclaw_core::ErrorCode;

pub use host::{PluginHost, ReloadReport};
pub use manifest::{Manifest, PluginFiles};

/// A plugin or MCP step's input: its rendered `with`, or without one the previous step's output.
pub(crate) fn step_input(call: oclaw_skills::SkillCall) -> serde_json::Value {
    if call.with.is_null() {
        call.data
    } else {
        call.with
    }
}

/// Plugin and MCP errors are skill errors: a code, a message, whether a retry may help.
pub type PluginError = oclaw_skills::SkillError;

/// Installs the plugin at `src` (a folder with `plugin.yaml`, or the manifest itself) into
/// `dir/<name>/`: the manifest is validated, the module's digest verified and the module compiled
/// and checked against the ABI before anything is written. The copy is made beside the target and
/// renamed into place, so a running node never sees half a plugin. Answers the manifest and
/// whether an earlier version was replaced.
pub fn install(
    host: &PluginHost,
    src: &Path,
    dir: &Path,
) -> Result<(Manifest, Option<String>), PluginError> {
    let files = manifest::read(src)?;
    let compiled = host.runtime()?.compile(files)?;
    let m = compiled.files.manifest.clone();
    let io = |what: &str, e: std::io::Error| {
        PluginError::permanent(ErrorCode::PluginInvalid, format!("{what}: {e}"))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(&format!("creating {}", dir.display()), e))?;
    let target = dir.join(&m.name);
    let staging = dir.join(format!(".{}.installing-{}", m.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join(m.module.parent().unwrap_or(Path::new(""))))
        .map_err(|e| io("creating the staging folder", e))?;
    std::fs::write(staging.join(&m.module), &compiled.files.module_bytes)
        .map_err(|e| io("writing the module", e))?;
    let text = serde_saphyr::to_string(&m)
        .map_err(|e| PluginError::permanent(ErrorCode::PluginInvalid, format!("manifest: {e}")))?;
    std::fs::write(staging.join(manifest::MANIFEST_FILE), text)
        .map_err(|e| io("writing the manifest", e))?;
    let previous = manifest::read(&target).ok().map(|p| p.manifest.version);
    if target.exists() {
        let old = dir.join(format!(".{}.old-{}", m.name, std::process::id()));
        std::fs::rename(&target, &old).map_err(|e| io("moving the old version aside", e))?;
        std::fs::rename(&staging, &target).map_err(|e| io("moving the new version in", e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staging, &target).map_err(|e| io("moving the plugin in", e))?;
    }
    Ok((m, previous))
}

/// Removes the installed plugin `name` from `dir`.
pub fn remove(dir: &Path, name: &str) -> Result<Manifest, PluginError> {
    let target = dir.join(name);
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') || !target.is_dir() {
        return Err(PluginError::permanent(
            ErrorCode::PluginUnavailable,
            format!("no plugin `{name}` is installed in {}", dir.display()),
        ));
    }
    let m = manifest::read(&target).map(|f| f.manifest);
    std::fs::remove_dir_all(&target).map_err(|e| {
        PluginError::permanent(
            ErrorCode::PluginInvalid,
            format!("removing {}: {e}", target.display()),
        )
    })?;
    m.map_err(|_| {
        PluginError::permanent(
            ErrorCode::PluginInvalid,
            format!("removed {}, which held no valid plugin", target.display()),
        )
    })
}
