//! The request side: every message text of an OpenAI chat or Anthropic messages body is checked
//! against the local rules and the PII detectors in one pass, and masked or hashed values are
//! patched into the body in place (the rest of the body stays byte for byte as sent).
//!
//! Message texts are the string values under the top-level `messages` or `system` whose key is
//! `content`, `text`, `arguments` or `system`: plain and multi-part contents, Anthropic system
//! blocks, tool results (OpenAI `role: tool`, Anthropic `tool_result` blocks) and tool-call
//! arguments. Image URLs, ids, names and roles are not.

use std::borrow::Cow;

use sha2::Digest;

use crate::config::{Config, PiiAction};
use crate::detect::{self, Finding, Kind};
use crate::json::{self, NotJson, StrSpan, Top};
use crate::vault::Vault;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedBy {
    /// An input rule (index into `config.input.rules`).
    Rule(usize),
    /// A PII kind whose action is `block`.
    Pii(Kind),
    /// `limits.maxInputChars`.
    InputChars,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Checked {
    /// The request must be refused.
    pub blocked: Option<BlockedBy>,
    /// The body with masked and hashed values, when any.
    pub body: Option<Vec<u8>>,
    /// Log-only input rules that matched.
    pub logged: Vec<usize>,
    /// Per PII kind: values found, by the action taken.
    pub pii: Vec<(Kind, PiiAction)>,
    /// Top-level facts (stream flag, model).
    pub top: Top,
}

/// Buffers reused across the texts of one request.
#[derive(Debug, Default)]
pub struct Scratch {
    folded: String,
    hits: Vec<usize>,
    findings: Vec<Finding>,
}

fn is_message_text(body: &[u8], s: &StrSpan) -> bool {
    let chat = (s.top_is(body, b"messages") || s.top_is(body, b"system"))
        && [b"content".as_slice(), b"text", b"arguments", b"system"]
            .iter()
            .any(|k| s.key_is(body, k));
    // The Responses API: `instructions`, a string `input`, and the items' message content (string
    // or parts), function call arguments and function call outputs.
    let responses = s.top_is(body, b"instructions")
        || (s.top_is(body, b"input")
            && [
                b"input".as_slice(),
                b"content",
                b"text",
                b"arguments",
                b"output",
            ]
            .iter()
            .any(|k| s.key_is(body, k)));
    chat || responses
}

/// Check (and mask) a request body. `Err` when it is not a JSON object.
pub fn check(
    config: &Config,
    body: &[u8],
    vault: &mut Vault,
    scratch: &mut Scratch,
) -> Result<Checked, NotJson> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(NotJson {
            at: e.valid_up_to(),
        });
    }
    let mut spans = Vec::new();
    let top = json::walk(body, |s| {
        if is_message_text(body, &s) {
            spans.push(s);
        }
    })?;
    let mut out = Checked {
        top,
        ..Checked::default()
    };
    let mut chars_seen = 0usize;
    let mut patched: Vec<u8> = Vec::new();
    let mut copied = 0;
    for span in &spans {
        let Some(text) = span.text(body) else {
            return Err(NotJson { at: span.start });
        };
        if config.max_input_chars > 0 {
            chars_seen = chars_seen.saturating_add(text.chars().count());
            if chars_seen > config.max_input_chars {
                out.blocked = Some(BlockedBy::InputChars);
                return Ok(out);
            }
        }
        scratch.hits.clear();
        config
            .input
            .check(&text, &mut scratch.folded, &mut scratch.hits);
        for &h in &scratch.hits {
            let rule = config.input.rules.get(h);
            if rule.is_some_and(|r| r.action == crate::rules::RuleAction::Block) {
                out.blocked = Some(BlockedBy::Rule(h));
                return Ok(out);
            }
            if !out.logged.contains(&h) {
                out.logged.push(h);
            }
        }
        if config.kinds.is_empty() {
            continue;
        }
        scratch.findings.clear();
        detect::scan(&text, config.kinds, &mut scratch.findings);
        if scratch.findings.is_empty() {
            continue;
        }
        let mut new_text = String::new();
        let mut text_copied = 0;
        for f in &scratch.findings {
            let action = config.action(f.kind);
            out.pii.push((f.kind, action));
            let value = text.get(f.start..f.end).unwrap_or_default();
            let replacement: Cow<'_, str> = match action {
                PiiAction::Block => {
                    out.blocked = Some(BlockedBy::Pii(f.kind));
                    return Ok(out);
                }
                PiiAction::Log | PiiAction::Off => continue,
                PiiAction::Mask => Cow::Owned(vault.placeholder(f.kind, value, body).to_owned()),
                PiiAction::Hash => Cow::Owned(hash_token(config, f.kind, value)),
            };
            new_text.push_str(text.get(text_copied..f.start).unwrap_or_default());
            new_text.push_str(&replacement);
            text_copied = f.end;
        }
        if text_copied == 0 {
            continue;
        }
        new_text.push_str(text.get(text_copied..).unwrap_or_default());
        patched.extend_from_slice(body.get(copied..span.start).unwrap_or_default());
        json::escape_into(&mut patched, &new_text);
        copied = span.end;
    }
    if copied > 0 {
        patched.extend_from_slice(body.get(copied..).unwrap_or_default());
        out.body = Some(patched);
    }
    Ok(out)
}

