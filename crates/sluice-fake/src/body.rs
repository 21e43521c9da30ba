//! The response body: a list of frames written one at a time with a delay between them, ending either
//! cleanly or with an error that makes hyper abort the connection (a truncated response on the wire).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Sleep, sleep};

use crate::reply::BodyEnd;

/// Shortest pause before an abort, so frames already written are flushed to the socket first.
const ABORT_PAUSE: Duration = Duration::from_millis(5);

/// A paced, possibly aborting, response body.
#[derive(Debug)]
pub(crate) struct FakeBody {
    frames: VecDeque<Bytes>,
    delay: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    started: bool,
    /// The pause owed before the next action has elapsed.
    paused: bool,
    end: BodyEnd,
    /// Whether the length is announced up front (`content-length`) instead of chunked.
    exact: bool,
    finished: bool,
}

impl FakeBody {
    /// A body written in one go with a `content-length`.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self::paced(vec![bytes], Duration::ZERO, BodyEnd::Clean, true)
    }

    pub(crate) fn empty() -> Self {
        Self::paced(Vec::new(), Duration::ZERO, BodyEnd::Clean, true)
    }

    /// Frames written one by one, `delay` apart (the first right away), then `end`.
    pub(crate) fn paced(frames: Vec<Bytes>, delay: Duration, end: BodyEnd, exact: bool) -> Self {
        Self {
            frames: frames.into(),
            delay,
            pause: None,
            started: false,
            paused: false,
            end,
            exact: exact && end == BodyEnd::Clean,
            finished: false,
        }
    }

    fn remaining_len(&self) -> u64 {
        self.frames.iter().map(|f| f.len() as u64).sum()
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
                this.paused = true;
            }
            let more = !this.frames.is_empty();
            let want_pause = if more {
                this.started && !this.delay.is_zero()
            } else {
                this.end == BodyEnd::Abort
            };
            if want_pause && !this.paused {
                let wait = if more {
                    this.delay
                } else {
                    this.delay.max(ABORT_PAUSE)
                };
                this.pause = Some(Box::pin(sleep(wait)));
                continue;
            }
            this.paused = false;
            return match this.frames.pop_front() {
                Some(frame) => {
                    this.started = true;
                    Poll::Ready(Some(Ok(Frame::data(frame))))
                }
                None => {
                    this.finished = true;
                    match this.end {
                        BodyEnd::Clean => Poll::Ready(None),
                        BodyEnd::Abort => Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "fake: connection dropped mid-stream",
                        )))),
                    }
                }
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || (self.frames.is_empty() && self.end == BodyEnd::Clean)
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining_len())
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn paced_frames_then_clean_end() {
        let body = FakeBody::paced(
            vec![Bytes::from("a"), Bytes::from("b")],
            Duration::from_millis(1),
            BodyEnd::Clean,
            false,
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"ab");
    }

    #[tokio::test]
    async fn abort_yields_error_after_frames() {
        let mut body =
            FakeBody::paced(vec![Bytes::from("a")], Duration::ZERO, BodyEnd::Abort, true);
        assert_eq!(body.size_hint().exact(), None);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn full_body_has_exact_length() {
        let body = FakeBody::full(Bytes::from("hello"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(FakeBody::empty().is_end_stream());
    }
}
