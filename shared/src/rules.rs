//! Higress per-route configuration (`_rules_`): one global config plus ordered rules that override it.
//!
//! # What Higress sends
//!
//! The Higress controller turns a `WasmPlugin` resource into one JSON document: `defaultConfig`
//! becomes the top-level object and every `matchRules[]` entry becomes an element of `_rules_`
//! carrying its own config keys plus matcher arrays: `_match_route_` (route names, from `ingress`),
//! `_match_domain_` (hosts, from `domain`), `_match_service_` (from `service`) and, SDK only,
//! `_match_route_prefix_`. The document may also carry `_plugin_id_` (a log id).
//!
//! # How Higress's Go matcher (`wasm-go/pkg/matcher`) works
//!
//! * Parsing: the top-level object minus `_rules_` is the global config (parsed only if it has any
//!   key; with no key at all the plugin is globally enabled with an empty config). Each rule is parsed
//!   with `ParseOverrideConfig(rule, global)`, i.e. the rule's keys on top of the global struct.
//!   A rule without any matcher is an error.
//! * Each rule gets **one** category by precedence: route (AND service when both are given), else
//!   domain, else service, else route prefix (AND consumer when `_match_consumer_` is given). Lower
//!   precedence matchers in the same rule are ignored.
//! * Per request, the first rule in order whose category matches wins, else the global config, else
//!   (no global keys) the plugin is inactive.
//! * Route: exact `route_name`. Route prefix: `route_name` starts with the prefix. Domain: the
//!   `:authority` without port; `*suffix` matches by suffix, `prefix*` by prefix, otherwise exact
//!   (case-sensitive). Service: `cluster_name` is split as `outbound|port|subset|fqdn` and compared
//!   with a configured `fqdn` or `fqdn:port`; other cluster names never match.
//!
//! # Where this module differs
//!
//! * All matcher kinds present in a rule must match (AND across kinds, OR within one list). For the
//!   rules the controller generates (one kind per rule) this is identical; for hand-written rules
//!   that combine kinds it is stricter instead of silently ignoring a matcher.
//! * Domains compare ASCII case-insensitively (hosts are case-insensitive).
//! * A `_match_service_` entry also matches a plain (non-Istio) cluster name exactly, so rules work on
//!   stock Envoy where clusters are named freely.
//! * The global config is always built (from `{}` when only `_rules_` is given), so every request has
//!   a config; [`RuleSet::has_explicit_global`] tells whether the global one was configured, and
//!   [`RuleSet::select_rule`] returns only a matching rule, for plugins that want Higress's
//!   "inactive outside the matched routes" behaviour.
//! * A global config that fails validation is an error even when rules exist (Higress drops it).
//! * `_match_consumer_` is rejected (the route information here carries no consumer), and there is
//!   no rule-level "keep the last good copy" isolation: a bad rule rejects the whole document.

use std::rc::Rc;

use serde_json::{Map, Value};

use crate::config::{kind_of, parse_object, ConfigError};

const RULES_KEY: &str = "_rules_";
const MATCH_ROUTE: &str = "_match_route_";
const MATCH_DOMAIN: &str = "_match_domain_";
const MATCH_SERVICE: &str = "_match_service_";
const MATCH_ROUTE_PREFIX: &str = "_match_route_prefix_";
const MATCH_CONSUMER: &str = "_match_consumer_";
/// Keys the Higress controller may add that are not plugin config.
const IGNORED_KEYS: &[&str] = &["_plugin_id_"];

/// What the matcher needs to know about a request's route. Missing values never match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteInfo {
    /// Envoy's `route_name` property.
    pub route_name: Option<String>,
    /// The request's `:authority` (a port suffix is ignored).
    pub host: Option<String>,
    /// Envoy's `cluster_name` property (Istio/Higress form `outbound|port|subset|fqdn`, or any name).
    pub service: Option<String>,
}

/// How one `_match_domain_` entry compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DomainPattern {
    Exact(String),
    Suffix(String),
    Prefix(String),
}

impl DomainPattern {
    fn new(pattern: &str) -> Self {
        if let Some(rest) = pattern.strip_prefix('*') {
            Self::Suffix(rest.to_ascii_lowercase())
        } else if let Some(rest) = pattern.strip_suffix('*') {
            Self::Prefix(rest.to_ascii_lowercase())
        } else {
            Self::Exact(pattern.to_ascii_lowercase())
        }
    }

    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            Self::Exact(p) => host == *p,
            Self::Suffix(p) => host.ends_with(p.as_str()),
            Self::Prefix(p) => host.starts_with(p.as_str()),
        }
    }
}

