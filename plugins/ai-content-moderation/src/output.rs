//! The answer side: output rules and the restore of masked values, over one text channel at a
//! time (a streamed choice's content, a tool call's arguments, an Anthropic content block), and
//! over a whole JSON answer.
//!
//! A channel holds back what it cannot release yet: with output rules, the last
//! `holdBackChars` characters (a match may still grow there); with masked values, a `[` that may
//! become a placeholder. Everything before is released, placeholders put back. The rules see the
//! held text plus a tail of what was released, so a match across two pieces is found; a match
//! longer than the window may be found only after part of it went out.

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Config, PiiAction};
use crate::detect::{self, Finding, Kind};
use crate::json;
use crate::request::hash_token;
use crate::rules::{RuleAction, Rules};
use crate::vault::Vault;

/// Why an answer was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The output rule with this index matched.
    Rule(usize),
    /// A PII value of this kind, whose `output.pii` action is `block`.
    Pii(Kind),
}

/// Work buffers and running results shared by the channels of one answer.
#[derive(Debug, Default)]
pub struct Tally {
    /// Log-only output rules that matched.
    pub logged: Vec<usize>,
    /// Values put back.
    pub restored: usize,
    /// PII values found in the answer and released (masked, hashed or only counted), per kind
    /// and action.
    pub pii: Vec<(Kind, PiiAction)>,
    folded: String,
    window: String,
    hits: Vec<usize>,
    findings: Vec<Finding>,
}

impl Tally {
    /// Check `text` against `rules`: the first blocking rule, log-only ones noted.
    fn check(&mut self, rules: &Rules, text: &str) -> Option<usize> {
        self.hits.clear();
        rules.check(text, &mut self.folded, &mut self.hits);
        let mut block = None;
        for &h in &self.hits {
            match rules.rules.get(h).map(|r| r.action) {
                Some(RuleAction::Block) => {
                    block.get_or_insert(h);
                }
                _ => {
                    if !self.logged.contains(&h) {
                        self.logged.push(h);
                    }
                }
            }
        }
        block
    }
}

/// What a channel does with its text.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Output rules to check (content channels with rules only).
    pub rules: Option<&'a Rules>,
    /// Values to put back (when restoring).
    pub vault: Option<&'a Vault>,
    /// Characters held back for the rules.
    pub hold_back: usize,
    /// The text is JSON (tool arguments): values are put back escaped.
    pub json_inner: bool,
    /// PII detectors on this channel (`output.pii`, content channels only): the config.
    pub pii: Option<&'a Config>,
}

/// Mask or hash, in `text[..limit]`, the findings that end there; note what was released.
/// `Block` values (only reached when the answer is complete) are masked too: never released.
fn redact(
    config: &Config,
    text: &str,
    findings: &[Finding],
    tally_pii: &mut Vec<(Kind, PiiAction)>,
) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    for f in findings {
        let action = config.output_pii.action(f.kind);
        tally_pii.push((f.kind, action));
        let value = text.get(f.start..f.end).unwrap_or_default();
        let replacement = match action {
            PiiAction::Log | PiiAction::Off => continue,
            PiiAction::Mask | PiiAction::Block => format!("[{}]", f.kind.label()),
            PiiAction::Hash => hash_token(config, f.kind, value),
        };
        out.push_str(text.get(copied..f.start).unwrap_or_default());
        out.push_str(&replacement);
        copied = f.end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Some(out)
}

/// Bytes of a PII value still open in a stream held before it goes out masked as it is.
pub const MAX_OPEN_VALUE: usize = 16 << 10;

/// One text channel of a streamed answer.
#[derive(Debug, Default)]
pub struct Channel {
    pending: String,
    context: String,
}

