//! The response body type: either a whole buffer or a channel fed by a pacing task, which can end
//! the stream with an error to cut the connection mid-body.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Error that aborts a streamed body; hyper then closes the connection without finishing the
/// chunked encoding.
#[derive(Debug)]
pub struct StreamCut;

impl fmt::Display for StreamCut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream deliberately truncated by llm-sim")
    }
}

impl std::error::Error for StreamCut {}

/// Item sent by the pacing task.
pub type Chunk = Result<Bytes, StreamCut>;

/// A response body.
#[derive(Debug)]
pub enum SimBody {
    /// A complete body, sent with `content-length`.
    Full(Option<Bytes>),
    /// A streamed body, sent with chunked transfer encoding.
    Channel(mpsc::Receiver<Chunk>),
}

impl SimBody {
    /// A body of the given bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(bytes.into()))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Channel(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(b)) => SizeHint::with_exact(u64::try_from(b.len()).unwrap_or(0)),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Channel(_) => SizeHint::default(),
        }
    }
}
