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

use serde_json::{Map, Value};

/// How many nested `$ref`s are inlined before a reference is cut to `{"type": "OBJECT"}`.
pub const MAX_REF_DEPTH: usize = 8;

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

/// Clean a schema (the root's `$defs`/`definitions` resolve its `$ref`s).
pub fn clean(schema: &Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    Cleaner { defs }.node(schema, 0)
}

struct Cleaner<'a> {
    defs: Option<&'a Map<String, Value>>,
}

impl Cleaner<'_> {
    fn node(&self, v: &Value, depth: usize) -> Value {
        let Some(obj) = v.as_object() else {
            // `true` / `{}`-like schemas: anything goes; Gemini needs an object.
            return Value::Object(Map::new());
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(r, obj, depth);
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            if let [only] = all.as_slice() {
                let mut merged = only.as_object().cloned().unwrap_or_default();
                for (k, val) in obj.iter().filter(|(k, _)| *k != "allOf") {
                    merged.insert(k.clone(), val.clone());
                }
                return self.node(&Value::Object(merged), depth);
            }
        }
        let mut out = Map::new();
        for key in COPIED {
            if let Some(val) = obj.get(key) {
                out.insert(key.into(), val.clone());
            }
        }
        if !out.contains_key("example") {
            if let Some(first) = obj
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                out.insert("example".into(), first.clone());
            }
        }
        self.types(obj, &mut out, depth);
        self.enumeration(obj, &mut out);
        if let Some(Value::Object(props)) = obj.get("properties") {
            let cleaned: Map<String, Value> = props
                .iter()
                .map(|(k, p)| (k.clone(), self.node(p, depth)))
                .collect();
            out.insert("properties".into(), Value::Object(cleaned));
        }
        for key in ["required", "propertyOrdering"] {
            if let Some(Value::Array(names)) = obj.get(key) {
                out.insert(key.into(), Value::Array(names.clone()));
            }
        }
        if let Some(items) = obj.get("items") {
            out.insert("items".into(), self.node(items, depth));
        }
        let any = obj.get("anyOf").or_else(|| obj.get("oneOf"));
        if let Some(Value::Array(options)) = any {
            self.any_of(options, &mut out, depth);
        }
        Value::Object(out)
    }

    fn reference(&self, r: &str, obj: &Map<String, Value>, depth: usize) -> Value {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"));
        let target = name.and_then(|n| self.defs.and_then(|d| d.get(n)));
        match target {
            Some(t) if depth < MAX_REF_DEPTH => {
                let mut cleaned = self.node(t, depth + 1);
                // Sibling keywords of a `$ref` (a description, mostly) win.
                if let (Value::Object(c), Some(d)) = (&mut cleaned, obj.get("description")) {
                    c.insert("description".into(), d.clone());
                }
                cleaned
            }
            _ => {
                let mut cut = Map::new();
                cut.insert("type".into(), Value::String("OBJECT".into()));
                if let Some(d) = obj.get("description") {
                    cut.insert("description".into(), d.clone());
                }
                Value::Object(cut)
            }
        }
    }

    /// `type` (a name or a list of names) and the formats Gemini accepts for it.
    fn types(&self, obj: &Map<String, Value>, out: &mut Map<String, Value>, depth: usize) {
        let names: Vec<String> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.to_ascii_lowercase()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect(),
            _ => Vec::new(),
        };
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
                let options: Vec<Value> = several
                    .iter()
                    .map(|t| {
                        let mut copy = obj.clone();
                        copy.insert("type".into(), Value::String((*t).into()));
                        self.node(&Value::Object(copy), depth)
                    })
                    .collect();
                out.insert("anyOf".into(), Value::Array(options));
            }
        }
    }

    /// `enum` (strings only) or `const`.
    fn enumeration(&self, obj: &Map<String, Value>, out: &mut Map<String, Value>) {
        let values = match (obj.get("enum"), obj.get("const")) {
            (Some(Value::Array(e)), _) => e.clone(),
            (None, Some(c)) => vec![c.clone()],
            _ => return,
        };
        if !values.is_empty() && values.iter().all(Value::is_string) {
            out.insert("enum".into(), Value::Array(values));
            if !out.contains_key("type") {
                out.insert("type".into(), Value::String("STRING".into()));
            }
        }
    }

    fn any_of(&self, options: &[Value], out: &mut Map<String, Value>, depth: usize) {
        let mut kept = Vec::with_capacity(options.len());
        for o in options {
            if o.get("type").and_then(Value::as_str) == Some("null") {
                out.insert("nullable".into(), Value::Bool(true));
            } else {
                kept.push(self.node(o, depth));
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