impl Channel {
    /// Take `piece`; the text that can go out now (maybe empty), or the blocking rule.
    pub fn feed(&mut self, p: Policy<'_>, piece: &str, tally: &mut Tally) -> Result<String, Cut> {
        self.pending.push_str(piece);
        let mut limit = self.pending.len();
        if let Some(rules) = p.rules {
            let mut window = std::mem::take(&mut tally.window);
            window.clear();
            window.push_str(&self.context);
            window.push_str(&self.pending);
            let blocked = tally.check(rules, &window);
            tally.window = window;
            if let Some(rule) = blocked {
                return Err(Cut::Rule(rule));
            }
        }
        let mut findings = std::mem::take(&mut tally.findings);
        findings.clear();
        if let Some(config) = p.pii {
            detect::scan(&self.pending, config.output_pii.kinds, &mut findings);
            let block = findings
                .iter()
                .find(|f| config.output_pii.action(f.kind) == PiiAction::Block);
            if let Some(f) = block {
                let kind = f.kind;
                tally.findings = findings;
                return Err(Cut::Pii(kind));
            }
        }
        if p.rules.is_some() || p.pii.is_some() {
            limit = if p.hold_back == 0 {
                limit
            } else {
                self.pending
                    .char_indices()
                    .rev()
                    .nth(p.hold_back - 1)
                    .map_or(0, |(i, _)| i)
            };
        }
        if let Some(vault) = p.vault {
            limit = vault.safe_cut(&self.pending, limit);
        }
        // A value still open at the limit (crossing it, or ending where the text ends so far and
        // so maybe still growing) waits whole; one longer than `MAX_OPEN_VALUE` (a private-key
        // line with no end line, an endless JWT) goes out masked as far as it got, so a channel
        // never holds (and rescans at every piece) the whole rest of the answer.
        for f in findings.iter().rev() {
            if f.start < limit && (f.end > limit || f.end == self.pending.len()) {
                limit = if f.end - f.start > MAX_OPEN_VALUE {
                    limit.max(f.end)
                } else {
                    f.start
                };
            }
        }
        if limit == 0 {
            tally.findings = findings;
            return Ok(String::new());
        }
        let rest = self.pending.split_off(limit);
        let mut released = std::mem::replace(&mut self.pending, rest);
        if let Some(config) = p.pii {
            findings.retain(|f| f.end <= limit);
            if let Some(redacted) = redact(config, &released, &findings, &mut tally.pii) {
                released = redacted;
            }
        }
        tally.findings = findings;
        if let Some(rules) = p.rules {
            self.context.push_str(&released);
            let keep = p
                .hold_back
                .saturating_mul(4)
                .saturating_add(rules.longest_literal)
                .saturating_add(64);
            if self.context.len() > keep {
                let mut cut = self.context.len() - keep;
                while !self.context.is_char_boundary(cut) {
                    cut += 1;
                }
                self.context.drain(..cut);
            }
        }
        Ok(self.put_back(p, released, tally))
    }

    /// The channel ends: everything held goes out.
    pub fn flush(&mut self, p: Policy<'_>, tally: &mut Tally) -> String {
        let mut held = std::mem::take(&mut self.pending);
        if let Some(config) = p.pii {
            let mut findings = std::mem::take(&mut tally.findings);
            findings.clear();
            detect::scan(&held, config.output_pii.kinds, &mut findings);
            if let Some(redacted) = redact(config, &held, &findings, &mut tally.pii) {
                held = redacted;
            }
            tally.findings = findings;
        }
        self.put_back(p, held, tally)
    }

    fn put_back(&self, p: Policy<'_>, text: String, tally: &mut Tally) -> String {
        match p.vault {
            Some(vault) => {
                let (restored, n) = vault.restore(&text, p.json_inner);
                tally.restored += n;
                if n == 0 {
                    text
                } else {
                    restored.into_owned()
                }
            }
            None => text,
        }
    }
}

