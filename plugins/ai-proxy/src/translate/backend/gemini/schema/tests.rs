//! Schema cleaning: ordinary schemas keep their translation; schemas that the rewrites would
//! multiply (type lists, `$ref`s) stop at the request's budget with a 400 naming the limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use serde_json::{json, Value};

use super::{clean, Budget, Exceeded, MAX_DEPTH, MAX_NODES};
use crate::hub::ChatRequest;
use crate::translate::backend::gemini::GeminiBackend;
use crate::translate::{Backend, BuildContext, TranslateError, UnsupportedPolicy};

fn cleaned(schema: &Value) -> Result<Value, Exceeded> {
    clean(schema, &mut Budget::default())
}

/// `{"type":["object","string","number"],"properties":{"a": …}}` nested `levels` deep: each level
/// used to be cleaned once more per listed type and once more for `properties` (4^levels).
fn type_list_tower(levels: usize) -> Value {
    let mut v = json!({"type": "string"});
    for _ in 0..levels {
        v = json!({"type": ["object", "string", "number"], "properties": {"a": v}});
    }
    v
}

/// `$defs` whose every property refers back to a definition: inlined 8 levels deep, ten-fold
/// per level.
fn ref_fan() -> Value {
    let props: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/n"})))
        .collect();
    json!({
        "type": "object",
        "$defs": {"n": {"type": "object", "properties": props}},
        "properties": {"root": {"$ref": "#/$defs/n"}}
    })
}

fn tool_request(parameters: Value) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "gemini-2.0-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    }))
    .unwrap()
}

fn encode(req: &ChatRequest) -> Result<Vec<u8>, TranslateError> {
    let mut ctx = BuildContext::new(&req.model, UnsupportedPolicy::Reject);
    GeminiBackend.encode_request(req, &mut ctx)
}

#[test]
fn a_nested_type_list_tower_is_refused_with_the_node_limit() {
    let tower = type_list_tower(12);
    // The hostile request of the issue is under a kilobyte.
    assert!(
        tower.to_string().len() < 1000,
        "{}",
        tower.to_string().len()
    );
    assert_eq!(cleaned(&tower), Err(Exceeded::Nodes));

    let err = encode(&tool_request(tower)).unwrap_err();
    let client = err.to_client();
    assert_eq!(client.status, 400);
    assert_eq!(
        client.param.as_deref(),
        Some("tools[0].function.parameters")
    );
    assert!(
        client
            .message
            .contains(&format!("{MAX_NODES} schema nodes")),
        "{}",
        client.message
    );
}

#[test]
fn definitions_that_refer_back_to_themselves_are_refused_with_the_node_limit() {
    assert_eq!(cleaned(&ref_fan()), Err(Exceeded::Nodes));
    let err = encode(&tool_request(ref_fan())).unwrap_err().to_client();
    assert_eq!(err.status, 400);
    assert!(err.message.contains("schema nodes"), "{}", err.message);
}

#[test]
fn the_budget_is_shared_by_every_schema_of_a_request() {
    // Each tool alone fits; together they do not.
    let one = type_list_tower(5); // 4^5 = 1024 nodes and some
    assert!(cleaned(&one).is_ok());
    let tools: Vec<Value> = (0..12)
        .map(|i| json!({"type": "function", "function": {"name": format!("f{i}"), "parameters": one}}))
        .collect();
    let req: ChatRequest = serde_json::from_value(json!({
        "model": "gemini-2.0-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools
    }))
    .unwrap();
    let err = encode(&req).unwrap_err().to_client();
    assert_eq!(err.status, 400);
    assert!(err.message.contains("schema nodes"), "{}", err.message);
}

#[test]
fn copied_text_multiplied_by_refs_is_charged() {
    // Few nodes, but a long description copied at every expansion.
    let long = "x".repeat(64 * 1024);
    let schema = json!({
        "$defs": {"d": {"type": "string", "description": long}},
        "type": "object",
        "properties": (0..100).map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/d"}))).collect::<serde_json::Map<_, _>>()
    });
    assert_eq!(cleaned(&schema), Err(Exceeded::Text));
}

#[test]
fn schemas_nested_too_deep_through_refs_are_refused() {
    // Each definition nests 10 levels and refers to the next: 8 inlined references put the
    // leaves far below the depth limit, while the JSON itself stays shallow.
    let mut defs = serde_json::Map::new();
    for d in 0..9 {
        let mut v = json!({"$ref": format!("#/$defs/d{}", d + 1)});
        for _ in 0..10 {
            v = json!({"type": "object", "properties": {"x": v}});
        }
        defs.insert(format!("d{d}"), v);
    }
    let schema = json!({"$defs": defs, "$ref": "#/$defs/d0"});
    assert_eq!(cleaned(&schema), Err(Exceeded::Depth));
    assert!(Exceeded::Depth
        .to_string()
        .contains(&format!("{MAX_DEPTH} levels")));
}

#[test]
fn ordinary_schemas_translate_as_before() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string", "format": "email"}}}},
        "properties": {
            "name": {"type": "string", "minLength": 1, "title": "Name"},
            "nickname": {"type": ["string", "null"]},
            "age": {"anyOf": [{"type": "integer", "format": "int32"}, {"type": "null"}]},
            "kind": {"const": "human"},
            "level": {"enum": [1, 2, 3], "type": "integer", "examples": [2]},
            "id": {"type": ["string", "integer"], "description": "either"},
            "home": {"$ref": "#/$defs/address", "description": "Where they live"},
            "tags": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}, "maxItems": 3},
            "meta": {"allOf": [{"type": "object", "properties": {"k": {"type": "boolean"}}}], "description": "m"},
            "nested": {"allOf": [{"allOf": [{"type": "string", "enum": ["a", "b"]}]}]},
            "tree": {"$ref": "#/$defs/missing"}
        },
        "required": ["name"]
    });
    assert_eq!(
        cleaned(&schema).unwrap(),
        json!({
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING", "minLength": 1, "title": "Name"},
                "nickname": {"type": "STRING", "nullable": true},
                "age": {"type": "INTEGER", "format": "int32", "nullable": true},
                "kind": {"type": "STRING", "enum": ["human"]},
                "level": {"type": "INTEGER", "example": 2},
                "id": {"description": "either", "anyOf": [
                    {"type": "STRING", "description": "either"},
                    {"type": "INTEGER", "description": "either"}
                ]},
                "home": {"type": "OBJECT", "properties": {"street": {"type": "STRING"}}, "description": "Where they live"},
                "tags": {"type": "ARRAY", "maxItems": 3, "items": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}},
                "meta": {"type": "OBJECT", "description": "m", "properties": {"k": {"type": "BOOLEAN"}}},
                "nested": {"type": "STRING", "enum": ["a", "b"]},
                "tree": {"type": "OBJECT"}
            },
            "required": ["name"]
        })
    );
}

#[test]
fn a_recursive_definition_is_still_cut_to_an_object() {
    let schema = json!({
        "$defs": {"node": {"type": "object", "properties": {
            "value": {"type": "integer"},
            "next": {"$ref": "#/$defs/node"}
        }}},
        "$ref": "#/$defs/node"
    });
    let mut v = &cleaned(&schema).unwrap();
    let mut levels = 0;
    while let Some(next) = v.get("properties").and_then(|p| p.get("next")) {
        v = next;
        levels += 1;
    }
    assert_eq!(levels, super::MAX_REF_DEPTH);
    assert_eq!(v, &json!({"type": "OBJECT"}));
}
