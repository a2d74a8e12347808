//! The plugin manifest (`plugin.yaml`): who the plugin is, the module it runs, the digest that
//! module must have, the skills it provides, the capabilities it asks for and its limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oclaw_core::{Dur, ErrorCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::PluginError;

/// The file name of a manifest inside a plugin folder.
pub const MANIFEST_FILE: &str = "plugin.yaml";

/// The plugin ABI this node speaks (see docs/plugins.md). A module declares it by exporting a
/// function named `oclaw_abi_v1`.
pub const ABI_VERSION: u32 = 1;

/// Names the plugin's own skill names and plugin names may not take: they would shadow
/// built-in skill namespaces.
const RESERVED: &[&str] = &[
    "http",
    "notify",
    "transform",
    "template",
    "log",
    "sleep",
    "kv",
    "faq",
    "task",
    "mcp",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lowercase letters, digits and `-`; the skills are `<name>.<skill>`.
    pub name: String,
    /// Semantic version, shown in skill listings as `plugin <name>@<version>`.
    pub version: String,
    /// The plugin ABI the module was built for.
    pub abi: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The WebAssembly module (binary `.wasm`, or text `.wat`), relative to the manifest.
    pub module: PathBuf,
    /// Hex SHA-256 of the module file; the node refuses a module that does not match.
    pub sha256: String,
    /// Capabilities the plugin asks for (`log`, `kv`, `http`). A bot still has to grant each
    /// one in `spec.grants.<plugin>`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub limits: ManifestLimits,
    pub skills: Vec<SkillDecl>,
}

/// Per-call limits the plugin asks for; the node's `plugins.max_*` settings cap them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ManifestLimits {
    /// Largest linear memory, as a quantity (`16Mi`).
    pub memory: String,
    /// Wall-clock limit of one call.
    pub timeout: Dur,
    /// WebAssembly instructions (roughly) one call may run; `0` means no fuel limit (the
    /// timeout still applies).
    pub fuel: u64,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits {
            memory: "16Mi".into(),
            timeout: Dur::secs(1),
            fuel: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillDecl {
    pub name: String,
    #[serde(default)]
    pub summary: String,
    /// JSON Schema of the input (checked before every call: `type`, `required`,
    /// `properties`, `items`, `enum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// JSON Schema of the output (checked after every call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// A manifest read from disk, with its folder and the module's bytes (digest verified).
#[derive(Debug, Clone)]
pub struct PluginFiles {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub module_bytes: Vec<u8>,
}

/// Resolved limits of one plugin on this node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub fuel: u64,
}

fn invalid(message: String) -> PluginError {
    PluginError::permanent(ErrorCode::PluginInvalid, message)
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Manifest {
    /// Checks everything that does not need the module.
    pub fn validate(&self) -> Result<(), String> {
        if !name_ok(&self.name) {
            return Err(format!(
                "name `{}` must be 1-63 lowercase letters, digits, `-` or `_`, starting with a letter",
                self.name
            ));
        }
        if RESERVED.contains(&self.name.as_str()) {
            return Err(format!(
                "name `{}` is reserved for built-in skills; choose another",
                self.name
            ));
        }
        if self.version.trim().is_empty() || self.version.contains(char::is_whitespace) {
            return Err("version must be a non-empty word such as `1.2.0`".into());
        }
        if self.abi != ABI_VERSION {
            return Err(format!(
                "abi {} is not supported by this node (it speaks abi {ABI_VERSION})",
                self.abi
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("sha256 must be the 64 hex digits of the module's SHA-256".into());
        }
        if self.module.is_absolute()
            || self
                .module
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "module `{}` must be a path inside the plugin folder",
                self.module.display()
            ));
        }
        oclaw_core::bot::check_capabilities(&self.capabilities)?;
        oclaw_core::quantity::bytes(&self.limits.memory)
            .map_err(|e| format!("limits.memory: {e}"))?;
        if self.limits.timeout.get().is_zero() {
            return Err("limits.timeout must be more than 0s".into());
        }
        if self.skills.is_empty() {
            return Err("skills: a plugin provides at least one skill".into());
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.skills {
            if !name_ok(&s.name) {
                return Err(format!(
                    "skill name `{}` must be lowercase letters, digits, `-` or `_`",
                    s.name
                ));
            }
            if !seen.insert(&s.name) {
                return Err(format!("skill `{}` is declared twice", s.name));
            }
            for (what, schema) in [("input", &s.input), ("output", &s.output)] {
                if let Some(schema) = schema {
                    crate::schema::check_schema(schema)
                        .map_err(|e| format!("skills.{}.{what}: {e}", s.name))?;
                }
            }
        }
        Ok(())
    }

    /// The limits this plugin runs under on a node with these ceilings.
    pub fn limits(&self, max_memory: usize, max_timeout: Duration) -> Limits {
        let asked = oclaw_core::quantity::bytes(&self.limits.memory).unwrap_or(16 << 20) as usize;
        Limits {
            memory_bytes: asked.min(max_memory),
            timeout: self.limits.timeout.get().min(max_timeout),
            fuel: self.limits.fuel,
        }
    }

    /// Whether the manifest asks for `cap`.
    pub fn asks_for(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// Reads `path` (a plugin folder, or its `plugin.yaml`), validates the manifest and checks the
/// module's digest.
pub fn read(path: &Path) -> Result<PluginFiles, PluginError> {
    let manifest_path = if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    };
    let dir = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        invalid(format!(
            "cannot read plugin manifest {}: {e}",
            manifest_path.display()
        ))
    })?;
    let manifest: Manifest = serde_saphyr::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        invalid(format!("{}{at}: {e}", manifest_path.display()))
    })?;
    manifest
        .validate()
        .map_err(|m| invalid(format!("{}: {m}", manifest_path.display())))?;
    let module_path = dir.join(&manifest.module);
    let module_bytes = std::fs::read(&module_path).map_err(|e| {
        invalid(format!(
            "plugin `{}`: cannot read module {}: {e}",
            manifest.name,
            module_path.display()
        ))
    })?;
    let actual = sha256_hex(&module_bytes);
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(invalid(format!(
            "plugin `{}`: module {} has SHA-256 {actual}, the manifest says {}; the module was changed or the manifest is stale",
            manifest.name,
            module_path.display(),
            manifest.sha256
        )));
    }
    Ok(PluginFiles {
        manifest,
        dir,
        module_bytes,
    })
}
