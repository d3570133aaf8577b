//! Small Linux system calls the radio layer needs and std lacks: larger UDP socket buffers
//! (a modem must absorb scheduling hiccups without overflow) and joining a network
//! namespace from a thread (so the testbed can give each radio and host its own stack).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Asks the kernel for `bytes` of receive and send buffer on `sock` (capped by
/// net.core.rmem_max / wmem_max; the effective size is returned).
pub fn set_socket_buffers(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let v: libc::c_int = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: valid fd, pointer to a c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, out-pointers to a c_int and its length.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// Moves the calling thread into the network namespace `/var/run/netns/NAME` (as created
/// by `ip netns add NAME`). Sockets the thread creates afterwards live in that namespace.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.contains('/') || name.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad namespace name"));
    }
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: valid fd of a namespace file; affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
