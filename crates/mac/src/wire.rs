//! Wire formats, smoltcp style: each structure has a parsed, validated `Repr` with a checked
//! `parse` (never panics, typed errors on any byte string) and an `emit` into a buffer.
//! Multi-byte fields are big-endian. Byte layouts are in `docs/MAC.md`.

use crate::addr::{NodeId, Rnti};
use crate::error::WireError;

/// Version of all Ferry MAC structures.
pub const VERSION: u8 = 1;
/// Bytes of the per-TB MAC header.
pub const MAC_HEADER_LEN: usize = 12;
/// Bytes of a segment subheader.
pub const SUBHEADER_LEN: usize = 7;
/// Bytes of the relay header in front of every data packet.
pub const RELAY_HEADER_LEN: usize = 4;
/// Bytes of the beacon's fixed part.
pub const BEACON_FIXED_LEN: usize = 5;
/// Bytes per beacon entry.
pub const BEACON_ENTRY_LEN: usize = 3;
/// Distance meaning "unreachable" (RIP's 16): also bounds the hop count.
pub const INFINITY: u8 = 16;

fn be16(b: &[u8], at: usize, what: &'static str) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(&[h, l]) => Ok(u16::from_be_bytes([h, l])),
        _ => Err(WireError::Truncated {
            what,
            need: at + 2,
            have: b.len(),
        }),
    }
}

fn byte(b: &[u8], at: usize, what: &'static str) -> Result<u8, WireError> {
    b.get(at).copied().ok_or(WireError::Truncated {
        what,
        need: at + 1,
        have: b.len(),
    })
}

fn check_version(first: u8, what: &'static str) -> Result<u8, WireError> {
    let version = first >> 4;
    if version != VERSION {
        return Err(WireError::BadVersion { what, version });
    }
    Ok(first & 0x0F)
}

fn room<'a>(buf: &'a mut [u8], need: usize, what: &'static str) -> Result<&'a mut [u8], WireError> {
    let have = buf.len();
    buf.get_mut(..need)
        .ok_or(WireError::BufferTooSmall { what, need, have })
}

/// The header at the start of every transport block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacHeader {
    /// Transmitter's RNTI.
    pub src: Rnti,
    /// Receiver's RNTI, or [`Rnti::BROADCAST`].
    pub dst: Rnti,
    /// Per-transmitter TB counter (wraps): a gap means TBs were lost on the air.
    pub seq: u16,
    /// Segments following the header; the rest of the TB is padding.
    pub segments: u8,
    /// Packets still queued at the transmitter after this TB (saturating): the base station
    /// schedules uplink grants from it.
    pub backlog: u16,
    /// Uplink grant: the slave owning the uplink subframes this downlink TB controls, or
    /// [`Rnti::NONE`].
    pub grant: Rnti,
}

impl MacHeader {
    /// Parse the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        const W: &str = "MAC header";
        if b.len() < MAC_HEADER_LEN {
            return Err(WireError::Truncated {
                what: W,
                need: MAC_HEADER_LEN,
                have: b.len(),
            });
        }
        check_version(byte(b, 0, W)?, W)?;
        let src = Rnti(be16(b, 1, W)?);
        if src == Rnti::BROADCAST || src == Rnti::NONE {
            return Err(WireError::BadField {
                what: W,
                field: "src",
                value: u32::from(src.0),
            });
        }
        Ok(MacHeader {
            src,
            dst: Rnti(be16(b, 3, W)?),
            seq: be16(b, 5, W)?,
            segments: byte(b, 7, W)?,
            backlog: be16(b, 8, W)?,
            grant: Rnti(be16(b, 10, W)?),
        })
    }

    /// Write the header into the first [`MAC_HEADER_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let b = room(buf, MAC_HEADER_LEN, "MAC header")?;
        b[0] = VERSION << 4;
        b[1..3].copy_from_slice(&self.src.0.to_be_bytes());
        b[3..5].copy_from_slice(&self.dst.0.to_be_bytes());
        b[5..7].copy_from_slice(&self.seq.to_be_bytes());
        b[7] = self.segments;
        b[8..10].copy_from_slice(&self.backlog.to_be_bytes());
        b[10..12].copy_from_slice(&self.grant.0.to_be_bytes());
        Ok(())
    }
}

/// What a segment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A piece of a data PDU (relay header + IP packet).
    Data = 0,
    /// A whole route-discovery beacon.
    Beacon = 1,
}

/// Subheader in front of each segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Data or beacon.
    pub kind: SegmentKind,
    /// This segment ends its PDU.
    pub last: bool,
    /// Per (transmitter, receiver-RNTI) PDU counter (wraps); 0 for beacons.
    pub packet_id: u16,
    /// Byte offset of this segment in its PDU.
    pub offset: u16,
    /// Payload bytes following the subheader (≥ 1).
    pub len: u16,
}

