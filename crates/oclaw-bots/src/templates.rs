//! Templates in bot steps (minijinja). Every string in a step's `with` is a template; a string
//! that is one `{{ expression }}` keeps the expression's type (object, list, number...).

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// The shared template environment.
pub struct TemplateEngine {
    env: Environment<'static>,
}

impl Default for TemplateEngine {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        TemplateEngine { env }
    }
}

/// If `s` is exactly one `{{ expression }}`, the expression.
fn sole_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim_matches('-').trim())
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

impl TemplateEngine {
    /// Compiles every template string inside `v`; the first error names the template.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        match v {
            Value::String(s) if is_template(s) => self.check_str(s),
            Value::Array(items) => items.iter().try_for_each(|i| self.check(i)),
            Value::Object(map) => map.values().try_for_each(|i| self.check(i)),
            _ => Ok(()),
        }
    }

    pub fn check_str(&self, s: &str) -> Result<(), String> {
        let result = match sole_expression(s) {
            Some(expr) => self.env.compile_expression(expr).map(|_| ()),
            None => self.env.template_from_str(s).map(|_| ()),
        };
        result.map_err(|e| format!("template `{s}` does not compile: {}", describe(&e)))
    }

    /// Names in the templates inside `v` that can only fail at run time: a filter the engine
    /// does not have, or `steps.<id>` where `<id>` is not one of `earlier` (the steps that run
    /// before this one). The first such name, with what would do instead.
    pub fn check_names(&self, v: &Value, earlier: &[&str]) -> Result<(), String> {
        match v {
            Value::String(s) if is_template(s) => self.check_names_str(s, earlier),
            Value::Array(items) => items.iter().try_for_each(|i| self.check_names(i, earlier)),
            Value::Object(map) => map.values().try_for_each(|i| self.check_names(i, earlier)),
            _ => Ok(()),
        }
    }

    pub fn check_names_str(&self, s: &str, earlier: &[&str]) -> Result<(), String> {
        for name in filters_used(s) {
            let source = format!("none | {name}");
            let probe = self.env.compile_expression(&source);
            let unknown = match probe {
                Ok(expr) => expr
                    .eval(minijinja::context! {})
                    .is_err_and(|e| e.kind() == minijinja::ErrorKind::UnknownFilter),
                Err(e) => e.kind() == minijinja::ErrorKind::UnknownFilter,
            };
            if unknown {
                return Err(format!("template `{s}` uses the unknown filter `{name}`"));
            }
        }
        let vars = match sole_expression(s) {
            Some(expr) => self
                .env
                .compile_expression(expr)
                .map(|e| e.undeclared_variables(true)),
            None => self
                .env
                .template_from_str(s)
                .map(|t| t.undeclared_variables(true)),
        }
        .unwrap_or_default();
        let mut vars: Vec<String> = vars.into_iter().collect();
        vars.sort();
        for var in vars {
            let mut parts = var.split('.');
            if parts.next() != Some("steps") {
                continue;
            }
            let Some(id) = parts.next() else { continue };
            if !earlier.contains(&id) {
                let known = if earlier.is_empty() {
                    "no step runs before this one".to_string()
                } else {
                    format!("steps before this one: {}", earlier.join(", "))
                };
                let hint = oclaw_core::suggest::did_you_mean(id, earlier.iter().copied())
                    .map(|m| format!("; did you mean `{m}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "template `{s}` reads `steps.{id}`, which is not a step before this one ({known}){hint}"
                ));
            }
        }
        Ok(())
    }

    /// Renders every template string inside `v` against `ctx`.
    pub fn render(&self, v: &Value, ctx: &minijinja::Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) if is_template(s) => self.render_str(s, ctx)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, i)| Ok((k.clone(), self.render(i, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render_str(&self, s: &str, ctx: &minijinja::Value) -> Result<Value, String> {
        match sole_expression(s) {
            Some(expr) => {
                let compiled = self
                    .env
                    .compile_expression(expr)
                    .map_err(|e| describe(&e))?;
                let out = compiled
                    .eval(ctx)
                    .map_err(|e| format!("`{s}`: {}", describe(&e)))?;
                if out.is_undefined() || out.is_none() {
                    return Ok(Value::Null);
                }
                serde_json::to_value(&out).map_err(|e| format!("`{s}`: {e}"))
            }
            None => self
                .env
                .render_str(s, ctx)
                .map(Value::String)
                .map_err(|e| format!("`{s}`: {}", describe(&e))),
        }
    }

    /// Renders a condition; true when the result is truthy.
    pub fn condition(&self, s: &str, ctx: &minijinja::Value) -> Result<bool, String> {
        Ok(match self.render_str(s, ctx)? {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(t) => {
                let t = t.trim();
                !(t.is_empty()
                    || t.eq_ignore_ascii_case("false")
                    || t == "0"
                    || t.eq_ignore_ascii_case("none"))
            }
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }
}

/// Filter names in the `{{ }}` and `{% %}` blocks of a template: each name after a `|`
/// outside string literals.
fn filters_used(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else {
            rest = &after[1..];
            continue;
        };
        let body_end = after[2..].find(close).map_or(after.len(), |i| i + 2);
        let body = &after[2..body_end];
        let mut quote: Option<char> = None;
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match (quote, c) {
                (Some(q), '\\') if q != '\0' => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '|') => {
                    let name: String = body[i + 1..]
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && !out.contains(&name) {
                        out.push(name);
                    }
                }
                _ => {}
            }
        }
        rest = &after[body_end.min(after.len())..];
    }
    out
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{} ({d})", e.kind()),
        None => e.to_string(),
    }
}

