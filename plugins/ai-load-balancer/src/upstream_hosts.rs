//! Higress's own view of the routed cluster (`proxy_get_upstream_hosts`): which configured
//! endpoints its health checks and outlier detection hold unhealthy, and the load in the
//! model-server metrics it scrapes (vLLM's and SGLang's Prometheus text). Each worker reads it
//! at most every `load.upstreamHostsMs` per pool (its load counts for `load.maxAgeMs` after the
//! read, like a response's report); hosts the configuration does not name are ignored, and
//! configured endpoints the host does not list are judged by the plugin alone.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use aigw_shared::host::Host;

use crate::config::Config;
use crate::orca::{count, fraction, LoadReport};

/// What the host said about the configured endpoints (indexed as `Config::endpoints`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    /// Bit `i`: the host lists endpoint `i` with a health status other than `Healthy`.
    pub unhealthy: u64,
    /// Per endpoint, the load in the metrics the host scraped (empty when it has none).
    pub load: Vec<LoadReport>,
}

impl HostView {
    /// The view of `listed` (`(address, JSON)` pairs, or older Higress: `(address, metrics)`).
    pub fn new(config: &Config, listed: &[(String, String)]) -> Self {
        let mut view = HostView {
            unhealthy: 0,
            load: vec![LoadReport::default(); config.endpoints.len()],
        };
        for (address, info) in listed {
            let Some(i) = config
                .endpoints
                .iter()
                .position(|e| same_address(&e.address, address))
            else {
                continue;
            };
            let (healthy, metrics) = read_info(info);
            if !healthy && i < 64 {
                view.unhealthy |= 1 << i;
            }
            if let Some(slot) = view.load.get_mut(i) {
                *slot = prometheus_load(&metrics);
            }
        }
        view
    }

    /// Whether the host holds endpoint `i` unhealthy.
    pub fn is_unhealthy(&self, i: usize) -> bool {
        i < 64 && self.unhealthy & (1 << i) != 0
    }

    /// The load the host's metrics show for endpoint `i`.
    pub fn load(&self, i: usize) -> LoadReport {
        self.load.get(i).copied().unwrap_or_default()
    }
}

/// Whether two `ip:port` addresses name one endpoint (IPv6 may be written in several ways).
fn same_address(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (a.parse::<std::net::SocketAddr>(), b.parse::<std::net::SocketAddr>()),
            (Ok(x), Ok(y)) if x == y
        )
}

/// A host's entry: healthy or not, and its metrics text. JSON (`health_status`, `metrics`) or,
/// from older Higress, the bare metrics text (health then unknown: taken as healthy).
fn read_info(info: &str) -> (bool, Cow<'_, str>) {
    #[derive(serde::Deserialize)]
    struct Info<'a> {
        #[serde(borrow, default)]
        health_status: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        metrics: Option<Cow<'a, str>>,
    }
    if !info.trim_start().starts_with('{') {
        return (true, Cow::Borrowed(info));
    }
    match serde_json::from_str::<Info<'_>>(info) {
        Ok(i) => (
            i.health_status
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case("healthy")),
            i.metrics.unwrap_or_default(),
        ),
        Err(_) => (true, Cow::Borrowed("")),
    }
}

/// The load in a model server's Prometheus text: requests waiting and running (summed over
/// label sets) and KV-cache usage (the highest), under vLLM's or SGLang's metric names.
pub fn prometheus_load(text: &str) -> LoadReport {
    let mut report = LoadReport::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        let rest = if rest.starts_with('{') {
            rest.rfind('}')
                .and_then(|i| rest.get(i + 1..))
                .unwrap_or("")
        } else {
            rest
        };
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
        else {
            continue;
        };
        match name {
            "vllm:num_requests_waiting" | "sglang:num_queue_reqs" => {
                report.waiting = Some(report.waiting.unwrap_or(0).saturating_add(count(value)));
            }
            "vllm:num_requests_running" | "sglang:num_running_reqs" => {
                report.running = Some(report.running.unwrap_or(0).saturating_add(count(value)));
            }
            "vllm:gpu_cache_usage_perc" | "vllm:kv_cache_usage_perc" | "sglang:token_usage" => {
                let v = fraction(value);
                report.kv_cache = Some(report.kv_cache.map_or(v, |k| k.max(v)));
            }
            _ => {}
        }
    }
    report
}

/// A pool, when its view was last read (ns, 0: never) and that view.
type Read = (Rc<Config>, u64, Option<Rc<HostView>>);

/// Each pool's last view and when it was read (per worker).
#[derive(Debug, Default)]
pub struct HostViews {
    views: RefCell<Vec<Read>>,
}