const LAST_FLAG: u8 = 0x01;

impl SegmentHeader {
    /// Parse a subheader at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        const W: &str = "segment subheader";
        if b.len() < SUBHEADER_LEN {
            return Err(WireError::Truncated {
                what: W,
                need: SUBHEADER_LEN,
                have: b.len(),
            });
        }
        let first = byte(b, 0, W)?;
        let kind = match first >> 4 {
            0 => SegmentKind::Data,
            1 => SegmentKind::Beacon,
            k => {
                return Err(WireError::BadField {
                    what: W,
                    field: "kind",
                    value: u32::from(k),
                })
            }
        };
        let h = SegmentHeader {
            kind,
            last: first & LAST_FLAG != 0,
            packet_id: be16(b, 1, W)?,
            offset: be16(b, 3, W)?,
            len: be16(b, 5, W)?,
        };
        if h.len == 0 {
            return Err(WireError::BadField {
                what: W,
                field: "len",
                value: 0,
            });
        }
        if h.kind == SegmentKind::Beacon && (h.offset != 0 || !h.last) {
            return Err(WireError::BadField {
                what: W,
                field: "beacon offset/last",
                value: u32::from(h.offset),
            });
        }
        Ok(h)
    }

    /// Write the subheader into the first [`SUBHEADER_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let b = room(buf, SUBHEADER_LEN, "segment subheader")?;
        b[0] = ((self.kind as u8) << 4) | if self.last { LAST_FLAG } else { 0 };
        b[1..3].copy_from_slice(&self.packet_id.to_be_bytes());
        b[3..5].copy_from_slice(&self.offset.to_be_bytes());
        b[5..7].copy_from_slice(&self.len.to_be_bytes());
        Ok(())
    }
}

/// A parsed transport block: header, segments borrowing the TB's bytes, padding length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TbView<'a> {
    /// The MAC header.
    pub header: MacHeader,
    /// Segments in order.
    pub segments: Vec<(SegmentHeader, &'a [u8])>,
    /// Bytes after the last segment.
    pub padding: usize,
}

impl<'a> TbView<'a> {
    /// Parse a whole TB: header, exactly `header.segments` segments that fit, then padding.
    pub fn parse(tb: &'a [u8]) -> Result<Self, WireError> {
        let header = MacHeader::parse(tb)?;
        let mut rest = tb.get(MAC_HEADER_LEN..).unwrap_or_default();
        let mut segments = Vec::with_capacity(usize::from(header.segments));
        for _ in 0..header.segments {
            let sh = SegmentHeader::parse(rest)?;
            let body = rest.get(SUBHEADER_LEN..).unwrap_or_default();
            let len = usize::from(sh.len);
            let payload = body.get(..len).ok_or(WireError::Truncated {
                what: "segment payload",
                need: len,
                have: body.len(),
            })?;
            segments.push((sh, payload));
            rest = body.get(len..).unwrap_or_default();
        }
        Ok(TbView {
            header,
            segments,
            padding: rest.len(),
        })
    }
}

/// Header in front of every data PDU: end-to-end addressing for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayHeader {
    /// Remaining hops; a relay drops the packet instead of forwarding it with TTL ≤ 1.
    pub ttl: u8,
    /// Originating node.
    pub src: NodeId,
    /// Final destination node.
    pub dst: NodeId,
}

impl RelayHeader {
    /// Parse the relay header at the start of a PDU; returns it and the IP packet.
    pub fn parse(b: &[u8]) -> Result<(Self, &[u8]), WireError> {
        const W: &str = "relay header";
        if b.len() < RELAY_HEADER_LEN {
            return Err(WireError::Truncated {
                what: W,
                need: RELAY_HEADER_LEN,
                have: b.len(),
            });
        }
        check_version(byte(b, 0, W)?, W)?;
        let h = RelayHeader {
            ttl: byte(b, 1, W)?,
            src: NodeId(byte(b, 2, W)?),
            dst: NodeId(byte(b, 3, W)?),
        };
        if h.ttl == 0 {
            return Err(WireError::BadField {
                what: W,
                field: "ttl",
                value: 0,
            });
        }
        Ok((h, b.get(RELAY_HEADER_LEN..).unwrap_or_default()))
    }

    /// Write the header into the first [`RELAY_HEADER_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let b = room(buf, RELAY_HEADER_LEN, "relay header")?;
        b[0] = VERSION << 4;
        b[1] = self.ttl;
        b[2] = self.src.0;
        b[3] = self.dst.0;
        Ok(())
    }

    /// Header + payload as one PDU.
    pub fn to_pdu(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; RELAY_HEADER_LEN + payload.len()];
        // The buffer is sized for the header, so emit cannot fail.
        let _ = self.emit(&mut v);
        if let Some(tail) = v.get_mut(RELAY_HEADER_LEN..) {
            tail.copy_from_slice(payload);
        }
        v
    }
}

