//! Receive side of segmentation: rebuilds PDUs from in-order segments per (transmitter,
//! receiver) stream, with a timeout, bounded memory, and exact loss accounting from packet-ID
//! gaps — a lost TB drops the PDUs it carried, counts them, and never wedges the stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::Rnti;
use crate::wire::SegmentHeader;

/// Bounds of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassemblyLimits {
    /// Subframes (ms) a partial PDU may wait for its next segment before it is dropped.
    pub timeout: u64,
    /// Concurrent streams (transmitter × receiver-RNTI); the least recently active is evicted.
    pub max_streams: usize,
    /// Largest PDU accepted; larger ones are dropped while arriving.
    pub max_pdu: usize,
    /// Packet-ID jumps larger than this are treated as the transmitter restarting (e.g. a
    /// migrated relay) rather than as that many losses.
    pub max_gap: u16,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            timeout: 100,
            max_streams: 64,
            max_pdu: 9216,
            max_gap: 1024,
        }
    }
}

/// What the reassembler counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassemblyStats {
    /// PDUs completed.
    pub completed: u64,
    /// PDUs lost: missing IDs, broken segment chains, timeouts, evictions, oversize.
    pub lost: u64,
    /// Of `lost`: partial PDUs dropped by the timeout.
    pub timeouts: u64,
    /// Of `lost`: partial PDUs dropped because their stream was evicted.
    pub evicted: u64,
    /// Of `lost`: PDUs larger than `max_pdu`.
    pub oversize: u64,
    /// Packet-ID jumps beyond `max_gap` (not counted as losses).
    pub resyncs: u64,
}

#[derive(Debug, Clone)]
struct Partial {
    id: u16,
    buf: Vec<u8>,
    last_segment: u64,
}

#[derive(Debug, Clone, Default)]
struct Stream {
    expected: Option<u16>,
    partial: Option<Partial>,
    dead: Option<u16>,
    active: u64,
}

