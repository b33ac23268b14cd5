//! Borrowing leaf types: strings, token counts, roles and "string or content parts" fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON string that borrows from the input when it has no escapes. Unlike a bare
/// `Option<Cow<str>>` field (which serde always copies), this borrows inside `Option` and `Vec` too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the text borrows from the input (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A token count that tolerates the ways gateways re-encode numbers: integers, floats with an
/// integral value (`377.0`, as Go's float64 round trip can produce) and negative values (read as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).unwrap_or(0)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                if v.is_finite() && v >= 0.0 && v <= u64::MAX as f64 {
                    // Truncation is intended: counts are whole numbers re-encoded as floats.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(Count(v as u64))
                } else {
                    Ok(Count(0))
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A message role. Unknown roles are kept as [`Role::Other`] instead of failing the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instructions (OpenAI `system`; Anthropic top-level `system`).
    System,
    /// OpenAI's `developer` (system instructions for reasoning models).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result (OpenAI).
    Tool,
    /// A legacy function result (OpenAI).
    Function,
    /// Any other role.
    #[serde(other)]
    Other,
}

impl Role {
    /// The role's wire name (`other` for unknown roles).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Developer => "developer",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
            Self::Function => "function",
            Self::Other => "other",
        }
    }
}

/// The text of a `content` (or Anthropic `system`) field: a string, `null`, or an array of parts
/// from which the text parts are taken (`{"type":"text","text":...}`, also `input_text` /
/// `output_text`, and the text inside Anthropic `tool_result` blocks). Images, audio, tool calls
/// and thinking blocks are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextContent<'a> {
    /// The text pieces in order.
    pub parts: Vec<Text<'a>>,
}

impl TextContent<'_> {
    /// All pieces joined with `\n`.
    pub fn joined(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(p);
        }
        out
    }
}

/// One element of a content array; only what text extraction needs.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
    /// Anthropic `tool_result` content (string or blocks).
    #[serde(borrow, default)]
    content: Option<TextContent<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for TextContent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextContent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, null or an array of content parts")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TextContent::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TextContent::default())
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TextContent {
                    parts: vec![Text(Cow::Borrowed(v))],
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextContent {
                    parts: vec![Text(Cow::Owned(v.to_owned()))],
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<Part<'de>>()? {
                    let kind = part.kind.as_deref().unwrap_or("text");
                    match kind {
                        "text" | "input_text" | "output_text" => parts.extend(part.text),
                        "tool_result" => {
                            parts.extend(part.content.map(|c| c.parts).unwrap_or_default())
                        }
                        _ => {}
                    }
                }
                Ok(TextContent { parts })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A "string or array" input (OpenAI `prompt`, embeddings `input`): the strings it holds. Token-id
/// arrays (`[1, 2]`, `[[1, 2]]`) carry no text and are skipped, but their element count is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextList<'a> {
    /// The strings in order.
    pub texts: Vec<Text<'a>>,
    /// How many token ids were given instead of text.
    pub token_ids: u64,
}

/// One element of a `TextList` array.
enum Item<'a> {
    Text(Text<'a>),
    Tokens(u64),
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Item::Text(Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Item::Text(Text(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Item::Tokens(1))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Item::Tokens(1))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut n = 0u64;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Item::Tokens(n))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TextList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings or token ids")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TextList::default())
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TextList {
                    texts: vec![Text(Cow::Borrowed(v))],
                    token_ids: 0,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextList {
                    texts: vec![Text(Cow::Owned(v.to_owned()))],
                    token_ids: 0,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = TextList::default();
                while let Some(item) = seq.next_element::<Item<'de>>()? {
                    match item {
                        Item::Text(t) => list.texts.push(t),
                        Item::Tokens(n) => list.token_ids += n,
                    }
                }
                Ok(list)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_borrows_unless_the_string_has_escapes() {
        let t: Vec<Text> = serde_json::from_str(r#"["plain","esc\"aped"]"#).unwrap();
        assert!(t[0].is_borrowed());
        assert!(!t[1].is_borrowed());
        assert_eq!(t[1].as_str(), "esc\"aped");
        let o: Option<Text> = serde_json::from_str(r#""x""#).unwrap();
        assert!(o.unwrap().is_borrowed());
    }

    #[test]
    fn counts_accept_integers_floats_and_clamp_negatives() {
        let c: Vec<Count> = serde_json::from_str("[3, 377.0, -1, 1e300]").unwrap();
        assert_eq!(c, vec![Count(3), Count(377), Count(0), Count(0)]);
        assert!(serde_json::from_str::<Count>("\"3\"").is_err());
    }

    #[test]
    fn content_takes_text_parts_and_tool_result_text_only() {
        let json = r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},
            {"type":"tool_result","content":[{"type":"text","text":"b"}]},{"type":"tool_result","content":"c"},
            {"type":"tool_use","input":{"text":"no"}},{"text":"untyped"}]"#;
        let c: TextContent = serde_json::from_str(json).unwrap();
        assert_eq!(c.joined(), "a\nb\nc\nuntyped");
        let c: TextContent = serde_json::from_str("null").unwrap();
        assert!(c.parts.is_empty());
        assert!(serde_json::from_str::<TextContent>("5").is_err());
    }

    #[test]
    fn text_lists_hold_strings_and_count_token_ids() {
        let l: TextList = serde_json::from_str(r#"["a",[1,2,3],7,"b"]"#).unwrap();
        assert_eq!(
            l.texts.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(l.token_ids, 4);
        let l: TextList = serde_json::from_str(r#""one""#).unwrap();
        assert_eq!(l.texts.len(), 1);
    }

    #[test]
    fn unknown_roles_are_other() {
        let r: Vec<Role> = serde_json::from_str(r#"["developer","critic"]"#).unwrap();
        assert_eq!(r, vec![Role::Developer, Role::Other]);
        assert_eq!(Role::Tool.as_str(), "tool");
    }
}