/// What happened to a whole JSON answer.
#[derive(Debug, Default)]
pub struct JsonFix {
    /// The new body, when it changed.
    pub body: Option<Vec<u8>>,
    /// Why the answer was replaced with the safe message.
    pub cut: Option<Cut>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

/// `body`, a JSON answer of `protocol`, replaced by one with `output.safeMessage` (its model
/// and usage kept).
pub fn safe_answer(
    config: &Config,
    protocol: aigw_shared::error::ClientProtocol,
    responses: bool,
    body: &[u8],
    created: u64,
) -> Vec<u8> {
    if responses {
        // The response object itself, its output replaced (id, model, usage kept).
        let base: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let v = crate::answer::responses_object(base.as_ref(), "", &config.safe_message, created);
        return serde_json::to_vec(&v).unwrap_or_default();
    }
    let head: Option<Head> = serde_json::from_slice(body).ok();
    let (model, usage) = head.map(|h| (h.model, h.usage)).unwrap_or_default();
    crate::answer::refusal_json(
        protocol,
        false,
        model.as_deref().unwrap_or(""),
        &config.safe_message,
        created,
        usage.filter(|u| u.is_object()),
    )
}

/// The answer texts of a JSON answer (message contents, text blocks), joined by blank lines;
/// `None` when there is none.
pub fn answer_text(body: &[u8]) -> Option<String> {
    json::joined_texts(body, |s| is_answer_text(body, s))
}

/// Whether `s` is answer text: an OpenAI message content (`choices[].message.content`) or an
/// Anthropic text block (`content[].text`), at their depth: a `text` or `content` field deeper
/// down (in a tool call's `input`) is the tool's, not text.
fn is_answer_text(body: &[u8], s: &json::StrSpan) -> bool {
    (s.depth == 4 && s.top_is(body, b"choices") && s.key_is(body, b"content"))
        || (s.depth == 3 && s.top_is(body, b"content") && s.key_is(body, b"text"))
        // Responses API: output[].content[].text.
        || (s.depth == 5 && s.top_is(body, b"output") && s.key_is(body, b"text"))
}

/// Check and restore a whole JSON answer of `protocol`.
pub fn fix_json(
    config: &Config,
    vault: Option<&Vault>,
    protocol: aigw_shared::error::ClientProtocol,
    responses: bool,
    body: &[u8],
    created: u64,
    tally: &mut Tally,
) -> JsonFix {
    let mut out = JsonFix::default();
    let mut spans = Vec::new();
    if json::walk(body, |s| spans.push(s)).is_err() {
        return out;
    }
    let is_answer_text = |s: &json::StrSpan| is_answer_text(body, s);
    let pii = !config.output_pii.kinds.is_empty();
    let mut findings = std::mem::take(&mut tally.findings);
    if config.checks_answers() {
        for s in spans.iter().filter(|s| is_answer_text(s)) {
            let Some(text) = s.text(body) else { continue };
            let mut cut = tally.check(&config.output, &text).map(Cut::Rule);
            if pii && cut.is_none() {
                findings.clear();
                detect::scan(&text, config.output_pii.kinds, &mut findings);
                cut = findings
                    .iter()
                    .find(|f| config.output_pii.action(f.kind) == PiiAction::Block)
                    .map(|f| Cut::Pii(f.kind));
            }
            if let Some(cut) = cut {
                out.cut = Some(cut);
                out.body = Some(safe_answer(config, protocol, responses, body, created));
                tally.findings = findings;
                return out;
            }
        }
    }
    let vault = vault.filter(|v| !v.is_empty());
    let mut patched = Vec::new();
    let mut copied = 0;
    for s in &spans {
        let redact_here = pii && is_answer_text(s);
        let raw = body.get(s.start..s.end).unwrap_or_default();
        let restore_here = vault.is_some() && memchr::memchr(b'[', raw).is_some();
        if !redact_here && !restore_here {
            continue;
        }
        let Some(text) = s.text(body) else { continue };
        let mut new_text: Option<String> = None;
        if redact_here {
            findings.clear();
            detect::scan(&text, config.output_pii.kinds, &mut findings);
            new_text = redact(config, &text, &findings, &mut tally.pii);
        }
        if let Some(vault) = vault.filter(|_| restore_here) {
            let current = new_text.as_deref().unwrap_or(&text);
            let (restored, n) = vault.restore(current, s.key_is(body, b"arguments"));
            if n > 0 {
                tally.restored += n;
                new_text = Some(restored.into_owned());
            }
        }
        let Some(new_text) = new_text else { continue };
        patched.extend_from_slice(body.get(copied..s.start).unwrap_or_default());
        json::escape_into(&mut patched, &new_text);
        copied = s.end;
    }
    tally.findings = findings;
    if copied > 0 {
        patched.extend_from_slice(body.get(copied..).unwrap_or_default());
        out.body = Some(patched);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Kind;
    use aigw_shared::error::ClientProtocol;
    use serde_json::json;

    fn vault() -> Vault {
        let mut v = Vault::default();
        v.placeholder(Kind::Email, "ann@corp.example", b"");
        v
    }

    fn rules_config() -> Config {
        Config::build(&json!({"output": {"denyWords": [{"name": "bad", "words": ["kaboom"]}], "holdBackChars": 8}}))
            .unwrap()
    }

    /// Feed `pieces` through one channel; the released text, or the cutting rule.
    fn through(p: Policy<'_>, pieces: &[&str]) -> Result<String, Cut> {
        let mut ch = Channel::default();
        let mut tally = Tally::default();
        let mut out = String::new();
        for piece in pieces {
            out.push_str(&ch.feed(p, piece, &mut tally)?);
        }
        out.push_str(&ch.flush(p, &mut tally));
        Ok(out)
    }

    #[test]
    fn placeholders_split_anywhere_are_restored() {
        let v = vault();
        let p = Policy {
            rules: None,
            vault: Some(&v),
            hold_back: 0,
            json_inner: false,
            pii: None,
        };
        let text = "write to [EMAIL_1] today, not [EMAIL_2] or [link]";
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                through(p, &[a, b]).unwrap(),
                "write to ann@corp.example today, not [EMAIL_2] or [link]",
                "cut at {cut}"
            );
        }
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(
            through(p, &refs).unwrap(),
            "write to ann@corp.example today, not [EMAIL_2] or [link]"
        );
    }

