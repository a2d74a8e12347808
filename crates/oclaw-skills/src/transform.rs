//! `transform`: a jq filter (jaq) over the previous step's output, or over `with.input`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, Compiler, Ctx, Vars};
use jaq_json::Val;
use oclaw_core::ErrorCode;
use serde_json::Value;

use crate::context::{only_fields, req_str};
use crate::{Skill, SkillCall, SkillContext, SkillError};

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// Compiled filters by source text; bots reuse the same few filters for every task.
fn cache() -> &'static Mutex<HashMap<String, Arc<Filter>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Filter>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Compiles a jq filter, reporting syntax errors and undefined names in words.
pub fn compile_jq(code: &str) -> Result<Arc<Filter>, String> {
    if let Some(f) = cache().lock().ok().and_then(|c| c.get(code).cloned()) {
        return Ok(f);
    }
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| {
            let why: Vec<String> = errs.iter().flat_map(|(_, e)| load_error(code, e)).collect();
            format!("jq filter `{code}` does not parse: {}", why.join("; "))
        })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let why: Vec<String> = errs
                .iter()
                .flat_map(|(_, undefined)| undefined.iter())
                .map(|(name, kind)| {
                    format!("undefined {} `{name}` {}", kind.as_str(), at(code, name))
                })
                .collect();
            format!("jq filter `{code}` does not compile: {}", why.join("; "))
        })?;
    let filter = Arc::new(filter);
    if let Ok(mut c) = cache().lock() {
        if c.len() < 1024 {
            c.insert(code.to_string(), filter.clone());
        }
    }
    Ok(filter)
}

/// Where `part` (a slice of `code`) starts: `at column N`, or `at the end` for an empty tail.
fn at(code: &str, part: &str) -> String {
    let offset = (part.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
    if part.is_empty() || offset >= code.len() {
        return "at the end".into();
    }
    format!("at column {}", code[..offset].chars().count() + 1)
}

/// A lexing or parsing error in jq's own terms: what was expected, and where.
fn load_error(code: &str, e: &jaq_core::load::Error<&str>) -> Vec<String> {
    use jaq_core::load::Error;
    match e {
        Error::Io(v) => v.iter().map(|(path, m)| format!("{path}: {m}")).collect(),
        Error::Lex(v) => v
            .iter()
            .map(|(expect, rest)| format!("expected {} {}", expect.as_str(), at(code, rest)))
            .collect(),
        Error::Parse(v) => v
            .iter()
            .map(|(expect, found)| {
                let found = if found.is_empty() {
                    String::new()
                } else {
                    format!(", found `{found}`")
                };
                format!("expected {}{found}", expect.as_str())
            })
            .collect(),
    }
}

/// Runs `filter` on `input`: one result is the output, several make an array, none is null.
pub fn run_jq(filter: &Filter, input: Value) -> Result<Value, String> {
    let val: Val =
        serde::Deserialize::deserialize(input).map_err(|e: serde_json::Error| e.to_string())?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut results = Vec::new();
    for r in filter.id.run((ctx, val)) {
        // A jq error in jq's words; `halt` would end the whole process, so it is refused.
        let v = r.map_err(|exn| match exn.get_err() {
            Ok(e) => e.to_string(),
            Err(_) => "jq `halt` and `halt_error` are not allowed in a bot".to_string(),
        })?;
        let json: Value = serde_json::from_str(&v.to_string())
            .map_err(|e| format!("jq produced a value that is not JSON: {e}"))?;
        results.push(json);
    }
    Ok(match results.len() {
        0 => Value::Null,
        1 => results.pop().unwrap_or(Value::Null),
        _ => Value::Array(results),
    })
}

pub struct Transform;

const FIELDS: &[&str] = &["jq", "input"];

#[async_trait]
impl Skill for Transform {
    fn name(&self) -> &'static str {
        "transform"
    }
    fn pure(&self) -> bool {
        true
    }
    fn summary(&self) -> &'static str {
        "jq filter over the previous step's output (or `input`)"
    }
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, FIELDS, "transform")?;
        let code = req_str(with, "jq", "transform")?;
        if !code.contains("{{") {
            compile_jq(code).map_err(SkillError::invalid)?;
        }
        Ok(())
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, FIELDS, "transform")?;
        let code = req_str(&call.with, "jq", "transform")?;
        let filter = compile_jq(code).map_err(SkillError::invalid)?;
        let input = match call.with.get("input") {
            Some(v) => v.clone(),
            None => call.data,
        };
        run_jq(&filter, input).map_err(|e| {
            SkillError::permanent(
                ErrorCode::TransformFailed,
                format!("transform `{code}`: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_like_jq() {
        let f = compile_jq(".items | map(select(.price > 0)) | unique_by(.sku)").unwrap();
        let out = run_jq(&f, json!({"items": [{"sku": "b", "price": 2}, {"sku": "a", "price": 1}, {"sku": "a", "price": 1}, {"sku": "c", "price": -1}]})).unwrap();
        assert_eq!(
            out,
            json!([{"sku": "a", "price": 1}, {"sku": "b", "price": 2}])
        );
        let many = run_jq(&compile_jq(".[]").unwrap(), json!([1, 2])).unwrap();
        assert_eq!(many, json!([1, 2]));
        assert_eq!(
            run_jq(&compile_jq("empty").unwrap(), json!(1)).unwrap(),
            Value::Null
        );
        assert_eq!(
            run_jq(&compile_jq(".a").unwrap(), json!({"a": "x"})).unwrap(),
            json!("x")
        );
    }

    #[test]
    fn reports_bad_filters() {
        assert!(compile_jq(".items | map(")
            .err()
            .unwrap()
            .contains("does not parse"));
        assert!(compile_jq("nosuchfn(1)")
            .err()
            .unwrap()
            .contains("does not compile"));
        // jq's own words and a position, not the parser's data structures.
        let err = compile_jq("(.a").err().unwrap();
        assert!(err.contains("expected closing parenthesis"), "{err}");
        assert!(!err.contains("Delim"), "{err}");
        let err = compile_jq("nosuchfn(1)").err().unwrap();
        assert!(
            err.contains("undefined filter `nosuchfn` at column 1"),
            "{err}"
        );
        let err = run_jq(&compile_jq(".a + 1").unwrap(), json!({"a": "x"})).unwrap_err();
        assert!(err.contains("cannot"), "{err}");
        assert!(!err.contains("Str(") && !err.contains("Error("), "{err}");
        // `halt` would exit the node: it is an error instead.
        let err = run_jq(&compile_jq("halt").unwrap(), json!({})).unwrap_err();
        assert!(err.contains("halt"), "{err}");
    }
}
