//! RF configuration of an emulated USRP (thesis tables 3-1 and 3-2) and its validation
//! against what the modelled device supports: an N210 with a WBX daughterboard (the
//! thesis' radio), a B210 (AD9361, USB 3) or an X310 with UBX-160 daughterboards (10 GigE).
//! [`RadioModel`] holds each model's limits; [`RadioModel::for_lte_rate`] picks the first
//! model that gives an LTE rate exactly (docs/RADIO.md, "Radio models").

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The N210's fixed master clock (its ADC/DSP clock).
pub const N210_MASTER_CLOCK_HZ: f64 = 100e6;
/// Master clocks the emulated N210 accepts: its own 100 MHz, plus 30.72 and 61.44 MHz so
/// that LTE rates (1.92 Msps = 30.72 MHz / 16) divide exactly. A real N210 cannot change its
/// clock; UHD would coerce 1.92 Msps to 100 MHz / 52 = 1.923 Msps. See docs/RADIO.md.
pub const MASTER_CLOCKS_HZ: [f64; 3] = [100e6, 61.44e6, 30.72e6];
/// Largest decimation / interpolation of the N210 DSP chain (CIC 128 x two halfbands).
pub const MAX_DECIMATION: u32 = 512;
/// Largest N210 host sample rate over gigabit Ethernet with sc16 samples.
pub const MAX_RATE_HZ: u32 = 25_000_000;
/// WBX tuning range.
pub const FREQ_RANGE_HZ: (f64, f64) = (50e6, 2.2e9);
/// WBX receive gain range (0.5 dB steps).
pub const RX_GAIN_RANGE_DB: (f64, f64) = (0.0, 31.5);
/// WBX transmit gain range (0.5 dB steps).
pub const TX_GAIN_RANGE_DB: (f64, f64) = (0.0, 25.0);
/// WBX analog bandwidth (the filter is fixed; smaller requested values are accepted).
pub const MAX_BANDWIDTH_HZ: f64 = 40e6;

/// The USRP an emulated radio behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioModel {
    /// USRP N210 + WBX over gigabit Ethernet (the thesis' radio).
    #[default]
    N210,
    /// USRP B210 (AD9361) over USB 3.
    B210,
    /// USRP X310 + UBX-160 over 10 gigabit Ethernet.
    X310,
}

/// Which master clocks a model takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MasterClocks {
    /// Only these.
    Listed(&'static [f64]),
    /// Any clock in `[min, max]` Hz (the AD9361's programmable clock).
    Range(f64, f64),
}

/// The published limits of one [`RadioModel`] (UHD's manual pages for the device, see
/// docs/RADIO.md for the sources and for what the emulator approximates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelLimits {
    /// Name in messages (`N210`).
    pub name: &'static str,
    /// The host transport whose rate limits the stream.
    pub transport: &'static str,
    /// Master clocks.
    pub master_clocks: MasterClocks,
    /// The clock a configuration gets unless it chooses one that divides its rate better.
    pub default_master_clock_hz: f64,
    /// Largest master clock with two channels streaming (B210: the AD9361 in 2×2).
    pub max_master_clock_two_channels_hz: f64,
    /// Largest DDC decimation / DUC interpolation.
    pub max_decimation: u32,
    /// RX (= TX) channels the device has.
    pub channels: u32,
    /// Largest sc16 stream rate over [`ModelLimits::transport`], all channels together.
    pub max_stream_rate_hz: u32,
    /// Tuning range, Hz.
    pub freq_range_hz: (f64, f64),
    /// RX gain range and step, dB.
    pub rx_gain_db: (f64, f64, f64),
    /// TX gain range and step, dB.
    pub tx_gain_db: (f64, f64, f64),
    /// Analog bandwidth range, Hz (lower bound exclusive when 0).
    pub bandwidth_hz: (f64, f64),
}