/// The matchers of one rule; an empty list means "not constrained by this kind".
#[derive(Debug, Clone, Default)]
struct Matcher {
    routes: Vec<String>,
    domains: Vec<DomainPattern>,
    services: Vec<String>,
    route_prefixes: Vec<String>,
}

impl Matcher {
    fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.domains.is_empty()
            && self.services.is_empty()
            && self.route_prefixes.is_empty()
    }

    fn matches(&self, route: &RouteInfo) -> bool {
        let route_name = route.route_name.as_deref();
        let ok_route = self.routes.is_empty()
            || route_name.is_some_and(|r| self.routes.iter().any(|x| x == r));
        let ok_prefix = self.route_prefixes.is_empty()
            || route_name.is_some_and(|r| {
                self.route_prefixes
                    .iter()
                    .any(|p| r.starts_with(p.as_str()))
            });
        let ok_domain = self.domains.is_empty()
            || route
                .host
                .as_deref()
                .map(strip_port)
                .is_some_and(|h| self.domains.iter().any(|d| d.matches(h)));
        let ok_service = self.services.is_empty()
            || route
                .service
                .as_deref()
                .is_some_and(|s| self.services.iter().any(|x| service_matches(x, s)));
        ok_route && ok_prefix && ok_domain && ok_service
    }
}

/// `host:port` -> `host`; IPv6 literals keep their brackets (`[::1]:80` -> `[::1]`).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if host.rfind(']').is_none_or(|bracket| bracket < colon) => {
            host.get(..colon).unwrap_or(host)
        }
        _ => host,
    }
}

/// Compare a configured service (`fqdn` or `fqdn:port`) with a cluster name.
fn service_matches(configured: &str, cluster: &str) -> bool {
    let mut parts = cluster.split('|');
    if let (Some(_), Some(port), Some(_), Some(fqdn), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        if let Some((name, want_port)) = configured.rsplit_once(':') {
            if name == fqdn && want_port == port {
                return true;
            }
        }
        return configured == fqdn;
    }
    configured == cluster
}

/// One `_rules_` entry: its matchers and its validated (merged) config.
struct Rule<C> {
    matcher: Matcher,
    config: Rc<C>,
}

/// The global config and the ordered per-route rules, each validated by the plugin.
pub struct RuleSet<C> {
    global: Rc<C>,
    explicit_global: bool,
    rules: Vec<Rule<C>>,
}

impl<C> std::fmt::Debug for RuleSet<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("explicit_global", &self.explicit_global)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl<C> RuleSet<C> {
    /// Parse raw config bytes (empty means `{}`), validating the global object and every rule merged
    /// over it with `build`. Errors inside a rule are prefixed with `_rules_[i]`.
    pub fn parse<F>(raw: &[u8], build: F) -> Result<Self, ConfigError>
    where
        F: Fn(&Value) -> Result<C, ConfigError>,
    {
        let mut global = parse_object(raw)?;
        for key in IGNORED_KEYS {
            global.remove(*key);
        }
        let raw_rules = match global.remove(RULES_KEY) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules,
            Some(other) => {
                return Err(ConfigError::invalid(
                    RULES_KEY,
                    format!("must be an array, not {}", kind_of(&other)),
                ))
            }
        };
        let explicit_global = !global.is_empty();
        let global_value = Value::Object(global);
        let global_config = Rc::new(build(&global_value)?);
        let Value::Object(global) = global_value else {
            return Err(ConfigError::invalid(
                "",
                "internal: global config is not an object",
            ));
        };
        let mut rules = Vec::with_capacity(raw_rules.len());
        for (i, raw_rule) in raw_rules.into_iter().enumerate() {
            let prefix = format!("{RULES_KEY}[{i}]");
            let rule = parse_rule(raw_rule, &global, &build).map_err(|e| e.prefixed(&prefix))?;
            rules.push(rule);
        }
        Ok(Self {
            global: global_config,
            explicit_global,
            rules,
        })
    }

    /// The config for a route: the first matching rule in order, else the global config.
    pub fn select(&self, route: &RouteInfo) -> &Rc<C> {
        self.select_rule(route).unwrap_or(&self.global)
    }

    /// The first rule matching the route, if any (the global config is not considered).
    pub fn select_rule(&self, route: &RouteInfo) -> Option<&Rc<C>> {
        self.rules
            .iter()
            .find(|rule| rule.matcher.matches(route))
            .map(|rule| &rule.config)
    }

    /// The global config (built from `{}` when the document had only `_rules_`).
    pub fn global(&self) -> &Rc<C> {
        &self.global
    }

    /// True when the document had global keys besides `_rules_` (Higress enables the plugin on
    /// unmatched routes only then).
    pub fn has_explicit_global(&self) -> bool {
        self.explicit_global
    }

    /// True when there are no rules, so no per-request route lookup is needed.
    pub fn is_global_only(&self) -> bool {
        self.rules.is_empty()
    }

    /// The number of `_rules_` entries.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Every validated config: the global one first, then each rule's in order.
    pub fn all(&self) -> impl Iterator<Item = &Rc<C>> {
        std::iter::once(&self.global).chain(self.rules.iter().map(|r| &r.config))
    }
}

