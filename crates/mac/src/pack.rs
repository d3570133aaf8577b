//! Transmit side of transport blocks: the bounded queue of PDUs (relay header + IP packet)
//! waiting for their next hop, and the writer that packs them into a TB of exactly the size
//! the PHY offers — several PDUs per TB, a large PDU across TBs, the rest padding.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::addr::Rnti;
use crate::error::{HandoverError, WireError};
use crate::wire::{MacHeader, SegmentHeader, SegmentKind, MAC_HEADER_LEN, SUBHEADER_LEN};

/// Largest PDU the segment offsets can address.
pub const MAX_PDU: usize = u16::MAX as usize;

/// Builds one TB of a fixed size: header first (written last, when the segment count is
/// known), then segments, then zero padding.
#[derive(Debug)]
pub struct TbWriter {
    buf: Vec<u8>,
    at: usize,
    segments: u8,
}

impl TbWriter {
    /// A writer for a TB of `capacity` bytes, or `None` if not even the header fits.
    pub fn new(capacity: usize) -> Option<Self> {
        (capacity >= MAC_HEADER_LEN).then(|| TbWriter {
            buf: vec![0u8; capacity],
            at: MAC_HEADER_LEN,
            segments: 0,
        })
    }

    /// Payload bytes the next segment could carry (0 if no segment fits).
    pub fn payload_room(&self) -> usize {
        if self.segments == u8::MAX {
            return 0;
        }
        self.buf
            .len()
            .saturating_sub(self.at)
            .saturating_sub(SUBHEADER_LEN)
            .min(usize::from(u16::MAX))
    }

    /// Segments written so far.
    pub fn segments(&self) -> u8 {
        self.segments
    }

    /// Bytes written after the header (subheaders and payloads).
    pub fn used(&self) -> usize {
        self.at - MAC_HEADER_LEN
    }

    /// Append a segment; `payload.len()` must be 1..=`payload_room()`.
    pub fn push(&mut self, sh: SegmentHeader, payload: &[u8]) -> Result<(), WireError> {
        let need = SUBHEADER_LEN + payload.len();
        if payload.is_empty() || payload.len() > self.payload_room() {
            return Err(WireError::BufferTooSmall {
                what: "transport block",
                need,
                have: self.buf.len().saturating_sub(self.at),
            });
        }
        let dst = self
            .buf
            .get_mut(self.at..self.at + need)
            .ok_or(WireError::BufferTooSmall {
                what: "transport block",
                need,
                have: 0,
            })?;
        sh.emit(dst)?;
        if let Some(p) = dst.get_mut(SUBHEADER_LEN..) {
            p.copy_from_slice(payload);
        }
        self.at += need;
        self.segments += 1;
        Ok(())
    }

    /// Write the header (its `segments` field is taken from the writer) and return the TB.
    pub fn finish(mut self, mut header: MacHeader) -> Result<Vec<u8>, WireError> {
        header.segments = self.segments;
        header.emit(&mut self.buf)?;
        Ok(self.buf)
    }
}

/// A PDU waiting for transmission to a next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPdu {
    /// Link-layer receiver.
    pub next_hop: Rnti,
    /// Relay header + IP packet.
    pub pdu: Vec<u8>,
    sent: usize,
    packet_id: Option<u16>,
}

impl QueuedPdu {
    /// Bytes of the PDU already transmitted.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

/// A queued PDU in transit between two MACs (make-before-break handover).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverPdu {
    /// Link-layer receiver.
    pub next_hop: Rnti,
    /// Relay header + IP packet.
    pub pdu: Vec<u8>,
    /// Bytes already transmitted.
    pub sent: usize,
    /// Packet id, once the first segment went out.
    pub packet_id: Option<u16>,
}

/// The transmit queue's state, as handed from a migration source to its target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// Next packet id per next hop.
    pub next_ids: Vec<(Rnti, u16)>,
    /// Queued PDUs, oldest first.
    pub entries: Vec<HandoverPdu>,
}

/// The transmit queue: FIFO with a bounded depth in PDUs. A PDU partially sent to a next hop
/// is always finished before another PDU to the same next hop starts, so the receiver needs
/// at most one reassembly per (transmitter, receiver) stream.
#[derive(Debug, Clone, Default)]
pub struct TxQueue {
    entries: VecDeque<QueuedPdu>,
    depth: usize,
    next_id: BTreeMap<Rnti, u16>,
}

