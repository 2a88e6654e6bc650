//! Every connection's deadline, whatever it is doing, so that no peer holds one by being
//! slow or silent. The phases, and what ends each:
//!
//! - **waiting for a request head**: on a new connection, `HEADER_READ_TIMEOUT` from the
//!   accept; between requests, `IDLE_TIMEOUT` of silence, then `HEADER_READ_TIMEOUT` from
//!   the first byte of the next head. A head trickled a byte at a time ends with the
//!   connection all the same (hyper's own header timer starts only when it looks for a
//!   head, and would also cut idle keep-alive connections at the header deadline).
//! - **serving a request** (from the parsed head until its response is written): the body
//!   has its own deadline (`BODY_READ_TIMEOUT`, `routes/admission.rs`, answered 408) and the
//!   handler its `REQUEST_TIMEOUT`; here only a connection on which nothing moves, either
//!   way, for `IDLE_TIMEOUT` is closed (a peer that stopped reading our answer).
//!
//! [`TimedIo`] enforces it on the socket: a read or write that would wait past the
//! deadline fails with `TimedOut`, and hyper closes the connection.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::body::{Body, Bytes};
use http_body::Frame;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

/// The timeouts of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    AwaitingHead {
        since: Instant,
        first_byte: Option<Instant>,
        first_request: bool,
    },
    Serving {
        last_progress: Instant,
    },
}

/// Where one connection stands, shared by its socket ([`TimedIo`]) and its service.
#[derive(Debug)]
pub struct ConnectionClock {
    timeouts: Timeouts,
    phase: Mutex<Phase>,
}

impl ConnectionClock {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            timeouts,
            phase: Mutex::new(Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
                first_request: true,
            }),
        })
    }

    fn update(&self, change: impl FnOnce(&mut Phase)) {
        // A poisoned lock only means a panic elsewhere mid-update; the phase is still a phase.
        change(&mut self.phase.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Hyper parsed a head and calls the service.
    pub fn request_started(&self) {
        self.update(|phase| {
            *phase = Phase::Serving {
                last_progress: Instant::now(),
            };
        });
    }

    /// The response is written (its body dropped): wait for the next head.
    pub fn response_finished(&self) {
        self.update(|phase| {
            *phase = Phase::AwaitingHead {
                since: Instant::now(),
                first_byte: None,
                first_request: false,
            };
        });
    }

    fn bytes_moved(&self) {
        let now = Instant::now();
        self.update(|phase| match phase {
            Phase::AwaitingHead { first_byte, .. } => {
                first_byte.get_or_insert(now);
            }
            Phase::Serving { last_progress } => *last_progress = now,
        });
    }

    fn deadline(&self) -> Instant {
        let Timeouts { header_read, idle } = self.timeouts;
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::AwaitingHead {
                first_byte: Some(first),
                ..
            } => first + header_read,
            Phase::AwaitingHead {
                since,
                first_request: true,
                ..
            } => since + header_read,
            Phase::AwaitingHead { since, .. } => since + idle,
            Phase::Serving { last_progress } => last_progress + idle,
        }
    }
}

/// A socket whose reads and writes fail with `TimedOut` once they would wait past the
/// connection's deadline.
pub struct TimedIo {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
    timer: Pin<Box<Sleep>>,
}

impl TimedIo {
    pub fn new(stream: TcpStream, clock: Arc<ConnectionClock>) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(clock.deadline()));
        Self {
            stream,
            clock,
            timer,
        }
    }

    /// Called when the socket is not ready: waits on the deadline, so the task wakes when
    /// it passes, and fails the operation then.
    fn wait_or_expire<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let deadline = self.clock.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        ready!(self.timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer held the connection past its deadline",
        )))
    }

    /// What a write returned: bytes written move the clock on; not ready waits on it.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.clock.bytes_moved();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.wait_or_expire(cx),
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.wait_or_expire(cx),
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A response body that tells the clock when hyper is done with it (written, or dropped
/// with the connection).
pub struct TrackedBody {
    body: Body,
    clock: Arc<ConnectionClock>,
}

impl TrackedBody {
    pub fn new(body: Body, clock: Arc<ConnectionClock>) -> Self {
        Self { body, clock }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.clock.response_finished();
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
