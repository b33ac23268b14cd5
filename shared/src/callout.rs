//! HTTP callouts to named upstreams: building the request, naming the cluster per host, reading JSON.

use std::time::Duration;

use crate::host::{CallResponse, Host, HostError};

/// Where a callout goes: the upstream name the host routes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Envoy cluster name, or Higress `outbound|<port>||<fqdn>`.
    pub cluster: String,
    /// The `:authority` to send.
    pub authority: String,
}

impl Upstream {
    /// An Envoy cluster reached with the given authority.
    pub fn envoy(cluster: &str, authority: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            authority: authority.to_owned(),
        }
    }

    /// A Higress service (`outbound|port||fqdn`).
    pub fn higress(fqdn: &str, port: u16) -> Self {
        Self {
            cluster: format!("outbound|{port}||{fqdn}"),
            authority: fqdn.to_owned(),
        }
    }
}

/// One outgoing request.
#[derive(Debug, Clone)]
pub struct CalloutRequest<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Path with query.
    pub path: &'a str,
    /// Extra headers.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// Body.
    pub body: Option<&'a [u8]>,
    /// Timeout.
    pub timeout: Duration,
}

impl<'a> CalloutRequest<'a> {
    /// A JSON POST.
    pub fn post_json(path: &'a str, body: &'a [u8], timeout: Duration) -> Self {
        Self {
            method: "POST",
            path,
            headers: vec![("content-type", b"application/json")],
            body: Some(body),
            timeout,
        }
    }

    /// Send it; returns the token the response will carry.
    pub fn send(&self, host: &dyn Host, upstream: &Upstream) -> Result<u32, HostError> {
        let mut all: Vec<(&str, &[u8])> = Vec::with_capacity(self.headers.len() + 3);
        all.push((":method", self.method.as_bytes()));
        all.push((":path", self.path.as_bytes()));
        all.push((":authority", upstream.authority.as_bytes()));
        all.extend(self.headers.iter().copied());
        host.http_call(&upstream.cluster, &all, self.body, self.timeout)
    }
}

/// Why a callout's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    /// No response (reset, no healthy upstream).
    #[error("callout failed without a response")]
    NoResponse,
    /// A non-2xx status.
    #[error("callout answered HTTP {0}")]
    Status(u16),
    /// The body was not the expected JSON.
    #[error("callout answered unexpected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parse a 2xx JSON response into `T`.
pub fn json_response<T: serde::de::DeserializeOwned>(
    resp: &CallResponse,
) -> Result<T, CalloutError> {
    match resp.status {
        None => Err(CalloutError::NoResponse),
        Some(s) if !(200..300).contains(&s) => Err(CalloutError::Status(s)),
        Some(_) => Ok(serde_json::from_slice(&resp.body)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    #[test]
    fn callouts_carry_the_pseudo_headers_the_host_requires() {
        let host = MockHost::default();
        let req = CalloutRequest::post_json("/v1/embeddings", b"{}", Duration::from_secs(2));
        let token = req
            .send(&host, &Upstream::higress("embed.svc", 8080))
            .unwrap();
        let st = host.state.borrow();
        let call = &st.callouts[0];
        assert_eq!(call.token, token);
        assert_eq!(call.upstream, "outbound|8080||embed.svc");
        assert!(call
            .headers
            .iter()
            .any(|(k, v)| k == ":authority" && v == b"embed.svc"));
    }

    #[test]
    fn non_2xx_and_missing_responses_are_errors() {
        let failed = CallResponse::default();
        assert!(matches!(
            json_response::<serde_json::Value>(&failed),
            Err(CalloutError::NoResponse)
        ));
        let bad = CallResponse {
            status: Some(503),
            ..CallResponse::default()
        };
        assert!(matches!(
            json_response::<serde_json::Value>(&bad),
            Err(CalloutError::Status(503))
        ));
        let ok = CallResponse {
            status: Some(200),
            body: b"{\"a\":1}".to_vec(),
            ..CallResponse::default()
        };
        assert_eq!(json_response::<serde_json::Value>(&ok).unwrap()["a"], 1);
    }
}