impl TxQueue {
    /// An empty queue holding at most `depth` PDUs.
    pub fn new(depth: usize) -> Self {
        TxQueue {
            entries: VecDeque::new(),
            depth,
            next_id: BTreeMap::new(),
        }
    }

    /// Queue a PDU; `Err(pdu)` hands it back when the queue is full or the PDU is empty or
    /// too large to segment.
    pub fn push(&mut self, next_hop: Rnti, pdu: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.entries.len() >= self.depth || pdu.is_empty() || pdu.len() > MAX_PDU {
            return Err(pdu);
        }
        self.entries.push_back(QueuedPdu {
            next_hop,
            pdu,
            sent: 0,
            packet_id: None,
        });
        Ok(())
    }

    /// PDUs queued (including a partially sent one).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Configured depth.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next hop of the oldest PDU: the receiver of the next data TB.
    pub fn head_next_hop(&self) -> Option<Rnti> {
        self.entries.front().map(|e| e.next_hop)
    }

    /// Pack PDUs for `next_hop`, oldest first, into `w` until it is full. Returns how many
    /// PDUs were completed.
    pub fn fill(&mut self, next_hop: Rnti, w: &mut TbWriter) -> usize {
        let mut done = 0;
        let mut i = 0;
        while i < self.entries.len() {
            let room = w.payload_room();
            if room == 0 {
                break;
            }
            let Some(e) = self.entries.get_mut(i) else {
                break;
            };
            if e.next_hop != next_hop {
                i += 1;
                continue;
            }
            let id = match e.packet_id {
                Some(id) => id,
                None => {
                    let c = self.next_id.entry(next_hop).or_insert(0);
                    let id = *c;
                    *c = c.wrapping_add(1);
                    e.packet_id = Some(id);
                    id
                }
            };
            let remaining = e.pdu.len() - e.sent;
            let take = remaining.min(room);
            let sh = SegmentHeader {
                kind: SegmentKind::Data,
                last: take == remaining,
                packet_id: id,
                // PDUs are ≤ MAX_PDU, so offsets and lengths fit u16.
                offset: e.sent as u16,
                len: take as u16,
            };
            let Some(chunk) = e.pdu.get(e.sent..e.sent + take) else {
                break;
            };
            if w.push(sh, chunk).is_err() {
                break;
            }
            e.sent += take;
            if e.sent == e.pdu.len() {
                self.entries.remove(i);
                done += 1;
            } else {
                break; // the TB is full
            }
        }
        done
    }

    /// Take the whole transmit state for a make-before-break handover: queued PDUs with their
    /// progress (a half-sent PDU continues at the same offset under the same packet id) and
    /// the packet-id counters, so receivers see no gap. Leaves this queue empty.
    pub fn take_snapshot(&mut self) -> QueueSnapshot {
        QueueSnapshot {
            next_ids: self.next_id.iter().map(|(r, id)| (*r, *id)).collect(),
            entries: self
                .entries
                .drain(..)
                .map(|e| HandoverPdu {
                    next_hop: e.next_hop,
                    pdu: e.pdu,
                    sent: e.sent,
                    packet_id: e.packet_id,
                })
                .collect(),
        }
    }

    /// Continue a snapshot taken elsewhere: its PDUs go in front of anything queued here
    /// (they are older), its packet-id counters replace this queue's. Validated first.
    pub fn restore(&mut self, snap: QueueSnapshot) -> Result<(), HandoverError> {
        if snap.entries.len() + self.entries.len() > self.depth {
            return Err(HandoverError::QueueTooLong {
                len: snap.entries.len(),
                queued: self.entries.len(),
                depth: self.depth,
            });
        }
        for (index, e) in snap.entries.iter().enumerate() {
            let bad = |why| Err(HandoverError::BadPdu { index, why });
            if e.pdu.is_empty() || e.pdu.len() > MAX_PDU {
                return bad("length outside 1..=65535");
            }
            if e.sent >= e.pdu.len() {
                return bad("already completely sent");
            }
            if e.sent > 0 && e.packet_id.is_none() {
                return bad("partly sent without a packet id");
            }
        }
        self.next_id = snap.next_ids.into_iter().collect();
        for e in snap.entries.into_iter().rev() {
            self.entries.push_front(QueuedPdu {
                next_hop: e.next_hop,
                pdu: e.pdu,
                sent: e.sent,
                packet_id: e.packet_id,
            });
        }
        Ok(())
    }

