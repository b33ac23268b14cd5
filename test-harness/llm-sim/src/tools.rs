//! The deterministic tool-call rule every provider format shares, so gateway tests can check tool
//! translation in both directions.
//!
//! Rule: when the request declares at least one tool and its last message is not a tool result,
//! the answer is a tool call if the last user message with text contains `weather` (any letter
//! case) or the request forces a tool call ([`ToolChoice::Any`] or [`ToolChoice::Named`]). The
//! called tool is the named one, else the first declared tool whose name contains `weather`,
//! else the first declared tool. Its arguments are built from the tool's JSON schema (see
//! [`arguments`]); they are streamed in pieces of [`PIECE_CHARS`] characters, one simulated token
//! each. A tool choice of "none" removes the tools before this rule runs.

use serde_json::Value;

use crate::reply::{fnv1a, last_user_text, splitmix64, Conversation, ECHO_WORDS};

/// The word that makes a request with tools get a tool call.
pub const TRIGGER_WORD: &str = "weather";

/// Characters of the arguments JSON per streamed piece.
pub const PIECE_CHARS: usize = 6;

/// Punctuation stripped from the ends of words taken from the user's text.
const PUNCT: &[char] = &['?', '.', '!', ',', ';', ':', '"', '\''];

/// A tool the caller declared: its name and its parameters' JSON schema (`Null` when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// JSON schema of the arguments (OpenAI `parameters`, Anthropic `input_schema`, Bedrock
    /// `inputSchema.json`, Gemini `parameters` / `parametersJsonSchema`).
    pub parameters: Value,
}

