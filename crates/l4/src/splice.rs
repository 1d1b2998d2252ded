//! Zero-copy copying between two TCP sockets with `splice(2)` through a pipe (Linux).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::idle::Activity;

/// Most bytes moved per `splice` call: the default pipe capacity.
const CHUNK: usize = 64 * 1024;

/// A non-blocking pipe, closed on drop.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        Ok(unsafe { Self { read: OwnedFd::from_raw_fd(fds[0]), write: OwnedFd::from_raw_fd(fds[1]) } })
    }
}

/// One non-blocking `splice` call.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (borrowed from live
    // sockets and an owned pipe); null offsets mean "current position", as required for
    // sockets and pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Errors meaning splice cannot be used for these descriptors at all.
fn unsupported(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP))
}

/// Copies from `src` to `dst` until `src` reaches end of stream, counting bytes written.
///
/// Returns `Ok(false)` without having moved anything when splice is unavailable (no pipe,
/// or the kernel rejects splicing these sockets): the caller then copies through a buffer.
/// The pipe is always emptied into `dst` before the next read from `src`, so a `WouldBlock`
/// from a read means `src` has no data and one from a write means `dst` is full: readiness is
/// cleared for the right socket.
pub(crate) async fn copy(
    src: &TcpStream,
    dst: &TcpStream,
    counter: &crate::relay::Tally<'_>,
    activity: &Activity,
) -> io::Result<bool> {
    let Ok(pipe) = Pipe::new() else {
        return Ok(false);
    };
    let mut first = true;
    loop {
        src.readable().await?;
        let read = src.try_io(Interest::READABLE, || splice(src.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK));
        let mut in_pipe = match read {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if first && unsupported(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        first = false;
        activity.touch();
        while in_pipe > 0 {
            dst.writable().await?;
            let written = dst.try_io(Interest::WRITABLE, || splice(pipe.read.as_raw_fd(), dst.as_raw_fd(), in_pipe));
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    in_pipe = in_pipe.saturating_sub(n);
                    counter.add(n as u64);
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}
