//! JSON Schema (as OpenAI tools and `response_format` carry it) -> the OpenAPI subset Gemini's
//! `Schema` accepts.
//!
//! Gemini rejects unknown schema keywords, so only its fields are kept (`type`, `format`,
//! `title`, `description`, `nullable`, `enum`, `items`, `properties`, `required`,
//! `propertyOrdering`, `anyOf`, `default`, `example`, and the min/max bounds). Rewrites:
//! `type: [T, "null"]` -> `type: T` + `nullable: true` (several non-null types -> `anyOf`);
//! `const` -> a one-value `enum`; `oneOf` -> `anyOf`; a one-element `allOf` is inlined; local
//! `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined (recursion is cut after
//! [`MAX_REF_DEPTH`] levels to a bare object); `examples` -> `example`; string formats other
//! than `enum`/`date-time` and non-string enums are dropped; type names are upper-cased as
//! Google's SDKs send them. Everything else (`$schema`, `additionalProperties`, `strict`,
//! `patternProperties`, …) is removed.
//!
//! The client controls the schema, and the rewrites can multiply it (`$ref` inlining, one
//! `anyOf` option per listed type), so every schema of one request draws from one [`Budget`]:
//! at most [`MAX_NODES`] schema nodes are produced (each `$ref` expansion, each per-type option
//! and each inlined `allOf` counted), [`MAX_VALUES`] JSON values and [`MAX_TEXT_BYTES`] bytes of
//! text copied, and schemas nest at most [`MAX_DEPTH`] levels (counted through `$ref`s). Work is
//! proportional to what is produced, so a request over a limit fails fast ([`Exceeded`], a 400)
//! instead of exhausting the worker.

use std::fmt;

use serde_json::{Map, Value};

/// How many nested `$ref`s are inlined before a reference is cut to `{"type": "OBJECT"}`.
pub const MAX_REF_DEPTH: usize = 8;

/// The schema nodes all the schemas of one request may produce.
pub const MAX_NODES: usize = 10_000;

/// The JSON values (`enum` entries, `default`s, `example`s, `required` names, …) all the
/// schemas of one request may copy.
pub const MAX_VALUES: usize = 100_000;

/// The bytes of text (descriptions, property names, string values) all the schemas of one
/// request may copy.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// How deep a schema may nest (one level per schema node, inlined `$ref`s and `allOf`s
/// included).
pub const MAX_DEPTH: usize = 64;

/// Keywords copied as they are.
const COPIED: [&str; 13] = [
    "title",
    "description",
    "nullable",
    "default",
    "example",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
];

/// A limit the schemas of a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// More than [`MAX_NODES`] schema nodes.
    Nodes,
    /// More than [`MAX_VALUES`] copied values.
    Values,
    /// More than [`MAX_TEXT_BYTES`] bytes of copied text.
    Text,
    /// Nested deeper than [`MAX_DEPTH`].
    Depth,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::Nodes => format!("{MAX_NODES} schema nodes"),
            Self::Values => format!("{MAX_VALUES} copied values"),
            Self::Text => format!("{MAX_TEXT_BYTES} bytes of text"),
            Self::Depth => format!("{MAX_DEPTH} levels of nesting"),
        };
        write!(
            f,
            "the request's schemas exceed the gateway's limit of {what} \
             (counted after inlining $refs and expanding type lists)"
        )
    }
}

/// What the schemas of one request may still produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    nodes: usize,
    values: usize,
    text: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            nodes: MAX_NODES,
            values: MAX_VALUES,
            text: MAX_TEXT_BYTES,
        }
    }
}

