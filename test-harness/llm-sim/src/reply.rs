//! Provider-neutral derivation of the simulated answer: reply text, token pieces, usage counts and
//! embedding vectors. Every provider module formats what this module computes, so all formats agree.
//! Whether the answer is a tool call instead of text is decided by [`crate::tools`].

use crate::tools::{self, Tool, ToolCall, ToolChoice};

/// How many words of the last user message the reply echoes.
pub const ECHO_WORDS: usize = 24;

/// Prefix of every chat reply.
pub const REPLY_PREFIX: &str = "sim: ";

/// Reply used when the request carries no user text at all.
pub const NO_USER_TEXT: &str = "(no user message)";

/// A conversation reduced to what the simulator needs: the text of every message, in order, and
/// which of them came from the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// `(is_user, text)` per message; text parts of one message are joined with a newline.
    pub messages: Vec<(bool, String)>,
    /// Upper bound on completion tokens requested by the caller, if any.
    pub max_tokens: Option<u64>,
    /// Tools the caller declared, in order.
    pub tools: Vec<Tool>,
    /// Whether the caller forces a tool call.
    pub tool_choice: ToolChoice,
    /// The last message carries tool results (OpenAI `role: tool`, Anthropic `tool_result`,
    /// Bedrock `toolResult`, Gemini `functionResponse`): the answer is then always text.
    pub last_is_tool_result: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The whole reply was produced.
    Stop,
    /// The caller's token limit cut the reply short.
    Length,
    /// The answer is a tool call.
    ToolUse,
}

/// The deterministic answer to one chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Token pieces; joined they give the reply text. The first piece has no leading space, later
    /// word pieces carry theirs, like OpenAI's stream deltas (`"Hi"`, `" there"`).
    pub pieces: Vec<String>,
    /// Why generation stopped.
    pub finish: Finish,
    /// Simulated prompt token count.
    pub prompt_tokens: u64,
    /// The tool call, when the answer is one (then `pieces` is empty).
    pub tool_call: Option<ToolCall>,
}

impl Reply {
    /// The whole reply text.
    pub fn text(&self) -> String {
        self.pieces.concat()
    }

    /// Simulated completion token count: one per text piece, or one per argument piece of a
    /// tool call.
    pub fn completion_tokens(&self) -> u64 {
        let n = match &self.tool_call {
            Some(call) => call.pieces.len(),
            None => self.pieces.len(),
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens())
    }
}

/// Counts simulated tokens in a text: one per whitespace-separated word.
pub fn count_tokens(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// Splits a text into token pieces: words, each later word keeping one leading space.
pub fn split_pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i == 0 {
            pieces.push(word.to_string());
        } else {
            pieces.push(format!(" {word}"));
        }
    }
    pieces
}

/// The text of the last user message that has any, if there is one.
pub fn last_user_text(conv: &Conversation) -> Option<&str> {
    conv.messages
        .iter()
        .rev()
        .find(|(is_user, text)| *is_user && !text.trim().is_empty())
        .map(|(_, text)| text.as_str())
}

/// Derives the reply for a conversation: a tool call when [`tools::call_for`] says so, otherwise
/// `"sim: "` followed by the first [`ECHO_WORDS`] words of the last user message, cut to
/// `max_tokens` pieces when the caller asked for fewer.
pub fn derive_reply(conv: &Conversation) -> Reply {
    let prompt_tokens = conv
        .messages
        .iter()
        .map(|(_, text)| count_tokens(text))
        .fold(0u64, u64::saturating_add);
    if let Some(call) = tools::call_for(conv) {
        return Reply {
            pieces: Vec::new(),
            finish: Finish::ToolUse,
            prompt_tokens,
            tool_call: Some(call),
        };
    }
    let last_user = last_user_text(conv);
    let echo: Vec<&str> = match last_user {
        Some(text) => text.split_whitespace().take(ECHO_WORDS).collect(),
        None => vec![NO_USER_TEXT],
    };
    let full = format!("{}{}", REPLY_PREFIX, echo.join(" "));
    let mut pieces = split_pieces(&full);
    let mut finish = Finish::Stop;
    if let Some(limit) = conv.max_tokens {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        if pieces.len() > limit {
            pieces.truncate(limit);
            finish = Finish::Length;
        }
    }
    Reply {
        pieces,
        finish,
        prompt_tokens,
        tool_call: None,
    }
}

/// Default embedding width when the request does not ask for `dimensions`.
pub const DEFAULT_DIMENSIONS: usize = 16;

/// Largest embedding width the simulator accepts.
pub const MAX_DIMENSIONS: usize = 4096;

/// A deterministic unit-length embedding of `text` with `dims` components.
///
/// Component `i` is drawn from a 64-bit hash of the text mixed with `i`, mapped to `[-1, 1)`, and
/// the vector is then scaled to Euclidean length 1.
pub fn embed(text: &str, dims: usize) -> Vec<f32> {
    let seed = fnv1a(text.as_bytes());
    let raw: Vec<f64> = (0..dims)
        .map(|i| {
            let h = splitmix64(seed ^ (u64::try_from(i).unwrap_or(0).wrapping_mul(0x9E37_79B9)));
            // Top 53 bits as a fraction in [0, 1), then to [-1, 1).
            let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return raw.iter().map(|x| *x as f32).collect();
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(msgs: &[(bool, &str)]) -> Conversation {
        Conversation {
            messages: msgs.iter().map(|(u, t)| (*u, t.to_string())).collect(),
            ..Conversation::default()
        }
    }

    #[test]
    fn reply_echoes_the_last_user_message_after_the_prefix() {
        let r = derive_reply(&conv(&[
            (true, "first"),
            (false, "x"),
            (true, "hello  big\nworld"),
        ]));
        assert_eq!(r.text(), "sim: hello big world");
        assert_eq!(r.pieces, vec!["sim:", " hello", " big", " world"]);
        assert_eq!(r.finish, Finish::Stop);
        assert_eq!(r.prompt_tokens, 5);
        assert_eq!(r.total_tokens(), 9);
    }

    #[test]
    fn reply_echoes_at_most_the_echo_word_limit() {
        let long = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let r = derive_reply(&conv(&[(true, &long)]));
        assert_eq!(r.completion_tokens(), 1 + ECHO_WORDS as u64);
    }

    #[test]
    fn reply_without_user_text_says_so() {
        let r = derive_reply(&conv(&[(false, "system only")]));
        assert_eq!(r.text(), "sim: (no user message)");
    }

    #[test]
    fn max_tokens_cuts_the_reply_and_reports_length() {
        let mut c = conv(&[(true, "one two three four")]);
        c.max_tokens = Some(2);
        let r = derive_reply(&c);
        assert_eq!(r.text(), "sim: one");
        assert_eq!(r.finish, Finish::Length);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors_that_differ_by_text() {
        let a = embed("hello", 16);
        assert_eq!(a, embed("hello", 16));
        assert_ne!(a, embed("hellp", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert_eq!(embed("x", 3).len(), 3);
    }
}
