//! minijinja templates of the policy (paths, commands, descriptions, aerospike.conf), compiled once
//! at load time so the planner renders them cheaply for every node.

use std::fmt;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

const NAME: &str = "t";

/// A compiled template. Literal text (no `{{` or `{%`) skips the engine entirely: most paths are
/// literal, and a 256-node plan renders thousands of them.
#[derive(Clone)]
pub struct Template {
    source: String,
    env: Option<Arc<Environment<'static>>>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A template that failed to compile or render, with the engine's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// The line inside the template text, when the engine knows it.
    pub line: Option<usize>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let mut message = e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
        if let Some(name) = e.name().filter(|n| *n != NAME) {
            message = format!("{message} (in {name})");
        }
        TemplateError {
            message,
            line: e.line(),
        }
    }
}

impl Template {
    /// Compiles `source`. Unknown variables are errors at render time (strict mode), so a typo
    /// such as `{{ nodee }}` is caught when validation renders every node.
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(Template {
                source: source.to_string(),
                env: None,
            });
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_template_owned(NAME, source.to_string())?;
        Ok(Template {
            source: source.to_string(),
            env: Some(Arc::new(env)),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn render<S: Serialize>(&self, context: S) -> Result<String, TemplateError> {
        let Some(env) = &self.env else {
            return Ok(self.source.clone());
        };
        let template = env.get_template(NAME)?;
        match template.render(&context) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError => {
                Err(undefined(&template, &context, e))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Every key of every object within `v` (the attributes a template may reach).
fn keys_within(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                out.push(k.clone());
                keys_within(x, out);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                keys_within(x, out);
            }
        }
        _ => {}
    }
}

/// An undefined variable, named, with the variables the template may use and the closest of
/// them: minijinja's own "undefined value" says neither.
fn undefined<S: Serialize>(
    template: &minijinja::Template<'_, '_>,
    context: &S,
    e: minijinja::Error,
) -> TemplateError {
    let available: Vec<String> = match serde_json::to_value(context) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !available.contains(v))
        .collect();
    unknown.sort();
    let line = e.line();
    let names = || available.iter().map(String::as_str);
    let message = match unknown.first() {
        Some(v) => format!(
            "undefined variable `{v}`{} (available: {})",
            crate::suggest::did_you_mean(v, names()),
            names().collect::<Vec<_>>().join(", ")
        ),
        // An attribute (`{{ ns.replicationfactor }}`): the expression, and the closest of the
        // attributes the variables hold.
        None => {
            let expr = e
                .range()
                .and_then(|r| template.source().get(r))
                .map(|x| x.trim().to_string());
            let mut attributes = Vec::new();
            if let Ok(v) = serde_json::to_value(context) {
                keys_within(&v, &mut attributes);
            }
            attributes.sort();
            attributes.dedup();
            match expr {
                Some(x) => {
                    let last = x.rsplit('.').next().unwrap_or(&x).to_string();
                    format!(
                        "`{x}` is undefined{}",
                        crate::suggest::did_you_mean(&last, attributes.iter().map(String::as_str))
                    )
                }
                None => TemplateError::from(e).message,
            }
        }
    };
    TemplateError { message, line }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_text_renders_as_is() {
        let t = Template::compile("/opt/aerospike").unwrap();
        assert_eq!(t.render(json!({})).unwrap(), "/opt/aerospike");
    }

    #[test]
    fn strict_mode_refuses_unknown_variables() {
        let t = Template::compile("{{ nodee }}").unwrap();
        let err = t.render(json!({"node": "a1"})).unwrap_err();
        assert!(err.message.contains("undefined"), "{}", err.message);
        let t = Template::compile("cluster-name {{ clustr }}").unwrap();
        let err = t
            .render(json!({"cluster": "prod", "node": "a1"}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "undefined variable `clustr`; did you mean `cluster`? (available: cluster, node)"
        );
        assert_eq!(err.line, Some(1));
        let t =
            Template::compile("{% for ns in namespaces %}{{ ns.replicationfactor }}{% endfor %}")
                .unwrap();
        let err = t
            .render(json!({"namespaces": [{"name": "users", "replication_factor": 2}]}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "`ns.replicationfactor` is undefined; did you mean `replication_factor`?"
        );
    }

    #[test]
    fn syntax_errors_are_found_at_compile_time() {
        let err = Template::compile("{{ cluster ").unwrap_err();
        assert!(err.message.contains("syntax error"), "{}", err.message);
    }
}
