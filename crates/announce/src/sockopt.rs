//! The socket options that socket2 has no setter for (packet and ICMPv6 options).

use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

/// `setsockopt(level, name, value)`; `T` is the plain C value the option expects (`c_int`,
/// an array of `u32`, ...).
pub(crate) fn set<T: Copy>(socket: &Socket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let length = libc::socklen_t::try_from(size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` points to a live `T` of `length` bytes for the whole call, the kernel
    // only reads it, and the descriptor belongs to `socket`.
    let result = unsafe { libc::setsockopt(socket.as_raw_fd(), level, name, (value as *const T).cast(), length) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
