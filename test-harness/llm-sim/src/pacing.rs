//! Sends a planned event stream at the simulated speed: time to first token, then one token event
//! per `1/tokens-per-second`, and cuts the stream early when `x-sim-truncate-after` asks for it (or ends it early but
//! cleanly for `x-sim-end-after`); [`cut_after`] breaks any body after a number of bytes
//! (`x-sim-reset-after-bytes`).

use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::body::{Chunk, SimBody, StreamCut};
use crate::knobs::Knobs;
use crate::plan::{Event, EventKind};

/// Pause before cutting a truncated stream, so the events already handed over reach the socket
/// before the connection closes.
const CUT_GRACE: Duration = Duration::from_millis(30);

/// Feeds `events` into `tx` with the knobs' timing. Stops quietly when the client goes away.
pub async fn pace(events: Vec<Event>, knobs: Knobs, tx: mpsc::Sender<Chunk>) {
    let per_token = knobs.per_token();
    if !knobs.ttft.is_zero() {
        tokio::time::sleep(knobs.ttft).await;
    }
    let mut sent: u64 = 0;
    let mut tokens_sent = false;
    for event in events {
        let early = |limit: Option<u64>| {
            limit.is_some_and(|limit| {
                sent >= limit || matches!(event.kind, EventKind::Terminator | EventKind::LastToken)
            })
        };
        if early(knobs.end_after) {
            // Dropping the sender ends the body normally.
            return;
        }
        if early(knobs.truncate_after) {
            tokio::time::sleep(CUT_GRACE).await;
            let _ = tx.send(Err(StreamCut)).await;
            return;
        }
        if matches!(event.kind, EventKind::Token | EventKind::LastToken) {
            if tokens_sent && !per_token.is_zero() {
                tokio::time::sleep(per_token).await;
            }
            tokens_sent = true;
        }
        if tx.send(Ok(event.bytes)).await.is_err() {
            return;
        }
        sent = sent.saturating_add(1);
    }
}

/// Forwards the first `limit` bytes of `body` into `tx` (fewer when the body is shorter), then
/// cuts it: the connection closes mid-body.
pub async fn cut_after(mut body: SimBody, limit: u64, tx: mpsc::Sender<Chunk>) {
    let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
    while left > 0 {
        let Some(Ok(frame)) = body.frame().await else {
            break;
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        data.truncate(left);
        left -= data.len();
        if tx.send(Ok(data)).await.is_err() {
            return;
        }
    }
    tokio::time::sleep(CUT_GRACE).await;
    let _ = tx.send(Err(StreamCut)).await;
}
