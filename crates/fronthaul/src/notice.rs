//! The radio's in-band switch notice: "from sample S, host H serves under epoch E".
//!
//! The radio is the arbiter of who serves (docs/FAULTS.md): at every change of primary —
//! link, a planned switch reaching its instant, a fallback, a failover — it tells the hosts
//! concerned on the fronthaul itself, in the RX stream they already read, instead of letting
//! them infer it from RX silence or poll link control from their real-time loops.
//!
//! Wire format: a VITA-49 **extension context packet** (type 5) on the radio's RX stream ID,
//! with a class ID (OUI 0x000000 — Ferry has no IEEE OUI of its own —, information class
//! 0x4652 "FR", packet class 0x534E "SN"), the timestamp of the first sample of the new
//! assignment (TSI = 3, TSF = 1, as Ferry's data packets), 19 payload words and a MAC:
//!
//! | words | field |
//! |---|---|
//! | 1 | version (8 bits, = 2), kind (8), flags (16: bit 0 primary present, bit 1 previous present, bit 2 previous TX heard present, bit 3 tail present) |
//! | 2 | epoch (u64) |
//! | 2 | first sample of the assignment (u64, the same instant as the timestamp) |
//! | 5 | primary: family (4 or 6) << 16 \| port, then 16 address bytes (IPv4 in the first 4) |
//! | 5 | previous primary, same layout |
//! | 2 | previous TX heard: start sample of the newest TX datagram (data or heartbeat) the radio took from the previous primary (u64; fallback and failover only, else 0) |
//! | 2 | tail: the radio plays the previous primary's queued TX up to this sample (u64, a subframe boundary; fallback and failover only, else 0) |
//! | 4 | HMAC-SHA256 of everything before it (header included), truncated to 128 bits |
//!
//! The MAC is keyed with the radio room's link-control key: the fronthaul LAN carries no
//! other authentication, and a forged "you serve now" would make a standby deliver what it
//! only receives as a copy. Old notices replayed are harmless (their epoch is not newer).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::vrt::{SampleTime, StreamId, Timestamp, WireError, TSF_SAMPLE_COUNT, TSI_OTHER};

/// Information class code of a switch notice ("FR").
pub const INFO_CLASS: u16 = 0x4652;
/// Packet class code of a switch notice ("SN").
pub const PACKET_CLASS: u16 = 0x534E;
/// Payload format version.
pub const VERSION: u8 = 2;
/// Bytes of a notice on the wire: 7 header words (header, stream ID, class ID ×2, TSI,
/// TSF ×2) + 19 payload words + 4 MAC words.
pub const NOTICE_LEN: usize = 4 * (7 + 19 + 4);
const MAC_LEN: usize = 16;

/// Why the primary changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A host linked, unlinked or reset the radio.
    Link = 0,
    /// An armed switch reached its instant.
    Planned = 1,
    /// The new primary sent no TX; the previous one serves again.
    Fallback = 2,
    /// The primary sent no TX; its protecting standby serves.
    Failover = 3,
}

impl NoticeKind {
    fn from_bits(b: u8) -> Option<NoticeKind> {
        Some(match b {
            0 => NoticeKind::Link,
            1 => NoticeKind::Planned,
            2 => NoticeKind::Fallback,
            3 => NoticeKind::Failover,
            _ => return None,
        })
    }
}

/// A parsed, authenticated switch notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeRepr {
    /// The radio's RX stream.
    pub stream_id: StreamId,
    /// Epoch of the new assignment (strictly increasing per radio).
    pub epoch: u64,
    /// First sample of the new assignment.
    pub from_sample: SampleTime,
    /// Why.
    pub kind: NoticeKind,
    /// Who serves from `from_sample` (None: nobody).
    pub primary: Option<SocketAddr>,
    /// Who served before.
    pub previous: Option<SocketAddr>,
    /// Fallback and failover: start sample of the newest TX datagram (data or heartbeat)
    /// the radio took from the previous primary. A modem sends the TX of subframe
    /// `n + tx_lead` before it delivers what it decoded in subframe `n`, so the previous
    /// primary delivered nothing decoded after `subframe(previous_heard_tx) − tx_lead`: the
    /// new primary may deliver its copies of the later subframes without duplicating any.
    pub previous_heard_tx: Option<SampleTime>,
    /// Fallback and failover: the radio plays the previous primary's TX it had already
    /// queued up to this sample (a subframe boundary) instead of the new primary's filler;
    /// the new primary transmits data from here on.
    pub tail_until: Option<SampleTime>,
}

