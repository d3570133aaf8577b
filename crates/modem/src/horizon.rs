//! Which received fronthaul blocks are plausible on the radio's clock. The radio's sample
//! clock runs with wall time, so a genuine block's timestamp lies a little behind "now"
//! as tracked from earlier blocks; a block far ahead (a forged timestamp) or hopelessly old
//! is dropped and counted, never followed — one spoofed packet an hour ahead must not make
//! the subframe assembler jump there and refuse every real sample as old.
//!
//! The clock is tracked as the largest `radio time − rate × wall time` seen over blocks
//! that continue the stream without a gap (a forged block would have to land exactly on
//! the next expected sample to move it, and by at most the horizon). If no block fits for
//! a while but the refused ones form a contiguous stream of their own, the tracker
//! re-anchors on them (a radio clock restart, or a first block that was forged).
//!
//! Pure: wall time comes in as a `Duration` since any fixed origin.

use std::time::Duration;

/// What to do with a received block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Plausible: process it.
    Accept,
    /// Its timestamp is beyond the horizon ahead of the radio clock.
    Ahead,
    /// Its timestamp is hopelessly old.
    Old,
}

/// Settings of the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HorizonConfig {
    /// Radio samples per second.
    pub rate: u64,
    /// Samples a block may end ahead of the tracked clock (latency and clock wander).
    pub ahead: u64,
    /// Samples a block may start behind the tracked clock.
    pub behind: u64,
    /// With nothing accepted for this long, a contiguous run of refused blocks re-anchors.
    pub reanchor_after: Duration,
    /// Contiguous refused blocks needed to re-anchor.
    pub reanchor_blocks: u32,
}

impl HorizonConfig {
    /// Defaults for a radio at `rate` Hz: 5 subframes ahead, 1 s behind, re-anchor after
    /// 50 ms of 32 contiguous refused blocks.
    pub fn for_rate(rate: u64) -> HorizonConfig {
        HorizonConfig {
            rate,
            ahead: 5 * (rate / 1000).max(1),
            behind: rate.max(1),
            reanchor_after: Duration::from_millis(50),
            reanchor_blocks: 32,
        }
    }
}

/// The radio-clock tracker.
#[derive(Debug, Clone)]
pub struct RxHorizon {
    cfg: HorizonConfig,
    /// max(radio end − rate × wall) over accepted contiguous blocks, in samples.
    offset: Option<i128>,
    /// End of the last accepted block (the next sample the stream should bring).
    next: Option<u64>,
    last_accept: Option<Duration>,
    /// A contiguous run of refused blocks: (next sample it expects, blocks in it).
    refused_run: Option<(u64, u32)>,
}

impl RxHorizon {
    /// A tracker with no clock yet (the first block anchors it).
    pub fn new(cfg: HorizonConfig) -> RxHorizon {
        RxHorizon {
            cfg,
            offset: None,
            next: None,
            last_accept: None,
            refused_run: None,
        }
    }

    fn samples_at(&self, wall: Duration) -> i128 {
        (wall.as_nanos() as i128) * i128::from(self.cfg.rate) / 1_000_000_000
    }

    /// The tracked radio time at `wall`, if anchored.
    pub fn radio_now(&self, wall: Duration) -> Option<u64> {
        self.offset
            .map(|o| u64::try_from((self.samples_at(wall) + o).max(0)).unwrap_or(u64::MAX))
    }

    /// Judge a block of `len` samples starting at radio time `t`, received at `wall`.
    pub fn check(&mut self, t: u64, len: u64, wall: Duration) -> Verdict {
        let end = t.saturating_add(len);
        let verdict = match self.radio_now(wall) {
            None => Verdict::Accept,
            Some(now) if end > now.saturating_add(self.cfg.ahead) => Verdict::Ahead,
            Some(now) if t.saturating_add(self.cfg.behind) < now => Verdict::Old,
            Some(_) => Verdict::Accept,
        };
        match verdict {
            Verdict::Accept => {
                self.accept(t, end, wall);
                Verdict::Accept
            }
            refused => {
                let run = match self.refused_run {
                    Some((next, k)) if next == t => k.saturating_add(1),
                    _ => 1,
                };
                self.refused_run = Some((end, run));
                let starved = self
                    .last_accept
                    .is_none_or(|a| wall.saturating_sub(a) >= self.cfg.reanchor_after);
                if starved && run >= self.cfg.reanchor_blocks {
                    // The real stream is the one that keeps coming: follow it.
                    self.offset = None;
                    self.accept(t, end, wall);
                    return Verdict::Accept;
                }
                refused
            }
        }
    }

