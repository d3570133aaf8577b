//! Radio clock tracking: where the radio's sample clock is *now*, seen from the host.
//!
//! The modem stamps TX for radio time "now + lead", but it only ever sees radio time in the
//! past: an RX block that ends at sample `s` arrives at host time `h`, some transport delay
//! after the radio produced it. The *lag* `h − s/rate` is the host-side offset of the radio
//! clock plus that delay. Its lower envelope is the pure transport delay; everything above
//! it is scheduling jitter and stalls.
//!
//! The first build kept a running minimum of the lag that never forgot. That is exact for a
//! radio whose oscillator runs at exactly the nominal rate, and wrong for every real one: a
//! radio 50 ppm slow makes the lag grow 50 µs per second, the stale minimum puts "radio now"
//! further ahead of the truth every second, and after ~134 s the TX timestamps run past what
//! the radio buffers (measured: TX stopped, every probe lost). Free-running USRP oscillators
//! are specified at ±2.5 ppm only with a GPSDO; others drift more, and the host clock itself
//! is slewed by NTP.
//!
//! This tracker is a **windowed minimum with a rate fit**: the lag's minimum is taken over
//! short windows (scheduling jitter averages out, a stall only raises a window's minimum),
//! a straight line is fitted through the last windows' minima by least squares (slope =
//! the rate error, i.e. the oscillator's ppm against the host), and the line is lowered until
//! no minimum lies below it (the envelope, not the mean). The open window's own minimum is
//! used at once when it lies below the line, so a clock that turns out faster than the fit
//! is followed within one block. A PLL would also work; the window fit was chosen because
//! its behaviour is easy to bound (error ≤ the envelope's jitter plus slope error × window
//! span), it needs no loop-gain tuning per sample rate, and it forgets a step in at most
//! `windows × window` seconds even when nobody calls [`RadioClock::reset`].
//!
//! Pure: host time comes in as seconds since an arbitrary origin. Tested on a virtual clock
//! over simulated hours at ±100 ppm.

use std::collections::VecDeque;

/// Tuning of a [`RadioClock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockConfig {
    /// Length of one minimum window, seconds.
    pub window_s: f64,
    /// Closed windows kept for the fit.
    pub windows: usize,
    /// A lag this far below the tracked envelope is a clock step (the radio was reset or
    /// re-initialised), not a fast packet: the history is dropped.
    pub step_s: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        // 32 × 0.25 s = 8 s of history: at 100 ppm the lag moves 0.8 ms across it, which
        // the fit follows; a window holds hundreds of RX blocks, so its minimum is close to
        // the pure transport delay.
        ClockConfig {
            window_s: 0.25,
            windows: 32,
            step_s: 0.050,
        }
    }
}

/// One closed window: the host time of its smallest lag, and that lag (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Minimum {
    host_s: f64,
    lag_s: f64,
}

/// The fitted envelope `lag(h) = offset + slope · (h − origin)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Envelope {
    origin_s: f64,
    offset_s: f64,
    slope: f64,
}

impl Envelope {
    fn at(&self, host_s: f64) -> f64 {
        self.offset_s + self.slope * (host_s - self.origin_s)
    }
}

/// Tracks the offset and rate of a radio's sample clock against the host clock.
#[derive(Debug, Clone)]
pub struct RadioClock {
    cfg: ClockConfig,
    rate_hz: f64,
    history: VecDeque<Minimum>,
    /// The open window: its start and its smallest lag so far.
    open: Option<(f64, Minimum)>,
    envelope: Option<Envelope>,
    steps: u64,
    observations: u64,
}

impl RadioClock {
    /// A tracker for a radio streaming at `rate_hz` nominal samples per second.
    pub fn new(rate_hz: f64, cfg: ClockConfig) -> RadioClock {
        RadioClock {
            cfg,
            rate_hz,
            history: VecDeque::with_capacity(cfg.windows + 1),
            open: None,
            envelope: None,
            steps: 0,
            observations: 0,
        }
    }

    /// Forgets everything (loss of sync, a new link, a re-initialised radio).
    pub fn reset(&mut self) {
        self.history.clear();
        self.open = None;
        self.envelope = None;
    }

    /// Notes that the RX block ending at radio sample `radio_end` arrived at `host_s`.
    pub fn observe(&mut self, host_s: f64, radio_end: u64) {
        let lag = host_s - radio_end as f64 / self.rate_hz;
        if let Some(expected) = self.lag_at(host_s) {
            if lag < expected - self.cfg.step_s {
                // Far earlier than any block before could have been: the radio clock
                // stepped (a re-initialised radio counts from a new origin).
                self.steps += 1;
                self.reset();
            }
        }
        self.observations += 1;
        let here = Minimum { host_s, lag_s: lag };
        match &mut self.open {
            Some((start, m)) if host_s - *start < self.cfg.window_s => {
                if lag <= m.lag_s {
                    *m = here;
                }
            }
            Some((_, m)) => {
                let closed = *m;
                self.open = Some((host_s, here));
                self.close(closed);
            }
            None => self.open = Some((host_s, here)),
        }
    }

