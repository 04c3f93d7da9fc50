//! The HTTP connection loop beneath the router: at most `max_connections` connections at
//! once, and no connection kept by a client that stops talking.
//!
//! A connection is in one of three phases, and the timer that applies depends on it:
//! - idle (no request in progress, no byte of the next one yet): closed after the idle
//!   timeout;
//! - reading a request head (its first byte arrived, the head is not complete): closed when
//!   the head is not complete within the header-read timeout of its first byte, however
//!   slowly bytes trickle in;
//! - serving a request: no connection timer; the request body must arrive within the body
//!   timeout (a layer of the router, which answers 408), and the handler runs to the end.
//!
//! Beyond the connection limit, new connections wait in the kernel's accept queue until a
//! connection ends; since silent ones end after the timeouts above, idle sockets can delay
//! a new client but never lock it out.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long connections may take and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection with no request in progress and no byte of a new one is closed after this.
    pub idle_timeout: Duration,
    /// A request head must be complete within this long of its first byte.
    pub header_read_timeout: Duration,
    /// Most connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` completes; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head timeout is this module's own (it starts at the first byte, not when the
    // server begins waiting, so it does not double as an idle timeout).
    builder.http1().header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a little rather than spin, and keep serving.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedStream::new(stream, Arc::clone(&activity), limits));
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            let in_flight = InFlight::begin(Arc::clone(&activity));
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            async move {
                let response = match app.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(TrackedBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let connection = builder.serve_connection(io, service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %remote, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What one connection is doing, shared by its stream and its requests.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    head_started: Option<Instant>,
    /// The connection's reader, parked without a deadline while a request was served:
    /// woken when the connection turns idle, so the idle timer starts.
    parked_reader: Option<Waker>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                parked_reader: None,
            }),
        }
    }

    fn with<T>(&self, change: impl FnOnce(&mut ActivityState) -> T) -> T {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut state)
    }

    fn bytes_read(&self) {
        self.with(|state| {
            if state.in_flight == 0 && state.head_started.is_none() {
                state.head_started = Some(Instant::now());
            }
        });
    }

    /// When the connection is to be closed if nothing changes, or `None` while serving (the
    /// reader is then parked until the connection turns idle).
    fn deadline(&self, limits: &ConnectionLimits, reader: &Waker) -> Option<Instant> {
        self.with(|state| match (state.in_flight, state.head_started) {
            (0, Some(started)) => Some(started + limits.header_read_timeout),
            (0, None) => Some(state.idle_since + limits.idle_timeout),
            _ => {
                state.parked_reader = Some(reader.clone());
                None
            }
        })
    }
}

/// A request being served on a connection: from its complete head until its response body
/// has been sent (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.with(|state| {
            state.in_flight += 1;
            state.head_started = None;
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
                state.head_started = None;
                if let Some(reader) = state.parked_reader.take() {
                    reader.wake();
                }
            }
        });
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream whose reads fail with `TimedOut` once the connection's deadline passes.
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
}

impl WatchedStream {
    fn new(inner: TcpStream, activity: Arc<Activity>, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            activity,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
        }
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => {}
        }
        let Some(deadline) = this.activity.deadline(&this.limits, cx.waker()) else {
            return Poll::Pending;
        };
        if this.armed_for != Some(deadline) {
            this.timer.as_mut().reset(deadline);
            this.armed_for = Some(deadline);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client sent nothing in time",
            )));
        }
        Poll::Pending
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
