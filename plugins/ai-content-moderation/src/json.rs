//! A single-pass JSON walker that reports every string value with the key it sits under, without
//! building values: the request's message texts are found (and patched in place) this way, and so
//! are placeholders in answers.
//!
//! It checks the structure (objects, arrays, strings, the `true`/`false`/`null` literals and
//! number characters) iteratively, so nesting depth costs heap, never stack. It does not check
//! number grammar or control characters in strings; the upstream still sees a byte-exact body.

/// A string value: `body[start..end]` is its raw content between the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrSpan {
    /// First byte after the opening quote.
    pub start: usize,
    /// The closing quote.
    pub end: usize,
    /// The raw content has escapes (decode before reading).
    pub escaped: bool,
    /// The key the string is the value of (for strings in arrays: the array's key), raw.
    pub key: Option<(usize, usize)>,
    /// The top-level key it is under, raw.
    pub top: Option<(usize, usize)>,
    /// The objects and arrays it is in (a top-level value: 1).
    pub depth: usize,
}

impl StrSpan {
    /// The string, decoded when it has escapes (`None` if the escapes are invalid).
    pub fn text<'a>(&self, body: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
        if self.escaped {
            let quoted = body.get(self.start.checked_sub(1)?..=self.end)?;
            serde_json::from_slice::<String>(quoted)
                .ok()
                .map(std::borrow::Cow::Owned)
        } else {
            std::str::from_utf8(body.get(self.start..self.end)?)
                .ok()
                .map(std::borrow::Cow::Borrowed)
        }
    }

    /// Whether the key is `name`.
    pub fn key_is(&self, body: &[u8], name: &[u8]) -> bool {
        range_is(body, self.key, name)
    }

    /// Whether the top-level key is `name`.
    pub fn top_is(&self, body: &[u8], name: &[u8]) -> bool {
        range_is(body, self.top, name)
    }
}

/// Whether the key in `r` (its bytes between the quotes) is `name`, decoded: a key written with
/// escapes (`"m\u0065ssages"`) is the same key to the upstream, so it must be to the checks.
fn range_is(body: &[u8], r: Option<(usize, usize)>, name: &[u8]) -> bool {
    let Some((s, e)) = r else { return false };
    let Some(raw) = body.get(s..e) else {
        return false;
    };
    if raw == name {
        return true;
    }
    // A decoded byte takes at most six raw ones (`\u0041`): a longer key cannot be `name`, and
    // is not decoded again for every string under it (a huge escaped key over a huge array was
    // quadratic work).
    if raw.len() > name.len().saturating_mul(6) || memchr::memchr(b'\\', raw).is_none() {
        return false;
    }
    s.checked_sub(1)
        .and_then(|q| body.get(q..=e))
        .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok())
        .is_some_and(|key| key.as_bytes() == name)
}

/// The decoded texts of the strings of `body` that `keep` selects, joined by blank lines (blank
/// ones, and ones whose escapes do not decode, left out); `None` when there is none or `body` is
/// not a JSON object.
pub fn joined_texts(body: &[u8], keep: impl Fn(&StrSpan) -> bool) -> Option<String> {
    let mut spans = Vec::new();
    walk(body, |s| {
        if keep(&s) {
            spans.push(s);
        }
    })
    .ok()?;
    let mut out = String::new();
    for text in spans.iter().filter_map(|s| s.text(body)) {
        if text.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&text);
    }
    (!out.is_empty()).then_some(out)
}

/// Top-level facts the walk picks up on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Top {
    /// `"stream": true`.
    pub stream: bool,
    /// The top-level `"model"` string (decode it with [`StrSpan::text`]).
    pub model: Option<StrSpan>,
}

/// Why a body is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson {
    /// Where the walk stopped.
    pub at: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Value,
    ValueOrEnd,
    Key,
    KeyOrEnd,
    After,
}

struct Frame {
    obj: bool,
    /// Objects: the current key; arrays: the key the array is under.
    key: Option<(usize, usize)>,
}