/// One advertised route in a beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeaconEntry {
    /// Destination.
    pub dest: NodeId,
    /// Hops from the beacon's sender to `dest` (≤ [`INFINITY`]; `INFINITY` = unreachable).
    pub metric: u8,
    /// The sender's next hop towards `dest`: receivers that are this next hop treat the
    /// entry as unreachable (poisoned reverse on a broadcast medium).
    pub next_hop: NodeId,
}

/// A route-discovery beacon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// Sender's node ID.
    pub node: NodeId,
    /// Sender's beacon counter (wraps).
    pub seq: u16,
    /// Advertised routes (possibly a rotating subset of the sender's table).
    pub entries: Vec<BeaconEntry>,
}

impl Beacon {
    /// Encoded size.
    pub fn len(&self) -> usize {
        BEACON_FIXED_LEN + BEACON_ENTRY_LEN * self.entries.len()
    }

    /// Whether the beacon advertises no routes (it still announces its sender).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parse a beacon segment payload (exactly; trailing bytes are an error).
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        const W: &str = "beacon";
        if b.len() < BEACON_FIXED_LEN {
            return Err(WireError::Truncated {
                what: W,
                need: BEACON_FIXED_LEN,
                have: b.len(),
            });
        }
        check_version(byte(b, 0, W)?, W)?;
        let node = NodeId(byte(b, 1, W)?);
        let seq = be16(b, 2, W)?;
        let count = usize::from(byte(b, 4, W)?);
        let need = BEACON_FIXED_LEN + BEACON_ENTRY_LEN * count;
        if b.len() != need {
            return Err(if b.len() < need {
                WireError::Truncated {
                    what: W,
                    need,
                    have: b.len(),
                }
            } else {
                WireError::BadField {
                    what: W,
                    field: "trailing bytes",
                    value: (b.len() - need) as u32,
                }
            });
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in b
            .get(BEACON_FIXED_LEN..)
            .unwrap_or_default()
            .chunks_exact(BEACON_ENTRY_LEN)
        {
            if let &[dest, metric, next_hop] = chunk {
                if metric > INFINITY {
                    return Err(WireError::BadField {
                        what: W,
                        field: "metric",
                        value: u32::from(metric),
                    });
                }
                entries.push(BeaconEntry {
                    dest: NodeId(dest),
                    metric,
                    next_hop: NodeId(next_hop),
                });
            }
        }
        Ok(Beacon { node, seq, entries })
    }

