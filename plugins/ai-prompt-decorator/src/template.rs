//! Prompt templates: text with `{{variable}}` placeholders, compiled once at configure time.

use serde_json::{Map, Value};

/// One piece of a compiled template text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A compiled template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    parts: Vec<Part>,
}

/// Why a template text could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// `{{` without a closing `}}`.
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    /// A placeholder whose name is empty or has characters other than letters, digits, `_`, `-`, `.`.
    #[error("bad variable name `{0}` (use letters, digits, `_`, `-`, `.`)")]
    BadName(String),
}

/// A variable the request did not supply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariable(pub String);

impl Text {
    /// Compile `source`, splitting it at `{{name}}` placeholders (spaces inside the braces allowed).
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            let (literal, tail) = rest.split_at(open);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_owned()));
            }
            let after = tail.get(2..).unwrap_or("");
            let close = after
                .find("}}")
                .ok_or(CompileError::Unclosed(offset + open))?;
            let name = after.get(..close).unwrap_or("").trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return Err(CompileError::BadName(name.to_owned()));
            }
            parts.push(Part::Var(name.to_owned()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = rest.get(consumed..).unwrap_or("");
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The variable names this text uses, in order of first use.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(n) => Some(n.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fill the placeholders. Strings are inserted as they are, other JSON values as JSON text.
    pub fn render(&self, vars: &Map<String, Value>) -> Result<String, MissingVariable> {
        self.render_with(vars, |v| v.to_owned())
    }

    /// Fill the placeholders, passing each variable's text through `value` first (the injection
    /// guard wraps client-supplied values this way).
    pub fn render_with(
        &self,
        vars: &Map<String, Value>,
        value: impl Fn(&str) -> String,
    ) -> Result<String, MissingVariable> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(name) => match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(&value(s)),
                    Some(Value::Null) | None => return Err(MissingVariable(name.clone())),
                    Some(other) => out.push_str(&value(&other.to_string())),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn fills_placeholders_with_and_without_spaces() {
        let t = Text::compile("Translate {{text}} into {{ lang }}.").unwrap();
        let out = t
            .render(&vars(json!({"text": "hola", "lang": "English"})))
            .unwrap();
        assert_eq!(out, "Translate hola into English.");
    }

    #[test]
    fn numbers_and_booleans_render_as_json_text() {
        let t = Text::compile("n={{n}} b={{b}}").unwrap();
        assert_eq!(
            t.render(&vars(json!({"n": 3, "b": true}))).unwrap(),
            "n=3 b=true"
        );
    }

    #[test]
    fn a_missing_or_null_variable_is_named() {
        let t = Text::compile("{{a}} {{b}}").unwrap();
        assert_eq!(
            t.render(&vars(json!({"a": "x"}))),
            Err(MissingVariable("b".into()))
        );
        assert_eq!(
            t.render(&vars(json!({"a": null, "b": 1}))),
            Err(MissingVariable("a".into()))
        );
    }

    #[test]
    fn unclosed_braces_and_bad_names_are_rejected_at_compile_time() {
        assert_eq!(Text::compile("hi {{name"), Err(CompileError::Unclosed(3)));
        assert!(matches!(
            Text::compile("{{}}"),
            Err(CompileError::BadName(_))
        ));
        assert!(matches!(
            Text::compile("{{a b}}"),
            Err(CompileError::BadName(_))
        ));
    }

    #[test]
    fn text_without_placeholders_is_one_literal() {
        let t = Text::compile("plain").unwrap();
        assert_eq!(t.variables().count(), 0);
        assert_eq!(t.render(&Map::new()).unwrap(), "plain");
    }

    #[test]
    fn multibyte_text_around_placeholders_survives() {
        let t = Text::compile("é{{x}}ü").unwrap();
        assert_eq!(t.render(&vars(json!({"x": "→"}))).unwrap(), "é→ü");
    }
}