/// Reassembles PDUs from segments.
#[derive(Debug, Clone, Default)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    streams: BTreeMap<(Rnti, Rnti), Stream>,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            streams: BTreeMap::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// PDUs currently partially received.
    pub fn in_progress(&self) -> usize {
        self.streams
            .values()
            .filter(|s| s.partial.is_some())
            .count()
    }

    /// Buffered bytes of partial PDUs.
    pub fn buffered_bytes(&self) -> usize {
        self.streams
            .values()
            .filter_map(|s| s.partial.as_ref())
            .map(|p| p.buf.len())
            .sum()
    }

    /// Forget everything a transmitter sent (e.g. it restarted): partial PDUs count as lost.
    pub fn forget(&mut self, src: Rnti) {
        let keys: Vec<_> = self
            .streams
            .keys()
            .filter(|k| k.0 == src)
            .copied()
            .collect();
        for k in keys {
            if let Some(s) = self.streams.remove(&k) {
                if s.partial.is_some() {
                    self.stats.lost += 1;
                }
            }
        }
    }

    /// Drop partial PDUs whose next segment is overdue.
    pub fn poll(&mut self, now: u64) {
        let timeout = self.limits.timeout;
        for s in self.streams.values_mut() {
            if let Some(p) = &s.partial {
                if now.saturating_sub(p.last_segment) > timeout {
                    s.dead = Some(p.id);
                    s.partial = None;
                    self.stats.lost += 1;
                    self.stats.timeouts += 1;
                }
            }
        }
    }

    /// Take one data segment received at subframe `now` from `src` addressed to `dst`;
    /// returns the PDU it completes, if any.
    pub fn on_segment(
        &mut self,
        now: u64,
        src: Rnti,
        dst: Rnti,
        sh: &SegmentHeader,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        self.make_room(src, dst);
        let limits = self.limits;
        let stats = &mut self.stats;
        let s = self.streams.entry((src, dst)).or_default();
        s.active = now;
        let id = sh.packet_id;

        // Continuation of the PDU in progress.
        if let Some(p) = s.partial.as_mut().filter(|p| p.id == id) {
            if usize::from(sh.offset) != p.buf.len() {
                s.partial = None;
                s.dead = Some(id);
                stats.lost += 1;
                return None;
            }
            if p.buf.len() + payload.len() > limits.max_pdu {
                s.partial = None;
                s.dead = Some(id);
                stats.lost += 1;
                stats.oversize += 1;
                return None;
            }
            p.buf.extend_from_slice(payload);
            p.last_segment = now;
            if sh.last {
                let done = s.partial.take().map(|p| p.buf);
                stats.completed += 1;
                return done;
            }
            return None;
        }
        // The rest of a PDU already counted lost.
        if s.dead == Some(id) {
            return None;
        }
        // A new packet ID: whatever was in progress will never be finished.
        s.dead = None;
        if s.partial.take().is_some() {
            stats.lost += 1;
        }
        if let Some(exp) = s.expected {
            let gap = id.wrapping_sub(exp);
            if gap <= limits.max_gap {
                stats.lost += u64::from(gap);
            } else {
                stats.resyncs += 1;
            }
        }
        s.expected = Some(id.wrapping_add(1));
        if sh.offset != 0 {
            // Its first segment was in a lost TB.
            s.dead = Some(id);
            stats.lost += 1;
            return None;
        }
        if payload.len() > limits.max_pdu {
            s.dead = Some(id);
            stats.lost += 1;
            stats.oversize += 1;
            return None;
        }
        if sh.last {
            stats.completed += 1;
            return Some(payload.to_vec());
        }
        s.partial = Some(Partial {
            id,
            buf: payload.to_vec(),
            last_segment: now,
        });
        None
    }

    fn make_room(&mut self, src: Rnti, dst: Rnti) {
        if self.streams.contains_key(&(src, dst)) || self.streams.len() < self.limits.max_streams {
            return;
        }
        let oldest = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.active)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            if let Some(s) = self.streams.remove(&k) {
                if s.partial.is_some() {
                    self.stats.lost += 1;
                    self.stats.evicted += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SegmentKind;

    const A: Rnti = Rnti(0x101);
    const B: Rnti = Rnti(0x102);

    fn seg(id: u16, offset: u16, len: u16, last: bool) -> SegmentHeader {
        SegmentHeader {
            kind: SegmentKind::Data,
            last,
            packet_id: id,
            offset,
            len,
        }
    }

    #[test]
    fn in_order_segments_complete() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert_eq!(r.on_segment(0, A, B, &seg(0, 0, 3, false), b"abc"), None);
        assert_eq!(r.in_progress(), 1);
        assert_eq!(
            r.on_segment(1, A, B, &seg(0, 3, 2, true), b"de"),
            Some(b"abcde".to_vec())
        );
        assert_eq!(
            r.on_segment(1, A, B, &seg(1, 0, 1, true), b"f"),
            Some(b"f".to_vec())
        );
        assert_eq!(r.stats().completed, 2);
        assert_eq!(r.stats().lost, 0);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn lost_tb_in_the_middle_of_a_pdu_drops_it_and_counts_once() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.on_segment(0, A, B, &seg(0, 0, 3, false), b"abc");
        // Segment at offset 3 lost; offsets 6 and 9 arrive.
        assert_eq!(r.on_segment(2, A, B, &seg(0, 6, 3, false), b"ghi"), None);
        assert_eq!(r.on_segment(3, A, B, &seg(0, 9, 1, true), b"j"), None);
        assert_eq!(r.stats().lost, 1);
        // The stream continues with the next PDU.
        assert_eq!(
            r.on_segment(4, A, B, &seg(1, 0, 1, true), b"k"),
            Some(b"k".to_vec())
        );
        assert_eq!(r.stats().lost, 1);
    }

    #[test]
    fn whole_pdus_in_a_lost_tb_counted_from_id_gap() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.on_segment(0, A, B, &seg(0, 0, 1, true), b"a");
        // PDU 1 (whole) and the start of PDU 2 were in a lost TB; PDU 2's tail arrives.
        assert_eq!(r.on_segment(2, A, B, &seg(2, 5, 1, true), b"z"), None);
        assert_eq!(r.stats().lost, 2);
        assert_eq!(
            r.on_segment(3, A, B, &seg(3, 0, 1, true), b"c"),
            Some(b"c".to_vec())
        );
        assert_eq!(r.stats().lost, 2);
    }

    #[test]
    fn timeout_drops_partial_and_frees_memory() {
        let mut r = Reassembler::new(ReassemblyLimits {
            timeout: 10,
            ..Default::default()
        });
        r.on_segment(0, A, B, &seg(0, 0, 3, false), b"abc");
        r.poll(10);
        assert_eq!(r.in_progress(), 1);
        r.poll(11);
        assert_eq!(r.in_progress(), 0);
        assert_eq!((r.stats().lost, r.stats().timeouts), (1, 1));
        // A late tail is ignored, not counted twice.
        assert_eq!(r.on_segment(12, A, B, &seg(0, 3, 1, true), b"d"), None);
        assert_eq!(r.stats().lost, 1);
    }

    #[test]
    fn stream_count_and_pdu_size_bounded() {
        let limits = ReassemblyLimits {
            max_streams: 2,
            max_pdu: 4,
            ..Default::default()
        };
        let mut r = Reassembler::new(limits);
        r.on_segment(0, Rnti(1), B, &seg(0, 0, 1, false), b"a");
        r.on_segment(1, Rnti(2), B, &seg(0, 0, 1, false), b"a");
        r.on_segment(2, Rnti(3), B, &seg(0, 0, 1, false), b"a");
        assert_eq!(r.in_progress(), 2);
        assert_eq!((r.stats().lost, r.stats().evicted), (1, 1));
        r.on_segment(3, Rnti(3), B, &seg(0, 1, 4, true), b"bcde");
        assert_eq!(r.stats().oversize, 1);
        assert!(r.buffered_bytes() <= 2 * 4);
    }

    #[test]
    fn restart_of_transmitter_is_a_resync_not_thousands_of_losses() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.on_segment(0, A, B, &seg(40_000, 0, 1, true), b"a");
        r.on_segment(1, A, B, &seg(0, 0, 1, true), b"b");
        assert_eq!(r.stats().lost, 0);
        assert_eq!(r.stats().resyncs, 1);
        // Wrap-around is a normal step.
        r.on_segment(2, A, B, &seg(u16::MAX, 0, 1, true), b"c");
        r.on_segment(3, A, B, &seg(0, 0, 1, true), b"d");
        assert_eq!(r.stats().completed, 4);
    }
}
