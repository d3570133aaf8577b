//! `ferry air` configuration (JSON): the sample clock, the radios with their RF settings and
//! fronthaul addresses, and the channel between each pair. The built-in default reproduces
//! the thesis topology.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rf::{RadioModel, RfConfig, RfError};
use ferry_fronthaul::control::{CaptureFormat, CaptureStream};

/// One emulated radio unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioConfig {
    /// Name used in link control and stream IDs (order in the list gives the radio number).
    pub name: String,
    /// The radio's own fronthaul UDP address (an N210 is 192.168.10.2; port 0 = any free).
    pub fronthaul: SocketAddr,
    /// RF parameters, validated at power-up.
    #[serde(default)]
    pub rf: RfConfig,
    /// Time from power-up until the radio is initialised and discoverable, in ms.
    #[serde(default = "default_init_ms")]
    pub init_ms: u64,
    /// Legacy N210-like mode: stream only to this host address (and accept TX only from
    /// its IP), e.g. 192.168.10.1:49200. Link control cannot move such a radio.
    #[serde(default)]
    pub legacy_host: Option<SocketAddr>,
    /// What this radio serves, for humans.
    #[serde(default)]
    pub description: String,
    /// This radio's receiver noise floor in dBFS, overriding the air's `noise_floor_dbfs`
    /// (a receiver with a worse noise figure, or one further from its peers: e.g. the far
    /// end of a noisy downlink while the uplink stays clean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_floor_dbfs: Option<f64>,
    /// RX (= TX) channels this radio streams: 1, or 2 on a model that has two (B210, X310).
    /// Each channel is one antenna in the air and its own VITA-49 stream on the fronthaul.
    #[serde(default = "default_channels", skip_serializing_if = "is_one_channel")]
    pub channels: u8,
}

fn default_channels() -> u8 {
    1
}

fn is_one_channel(c: &u8) -> bool {
    *c == 1
}

/// Flat fading of every antenna pair (docs/RADIO.md, "Two antennas").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FadingConfig {
    /// Maximum Doppler shift in Hz: each antenna pair's complex gain is a seeded Rayleigh
    /// process with Clarke's spectrum, coherence time ≈ 0.423 / doppler_hz.
    pub doppler_hz: f64,
}

fn default_rt() -> Option<u8> {
    Some(20)
}

fn default_catchup() -> Option<u64> {
    Some(100)
}

fn default_liveness() -> u64 {
    4
}

fn default_fallback_liveness() -> u64 {
    8
}

fn default_init_ms() -> u64 {
    2500
}

/// The channel between two radios (applies in both directions; the reverse direction
/// sees the opposite frequency offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// One radio's name.
    pub a: String,
    /// The other radio's name.
    pub b: String,
    /// Path gain in dB, or `null` for a blocked pair (nothing passes).
    pub gain_db: Option<f64>,
    /// Carrier frequency offset seen by `b` receiving `a`, in Hz.
    #[serde(default)]
    pub cfo_hz: f64,
    /// Propagation delay in whole samples.
    #[serde(default)]
    pub delay_samples: usize,
}

/// A capture started from the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Radio name.
    pub radio: String,
    /// RX or TX.
    pub stream: CaptureStream,
    /// Sample format.
    pub format: CaptureFormat,
    /// Base path (without `.sigmf-meta` / `.sigmf-data`).
    pub path: String,
    /// Samples to record.
    pub samples: u64,
}