    /// Encode (at most 255 entries fit the count byte).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let count = u8::try_from(self.entries.len()).map_err(|_| WireError::BadField {
            what: "beacon",
            field: "entry count",
            value: self.entries.len() as u32,
        })?;
        let mut v = Vec::with_capacity(self.len());
        v.push(VERSION << 4);
        v.push(self.node.0);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.push(count);
        for e in &self.entries {
            v.extend_from_slice(&[e.dest.0, e.metric.min(INFINITY), e.next_hop.0]);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mac_header_round_trip_and_layout() {
        let h = MacHeader {
            src: Rnti(0x0109),
            dst: Rnti::BROADCAST,
            seq: 0xBEEF,
            segments: 3,
            backlog: 7,
            grant: Rnti(0x0108),
        };
        let mut b = [0u8; MAC_HEADER_LEN];
        h.emit(&mut b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b,
            [0x10, 0x01, 0x09, 0xFF, 0xFF, 0xBE, 0xEF, 3, 0, 7, 0x01, 0x08]
        );
        assert_eq!(MacHeader::parse(&b), Ok(h));
        assert!(matches!(
            MacHeader::parse(&b[..11]),
            Err(WireError::Truncated { .. })
        ));
        let mut bad = b;
        bad[0] = 0x20;
        assert!(matches!(
            MacHeader::parse(&bad),
            Err(WireError::BadVersion { version: 2, .. })
        ));
        let mut bad = b;
        bad[1..3].copy_from_slice(&[0xFF, 0xFF]);
        assert!(matches!(
            MacHeader::parse(&bad),
            Err(WireError::BadField { field: "src", .. })
        ));
        assert!(matches!(
            h.emit(&mut [0u8; 5]),
            Err(WireError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn segment_header_round_trip_and_checks() {
        let s = SegmentHeader {
            kind: SegmentKind::Data,
            last: true,
            packet_id: 513,
            offset: 1400,
            len: 100,
        };
        let mut b = [0u8; SUBHEADER_LEN];
        s.emit(&mut b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b, [0x01, 0x02, 0x01, 0x05, 0x78, 0x00, 0x64]);
        assert_eq!(SegmentHeader::parse(&b), Ok(s));
        b[6] = 0;
        assert!(SegmentHeader::parse(&b).is_err(), "zero length");
        let beacon_mid = [0x10, 0, 0, 0, 1, 0, 1];
        assert!(
            SegmentHeader::parse(&beacon_mid).is_err(),
            "beacon must be whole"
        );
        assert!(
            SegmentHeader::parse(&[0x21, 0, 0, 0, 0, 0, 1]).is_err(),
            "kind 2"
        );
    }

    #[test]
    fn tb_view_checks_segment_bounds() {
        let mut tb = vec![0u8; 40];
        let h = MacHeader {
            src: Rnti(0x108),
            dst: Rnti(0x109),
            seq: 1,
            segments: 1,
            backlog: 0,
            grant: Rnti::NONE,
        };
        h.emit(&mut tb).unwrap_or_else(|e| panic!("{e}"));
        let s = SegmentHeader {
            kind: SegmentKind::Data,
            last: true,
            packet_id: 0,
            offset: 0,
            len: 21,
        };
        s.emit(&mut tb[MAC_HEADER_LEN..])
            .unwrap_or_else(|e| panic!("{e}"));
        let v = TbView::parse(&tb).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.segments.len(), 1);
        assert_eq!(v.padding, 0);
        tb.pop();
        assert!(matches!(
            TbView::parse(&tb),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn relay_header_round_trip() {
        let h = RelayHeader {
            ttl: 16,
            src: NodeId(8),
            dst: NodeId(10),
        };
        let pdu = h.to_pdu(b"ip!");
        assert_eq!(pdu, vec![0x10, 16, 8, 10, b'i', b'p', b'!']);
        assert_eq!(RelayHeader::parse(&pdu), Ok((h, &b"ip!"[..])));
        assert!(RelayHeader::parse(&[0x10, 0, 8, 10]).is_err(), "ttl 0");
        assert!(RelayHeader::parse(&[0x10, 1, 8]).is_err());
    }

    #[test]
    fn beacon_round_trip_and_checks() {
        let b = Beacon {
            node: NodeId(9),
            seq: 258,
            entries: vec![
                BeaconEntry {
                    dest: NodeId(8),
                    metric: 1,
                    next_hop: NodeId(8),
                },
                BeaconEntry {
                    dest: NodeId(10),
                    metric: INFINITY,
                    next_hop: NodeId(10),
                },
            ],
        };
        let bytes = b.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes, vec![0x10, 9, 1, 2, 2, 8, 1, 8, 10, 16, 10]);
        assert_eq!(Beacon::parse(&bytes), Ok(b));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Beacon::parse(&extra).is_err());
        let mut bad = bytes.clone();
        bad[9] = 17;
        assert!(Beacon::parse(&bad).is_err(), "metric > infinity");
        assert!(Beacon::parse(&bytes[..10]).is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = MacHeader::parse(&bytes);
            let _ = SegmentHeader::parse(&bytes);
            let _ = TbView::parse(&bytes);
            let _ = RelayHeader::parse(&bytes);
            let _ = Beacon::parse(&bytes);
            let _ = crate::addr::ipv4_destination(&bytes);
        }

        #[test]
        fn tb_parser_never_panics_on_valid_header_then_noise(
            segs in 0u8..20, noise in proptest::collection::vec(any::<u8>(), 0..400)
        ) {
            let mut tb = vec![0u8; MAC_HEADER_LEN];
            let h = MacHeader { src: Rnti(0x101), dst: Rnti(0x102), seq: 0, segments: segs, backlog: 0, grant: Rnti::NONE };
            prop_assert!(h.emit(&mut tb).is_ok());
            tb.extend_from_slice(&noise);
            if let Ok(v) = TbView::parse(&tb) {
                prop_assert_eq!(v.segments.len(), usize::from(segs));
                let used: usize = v.segments.iter().map(|(_, p)| SUBHEADER_LEN + p.len()).sum();
                prop_assert_eq!(MAC_HEADER_LEN + used + v.padding, tb.len());
            }
        }

        #[test]
        fn beacon_round_trips(node: u8, seq: u16, raw in proptest::collection::vec((any::<u8>(), 0u8..=16, any::<u8>()), 0..60)) {
            let b = Beacon { node: NodeId(node), seq, entries: raw.iter().map(|&(d, m, n)| BeaconEntry { dest: NodeId(d), metric: m, next_hop: NodeId(n) }).collect() };
            let bytes = b.to_bytes();
            prop_assert!(bytes.is_ok());
            let bytes = bytes.unwrap_or_default();
            prop_assert_eq!(bytes.len(), b.len());
            prop_assert_eq!(Beacon::parse(&bytes), Ok(b));
        }
    }
}