    /// The queued PDUs in order, left in place (a copy handed ahead of a drain).
    pub fn pdus(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|e| e.pdu.as_slice())
    }

    /// Remove and return everything queued (e.g. to hand it to a migration target). A PDU
    /// already partly sent is returned whole; its receiver will count the fragment lost.
    pub fn drain(&mut self) -> Vec<QueuedPdu> {
        self.entries
            .drain(..)
            .map(|mut e| {
                e.sent = 0;
                e.packet_id = None;
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TbView;

    fn hdr() -> MacHeader {
        MacHeader {
            src: Rnti(0x101),
            dst: Rnti(0x102),
            seq: 0,
            segments: 0,
            backlog: 0,
            grant: Rnti::NONE,
        }
    }

    #[test]
    fn several_pdus_in_one_tb_exact_fit() {
        let mut q = TxQueue::new(8);
        for k in 0..3u8 {
            assert!(q.push(Rnti(0x102), vec![k; 10]).is_ok());
        }
        // Exactly 3 × (7 + 10) bytes after the header: no padding.
        let mut w = TbWriter::new(MAC_HEADER_LEN + 51).unwrap_or_else(|| panic!("fits"));
        assert_eq!(q.fill(Rnti(0x102), &mut w), 3);
        assert_eq!(w.payload_room(), 0);
        let tb = w.finish(hdr()).unwrap_or_else(|e| panic!("{e}"));
        let v = TbView::parse(&tb).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.padding, 0);
        assert_eq!(v.segments.len(), 3);
        for (k, (sh, p)) in v.segments.iter().enumerate() {
            assert_eq!((sh.packet_id, sh.offset, sh.last), (k as u16, 0, true));
            assert_eq!(*p, &[k as u8; 10][..]);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn big_pdu_spans_tbs_and_other_next_hops_wait() {
        let mut q = TxQueue::new(8);
        assert!(q.push(Rnti(0x102), vec![7; 100]).is_ok());
        assert!(q.push(Rnti(0x103), vec![8; 5]).is_ok());
        let mut offsets = Vec::new();
        while q.head_next_hop() == Some(Rnti(0x102)) {
            let mut w =
                TbWriter::new(MAC_HEADER_LEN + SUBHEADER_LEN + 30).unwrap_or_else(|| panic!());
            q.fill(Rnti(0x102), &mut w);
            let tb = w.finish(hdr()).unwrap_or_else(|e| panic!("{e}"));
            let v = TbView::parse(&tb).unwrap_or_else(|e| panic!("{e}"));
            let (sh, p) = v.segments[0];
            offsets.push((sh.offset, sh.len, sh.last, p.len()));
        }
        assert_eq!(
            offsets,
            vec![
                (0, 30, false, 30),
                (30, 30, false, 30),
                (60, 30, false, 30),
                (90, 10, true, 10)
            ]
        );
        assert_eq!(q.head_next_hop(), Some(Rnti(0x103)));
    }

    #[test]
    fn bounded_depth_and_tiny_tb() {
        let mut q = TxQueue::new(2);
        assert!(q.push(Rnti(1), vec![1]).is_ok());
        assert!(q.push(Rnti(1), vec![2]).is_ok());
        assert_eq!(q.push(Rnti(1), vec![3]), Err(vec![3]));
        assert_eq!(q.push(Rnti(1), vec![]), Err(vec![]));
        assert!(TbWriter::new(MAC_HEADER_LEN - 1).is_none());
        let mut w = TbWriter::new(MAC_HEADER_LEN + SUBHEADER_LEN).unwrap_or_else(|| panic!());
        assert_eq!(w.payload_room(), 0);
        assert_eq!(q.fill(Rnti(1), &mut w), 0);
        assert_eq!(q.len(), 2);
    }
}
