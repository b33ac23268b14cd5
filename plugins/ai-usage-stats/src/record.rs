//! The accounting of one request, free of host types: token counts (reported or estimated),
//! timings, the error type, the cost, and the audit record.

use aigw_shared::llm::{ResponseFormat, ResponseSummary, Usage};
use aigw_shared::tokens::TokenCount;
use serde::Serialize;

use crate::price::{Billed, Rates};

/// One request's tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// All input tokens (cached included).
    pub input: u64,
    /// All output tokens (reasoning included).
    pub output: u64,
    /// Input + output, or as reported.
    pub total: u64,
    /// Input tokens read from the prompt cache.
    pub cached: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// The provider reported no usage: the counts are estimates (`aigw_shared::tokens`).
    pub estimated: bool,
}

impl Tokens {
    /// From a reported usage.
    pub fn reported(u: &Usage) -> Self {
        Self {
            input: u.input_tokens,
            output: u.output_tokens,
            total: u.total_tokens,
            cached: u.cached_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
            reasoning: u.reasoning_tokens.unwrap_or(0),
            estimated: false,
        }
    }

    /// From estimates.
    pub fn estimated(input: TokenCount, output: TokenCount) -> Self {
        Self {
            input: input.tokens,
            output: output.tokens,
            total: input.tokens.saturating_add(output.tokens),
            cached: 0,
            cache_write: 0,
            reasoning: 0,
            estimated: true,
        }
    }

    /// What the price table bills.
    pub fn billed(&self) -> Billed {
        Billed {
            input: self.input,
            cached: self.cached,
            cache_write: self.cache_write,
            output: self.output,
        }
    }
}

/// The tokens of a finished request: as reported; else, for a successful answer, estimated
/// (`input` is called only then); a failed request without usage counts no tokens.
pub fn tokens(
    summary: &ResponseSummary,
    succeeded: bool,
    input: impl FnOnce() -> TokenCount,
) -> Tokens {
    match &summary.usage {
        Some(u) => Tokens::reported(u),
        None if succeeded => Tokens::estimated(input(), summary.output_estimate.estimate()),
        None => Tokens::default(),
    }
}

/// One request's timings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Request headers to the end of the response, ms.
    pub duration_ms: Option<u64>,
    /// Request headers to the first content token of a streamed answer, ms.
    pub ttft_ms: Option<u64>,
    /// Per output token after the first, of a streamed answer, µs.
    pub tpot_us: Option<u64>,
}

/// Timings from the clock readings (ns; `None` without a clock). Time to first token and per
/// output token only for streamed answers (a JSON answer carries every token at once, so both
/// would only repeat the duration); per output token needs two or more output tokens and is
/// `(end - first token) / (output - 1)`.
pub fn timings(
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    first_token_ns: Option<u64>,
    output_tokens: u64,
    streamed: bool,
) -> Timings {
    let ms = |from: u64, to: u64| to.saturating_sub(from) / 1_000_000;
    let duration_ms = start_ns.zip(end_ns).map(|(s, e)| ms(s, e));
    let first = first_token_ns.filter(|_| streamed);
    let ttft_ms = start_ns.zip(first).map(|(s, f)| ms(s, f));
    let tpot_us = first
        .zip(end_ns)
        .filter(|_| output_tokens > 1)
        .map(|(f, e)| e.saturating_sub(f) / 1_000 / (output_tokens - 1));
    Timings {
        duration_ms,
        ttft_ms,
        tpot_us,
    }
}

/// The `error_type` of a request, `None` when it succeeded: the HTTP status (`"429"`, `"503"`)
/// when 400 or more; `upstream_error` for an error the provider put in a 2xx body (an in-stream
/// error event); `incomplete` for a stream that ended before its end event, or a request that
/// ended before its response did (`finished` false: client gone, stream reset).
pub fn error_type(
    status: u16,
    summary: &ResponseSummary,
    format: ResponseFormat,
    finished: bool,
) -> Option<String> {
    if status >= 400 {
        return Some(status.to_string());
    }
    if summary.error.is_some() {
        return Some("upstream_error".to_owned());
    }
    let broken_stream = format == ResponseFormat::Sse && (!summary.completed || summary.truncated);
    if !finished || status == 0 || broken_stream {
        return Some("incomplete".to_owned());
    }
    None
}

/// The cost in pico-dollars, when the model has a price.
pub fn cost_pico(rates: Option<Rates>, tokens: &Tokens) -> Option<u64> {
    rates.map(|r| r.cost_pico(tokens.billed()))
}