/// Every message text of `body` (as it goes upstream, masked), joined by blank lines; `None`
/// when there is none or the body cannot be read.
pub fn texts(body: &[u8]) -> Option<String> {
    json::joined_texts(body, |s| is_message_text(body, s))
}

/// `[EMAIL:3f9a1c2b7d4e]`: the first 12 hex digits of SHA-256(salt ‖ value).
pub fn hash_token(config: &Config, kind: Kind, value: &str) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(&config.salt)
        .chain_update(value.as_bytes())
        .finalize();
    let mut out = String::with_capacity(kind.label().len() + 15);
    out.push('[');
    out.push_str(kind.label());
    out.push(':');
    for b in digest.iter().take(6) {
        out.push(char::from(
            HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
        ));
        out.push(char::from(
            HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
        ));
    }
    out.push(']');
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config(v: Value) -> Config {
        Config::build(&v).unwrap()
    }

    fn run(c: &Config, body: &Value) -> (Checked, Vault) {
        let mut vault = Vault::default();
        let bytes = serde_json::to_vec(body).unwrap();
        let out = check(c, &bytes, &mut vault, &mut Scratch::default()).unwrap();
        (out, vault)
    }

    #[test]
    fn values_are_masked_in_every_message_text_and_the_rest_is_kept() {
        let c = config(json!({"pii": {"email": "mask", "creditCard": "hash"}}));
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "ops@corp.example is the admin"},
            {"role": "user", "content": [{"type": "text", "text": "mail ops@corp.example, card 4111 1111 1111 1111"},
                                         {"type": "image_url", "image_url": {"url": "https://x.io/a@b.io"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found \"bob@x.org\""}
        ], "user": "keep@me.io"});
        let (out, vault) = run(&c, &body);
        assert!(out.blocked.is_none());
        let new: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
        assert_eq!(new["messages"][0]["content"], "[EMAIL_1] is the admin");
        let hashed = hash_token(&c, Kind::CreditCard, "4111 1111 1111 1111");
        assert_eq!(
            new["messages"][1]["content"][0]["text"],
            format!("mail [EMAIL_1], card {hashed}")
        );
        assert_eq!(
            new["messages"][1]["content"][1]["image_url"]["url"],
            "https://x.io/a@b.io"
        );
        assert_eq!(new["messages"][2]["content"], "found \"[EMAIL_2]\"");
        assert_eq!(new["user"], "keep@me.io", "only message texts are read");
        assert_eq!(vault.entries().len(), 2);
        assert!(hashed.starts_with("[CARD:") && hashed.len() == 19);
    }

    #[test]
    fn anthropic_system_and_tool_results_are_read() {
        let c = config(json!({"pii": {"usSsn": "mask"}}));
        let body = json!({"model": "m", "system": "ssn 123-45-6789", "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "x 123-45-6789"}]}]}
        ]});
        let (out, _) = run(&c, &body);
        let new: Value = serde_json::from_slice(&out.body.unwrap()).unwrap();
        assert_eq!(new["system"], "ssn [SSN_1]");
        assert_eq!(
            new["messages"][0]["content"][0]["content"][0]["text"],
            "x [SSN_1]"
        );
    }

    #[test]
    fn block_rules_and_block_pii_refuse_and_log_rules_only_report() {
        let c = config(json!({
            "denyWords": [{"name": "demo", "words": ["forbidden"]}, {"name": "watch", "words": ["hmm"], "action": "log"}],
            "pii": {"creditCard": "block", "email": "log"}
        }));
        let msg = |t: &str| json!({"messages": [{"role": "user", "content": t}]});
        let (out, _) = run(&c, &msg("a FORBIDDEN thing"));
        assert_eq!(out.blocked, Some(BlockedBy::Rule(0)));
        let (out, _) = run(&c, &msg("pay 4111111111111111"));
        assert_eq!(out.blocked, Some(BlockedBy::Pii(Kind::CreditCard)));
        let (out, _) = run(&c, &msg("hmm a@b.io"));
        assert_eq!((out.blocked, out.logged.as_slice()), (None, &[1][..]));
        assert_eq!(out.pii, [(Kind::Email, PiiAction::Log)]);
        assert!(out.body.is_none(), "nothing masked: the body is not copied");
    }

    #[test]
    fn the_input_size_limit_counts_characters() {
        let c = config(json!({"limits": {"maxInputChars": 5}}));
        let msg = |t: &str| json!({"messages": [{"role": "user", "content": t}]});
        assert_eq!(
            run(&c, &msg("ééééé")).0.blocked,
            None,
            "5 characters, 10 bytes"
        );
        assert_eq!(
            run(&c, &msg("123456")).0.blocked,
            Some(BlockedBy::InputChars)
        );
    }

    #[test]
    fn not_json_is_an_error() {
        let c = config(json!({"pii": {"email": "mask"}}));
        let mut v = Vault::default();
        assert!(check(&c, b"{\"messages\": [", &mut v, &mut Scratch::default()).is_err());
        assert!(check(&c, b"\xff{}", &mut v, &mut Scratch::default()).is_err());
    }
}