const N210_LIMITS: ModelLimits = ModelLimits {
    name: "N210",
    transport: "gigabit Ethernet",
    master_clocks: MasterClocks::Listed(&MASTER_CLOCKS_HZ),
    default_master_clock_hz: 30.72e6,
    max_master_clock_two_channels_hz: 0.0,
    max_decimation: MAX_DECIMATION,
    channels: 1,
    max_stream_rate_hz: MAX_RATE_HZ,
    freq_range_hz: FREQ_RANGE_HZ,
    rx_gain_db: (RX_GAIN_RANGE_DB.0, RX_GAIN_RANGE_DB.1, 0.5),
    tx_gain_db: (TX_GAIN_RANGE_DB.0, TX_GAIN_RANGE_DB.1, 0.5),
    bandwidth_hz: (0.0, MAX_BANDWIDTH_HZ),
};

const B210_LIMITS: ModelLimits = ModelLimits {
    name: "B210",
    transport: "USB 3",
    master_clocks: MasterClocks::Range(5e6, 61.44e6),
    default_master_clock_hz: 30.72e6,
    max_master_clock_two_channels_hz: 30.72e6,
    max_decimation: 512,
    channels: 2,
    // 61.44 Msps sc16 in total over USB 3 (one channel at the AD9361's top rate, or two
    // at 30.72 Msps).
    max_stream_rate_hz: 61_440_000,
    freq_range_hz: (70e6, 6e9),
    rx_gain_db: (0.0, 76.0, 1.0),
    tx_gain_db: (0.0, 89.75, 0.25),
    bandwidth_hz: (200e3, 56e6),
};

const X310_LIMITS: ModelLimits = ModelLimits {
    name: "X310",
    transport: "10 gigabit Ethernet",
    master_clocks: MasterClocks::Listed(&[184.32e6, 200e6]),
    default_master_clock_hz: 184.32e6,
    max_master_clock_two_channels_hz: 200e6,
    max_decimation: 1020,
    channels: 2,
    // 200 Msps sc16 per channel over one 10 GigE SFP+ port: 400 for both.
    max_stream_rate_hz: 400_000_000,
    freq_range_hz: (10e6, 6e9),
    rx_gain_db: (0.0, 31.5, 0.5),
    tx_gain_db: (0.0, 31.5, 0.5),
    bandwidth_hz: (0.0, 160e6),
};

impl RadioModel {
    /// Every model, in the order [`RadioModel::for_lte_rate`] tries them.
    pub const ALL: [RadioModel; 3] = [RadioModel::N210, RadioModel::B210, RadioModel::X310];