impl Budget {
    fn node(&mut self) -> Result<(), Exceeded> {
        self.nodes = self.nodes.checked_sub(1).ok_or(Exceeded::Nodes)?;
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<(), Exceeded> {
        self.text = self.text.checked_sub(s.len()).ok_or(Exceeded::Text)?;
        Ok(())
    }

    /// Charge a value about to be copied: one per JSON value in it, plus its text. Stops at the
    /// first limit, so the walk is bounded by the budget too.
    fn value(&mut self, v: &Value) -> Result<(), Exceeded> {
        let mut pending = vec![v];
        while let Some(v) = pending.pop() {
            self.values = self.values.checked_sub(1).ok_or(Exceeded::Values)?;
            match v {
                Value::String(s) => self.text(s)?,
                Value::Array(a) => pending.extend(a),
                Value::Object(o) => {
                    for (k, item) in o {
                        self.text(k)?;
                        pending.push(item);
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        Ok(())
    }

    /// A charged copy of `v`.
    fn copy(&mut self, v: &Value) -> Result<Value, Exceeded> {
        self.value(v)?;
        Ok(v.clone())
    }
}

/// Clean a schema (the root's `$defs`/`definitions` resolve its `$ref`s), drawing on `budget`
/// (one per request).
pub fn clean(schema: &Value, budget: &mut Budget) -> Result<Value, Exceeded> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    Cleaner { defs, budget }.node(schema, 0, 0)
}

/// A schema object as the cleaner sees it: a one-element `allOf` merges its element under the
/// object (`layers`, the object's own keys last and winning) without copying either, and a
/// per-type option of a type list overrides `type`.
#[derive(Clone)]
struct View<'a> {
    /// Lowest priority first; only the first layer's `allOf` is visible.
    layers: Vec<&'a Map<String, Value>>,
    /// The first layer's `allOf` was inlined already (its only element was not an object).
    all_of_done: bool,
    /// `type` replaced by one name of a type list.
    forced_type: Option<String>,
}

impl<'a> View<'a> {
    fn new(obj: &'a Map<String, Value>) -> Self {
        Self {
            layers: vec![obj],
            all_of_done: false,
            forced_type: None,
        }
    }

    /// A keyword's value (`type` is read through [`View::type_names`]).
    fn get(&self, key: &str) -> Option<&'a Value> {
        match key {
            "allOf" if self.all_of_done => None,
            "allOf" => self.layers.first().and_then(|l| l.get(key)),
            _ => self.layers.iter().rev().find_map(|l| l.get(key)),
        }
    }

    /// The lower-cased type names.
    fn type_names(&self) -> Vec<String> {
        if let Some(t) = &self.forced_type {
            return vec![t.clone()];
        }
        match self.get("type") {
            Some(Value::String(t)) => vec![t.to_ascii_lowercase()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The one element of a one-element `allOf`, merged under this view.
    fn inline_all_of(&self) -> Option<View<'a>> {
        let Some(Value::Array(all)) = self.get("allOf") else {
            return None;
        };
        let [only] = all.as_slice() else {
            return None;
        };
        let mut next = self.clone();
        match only.as_object() {
            Some(o) => {
                next.layers.insert(0, o);
                next.all_of_done = false;
            }
            None => next.all_of_done = true,
        }
        Some(next)
    }
}

struct Cleaner<'a, 'b> {
    defs: Option<&'a Map<String, Value>>,
    budget: &'b mut Budget,
}

impl<'a> Cleaner<'a, '_> {
    fn node(&mut self, v: &'a Value, depth: usize, refs: usize) -> Result<Value, Exceeded> {
        let Some(obj) = v.as_object() else {
            self.budget.node()?;
            // `true` / `{}`-like schemas: anything goes; Gemini needs an object.
            return Ok(Value::Object(Map::new()));
        };
        self.view(&View::new(obj), depth, refs)
    }

    fn view(&mut self, obj: &View<'a>, depth: usize, refs: usize) -> Result<Value, Exceeded> {
        self.budget.node()?;
        if depth >= MAX_DEPTH {
            return Err(Exceeded::Depth);
        }
        let deeper = depth.saturating_add(1);
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(r, obj, deeper, refs);
        }
        if let Some(merged) = obj.inline_all_of() {
            return self.view(&merged, deeper, refs);
        }
        let mut out = Map::new();
        for key in COPIED {
            if let Some(val) = obj.get(key) {
                out.insert(key.into(), self.budget.copy(val)?);
            }
        }
        if !out.contains_key("example") {
            if let Some(first) = obj
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                out.insert("example".into(), self.budget.copy(first)?);
            }
        }
        self.types(obj, &mut out, deeper, refs)?;
        self.enumeration(obj, &mut out)?;
        if let Some(Value::Object(props)) = obj.get("properties") {
            let mut cleaned = Map::new();
            for (k, p) in props {
                self.budget.text(k)?;
                cleaned.insert(k.clone(), self.node(p, deeper, refs)?);
            }
            out.insert("properties".into(), Value::Object(cleaned));
        }
        for key in ["required", "propertyOrdering"] {
            if let Some(names @ Value::Array(_)) = obj.get(key) {
                out.insert(key.into(), self.budget.copy(names)?);
            }
        }
        if let Some(items) = obj.get("items") {
            out.insert("items".into(), self.node(items, deeper, refs)?);
        }
        let any = obj.get("anyOf").or_else(|| obj.get("oneOf"));
        if let Some(Value::Array(options)) = any {
            self.any_of(options, &mut out, deeper, refs)?;
        }
        Ok(Value::Object(out))
    }

    fn reference(
        &mut self,
        r: &str,
        obj: &View<'a>,
        depth: usize,
        refs: usize,
    ) -> Result<Value, Exceeded> {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"));
        let target = name.and_then(|n| self.defs.and_then(|d| d.get(n)));
        let description = obj.get("description");
        match target {
            Some(t) if refs < MAX_REF_DEPTH => {
                let mut cleaned = self.node(t, depth, refs.saturating_add(1))?;
                // Sibling keywords of a `$ref` (a description, mostly) win.
                if let (Value::Object(c), Some(d)) = (&mut cleaned, description) {
                    c.insert("description".into(), self.budget.copy(d)?);
                }
                Ok(cleaned)
            }
            _ => {
                let mut cut = Map::new();
                cut.insert("type".into(), Value::String("OBJECT".into()));
                if let Some(d) = description {
                    cut.insert("description".into(), self.budget.copy(d)?);
                }
                Ok(Value::Object(cut))
            }
        }
    }

    /// `type` (a name or a list of names) and the formats Gemini accepts for it.
    fn types(
        &mut self,
        obj: &View<'a>,
        out: &mut Map<String, Value>,
        depth: usize,
        refs: usize,
    ) -> Result<(), Exceeded> {
        let names = obj.type_names();
        let non_null: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "null")
            .collect();
        if non_null.len() < names.len() {
            out.insert("nullable".into(), Value::Bool(true));
        }
        match non_null.as_slice() {
            [] => {}
            [one] => {
                out.insert("type".into(), Value::String(one.to_ascii_uppercase()));
                if let Some(f) = obj.get("format").and_then(Value::as_str) {
                    if format_allowed(one, f) {
                        out.insert("format".into(), Value::String(f.into()));
                    }
                }
            }
            several => {
                // Each option is the whole schema with one of the types (charged in full).
                let mut options = Vec::with_capacity(several.len());
                for t in several {
                    let mut one = obj.clone();
                    one.forced_type = Some((*t).to_owned());
                    options.push(self.view(&one, depth, refs)?);
                }
                out.insert("anyOf".into(), Value::Array(options));
            }
        }
        Ok(())
    }

