//! The quota admin endpoint (`quota.adminPath`): read a key value's remaining quota (`GET
//! ?key=<value>`) or set / add to it (`POST {"key", "set" | "add"}`), for callers presenting an
//! admin key (`Authorization: Bearer` or `x-api-key`). Answered locally, never forwarded.

use aigw_shared::aws::uri::percent_decode;
use aigw_shared::consumer::bearer_token;
use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, LogLevel};
use aigw_shared::plugin::{Ctx, Plugin, WholeBody};

use super::{header, text, Filter, Phase};
use crate::keys::query_param;
use crate::limiter::counter_key;
use crate::quota::{self, Write};
use crate::TokenRateLimit;

/// Admin bodies are small.
const MAX_ADMIN_BODY: usize = 4096;

/// The admin key a request presents: `Authorization: Bearer <key>`, else `x-api-key`.
fn presented_key(headers: &[(String, Vec<u8>)]) -> Option<&[u8]> {
    header(headers, "authorization")
        .and_then(bearer_token)
        .or_else(|| header(headers, "x-api-key").map(<[u8]>::trim_ascii))
}

impl Filter {
    /// A request to the admin path: answer a read at once, or read a write's body.
    pub(super) fn admin_headers(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        headers: &[(String, Vec<u8>)],
        path: &str,
        end_of_stream: bool,
    ) -> Action {
        let Some(admin) = self.config.quota_admin.as_ref() else {
            return Action::Continue;
        };
        if !presented_key(headers).is_some_and(|k| admin.allows(k)) {
            let e = ClientError::new(ErrorKind::Authentication, "an admin key is required");
            return self.admin_fail(cx, &e);
        }
        if !self.caps.shared_data {
            let e = ClientError::new(ErrorKind::Overloaded, "this host has no shared data");
            return self.admin_fail(cx, &e);
        }
        match text(header(headers, ":method")).unwrap_or("") {
            "GET" => match query_param(path, "key").filter(|k| !k.is_empty()) {
                // The value is percent-decoded, so `?key=team%20a` reads the quota of `team a`.
                Some(raw) => match String::from_utf8(percent_decode(raw)) {
                    Ok(key) => self.admin_apply(cx, &key, None),
                    Err(_) => {
                        let e = ClientError::invalid_request("?key= is not UTF-8 once decoded");
                        self.admin_fail(cx, &e)
                    }
                },
                None => {
                    let e = ClientError::invalid_request("GET needs ?key=<value>");
                    self.admin_fail(cx, &e)
                }
            },
            "POST" if !end_of_stream => {
                self.phase = Phase::AdminPost;
                cx.read_whole_request(WholeBody::up_to(MAX_ADMIN_BODY).holding_headers());
                Action::Continue
            }
            _ => {
                let e = ClientError::invalid_request(
                    "use GET ?key=<value>, or POST {\"key\", \"set\" or \"add\"}",
                );
                self.admin_fail(cx, &e)
            }
        }
    }

    /// A write's body.
    pub(super) fn admin_body(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        match quota::parse_write(body) {
            Ok((key, write)) => self.admin_apply(cx, &key, Some(&write)),
            Err(message) => self.admin_fail(cx, &ClientError::invalid_request(message)),
        }
    }

    fn admin_apply(&mut self, cx: &mut Ctx<'_, ()>, key: &str, write: Option<&Write>) -> Action {
        self.phase = Phase::Done;
        let Some(rule) = self.config.rules.iter().find(|r| r.quota) else {
            return Action::Continue;
        };
        let record = counter_key(rule, 0, &[key]);
        let now = cx.now_nanos().unwrap_or(0);
        match quota::apply(cx.host, &record, write, now) {
            Ok(remaining) => {
                if write.is_some() {
                    let line = format!(
                        "{}: quota of {key:?} set to {remaining}",
                        TokenRateLimit::NAME
                    );
                    cx.log(LogLevel::Info, &line);
                }
                let body = serde_json::json!({"key": key, "remaining": remaining}).to_string();
                let headers = [("content-type", b"application/json".as_slice())];
                let sent = cx.send_local_response(200, &headers, body.as_bytes());
                cx.check(sent, "answer the quota admin request");
                Action::Pause
            }
            Err(e) => {
                let e = ClientError::new(ErrorKind::Overloaded, format!("quota not stored: {e}"));
                self.admin_fail(cx, &e)
            }
        }
    }

    fn admin_fail(&mut self, cx: &mut Ctx<'_, ()>, error: &ClientError) -> Action {
        self.phase = Phase::Done;
        aigw_shared::reply::send_error(
            cx.host,
            TokenRateLimit::NAME,
            ClientProtocol::OpenAi,
            error,
        );
        Action::Pause
    }
}
