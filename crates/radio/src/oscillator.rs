//! The emulated radio room's sample clock against the host clock: a crystal oscillator with a
//! fixed frequency error in ppm and an optional slow drift (warm-up, temperature), the way a
//! free-running USRP without a GPSDO behaves. Pure: elapsed host time in, samples due out.
//!
//! All radios of one `ferry air` share this clock (they share one air and one sample
//! counter, like radios locked to one 10 MHz reference); what it emulates is the radio clock
//! running at a rate the hosts do not know, which the modems must track
//! (`ferry_modem::clock`). Sampling-frequency offsets *between* radios are not modelled.

/// Oscillator error model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Oscillator {
    /// Frequency error at start, parts per million (positive: the radio runs fast).
    pub ppm: f64,
    /// Change of the error per hour of running, ppm/h.
    pub drift_ppm_per_hour: f64,
}

impl Oscillator {
    /// An oscillator `ppm` off with no drift.
    pub fn new(ppm: f64, drift_ppm_per_hour: f64) -> Oscillator {
        Oscillator {
            ppm,
            drift_ppm_per_hour,
        }
    }

    /// Whether it is exact (the default: the clock is the host's).
    pub fn is_exact(&self) -> bool {
        self.ppm == 0.0 && self.drift_ppm_per_hour == 0.0
    }

    /// Samples the radio has produced `elapsed_s` host seconds after start at nominal
    /// `rate_hz`: the integral of `rate · (1 + (ppm + drift · t/3600) · 1e-6)`.
    pub fn samples_due(&self, elapsed_s: f64, rate_hz: f64) -> u64 {
        let t = elapsed_s.max(0.0);
        let err = self.ppm * t + self.drift_ppm_per_hour * t * t / 7200.0;
        (rate_hz * (t + err * 1e-6)).max(0.0) as u64
    }

    /// Host seconds after start at which sample `n` is due (inverse of [`samples_due`]).
    ///
    /// [`samples_due`]: Oscillator::samples_due
    pub fn due_at(&self, n: u64, rate_hz: f64) -> f64 {
        let target = n as f64 / rate_hz;
        let mut t = target;
        // Newton on t + (ppm·t + d·t²/7200)·1e-6 = target: the correction is tiny, two steps
        // are exact to far below a sample.
        for _ in 0..3 {
            let f = t + (self.ppm * t + self.drift_ppm_per_hour * t * t / 7200.0) * 1e-6 - target;
            let df = 1.0 + (self.ppm + self.drift_ppm_per_hour * t / 3600.0) * 1e-6;
            t -= f / df;
        }
        t.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_by_default() {
        let o = Oscillator::default();
        assert!(o.is_exact());
        assert_eq!(o.samples_due(2.0, 1_920_000.0), 3_840_000);
        assert!((o.due_at(3_840_000, 1_920_000.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn ppm_error_accumulates_as_a_real_crystal_does() {
        // 50 ppm slow for 134 s: 6.7 ms of radio time behind the host (the figure at which
        // the first build's modem stopped transmitting).
        let o = Oscillator::new(-50.0, 0.0);
        let rate = 1_920_000.0;
        let behind = 134.0 * rate - o.samples_due(134.0, rate) as f64;
        assert!((behind / rate - 0.0067).abs() < 1e-6, "{}", behind / rate);
        let fast = Oscillator::new(100.0, 0.0);
        assert_eq!(fast.samples_due(10.0, 1e6), 10_001_000);
    }

    #[test]
    fn drift_adds_quadratically_and_due_at_inverts() {
        let o = Oscillator::new(10.0, 20.0);
        let rate = 1_920_000.0;
        // After one hour: 10 ppm·3600 s + 20 ppm/h · 3600²/7200 s = 0.036 + 0.036 s.
        let ahead = o.samples_due(3600.0, rate) as f64 - 3600.0 * rate;
        assert!((ahead / rate - 0.072).abs() < 1e-6, "{}", ahead / rate);
        for n in [0u64, 1, 1920, 1_920_000_000, 6_912_000_000] {
            let t = o.due_at(n, rate);
            let back = o.samples_due(t + 0.5 / rate, rate);
            assert!(back.abs_diff(n) <= 1, "{n} -> {t} -> {back}");
        }
    }
}
