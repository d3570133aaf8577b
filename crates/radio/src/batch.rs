//! Batched UDP IO for the air and the radio head: many datagrams per system call
//! (`sendmmsg(2)` / `recvmmsg(2)`). At 30.72 Msps a radio streams ~85 000 packets a second
//! each way with 1500-byte frames; one `sendto`/`recvfrom` per packet spends most of the
//! air's thread in system-call entry and exit. Neither std nor the kept socket crates
//! (socket2, already in the tree through tokio) wrap these two calls, so they are called
//! through `libc` here, in one small module with the address conversions they need.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams handed to the kernel per call (bounded so the arrays live on the stack).
pub const BATCH: usize = 32;

fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut st: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (st, len as libc::socklen_t)
}

fn from_raw(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(st.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family says so) into the storage.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((st as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                sin.sin_addr.s_addr.to_ne_bytes().into(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((st as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends every `(datagram, destination)` of `packets` on the non-blocking `sock` in batches
/// of up to [`BATCH`] per `sendmmsg` call. A datagram the kernel refuses (its send buffer
/// full: `WouldBlock`; an unreachable destination) is reported to `refused` with its index
/// and skipped; the rest are still sent, as one `send_to` each would. Returns how many
/// were sent.
pub fn send_batch(
    sock: &UdpSocket,
    packets: &[(&[u8], SocketAddr)],
    mut refused: impl FnMut(usize, io::Error),
) -> usize {
    let fd = sock.as_raw_fd();
    let mut sent = 0;
    for (base, chunk) in packets.chunks(BATCH).enumerate() {
        let base = base * BATCH;
        let mut addrs: [(libc::sockaddr_storage, libc::socklen_t); BATCH] =
            // SAFETY: all-zero storage/length pairs are valid values.
            unsafe { zeroed() };
        // SAFETY: all-zero iovecs and mmsghdrs are valid (null pointers, zero lengths);
        // every used entry is filled in below before the call.
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (k, (bytes, to)) in chunk.iter().enumerate() {
            addrs[k] = to_raw(to);
            iov[k] = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
        }
        for k in 0..chunk.len() {
            hdrs[k].msg_hdr.msg_name = (&mut addrs[k].0 as *mut libc::sockaddr_storage).cast();
            hdrs[k].msg_hdr.msg_namelen = addrs[k].1;
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        let mut i = 0;
        while i < chunk.len() {
            // SAFETY: hdrs[i..len] point into addrs/iov (alive for this scope) and into
            // the caller's datagrams (borrowed for the call); the kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[i..].as_mut_ptr(),
                    (chunk.len() - i) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram of the remaining batch failed: report it, go on.
                refused(base + i, e);
                i += 1;
            } else if r == 0 {
                refused(base + i, io::ErrorKind::WriteZero.into());
                i += 1;
            } else {
                i += r as usize;
                sent += r as usize;
            }
        }
    }
    sent
}

/// Receive buffers for `recvmmsg`: [`BATCH`] datagrams of up to `max_datagram` bytes each,
/// reused for every call (no allocation on the real-time path).
pub struct RecvBatch {
    bufs: Vec<u8>,
    max_datagram: usize,
    lens: [usize; BATCH],
    from: Vec<Option<SocketAddr>>,
    count: usize,
}

impl RecvBatch {
    /// Buffers for datagrams of up to `max_datagram` bytes (a larger one is truncated,
    /// which the fronthaul parser rejects by its length field).
    pub fn new(max_datagram: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; max_datagram * BATCH],
            max_datagram,
            lens: [0; BATCH],
            from: vec![None; BATCH],
            count: 0,
        }
    }

    /// Receives what is waiting on `sock` (never blocks), up to [`BATCH`] datagrams;
    /// `Ok(0)` when nothing is.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        // SAFETY: all-zero storages, iovecs and headers are valid; filled in below.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (k, chunk) in self.bufs.chunks_mut(self.max_datagram).enumerate() {
            iov[k] = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
        }
        for k in 0..BATCH {
            hdrs[k].msg_hdr.msg_name = (&mut addrs[k] as *mut libc::sockaddr_storage).cast();
            hdrs[k].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[k].msg_hdr.msg_iov = &mut iov[k];
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        self.count = 0;
        let r = loop {
            // SAFETY: the headers point into addrs/iov (alive here) and self.bufs, whose
            // BATCH slices of max_datagram bytes the kernel may write.
            let r = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        for k in 0..r {
            self.lens[k] = (hdrs[k].msg_len as usize).min(self.max_datagram);
            self.from[k] = from_raw(&addrs[k]);
        }
        self.count = r;
        Ok(r)
    }

    /// Datagram `k` of the last [`RecvBatch::recv`] and its sender.
    pub fn get(&self, k: usize) -> Option<(&[u8], SocketAddr)> {
        if k >= self.count {
            return None;
        }
        let from = self.from[k]?;
        let start = k * self.max_datagram;
        Some((&self.bufs[start..start + self.lens[k]], from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order_with_senders() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        crate::sys::set_socket_buffers(&b, 1 << 20).ok();
        let to = b.local_addr().unwrap();
        let data: Vec<Vec<u8>> = (0..70u8).map(|k| vec![k; 100 + usize::from(k)]).collect();
        let packets: Vec<(&[u8], SocketAddr)> = data.iter().map(|d| (&d[..], to)).collect();
        let mut errors = 0;
        assert_eq!(send_batch(&a, &packets, |_, _| errors += 1), 70);
        assert_eq!(errors, 0);
        let mut rb = RecvBatch::new(2048);
        let mut got: Vec<Vec<u8>> = Vec::new();
        while got.len() < 70 {
            let n = rb.recv(&b).unwrap();
            if n == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            assert!(n <= BATCH);
            for k in 0..n {
                let (bytes, from) = rb.get(k).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.push(bytes.to_vec());
            }
            assert!(rb.get(n).is_none());
        }
        assert_eq!(got, data);
        assert_eq!(rb.recv(&b).unwrap(), 0);
    }

    #[test]
    fn a_refused_datagram_is_reported_and_the_rest_still_go() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        // A datagram larger than UDP allows is refused (EMSGSIZE); its neighbours are sent.
        let big = vec![0u8; 70_000];
        let small = [1u8; 10];
        let packets: Vec<(&[u8], SocketAddr)> =
            vec![(&small[..], to), (&big[..], to), (&small[..], to)];
        let mut refused = Vec::new();
        let sent = send_batch(&a, &packets, |i, _| refused.push(i));
        assert_eq!((sent, refused), (2, vec![1]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut rb = RecvBatch::new(64);
        assert_eq!(rb.recv(&b).unwrap(), 2);
        // IPv6 addresses convert both ways too.
        let v6: SocketAddr = "[::1]:4242".parse().unwrap();
        let (st, _) = to_raw(&v6);
        assert_eq!(from_raw(&st), Some(v6));
    }
}
