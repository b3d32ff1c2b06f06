//! Serving a router on a TCP port with the limits a port open to callers needs: a deadline
//! for each request's headers (which also closes idle keep-alive connections), a cap on
//! open connections and on header size, and a graceful shutdown with a deadline.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::error::{Error, Result};

/// Default time a connection may take to send a request's headers, and may stay idle
/// between requests.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of connections open at once; further callers wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default buffer for a request's headers: 64 KiB (larger headers are refused with 431).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default time requests in flight get to finish once shutdown starts.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How [`serve`] treats connections. Every setting is checked where it is given.
///
/// ```
/// use std::time::Duration;
/// use mlops_infer::serve::ServerSettings;
///
/// let settings = ServerSettings::new().header_read_timeout(Duration::from_secs(5))?.max_connections(256)?;
/// assert!(ServerSettings::new().header_read_timeout(Duration::ZERO).is_err());
/// # Ok::<(), mlops_infer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerSettings {
    header_read_timeout: Duration,
    max_connections: usize,
    max_header_bytes: usize,
    shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSettings {
    /// [`DEFAULT_HEADER_READ_TIMEOUT`], [`DEFAULT_MAX_CONNECTIONS`],
    /// [`DEFAULT_MAX_HEADER_BYTES`] and [`DEFAULT_SHUTDOWN_GRACE`].
    pub fn new() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// Closes a connection that has not sent a whole request head within `timeout` of
    /// opening or of its previous answer (slow headers and idle keep-alive alike).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout.is_zero() {
            return Err(Error::InvalidArgument("the header read timeout must be longer than zero".into()));
        }
        self.header_read_timeout = timeout;
        Ok(self)
    }

    /// Keeps at most `connections` open; the next caller is accepted when one closes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0, or more than `u32::MAX`.
    pub fn max_connections(mut self, connections: usize) -> Result<Self> {
        if connections == 0 || u32::try_from(connections).is_err() {
            return Err(Error::InvalidArgument(format!("{connections} is not a usable connection limit")));
        }
        self.max_connections = connections;
        Ok(self)
    }

    /// Refuses a request whose head (request line and headers) is over `bytes`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] under 8 KiB, the least the HTTP parser takes.
    pub fn max_header_bytes(mut self, bytes: usize) -> Result<Self> {
        if bytes < 8192 {
            return Err(Error::InvalidArgument(format!("a header limit of {bytes} bytes is under 8 KiB")));
        }
        self.max_header_bytes = bytes;
        Ok(self)
    }

    /// After shutdown starts, waits at most `grace` for requests in flight, then closes
    /// what is left.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Serves `router` (HTTP/1.1) on `listener` with `settings` until `shutdown` completes,
/// then stops accepting, lets requests in flight finish within the shutdown grace, and
/// returns.
///
/// ```no_run
/// # async fn run(live: mlops_registry::LiveModel) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use mlops_infer::serve::{ModelServer, ServerSettings, serve};
///
/// let app = ModelServer::new().endpoint("transactions", Arc::new(live))?.router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let shutdown = std::future::pending(); // a signal handler, in a real service
/// serve(listener, app, ServerSettings::new(), shutdown).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// Never for a caller's misbehaviour: a connection that fails is closed and the others go
/// on; an accept error other than a dropped connection (too many open files, say) pauses
/// accepting for a second. The `io::Result` is for the listener itself.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true);
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    if !matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|stopping| *stopping) => connection.as_mut().graceful_shutdown(),
            }
            // Finishes the request in flight; the sender dropped (the grace is over) closes it.
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {}
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection task holds a permit until it ends: all permits back means all done.
    let everyone = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(settings.shutdown_grace, connections.acquire_many(everyone)).await;
    // Dropping the sender closes the connections still open.
    drop(stopping);
    Ok(())
}