    /// `enum` (strings only) or `const`.
    fn enumeration(
        &mut self,
        obj: &View<'a>,
        out: &mut Map<String, Value>,
    ) -> Result<(), Exceeded> {
        let values = match (obj.get("enum"), obj.get("const")) {
            (Some(Value::Array(e)), _) => e,
            (None, Some(c)) => std::slice::from_ref(c),
            _ => return Ok(()),
        };
        if !values.is_empty() && values.iter().all(Value::is_string) {
            let mut copied = Vec::with_capacity(values.len());
            for v in values {
                copied.push(self.budget.copy(v)?);
            }
            out.insert("enum".into(), Value::Array(copied));
            if !out.contains_key("type") {
                out.insert("type".into(), Value::String("STRING".into()));
            }
        }
        Ok(())
    }

    fn any_of(
        &mut self,
        options: &'a [Value],
        out: &mut Map<String, Value>,
        depth: usize,
        refs: usize,
    ) -> Result<(), Exceeded> {
        let mut kept = Vec::with_capacity(options.len());
        for o in options {
            if o.get("type").and_then(Value::as_str) == Some("null") {
                out.insert("nullable".into(), Value::Bool(true));
            } else {
                kept.push(self.node(o, depth, refs)?);
            }
        }
        match kept.len() {
            0 => {}
            1 if !out.contains_key("type") => {
                if let Some(Value::Object(single)) = kept.pop() {
                    for (k, v) in single {
                        out.entry(k).or_insert(v);
                    }
                }
            }
            _ => {
                out.insert("anyOf".into(), Value::Array(kept));
            }
        }
        Ok(())
    }
}

/// The formats Gemini accepts per type.
fn format_allowed(kind: &str, format: &str) -> bool {
    matches!(
        (kind, format),
        ("string", "enum" | "date-time")
            | ("integer", "int32" | "int64")
            | ("number", "float" | "double")
    )
}

#[cfg(test)]
mod tests;