/// The audit record of one request (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord<'a> {
    /// Envoy's `x-request-id`.
    pub request_id: Option<&'a str>,
    /// Request start, ms since the Unix epoch.
    pub start_ms: Option<u64>,
    /// The API (`chat_completions`, `messages`, `completions`, `embeddings`).
    pub api: &'static str,
    /// Route name.
    pub route: &'a str,
    /// The caller (consumer), `unknown` when not identified.
    pub consumer: &'a str,
    /// The provider (its label: from the upstream cluster through `providers`).
    pub provider: &'a str,
    /// The upstream cluster as Envoy named it (`unknown` when none was chosen).
    pub cluster: &'a str,
    /// The model the client asked for.
    pub original_model: &'a str,
    /// The model asked of the provider: ai-proxy's mapping (its `x-aigw-upstream-model`
    /// response header), else the same as `originalModel`.
    pub request_model: &'a str,
    /// The model the response names.
    pub response_model: Option<&'a str>,
    /// `stream: true` in the request.
    pub stream: bool,
    /// HTTP status the client got (0: none).
    pub status: u16,
    /// See [`error_type`].
    pub error_type: Option<&'a str>,
    /// Normalised finish reason.
    pub finish_reason: Option<&'static str>,
    /// Tokens.
    pub usage: Tokens,
    /// Timings.
    pub timings: Timings,
    /// Cost in USD, when priced.
    pub cost_usd: Option<f64>,
    /// The last user message (when captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<&'a str>,
    /// The prompt was cut to the capture limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_truncated: Option<bool>,
    /// The answer text (when captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<&'a str>,
    /// The answer was cut to the capture limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_truncated: Option<bool>,
    /// A cache's verdict (`x-aigw-cache` response header: `hit`, `miss`, …), when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'a str>,
    /// Upstream attempts, retries and fallbacks included (`x-aigw-attempts`), when reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl AuditRecord<'_> {
    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Pico-dollars as US dollars.
pub fn usd(pico: u64) -> f64 {
    pico as f64 / 1e12
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::llm::UpstreamError;

    fn summary(usage: Option<Usage>) -> ResponseSummary {
        ResponseSummary {
            usage,
            completed: true,
            ..ResponseSummary::default()
        }
    }

    #[test]
    fn reported_usage_is_taken_as_is_with_cached_and_reasoning() {
        let u = Usage {
            input_tokens: 100,
            output_tokens: 40,
            total_tokens: 140,
            cached_input_tokens: Some(60),
            cache_creation_input_tokens: None,
            reasoning_tokens: Some(25),
        };
        let t = tokens(&summary(Some(u)), true, || panic!("not estimated"));
        assert_eq!(
            t,
            Tokens {
                input: 100,
                output: 40,
                total: 140,
                cached: 60,
                cache_write: 0,
                reasoning: 25,
                estimated: false
            }
        );
    }

    #[test]
    fn missing_usage_is_estimated_for_answers_and_zero_for_failures() {
        let mut s = summary(None);
        s.output_estimate.push("Hello there, world");
        let t = tokens(&s, true, || {
            aigw_shared::tokens::estimate("count these words")
        });
        assert!(t.estimated);
        assert_eq!((t.input, t.output, t.total), (5, 5, 10));
        let failed = tokens(&s, false, || panic!("not estimated"));
        assert_eq!(failed, Tokens::default());
    }

    #[test]
    fn streamed_timings_measure_first_token_and_time_per_output_token() {
        let ms = 1_000_000;
        let t = timings(Some(0), Some(1000 * ms), Some(200 * ms), 81, true);
        assert_eq!(
            t,
            Timings {
                duration_ms: Some(1000),
                ttft_ms: Some(200),
                tpot_us: Some(10_000)
            }
        );
        let json = timings(Some(0), Some(1000 * ms), Some(900 * ms), 81, false);
        assert_eq!((json.ttft_ms, json.tpot_us), (None, None));
        let one = timings(Some(0), Some(10 * ms), Some(5 * ms), 1, true);
        assert_eq!(one.tpot_us, None, "one token has no time per output token");
        assert_eq!(timings(None, None, None, 5, true), Timings::default());
    }

    #[test]
    fn error_types_come_from_the_status_the_body_or_an_unfinished_stream() {
        let ok = summary(None);
        assert_eq!(error_type(200, &ok, ResponseFormat::Json, true), None);
        assert_eq!(
            error_type(429, &ok, ResponseFormat::Json, true).as_deref(),
            Some("429")
        );
        let mut in_band = summary(None);
        in_band.error = Some(UpstreamError::default());
        assert_eq!(
            error_type(200, &in_band, ResponseFormat::Sse, true).as_deref(),
            Some("upstream_error")
        );
        let mut cut = summary(None);
        cut.completed = false;
        assert_eq!(
            error_type(200, &cut, ResponseFormat::Sse, true).as_deref(),
            Some("incomplete")
        );
        assert_eq!(
            error_type(200, &ok, ResponseFormat::Json, false).as_deref(),
            Some("incomplete")
        );
        let mut unread_json = summary(None);
        unread_json.completed = false;
        assert_eq!(
            error_type(200, &unread_json, ResponseFormat::Json, true),
            None,
            "a JSON body too large to read is not an error"
        );
    }

    #[test]
    fn the_audit_record_is_one_json_line_without_uncaptured_texts() {
        let r = AuditRecord {
            request_id: Some("r1"),
            start_ms: Some(5),
            api: "chat_completions",
            route: "chat",
            consumer: "team-a",
            provider: "openai",
            cluster: "openai",
            original_model: "gpt-4o-mini",
            request_model: "gpt-4o-mini",
            response_model: None,
            stream: false,
            status: 200,
            error_type: None,
            finish_reason: Some("stop"),
            usage: Tokens::default(),
            timings: Timings::default(),
            cost_usd: Some(usd(1_500_000)),
            prompt: None,
            prompt_truncated: None,
            answer: None,
            answer_truncated: None,
            cache: None,
            attempts: None,
        };
        let json = r.to_json();
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["costUsd"], 1.5e-6);
        assert_eq!(v["usage"]["estimated"], false);
        assert!(v.get("prompt").is_none());
        assert_eq!(v["timings"]["ttftMs"], serde_json::Value::Null);
    }
}
