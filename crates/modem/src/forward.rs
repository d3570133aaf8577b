//! Forward-port datagrams: packets a releasing source hands to the destination modem after
//! a make-before-break cutover, authenticated with the migration's [`ForwardToken`].
//!
//! `b"FFW2"`, u64 big-endian sequence, one raw IP packet, then 16 bytes of
//! HMAC-SHA256(token, magic ‖ sequence ‖ packet) truncated. The destination accepts a
//! datagram only if the MAC checks under the token it was given with `takeover_at` and the
//! sequence number was not seen before (a sliding window of 64, as IPsec's); everything
//! else is refused. Pure.

use ferry_migrate::ForwardToken;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Magic at the start of every forward datagram.
pub const MAGIC: &[u8; 4] = b"FFW2";
/// Header length (magic and sequence).
pub const HEADER: usize = 12;
/// MAC length at the end.
pub const TAG: usize = 16;
/// Sequence numbers the replay window remembers below the highest seen.
pub const WINDOW: u64 = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a forward datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// Shorter than header, a minimal IP header and the MAC.
    #[error("forward datagram too short ({0} bytes)")]
    Short(usize),
    /// Not our magic.
    #[error("forward datagram without FFW2 magic")]
    Magic,
    /// The MAC does not check under this migration's token (a stranger, or no migration).
    #[error("forward datagram with a bad MAC")]
    BadMac,
    /// A sequence number seen before, or older than the window.
    #[error("forward datagram {0} replayed or too old")]
    Replay(u64),
    /// The payload is not an IPv4/IPv6 packet.
    #[error("forward payload is not an IP packet (version nibble {0})")]
    NotIp(u8),
}

fn mac(token: &ForwardToken, head: &[u8], ip: &[u8]) -> [u8; TAG] {
    let mut m = match <HmacSha256 as Mac>::new_from_slice(token.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; 32 bytes cannot fail.
        Err(_) => <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()),
    };
    m.update(head);
    m.update(ip);
    let full = m.finalize().into_bytes();
    let mut tag = [0u8; TAG];
    tag.copy_from_slice(full.get(..TAG).unwrap_or(&[0u8; TAG]));
    tag
}

/// Build a sealed forward datagram.
pub fn encode(token: &ForwardToken, seq: u64, ip: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(ip);
    let tag = mac(token, out.get(..HEADER).unwrap_or(&[]), ip);
    out.extend_from_slice(&tag);
}

/// Check a datagram's framing and MAC: (sequence, IP packet). Does not check replays.
pub fn decode<'a>(token: &ForwardToken, d: &'a [u8]) -> Result<(u64, &'a [u8]), ForwardError> {
    if d.len() < HEADER + 20 + TAG {
        return Err(ForwardError::Short(d.len()));
    }
    let (head, rest) = d.split_at(HEADER);
    let (ip, tag) = rest.split_at(rest.len() - TAG);
    if head.get(..4) != Some(MAGIC.as_slice()) {
        return Err(ForwardError::Magic);
    }
    let want = mac(token, head, ip);
    // Constant time: a stranger learns nothing from how fast the refusal comes.
    let diff = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(ForwardError::BadMac);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(head.get(4..12).unwrap_or(&[0u8; 8]));
    let seq = u64::from_be_bytes(seq);
    let v = ip.first().map_or(0, |b| b >> 4);
    if v != 4 && v != 6 {
        return Err(ForwardError::NotIp(v));
    }
    Ok((seq, ip))
}

/// The sliding replay window: the highest sequence accepted and which of the [`WINDOW`]
/// below it were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: Option<u64>,
    seen: u64,
}

impl ReplayWindow {
    /// Accept `seq` once: false for a repeat or one older than the window.
    pub fn accept(&mut self, seq: u64) -> bool {
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            return true;
        };
        if seq > h {
            let shift = seq - h;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = Some(seq);
            return true;
        }
        let back = h - seq;
        if back >= WINDOW {
            return false;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// The destination side: the token of the migration in progress and its replay window.
#[derive(Debug, Clone)]
pub struct ForwardReceiver {
    token: ForwardToken,
    window: ReplayWindow,
}

impl ForwardReceiver {
    /// Accept packets sealed with `token`.
    pub fn new(token: ForwardToken) -> ForwardReceiver {
        ForwardReceiver {
            token,
            window: ReplayWindow::default(),
        }
    }

    /// The IP packet of an authentic, fresh datagram.
    pub fn open<'a>(&mut self, d: &'a [u8]) -> Result<&'a [u8], ForwardError> {
        let (seq, ip) = decode(&self.token, d)?;
        if !self.window.accept(seq) {
            return Err(ForwardError::Replay(seq));
        }
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(b: u8) -> ForwardToken {
        ForwardToken::from_bytes([b; 32])
    }

    fn ip() -> Vec<u8> {
        let mut ip = vec![0x45u8; 28];
        ip[1] = 0;
        ip
    }

    #[test]
    fn round_trip_and_refusals() {
        let mut d = Vec::new();
        encode(&token(1), 7, &ip(), &mut d);
        assert_eq!(d.len(), HEADER + 28 + TAG);
        assert_eq!(decode(&token(1), &d), Ok((7, ip().as_slice())));
        assert_eq!(decode(&token(2), &d), Err(ForwardError::BadMac));
        assert_eq!(decode(&token(1), &d[..10]), Err(ForwardError::Short(10)));
        let mut bad = d.clone();
        bad[0] = b'X';
        assert_eq!(decode(&token(1), &bad), Err(ForwardError::Magic));
        // Any flipped bit in sequence, packet or tag breaks the MAC.
        for i in 4..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                decode(&token(1), &bad),
                Err(ForwardError::BadMac),
                "byte {i}"
            );
        }
        // The old unauthenticated format is refused.
        let mut old = b"FFWD\0\0\0\x07".to_vec();
        old.extend(ip());
        old.extend([0u8; 16]);
        assert_eq!(decode(&token(1), &old), Err(ForwardError::Magic));
    }

    #[test]
    fn replays_are_refused() {
        let mut rx = ForwardReceiver::new(token(3));
        let mut d = Vec::new();
        for seq in [0u64, 1, 2] {
            encode(&token(3), seq, &ip(), &mut d);
            assert!(rx.open(&d).is_ok());
        }
        assert_eq!(rx.open(&d), Err(ForwardError::Replay(2)));
        // Reordering inside the window is fine once; far too old is refused.
        encode(&token(3), 100, &ip(), &mut d);
        assert!(rx.open(&d).is_ok());
        encode(&token(3), 60, &ip(), &mut d);
        assert!(rx.open(&d).is_ok());
        assert_eq!(rx.open(&d), Err(ForwardError::Replay(60)));
        encode(&token(3), 30, &ip(), &mut d);
        assert_eq!(rx.open(&d), Err(ForwardError::Replay(30)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&token(0), &b);
        }

        #[test]
        fn window_accepts_each_sequence_at_most_once(seqs in proptest::collection::vec(0u64..200, 0..300)) {
            let mut w = ReplayWindow::default();
            let mut taken = std::collections::HashSet::new();
            for s in seqs {
                if w.accept(s) {
                    prop_assert!(taken.insert(s), "{} accepted twice", s);
                }
            }
        }
    }
}
