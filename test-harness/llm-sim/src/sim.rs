//! Control endpoints of the simulator: health and the request journal.

use crate::plan::Plan;
use crate::request::SimRequest;
use crate::router::{Ctx, Kind, Route};

/// The control routes under `/_sim/`.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: "GET",
            pattern: "/_sim/health",
            handler: health,
            kind: Kind::Control,
            auth: None,
        },
        Route {
            method: "GET",
            pattern: "/_sim/requests",
            handler: list_requests,
            kind: Kind::Control,
            auth: None,
        },
        Route {
            method: "DELETE",
            pattern: "/_sim/requests",
            handler: clear_requests,
            kind: Kind::Control,
            auth: None,
        },
    ]
}

fn health(_req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    Plan::text(200, "ok")
}

fn list_requests(_req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let body = serde_json::to_vec_pretty(&ctx.journal.snapshot()).unwrap_or_default();
    Plan::json(body)
}

fn clear_requests(_req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    ctx.journal.clear();
    Plan::json(b"{\"cleared\":true}".to_vec())
}
