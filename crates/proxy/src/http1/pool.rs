//! Idle connections to HTTP/1.1 backends for the proxy-native path: plain TCP streams by
//! endpoint, most recently used first, per worker thread. A client connection holds its
//! backend connection while it keeps sending requests, and parks it here when it goes idle.

use std::net::SocketAddr;
use std::sync::Mutex;

use foldhash::HashMap;
use tokio::net::TcpStream;

use crate::per_worker::PerWorker;

/// Most idle connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 512;

/// Idle backend connections, by worker and endpoint.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: PerWorker<Mutex<HashMap<SocketAddr, Vec<TcpStream>>>>,
}

impl Pool {
    /// The most recently parked connection to `endpoint`. With `probe`, connections the
    /// backend has closed (or sent bytes on) meanwhile are dropped first: for requests
    /// whose body could not be sent again.
    pub(super) fn take(&self, endpoint: SocketAddr, probe: bool) -> Option<TcpStream> {
        self.idle.local_first().find_map(|share| {
            let mut idle = share.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let streams = idle.get_mut(&endpoint)?;
            while let Some(stream) = streams.pop() {
                if !probe || is_quiet(&stream) {
                    return Some(stream);
                }
            }
            idle.remove(&endpoint);
            None
        })
    }

    /// Parks a connection whose last response is complete and which has nothing unread.
    pub(super) fn put(&self, endpoint: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.local().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let streams = idle.entry(endpoint).or_default();
        if streams.len() < MAX_IDLE_PER_ENDPOINT {
            streams.push(stream);
        }
    }
}

/// True when nothing is waiting to be read on `stream`: neither bytes nor its end.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn probing_drops_connections_the_backend_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap();
        let pool = Pool::default();
        let first = TcpStream::connect(endpoint).await.unwrap();
        let (mut closed_by_backend, _) = listener.accept().await.unwrap();
        let second = TcpStream::connect(endpoint).await.unwrap();
        let (_kept, _) = listener.accept().await.unwrap();
        pool.put(endpoint, second);
        pool.put(endpoint, first);
        closed_by_backend.shutdown().await.unwrap();
        drop(closed_by_backend);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let taken = pool.take(endpoint, true).expect("the open connection");
        assert!(is_quiet(&taken));
        assert!(pool.take(endpoint, true).is_none());
        pool.put(endpoint, taken);
        assert!(pool.take(endpoint, false).is_some());
    }
}
