//! A connection's read buffer: bytes read and not consumed yet, in one allocation that is
//! given back while the connection is idle (memory per idle connection).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Room for the first read into an empty buffer: a usual request head, or a small answer
/// with its head (nginx's `client_header_buffer_size` is 1 KiB). An idle connection waiting
/// for its next request holds no more.
const FIRST_ROOM: usize = 1024;
/// Room for the reads after it: large heads and bodies move in few reads.
const READ_ROOM: usize = 16 * 1024;
/// Below this much free room the buffer is compacted or grown before reading.
const MIN_ROOM: usize = 2 * 1024;

/// Bytes read from one connection; `data` is what is not consumed yet.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
}

impl Buffer {
    /// The bytes read and not consumed yet.
    pub(super) fn data(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// True when nothing read is left to consume.
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    /// Marks the first `n` bytes of [`Buffer::data`] consumed.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.is_empty() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// Reads once from `io`, appending to the data: the number of bytes read (0 at the end
    /// of the stream).
    pub(super) async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.bytes.capacity() - self.bytes.len() < MIN_ROOM {
            if self.start > 0 {
                self.bytes.drain(..self.start);
                self.start = 0;
            }
            if self.bytes.capacity() - self.bytes.len() < MIN_ROOM {
                let room = if self.bytes.capacity() == 0 { FIRST_ROOM } else { READ_ROOM };
                self.bytes.reserve(room);
            }
        }
        io.read_buf(&mut self.bytes).await
    }

    /// Gives the allocation back when nothing is left in it (an idle connection).
    pub(super) fn release(&mut self) {
        if self.is_empty() {
            self.bytes = Vec::new();
        }
    }

    /// The bytes not consumed yet, for another reader of the same stream.
    pub(super) fn into_rest(mut self) -> Vec<u8> {
        self.bytes.drain(..self.start);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_consumes_and_hands_on_the_rest() {
        let mut buffer = Buffer::default();
        let mut source: &[u8] = b"hello world";
        assert_eq!(buffer.fill(&mut source).await.unwrap(), 11);
        buffer.consume(6);
        assert_eq!(buffer.data(), b"world");
        buffer.release();
        assert_eq!(buffer.data(), b"world", "bytes left are kept");
        buffer.consume(5);
        assert!(buffer.is_empty());
        buffer.release();
        assert_eq!(buffer.bytes.capacity(), 0, "an idle buffer holds no memory");
        let mut source: &[u8] = b"abc";
        buffer.fill(&mut source).await.unwrap();
        buffer.consume(1);
        assert_eq!(buffer.into_rest(), b"bc");
    }
}
