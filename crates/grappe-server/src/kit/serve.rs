//! Serving HTTP/1.1 with limits that an anonymous client cannot outlast: a connection must
//! send a request's headers within `header_read` (which also closes an idle keep-alive
//! connection), a request must be answered within `request` (the time to the response's head;
//! a streamed body goes on), at most `per_client` connections at once from one address (not
//! applied behind a trusted proxy, whose address all clients share) and `total` in all. A
//! connection past a cap is closed at once, before anything is read. On shutdown, connections
//! finish their requests for up to `drain`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The limits, from the server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read: Duration,
    pub request: Duration,
    pub per_client: usize,
    pub total: usize,
    /// Behind a trusted proxy every connection comes from it: no per-client cap here.
    pub per_client_applies: bool,
    pub drain: Duration,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One open connection, counted until it is dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    client: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Mutex<Counts>>, client: IpAddr, limits: &HttpLimits) -> Option<Slot> {
        let mut guard = counts.lock().ok()?;
        let mine = guard.by_client.get(&client).copied().unwrap_or(0);
        if guard.total >= limits.total || (limits.per_client_applies && mine >= limits.per_client) {
            return None;
        }
        guard.total += 1;
        *guard.by_client.entry(client).or_default() += 1;
        Some(Slot { counts: counts.clone(), client })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.counts.lock() {
            guard.total = guard.total.saturating_sub(1);
            if let Some(count) = guard.by_client.get_mut(&self.client) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    guard.by_client.remove(&self.client);
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets connections drain.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&counts, peer.ip(), &limits) else {
            tracing::debug!(client = %peer.ip(), "connection refused: too many open");
            continue;
        };
        // Small writes (a stream's events, a log's lines) leave at once: with Nagle's algorithm
        // and the client's delayed acknowledgements, each streamed answer waited about 40 ms.
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .max_headers(100)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => tracing::warn!("connections still open after the drain time: closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_client_and_in_all_and_given_back() {
        let limits = HttpLimits {
            header_read: Duration::from_secs(1),
            request: Duration::from_secs(1),
            per_client: 2,
            total: 3,
            per_client_applies: true,
            drain: Duration::from_secs(1),
        };
        let counts = Arc::new(Mutex::new(Counts::default()));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = Slot::take(&counts, a, &limits).unwrap();
        let _second = Slot::take(&counts, a, &limits).unwrap();
        assert!(Slot::take(&counts, a, &limits).is_none(), "per client");
        let _third = Slot::take(&counts, b, &limits).unwrap();
        assert!(Slot::take(&counts, b, &limits).is_none(), "in all");
        drop(first);
        assert!(Slot::take(&counts, a, &limits).is_some(), "given back");
        let behind_proxy = HttpLimits { per_client_applies: false, total: 10, ..limits };
        let many: Vec<Slot> = (0..5).filter_map(|_| Slot::take(&counts, b, &behind_proxy)).collect();
        assert_eq!(many.len(), 5);
    }
}