/// The whole air.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirConfig {
    /// Sample rate of the common clock in Hz (every radio's `rf.rate_hz` must equal it).
    pub sample_rate_hz: u32,
    /// Samples per tick (1 ms at 1.92 Msps = 1920).
    pub tick_samples: usize,
    /// Maximum samples per RX data packet (default 363: the largest whose IPv4/UDP datagram
    /// fits a 1500-byte MTU, `ferry_fronthaul::vrt::samples_per_packet_for_mtu`).
    pub samples_per_packet: usize,
    /// Noise floor at every receiver in dBFS (total power), or `null` for none.
    pub noise_floor_dbfs: Option<f64>,
    /// Seed of the noise generator.
    pub seed: u64,
    /// ZeroMQ endpoint of the link-control REP socket (`tcp://127.0.0.1:*` = any port).
    pub control: String,
    /// How far ahead of the air (in ms) hosts may queue TX before packets count as early.
    pub tx_horizon_ms: u64,
    /// Context packets are sent on every link change and this often (ms).
    pub context_interval_ms: u64,
    /// If the process falls this far behind real time it skips air time (counted as clock
    /// slips) instead of bursting stale samples; `null` never skips (tests).
    #[serde(default = "default_catchup")]
    pub max_catchup_ms: Option<u64>,
    /// Real-time (SCHED_RR) priority of the air thread, as UHD gives its streaming threads;
    /// `null` = normal scheduling. Without root it falls back to normal with a warning.
    #[serde(default = "default_rt")]
    pub realtime_priority: Option<u8>,
    /// The radios.
    pub radios: Vec<RadioConfig>,
    /// Channels between pairs; pairs not listed are blocked.
    pub links: Vec<LinkConfig>,
    /// Captures to start at power-up.
    #[serde(default)]
    pub captures: Vec<CaptureConfig>,
    /// Frequency error of the radio room's sample clock against the host clock, ppm
    /// (positive: the radios run fast), as a free-running oscillator has; 0 = exact.
    #[serde(default)]
    pub clock_ppm: f64,
    /// Slow drift of that error, ppm per hour (warm-up, temperature).
    #[serde(default)]
    pub clock_drift_ppm_per_hour: f64,
    /// A primary that sends no TX for this many subframes is declared dead when a standby
    /// or fallback host can take over (docs/FAULTS.md); 0 never declares it. The default,
    /// 4, puts detection + switch within 5 ms (issue #12) and still covers the longest TX
    /// gap of a TDD master (configuration 0: three uplink subframes); hosts heartbeat every
    /// subframe anyway.
    #[serde(default = "default_liveness")]
    pub liveness_subframes: u64,
    /// The same while a make-before-break fallback is in its grace (the source kept warm
    /// after T). Longer by default (8): a false fallback rolls a whole migration back, and
    /// on a loaded 2-core host a live destination's TX occasionally pauses for 5 ms; a
    /// destination that really died costs 3 ms more outage. At least `liveness_subframes`.
    #[serde(default = "default_fallback_liveness")]
    pub fallback_liveness_subframes: u64,
    /// The only directory `capture` requests write into (files named by the radio);
    /// `null`: `capture` requests are refused.
    #[serde(default)]
    pub capture_dir: Option<std::path::PathBuf>,
    /// Largest `capture` request, in samples.
    #[serde(default = "default_capture_cap")]
    pub max_capture_samples: u64,
    /// Link-control authentication (key and this radio room's identity); `None` takes
    /// unsigned requests (library tests only: `ferry air` and `ferry radiohead` require a
    /// key). Never in the JSON configuration: the key comes from a file.
    #[serde(skip)]
    pub auth: Option<LinkAuth>,
    /// Flat Rayleigh fading on every antenna pair; `null` (the default): each pair has a
    /// fixed complex gain (unit for single-antenna pairs, a seeded phase otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fading: Option<FadingConfig>,
}

/// A link-control key and an identity: the radio room's own (server side) or the radio
/// room a client talks to (client side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAuth {
    /// The shared link-control key.
    pub key: ferry_auth::AuthKey,
    /// The radio room's (or radio head's) identity, signed into every request.
    pub identity: String,
}

/// The identity of a radio room unless `ferry air --identity` says otherwise.
pub const DEFAULT_AIR_IDENTITY: &str = "air";

/// Default cap of a `capture` request: 10 s at 1.92 Msps.
pub const DEFAULT_MAX_CAPTURE_SAMPLES: u64 = 19_200_000;

fn default_capture_cap() -> u64 {
    DEFAULT_MAX_CAPTURE_SAMPLES
}

/// A configuration that cannot run.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Not valid JSON for [`AirConfig`].
    #[error("air configuration is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// An RF parameter is out of the device's range.
    #[error("radio {radio}: {source}")]
    Rf {
        /// Radio name.
        radio: String,
        /// Why.
        source: RfError,
    },
    /// Anything else, described.
    #[error("air configuration: {0}")]
    Invalid(String),
}

fn radio(name: &str, port: u16, description: &str) -> RadioConfig {
    RadioConfig {
        name: name.into(),
        fronthaul: SocketAddr::from(([127, 0, 0, 1], port)),
        rf: RfConfig::default(),
        init_ms: default_init_ms(),
        legacy_host: None,
        description: description.into(),
        noise_floor_dbfs: None,
        channels: 1,
    }
}