/// A template value from anything serialisable.
pub fn to_template_value<T: serde::Serialize>(v: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> minijinja::Value {
        crate::templates::to_template_value(&json!({
            "input": {"name": "Ada", "n": 3},
            "steps": {"fetch": {"output": {"items": [1, 2]}}},
            "secrets": {"TOKEN": "s3cr3t"},
        }))
    }

    #[test]
    fn unknown_filters_and_steps_are_found_without_running() {
        let t = TemplateEngine::default();
        assert_eq!(
            filters_used("{{ a | upper }} and {{ 'x|y' | join(',') }}{% if b|length %}"),
            ["upper", "join", "length"]
        );
        assert!(t
            .check_names(&json!({"v": "{{ input.name | upper | trim }}"}), &[])
            .is_ok());
        let e = t
            .check_names(&json!({"v": "{{ input.name | uppr }}"}), &[])
            .unwrap_err();
        assert!(e.contains("unknown filter `uppr`"), "{e}");
        let e = t
            .check_names(
                &json!({"v": "{{ steps.previus.output }}"}),
                &["fetch", "previous"],
            )
            .unwrap_err();
        assert!(
            e.contains("`steps.previus`") && e.contains("did you mean `previous`"),
            "{e}"
        );
        assert!(t
            .check_names(
                &json!("{{ steps.fetch.output.items | length }}"),
                &["fetch"]
            )
            .is_ok());
        assert!(t
            .check_names(&json!("{% for s in steps.later.output %}{% endfor %}"), &[])
            .is_err());
        // Names bound inside the template are not steps.
        assert!(t
            .check_names(&json!("{% set steps = 1 %}{{ steps }}"), &[])
            .is_ok());
    }

    #[test]
    fn sole_expressions_keep_their_type() {
        let t = TemplateEngine::default();
        let out = t
            .render(
                &json!({"items": "{{ steps.fetch.output.items }}", "n": "{{ input.n + 1 }}"}),
                &ctx(),
            )
            .unwrap();
        assert_eq!(out, json!({"items": [1, 2], "n": 4}));
    }

    #[test]
    fn a_range_renders_as_a_list_so_for_each_over_it_is_a_counted_loop() {
        let t = TemplateEngine::default();
        let out = t.render(&json!("{{ range(input.n) }}"), &ctx()).unwrap();
        assert_eq!(out, json!([0, 1, 2]));
    }

    #[test]
    fn mixed_text_renders_as_string() {
        let t = TemplateEngine::default();
        let out = t
            .render(
                &json!(["Hello {{ input.name }}!", "Bearer {{ secrets.TOKEN }}", 7]),
                &ctx(),
            )
            .unwrap();
        assert_eq!(out, json!(["Hello Ada!", "Bearer s3cr3t", 7]));
        let j = t
            .render(&json!("{{ steps.fetch.output | tojson }}"), &ctx())
            .unwrap();
        let parsed: Value = serde_json::from_str(j.as_str().unwrap()).unwrap();
        assert_eq!(parsed, json!({"items": [1, 2]}));
    }

    #[test]
    fn conditions() {
        let t = TemplateEngine::default();
        assert!(t
            .condition("{{ steps.fetch.output.items | length > 0 }}", &ctx())
            .unwrap());
        assert!(!t.condition("{{ input.missing }}", &ctx()).unwrap());
        assert!(!t.condition("{{ input.n > 5 }}", &ctx()).unwrap());
    }

    #[test]
    fn bad_templates_are_reported() {
        let t = TemplateEngine::default();
        assert!(t
            .check(&json!({"a": "{{ input.name "}))
            .unwrap_err()
            .contains("does not compile"));
        assert!(t.check(&json!({"a": "{% if %}"})).is_err());
        assert!(t
            .check(&json!({"a": "plain", "b": "{{ input.name | upper }}"}))
            .is_ok());
    }
}