/// Why bytes are not a valid notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// Not a Ferry switch notice at all (another packet type or class): not an error for
    /// a receiver that also gets data and context packets.
    #[error("not a switch notice")]
    NotANotice,
    /// A switch notice with a malformed field.
    #[error("malformed switch notice: {0}")]
    Malformed(&'static str),
    /// The MAC does not verify under our key (forged, or another radio room's key).
    #[error("switch notice with a bad MAC")]
    BadMac,
    /// VRT framing.
    #[error(transparent)]
    Wire(#[from] WireError),
}

fn put_addr(out: &mut Vec<u8>, a: Option<SocketAddr>) {
    let (family, port, bytes): (u16, u16, [u8; 16]) = match a {
        None => (0, 0, [0; 16]),
        Some(SocketAddr::V4(v)) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v.ip().octets());
            (4, v.port(), b)
        }
        Some(SocketAddr::V6(v)) => (6, v.port(), v.ip().octets()),
    };
    out.extend_from_slice(&((u32::from(family) << 16) | u32::from(port)).to_be_bytes());
    out.extend_from_slice(&bytes);
}

fn get_addr(b: &[u8], present: bool) -> Result<Option<SocketAddr>, NoticeError> {
    let w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (family, port) = ((w >> 16) as u16, (w & 0xffff) as u16);
    let addr = &b[4..20];
    match (present, family) {
        (false, 0) => Ok(None),
        (true, 4) => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        (true, 6) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(addr);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)))
        }
        _ => Err(NoticeError::Malformed("address family")),
    }
}

fn mac(key: &[u8], bytes: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length; a zero-length key still yields a MAC (the callers
    // refuse short keys when they load them).
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; MAC_LEN],
    };
    m.update(bytes);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

impl NoticeRepr {
    /// Appends the notice as one datagram to `out`, timestamped at `rate`, MAC'd with `key`.
    pub fn emit(
        &self,
        rate: u32,
        count: u8,
        key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let ts = Timestamp::from_sample_time(self.from_sample, rate)?;
        let start = out.len();
        let words = (NOTICE_LEN / 4) as u32;
        let header = (5u32 << 28)
            | (1 << 27)
            | (u32::from(TSI_OTHER) << 22)
            | (u32::from(TSF_SAMPLE_COUNT) << 20)
            | (u32::from(count & 0xf) << 16)
            | words;
        out.extend_from_slice(&header.to_be_bytes());
        out.extend_from_slice(&self.stream_id.0.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // OUI 0x000000
        out.extend_from_slice(
            &((u32::from(INFO_CLASS) << 16) | u32::from(PACKET_CLASS)).to_be_bytes(),
        );
        out.extend_from_slice(&ts.secs.to_be_bytes());
        out.extend_from_slice(&ts.frac.to_be_bytes());
        let flags = u32::from(self.primary.is_some())
            | (u32::from(self.previous.is_some()) << 1)
            | (u32::from(self.previous_heard_tx.is_some()) << 2)
            | (u32::from(self.tail_until.is_some()) << 3);
        out.extend_from_slice(
            &((u32::from(VERSION) << 24) | ((self.kind as u32) << 16) | flags).to_be_bytes(),
        );
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.from_sample.to_be_bytes());
        put_addr(out, self.primary);
        put_addr(out, self.previous);
        out.extend_from_slice(&self.previous_heard_tx.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.tail_until.unwrap_or(0).to_be_bytes());
        let m = mac(key, &out[start..]);
        out.extend_from_slice(&m);
        debug_assert_eq!(out.len() - start, NOTICE_LEN);
        Ok(())
    }

    /// Whether `bytes` look like a switch notice (type and class only; no MAC check).
    pub fn is_notice(bytes: &[u8]) -> bool {
        bytes.len() == NOTICE_LEN
            && bytes[0] >> 4 == 5
            && bytes[8..12] == [0, 0, 0, 0]
            && bytes[12..16] == [0x46, 0x52, 0x53, 0x4E]
    }

