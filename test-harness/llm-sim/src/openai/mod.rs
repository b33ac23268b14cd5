//! The OpenAI-compatible API: chat completions (JSON and SSE), the Responses API (JSON and typed
//! SSE events), embeddings, models, and OpenAI's error shape.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;
pub mod moderations;
pub mod responses;
pub mod stream;

use crate::auth;
use crate::router::{Kind, Route};

/// The OpenAI routes.
pub fn routes() -> Vec<Route> {
    let kind = Kind::Model(error::shaped);
    vec![
        Route {
            method: "POST",
            pattern: "/v1/chat/completions",
            handler: chat::handle,
            kind,
            auth: Some(auth::openai),
        },
        Route {
            method: "POST",
            pattern: "/v1/responses",
            handler: responses::handle,
            kind,
            auth: Some(auth::openai),
        },
        Route {
            method: "POST",
            pattern: "/v1/embeddings",
            handler: embeddings::handle,
            kind,
            auth: Some(auth::openai),
        },
        Route {
            method: "POST",
            pattern: "/v1/moderations",
            handler: moderations::handle,
            kind,
            auth: Some(auth::openai),
        },
        Route {
            method: "GET",
            pattern: "/v1/models",
            handler: models::list,
            kind,
            auth: Some(auth::openai),
        },
        Route {
            method: "GET",
            pattern: "/v1/models/{id}",
            handler: models::retrieve,
            kind,
            auth: Some(auth::openai),
        },
    ]
}
