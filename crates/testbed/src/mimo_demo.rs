//! The two-antenna experiment (issue #15 item 3): the thesis testbed with the pool and far
//! radios as two-channel B210s, the task serving on server1 and the far end on server3, the
//! far radio's receivers made noisy (its own noise floor on each antenna, so the downlink
//! degrades while the uplink stays at 30 dB), and ping from server3 to the task, once per
//! antenna configuration (1×1, 2×2 SFBC + MRC, ...) at each noise level, on the same air.
//! It measures the downlink's block error rate (CRC failures / TBs at the far end) and the
//! ping loss per configuration: the over-the-air diversity gain.

use crate::ping::{PingReport, PingRun};
use crate::session::{self, Bed, SessionError};
use crate::topology::POOL_TUN;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct MimoOptions {
    /// The `ferry` binary started in the namespaces.
    pub ferry: PathBuf,
    /// Namespace prefix of the testbed.
    pub prefix: String,
    /// The far radio's receiver noise floors to run at (dBFS, per antenna; the downlink
    /// arrives at about −30 dBFS per antenna).
    pub noise_floors_dbfs: Vec<f64>,
    /// (numAntennaTX, numAntennaRX) of every modem, per run, in order.
    pub antennas: Vec<(u8, u8)>,
    /// Rayleigh fading of every antenna pair with this maximum Doppler (Hz); `None`: static.
    pub fading_doppler_hz: Option<f64>,
    /// Ping interval (ms).
    pub interval_ms: u64,
    /// How long each run pings.
    pub duration: Duration,
    /// How long to wait for the first ping to pass (a run whose link never comes up is
    /// measured anyway: every ping lost).
    pub first_ping_timeout: Duration,
}

impl MimoOptions {
    /// Defaults: 1×1 against 2×2 at three noise levels around the single antenna's
    /// threshold, 20 s of 20 ms pings each, static antenna pairs.
    pub fn new(ferry: PathBuf, prefix: &str) -> MimoOptions {
        MimoOptions {
            ferry,
            prefix: prefix.to_string(),
            noise_floors_dbfs: vec![-29.0, -27.0, -25.0],
            antennas: vec![(1, 1), (2, 2)],
            fading_doppler_hz: None,
            interval_ms: 20,
            duration: Duration::from_secs(20),
            first_ping_timeout: Duration::from_secs(40),
        }
    }
}

/// One run: one noise level, one antenna configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MimoRun {
    /// The far radio's noise floor per antenna (dBFS).
    pub noise_floor_dbfs: f64,
    /// numAntennaTX of every modem.
    pub antennas_tx: u8,
    /// numAntennaRX of every modem.
    pub antennas_rx: u8,
    /// The first ping passed within the timeout.
    pub link_up: bool,
    /// The far modem's own SNR estimate (CRS, antenna 0), dB.
    pub far_snr_db: Option<f64>,
    /// Pings sent (those of the run's last second not counted).
    pub sent: u64,
    /// Pings lost.
    pub lost: u64,
    /// Loss in percent.
    pub loss_pct: f64,
    /// Median round-trip time of the answered pings (ms).
    pub rtt_median_ms: f64,
    /// Downlink TBs (data and filler) the far end decoded during the run.
    pub far_decode_ok: u64,
    /// Downlink CRC failures.
    pub far_decode_fail: u64,
    /// Block error rate: failures / (decoded + failures).
    pub bler: f64,
    /// Uplink TBs the task decoded / failed.
    pub up_decode_ok: u64,
    /// Uplink CRC failures.
    pub up_decode_fail: u64,
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MimoReport {
    /// Ping interval (ms).
    pub interval_ms: u64,
    /// Seconds of ping per run.
    pub duration_s: f64,
    /// Fading Doppler (Hz), if any.
    pub fading_doppler_hz: Option<f64>,
    /// Runs in order (per noise level, per antenna configuration).
    pub runs: Vec<MimoRun>,
}

impl MimoReport {
    /// The noise floor (dBFS) at which configuration (tx, rx) reaches `bler`, interpolated
    /// linearly in log10(BLER) between the two measured levels around it.
    pub fn noise_at_bler(&self, tx: u8, rx: u8, bler: f64) -> Option<f64> {
        let mut pts: Vec<(f64, f64)> = self
            .runs
            .iter()
            .filter(|r| r.antennas_tx == tx && r.antennas_rx == rx)
            .map(|r| (r.noise_floor_dbfs, r.bler.clamp(1e-4, 1.0).log10()))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let target = bler.log10();
        pts.windows(2).find_map(|w| {
            let ((n0, b0), (n1, b1)) = (w[0], w[1]);
            // BLER grows with the noise floor.
            (b0 <= target && target <= b1 && b1 > b0)
                .then(|| n0 + (target - b0) / (b1 - b0) * (n1 - n0))
        })
    }

