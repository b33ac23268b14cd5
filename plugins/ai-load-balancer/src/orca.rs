//! Load reports from model-server response headers: ORCA `endpoint-load-metrics` in its `TEXT` and
//! `JSON` forms (the named metrics vLLM maps: `kv_cache_usage_perc`, `num_requests_waiting`,
//! `num_requests_running`) and plain numeric custom headers. Parsing borrows and never allocates
//! for the TEXT form; a malformed report is an error the caller ignores, never a trap.

use std::collections::BTreeMap;

/// The ORCA response header.
pub const ORCA_HEADER: &str = "endpoint-load-metrics";
/// What a model server needs in the request to add the ORCA header (vLLM, Triton TRT-LLM).
pub const ORCA_FORMAT_HEADER: &str = "endpoint-load-metrics-format";

const KV: &str = "kv_cache_usage_perc";
const WAITING: &str = "num_requests_waiting";
const RUNNING: &str = "num_requests_running";

/// What one response said about its endpoint's load; `None` where it said nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadReport {
    /// KV-cache usage as a fraction, 0–1.
    pub kv_cache: Option<f64>,
    /// Requests waiting in the server's queue.
    pub waiting: Option<u32>,
    /// Requests the server is running.
    pub running: Option<u32>,
}

impl LoadReport {
    /// True when the report carries nothing.
    pub fn is_empty(&self) -> bool {
        self.kv_cache.is_none() && self.waiting.is_none() && self.running.is_none()
    }

    /// Fill what `self` lacks from `other`.
    pub fn or(self, other: LoadReport) -> LoadReport {
        LoadReport {
            kv_cache: self.kv_cache.or(other.kv_cache),
            waiting: self.waiting.or(other.waiting),
            running: self.running.or(other.running),
        }
    }
}

/// Why an ORCA header was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrcaError {
    /// The format prefix is not `TEXT` or `JSON` (`BIN` is not read).
    UnknownFormat,
    /// A `key=value` pair is malformed, a value not a finite number, or a key repeated.
    Malformed,
}

/// Parse an `endpoint-load-metrics` value.
pub fn parse_orca(value: &[u8]) -> Result<LoadReport, OrcaError> {
    let text = std::str::from_utf8(value).map_err(|_| OrcaError::Malformed)?;
    let text = text.trim();
    if let Some(rest) = strip_format(text, "TEXT") {
        parse_text(rest)
    } else if let Some(rest) = strip_format(text, "JSON") {
        parse_json(rest)
    } else {
        Err(OrcaError::UnknownFormat)
    }
}

fn strip_format<'a>(text: &'a str, format: &str) -> Option<&'a str> {
    let head = text.get(..format.len())?;
    if !head.eq_ignore_ascii_case(format) {
        return None;
    }
    let rest = text.get(format.len()..)?;
    // The format word stands alone: `TEXT k=v`, not `TEXTk=v`.
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

fn parse_text(rest: &str) -> Result<LoadReport, OrcaError> {
    let mut report = LoadReport::default();
    let mut seen: [bool; 3] = [false; 3];
    for pair in rest.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        // Older Envoy parsers split on ':'; accept both.
        let (key, val) = pair
            .split_once('=')
            .or_else(|| pair.split_once(':'))
            .ok_or(OrcaError::Malformed)?;
        let val = number(val.trim())?;
        let key = key.trim();
        let name = key
            .strip_prefix("named_metrics.")
            .or_else(|| key.strip_prefix("utilization."))
            .unwrap_or(key);
        set(&mut report, &mut seen, name, val)?;
    }
    Ok(report)
}

fn parse_json(rest: &str) -> Result<LoadReport, OrcaError> {
    #[derive(serde::Deserialize)]
    struct Json {
        #[serde(default)]
        named_metrics: BTreeMap<String, f64>,
    }
    let json: Json = serde_json::from_str(rest).map_err(|_| OrcaError::Malformed)?;
    let mut report = LoadReport::default();
    let mut seen = [false; 3];
    for (k, v) in &json.named_metrics {
        if !v.is_finite() {
            return Err(OrcaError::Malformed);
        }
        set(&mut report, &mut seen, k, *v)?;
    }
    Ok(report)
}

