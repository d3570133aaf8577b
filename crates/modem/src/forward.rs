//! Forward-port datagrams: packets a releasing source hands to the destination modem after
//! a make-before-break cutover. `b"FFWD"`, u32 big-endian sequence, one raw IP packet. Pure.

/// Magic at the start of every forward datagram.
pub const MAGIC: &[u8; 4] = b"FFWD";
/// Header length.
pub const HEADER: usize = 8;

/// Why a forward datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// Shorter than the header plus a minimal IP header.
    #[error("forward datagram too short ({0} bytes)")]
    Short(usize),
    /// Not our magic.
    #[error("forward datagram without FFWD magic")]
    Magic,
    /// The payload is not an IPv4/IPv6 packet.
    #[error("forward payload is not an IP packet (version nibble {0})")]
    NotIp(u8),
}

/// Build a forward datagram.
pub fn encode(seq: u32, ip: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(ip);
}

/// Parse a forward datagram: (sequence, IP packet).
pub fn decode(d: &[u8]) -> Result<(u32, &[u8]), ForwardError> {
    if d.len() < HEADER + 20 {
        return Err(ForwardError::Short(d.len()));
    }
    let (head, ip) = d.split_at(HEADER);
    if &head[..4] != MAGIC {
        return Err(ForwardError::Magic);
    }
    let seq = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let v = ip[0] >> 4;
    if v != 4 && v != 6 {
        return Err(ForwardError::NotIp(v));
    }
    Ok((seq, ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut ip = vec![0x45u8; 28];
        ip[1] = 0;
        let mut d = Vec::new();
        encode(7, &ip, &mut d);
        assert_eq!(decode(&d), Ok((7, ip.as_slice())));
        assert_eq!(decode(&d[..10]), Err(ForwardError::Short(10)));
        let mut bad = d.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(ForwardError::Magic));
        let mut bad = d.clone();
        bad[8] = 0x15;
        assert_eq!(decode(&bad), Err(ForwardError::NotIp(1)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&b);
        }
    }
}