    /// Parses and authenticates one datagram.
    pub fn parse_bytes(bytes: &[u8], key: &[u8]) -> Result<NoticeRepr, NoticeError> {
        if !Self::is_notice(bytes) {
            return Err(NoticeError::NotANotice);
        }
        let header = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if (header & 0xffff) as usize * 4 != NOTICE_LEN {
            return Err(NoticeError::Malformed("size field"));
        }
        let (body, tag) = bytes.split_at(NOTICE_LEN - MAC_LEN);
        // Constant-time comparison through the MAC library.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| NoticeError::BadMac)?;
        m.update(body);
        m.verify_truncated_left(tag)
            .map_err(|_| NoticeError::BadMac)?;
        let word = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let dword = |i: usize| (u64::from(word(i)) << 32) | u64::from(word(i + 4));
        let stream_id = StreamId(word(4));
        let meta = word(28);
        if (meta >> 24) as u8 != VERSION {
            return Err(NoticeError::Malformed("version"));
        }
        let kind =
            NoticeKind::from_bits((meta >> 16) as u8).ok_or(NoticeError::Malformed("kind"))?;
        let epoch = dword(32);
        let from_sample = dword(40);
        let primary = get_addr(&body[48..68], meta & 1 != 0)?;
        let previous = get_addr(&body[68..88], meta & 2 != 0)?;
        let optional = |bit: u32, v: u64| -> Result<Option<u64>, NoticeError> {
            match (meta & bit != 0, v) {
                (true, v) => Ok(Some(v)),
                (false, 0) => Ok(None),
                (false, _) => Err(NoticeError::Malformed("absent field not zero")),
            }
        };
        let previous_heard_tx = optional(4, dword(88))?;
        let tail_until = optional(8, dword(96))?;
        Ok(NoticeRepr {
            stream_id,
            epoch,
            from_sample,
            kind,
            primary,
            previous,
            previous_heard_tx,
            tail_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrt::{Direction, Packet, PacketType};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sample() -> NoticeRepr {
        NoticeRepr {
            stream_id: StreamId::new(3, Direction::Rx),
            epoch: 42,
            from_sample: 1_920_000 * 7 + 1920 * 3,
            kind: NoticeKind::Failover,
            primary: Some("10.0.2.2:49152".parse().unwrap()),
            previous: Some("[fd00::1]:5000".parse().unwrap()),
            previous_heard_tx: Some(1_920_000 * 7 + 1920 * 10 + 480),
            tail_until: Some(1_920_000 * 7 + 1920 * 11),
        }
    }

    #[test]
    fn round_trips_and_is_a_well_formed_vrt_extension_context_packet() {
        for n in [
            sample(),
            NoticeRepr {
                primary: None,
                previous: None,
                previous_heard_tx: None,
                tail_until: None,
                kind: NoticeKind::Link,
                ..sample()
            },
        ] {
            let mut b = Vec::new();
            n.emit(1_920_000, 5, KEY, &mut b).unwrap();
            assert_eq!(b.len(), NOTICE_LEN);
            assert_eq!(NoticeRepr::parse_bytes(&b, KEY), Ok(n));
            // The generic VRT view agrees on type, length, stream and timestamp.
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.packet_type().unwrap(), PacketType::ExtContext);
            assert!(p.has_class_id());
            assert_eq!(p.stream_id(), Some(n.stream_id));
            let ts = Timestamp {
                secs: p.integer_timestamp().unwrap(),
                frac: p.fractional_timestamp().unwrap(),
            };
            assert_eq!(ts.to_sample_time(1_920_000).unwrap(), n.from_sample);
            assert_eq!(p.packet_count(), 5);
        }
    }

    #[test]
    fn forged_tampered_and_foreign_packets_are_refused() {
        let mut b = Vec::new();
        sample().emit(1_920_000, 0, KEY, &mut b).unwrap();
        assert_eq!(
            NoticeRepr::parse_bytes(&b, b"another radio room's key 0123456"),
            Err(NoticeError::BadMac)
        );
        for i in [3usize, 4, 20, 30, 40, 50, 70, 90, 95, 100] {
            let mut t = b.clone();
            t[i] ^= 1;
            assert!(
                NoticeRepr::parse_bytes(&t, KEY).is_err(),
                "byte {i} flipped"
            );
        }
        assert_eq!(
            NoticeRepr::parse_bytes(&b[..50], KEY),
            Err(NoticeError::NotANotice)
        );
        // An ordinary context packet is not a notice.
        let ctx = crate::vrt::ContextRepr {
            stream_id: StreamId::new(3, Direction::Rx),
            count: 0,
            timestamp: Timestamp { secs: 1, frac: 0 },
            changed: true,
            bandwidth_hz: None,
            rf_freq_hz: Some(2.14e9),
            gain_db: None,
            sample_rate_hz: None,
        };
        let mut c = Vec::new();
        ctx.emit(&mut c).unwrap();
        assert!(!NoticeRepr::is_notice(&c));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = NoticeRepr::parse_bytes(&b, KEY);
        }

        #[test]
        fn any_notice_round_trips(epoch in 0u64..u64::MAX, from in 0u64..(1u64 << 40), k in 0u8..4, port in 0u16..) {
            let n = NoticeRepr {
                epoch,
                from_sample: from,
                kind: NoticeKind::from_bits(k).unwrap(),
                primary: Some(SocketAddr::from(([10, 1, 2, 3], port))),
                ..sample()
            };
            let mut b = Vec::new();
            n.emit(1_920_000, 0, KEY, &mut b).unwrap();
            proptest::prop_assert_eq!(NoticeRepr::parse_bytes(&b, KEY), Ok(n));
        }
    }
}