    /// The model's limits.
    pub fn limits(self) -> &'static ModelLimits {
        match self {
            RadioModel::N210 => &N210_LIMITS,
            RadioModel::B210 => &B210_LIMITS,
            RadioModel::X310 => &X310_LIMITS,
        }
    }

    /// Parses `n210`, `b210` or `x310` (any case).
    pub fn parse(text: &str) -> Option<RadioModel> {
        Self::ALL
            .into_iter()
            .find(|m| m.limits().name.eq_ignore_ascii_case(text))
    }

    /// The master clock this model would run `rate_hz` from with `channels` streaming (an
    /// integer decimation within its limits, the stream within its transport), or why it
    /// cannot. Prefers the model's default clock, then LTE-friendly clocks.
    pub fn master_clock_for(self, rate_hz: u32, channels: u32) -> Result<f64, RfError> {
        let l = self.limits();
        let mut candidates: Vec<f64> = vec![l.default_master_clock_hz];
        match l.master_clocks {
            MasterClocks::Listed(list) => candidates.extend(list),
            // The AD9361's clock is programmable: LTE rates and their small multiples.
            MasterClocks::Range(..) => {
                candidates.extend([1u32, 2, 4, 8].map(|k| f64::from(rate_hz) * f64::from(k)))
            }
        }
        let mut last = None;
        for m in candidates {
            match self.check_rate(m, rate_hz, channels) {
                Ok(()) => return Ok(m),
                Err(e) => last = last.or(Some(e)),
            }
        }
        Err(last.unwrap_or(RfError::MasterClock {
            model: l.name,
            hz: 0.0,
        }))
    }

    /// Whether `master_hz` is a clock of this model and `rate_hz` an integer decimation of
    /// it that `channels` streams can carry over the model's transport.
    pub fn check_rate(self, master_hz: f64, rate_hz: u32, channels: u32) -> Result<(), RfError> {
        let l = self.limits();
        let m = master_hz;
        let clock_ok = match l.master_clocks {
            MasterClocks::Listed(list) => list.iter().any(|c| (c - m).abs() < 1e-3),
            MasterClocks::Range(lo, hi) => m >= lo - 1e-3 && m <= hi + 1e-3,
        };
        if !clock_ok {
            return Err(RfError::MasterClock {
                model: l.name,
                hz: m,
            });
        }
        if channels == 0 || channels > l.channels {
            return Err(RfError::Channels {
                model: l.name,
                asked: channels,
                max: l.channels,
            });
        }
        if channels > 1 && m > l.max_master_clock_two_channels_hz + 1e-3 {
            return Err(RfError::Rate {
                rate: rate_hz,
                master: m,
                hint: format!(
                    ": the {} streams two channels only from a master clock of at most {} Hz",
                    l.name, l.max_master_clock_two_channels_hz
                ),
            });
        }
        let rate = f64::from(rate_hz);
        let dec = m / rate.max(1.0);
        let near = dec.round();
        let exact = rate_hz > 0 && (dec - near).abs() < 1e-9 * dec.max(1.0);
        let stream = u64::from(rate_hz) * u64::from(channels);
        if exact && near >= 1.0 && near <= f64::from(l.max_decimation) {
            if stream <= u64::from(l.max_stream_rate_hz) {
                return Ok(());
            }
            return Err(RfError::Stream {
                model: l.name,
                transport: l.transport,
                max: l.max_stream_rate_hz,
                channels,
                rate: rate_hz,
            });
        }
        let n = near.clamp(1.0, f64::from(l.max_decimation));
        Err(RfError::Rate {
            rate: rate_hz,
            master: m,
            hint: format!(
                " (the {} divides by 1..={}; nearest: {m} / {n} = {:.1} Hz)",
                l.name,
                l.max_decimation,
                m / n
            ),
        })
    }

    /// The first model (N210, B210, X310) that gives `rate_hz` on one channel, with its
    /// master clock, and why each earlier model could not (for the operator's output).
    pub fn for_lte_rate(rate_hz: u32) -> Result<(RadioModel, f64, Vec<String>), Vec<String>> {
        let mut refused = Vec::new();
        for model in Self::ALL {
            let rf = RfConfig {
                model,
                ..RfConfig::default()
            };
            match rf.with_rate(rate_hz) {
                Ok(rf) => return Ok((model, rf.master_clock_hz, refused)),
                Err(e) => refused.push(format!("{}: {e}", model.limits().name)),
            }
        }
        Err(refused)
    }
}

impl std::fmt::Display for RadioModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.limits().name)
    }
}

/// Antenna ports of a WBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Antenna {
    /// The shared TX/RX port.
    #[serde(rename = "TX/RX")]
    TxRx,
    /// The receive-only port.
    #[serde(rename = "RX2")]
    Rx2,
}

/// Reference clock source (`ref` in table 3-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockRef {
    /// On-board TCXO.
    Internal,
    /// 10 MHz + PPS from the front panel.
    External,
    /// From a MIMO-cable partner.
    Mimo,
}

/// Everything `uhd_device::init()` configures (table 3-2), and which device it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfConfig {
    /// The device modelled (absent in older configurations: an N210).
    #[serde(default)]
    pub model: RadioModel,
    /// `set_master_clock_rate`.
    pub master_clock_hz: f64,
    /// `set_rx_rate` and `set_tx_rate` (one air clock: both equal), integer Hz.
    pub rate_hz: u32,
    /// `set_rx_freq`.
    pub rx_freq_hz: f64,
    /// `set_tx_freq`.
    pub tx_freq_hz: f64,
    /// `set_rx_gain`.
    pub rx_gain_db: f64,
    /// `set_tx_gain`.
    pub tx_gain_db: f64,
    /// `set_rx_antenna`.
    pub rx_antenna: Antenna,
    /// `set_tx_antenna`.
    pub tx_antenna: Antenna,
    /// `set_rx_bandwidth`.
    pub rx_bandwidth_hz: f64,
    /// `set_tx_bandwidth`.
    pub tx_bandwidth_hz: f64,
    /// `ref`.
    pub reference: ClockRef,
}

