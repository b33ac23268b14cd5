//! Key sources (what a limit is counted by) and value patterns (which values get other limits).
//!
//! Key grammar, one string per source:
//!
//! | key | value |
//! |---|---|
//! | `consumer` | the consumer name ([`aigw_shared::consumer`]: a trusted header or a hashed API key map) |
//! | `apiKey` | the SHA-256 (hex) of the key the client presents (`Authorization: Bearer`, `x-api-key`, or the consumer config's `keySources`) |
//! | `header:<name>` | the header's value |
//! | `query:<name>` | the query parameter's raw (not percent-decoded) value |
//! | `clientIp` | the peer address (property `source.address`) without the port |
//! | `clientIp:<header>` | the first address in that header (`clientIp:x-forwarded-for`) |
//! | `model` | the `model` of the request body |
//! | `route` | the route name (Envoy `xds.route_name`, Higress `route_name`) |
//!
//! Pattern grammar: `*` (any value), `regex:<re>` (the whole value must match), `cidr:<ip>/<bits>`
//! (a `clientIp` key only), anything else an exact value.

use std::net::IpAddr;

use aigw_shared::config::ConfigError;
use regex_lite::Regex;

/// Where a key value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The identified consumer.
    Consumer,
    /// The SHA-256 of the presented API key.
    ApiKey,
    /// A request header (lower-case name).
    Header(String),
    /// A query parameter.
    Query(String),
    /// The peer address.
    ClientIp,
    /// The first address in a header.
    ClientIpFrom(String),
    /// The requested model (read from the body).
    Model,
    /// The route name.
    Route,
}

impl Source {
    /// Parse one key string; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let named = |prefix: &str| -> Result<Option<String>, ConfigError> {
            let Some(name) = text.strip_prefix(prefix) else {
                return Ok(None);
            };
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(ConfigError::invalid(
                    path,
                    format!("`{prefix}` needs a name after it"),
                ));
            }
            Ok(Some(name.to_owned()))
        };
        Ok(match text {
            "consumer" => Self::Consumer,
            "apiKey" => Self::ApiKey,
            "clientIp" => Self::ClientIp,
            "model" => Self::Model,
            "route" => Self::Route,
            _ => {
                if let Some(h) = named("header:")? {
                    Self::Header(h.to_ascii_lowercase())
                } else if let Some(q) = named("query:")? {
                    Self::Query(q)
                } else if let Some(h) = named("clientIp:")? {
                    Self::ClientIpFrom(h.to_ascii_lowercase())
                } else {
                    return Err(ConfigError::invalid(
                        path,
                        "must be consumer, apiKey, model, route, clientIp, clientIp:<header>, \
                         header:<name> or query:<name>",
                    ));
                }
            }
        })
    }

    /// True for the sources that give an IP address (CIDR patterns apply).
    pub fn is_ip(&self) -> bool {
        matches!(self, Self::ClientIp | Self::ClientIpFrom(_))
    }
}

/// A network: address bits and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    v6: bool,
    bits: u128,
    prefix: u32,
}

impl Cidr {
    /// Parse `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let (v6, bits, max) = match addr.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Self {
            v6,
            bits: mask(bits, prefix, max),
            prefix,
        })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: &str) -> bool {
        let Ok(ip) = ip.trim().parse::<IpAddr>() else {
            return false;
        };
        let (v6, bits, max) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => (false, u128::from(u32::from(v4)), 32),
                None => (true, u128::from(a), 128),
            },
        };
        v6 == self.v6 && mask(bits, self.prefix, max) == self.bits
    }
}

fn mask(bits: u128, prefix: u32, max: u32) -> u128 {
    let host_bits = max.saturating_sub(prefix);
    if host_bits >= 128 {
        0
    } else {
        (bits >> host_bits) << host_bits
    }
}

/// Which values a pattern matches.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Every value.
    Any,
    /// One value exactly.
    Exact(String),
    /// Values the whole of which the regex matches.
    Regex(Regex),
    /// Addresses in a network.
    Cidr(Cidr),
}