    fn accept(&mut self, t: u64, end: u64, wall: Duration) {
        let here = i128::from(end) - self.samples_at(wall);
        let contiguous = self.next == Some(t);
        self.offset = match self.offset {
            None => Some(here),
            Some(o) if contiguous => Some(o.max(here)),
            Some(o) => Some(o),
        };
        self.next = Some(end);
        self.last_accept = Some(wall);
        self.refused_run = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: u64 = 1_920_000;
    const SPP: u64 = 363;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e3)
    }

    /// The genuine stream: packet k ends at radio time (k+1)·363 (plus 2 s of radio clock
    /// before the test starts), arriving 0.2 ms later.
    fn real(k: u64) -> (u64, Duration) {
        let t = k * SPP + 2 * RATE;
        let wall = (t + SPP) as f64 / RATE as f64 * 1e3 + 0.2;
        (t, ms(wall))
    }

    #[test]
    fn a_packet_an_hour_ahead_is_dropped_and_the_stream_continues() {
        let mut h = RxHorizon::new(HorizonConfig::for_rate(RATE));
        for k in 0..100 {
            let (t, w) = real(k);
            assert_eq!(h.check(t, SPP, w), Verdict::Accept);
        }
        let (_, w) = real(100);
        assert_eq!(h.check(3600 * RATE, 100, w), Verdict::Ahead);
        for k in 100..200 {
            let (t, w) = real(k);
            assert_eq!(h.check(t, SPP, w), Verdict::Accept, "real packet {k}");
        }
        // Hopelessly old (2 s back) is refused too; a bit late is fine.
        let (t, w) = real(200);
        assert_eq!(h.check(t.saturating_sub(2 * RATE), 100, w), Verdict::Old);
        assert_eq!(h.check(t - 3 * SPP, SPP, w), Verdict::Accept);
    }

    #[test]
    fn forged_packets_within_the_horizon_cannot_walk_the_clock_away() {
        let mut h = RxHorizon::new(HorizonConfig::for_rate(RATE));
        let ahead = HorizonConfig::for_rate(RATE).ahead;
        let mut forged_ahead = 0;
        for k in 0..2000 {
            let (t, w) = real(k);
            assert_eq!(h.check(t, SPP, w), Verdict::Accept, "real packet {k}");
            // After every real packet, a forged one just inside the horizon.
            let now = h.radio_now(w).unwrap();
            if h.check(now + ahead - 100, 100, w) == Verdict::Accept {
                forged_ahead += 1;
            }
        }
        let (_, w) = real(2000);
        let now = h.radio_now(w).unwrap();
        let truth = real(2001).0;
        assert!(now <= truth + 1000, "clock walked to {now} (truth {truth})");
        assert!(forged_ahead > 0);
    }

    #[test]
    fn a_forged_first_packet_is_outlived_by_the_real_stream() {
        let mut h = RxHorizon::new(HorizonConfig::for_rate(RATE));
        assert_eq!(
            h.check(3600 * RATE, 100, real(0).1),
            Verdict::Accept,
            "nothing to compare the first block with"
        );
        let mut accepted = 0;
        for k in 0..400 {
            let (t, w) = real(k);
            if h.check(t, SPP, w) == Verdict::Accept {
                accepted += 1;
            }
        }
        // About 50 ms (265 packets) refused, then the real stream is followed again.
        assert!((100..=150).contains(&accepted), "accepted {accepted}");
        let (t, w) = real(400);
        assert_eq!(h.check(t, SPP, w), Verdict::Accept);
        assert_eq!(h.check(3600 * RATE, 100, w), Verdict::Ahead);
    }

    #[test]
    fn a_stalled_modem_accepts_its_backlog() {
        let mut h = RxHorizon::new(HorizonConfig::for_rate(RATE));
        for k in 0..10 {
            let (t, w) = real(k);
            h.check(t, SPP, w);
        }
        // 100 ms stall: the packets queued meanwhile are read in a burst, all plausible.
        let late = real(10).1 + ms(100.0);
        for k in 10..540 {
            assert_eq!(h.check(real(k).0, SPP, late), Verdict::Accept, "{k}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(blocks in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 0..50)) {
            let mut h = RxHorizon::new(HorizonConfig::for_rate(RATE));
            for (t, n, w) in blocks {
                let _ = h.check(t, n, Duration::from_nanos(w));
            }
        }
    }
}
