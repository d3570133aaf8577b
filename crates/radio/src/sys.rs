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
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad namespace name",
        ));
    }
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: valid fd of a namespace file; affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `sock` is readable or `timeout` passes (precise to the scheduler, unlike
/// SO_RCVTIMEO, which rounds up to whole jiffies of 4 ms or more). Returns readability.
pub fn wait_readable(sock: &UdpSocket, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    match r {
        r if r < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}
