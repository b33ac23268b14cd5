//! The route table: which handler answers which method and path, and whether the simulation knobs
//! (latency, error injection, reset) apply to it. Provider modules contribute their own rows.

use crate::plan::Plan;
use crate::request::{Journal, SimRequest};
use crate::{openai, sim};

/// Per-request facts a handler may use besides the request itself.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Unix time in seconds when the request was read.
    pub created: u64,
    /// Sequence number of the request since start (for unique ids).
    pub seq: u64,
    /// The request journal.
    pub journal: &'a Journal,
}

impl Ctx<'_> {
    /// A unique id with the given prefix, e.g. `chatcmpl-sim…`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}sim{:010x}{:06x}", self.created, self.seq)
    }
}

/// Answers one request.
pub type Handler = fn(&SimRequest, &Ctx<'_>) -> Plan;

/// Formats an error `(status, message)` in a provider's error shape; without a message the
/// provider's usual message for that status is used.
pub type ErrorShape = fn(u16, Option<&str>) -> Plan;

/// What kind of endpoint a route is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A simulated model endpoint: knobs apply, errors use this shape.
    Model(ErrorShape),
    /// A control endpoint of the simulator itself: no knobs, not journaled.
    Control,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern; a segment written `{name}` matches any one segment.
    pub pattern: &'static str,
    /// The handler.
    pub handler: Handler,
    /// Endpoint kind.
    pub kind: Kind,
}

/// Result of looking a request up in the table.
#[derive(Debug)]
pub enum Lookup {
    /// A route matched; `params` holds the placeholder values.
    Found(Route, Vec<String>),
    /// The path is known to no route (or not for this method).
    NotFound,
}

/// All routes, control routes first.
pub fn table() -> Vec<Route> {
    let mut routes = sim::routes();
    routes.extend(openai::routes());
    routes
}

/// Finds the route for a method and path.
pub fn lookup(routes: &[Route], method: &str, path: &str) -> Lookup {
    for route in routes {
        if route.method != method {
            continue;
        }
        if let Some(params) = match_pattern(route.pattern, path) {
            return Lookup::Found(*route, params);
        }
    }
    Lookup::NotFound
}

/// Whether a path belongs to the simulator's control surface (never journaled).
pub fn is_control_path(path: &str) -> bool {
    path.starts_with("/_sim/")
}

fn match_pattern(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                params.push(s.to_string());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_and_capture_placeholders() {
        assert_eq!(match_pattern("/v1/models", "/v1/models"), Some(vec![]));
        assert_eq!(match_pattern("/v1/models", "/v1/models/"), None);
        assert_eq!(
            match_pattern("/v1/models/{id}", "/v1/models/gpt-x"),
            Some(vec!["gpt-x".to_string()])
        );
        assert_eq!(match_pattern("/v1/models/{id}", "/v1/models/"), None);
        assert_eq!(match_pattern("/v1/chat", "/v1/chat/completions"), None);
    }

    #[test]
    fn lookup_respects_the_method() {
        let routes = table();
        assert!(matches!(
            lookup(&routes, "POST", "/v1/chat/completions"),
            Lookup::Found(..)
        ));
        assert!(matches!(
            lookup(&routes, "GET", "/v1/chat/completions"),
            Lookup::NotFound
        ));
        assert!(matches!(lookup(&routes, "GET", "/nope"), Lookup::NotFound));
    }
}
