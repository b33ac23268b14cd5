//! AWS Bedrock Runtime: `POST /model/{modelId}/converse` (JSON) and `/converse-stream`
//! (`application/vnd.amazon.eventstream` frames), Bedrock's error shape (`{"message"}` plus the
//! `x-amzn-errortype` header) and SigV4 verification of incoming requests; `/model/{modelId}/invoke`
//! answers the Titan and Cohere embedding models ([`embed`]); `/model/{modelId}/count-tokens` is
//! `CountTokens` ([`count`]).

pub mod auth;
pub mod converse;
pub mod count;
pub mod embed;
pub mod error;
pub mod stream;

use crate::router::{Kind, Route};

/// The Bedrock routes.
pub fn routes() -> Vec<Route> {
    let kind = Kind::Model(error::shaped);
    vec![
        Route {
            method: "POST",
            pattern: "/model/{modelId}/converse",
            handler: converse::handle,
            kind,
            auth: Some(auth::check),
        },
        Route {
            method: "POST",
            pattern: "/model/{modelId}/converse-stream",
            handler: converse::handle_stream,
            kind,
            auth: Some(auth::check),
        },
        Route {
            method: "POST",
            pattern: "/model/{modelId}/invoke",
            handler: embed::handle,
            kind,
            auth: Some(auth::check),
        },
        Route {
            method: "POST",
            pattern: "/model/{modelId}/count-tokens",
            handler: count::handle,
            kind,
            auth: Some(auth::check),
        },
    ]
}
