//! Content-based model routing: a configured alias (`autoModels`, e.g. `auto`) stands for the
//! model its rules choose from the request itself, so a simple prompt goes to a small model and a
//! hard one to a large one.
//!
//! Rules are tried in order and the first whose conditions all hold chooses the model; none:
//! the alias' `default`. Conditions: the estimated prompt tokens (`minPromptTokens`,
//! `maxPromptTokens`), code in the messages (`hasCode`), tools (`hasTools`), images
//! (`hasImages`), words (`keywords`, any, case-insensitive) or a regular expression (`regex`) in
//! the last user message, and the number of user turns (`minTurns`, `maxTurns`). The request is
//! read only when it names the alias; the chosen model is then routed like any other.

use std::collections::HashMap;

use aigw_shared::config::ConfigError;
use aigw_shared::error::ClientError;
use aigw_shared::llm::{Api, RequestView};
use aigw_shared::schema::Role;
use regex_lite::Regex;
use serde::Deserialize;

/// An alias as written.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuto {
    #[serde(default)]
    rules: Vec<RawAutoRule>,
    default: String,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAutoRule {
    model: String,
    #[serde(default)]
    when: RawWhen,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWhen {
    min_prompt_tokens: Option<u64>,
    max_prompt_tokens: Option<u64>,
    has_code: Option<bool>,
    has_tools: Option<bool>,
    has_images: Option<bool>,
    #[serde(default)]
    keywords: Vec<String>,
    regex: Option<String>,
    min_turns: Option<usize>,
    max_turns: Option<usize>,
}

/// One alias: its rules and default model.
#[derive(Debug)]
pub struct AutoModel {
    rules: Vec<(When, String)>,
    /// The model when no rule holds.
    pub default: String,
}

/// A rule's conditions (all must hold; none: always).
#[derive(Debug, Default)]
struct When {
    min_tokens: Option<u64>,
    max_tokens: Option<u64>,
    code: Option<bool>,
    tools: Option<bool>,
    images: Option<bool>,
    keywords: Vec<String>,
    regex: Option<Matcher>,
    min_turns: Option<usize>,
    max_turns: Option<usize>,
}

/// A `regex` condition: a plain literal (optionally `(?i)`) is a substring search, anything else
/// a regular expression (`regex-lite` costs tens of µs per KB; a substring search next to
/// nothing).
#[derive(Debug)]
enum Matcher {
    /// The literal, and whether case is ignored (then lower-cased).
    Literal(String, bool),
    /// A regular expression.
    Regex(Regex),
}

impl Matcher {
    fn new(pattern: &str) -> Result<Self, regex_lite::Error> {
        let (body, ignore_case) = match pattern.strip_prefix("(?i)") {
            Some(rest) => (rest, true),
            None => (pattern, false),
        };
        let plain = !body.is_empty() && !body.chars().any(|c| "\\.^$|?*+()[]{}".contains(c));
        if plain {
            let text = if ignore_case {
                body.to_lowercase()
            } else {
                body.to_owned()
            };
            return Ok(Self::Literal(text, ignore_case));
        }
        Regex::new(pattern).map(Self::Regex)
    }

    fn is_match(&self, f: &Facts) -> bool {
        match self {
            Self::Literal(text, true) => f.last_user_lower.contains(text.as_str()),
            Self::Literal(text, false) => f.last_user.contains(text.as_str()),
            Self::Regex(re) => re.is_match(&f.last_user),
        }
    }
}

impl When {
    /// Whether the request needs reading at all beyond its texts.
    fn needs_tokens(&self) -> bool {
        self.min_tokens.is_some() || self.max_tokens.is_some()
    }
}

/// What the rules look at, read once from the request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Estimated prompt tokens.
    pub tokens: u64,
    /// Code in some message.
    pub code: bool,
    /// Tools offered.
    pub tools: bool,
    /// Images in some message.
    pub images: bool,
    /// The last user message.
    pub last_user: String,
    /// The same, lower-cased (for keywords).
    pub last_user_lower: String,
    /// User turns.
    pub turns: usize,
}