fn link(a: &str, b: &str, gain_db: Option<f64>, cfo_hz: f64, delay: usize) -> LinkConfig {
    LinkConfig {
        a: a.into(),
        b: b.into(),
        gain_db,
        cfo_hz,
        delay_samples: delay,
    }
}

impl Default for AirConfig {
    /// The thesis topology: the pool radio (served by server1 or server2), server3's radio
    /// (far end), server4's radio (relay-scenario receiver; it cannot hear server3), and a
    /// base-station radio for the D2D program's base-station mode.
    fn default() -> Self {
        Self {
            sample_rate_hz: 1_920_000,
            tick_samples: 1920,
            samples_per_packet: ferry_fronthaul::vrt::DEFAULT_SAMPLES_PER_PACKET,
            noise_floor_dbfs: Some(-60.0),
            seed: 1,
            control: "tcp://127.0.0.1:5550".into(),
            tx_horizon_ms: 1000,
            context_interval_ms: 1000,
            max_catchup_ms: default_catchup(),
            realtime_priority: default_rt(),
            radios: vec![
                radio(
                    "pool",
                    49201,
                    "pool radio (192.168.10.2 in the thesis), served by server1/server2",
                ),
                radio("far", 49202, "server3's radio, the far-end terminal"),
                radio(
                    "relayrx",
                    49203,
                    "server4's radio, receiver behind the relay",
                ),
                radio("bs", 49204, "base station for D2D base-station mode"),
            ],
            links: vec![
                link("pool", "far", Some(-20.0), 150.0, 2),
                link("pool", "relayrx", Some(-20.0), -200.0, 3),
                link("far", "relayrx", None, 0.0, 0),
                link("bs", "pool", Some(-30.0), 50.0, 4),
                link("bs", "far", Some(-30.0), -50.0, 4),
                link("bs", "relayrx", Some(-30.0), 80.0, 5),
            ],
            captures: vec![],
            clock_ppm: 0.0,
            clock_drift_ppm_per_hour: 0.0,
            liveness_subframes: default_liveness(),
            fallback_liveness_subframes: default_fallback_liveness(),
            capture_dir: None,
            max_capture_samples: DEFAULT_MAX_CAPTURE_SAMPLES,
            auth: None,
            fading: None,
        }
    }
}

impl AirConfig {
    /// Parses JSON and validates.
    pub fn from_json(s: &str) -> Result<Self, ConfigError> {
        let c: Self = serde_json::from_str(s)?;
        c.validate()?;
        Ok(c)
    }

