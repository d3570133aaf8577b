//! A synthetic pool along a tidal day: cells with a bandwidth, a modulation, a peak PRB use
//! and an area profile; their CPU demand at any second of the day, with the look-ahead the
//! scheduler needs to wake servers before the ramp. Seeded by the caller's choices (no RNG
//! here: the shell draws the mix).

use serde::{Deserialize, Serialize};

use crate::cost::{cell_cores, Bandwidth, Modulation};
use crate::profile::AreaKind;
use crate::scheduler::CellDemand;

/// A simulated cell's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellTraffic {
    pub bandwidth: Bandwidth,
    pub modulation: Modulation,
    /// PRB use at the area's peak hour (0..=1).
    pub peak_prb_use: f64,
    pub area: AreaKind,
}

impl CellTraffic {
    /// CPU cores at `second_of_day`.
    pub fn cores_at(&self, second_of_day: f64) -> f64 {
        let prb = self.peak_prb_use * self.area.activity(second_of_day);
        cell_cores(self.bandwidth, self.modulation, prb)
    }

    /// The most cores over the day (sampled every 5 minutes; the profile is piecewise linear
    /// between hours, so the hourly points are its maxima and they are among the samples).
    pub fn peak_cores(&self) -> f64 {
        (0..288)
            .map(|i| self.cores_at(i as f64 * 300.0))
            .fold(0.0, f64::max)
    }

    /// Demand now and the most over the next `lookahead_s` (sampled each minute and at the
    /// end), so a server woken now is warm before the ramp reaches it.
    pub fn demand(&self, second_of_day: f64, lookahead_s: f64) -> CellDemand {
        let now = self.cores_at(second_of_day);
        let steps = (lookahead_s / 60.0).ceil().max(1.0) as usize;
        let mut ahead = now;
        for k in 1..=steps {
            let t = second_of_day + lookahead_s * k as f64 / steps as f64;
            ahead = ahead.max(self.cores_at(t));
        }
        CellDemand { now, ahead }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_ahead_sees_the_ramp_before_it_comes() {
        let cell = CellTraffic {
            bandwidth: Bandwidth::Mhz10,
            modulation: Modulation::Qam16,
            peak_prb_use: 0.8,
            area: AreaKind::Office,
        };
        // 07:00, 10 minutes ahead: the morning ramp is already in `ahead`.
        let d = cell.demand(7.0 * 3600.0, 600.0);
        assert!(d.ahead > d.now);
        assert!((d.ahead - cell.cores_at(7.0 * 3600.0 + 600.0)).abs() < 1e-12);
        // 19:00: falling, ahead is now.
        let d = cell.demand(19.0 * 3600.0, 600.0);
        assert_eq!(d.ahead, d.now);
        assert!(cell.peak_cores() >= cell.cores_at(11.0 * 3600.0) - 1e-12);
    }
}