fn ws(body: &[u8], mut i: usize) -> usize {
    while body
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The closing quote of a string whose content starts at `from`, and whether it has escapes.
fn string_end(body: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    let mut escaped = false;
    loop {
        let off = memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
        let at = i + off;
        if body.get(at) == Some(&b'"') {
            return Some((at, escaped));
        }
        escaped = true;
        i = at + 2;
    }
}

/// Walk a JSON object, calling `on_string` for every string value (keys are not reported).
pub fn walk(body: &[u8], mut on_string: impl FnMut(StrSpan)) -> Result<Top, NotJson> {
    let mut top = Top::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut top_key: Option<(usize, usize)> = None;
    let mut i = ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return Err(NotJson { at: i });
    }
    let mut st = St::Value;
    let err = |at: usize| NotJson { at };
    loop {
        i = ws(body, i);
        match st {
            St::Value | St::ValueOrEnd => {
                let b = *body.get(i).ok_or(err(i))?;
                if st == St::ValueOrEnd && b == b']' {
                    stack.pop();
                    i += 1;
                    st = St::After;
                    continue;
                }
                let key = stack.last().and_then(|f| f.key);
                let depth = stack.len();
                match b {
                    b'{' => {
                        stack.push(Frame { obj: true, key });
                        i += 1;
                        st = St::KeyOrEnd;
                    }
                    b'[' => {
                        stack.push(Frame { obj: false, key });
                        i += 1;
                        st = St::ValueOrEnd;
                    }
                    b'"' => {
                        let (end, escaped) = string_end(body, i + 1).ok_or(err(i))?;
                        let span = StrSpan {
                            start: i + 1,
                            end,
                            escaped,
                            key,
                            top: top_key,
                            depth,
                        };
                        if depth == 1 && span.key_is(body, b"model") {
                            top.model = Some(span);
                        }
                        on_string(span);
                        i = end + 1;
                        st = St::After;
                    }
                    _ => {
                        let from = i;
                        while body.get(i).is_some_and(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
                        }) {
                            i += 1;
                        }
                        let lit = body.get(from..i).unwrap_or_default();
                        let ok = matches!(lit, b"true" | b"false" | b"null")
                            || (lit
                                .first()
                                .is_some_and(|c| c.is_ascii_digit() || *c == b'-')
                                && lit
                                    .iter()
                                    .all(|c| c.is_ascii_digit() || b"+-.eE".contains(c)));
                        if !ok {
                            return Err(err(from));
                        }
                        if depth == 1 && lit == b"true" && range_is(body, key, b"stream") {
                            top.stream = true;
                        }
                        st = St::After;
                    }
                }
            }
            St::Key | St::KeyOrEnd => {
                let b = *body.get(i).ok_or(err(i))?;
                if st == St::KeyOrEnd && b == b'}' {
                    stack.pop();
                    i += 1;
                    st = St::After;
                    continue;
                }
                if b != b'"' {
                    return Err(err(i));
                }
                let (end, _) = string_end(body, i + 1).ok_or(err(i))?;
                let range = Some((i + 1, end));
                if stack.len() == 1 {
                    top_key = range;
                }
                if let Some(f) = stack.last_mut() {
                    f.key = range;
                }
                i = ws(body, end + 1);
                if body.get(i) != Some(&b':') {
                    return Err(err(i));
                }
                i += 1;
                st = St::Value;
            }
            St::After => {
                let Some(frame) = stack.last() else {
                    return if i == body.len() {
                        Ok(top)
                    } else {
                        Err(err(i))
                    };
                };
                match (body.get(i), frame.obj) {
                    (Some(b','), true) => st = St::Key,
                    (Some(b','), false) => st = St::Value,
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        stack.pop();
                    }
                    _ => return Err(err(i)),
                }
                i += 1;
            }
        }
    }
}

/// `text` as the content of a JSON string (no quotes).
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    let quoted = serde_json::to_vec(text).unwrap_or_default();
    out.extend_from_slice(
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default(),
    );
}

/// Whether `text` needs escaping inside a JSON string.
pub fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(body: &str) -> Vec<(String, String, String)> {
        let b = body.as_bytes();
        let mut out = Vec::new();
        walk(b, |s| {
            let k = |r: Option<(usize, usize)>| {
                r.map(|(x, y)| body[x..y].to_owned()).unwrap_or_default()
            };
            out.push((k(s.top), k(s.key), s.text(b).unwrap().into_owned()));
        })
        .unwrap();
        out
    }

    #[test]
    fn a_huge_escaped_key_over_many_strings_is_not_decoded_for_each() {
        let key = format!("\\n{}", "k".repeat(1 << 20));
        let mut body = format!("{{\"{key}\":[");
        for i in 0..20_000 {
            body.push_str(if i == 0 { "\"\"" } else { ",\"\"" });
        }
        body.push_str("],\"m\\u0065ssages\":[\"x\"]}");
        let body = body.as_bytes();
        let started = std::time::Instant::now();
        let mut hits = 0;
        walk(body, |s| {
            if s.top_is(body, b"messages") {
                hits += 1;
            }
        })
        .unwrap();
        assert_eq!(hits, 1);
        let took = started.elapsed();
        assert!(took.as_secs() < 2, "took {took:?}");
    }

    #[test]
    fn top_level_facts_written_with_escapes_read_as_the_upstream_reads_them() {
        let body = br#"{"m\u006fdel":"gpt-4o\u002dmini \"x\"","stre\u0061m":true,"messages":[]}"#;
        let top = walk(body, |_| {}).unwrap();
        assert!(top.stream);
        let model = top.model.and_then(|m| m.text(body));
        assert_eq!(model.as_deref(), Some("gpt-4o-mini \"x\""));
    }

    #[test]
    fn strings_come_with_their_key_and_top_level_key() {
        let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi \"you\""}]},{"role":"tool","content":"r"}],"n":-1.5e3,"x":[null,false]}"#;
        let got = strings(body);
        let want = [
            ("model", "model", "m"),
            ("messages", "role", "user"),
            ("messages", "type", "text"),
            ("messages", "text", "hi \"you\""),
            ("messages", "role", "tool"),
            ("messages", "content", "r"),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), w);
        }
        let top = walk(body.as_bytes(), |_| {}).unwrap();
        assert!(top.stream);
        assert_eq!(
            top.model.and_then(|m| m.text(body.as_bytes())).as_deref(),
            Some("m")
        );
    }

    #[test]
    fn malformed_bodies_are_refused_and_deep_nesting_costs_no_stack() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":"x"#,
            r#"{"a":[1,]}"#,
            r#"{"a":tru}"#,
            r#"{"a":1} x"#,
            r#"{"a":1]"#,
            r#"{"a":bad}"#,
        ] {
            assert!(walk(bad.as_bytes(), |_| {}).is_err(), "{bad}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(walk(deep.as_bytes(), |_| {}).is_ok());
        assert!(!walk(br#"{"stream":"true"}"#, |_| {}).unwrap().stream);
        assert!(!walk(br#"{"o":{"stream":true}}"#, |_| {}).unwrap().stream);
    }

    #[test]
    fn escaping_round_trips() {
        let mut out = Vec::new();
        escape_into(&mut out, "a\"b\\c\nd");
        assert_eq!(out, br#"a\"b\\c\nd"#);
        assert!(needs_escape("x\ny") && !needs_escape("plain"));
    }
}
