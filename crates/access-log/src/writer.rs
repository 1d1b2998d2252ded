//! Where formatted lines wait for the writer thread: one buffer per worker thread, so a
//! request appends its line under a lock nobody else takes (except the writer, when it
//! flushes) and allocates nothing once the buffer has grown. The writer swaps each buffer for
//! an empty one and writes it in one call, as nginx's `buffer=`/`flush=` do; a worker never
//! waits for stdout, and never wakes the writer: the writer wakes on its own, often enough
//! for writes of tens of KiB (copied out while still in cache), at most every
//! [`FLUSH_EVERY`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use thread_local::ThreadLocal;

/// The longest the writer waits between two flushes: lines appear at most this late.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// The shortest it waits, under heavy logging.
const FLUSH_AT_MOST_EVERY: Duration = Duration::from_millis(1);
/// The writer aims at writes of this size: it waits less when a flush wrote more (a write
/// still in cache, copied out before it evicts the proxy's own data), longer when less (few
/// wake-ups when traffic is light).
const TARGET_WRITE: std::ops::Range<usize> = 16 * 1024..64 * 1024;
/// A thread's buffer holds at most this much between two flushes; lines past it are
/// dropped and counted (stdout is not keeping up), never buffered without bound.
const LIMIT: usize = 8 * 1024 * 1024;
/// A buffer that grew past this (a burst) is given back after its flush. Below it, buffers
/// keep their capacity from turn to turn: shrinking and growing them again would have the
/// allocator fault in and clear fresh pages on the request path.
const KEEP: usize = 4 * 1024 * 1024;

/// The per-thread buffers and the output they are written to.
pub(crate) struct Buffers {
    local: ThreadLocal<Mutex<Vec<u8>>>,
    out: Mutex<Output>,
    /// The output failed: nothing more is buffered.
    closed: AtomicBool,
    dropped: Counter,
}

struct Output {
    writer: Box<dyn Write + Send>,
    /// An empty buffer, swapped with a full one on each flush.
    spare: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Buffers {
    /// Buffers written to `writer` by a thread of their own (at least every [`FLUSH_EVERY`],
    /// more often as logging gets heavier) until the last handle other than the thread's is
    /// dropped; lines that do not fit are counted in `dropped`.
    pub(crate) fn start(writer: Box<dyn Write + Send>, dropped: Counter) -> Arc<Self> {
        let buffers = Arc::new(Self::new(writer, dropped));
        let flushed = Arc::clone(&buffers);
        let spawned = std::thread::Builder::new().name("sluice-access-log".into()).spawn(move || {
            let mut pause = FLUSH_EVERY;
            loop {
                std::thread::sleep(pause);
                let wrote = flushed.flush();
                pause = next_pause(pause, wrote);
                if Arc::strong_count(&flushed) == 1 || flushed.closed.load(Ordering::Relaxed) {
                    // Every handle is gone (and a line queued before that is written) or the
                    // output is broken.
                    flushed.flush();
                    return;
                }
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the access log writer; access logs are off");
            buffers.closed.store(true, Ordering::Relaxed);
        }
        buffers
    }

    /// Buffers flushed only when asked.
    fn new(writer: Box<dyn Write + Send>, dropped: Counter) -> Self {
        Self {
            local: ThreadLocal::new(),
            out: Mutex::new(Output { writer, spare: Vec::new() }),
            closed: AtomicBool::new(false),
            dropped,
        }
    }

    /// Appends one line, formatted by `format` straight into this thread's buffer.
    pub(crate) fn append(&self, format: impl FnOnce(&mut Vec<u8>)) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut buffer = lock(self.local.get_or(|| Mutex::new(Vec::new())));
        if buffer.len() >= LIMIT {
            drop(buffer);
            self.dropped.inc();
            return;
        }
        format(&mut buffer);
    }

    /// Writes every thread's buffered lines now; returns how many bytes that was.
    pub(crate) fn flush(&self) -> usize {
        let mut out = lock(&self.out);
        let mut wrote = 0;
        let Output { writer, spare } = &mut *out;
        for local in self.local.iter() {
            {
                let mut buffer = lock(local);
                if buffer.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buffer, spare);
            }
            wrote += spare.len();
            if writer.write_all(spare).and_then(|()| writer.flush()).is_err() {
                // stdout is gone: nothing more can be logged.
                self.closed.store(true, Ordering::Relaxed);
            }
            spare.clear();
            if spare.capacity() > KEEP {
                spare.shrink_to(KEEP);
            }
        }
        wrote
    }
}

/// The wait before the next flush, after one that wrote `wrote` bytes following `pause`.
fn next_pause(pause: Duration, wrote: usize) -> Duration {
    if wrote > TARGET_WRITE.end {
        (pause / 2).max(FLUSH_AT_MOST_EVERY)
    } else if wrote < TARGET_WRITE.start {
        (pause * 2).min(FLUSH_EVERY)
    } else {
        pause
    }
}

/// A writer tests can read back (the crate's tests share it).
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_every_thread_are_written_whole() {
        let out = Shared::default();
        let buffers = Buffers::new(Box::new(out.clone()), Counter::default());
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let buffers = &buffers;
                scope.spawn(move || {
                    for line in 0..100 {
                        buffers.append(|b| b.extend_from_slice(format!("{thread} {line}\n").as_bytes()));
                    }
                });
            }
        });
        buffers.flush();
        let text = String::from_utf8(lock(&out.0).clone()).unwrap();
        assert_eq!(text.lines().count(), 400);
        assert!(text.lines().all(|l| l.split(' ').count() == 2));
    }

    #[test]
    fn the_writer_thread_flushes_on_its_own_and_after_the_last_handle() {
        let out = Shared::default();
        let buffers = Buffers::start(Box::new(out.clone()), Counter::default());
        buffers.append(|b| b.extend_from_slice(b"first\n"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&out.0).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(&*lock(&out.0), b"first\n");
        buffers.append(|b| b.extend_from_slice(b"last\n"));
        drop(buffers);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&out.0).len() < 11 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(&*lock(&out.0), b"first\nlast\n");
    }

    #[test]
    fn the_writer_waits_less_as_logging_gets_heavier() {
        let mut pause = FLUSH_EVERY;
        for _ in 0..10 {
            pause = next_pause(pause, 1 << 20);
        }
        assert_eq!(pause, FLUSH_AT_MOST_EVERY);
        assert_eq!(next_pause(pause, 32 * 1024), pause);
        for _ in 0..10 {
            pause = next_pause(pause, 0);
        }
        assert_eq!(pause, FLUSH_EVERY);
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let out = Shared::default();
        let dropped = Counter::default();
        let buffers = Buffers::new(Box::new(out.clone()), dropped.clone());
        let big = vec![b'x'; LIMIT];
        buffers.append(|b| b.extend_from_slice(&big));
        buffers.append(|b| b.extend_from_slice(b"lost\n"));
        assert_eq!(dropped.get(), 1);
        buffers.flush();
        assert_eq!(lock(&out.0).len(), LIMIT);
    }

    #[test]
    fn a_broken_output_stops_buffering() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffers = Buffers::new(Box::new(Broken), Counter::default());
        buffers.append(|b| b.extend_from_slice(b"x\n"));
        buffers.flush();
        buffers.append(|b| b.extend_from_slice(b"y\n"));
        assert!(buffers.local.iter().all(|b| lock(b).is_empty()));
    }
}