impl Default for RfConfig {
    /// An N210: LTE 1.4 MHz (6 RB) at 1.92 Msps in TDD band 39 (1.9 GHz).
    fn default() -> Self {
        Self {
            model: RadioModel::N210,
            master_clock_hz: 30.72e6,
            rate_hz: 1_920_000,
            rx_freq_hz: 1.9e9,
            tx_freq_hz: 1.9e9,
            rx_gain_db: 20.0,
            tx_gain_db: 15.0,
            rx_antenna: Antenna::Rx2,
            tx_antenna: Antenna::TxRx,
            rx_bandwidth_hz: 1.4e6,
            tx_bandwidth_hz: 1.4e6,
            reference: ClockRef::Internal,
        }
    }
}

/// A parameter the device does not support.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RfError {
    /// Master clock not one the model has.
    #[error("master clock {hz} Hz not supported by a {model} (see docs/RADIO.md, radio models)")]
    MasterClock {
        /// Model name.
        model: &'static str,
        /// Requested.
        hz: f64,
    },
    /// More channels than the device has.
    #[error("a {model} has {max} channel(s), not {asked}")]
    Channels {
        /// Model name.
        model: &'static str,
        /// Requested.
        asked: u32,
        /// The device's.
        max: u32,
    },
    /// Rate is not master clock / integer decimation within limits.
    #[error("rate {rate} Hz is not master clock {master} Hz / an integer within the device's limits{hint}")]
    Rate {
        /// Requested.
        rate: u32,
        /// Master clock.
        master: f64,
        /// Why, or the nearest supported rate.
        hint: String,
    },
    /// More samples per second than the device's transport carries.
    #[error("{channels} channel(s) × {rate} sps is beyond the {max} sps the {model} streams over {transport}")]
    Stream {
        /// Model name.
        model: &'static str,
        /// Its host transport.
        transport: &'static str,
        /// Most sc16 samples per second over it.
        max: u32,
        /// Channels asked.
        channels: u32,
        /// Rate per channel asked.
        rate: u32,
    },
    /// Frequency outside the tuning range.
    #[error("{which} frequency {hz} Hz outside the {model}'s range {min}..={max} Hz")]
    Freq {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        hz: f64,
        /// Model name.
        model: &'static str,
        /// Range.
        min: f64,
        /// Range.
        max: f64,
    },
    /// Gain outside range or not on the step grid.
    #[error("{which} gain {db} dB outside {min}..={max} dB in {step} dB steps")]
    Gain {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        db: f64,
        /// Range.
        min: f64,
        /// Range.
        max: f64,
        /// Step.
        step: f64,
    },
    /// TX on the RX2 port.
    #[error("the {0} transmits only on TX/RX")]
    TxAntenna(&'static str),
    /// Bandwidth outside the analog filter's range.
    #[error("{which} bandwidth {hz} Hz outside the {model}'s {min}..={max} Hz")]
    Bandwidth {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        hz: f64,
        /// Model name.
        model: &'static str,
        /// Range.
        min: f64,
        /// Range.
        max: f64,
    },
}

impl RfConfig {
    /// This configuration at `rate_hz` on one channel, with the master clock its model
    /// needs for it, or why the model cannot give it by an integer decimation.
    pub fn with_rate(&self, rate_hz: u32) -> Result<RfConfig, RfError> {
        let master = self.model.master_clock_for(rate_hz, 1)?;
        Ok(RfConfig {
            rate_hz,
            master_clock_hz: master,
            ..self.clone()
        })
    }

