//! Graceful shutdown: stop accepting, let in-flight requests and tunnels finish.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Tracks every connection and tunnel task so shutdown can wait for them, and tells them
/// when to finish.
#[derive(Debug)]
pub(crate) struct Drain {
    stop: watch::Sender<bool>,
    tasks: TaskTracker,
}

impl Drain {
    pub(crate) fn new() -> Self {
        Self { stop: watch::Sender::new(false), tasks: TaskTracker::new() }
    }

    /// Runs `task` as a tracked task.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.subscribe();
        async move {
            // An error means the sender is gone: the process is ending anyway.
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
    }

    /// Whether shutdown has begun (the value turns true), for a connection that checks
    /// between requests rather than waiting on [`Drain::stopping`].
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Begins shutdown and waits up to `timeout` for tracked tasks; true if all finished.
    pub(crate) async fn shutdown(&self, timeout: Duration) -> bool {
        self.stop.send_replace(true);
        self.tasks.close();
        tokio::time::timeout(timeout, self.tasks.wait()).await.is_ok()
    }
}