    /// The JSON text of this configuration.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Puts the air's clock at `rate_hz` (1 ms ticks) and every radio at that rate with an
    /// analog bandwidth of `bandwidth_hz`. With `model: None` each radio keeps its model when
    /// that model gives the rate by an integer decimation and otherwise becomes the first
    /// model that does ([`RadioModel::for_lte_rate`]); `Some(model)` forces the model (the
    /// air then refuses to start, naming why, when it cannot give the rate). Returns one
    /// line for the operator saying which model the radios are and why.
    pub fn set_lte_rate(
        &mut self,
        rate_hz: u32,
        bandwidth_hz: f64,
        model: Option<RadioModel>,
    ) -> String {
        self.sample_rate_hz = rate_hz;
        self.tick_samples = (rate_hz / 1000).max(1) as usize;
        let mut lines: Vec<String> = Vec::new();
        for r in &mut self.radios {
            r.rf.rate_hz = rate_hz;
            r.rf.rx_bandwidth_hz = bandwidth_hz;
            r.rf.tx_bandwidth_hz = bandwidth_hz;
            let line = match model {
                Some(m) => {
                    r.rf.model = m;
                    match r.rf.with_rate(rate_hz) {
                        Ok(rf) => {
                            r.rf = rf;
                            format!(
                                "{m} (asked for), master clock {} MHz",
                                r.rf.master_clock_hz / 1e6
                            )
                        }
                        Err(e) => format!("{m} (asked for), which cannot: {e}"),
                    }
                }
                None => match r.rf.with_rate(rate_hz) {
                    Ok(rf) => {
                        r.rf = rf;
                        format!(
                            "{}, master clock {} MHz",
                            r.rf.model,
                            r.rf.master_clock_hz / 1e6
                        )
                    }
                    Err(_) => match RadioModel::for_lte_rate(rate_hz) {
                        Ok((m, clock, why)) => {
                            let from = r.rf.model;
                            r.rf.model = m;
                            r.rf.master_clock_hz = clock;
                            let why = why
                                .iter()
                                .find(|w| w.starts_with(&format!("{from}: ")))
                                .map_or(String::new(), |w| format!(" ({w})"));
                            format!(
                                "{m}, master clock {} MHz, instead of {from}{why}",
                                clock / 1e6
                            )
                        }
                        Err(why) => format!("none fits: {}", why.join("; ")),
                    },
                },
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        format!(
            "radios at {} Msps: {}",
            f64::from(rate_hz) / 1e6,
            lines.join(" | ")
        )
    }

    /// Index of a radio by name.
    pub fn radio_index(&self, name: &str) -> Option<usize> {
        self.radios.iter().position(|r| r.name == name)
    }

    /// Antennas (channels) of each radio, in radio order.
    pub fn antennas(&self) -> Vec<usize> {
        self.radios
            .iter()
            .map(|r| usize::from(r.channels))
            .collect()
    }

    /// A radio with two channels: its model must stream two at this rate.
    fn check_channels(&self, r: &RadioConfig) -> Result<(), ConfigError> {
        if r.channels != 2 {
            return Err(ConfigError::Invalid(format!(
                "radio {}: channels {} must be 1 or 2",
                r.name, r.channels
            )));
        }
        let l = r.rf.model.limits();
        if l.channels < 2 {
            return Err(ConfigError::Invalid(format!(
                "radio {}: channels 2 needs a two-channel radio (rf.model \"b210\" or \"x310\"): \
                 a {} has one channel (a MIMO-cabled N210 pair is not emulated)",
                r.name, l.name
            )));
        }
        r.rf.model
            .check_rate(r.rf.master_clock_hz, r.rf.rate_hz, 2)
            .map_err(|source| ConfigError::Rf {
                radio: r.name.clone(),
                source,
            })
    }

    /// Checks everything that would make the air misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.sample_rate_hz == 0 || self.tick_samples == 0 || self.samples_per_packet == 0 {
            return bad("sample_rate_hz, tick_samples and samples_per_packet must be > 0".into());
        }
        if self.samples_per_packet > ferry_fronthaul::vrt::MAX_SAMPLES {
            return bad(format!(
                "samples_per_packet must be <= {}",
                ferry_fronthaul::vrt::MAX_SAMPLES
            ));
        }
        if self.tick_samples > self.sample_rate_hz as usize {
            return bad("a tick may not exceed one second".into());
        }
        if self.radios.len() > usize::from(u16::MAX) {
            return bad("too many radios".into());
        }
        if let Some(n) = self.noise_floor_dbfs {
            if !n.is_finite() || n > 0.0 {
                return bad(format!("noise_floor_dbfs {n} must be finite and <= 0"));
            }
        }
        // A crystal is within tens of ppm; 1000 ppm is far beyond any radio and keeps the
        // clock model's arithmetic well inside f64 precision.
        if !(self.clock_ppm.is_finite() && self.clock_ppm.abs() <= 1000.0) {
            return bad(format!("clock_ppm {} must be within ±1000", self.clock_ppm));
        }
        if !(self.clock_drift_ppm_per_hour.is_finite()
            && self.clock_drift_ppm_per_hour.abs() <= 1000.0)
        {
            return bad(format!(
                "clock_drift_ppm_per_hour {} must be within ±1000",
                self.clock_drift_ppm_per_hour
            ));
        }
        if self.fallback_liveness_subframes > 1000 {
            return bad(format!(
                "fallback_liveness_subframes {} must be at most 1000 (one second)",
                self.fallback_liveness_subframes
            ));
        }
        if self.liveness_subframes > 1000 {
            return bad(format!(
                "liveness_subframes {} must be at most 1000 (one second)",
                self.liveness_subframes
            ));
        }
        for (i, r) in self.radios.iter().enumerate() {
            if self.radios[..i].iter().any(|o| o.name == r.name) {
                return bad(format!("radio name {} used twice", r.name));
            }
            if let Some(n) = r.noise_floor_dbfs {
                if !n.is_finite() || n > 0.0 {
                    return bad(format!(
                        "radio {}: noise_floor_dbfs {n} must be finite and <= 0",
                        r.name
                    ));
                }
            }
            r.rf.validate().map_err(|source| ConfigError::Rf {
                radio: r.name.clone(),
                source,
            })?;
            if r.channels != 1 {
                self.check_channels(r)?;
            }
            if r.rf.rate_hz != self.sample_rate_hz {
                return bad(format!(
                    "radio {} rate {} Hz differs from the air's {} Hz",
                    r.name, r.rf.rate_hz, self.sample_rate_hz
                ));
            }
            if r.init_ms > 600_000 {
                return bad(format!(
                    "radio {} init_ms {} is over 10 minutes",
                    r.name, r.init_ms
                ));
            }
        }
        if let Some(f) = self.fading {
            if !(f.doppler_hz.is_finite() && f.doppler_hz > 0.0 && f.doppler_hz <= 1000.0) {
                return bad(format!(
                    "fading doppler_hz {} must be in (0, 1000]",
                    f.doppler_hz
                ));
            }
        }
        for l in &self.links {
            for n in [&l.a, &l.b] {
                if self.radio_index(n).is_none() {
                    return bad(format!("link names unknown radio {n}"));
                }
            }
            if l.a == l.b {
                return bad(format!("link from {} to itself", l.a));
            }
            if let Some(g) = l.gain_db {
                if !g.is_finite() || g > 60.0 {
                    return bad(format!(
                        "link {}-{} gain {g} dB must be finite and <= 60",
                        l.a, l.b
                    ));
                }
            }
            if !l.cfo_hz.is_finite() || l.cfo_hz.abs() > f64::from(self.sample_rate_hz) / 2.0 {
                return bad(format!(
                    "link {}-{} cfo {} Hz out of range",
                    l.a, l.b, l.cfo_hz
                ));
            }
            if l.delay_samples > self.tick_samples * 10 {
                return bad(format!("link {}-{} delay too long", l.a, l.b));
            }
        }
        for c in &self.captures {
            if self.radio_index(&c.radio).is_none() {
                return bad(format!("capture names unknown radio {}", c.radio));
            }
        }
        Ok(())
    }