    /// Checks every parameter against the limits of the configured model.
    pub fn validate(&self) -> Result<(), RfError> {
        let l = self.model.limits();
        let m = self.master_clock_hz;
        // An N210 (100 MHz) gives LTE rates through the rational resampler of the radio head
        // (`crate::resample`): 100 MHz / 52 × 624/625 = 1.92 Msps and so on.
        let n210_100 = self.model == RadioModel::N210 && (m - N210_MASTER_CLOCK_HZ).abs() < 1e-3;
        let resampled = n210_100 && crate::resample::N210Plan::for_lte_rate(self.rate_hz).is_ok();
        if !resampled {
            match self.model.check_rate(m, self.rate_hz, 1) {
                Err(RfError::Rate { rate, master, hint }) => {
                    let hint = match crate::resample::N210Plan::for_lte_rate(rate) {
                        Err(why) if n210_100 && why.contains("N210") => format!(": {why}"),
                        _ => hint,
                    };
                    return Err(RfError::Rate { rate, master, hint });
                }
                other => other?,
            }
        }
        for (which, hz) in [("rx", self.rx_freq_hz), ("tx", self.tx_freq_hz)] {
            let (min, max) = l.freq_range_hz;
            if !(min..=max).contains(&hz) {
                return Err(RfError::Freq {
                    which,
                    hz,
                    model: l.name,
                    min,
                    max,
                });
            }
        }
        for (which, db, (min, max, step)) in [
            ("rx", self.rx_gain_db, l.rx_gain_db),
            ("tx", self.tx_gain_db, l.tx_gain_db),
        ] {
            if !(min..=max).contains(&db) || (db / step).fract() != 0.0 {
                return Err(RfError::Gain {
                    which,
                    db,
                    min,
                    max,
                    step,
                });
            }
        }
        // Every modelled daughterboard (WBX, UBX, the B210's front end) transmits on TX/RX.
        if self.tx_antenna != Antenna::TxRx {
            return Err(RfError::TxAntenna(l.name));
        }
        for (which, hz) in [("rx", self.rx_bandwidth_hz), ("tx", self.tx_bandwidth_hz)] {
            let (min, max) = l.bandwidth_hz;
            if !(hz > 0.0 && hz >= min && hz <= max) {
                return Err(RfError::Bandwidth {
                    which,
                    hz,
                    model: l.name,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Decimation (= interpolation) factor.
    pub fn decimation(&self) -> u32 {
        (self.master_clock_hz / f64::from(self.rate_hz.max(1))).round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_lte_1_4() {
        let c = RfConfig::default();
        c.validate().unwrap();
        assert_eq!(c.decimation(), 16);
    }

    #[test]
    fn n210_limits_are_enforced() {
        let ok = RfConfig::default();
        let n210 = RfConfig {
            master_clock_hz: 100e6,
            ..ok.clone()
        };
        // 1.92 Msps is not 100 MHz / integer, but an N210 gives it through the radio head's
        // 624/625 resampler; 30.72 Msps it cannot give at all (the reason is named); a rate
        // that is neither names the nearest one.
        n210.validate().unwrap();
        let e = RfConfig {
            rate_hz: 30_720_000,
            ..n210.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("B210/X310"), "{e}");
        let e = RfConfig {
            rate_hz: 1_930_000,
            ..n210.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("100000000 / 52"), "{e}");
        RfConfig {
            rate_hz: 2_000_000,
            ..n210.clone()
        }
        .validate()
        .unwrap();
        let cases = [
            RfConfig {
                master_clock_hz: 50e6,
                ..ok.clone()
            },
            RfConfig {
                rate_hz: 30_720_000,
                ..ok.clone()
            },
            RfConfig {
                rate_hz: 0,
                ..ok.clone()
            },
            RfConfig {
                rx_freq_hz: 2.4e9,
                ..ok.clone()
            },
            RfConfig {
                tx_freq_hz: 10e6,
                ..ok.clone()
            },
            RfConfig {
                rx_gain_db: 32.0,
                ..ok.clone()
            },
            RfConfig {
                tx_gain_db: 10.3,
                ..ok.clone()
            },
            RfConfig {
                tx_gain_db: f64::NAN,
                ..ok.clone()
            },
            RfConfig {
                tx_antenna: Antenna::Rx2,
                ..ok.clone()
            },
            RfConfig {
                rx_bandwidth_hz: 0.0,
                ..ok.clone()
            },
            RfConfig {
                tx_bandwidth_hz: 50e6,
                ..ok.clone()
            },
        ];
        for c in cases {
            assert!(c.validate().is_err(), "{c:?} should be rejected");
        }
    }

    #[test]
    fn every_lte_rate_has_a_model_and_the_n210_says_why_not() {
        let lte = [
            1_920_000u32,
            3_840_000,
            7_680_000,
            15_360_000,
            23_040_000,
            30_720_000,
        ];
        let picked: Vec<(RadioModel, f64)> = lte
            .iter()
            .map(|&r| {
                let (m, clock, _) = RadioModel::for_lte_rate(r).unwrap();
                (m, clock)
            })
            .collect();
        // The N210 (emulated at 30.72 MHz) up to 10 MHz; 15 MHz needs a clock that 23.04
        // Msps divides (the B210's programmable one), 20 MHz more than gigabit Ethernet.
        assert_eq!(
            picked,
            vec![
                (RadioModel::N210, 30.72e6),
                (RadioModel::N210, 30.72e6),
                (RadioModel::N210, 30.72e6),
                (RadioModel::N210, 30.72e6),
                (RadioModel::B210, 23.04e6),
                (RadioModel::B210, 30.72e6),
            ]
        );
        let (_, _, why) = RadioModel::for_lte_rate(30_720_000).unwrap();
        assert_eq!(why.len(), 1);
        assert!(
            why[0].contains("beyond the 25000000 sps the N210 streams over gigabit Ethernet"),
            "{}",
            why[0]
        );
        let (_, _, why) = RadioModel::for_lte_rate(23_040_000).unwrap();
        assert!(
            why[0].starts_with("N210: ") && why[0].contains("the N210 divides by 1..=512"),
            "{why:?}"
        );
        // The X310's 184.32 MHz divides every LTE rate (96, 48, 24, 12, 8, 6).
        for r in lte {
            let rf = RfConfig {
                model: RadioModel::X310,
                ..RfConfig::default()
            }
            .with_rate(r)
            .unwrap();
            assert_eq!(rf.master_clock_hz, 184.32e6);
            assert_eq!(f64::from(rf.decimation()) * f64::from(r), 184.32e6);
            rf.validate().unwrap();
        }
        // A B210 at its default 30.72 MHz gives all but 23.04 Msps; with 23.04 MHz that too.
        for r in lte {
            let b210 = RfConfig {
                model: RadioModel::B210,
                rate_hz: r,
                ..RfConfig::default()
            };
            assert_eq!(b210.validate().is_ok(), r != 23_040_000, "{r}");
        }
        // Not an LTE rate of any model: every model says why.
        assert_eq!(RadioModel::for_lte_rate(0).unwrap_err().len(), 3);
    }

    #[test]
    fn model_stream_and_channel_limits() {
        let b210 = RadioModel::B210;
        // USB 3 carries 61.44 Msps: one channel at 61.44, or two at 30.72 from ≤ 30.72 MHz.
        b210.check_rate(61.44e6, 61_440_000, 1).unwrap();
        b210.check_rate(30.72e6, 30_720_000, 2).unwrap();
        let e = b210.check_rate(61.44e6, 30_720_000, 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("two channels only from a master clock of at most"),
            "{e}"
        );
        let e = b210.check_rate(61.44e6, 61_440_000, 2).unwrap_err();
        assert!(e.to_string().contains("two channels"), "{e}");
        assert!(matches!(
            b210.check_rate(30.72e6, 1_920_000, 3),
            Err(RfError::Channels { max: 2, .. })
        ));
        assert!(matches!(
            b210.check_rate(70e6, 1_920_000, 1),
            Err(RfError::MasterClock { .. })
        ));
        assert!(matches!(
            b210.check_rate(4e6, 1_000_000, 1),
            Err(RfError::MasterClock { .. })
        ));
        // N210: one channel, 25 Msps over GigE, 100 MHz / 4 = 25 Msps is the top.
        let n210 = RadioModel::N210;
        n210.check_rate(100e6, 25_000_000, 1).unwrap();
        assert!(n210.check_rate(100e6, 50_000_000, 1).is_err());
        assert!(matches!(
            n210.check_rate(30.72e6, 1_920_000, 2),
            Err(RfError::Channels { max: 1, .. })
        ));
        // X310: 200 Msps per channel over 10 GigE, master clock 184.32 or 200 MHz only.
        let x310 = RadioModel::X310;
        x310.check_rate(200e6, 200_000_000, 2).unwrap();
        assert!(x310.check_rate(184.32e6, 1_920_000 / 2, 1).is_ok());
        assert!(matches!(
            x310.check_rate(30.72e6, 1_920_000, 1),
            Err(RfError::MasterClock { .. })
        ));
        // Decimation bounds: N210 512, X310 1020.
        assert!(n210.check_rate(30.72e6, 30_720_000 / 640, 1).is_err());
        assert!(x310
            .check_rate(184.32e6, 184_320_000 / 1020 + 1, 1)
            .is_err());
    }

    #[test]
    fn rf_ranges_follow_the_model() {
        let b210 = RfConfig {
            model: RadioModel::B210,
            ..RfConfig::default()
        };
        b210.validate().unwrap();
        let ok = |c: RfConfig| c.validate().is_ok();
        // 5.8 GHz: a B210 and an X310 (UBX) tune there, an N210 (WBX) does not.
        assert!(ok(RfConfig {
            rx_freq_hz: 5.8e9,
            ..b210.clone()
        }));
        assert!(!ok(RfConfig {
            rx_freq_hz: 5.8e9,
            ..RfConfig::default()
        }));
        assert!(!ok(RfConfig {
            rx_freq_hz: 60e6,
            ..b210.clone()
        }));
        // Gains: B210 RX 0..76 dB in 1 dB steps, TX 0..89.75 in 0.25 dB steps.
        assert!(ok(RfConfig {
            rx_gain_db: 76.0,
            tx_gain_db: 89.75,
            ..b210.clone()
        }));
        assert!(!ok(RfConfig {
            rx_gain_db: 20.5,
            ..b210.clone()
        }));
        assert!(!ok(RfConfig {
            tx_gain_db: 90.0,
            ..b210.clone()
        }));
        assert!(!ok(RfConfig {
            tx_gain_db: 89.75,
            ..RfConfig::default()
        }));
        // Bandwidth: the AD9361's 200 kHz..56 MHz.
        assert!(!ok(RfConfig {
            rx_bandwidth_hz: 100e3,
            ..b210.clone()
        }));
        assert!(ok(RfConfig {
            rx_bandwidth_hz: 20e6,
            tx_bandwidth_hz: 56e6,
            ..b210.clone()
        }));
        let e = RfConfig {
            tx_antenna: Antenna::Rx2,
            ..b210
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "the B210 transmits only on TX/RX");
    }

    #[test]
    fn model_is_optional_in_json_and_named_in_lowercase() {
        let mut v = serde_json::to_value(RfConfig::default()).unwrap();
        assert_eq!(v["model"], "n210");
        v.as_object_mut().unwrap().remove("model");
        let c: RfConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.model, RadioModel::N210);
        v["model"] = "x310".into();
        let c: RfConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.model, RadioModel::X310);
        v["model"] = "b200".into();
        assert!(serde_json::from_value::<RfConfig>(v).is_err());
        assert_eq!(RadioModel::parse("B210"), Some(RadioModel::B210));
        assert_eq!(RadioModel::parse("usrp"), None);
    }
}
