//! The Anthropic Messages API: `POST /v1/messages` (JSON and named-event SSE streams), tool use,
//! `POST /v1/messages/count_tokens`, and Anthropic's error shape.

pub mod error;
pub mod messages;
pub mod stream;

use crate::auth;
use crate::router::{Kind, Route};

/// The Anthropic routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: "POST",
            pattern: "/v1/messages",
            handler: messages::handle,
            kind: Kind::Model(error::shaped),
            auth: Some(auth::anthropic),
        },
        Route {
            method: "POST",
            pattern: "/v1/messages/count_tokens",
            handler: messages::count_tokens,
            kind: Kind::Model(error::shaped),
            auth: Some(auth::anthropic),
        },
    ]
}
