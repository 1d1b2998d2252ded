//! TCP: accept, connect to an endpoint with retries, optional PROXY header, relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::plane::Current;
use crate::proxy_protocol;
use crate::relay::{relay, Ended, Tally};
use sluice_access_log::StreamEntry;

/// Most endpoints tried for one client connection.
const MAX_ATTEMPTS: usize = 3;
/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an accept error such as EMFILE, so a full descriptor table does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections forever (the plane aborts this task to stop accepting); each one is
/// served on its own task with the listener configuration current at accept time.
pub(crate) async fn accept_loop(listener: TcpListener, current: Arc<ArcSwap<Current>>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let state = current.load_full();
                if !state.config.admits(peer.ip()) {
                    // Outside spec.loadBalancerSourceRanges: closed before any byte is read.
                    state.metrics.refused.inc();
                    tracing::debug!(client = %peer, service = %state.config.service, "l4: client outside the source ranges");
                    continue;
                }
                tokio::spawn(serve(client, peer, state));
            }
            Err(error) => {
                let state = current.load();
                tracing::warn!(
                    address = %state.config.address,
                    service = %state.config.service,
                    %error,
                    "l4: accepting a TCP connection failed"
                );
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one client connection to its end.
async fn serve(client: TcpStream, peer: SocketAddr, state: Arc<Current>) {
    let _active = state.metrics.opened();
    let _ = client.set_nodelay(true);
    let (started, since) = (std::time::SystemTime::now(), std::time::Instant::now());
    let (rx, tx) = (Tally::new(&state.metrics.rx), Tally::new(&state.metrics.tx));
    let mut endpoint = None;
    serve_connection(&client, peer, &state, (&rx, &tx), &mut endpoint).await;
    if state.log.enabled() {
        state.log.write_stream(&StreamEntry {
            time: started,
            protocol: "TCP",
            client: peer,
            listener: state.config.address,
            service: format!("{}/{}", state.config.service.namespace, state.config.service.name).into(),
            upstream: endpoint,
            bytes_in: rx.total(),
            bytes_out: tx.total(),
            duration: since.elapsed(),
        });
    }
}

async fn serve_connection(
    client: &TcpStream,
    peer: SocketAddr,
    state: &Current,
    tallies: (&Tally<'_>, &Tally<'_>),
    endpoint: &mut Option<SocketAddr>,
) {
    let Some(mut upstream) = connect(state).await else {
        tracing::debug!(
            client = %peer,
            backend = %state.config.backends.label(),
            "l4: no endpoint reachable; closing the client connection"
        );
        return;
    };
    *endpoint = upstream.peer_addr().ok();
    if let Some(version) = state.config.proxy_protocol {
        let destination = client.local_addr().unwrap_or(state.config.address);
        let header = proxy_protocol::header(version, peer, destination);
        if let Err(error) = upstream.write_all(&header).await {
            tracing::debug!(client = %peer, %error, "l4: writing the PROXY header failed");
            return;
        }
    }
    match relay(client, &upstream, state.config.idle_timeout, tallies).await {
        Ok(Ended::Closed) => {}
        Ok(Ended::Idle) => tracing::debug!(client = %peer, "l4: idle TCP connection closed"),
        Err(error) => tracing::debug!(client = %peer, %error, "l4: TCP connection failed"),
    }
}

/// Connects to the next endpoints round-robin, trying up to [`MAX_ATTEMPTS`] distinct ones.
async fn connect(state: &Current) -> Option<TcpStream> {
    let backends = &state.config.backends;
    for _ in 0..backends.endpoint_count().min(MAX_ATTEMPTS) {
        let endpoint = backends.pick()?;
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Ok(Err(error)) => {
                tracing::debug!(%endpoint, %error, "l4: connecting to an endpoint failed");
            }
            Err(_) => tracing::debug!(%endpoint, "l4: connecting to an endpoint timed out"),
        }
        backends.connect_failed(endpoint);
        state.metrics.connect_failures.inc();
    }
    None
}