/// What the caller allows or demands of tool use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (here: the `weather` rule).
    #[default]
    Auto,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`, Bedrock `any`, Gemini `ANY`).
    Any,
    /// This tool must be called.
    Named(String),
}

/// The tool call the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Name of the called tool.
    pub name: String,
    /// Arguments as compact JSON text.
    pub arguments: String,
    /// `arguments` cut into streamed pieces; joined they give `arguments`.
    pub pieces: Vec<String>,
    /// 24 lowercase hex digits derived from name and arguments; providers add their prefix
    /// (`call_`, `toolu_`, `tooluse_`).
    pub id: String,
}

impl ToolCall {
    /// The arguments as a JSON value (an object).
    pub fn input(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// The tool call for a conversation, if the rule in the module docs asks for one.
pub fn call_for(conv: &Conversation) -> Option<ToolCall> {
    if conv.tools.is_empty() || conv.last_is_tool_result {
        return None;
    }
    let text = last_user_text(conv).unwrap_or_default();
    if conv.tool_choice == ToolChoice::Auto && !text.to_lowercase().contains(TRIGGER_WORD) {
        return None;
    }
    let named = match &conv.tool_choice {
        ToolChoice::Named(name) => conv.tools.iter().find(|t| &t.name == name),
        _ => None,
    };
    let tool = named
        .or_else(|| {
            conv.tools
                .iter()
                .find(|t| t.name.to_lowercase().contains(TRIGGER_WORD))
        })
        .or_else(|| conv.tools.first())?;
    let arguments = arguments(&tool.parameters, text);
    let pieces = split_chars(&arguments, PIECE_CHARS);
    let seed = fnv1a(format!("{}\0{}", tool.name, arguments).as_bytes());
    let id = format!(
        "{:016x}{:08x}",
        splitmix64(seed),
        splitmix64(seed ^ 1) >> 32
    );
    Some(ToolCall {
        name: tool.name.clone(),
        arguments,
        pieces,
        id,
    })
}

/// Builds the arguments object from the schema: one entry per `required` property in that order
/// (all properties in name order when nothing is required). Values: the first `enum` value when
/// there is one; strings get the user's words after the last `in` (punctuation trimmed; the
/// first 24 words of the message when there is no `in`); numbers and integers the first integer
/// in the message (else 1); booleans `true`; arrays `[]`; objects `{}`.
pub fn arguments(schema: &Value, text: &str) -> String {
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let names = if required.is_empty() {
        let mut all: Vec<String> = props
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        all.sort();
        all
    } else {
        required
    };
    let entries: Vec<String> = names
        .iter()
        .map(|name| {
            let value = value_for(props.and_then(|p| p.get(name)), text);
            format!(
                "{}:{}",
                Value::String(name.clone()),
                serde_json::to_string(&value).unwrap_or_default()
            )
        })
        .collect();
    format!("{{{}}}", entries.join(","))
}

fn value_for(prop: Option<&Value>, text: &str) -> Value {
    if let Some(first) = prop
        .and_then(|p| p.get("enum"))
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let kind = match prop.and_then(|p| p.get("type")) {
        Some(Value::String(t)) => t.to_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_lowercase(),
        _ => "string".to_string(),
    };
    match kind.as_str() {
        "number" | "integer" => Value::from(first_integer(text).unwrap_or(1)),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Default::default()),
        "null" => Value::Null,
        _ => Value::String(place(text)),
    }
}

/// The words after the last standalone `in`, or the first words of the text.
fn place(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after_in = words
        .iter()
        .rposition(|w| w.trim_matches(PUNCT).eq_ignore_ascii_case("in"))
        .and_then(|i| words.get(i.saturating_add(1)..))
        .filter(|rest| !rest.is_empty());
    let chosen: Vec<&str> = match after_in {
        Some(rest) => rest.to_vec(),
        None => words.iter().take(ECHO_WORDS).copied().collect(),
    };
    chosen.join(" ").trim_matches(PUNCT).to_string()
}

fn first_integer(text: &str) -> Option<i64> {
    text.split_whitespace()
        .find_map(|w| w.trim_matches(PUNCT).parse::<i64>().ok())
}

/// Cuts a text into pieces of at most `n` characters.
pub fn split_chars(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(text: &str, tools: Vec<Tool>) -> Conversation {
        Conversation {
            messages: vec![(true, text.to_string())],
            tools,
            ..Conversation::default()
        }
    }

    fn weather_tool() -> Tool {
        Tool {
            name: "get_weather".into(),
            parameters: json!({"type": "object",
                "properties": {"location": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
                "required": ["location", "units"]}),
        }
    }

    #[test]
    fn a_weather_question_with_tools_calls_the_weather_tool_with_schema_built_arguments() {
        let other = Tool {
            name: "lookup".into(),
            parameters: Value::Null,
        };
        let call = call_for(&conv(
            "What is the weather in SF?",
            vec![other, weather_tool()],
        ))
        .unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, r#"{"location":"SF","units":"c"}"#);
        assert_eq!(call.pieces.concat(), call.arguments);
        assert!(call.pieces.iter().all(|p| p.chars().count() <= PIECE_CHARS));
        assert_eq!(call.id.len(), 24);
        assert_eq!(call.input(), json!({"location": "SF", "units": "c"}));
    }

    #[test]
    fn no_tools_no_trigger_word_or_a_tool_result_last_means_no_call() {
        assert!(call_for(&conv("weather in Paris", vec![])).is_none());
        assert!(call_for(&conv("hello", vec![weather_tool()])).is_none());
        let mut c = conv("weather in Paris", vec![weather_tool()]);
        c.last_is_tool_result = true;
        assert!(call_for(&c).is_none());
    }

    #[test]
    fn a_forced_tool_choice_calls_a_tool_without_the_trigger_word() {
        let other = Tool {
            name: "lookup".into(),
            parameters: Value::Null,
        };
        let mut c = conv("hello", vec![other, weather_tool()]);
        c.tool_choice = ToolChoice::Any;
        assert_eq!(call_for(&c).unwrap().name, "get_weather");
        c.tool_choice = ToolChoice::Named("lookup".into());
        let call = call_for(&c).unwrap();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("lookup", "{}")
        );
    }

    #[test]
    fn numbers_take_the_first_integer_and_unrequired_properties_go_in_name_order() {
        let schema = json!({"properties": {"x": {"type": "NUMBER"}, "a": {"type": "BOOLEAN"}}});
        assert_eq!(
            arguments(&schema, "weather cosine of 7?"),
            r#"{"a":true,"x":7}"#
        );
        assert_eq!(arguments(&Value::Null, "x"), "{}");
    }
}