    /// A text table, with the gain of each configuration over 1×1 at 10 % BLER.
    pub fn render_text(&self) -> String {
        let mut s = format!(
            "Two antennas over a noisy downlink ({} ms pings, {:.0} s per run, {})\n\
             noise dBFS  TXxRX  SNR dB   BLER     TBs  sent  lost  loss %  RTT med  up-BLER\n",
            self.interval_ms,
            self.duration_s,
            self.fading_doppler_hz
                .map_or("static antenna pairs".into(), |d| format!(
                    "Rayleigh fading, {d} Hz Doppler"
                )),
        );
        for r in &self.runs {
            s += &format!(
                "{:>10.1}  {}x{}    {:>6}  {:>5.1}%  {:>6} {:>5} {:>5} {:>6.1}  {:>7.1}  {:>6.1}%{}\n",
                r.noise_floor_dbfs,
                r.antennas_tx,
                r.antennas_rx,
                r.far_snr_db.map_or("-".into(), |v| format!("{v:.1}")),
                100.0 * r.bler,
                r.far_decode_ok + r.far_decode_fail,
                r.sent,
                r.lost,
                r.loss_pct,
                r.rtt_median_ms,
                100.0 * r.up_decode_fail as f64 / (r.up_decode_ok + r.up_decode_fail).max(1) as f64,
                if r.link_up { "" } else { "  (link never up)" },
            );
        }
        let mut configs: Vec<(u8, u8)> = self
            .runs
            .iter()
            .map(|r| (r.antennas_tx, r.antennas_rx))
            .collect();
        configs.sort_unstable();
        configs.dedup();
        let one = self.noise_at_bler(1, 1, 0.1);
        for (tx, rx) in configs.into_iter().filter(|c| *c != (1, 1)) {
            match (one, self.noise_at_bler(tx, rx, 0.1)) {
                (Some(a), Some(b)) => {
                    s += &format!(
                        "{tx}x{rx} reaches 10 % BLER at {b:.1} dBFS, 1x1 at {a:.1} dBFS: a gain of {:.1} dB\n",
                        b - a
                    )
                }
                _ => {
                    s += &format!(
                        "{tx}x{rx}: gain at 10 % BLER not measurable (the noise levels do not bracket 10 % for both)\n"
                    )
                }
            }
        }
        s
    }
}

fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// One run on a fresh testbed.
fn run_one(
    opts: &MimoOptions,
    noise: f64,
    (tx, rx): (u8, u8),
    progress: &mut dyn FnMut(&str),
) -> Result<MimoRun, SessionError> {
    let mut bed = Bed::up(&opts.ferry, &opts.prefix)?;
    bed.far_noise_floor_dbfs = Some(noise);
    bed.two_channel_radios = true;
    bed.fading_doppler_hz = opts.fading_doppler_hz;
    bed.modem_flags = vec![
        format!("--antennas-tx={tx}"),
        format!("--antennas-rx={rx}"),
        "--harq=off".into(),
    ];
    progress(&format!(
        "noise floor {noise} dBFS, {tx}x{rx}: starting the testbed"
    ));
    bed.start_air(false)?;
    bed.start_far()?;
    bed.start_agent(false, 1)?;
    bed.start_agent(false, 2)?;
    session::sleep(Duration::from_millis(600))?;
    bed.check_alive()?;
    bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)?;
    bed.send(1, "start_d2d", r#"{"control_flag":0}"#)?;
    let link_up = match bed.wait_first_ping(opts.first_ping_timeout) {
        Ok(_) => true,
        Err(SessionError::Failed(e)) => {
            progress(&format!("{tx}x{rx} at {noise} dBFS: {e}; measuring anyway"));
            false
        }
        Err(e) => return Err(e),
    };
    session::sleep(Duration::from_secs(1))?;
    let far0 = bed.modem_status("far.sock").unwrap_or_default();
    let pool0 = bed.modem_status("s1.sock").unwrap_or_default();
    let ping = PingRun::start(
        Some(&bed.ns("server3")),
        IpAddr::V4(POOL_TUN),
        opts.interval_ms,
    )
    .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
    session::sleep(opts.duration)?;
    let rep: PingReport = ping
        .stop()
        .map_err(|e| SessionError::Failed(format!("ping: {e}")))?;
    session::sleep(Duration::from_millis(300))?;
    bed.check_alive()?;
    let far1 = bed.modem_status("far.sock").unwrap_or_default();
    let pool1 = bed.modem_status("s1.sock").unwrap_or_default();
    let d =
        |a: &serde_json::Value, b: &serde_json::Value, p: &[&str]| u(b, p).saturating_sub(u(a, p));
    let ok = d(&far0, &far1, &["counters", "decode_ok"]);
    let fail = d(&far0, &far1, &["counters", "decode_fail"]);
    let last = rep.samples.iter().map(|s| s.t_ms).fold(0.0, f64::max);
    let counted: Vec<_> = rep
        .samples
        .iter()
        .filter(|s| s.t_ms <= last - 1000.0)
        .collect();
    let mut rtts: Vec<f64> = counted.iter().filter_map(|s| s.rtt_ms).collect();
    rtts.sort_by(f64::total_cmp);
    let sent = counted.len() as u64;
    let lost = counted.iter().filter(|s| s.rtt_ms.is_none()).count() as u64;
    Ok(MimoRun {
        noise_floor_dbfs: noise,
        antennas_tx: tx,
        antennas_rx: rx,
        link_up,
        far_snr_db: far1["snr_db"].as_f64(),
        sent,
        lost,
        loss_pct: if sent > 0 {
            100.0 * lost as f64 / sent as f64
        } else {
            0.0
        },
        rtt_median_ms: rtts.get(rtts.len() / 2).copied().unwrap_or(f64::NAN),
        far_decode_ok: ok,
        far_decode_fail: fail,
        bler: if ok + fail > 0 {
            fail as f64 / (ok + fail) as f64
        } else {
            1.0
        },
        up_decode_ok: d(&pool0, &pool1, &["counters", "decode_ok"]),
        up_decode_fail: d(&pool0, &pool1, &["counters", "decode_fail"]),
    })
}

/// Runs every noise level with every antenna configuration.
pub fn run(opts: &MimoOptions, progress: &mut dyn FnMut(&str)) -> Result<MimoReport, SessionError> {
    let mut runs = Vec::new();
    for &noise in &opts.noise_floors_dbfs {
        for &ant in &opts.antennas {
            let r = run_one(opts, noise, ant, progress)?;
            progress(&format!(
                "noise {noise} dBFS {}x{}: BLER {:.1} % of {} TBs, {} of {} pings lost",
                ant.0,
                ant.1,
                100.0 * r.bler,
                r.far_decode_ok + r.far_decode_fail,
                r.lost,
                r.sent,
            ));
            runs.push(r);
        }
    }
    Ok(MimoReport {
        interval_ms: opts.interval_ms,
        duration_s: opts.duration.as_secs_f64(),
        fading_doppler_hz: opts.fading_doppler_hz,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(noise: f64, tx: u8, bler: f64) -> MimoRun {
        MimoRun {
            noise_floor_dbfs: noise,
            antennas_tx: tx,
            antennas_rx: tx,
            link_up: true,
            far_snr_db: None,
            sent: 0,
            lost: 0,
            loss_pct: 0.0,
            rtt_median_ms: 0.0,
            far_decode_ok: 0,
            far_decode_fail: 0,
            bler,
            up_decode_ok: 0,
            up_decode_fail: 0,
        }
    }

    #[test]
    fn gain_is_the_noise_difference_at_ten_percent() {
        let rep = MimoReport {
            interval_ms: 20,
            duration_s: 1.0,
            fading_doppler_hz: None,
            runs: vec![
                run(-30.0, 1, 0.01),
                run(-30.0, 2, 0.0001),
                run(-28.0, 1, 1.0),
                run(-28.0, 2, 0.001),
                run(-26.0, 2, 0.01),
                run(-24.0, 2, 1.0),
            ],
        };
        let one = rep.noise_at_bler(1, 1, 0.1).unwrap();
        let two = rep.noise_at_bler(2, 2, 0.1).unwrap();
        assert!((one - -29.0).abs() < 1e-9 && (two - -25.0).abs() < 1e-9);
        let text = rep.render_text();
        assert!(text.contains("a gain of 4.0 dB"), "{text}");
        assert_eq!(text.matches("gain").count(), 1, "{text}");
        assert!(rep.noise_at_bler(2, 1, 0.1).is_none());
    }
}
