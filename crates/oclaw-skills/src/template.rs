//! `template`: builds the step's output from `with.value` (any JSON; its strings are templates
//! rendered before the skill runs) or `with.text`.

use async_trait::async_trait;
use serde_json::Value;

use crate::context::only_fields;
use crate::{Skill, SkillCall, SkillContext, SkillError};

pub struct Template;

const FIELDS: &[&str] = &["value", "text"];

#[async_trait]
impl Skill for Template {
    fn name(&self) -> &'static str {
        "template"
    }
    fn pure(&self) -> bool {
        true
    }
    fn summary(&self) -> &'static str {
        "output `value` (any JSON) or `text`, both rendered as templates"
    }
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, FIELDS, "template")?;
        match (with.get("value"), with.get("text")) {
            (Some(_), Some(_)) => Err(SkillError::invalid(
                "template: give `value` or `text`, not both",
            )),
            (None, None) => Err(SkillError::invalid(
                "template: `value` or `text` is required",
            )),
            _ => Ok(()),
        }
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        self.check_literal(&call.with)?;
        Ok(call
            .with
            .get("value")
            .or(call.with.get("text"))
            .cloned()
            .unwrap_or(Value::Null))
    }
}