    #[test]
    fn output_rules_cut_a_match_split_across_pieces_and_hold_back_only_the_window() {
        let c = rules_config();
        let p = Policy {
            rules: Some(&c.output),
            vault: None,
            hold_back: c.hold_back_chars,
            json_inner: false,
            pii: None,
        };
        assert_eq!(
            through(p, &["all ", "is ", "ka", "bo", "om", " now"]),
            Err(Cut::Rule(0))
        );
        let mut ch = Channel::default();
        let mut tally = Tally::default();
        let first = ch.feed(p, "a long harmless sentence", &mut tally).unwrap();
        assert_eq!(
            first, "a long harmless ",
            "all but the last 8 characters go out"
        );
        assert_eq!(ch.flush(p, &mut tally), "sentence");
        assert_eq!(through(p, &["fine ", "text"]).unwrap(), "fine text");
    }

    #[test]
    fn json_answers_are_restored_in_text_and_tool_arguments() {
        let c = Config::build(&json!({"pii": {"email": "mask"}})).unwrap();
        let v = vault();
        let body = json!({"choices": [{"message": {"content": "hi [EMAIL_1]", "tool_calls": [
            {"function": {"name": "send", "arguments": "{\"to\":\"[EMAIL_1]\"}"}}]}}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut tally = Tally::default();
        let fix = fix_json(
            &c,
            Some(&v),
            ClientProtocol::OpenAi,
            false,
            &bytes,
            0,
            &mut tally,
        );
        let new: Value = serde_json::from_slice(&fix.body.unwrap()).unwrap();
        assert_eq!(
            new["choices"][0]["message"]["content"],
            "hi ann@corp.example"
        );
        assert_eq!(
            new["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"to\":\"ann@corp.example\"}"
        );
        assert_eq!(tally.restored, 2);
    }

    #[test]
    fn a_json_answer_breaking_an_output_rule_becomes_the_safe_message_with_its_usage() {
        let c = rules_config();
        let body = br#"{"model":"m","content":[{"type":"text","text":"KABOOM!"}],"usage":{"input_tokens":3,"output_tokens":1}}"#;
        let mut tally = Tally::default();
        let fix = fix_json(
            &c,
            None,
            ClientProtocol::Anthropic,
            false,
            body,
            0,
            &mut tally,
        );
        assert_eq!(fix.cut, Some(Cut::Rule(0)));
        let new: Value = serde_json::from_slice(&fix.body.unwrap()).unwrap();
        assert_eq!(new["stop_reason"], "refusal");
        assert_eq!(new["content"][0]["text"], c.safe_message);
        assert_eq!(new["usage"]["input_tokens"], 3);
        let fine = br#"{"model":"m","content":[{"type":"text","text":"ok"}]}"#;
        assert!(fix_json(
            &c,
            None,
            ClientProtocol::Anthropic,
            false,
            fine,
            0,
            &mut tally
        )
        .body
        .is_none());
    }

    fn pii_config(actions: Value) -> Config {
        Config::build(&json!({"output": {"pii": actions}})).unwrap()
    }

    fn pii_policy(c: &Config) -> Policy<'_> {
        Policy {
            rules: None,
            vault: None,
            hold_back: c.hold_back_chars,
            json_inner: false,
            pii: Some(c),
        }
    }

    #[test]
    fn pii_in_an_answer_is_masked_wherever_the_pieces_split_it() {
        let c = pii_config(json!({"email": "mask", "ipAddress": "hash"}));
        let p = pii_policy(&c);
        let text = "write to ann@corp.example from 10.1.2.3 today";
        let want = format!(
            "write to [EMAIL] from {} today",
            crate::request::hash_token(&c, Kind::IpAddress, "10.1.2.3")
        );
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(through(p, &[a, b]).unwrap(), want, "cut at {cut}");
        }
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(through(p, &refs).unwrap(), want);
    }

    #[test]
    fn a_value_that_never_ends_is_not_held_for_the_rest_of_the_stream() {
        let c = pii_config(json!({"privateKey": "mask"}));
        let p = pii_policy(&c);
        let mut ch = Channel::default();
        let mut tally = Tally::default();
        let mut out = ch
            .feed(p, "-----BEGIN RSA PRIVATE KEY-----\n", &mut tally)
            .unwrap();
        let line = format!("{}\n", "A".repeat(63));
        for _ in 0..1000 {
            out.push_str(&ch.feed(p, &line, &mut tally).unwrap());
            assert!(ch.pending.len() <= MAX_OPEN_VALUE + 2 * line.len());
        }
        assert!(out.starts_with("[PRIVATE_KEY]"), "{}", &out[..40]);
        assert!(!out.contains("BEGIN"));
    }

    #[test]
    fn a_value_to_block_cuts_the_answer_and_a_logged_one_passes_counted() {
        let c = pii_config(json!({"creditCard": "block", "email": "log"}));
        let p = pii_policy(&c);
        let text = "your card 4111 1111 1111 1111 is on file";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(through(p, &refs), Err(Cut::Pii(Kind::CreditCard)));
        let mut ch = Channel::default();
        let mut tally = Tally::default();
        let mut out = ch.feed(p, "mail ann@corp.example ", &mut tally).unwrap();
        out.push_str(&ch.flush(p, &mut tally));
        assert_eq!(out, "mail ann@corp.example ");
        assert_eq!(tally.pii, [(Kind::Email, PiiAction::Log)]);
    }

    #[test]
    fn a_tool_call_input_in_a_json_answer_is_neither_masked_nor_checked() {
        let c = Config::build(&json!({"output": {"pii": {"email": "mask"},
            "denyWords": [{"name": "bad", "words": ["kaboom"]}]}}))
        .unwrap();
        let body = json!({"model": "m", "content": [
            {"type": "text", "text": "mail bob@other.example"},
            {"type": "tool_use", "id": "t", "name": "send",
             "input": {"text": "kaboom to bob@other.example", "content": "bob@other.example"}}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut tally = Tally::default();
        let fix = fix_json(
            &c,
            None,
            ClientProtocol::Anthropic,
            false,
            &bytes,
            0,
            &mut tally,
        );
        assert_eq!(fix.cut, None, "the tool's input is not answer text");
        let new: Value = serde_json::from_slice(&fix.body.unwrap()).unwrap();
        assert_eq!(new["content"][0]["text"], "mail [EMAIL]");
        assert_eq!(
            new["content"][1], body["content"][1],
            "the tool gets its input as written"
        );
        assert_eq!(
            answer_text(&bytes).as_deref(),
            Some("mail bob@other.example")
        );
    }

    #[test]
    fn json_answers_mask_new_pii_and_restore_the_callers_own_values() {
        let c =
            Config::build(&json!({"pii": {"email": "mask"}, "output": {"pii": {"email": "mask"}}}))
                .unwrap();
        let v = vault();
        let body =
            json!({"choices": [{"message": {"content": "reach [EMAIL_1] or bob@other.example"}}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut tally = Tally::default();
        let fix = fix_json(
            &c,
            Some(&v),
            ClientProtocol::OpenAi,
            false,
            &bytes,
            0,
            &mut tally,
        );
        let new: Value = serde_json::from_slice(&fix.body.unwrap()).unwrap();
        assert_eq!(
            new["choices"][0]["message"]["content"],
            "reach ann@corp.example or [EMAIL]"
        );
        assert_eq!((tally.restored, tally.pii.len()), (1, 1));
        let c = pii_config(json!({"openaiKey": "block"}));
        let leak = br#"{"model":"m","choices":[{"message":{"content":"use sk-proj-abcdefghijklmnopqrstuvwxyz123456"}}]}"#;
        let fix = fix_json(&c, None, ClientProtocol::OpenAi, false, leak, 0, &mut tally);
        assert_eq!(fix.cut, Some(Cut::Pii(Kind::OpenaiKey)));
        let new: Value = serde_json::from_slice(&fix.body.unwrap()).unwrap();
        assert_eq!(new["choices"][0]["message"]["content"], c.safe_message);
    }
}
