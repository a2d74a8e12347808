//! The part of JSON Schema plugin and MCP skills are checked against: `type` (one or a list),
//! `required`, `properties`, `additionalProperties: false`, `items`, `enum`. Other keywords are
//! accepted and not enforced (the docs say so).

use serde_json::Value;

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Checks that `schema` is a schema this module understands (when the manifest is loaded).
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let Value::Object(map) = schema else {
        return match schema {
            Value::Bool(_) => Ok(()),
            _ => Err("a schema must be a mapping".into()),
        };
    };
    if let Some(t) = map.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in names {
            match n.as_str() {
                Some(s) if TYPES.contains(&s) => {}
                _ => return Err(format!("unknown type {n}; known: {}", TYPES.join(", "))),
            }
        }
    }
    if let Some(props) = map.get("properties") {
        let Value::Object(props) = props else {
            return Err("`properties` must be a mapping".into());
        };
        for (k, v) in props {
            check_schema(v).map_err(|e| format!("properties.{k}: {e}"))?;
        }
    }
    if let Some(items) = map.get("items") {
        check_schema(items).map_err(|e| format!("items: {e}"))?;
    }
    if let Some(req) = map.get("required") {
        if !req
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err("`required` must be a list of names".into());
        }
    }
    Ok(())
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` against `schema`; the error names the path of the first mismatch.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    validate_at(schema, value, "$")
}

fn validate_at(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let map = match schema {
        Value::Object(m) => m,
        Value::Bool(false) => return Err(format!("{path}: no value is allowed here")),
        _ => return Ok(()),
    };
    if let Some(t) = map.get("type") {
        let actual = type_of(value);
        let fits = |name: &str| name == actual || (name == "number" && actual == "integer");
        let ok = match t {
            Value::String(s) => fits(s),
            Value::Array(a) => a.iter().filter_map(Value::as_str).any(fits),
            _ => true,
        };
        if !ok {
            return Err(format!("{path}: expected {t}, got {actual}"));
        }
    }
    if let Some(Value::Array(options)) = map.get("enum") {
        if !options.contains(value) {
            return Err(format!(
                "{path}: {value} is not one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Value::Object(obj) = value {
        if let Some(Value::Array(req)) = map.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{path}: `{r}` is required"));
                }
            }
        }
        let props = map.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate_at(s, v, &format!("{path}.{k}"))?,
                None => {
                    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                        return Err(format!("{path}: unknown field `{k}`"));
                    }
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, map.get("items")) {
        for (i, v) in items.iter().enumerate() {
            validate_at(item_schema, v, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
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
        assert_eq!(
            validate(&schema, &json!({"n": 1})).unwrap_err(),
            "$: `text` is required"
        );
        assert!(validate(&schema, &json!({"text": 1}))
            .unwrap_err()
            .contains("$.text: expected \"string\", got integer"));
        assert!(validate(&schema, &json!({"text": "x", "tags": ["c"]}))
            .unwrap_err()
            .starts_with("$.tags[0]:"));
        assert!(validate(&schema, &json!({"text": "x", "other": 1}))
            .unwrap_err()
            .contains("unknown field `other`"));
        assert!(check_schema(&json!({"type": "strnig"})).is_err());
        assert!(check_schema(&json!("object")).is_err());
    }
}
