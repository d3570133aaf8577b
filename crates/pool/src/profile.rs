//! Tidal-day activity profiles: how busy a cell is at each hour of a weekday, relative to
//! its own peak (1.0), for office, residential and mixed areas; and the compression of a
//! 24 h day into a shorter run.
//!
//! The 24 hourly values are shaped after the published daily activity curves of the Telecom
//! Italia "Big Data Challenge" Milan dataset (Barlacchi et al., Scientific Data 2:150055,
//! 2015): a business district peaks late morning and early afternoon and is nearly empty at
//! night, a residential area peaks in the evening and keeps a higher night floor. They are
//! **our reading of those shapes, not averages computed from the dataset**; docs/POOL.md says
//! so and lists them.

use serde::{Deserialize, Serialize};

/// One of the area types the pool simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AreaKind {
    Office,
    Residential,
    Mixed,
}

impl AreaKind {
    pub const ALL: [AreaKind; 3] = [AreaKind::Office, AreaKind::Residential, AreaKind::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            AreaKind::Office => "office",
            AreaKind::Residential => "residential",
            AreaKind::Mixed => "mixed",
        }
    }

    pub fn parse(text: &str) -> Option<AreaKind> {
        AreaKind::ALL
            .into_iter()
            .find(|k| k.name() == text.trim().to_ascii_lowercase())
    }

    /// Activity at the start of each hour 00..23, relative to the area's peak.
    pub fn hourly(self) -> [f64; 24] {
        match self {
            AreaKind::Office => OFFICE,
            AreaKind::Residential => RESIDENTIAL,
            AreaKind::Mixed => mixed(),
        }
    }

    /// Activity at `second_of_day` (0..86400, wrapped), linear between the hourly points.
    pub fn activity(self, second_of_day: f64) -> f64 {
        let hourly = self.hourly();
        let s = if second_of_day.is_finite() {
            second_of_day.rem_euclid(86_400.0)
        } else {
            0.0
        };
        let h = s / 3600.0;
        let i = h.floor() as usize % 24;
        let frac = h - h.floor();
        hourly[i] * (1.0 - frac) + hourly[(i + 1) % 24] * frac
    }
}

/// Business district (weekday).
const OFFICE: [f64; 24] = [
    0.12, 0.08, 0.06, 0.05, 0.05, 0.06, 0.10, 0.25, 0.55, 0.85, 0.97, 1.00, 0.92, 0.90, 0.97, 0.98,
    0.93, 0.80, 0.55, 0.35, 0.25, 0.20, 0.17, 0.14,
];

/// Residential area (weekday).
const RESIDENTIAL: [f64; 24] = [
    0.45, 0.28, 0.17, 0.12, 0.10, 0.11, 0.18, 0.35, 0.45, 0.42, 0.40, 0.42, 0.48, 0.50, 0.45, 0.45,
    0.50, 0.60, 0.72, 0.82, 0.92, 1.00, 0.90, 0.70,
];

/// A mixed area: the mean of office and residential, renormalised to a peak of 1.
fn mixed() -> [f64; 24] {
    let mut out = [0.0; 24];
    for (h, v) in out.iter_mut().enumerate() {
        *v = (OFFICE[h] + RESIDENTIAL[h]) / 2.0;
    }
    let peak = out.iter().cloned().fold(0.0, f64::max);
    for v in out.iter_mut() {
        *v /= peak;
    }
    out
}

/// A day of 24 h played in `day_ms` of run time (e.g. 4 min): maps run time to the second
/// of the simulated day.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressedDay {
    pub day_ms: u64,
}

impl CompressedDay {
    pub const REAL: CompressedDay = CompressedDay { day_ms: 86_400_000 };

    /// The second of the simulated day at `run_ms` since the start of the run.
    pub fn second_of_day(&self, run_ms: u64) -> f64 {
        let day = self.day_ms.max(1) as f64;
        (run_ms as f64 % day) / day * 86_400.0
    }

    /// Run-time milliseconds that one simulated second takes (boot times scale with it).
    pub fn run_ms_per_simulated_s(&self) -> f64 {
        self.day_ms.max(1) as f64 / 86_400.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_one_and_tides_are_opposite() {
        for kind in AreaKind::ALL {
            let h = kind.hourly();
            let peak = h.iter().cloned().fold(0.0, f64::max);
            assert!((peak - 1.0).abs() < 1e-12, "{kind:?}");
            assert!(h.iter().all(|v| *v > 0.0 && *v <= 1.0));
        }
        // Office busy at 11:00 and empty at 03:00; residential the other way at 21:00.
        assert!(AreaKind::Office.activity(11.0 * 3600.0) > 0.9);
        assert!(AreaKind::Office.activity(21.0 * 3600.0) < 0.3);
        assert!(AreaKind::Residential.activity(21.0 * 3600.0) > 0.9);
        assert!(AreaKind::Residential.activity(11.0 * 3600.0) < 0.5);
    }

    #[test]
    fn activity_interpolates_and_wraps() {
        let o = AreaKind::Office;
        let half = o.activity(7.5 * 3600.0);
        assert!((half - (0.25 + 0.55) / 2.0).abs() < 1e-12);
        assert!((o.activity(86_400.0 + 3600.0) - o.activity(3600.0)).abs() < 1e-12);
        assert!((o.activity(23.5 * 3600.0) - (0.14 + 0.12) / 2.0).abs() < 1e-12);
        assert_eq!(AreaKind::parse(" Mixed"), Some(AreaKind::Mixed));
        assert_eq!(AreaKind::parse("rural"), None);
    }

    #[test]
    fn compressed_day_maps_run_time_to_day_time() {
        let day = CompressedDay { day_ms: 240_000 }; // 24 h in 4 min
        assert!((day.second_of_day(120_000) - 43_200.0).abs() < 1e-9);
        assert!((day.second_of_day(240_000 + 10_000) - 3600.0).abs() < 1e-9);
        assert!((day.run_ms_per_simulated_s() - 240_000.0 / 86_400.0).abs() < 1e-12);
    }
}
