//! Google's Gemini API (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
//! `:embedContent`, `:batchEmbedContents`, also under `/v1/`) and Vertex AI's publisher-model
//! paths (`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…`, also `/v1beta1/`;
//! `:predict` for text embeddings),
//! with Google's error shape.

pub mod embed;
pub mod error;
pub mod generate;
pub mod json;
pub mod predict;
pub mod request;

use crate::auth::{self, AuthCheck};
use crate::router::{Handler, Kind, Route};

fn route(pattern: &'static str, handler: Handler, auth: AuthCheck) -> Route {
    Route {
        method: "POST",
        pattern,
        handler,
        kind: Kind::Model(error::shaped),
        auth: Some(auth),
    }
}

/// The Gemini API and Vertex AI routes.
pub fn routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for (generate, stream, embed, batch) in [
        (
            "/v1beta/models/{model}:generateContent",
            "/v1beta/models/{model}:streamGenerateContent",
            "/v1beta/models/{model}:embedContent",
            "/v1beta/models/{model}:batchEmbedContents",
        ),
        (
            "/v1/models/{model}:generateContent",
            "/v1/models/{model}:streamGenerateContent",
            "/v1/models/{model}:embedContent",
            "/v1/models/{model}:batchEmbedContents",
        ),
    ] {
        routes.push(route(generate, generate::gemini, auth::gemini));
        routes.push(route(stream, generate::gemini_stream, auth::gemini));
        routes.push(route(embed, embed::single, auth::gemini));
        routes.push(route(batch, embed::batch, auth::gemini));
    }
    for count in [
        "/v1beta/models/{model}:countTokens",
        "/v1/models/{model}:countTokens",
    ] {
        routes.push(route(count, generate::count_tokens, auth::gemini));
    }
    for (generate, stream, embeddings) in [
        (
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent",
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict",
        ),
        (
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent",
            "/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict",
        ),
    ] {
        routes.push(route(generate, generate::vertex, auth::vertex));
        routes.push(route(stream, generate::vertex_stream, auth::vertex));
        routes.push(route(embeddings, predict::predict, auth::vertex));
    }
    routes
}