/// Build the aliases of the config (`autoModels`); `path` names the field in errors.
pub fn build(raw: HashMap<String, RawAuto>) -> Result<Vec<(String, AutoModel)>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut names: Vec<String> = raw.keys().cloned().collect();
    names.sort();
    let mut raw = raw;
    for name in names {
        let Some(a) = raw.remove(&name) else { continue };
        let path = format!("autoModels.{name}");
        if a.default.is_empty() {
            return Err(ConfigError::invalid(
                format!("{path}.default"),
                "must not be empty",
            ));
        }
        let mut rules = Vec::with_capacity(a.rules.len());
        for (i, r) in a.rules.into_iter().enumerate() {
            let w = r.when;
            let regex = match w.regex {
                Some(re) => Some(Matcher::new(&re).map_err(|e| {
                    ConfigError::invalid(
                        format!("{path}.rules[{i}].when.regex"),
                        format!("bad regular expression: {e}"),
                    )
                })?),
                None => None,
            };
            let when = When {
                min_tokens: w.min_prompt_tokens,
                max_tokens: w.max_prompt_tokens,
                code: w.has_code,
                tools: w.has_tools,
                images: w.has_images,
                keywords: w.keywords.iter().map(|k| k.to_lowercase()).collect(),
                regex,
                min_turns: w.min_turns,
                max_turns: w.max_turns,
            };
            rules.push((when, r.model));
        }
        out.push((
            name,
            AutoModel {
                rules,
                default: a.default,
            },
        ));
    }
    Ok(out)
}

impl AutoModel {
    /// Every model the alias may choose.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|(_, m)| m.as_str())
            .chain(std::iter::once(self.default.as_str()))
    }

    /// The model for a request body of `api`.
    pub fn choose(&self, api: Api, body: &[u8]) -> Result<&str, ClientError> {
        if !matches!(api, Api::ChatCompletions | Api::AnthropicMessages) {
            return Ok(&self.default);
        }
        let tokens = self.rules.iter().any(|(w, _)| w.needs_tokens());
        let facts = read_facts(api, body, tokens)?;
        Ok(self.choose_for(&facts))
    }

    /// The model for requests with these facts.
    pub fn choose_for(&self, facts: &Facts) -> &str {
        self.rules
            .iter()
            .find(|(w, _)| holds(w, facts))
            .map_or(self.default.as_str(), |(_, m)| m.as_str())
    }
}

fn holds(w: &When, f: &Facts) -> bool {
    let flag = |want: Option<bool>, is: bool| want.is_none_or(|want| want == is);
    w.min_tokens.is_none_or(|n| f.tokens >= n)
        && w.max_tokens.is_none_or(|n| f.tokens <= n)
        && flag(w.code, f.code)
        && flag(w.tools, f.tools)
        && flag(w.images, f.images)
        && w.min_turns.is_none_or(|n| f.turns >= n)
        && w.max_turns.is_none_or(|n| f.turns <= n)
        && (w.keywords.is_empty()
            || w.keywords
                .iter()
                .any(|k| f.last_user_lower.contains(k.as_str())))
        && w.regex.as_ref().is_none_or(|m| m.is_match(f))
}

/// Read the facts of a chat or messages body (`tokens`: estimate the prompt too).
pub fn read_facts(api: Api, body: &[u8], tokens: bool) -> Result<Facts, ClientError> {
    let view = RequestView::parse(api, body).map_err(|e| e.to_client_error())?;
    #[derive(Deserialize)]
    struct Tools<'a> {
        #[serde(default, borrow)]
        tools: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    let offered = serde_json::from_slice::<Tools<'_>>(body)
        .ok()
        .and_then(|t| t.tools)
        .is_some_and(|t| !t.is_empty());
    let code = view.all_texts().any(looks_like_code);
    let last_user = view.last_user_text().unwrap_or_default();
    Ok(Facts {
        tokens: if tokens {
            view.estimate_input_tokens().tokens
        } else {
            0
        },
        code,
        tools: offered,
        images: has_image(body),
        last_user_lower: last_user.to_lowercase(),
        last_user,
        turns: view
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .count(),
    })
}

/// An image part in the body: OpenAI `image_url`, Responses `input_image`, Anthropic
/// `"type": "image"`.
fn has_image(body: &[u8]) -> bool {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    if find(body, b"\"image_url\"").is_some() || find(body, b"\"input_image\"").is_some() {
        return true;
    }
    // `"type"` then `:` then `"image"`, whitespace allowed.
    let mut rest = body;
    while let Some(i) = find(rest, b"\"type\"") {
        let after = rest.get(i + 6..).unwrap_or_default();
        let after = trim_start(after);
        if let Some(value) = after.strip_prefix(b":") {
            if trim_start(value).starts_with(b"\"image\"") {
                return true;
            }
        }
        rest = after;
    }
    false
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or_default()
}

