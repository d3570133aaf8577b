//! The link's round-trip floor: the shortest, median and longest ping round trip the modem's
//! pipeline allows over a TDD frame, with no queueing and no processing time. Pure.
//!
//! The model is the real-time loop of `run`: RX subframe `k` is complete (and decoded) at
//! radio time `k + 1`; after it, TX is built up to `k + tx_lead`, so a packet that reaches
//! the modem at time `t` can go out in subframe `⌊t⌋ + tx_lead` at the earliest, and only in
//! a subframe of its direction that carries a TB (a slave's U, a master's D; S carries none).
//! A ping from a slave: request up, the far side answers at once, reply down. A packet that
//! needs `tbs` TBs takes that many subframes of its direction.

use ferry_mac::SubframeKind;

/// Round-trip floor over arrival times spread evenly across a frame (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttFloor {
    /// Shortest.
    pub min_ms: f64,
    /// Median.
    pub median_ms: f64,
    /// Longest.
    pub max_ms: f64,
}

fn next_of(pattern: &[SubframeKind; 10], from: u64, kind: SubframeKind) -> u64 {
    (from..from + 10)
        .find(|&k| pattern[(k % 10) as usize] == kind)
        .unwrap_or(from)
}

/// Floor of a slave's ping to its master over the TDD `pattern` (FDD: [`rtt_floor_fdd`]).
pub fn rtt_floor_tdd(pattern: &[SubframeKind; 10], tx_lead: u64, tbs: u64) -> RttFloor {
    let tbs = tbs.max(1);
    let mut v: Vec<f64> = (0..1000)
        .map(|i| {
            let t = f64::from(i) / 100.0;
            let mut u = next_of(pattern, t as u64 + tx_lead, SubframeKind::Uplink);
            for _ in 1..tbs {
                u = next_of(pattern, u + 1, SubframeKind::Uplink);
            }
            let mut d = next_of(pattern, u + 1 + tx_lead, SubframeKind::Downlink);
            for _ in 1..tbs {
                d = next_of(pattern, d + 1, SubframeKind::Downlink);
            }
            (d + 1) as f64 - t
        })
        .collect();
    v.sort_by(f64::total_cmp);
    RttFloor {
        min_ms: v[0],
        median_ms: v[v.len() / 2],
        max_ms: v[v.len() - 1],
    }
}

/// [`rtt_floor_tdd`] for TDD configuration `config` (`DLULAssign` 0..=6).
pub fn rtt_floor_tdd_config(config: u8, tx_lead: u64, tbs: u64) -> Option<RttFloor> {
    ferry_mac::schedule::tdd_pattern(config)
        .ok()
        .map(|p| rtt_floor_tdd(&p, tx_lead, tbs))
}

/// Floor of a ping over FDD (every subframe usable in both directions, on two carriers).
pub fn rtt_floor_fdd(tx_lead: u64, tbs: u64) -> RttFloor {
    let tbs = tbs.max(1);
    // Up in ⌊t⌋ + lead (+ tbs − 1), answered at its end, down lead + 1 later (+ tbs − 1).
    let one = |t: f64| {
        let u = t as u64 + tx_lead + tbs - 1;
        let d = u + 1 + tx_lead + tbs - 1;
        (d + 1) as f64 - t
    };
    let v: Vec<f64> = (0..100).map(|i| one(f64::from(i) / 100.0)).collect();
    let mut s = v.clone();
    s.sort_by(f64::total_cmp);
    RttFloor {
        min_ms: s[0],
        median_ms: s[s.len() / 2],
        max_ms: s[s.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_mac::schedule::tdd_pattern;

    #[test]
    fn tdd_config_1_floor_follows_the_lead_and_the_frame() {
        let p = tdd_pattern(1).unwrap();
        // Lead 8, one TB each way: the request waits for a U ≥ ⌊t⌋+8, the reply for a D
        // ≥ U+9: 19–24 ms, median 21.5.
        let f = rtt_floor_tdd(&p, 8, 1);
        assert!(
            (f.min_ms - 19.0).abs() < 0.02 && (f.max_ms - 24.0).abs() < 0.02,
            "{f:?}"
        );
        assert!((f.median_ms - 21.5).abs() < 0.02, "{f:?}");
        // Two TBs each way (an 84-byte ping at 1.4 MHz QPSK) add two subframes.
        let f2 = rtt_floor_tdd(&p, 8, 2);
        assert!((f2.median_ms - 23.5).abs() < 0.02, "{f2:?}");
        // Each millisecond of lead is two on the round trip.
        let f4 = rtt_floor_tdd(&p, 4, 1);
        assert!(
            (f.median_ms - f4.median_ms - 9.0).abs() < 0.02,
            "{f4:?} vs {f:?}"
        );
    }

    #[test]
    fn fdd_floor_is_two_leads_and_two_subframes() {
        // Up in ⌊t⌋+8, down in ⌊t⌋+17, heard at ⌊t⌋+18: 17–18 ms.
        let f = rtt_floor_fdd(8, 1);
        assert!(f.min_ms > 17.0 && (f.max_ms - 18.0).abs() < 0.02, "{f:?}");
    }
}