fn parse_rule<C, F>(
    raw: Value,
    global: &Map<String, Value>,
    build: &F,
) -> Result<Rule<C>, ConfigError>
where
    F: Fn(&Value) -> Result<C, ConfigError>,
{
    let Value::Object(mut rule) = raw else {
        return Err(ConfigError::invalid(
            "",
            format!("a rule must be an object, not {}", kind_of(&raw)),
        ));
    };
    if rule.contains_key(MATCH_CONSUMER) {
        return Err(ConfigError::invalid(
            MATCH_CONSUMER,
            "matching by consumer is not supported; use routes, domains or services",
        ));
    }
    let matcher = Matcher {
        routes: take_strings(&mut rule, MATCH_ROUTE)?,
        domains: take_strings(&mut rule, MATCH_DOMAIN)?
            .iter()
            .map(|d| DomainPattern::new(d))
            .collect(),
        services: take_strings(&mut rule, MATCH_SERVICE)?,
        route_prefixes: take_strings(&mut rule, MATCH_ROUTE_PREFIX)?,
    };
    if matcher.is_empty() {
        return Err(ConfigError::invalid(
            "",
            format!("a rule needs at least one non-empty {MATCH_ROUTE}, {MATCH_DOMAIN}, {MATCH_SERVICE} or {MATCH_ROUTE_PREFIX}"),
        ));
    }
    let mut merged = global.clone();
    for (key, value) in rule {
        merged.insert(key, value);
    }
    let config = build(&Value::Object(merged))?;
    Ok(Rule {
        matcher,
        config: Rc::new(config),
    })
}

/// Remove `key` from the rule and read it as a list of strings (empty strings are dropped, as
/// Higress does).
fn take_strings(rule: &mut Map<String, Value>, key: &str) -> Result<Vec<String>, ConfigError> {
    match rule.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(Ok(s)),
                other => Some(Err(ConfigError::invalid(
                    format!("{key}[{i}]"),
                    format!("must be a string, not {}", kind_of(&other)),
                ))),
            })
            .collect(),
        Some(other) => Err(ConfigError::invalid(
            key,
            format!("must be an array of strings, not {}", kind_of(&other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts_but_ipv6_literals_survive() {
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("api.example.com"), "api.example.com");
        assert_eq!(strip_port("[::1]:443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port(":"), "");
    }

    #[test]
    fn istio_cluster_names_match_by_fqdn_or_fqdn_and_port() {
        let cluster = "outbound|443||llm.dns";
        assert!(service_matches("llm.dns", cluster));
        assert!(service_matches("llm.dns:443", cluster));
        assert!(!service_matches("llm.dns:80", cluster));
        assert!(!service_matches("other.dns", cluster));
    }

    #[test]
    fn plain_cluster_names_match_exactly() {
        assert!(service_matches("llm_upstream", "llm_upstream"));
        assert!(!service_matches("llm", "llm_upstream"));
        assert!(!service_matches("a|b", "a|b|c"));
    }

    #[test]
    fn domain_wildcards_match_suffixes_and_prefixes_case_insensitively() {
        assert!(DomainPattern::new("*.example.com").matches("API.Example.com"));
        assert!(!DomainPattern::new("*.example.com").matches("example.com"));
        assert!(DomainPattern::new("api.*").matches("api.internal"));
        assert!(DomainPattern::new("a.b").matches("A.B"));
        assert!(!DomainPattern::new("a.b").matches("a.bc"));
    }
}