/// A text that holds code: a fenced block, or two lines that look like code (a statement end,
/// an opening brace, or a line starting with a common keyword).
pub fn looks_like_code(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    const STARTS: [&str; 12] = [
        "def ",
        "class ",
        "fn ",
        "func ",
        "function ",
        "import ",
        "#include",
        "public ",
        "const ",
        "let ",
        "var ",
        "select ",
    ];
    let codey = |line: &str| {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        t.ends_with(';')
            || t.ends_with('{')
            || STARTS.iter().any(|s| lower.starts_with(s)) && t.len() > 6
    };
    text.lines().filter(|l| codey(l)).take(2).count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(json: serde_json::Value) -> AutoModel {
        let raw: HashMap<String, RawAuto> = serde_json::from_value(json).unwrap();
        build(raw).unwrap().remove(0).1
    }

    fn chat(body: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&body).unwrap()
    }

    fn router() -> AutoModel {
        alias(serde_json::json!({"auto": {"rules": [
            {"when": {"hasImages": true}, "model": "vision"},
            {"when": {"hasCode": true}, "model": "coder"},
            {"when": {"hasTools": true}, "model": "tools"},
            {"when": {"minPromptTokens": 200}, "model": "long"},
            {"when": {"keywords": ["Prove"]}, "model": "reasoner"},
            {"when": {"regex": "(?i)step by step"}, "model": "reasoner"},
            {"when": {"minTurns": 3}, "model": "chatty"}
        ], "default": "small"}}))
    }

    fn pick(body: serde_json::Value) -> String {
        router()
            .choose(Api::ChatCompletions, &chat(body))
            .unwrap()
            .to_owned()
    }

    fn user(text: &str) -> serde_json::Value {
        serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
    }

    #[test]
    fn a_simple_prompt_gets_the_default_model() {
        assert_eq!(pick(user("What is the capital of France?")), "small");
    }

    #[test]
    fn each_condition_picks_its_model() {
        assert_eq!(pick(user("Fix this:\n```rust\nfn main() {}\n```")), "coder");
        assert_eq!(
            pick(user("why does\nlet x = 1;\nconst y = 2;\nfail")),
            "coder"
        );
        assert_eq!(pick(user(&"word ".repeat(400))), "long");
        assert_eq!(pick(user("please prove that 2 is prime")), "reasoner");
        assert_eq!(pick(user("Think Step by step: 3 + 4")), "reasoner");
        let image = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
        assert_eq!(pick(image), "vision");
        let tools = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}]});
        assert_eq!(pick(tools), "tools");
        let deep = serde_json::json!({"model": "auto", "messages": [
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"}]});
        assert_eq!(pick(deep), "chatty");
    }

    #[test]
    fn anthropic_images_and_prose_with_semicolons_are_told_apart() {
        let body = serde_json::json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user",
            "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]});
        let got = router()
            .choose(Api::AnthropicMessages, &chat(body))
            .unwrap()
            .to_owned();
        assert_eq!(got, "vision");
        assert!(!looks_like_code("I came; I saw. Then I left."));
    }

    #[test]
    fn conditions_of_one_rule_must_all_hold() {
        let a = alias(serde_json::json!({"auto": {"rules": [
            {"when": {"hasCode": true, "minPromptTokens": 1000}, "model": "big-coder"}],
            "default": "small"}}));
        let f = Facts {
            code: true,
            tokens: 10,
            ..Facts::default()
        };
        assert_eq!(a.choose_for(&f), "small");
        let f = Facts { tokens: 5000, ..f };
        assert_eq!(a.choose_for(&f), "big-coder");
    }

    #[test]
    fn literal_patterns_match_like_the_regex_would() {
        let facts = |text: &str| Facts {
            last_user_lower: text.to_lowercase(),
            last_user: text.to_owned(),
            ..Facts::default()
        };
        let cases = [
            ("(?i)step by step", "Think Step By Step", true),
            ("Step by step", "think step by step", false),
            ("Step by step", "Step by step please", true),
            ("st(e)p", "a step", true),
            ("^step$", "a step", false),
        ];
        for (pattern, text, want) in cases {
            let m = Matcher::new(pattern).unwrap();
            assert_eq!(m.is_match(&facts(text)), want, "{pattern} on {text}");
            let re = Regex::new(pattern).unwrap();
            assert_eq!(re.is_match(text), want, "regex {pattern} on {text}");
        }
        assert!(matches!(
            Matcher::new("(?i)step by step"),
            Ok(Matcher::Literal(..))
        ));
        assert!(matches!(Matcher::new("st(e)p"), Ok(Matcher::Regex(_))));
    }

    #[test]
    fn a_bad_regex_is_refused_with_its_path() {
        let raw: HashMap<String, RawAuto> = serde_json::from_value(serde_json::json!(
            {"auto": {"rules": [{"when": {"regex": "("}, "model": "m"}], "default": "d"}}))
        .unwrap();
        let e = build(raw).unwrap_err();
        assert_eq!(e.path(), "autoModels.auto.rules[0].when.regex");
    }

    #[test]
    fn a_body_that_is_not_a_chat_is_a_client_error() {
        assert!(router()
            .choose(Api::ChatCompletions, b"{\"messages\": 5}")
            .is_err());
    }
}
