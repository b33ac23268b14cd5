//! Model routing: which provider serves a model and under which name.
//!
//! A rule's `match` is an exact name, a prefix ending in `*`, a regular expression starting with `~`
//! (anchored to the whole name; `target` may use `$1`, `${name}` captures), or `*` alone. The
//! order of precedence does not depend on the order in the config: exact, then the longest
//! prefix, then regexes in config order, then `*`, then `defaultProvider` with the name unchanged.

use aigw_shared::config::ConfigError;
use regex_lite::Regex;

/// A compiled `match`.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// The exact model name.
    Exact(String),
    /// Names starting with this prefix.
    Prefix(String),
    /// A whole-name regular expression.
    Regex(Regex),
    /// Every name.
    Any,
}

impl Pattern {
    /// Compile a `match` string; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        if text.is_empty() {
            return Err(ConfigError::invalid(path, "must not be empty"));
        }
        if text == "*" {
            return Ok(Self::Any);
        }
        if let Some(re) = text.strip_prefix('~') {
            return Regex::new(&format!("^(?:{re})$"))
                .map(Self::Regex)
                .map_err(|e| ConfigError::invalid(path, format!("bad regular expression: {e}")));
        }
        if let Some(prefix) = text.strip_suffix('*') {
            if prefix.contains('*') {
                return Err(ConfigError::invalid(path, "`*` is allowed only at the end"));
            }
            return Ok(Self::Prefix(prefix.to_owned()));
        }
        Ok(Self::Exact(text.to_owned()))
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct ModelRule {
    /// What it matches.
    pub pattern: Pattern,
    /// Index of the provider in the config.
    pub provider: usize,
    /// The backend model name (captures allowed for regexes); `None` keeps the client's name.
    pub target: Option<String>,
    /// Where the request goes next when this target fails (in order; empty: nowhere).
    pub fallbacks: Vec<Target>,
    /// Which of the targets goes first.
    pub policy: crate::policy::Policy,
    /// This rule's own target's weight (`weighted` policy).
    pub weight: u32,
}

/// A fallback target: a provider and the backend model it gets (`None`: the client's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Index of the provider in the config.
    pub provider: usize,
    /// The backend model name.
    pub model: Option<String>,
    /// Its weight (`weighted` policy).
    pub weight: u32,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index of the provider.
    pub provider: usize,
    /// The backend model name.
    pub model: String,
    /// Index of the rule that matched (`None`: `defaultProvider`).
    pub rule: Option<usize>,
}

/// Choose the provider and backend model for `model`.
pub fn resolve(rules: &[ModelRule], default: Option<usize>, model: &str) -> Option<Route> {
    let index = |r: &ModelRule| rules.iter().position(|x| std::ptr::eq(x, r));
    let route = |r: &ModelRule, name: String| Route {
        provider: r.provider,
        model: name,
        rule: index(r),
    };
    let keep = |r: &ModelRule| r.target.clone().unwrap_or_else(|| model.to_owned());
    if let Some(r) = rules
        .iter()
        .find(|r| matches!(&r.pattern, Pattern::Exact(e) if e == model))
    {
        return Some(route(r, keep(r)));
    }
    let prefix = rules
        .iter()
        .filter_map(|r| match &r.pattern {
            Pattern::Prefix(p) if model.starts_with(p.as_str()) => Some((p.len(), r)),
            _ => None,
        })
        .max_by_key(|(len, _)| *len);
    if let Some((_, r)) = prefix {
        return Some(route(r, keep(r)));
    }
    for r in rules {
        if let Pattern::Regex(re) = &r.pattern {
            if re.is_match(model) {
                let name = match &r.target {
                    Some(t) => re.replace(model, t.as_str()).into_owned(),
                    None => model.to_owned(),
                };
                return Some(route(r, name));
            }
        }
    }
    if let Some(r) = rules.iter().find(|r| matches!(r.pattern, Pattern::Any)) {
        return Some(route(r, keep(r)));
    }
    default.map(|provider| Route {
        provider,
        model: model.to_owned(),
        rule: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(m: &str, provider: usize, target: Option<&str>) -> ModelRule {
        ModelRule {
            pattern: Pattern::parse(m, "m").unwrap(),
            provider,
            target: target.map(str::to_owned),
            fallbacks: Vec::new(),
            policy: crate::policy::Policy::Priority,
            weight: 1,
        }
    }

    fn at(provider: usize, model: &str, rule: Option<usize>) -> Route {
        Route {
            provider,
            model: model.into(),
            rule,
        }
    }

    #[test]
    fn exact_beats_prefix_and_the_longest_prefix_wins() {
        let rules = [
            rule("gpt-*", 0, None),
            rule("gpt-4o*", 1, Some("big")),
            rule("gpt-4o-mini", 2, None),
            rule("*", 3, Some("fallback")),
        ];
        let r = |m| resolve(&rules, None, m).unwrap();
        assert_eq!(r("gpt-4o-mini"), at(2, "gpt-4o-mini", Some(2)));
        assert_eq!(r("gpt-4o-2024"), at(1, "big", Some(1)));
        assert_eq!(r("gpt-3.5"), at(0, "gpt-3.5", Some(0)));
        assert_eq!(r("llama"), at(3, "fallback", Some(3)));
    }

    #[test]
    fn regex_targets_use_captures_and_default_keeps_the_name() {
        let rules = [rule("~claude-(\\w+)-latest", 1, Some("claude-$1-20250101"))];
        assert_eq!(
            resolve(&rules, Some(0), "claude-opus-latest"),
            Some(at(1, "claude-opus-20250101", Some(0)))
        );
        assert_eq!(
            resolve(&rules, Some(0), "x-claude-opus-latest"),
            Some(at(0, "x-claude-opus-latest", None))
        );
        assert_eq!(resolve(&rules, None, "other"), None);
    }

    #[test]
    fn bad_patterns_name_their_path() {
        let e = Pattern::parse("~(", "models[2].match").unwrap_err();
        assert_eq!(e.path(), "models[2].match");
        assert!(Pattern::parse("a*b*", "p").is_err());
    }
}
