//! Local replies: answer the client with an error in its own protocol, from any filter.

use crate::error::{ClientError, ClientProtocol};
use crate::host::{Host, LogLevel};

/// Send `error` to the client in `protocol`'s shape as a local reply. A host that refuses the reply
/// gets a log line naming `plugin`; the caller's callback should return `Action::Pause` either way.
pub fn send_error(host: &dyn Host, plugin: &str, protocol: ClientProtocol, error: &ClientError) {
    let r = error.render(protocol);
    let headers = [("content-type", r.content_type.as_bytes())];
    if let Err(e) = host.send_local_response(r.status, &headers, &r.body) {
        host.log(
            LogLevel::Error,
            &format!("{plugin}: cannot send error reply: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::mock::MockHost;

    #[test]
    fn the_reply_carries_the_status_content_type_and_protocol_shape() {
        let host = MockHost::default();
        let err = ClientError::new(ErrorKind::RequestTooLarge, "too big");
        send_error(&host, "p", ClientProtocol::Anthropic, &err);
        let reply = host.state.borrow().local_response.clone().unwrap();
        assert_eq!(reply.status, 413);
        assert!(reply
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == b"application/json"));
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["error"]["message"], "too big");
    }
}