    fn close(&mut self, m: Minimum) {
        if self
            .envelope
            .is_some_and(|e| m.lag_s > e.at(m.host_s) + self.cfg.step_s)
        {
            // A whole window without one block near the envelope: the radio clock stepped
            // back (or the path got slower for good). Either way the old line is wrong.
            self.steps += 1;
            self.history.clear();
        }
        self.history.push_back(m);
        while self.history.len() > self.cfg.windows {
            self.history.pop_front();
        }
        self.envelope = Some(fit(&self.history));
    }

    /// The lag envelope at `host_s`: the fitted line, or the open window's minimum carried
    /// along the fitted slope when that lies lower.
    fn lag_at(&self, host_s: f64) -> Option<f64> {
        let slope = self.envelope.map_or(0.0, |e| e.slope);
        let open = self
            .open
            .map(|(_, m)| m.lag_s + slope * (host_s - m.host_s));
        match (self.envelope.map(|e| e.at(host_s)), open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Estimated radio sample time at host time `host_s` (`None` before the first block).
    /// It errs on the early side by the transport delay's floor: TX stamped "now + lead"
    /// from it is never behind the radio by more than the lead.
    pub fn radio_now(&self, host_s: f64) -> Option<u64> {
        let lag = self.lag_at(host_s)?;
        Some(((host_s - lag) * self.rate_hz).max(0.0) as u64)
    }

    /// The radio oscillator's error against the host in ppm (positive = the radio runs
    /// fast), once two windows have closed.
    pub fn ppm(&self) -> Option<f64> {
        (self.history.len() >= 2).then(|| -self.envelope.map_or(0.0, |e| e.slope) * 1e6)
    }

    /// Clock steps detected so far (each one reset the tracker).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// RX blocks observed since creation.
    pub fn observations(&self) -> u64 {
        self.observations
    }
}

/// Least-squares line through the minima, lowered so that no minimum lies below it.
fn fit(points: &VecDeque<Minimum>) -> Envelope {
    let n = points.len() as f64;
    let origin_s = points.back().map_or(0.0, |p| p.host_s);
    let (mut sx, mut sy) = (0.0, 0.0);
    for p in points {
        sx += p.host_s - origin_s;
        sy += p.lag_s;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for p in points {
        let dx = p.host_s - origin_s - mx;
        sxx += dx * dx;
        sxy += dx * (p.lag_s - my);
    }
    // A span under a millisecond says nothing about the rate.
    let slope = if sxx > 1e-6 { sxy / sxx } else { 0.0 };
    let mut offset_s = my - slope * mx;
    for p in points {
        let below = offset_s + slope * (p.host_s - origin_s) - p.lag_s;
        if below > 0.0 {
            offset_s -= below;
        }
    }
    Envelope {
        origin_s,
        offset_s,
        slope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*) for jitter: uniform in (0, 1].
    struct Jitter(u64);
    impl Jitter {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        }
    }

    const RATE: f64 = 1_920_000.0;

    /// A radio whose oscillator is `ppm` off (plus `drift_ppm_per_h` of slow drift),
    /// started at host time 0, streaming 1 ms blocks that arrive after 0.3 ms plus
    /// exponential jitter (mean 0.4 ms), with a 40 ms stall every ~20 s. Returns the
    /// worst error of the estimate (true − estimated radio time, in samples) over the
    /// run after the first second, as (most negative, most positive).
    fn run(ppm: f64, drift_ppm_per_h: f64, hours: f64, seed: u64) -> (f64, f64, RadioClock) {
        let mut rng = Jitter(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut clock = RadioClock::new(RATE, ClockConfig::default());
        // Radio samples produced by host time h (the integral of the oscillator's rate).
        let radio_at =
            |h: f64| RATE * (h + ppm * 1e-6 * h + drift_ppm_per_h * 1e-6 * h * h / 7200.0);
        let block = (RATE / 1000.0) as u64;
        let mut end = block;
        let mut worst = (0.0f64, 0.0f64);
        let mut stall_until = 0.0;
        loop {
            // Host time at which the radio finished this block (invert radio_at by Newton).
            let mut h = end as f64 / RATE;
            for _ in 0..3 {
                let slope = RATE * (1.0 + ppm * 1e-6 + drift_ppm_per_h * 1e-6 * h / 3600.0);
                h -= (radio_at(h) - end as f64) / slope;
            }
            if h > hours * 3600.0 {
                break;
            }
            let u = rng.uniform();
            let mut arrive = h + 0.0003 + -u.ln() * 0.0004;
            if rng.uniform() < 1.0 / 20_000.0 {
                stall_until = arrive + 0.040;
            }
            if arrive < stall_until {
                arrive = stall_until;
            }
            clock.observe(arrive, end);
            if arrive > 1.0 {
                let est = clock.radio_now(arrive).expect("estimate") as f64;
                let err = radio_at(arrive) - est;
                worst = (worst.0.min(err), worst.1.max(err));
            }
            end += block;
        }
        (worst.0, worst.1, clock)
    }

    #[test]
    fn tracks_a_radio_100_ppm_off_for_an_hour_either_way() {
        for (ppm, seed) in [(-100.0, 1), (-50.0, 2), (0.0, 3), (50.0, 4), (100.0, 5)] {
            let (lo, hi, clock) = run(ppm, 0.0, 1.0, seed);
            // Never ahead of the radio by more than a few samples (TX is never stamped in
            // the radio's past), never behind by more than the 0.3 ms floor plus jitter
            // of the envelope: 0.5 ms = 960 samples, well inside a 2–4 subframe TX lead.
            assert!(
                lo > -20.0,
                "{ppm} ppm: estimate ahead of the radio by {} samples",
                -lo
            );
            assert!(
                hi < 960.0,
                "{ppm} ppm: estimate behind the radio by {hi} samples"
            );
            let est = clock.ppm().expect("rate");
            assert!((est - ppm).abs() < 2.0, "{ppm} ppm estimated as {est}");
        }
    }

    #[test]
    fn follows_a_slowly_drifting_oscillator() {
        // 30 ppm off, drifting another 20 ppm per hour (a radio warming up), for 3 hours.
        let (lo, hi, clock) = run(30.0, 20.0, 3.0, 7);
        assert!(lo > -20.0 && hi < 960.0, "error range {lo}..{hi} samples");
        let est = clock.ppm().expect("rate");
        assert!(
            (est - 90.0).abs() < 3.0,
            "ppm at the end {est}, expected ~90"
        );
    }

    #[test]
    fn the_old_running_minimum_fails_where_the_tracker_does_not() {
        // The regression this module exists for: a running minimum that never forgets
        // drifts ahead of a 50 ppm slow radio by 50 µs per second (6.7 ms after 134 s).
        let ppm = -50.0;
        let mut min_lag = f64::INFINITY;
        let mut clock = RadioClock::new(RATE, ClockConfig::default());
        let block = (RATE / 1000.0) as u64;
        let (mut old_err, mut new_err) = (0.0, 0.0);
        for k in 1..=140_000u64 {
            let end = k * block;
            let host = end as f64 / (RATE * (1.0 + ppm * 1e-6)) + 0.0003;
            min_lag = f64::min(min_lag, host - end as f64 / RATE);
            clock.observe(host, end);
            let truth = (host - 0.0003) * RATE * (1.0 + ppm * 1e-6);
            old_err = truth - (host - min_lag) * RATE;
            new_err = truth - clock.radio_now(host).expect("estimate") as f64;
        }
        assert!(
            old_err < -0.006 * RATE,
            "old estimate ahead by {} s",
            -old_err / RATE
        );
        assert!(
            new_err.abs() < 0.0004 * RATE,
            "tracker off by {} s",
            new_err / RATE
        );
    }

    #[test]
    fn a_clock_step_resets_the_estimate() {
        let mut clock = RadioClock::new(RATE, ClockConfig::default());
        let block = (RATE / 1000.0) as u64;
        for k in 1..=5_000u64 {
            clock.observe(k as f64 / 1000.0 + 0.0003, k * block);
        }
        // The radio is re-initialised at host 5.0 s and counts from a new origin far ahead
        // (a re-tuned clock, a restarted radio head with another epoch).
        let base = 1_000_000_000u64;
        for k in 1..=2_000u64 {
            clock.observe(5.0 + k as f64 / 1000.0 + 0.0003, base + k * block);
        }
        assert_eq!(clock.steps(), 1);
        let now = clock.radio_now(7.0 + 0.0003).expect("estimate") as f64;
        let truth = (base + 2_000 * block) as f64;
        assert!((now - truth).abs() < 0.0005 * RATE, "{now} vs {truth}");
    }

    #[test]
    fn a_clock_that_restarts_from_zero_is_followed_within_two_windows() {
        // A step backwards (lag jumps up) cannot be told from a stall by one block; a whole
        // window far above the envelope can.
        let cfg = ClockConfig::default();
        let mut clock = RadioClock::new(RATE, cfg);
        let block = (RATE / 1000.0) as u64;
        for k in 1..=5_000u64 {
            clock.observe(k as f64 / 1000.0 + 0.0003, 1_000_000 + k * block);
        }
        let span = 2.5 * cfg.window_s;
        let n = (span * 1000.0) as u64;
        for k in 1..=n {
            clock.observe(5.0 + k as f64 / 1000.0 + 0.0003, k * block);
        }
        let host = 5.0 + n as f64 / 1000.0 + 0.0003;
        let now = clock.radio_now(host).expect("estimate") as f64;
        let truth = (n * block) as f64;
        assert!((now - truth).abs() < 0.0005 * RATE, "{now} vs {truth}");
        assert_eq!(clock.steps(), 1);
    }

    #[test]
    fn reset_forgets() {
        let mut clock = RadioClock::new(RATE, ClockConfig::default());
        clock.observe(1.0, 1920);
        assert!(clock.radio_now(1.0).is_some());
        clock.reset();
        assert_eq!(clock.radio_now(1.0), None);
        assert_eq!(clock.ppm(), None);
    }
}