fn set(report: &mut LoadReport, seen: &mut [bool; 3], name: &str, v: f64) -> Result<(), OrcaError> {
    let slot = match name {
        KV => 0,
        WAITING => 1,
        RUNNING => 2,
        _ => return Ok(()),
    };
    let Some(done) = seen.get_mut(slot) else {
        return Ok(());
    };
    if *done {
        return Err(OrcaError::Malformed);
    }
    *done = true;
    match slot {
        0 => report.kv_cache = Some(fraction(v)),
        1 => report.waiting = Some(count(v)),
        _ => report.running = Some(count(v)),
    }
    Ok(())
}

fn number(text: &str) -> Result<f64, OrcaError> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(OrcaError::Malformed),
    }
}

/// KV usage as a fraction: values over 1 are read as a percentage, then clamped to 1.
pub fn fraction(v: f64) -> f64 {
    let v = if v > 1.0 { v / 100.0 } else { v };
    v.clamp(0.0, 1.0)
}

/// A non-negative finite number as a count (saturating at `u32::MAX`, fraction dropped).
pub(crate) fn count(v: f64) -> u32 {
    if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // Non-negative and finite (checked by the caller): the cast truncates the fraction.
        v.max(0.0) as u32
    }
}

/// A custom header holding one number (`x-queue-depth: 3`); `None` when absent or not a number.
pub fn header_number(value: Option<&[u8]>) -> Option<f64> {
    let text = std::str::from_utf8(value?).ok()?;
    number(text.trim()).ok()
}

/// A custom KV-usage header as a fraction.
pub fn header_fraction(value: Option<&[u8]>) -> Option<f64> {
    header_number(value).map(fraction)
}

/// A custom count header.
pub fn header_count(value: Option<&[u8]>) -> Option<u32> {
    header_number(value).map(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/orca/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.trim_end_matches('\n').as_bytes().to_vec()
    }

    #[test]
    fn reads_vllm_text_reports_with_spaces_after_commas() {
        let r = parse_orca(&fixture("vllm-text.txt")).unwrap();
        assert_eq!(r.kv_cache, Some(0.4));
        assert_eq!(r.waiting, Some(3));
        assert_eq!(r.running, None);
    }

    #[test]
    fn reads_json_reports_and_ignores_other_fields() {
        let r = parse_orca(&fixture("json.txt")).unwrap();
        assert_eq!(r.kv_cache, Some(0.25));
        assert_eq!(r.waiting, Some(0));
        assert_eq!(r.running, Some(7));
    }

    #[test]
    fn accepts_colons_and_utilization_prefixes_like_older_envoy_parsers() {
        let r = parse_orca(b"TEXT cpu_utilization:0.5,utilization.num_requests_running:2").unwrap();
        assert_eq!(r.running, Some(2));
        assert!(r.kv_cache.is_none());
    }

    #[test]
    fn a_percentage_over_one_is_read_as_percent() {
        let r = parse_orca(b"TEXT named_metrics.kv_cache_usage_perc=85").unwrap();
        assert_eq!(r.kv_cache, Some(0.85));
    }

    #[test]
    fn malformed_reports_are_errors_not_guesses() {
        for bad in [
            &b"TEXT named_metrics.num_requests_waiting=x"[..],
            b"TEXT named_metrics.num_requests_waiting=1,named_metrics.num_requests_waiting=2",
            b"TEXT named_metrics.kv_cache_usage_perc=NaN",
            b"TEXT named_metrics.kv_cache_usage_perc=-1",
            b"TEXT novalue",
            b"JSON {not json",
            b"JSON {\"named_metrics\":{\"kv_cache_usage_perc\":\"high\"}}",
            b"\xff\xfe",
        ] {
            assert_eq!(
                parse_orca(bad),
                Err(OrcaError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_orca(b"BIN AAAA"), Err(OrcaError::UnknownFormat));
        assert_eq!(parse_orca(b"TEXTkv=1"), Err(OrcaError::UnknownFormat));
        assert_eq!(parse_orca(b""), Err(OrcaError::UnknownFormat));
    }

    #[test]
    fn custom_headers_are_plain_numbers() {
        assert_eq!(header_count(Some(b" 12 ")), Some(12));
        assert_eq!(header_fraction(Some(b"40")), Some(0.4));
        assert_eq!(header_count(Some(b"many")), None);
        assert_eq!(header_count(None), None);
    }
}
