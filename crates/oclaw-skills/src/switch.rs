//! `switch`: picks the step a pipeline goes on with. `with: {value, cases: {VALUE: STEP},
//! default?: STEP}` → `{value, case, next}`; the engine jumps forward to `next` (the steps in
//! between are skipped) or, for `end`, ends the run there. A value with no case and no
//! `default` goes on with the next step. The targets are checked when the bot is loaded (they
//! must be steps after this one, or `end`).

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::{Skill, SkillCall, SkillContext, SkillError};

pub struct Switch;

/// What `next` ends the run with.
pub const END: &str = "end";

/// The value as a case key: text as is, anything else as JSON.
fn key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The step names `with` may jump to (for the load-time check): every case and the default.
pub fn targets(with: &Value) -> Vec<String> {
    let mut out: Vec<String> = with["cases"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(d) = with["default"].as_str() {
        out.push(d.to_string());
    }
    out
}

#[async_trait]
impl Skill for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }
    fn summary(&self) -> &'static str {
        "go on with the step named for a value (cases, default), skipping those in between"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["value", "cases", "default"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        let cases = with
            .get("cases")
            .and_then(Value::as_object)
            .ok_or_else(|| SkillError::invalid("switch: `cases` (value: step) is required"))?;
        if cases.values().any(|v| !v.is_string())
            || with.get("default").is_some_and(|d| !d.is_string())
        {
            return Err(SkillError::invalid(
                "switch: cases and default name steps (text)",
            ));
        }
        if with.get("value").is_none() {
            return Err(SkillError::invalid("switch: `value` is required"));
        }
        Ok(())
    }
    fn pure(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let value = call.with.get("value").cloned().unwrap_or(Value::Null);
        let k = key(&value);
        let (case, next) = match call.with["cases"].get(&k).and_then(Value::as_str) {
            Some(step) => (Some(k), Some(step.to_string())),
            None => (None, call.with["default"].as_str().map(str::to_string)),
        };
        Ok(json!({"value": value, "case": case, "next": next}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_match_the_value_as_text() {
        assert_eq!(key(&json!("refund")), "refund");
        assert_eq!(key(&json!(3)), "3");
        assert_eq!(key(&json!(true)), "true");
        let with = json!({"cases": {"a": "x", "b": "y"}, "default": "z"});
        let mut t = targets(&with);
        t.sort();
        assert_eq!(t, vec!["x", "y", "z"]);
        assert!(Switch
            .check_literal(&json!({"value": 1, "cases": {"a": 2}}))
            .is_err());
        assert!(Switch.check_literal(&json!({"value": 1})).is_err());
        assert!(Switch.check_literal(&with).is_err(), "value is required");
    }
}