    /// Sets every radio's init time (for tests and `--fast-init`).
    pub fn with_init_ms(mut self, ms: u64) -> Self {
        for r in &mut self.radios {
            r.init_ms = ms;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validates_and_roundtrips() {
        let c = AirConfig::default();
        c.validate().unwrap();
        let back = AirConfig::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(back, c);
        assert!(back
            .links
            .iter()
            .any(|l| l.a == "far" && l.b == "relayrx" && l.gain_db.is_none()));
    }

    #[test]
    fn bad_configs_are_errors() {
        let mut c = AirConfig::default();
        c.radios[1].name = "pool".into();
        assert!(c.validate().is_err());
        let mut c = AirConfig::default();
        c.radios[0].rf.rx_freq_hz = 5.8e9;
        assert!(matches!(c.validate(), Err(ConfigError::Rf { .. })));
        let mut c = AirConfig::default();
        c.links[0].b = "nobody".into();
        assert!(c.validate().is_err());
        assert!(AirConfig::from_json("{").is_err());
        assert!(AirConfig::from_json(r#"{"sample_rate_hz": 1}"#).is_err());
    }

    #[test]
    fn lte_rate_picks_a_model_that_gives_it_or_keeps_the_forced_one() {
        let mut c = AirConfig::default();
        let note = c.set_lte_rate(15_360_000, 10e6, None);
        c.validate().unwrap();
        assert!(
            c.radios.iter().all(|r| r.rf.model == RadioModel::N210),
            "{note}"
        );
        assert_eq!(c.tick_samples, 15_360);
        let note = c.set_lte_rate(30_720_000, 20e6, None);
        c.validate().unwrap();
        assert!(c.radios.iter().all(|r| r.rf.model == RadioModel::B210));
        assert!(
            note.contains("B210, master clock 30.72 MHz, instead of N210"),
            "{note}"
        );
        assert!(note.contains("gigabit Ethernet"), "{note}");
        let mut c = AirConfig::default();
        c.set_lte_rate(23_040_000, 15e6, None);
        c.validate().unwrap();
        assert_eq!(c.radios[0].rf.master_clock_hz, 23.04e6);
        let mut c = AirConfig::default();
        let note = c.set_lte_rate(30_720_000, 20e6, Some(RadioModel::N210));
        assert!(note.contains("N210 (asked for), which cannot"), "{note}");
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("radio pool")
                && e.contains("25000000 sps the N210 streams over gigabit Ethernet"),
            "{e}"
        );
        let mut c = AirConfig::default();
        c.set_lte_rate(30_720_000, 20e6, Some(RadioModel::X310));
        c.validate().unwrap();
        assert_eq!(c.radios[3].rf.master_clock_hz, 184.32e6);
    }
}
