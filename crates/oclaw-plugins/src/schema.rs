//! JSON Schema for plugin and MCP skills, through the `jsonschema` crate: every draft (the
//! `$schema` a document names, 2020-12 when it names none), `$ref` within the document, `anyOf`,
//! `oneOf`, `pattern`, `format` as an annotation. References outside the document are refused
//! when the schema is loaded: nothing is fetched while a node runs.
//!
//! Compiled validators are kept by the schema's text, so a skill called often compiles its
//! schema once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let at = e.instance_path().as_str();
    let at = if at.is_empty() { "$" } else { at };
    format!("{at}: {e}")
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::meta::validator_for(schema)
        .map_err(|e| format!("the schema's $schema is not a known draft: {e}"))?
        .validate(schema)
        .map_err(|e| format!("not a valid JSON Schema: {}", describe(&e)))?;
    jsonschema::validator_for(schema).map_err(|e| format!("the schema cannot be used: {e}"))
}

/// Most compiled schemas kept; past it the cache starts over (skills' schemas are few).
const CACHED: usize = 1024;

static VALIDATORS: Mutex<Option<HashMap<String, Arc<jsonschema::Validator>>>> = Mutex::new(None);

fn validator(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    let key = schema.to_string();
    if let Some(v) = VALIDATORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return Ok(v.clone());
    }
    let compiled = Arc::new(compile(schema)?);
    let mut cache = VALIDATORS.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() >= CACHED {
        map.clear();
    }
    map.insert(key, compiled.clone());
    Ok(compiled)
}

/// Checks that `schema` is a JSON Schema that can be used (when the manifest or the tool list
/// is loaded).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("a schema must be a mapping (or true/false)".into());
    }
    validator(schema).map(|_| ())
}

/// Checks `value` against `schema`; the error names the JSON pointer of the first mismatch
/// (`$` for the whole value).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validator(schema)?.validate(value).map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_types_required_nested_and_enums() {
        let schema = json!({"type": "object", "required": ["text"], "additionalProperties": false,
            "properties": {"text": {"type": "string"}, "n": {"type": "number"},
                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}});
        check_schema(&schema).unwrap();
        validate(&schema, &json!({"text": "x", "n": 3, "tags": ["a"]})).unwrap();
        let e = validate(&schema, &json!({"n": 1})).unwrap_err();
        assert!(
            e.starts_with("$: ") && e.contains("\"text\" is a required property"),
            "{e}"
        );
        let e = validate(&schema, &json!({"text": 1})).unwrap_err();
        assert!(e.starts_with("/text: ") && e.contains("string"), "{e}");
        assert!(validate(&schema, &json!({"text": "x", "tags": ["c"]}))
            .unwrap_err()
            .starts_with("/tags/0:"));
        let e = validate(&schema, &json!({"text": "x", "other": 1})).unwrap_err();
        assert!(e.contains("other"), "{e}");
        assert!(check_schema(&json!({"type": "strnig"})).is_err());
        assert!(check_schema(&json!("object")).is_err());
    }

    #[test]
    fn the_keywords_third_party_tools_use_are_enforced() {
        // As MCP servers publish them: $defs with $ref, anyOf, pattern, bounds, draft-07.
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "definitions": {"id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"}},
            "properties": {
                "ticket": {"$ref": "#/definitions/id"},
                "limit": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 50}, {"type": "null"}]},
            },
            "required": ["ticket"],
        });
        check_schema(&schema).unwrap();
        validate(&schema, &json!({"ticket": "inc-42", "limit": null})).unwrap();
        validate(&schema, &json!({"ticket": "inc-42", "limit": 50})).unwrap();
        assert!(validate(&schema, &json!({"ticket": "INC 42"}))
            .unwrap_err()
            .starts_with("/ticket:"));
        assert!(validate(&schema, &json!({"ticket": "inc-1", "limit": 51})).is_err());
        // References outside the document are refused at load: nothing is fetched.
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(check_schema(&remote).is_err());
        let unknown = json!({"$schema": "https://example.com/my-draft", "type": "object"});
        assert!(check_schema(&unknown).is_err());
    }
}