impl HostViews {
    /// `config`'s view at `now` and when it was read, read again when older than
    /// `load.upstreamHostsMs`; `None` when that is 0, or the host cannot list hosts (not
    /// Higress) or listed none.
    pub fn get(
        &self,
        host: &dyn Host,
        config: &Rc<Config>,
        now: u64,
    ) -> Option<(Rc<HostView>, u64)> {
        let every = u64::try_from(config.load.upstream_hosts.as_nanos()).unwrap_or(u64::MAX);
        if every == 0 || !host.capabilities().override_host {
            return None;
        }
        let mut views = self.views.borrow_mut();
        let at = match views.iter().position(|(c, ..)| Rc::ptr_eq(c, config)) {
            Some(at) => at,
            None => {
                views.push((Rc::clone(config), 0, None));
                views.len() - 1
            }
        };
        let entry = views.get_mut(at)?;
        if entry.1 == 0 || now.saturating_sub(entry.1) >= every || entry.1 > now {
            entry.1 = now.max(1);
            entry.2 = match host.upstream_hosts() {
                Ok(listed) if !listed.is_empty() => Some(Rc::new(HostView::new(config, &listed))),
                _ => None,
            };
        }
        entry.2.clone().map(|v| (v, entry.1))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_json(&serde_json::json!({"endpoints": [
            {"address": "10.0.0.1:8000"}, {"address": "10.0.0.2:8000"}, {"address": "10.0.0.3:8000"}
        ]}))
        .unwrap()
    }

    fn listed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, j)| ((*a).to_owned(), (*j).to_owned()))
            .collect()
    }

    #[test]
    fn vllms_own_exposition_gives_its_running_requests() {
        let text = include_str!("../testdata/metrics/vllm-docs.prom");
        let load = prometheus_load(text);
        assert_eq!(load.running, Some(8));
        assert_eq!(load.waiting, None, "not in the excerpt");
        assert_eq!(load.kv_cache, None);
    }

    #[test]
    fn gauges_are_summed_over_label_sets_and_kv_usage_takes_the_highest() {
        let text = "vllm:num_requests_waiting{model_name=\"a\"} 3\n\
                    vllm:num_requests_waiting{model_name=\"b\",x=\"}\"} 2.0 1700000000\n\
                    vllm:kv_cache_usage_perc{model_name=\"a\"} 0.25\n\
                    vllm:gpu_cache_usage_perc 0.5\n\
                    vllm:num_requests_waiting_total 99\n\
                    vllm:num_requests_running NaN\n\
                    sglang:num_running_reqs -1\n";
        let load = prometheus_load(text);
        assert_eq!(load.waiting, Some(5));
        assert_eq!(load.kv_cache, Some(0.5));
        assert_eq!(load.running, None, "NaN and negatives are skipped");
        let sglang = prometheus_load("sglang:num_queue_reqs 7\nsglang:token_usage 0.9\n");
        assert_eq!((sglang.waiting, sglang.kv_cache), (Some(7), Some(0.9)));
    }

    #[test]
    fn hosts_listed_unhealthy_are_marked_and_unknown_ones_ignored() {
        let c = config();
        let view = HostView::new(
            &c,
            &listed(&[
                (
                    "10.0.0.1:8000",
                    r#"{"health_status":"Healthy","metrics":"vllm:num_requests_waiting 4\n"}"#,
                ),
                ("10.0.0.2:8000", r#"{"health_status":"Unhealthy"}"#),
                ("10.9.9.9:8000", r#"{"health_status":"Unhealthy"}"#),
            ]),
        );
        assert!(!view.is_unhealthy(0));
        assert!(view.is_unhealthy(1));
        assert!(
            !view.is_unhealthy(2),
            "not listed: the plugin alone judges it"
        );
        assert_eq!(view.load(0).waiting, Some(4));
        assert!(view.load(2).is_empty());
        assert!(!view.is_unhealthy(200));
    }

    #[test]
    fn an_ipv6_address_written_another_way_is_the_same_endpoint() {
        let c = Config::from_json(&serde_json::json!({"endpoints": [{"address": "[::1]:8000"}]}))
            .unwrap();
        let view = HostView::new(
            &c,
            &listed(&[("[0:0::1]:8000", r#"{"health_status":"Unhealthy"}"#)]),
        );
        assert!(view.is_unhealthy(0));
        assert!(!same_address("[::1]:8000", "[::1]:8001"));
    }

    #[test]
    fn an_entry_that_is_bare_metrics_or_not_json_is_a_healthy_host() {
        let c = config();
        let view = HostView::new(
            &c,
            &listed(&[
                ("10.0.0.1:8000", "vllm:num_requests_running 2\n"),
                ("10.0.0.2:8000", "{not json"),
                ("10.0.0.3:8000", ""),
            ]),
        );
        assert_eq!(view.unhealthy, 0);
        assert_eq!(view.load(0).running, Some(2));
    }
}