impl Pattern {
    /// Parse a pattern for a key from `source`; `path` names it in errors.
    pub fn parse(text: &str, source: &Source, path: &str) -> Result<Self, ConfigError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        if let Some(re) = text.strip_prefix("regex:") {
            let anchored = format!("^(?:{re})$");
            return Regex::new(&anchored)
                .map(Self::Regex)
                .map_err(|e| ConfigError::invalid(path, format!("invalid regex: {e}")));
        }
        if let Some(net) = text.strip_prefix("cidr:") {
            if !source.is_ip() {
                return Err(ConfigError::invalid(
                    path,
                    "a cidr: pattern needs a clientIp key",
                ));
            }
            return Cidr::parse(net)
                .map(Self::Cidr)
                .ok_or_else(|| ConfigError::invalid(path, "must be cidr:<address>/<prefix bits>"));
        }
        Ok(Self::Exact(text.to_owned()))
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(v) => v == value,
            Self::Regex(re) => re.is_match(value),
            Self::Cidr(net) => net.contains(value),
        }
    }
}

/// The address part of `ip:port`, `[v6]:port`, a bare v4 or v6 address.
pub fn strip_port(addr: &str) -> &str {
    let addr = addr.trim();
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        // One colon: v4 with a port. More: a bare v6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

/// The first address of a forwarded-for style header.
pub fn first_forwarded(value: &str) -> Option<&str> {
    let first = strip_port(value.split(',').next()?.trim());
    (!first.is_empty()).then_some(first)
}

/// The raw value of query parameter `name` in a `:path`.
pub fn query_param<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let query = path.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_form_parses_and_a_bad_one_names_its_path() {
        let ok = [
            ("consumer", Source::Consumer),
            ("apiKey", Source::ApiKey),
            ("model", Source::Model),
            ("route", Source::Route),
            ("clientIp", Source::ClientIp),
            (
                "clientIp:X-Forwarded-For",
                Source::ClientIpFrom("x-forwarded-for".into()),
            ),
            ("header:X-Team", Source::Header("x-team".into())),
            ("query:team", Source::Query("team".into())),
        ];
        for (text, want) in ok {
            assert_eq!(Source::parse(text, "k").unwrap(), want, "{text}");
        }
        for bad in ["user", "header:", "query: ", "Header:x"] {
            let err = Source::parse(bad, "rules[0].keys[1]").unwrap_err();
            assert_eq!(err.path(), "rules[0].keys[1]", "{bad}");
        }
    }

    #[test]
    fn patterns_match_exactly_by_whole_regex_by_network_or_anything() {
        let header = Source::Header("x".into());
        let p = |t: &str| Pattern::parse(t, &header, "p").unwrap();
        assert!(p("team-a").matches("team-a") && !p("team-a").matches("team-ab"));
        assert!(p("regex:team-.").matches("team-b"));
        assert!(!p("regex:team-.").matches("xteam-b"), "anchored");
        assert!(p("*").matches(""));
        let ip = Source::ClientIp;
        let net = Pattern::parse("cidr:10.1.0.0/16", &ip, "p").unwrap();
        assert!(net.matches("10.1.200.3") && !net.matches("10.2.0.1"));
        assert!(net.matches("::ffff:10.1.0.9"), "v4-mapped v6");
        assert!(!net.matches("not an ip"));
        let v6 = Pattern::parse("cidr:2001:db8::/32", &ip, "p").unwrap();
        assert!(v6.matches("2001:db8:1::1") && !v6.matches("2001:db9::1"));
        assert!(Pattern::parse("cidr:0.0.0.0/0", &ip, "p")
            .unwrap()
            .matches("8.8.8.8"));
        assert!(Pattern::parse("cidr:10.0.0.0/33", &ip, "p").is_err());
        assert!(Pattern::parse("cidr:10.0.0.0/8", &header, "p").is_err());
        assert!(Pattern::parse("regex:(", &header, "p").is_err());
    }

    #[test]
    fn addresses_lose_their_port_and_forwarded_headers_give_their_first_hop() {
        assert_eq!(strip_port("10.0.0.1:5555"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_port("10.0.0.1"), "10.0.0.1");
        assert_eq!(
            first_forwarded(" 203.0.113.7 , 10.0.0.1"),
            Some("203.0.113.7")
        );
        assert_eq!(first_forwarded(""), None);
    }

    #[test]
    fn query_parameters_are_found_by_name_raw() {
        let path = "/v1/chat/completions?a=1&team=x%20y&flag#frag";
        assert_eq!(query_param(path, "team"), Some("x%20y"));
        assert_eq!(query_param(path, "flag"), Some(""));
        assert_eq!(query_param(path, "b"), None);
        assert_eq!(query_param("/v1/chat/completions", "a"), None);
    }
}
