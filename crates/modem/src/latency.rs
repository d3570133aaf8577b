//! The link's round-trip floor: the shortest, median and longest ping round trip the modem's
//! pipeline allows over a TDD frame, with no queueing and no processing time. Pure.
//!
//! The model is the real-time loop of `run`: RX subframe `k` is complete (and decoded) at
//! radio time `k + 1`; after it, TX is built up to `k + tx_lead`, so a packet that reaches
//! the modem at time `t` can go out in subframe `⌊t⌋ + tx_lead` at the earliest, and only in
//! a subframe of its direction that carries a TB (a slave's U, a master's D; S carries none).
//! A ping from a slave: request up, the far side answers at once, reply down. A packet that
//! needs `tbs` TBs takes that many subframes of its direction.

use crate::phylink::{LinkError, PhyLink};
use ferry_mac::wire::{MAC_HEADER_LEN, SUBHEADER_LEN};
use ferry_mac::SubframeKind;
use ferry_migrate::Control;

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

/// Transport blocks a packet of `ip_bytes` takes on `link`: its smallest non-empty TB, each
/// TB carrying the MAC header and one segment subheader (`ferry_mac::wire`).
pub fn tbs_for(link: &PhyLink, ip_bytes: usize) -> u64 {
    let per_tb = (0..10)
        .map(|sf| link.mac_capacity(sf))
        .filter(|&c| c > 0)
        .min()
        .unwrap_or(0)
        .saturating_sub(MAC_HEADER_LEN + SUBHEADER_LEN)
        .max(1);
    ip_bytes.div_ceil(per_tb).max(1) as u64
}

/// The floor of a ping of `ip_bytes` (IP header included) over the link `control`
/// describes, with a TX lead of `tx_lead` subframes, and what it assumes (for reports).
pub fn rtt_floor_for(
    control: &Control,
    tx_lead: u64,
    ip_bytes: usize,
) -> Result<(RttFloor, String), LinkError> {
    let link = PhyLink::new(control)?;
    let tbs = tbs_for(&link, ip_bytes);
    let (floor, frame) = if link.is_fdd() {
        (rtt_floor_fdd(tx_lead, tbs), "FDD".to_string())
    } else {
        let p = ferry_mac::schedule::tdd_pattern(control.dl_ul_assign)
            .map_err(|e| LinkError::Unsupported(e.to_string()))?;
        (
            rtt_floor_tdd(&p, tx_lead, tbs),
            format!("TDD configuration {}", control.dl_ul_assign),
        )
    };
    let s = if tbs == 1 { "" } else { "s" };
    Ok((
        floor,
        format!("{frame}, TX lead {tx_lead} ms, {ip_bytes}-byte packet in {tbs} TB{s} each way"),
    ))
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

    #[test]
    fn a_packet_takes_as_many_tbs_as_its_bytes_need_at_each_bandwidth() {
        let control = |bw: serde_json::Value, rb: u8| {
            Control::from_value(&serde_json::json!({
                "workmode": 0, "phy_cell_ID": 1, "group_ID": 0, "cell_ID": 1, "CPtype": 0,
                "BW": bw, "RBIdx": rb, "duplexMode": 0, "numAntennaTX": 1, "numAntennaRX": 1,
                "DLULAssign": 1, "trans_mode": 1, "type_mode": 1, "RNTI": 265
            }))
            .unwrap()
        };
        let narrow = control(1.4.into(), 6);
        let link = PhyLink::new(&narrow).unwrap();
        let cap = (0..10)
            .map(|sf| link.mac_capacity(sf))
            .filter(|&c| c > 0)
            .min()
            .unwrap();
        let per_tb = cap - MAC_HEADER_LEN - SUBHEADER_LEN;
        assert_eq!(tbs_for(&link, 1), 1);
        assert_eq!(tbs_for(&link, per_tb), 1);
        assert_eq!(tbs_for(&link, per_tb + 1), 2);
        // The harq demo's 84-byte ping at 1.4 MHz QPSK: two TBs, 23.5 ms median.
        let (f, note) = rtt_floor_for(&narrow, 8, 84).unwrap();
        assert!((f.median_ms - 23.5).abs() < 0.02, "{f:?}");
        assert!(
            note.contains("TDD configuration 1") && note.contains("2 TBs"),
            "{note}"
        );
        // At 3 MHz the same ping fits one TB: the floor drops by the two extra subframes.
        let (f3, note3) = rtt_floor_for(&control(3.into(), 15), 8, 84).unwrap();
        assert!((f3.median_ms - 21.5).abs() < 0.02, "{f3:?} {note3}");
        assert!(note3.contains("1 TB each"), "{note3}");
    }
}
