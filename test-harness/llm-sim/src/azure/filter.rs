//! Azure's content-filter annotations and the documented trigger for its content-filter error.
//!
//! Every answer is annotated as safe: the prompt with `hate`, `jailbreak`, `self_harm`, `sexual`,
//! `violence`; completions with `hate`, `protected_material_code`, `protected_material_text`,
//! `self_harm`, `sexual`, `violence` (the categories of Azure's documented annotations). A request
//! whose messages contain [`TRIGGER`] (any letter case) is refused with the documented HTTP 400
//! `content_filter` error instead.

use serde::Serialize;
use serde_json::{json, Value};

use crate::plan::{Plan, JSON};
use crate::reply::Conversation;

/// Text that makes the simulated prompt filter refuse a request.
pub const TRIGGER: &str = "sim-content-filter";

/// The documented message of the prompt-filter 400, line breaks of the docs joined by spaces.
pub const MESSAGE: &str = "The response was filtered due to the prompt triggering Azure Content \
management policy. Please modify your prompt and retry. To learn more about our content filtering \
policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=21298766";

fn safe() -> Value {
    json!({"filtered": false, "severity": "safe"})
}

fn not_detected() -> Value {
    json!({"detected": false, "filtered": false})
}

/// `prompt_filter_results[].content_filter_results` of an accepted prompt.
pub fn prompt_results() -> Value {
    json!({
        "hate": safe(),
        "jailbreak": not_detected(),
        "self_harm": safe(),
        "sexual": safe(),
        "violence": safe(),
    })
}

/// `choices[].content_filter_results` of generated text.
pub fn completion_results() -> Value {
    json!({
        "hate": safe(),
        "protected_material_code": not_detected(),
        "protected_material_text": not_detected(),
        "self_harm": safe(),
        "sexual": safe(),
        "violence": safe(),
    })
}

/// `prompt_filter_results` of an accepted prompt.
pub fn prompt_filter_results() -> Value {
    json!([{"content_filter_results": prompt_results(), "prompt_index": 0}])
}

/// Whether any message of the conversation contains the trigger.
pub fn triggered(conv: &Conversation) -> bool {
    conv.messages
        .iter()
        .any(|(_, text)| text.to_lowercase().contains(TRIGGER))
}

#[derive(Serialize)]
struct Envelope {
    error: Detail,
}

/// Field order as printed in the Azure documentation.
#[derive(Serialize)]
struct Detail {
    message: &'static str,
    #[serde(rename = "type")]
    kind: Option<()>,
    param: &'static str,
    code: &'static str,
    status: u16,
    innererror: Inner,
}

#[derive(Serialize)]
struct Inner {
    code: &'static str,
    content_filter_result: Categories,
}

/// The documented categories (note `self-harm` with a hyphen, as the documentation prints it).
#[derive(Serialize)]
struct Categories {
    hate: Severity,
    #[serde(rename = "self-harm")]
    self_harm: Severity,
    sexual: Severity,
    violence: Severity,
}

#[derive(Serialize)]
struct Severity {
    filtered: bool,
    severity: &'static str,
}

/// The documented HTTP 400 for a prompt that trips the filter.
pub fn refusal() -> Plan {
    let sev = |filtered, severity| Severity { filtered, severity };
    let body = Envelope {
        error: Detail {
            message: MESSAGE,
            kind: None,
            param: "prompt",
            code: "content_filter",
            status: 400,
            innererror: Inner {
                code: "ResponsibleAIPolicyViolation",
                content_filter_result: Categories {
                    hate: sev(true, "high"),
                    self_harm: sev(true, "high"),
                    sexual: sev(false, "safe"),
                    violence: sev(true, "medium"),
                },
            },
        },
    };
    Plan::full(400, JSON, serde_json::to_vec(&body).unwrap_or_default(), 0)
}
