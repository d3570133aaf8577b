//! RF configuration of an emulated N210-class radio (thesis tables 3-1 and 3-2) and its
//! validation against what a USRP N210 with a WBX daughterboard supports.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The N210's fixed master clock (its ADC/DSP clock).
pub const N210_MASTER_CLOCK_HZ: f64 = 100e6;
/// Master clocks the emulator accepts: the N210's own 100 MHz, plus 30.72 and 61.44 MHz so
/// that LTE rates (1.92 Msps = 30.72 MHz / 16) divide exactly. A real N210 cannot change its
/// clock; UHD would coerce 1.92 Msps to 100 MHz / 52 = 1.923 Msps. See docs/RADIO.md.
pub const MASTER_CLOCKS_HZ: [f64; 3] = [100e6, 61.44e6, 30.72e6];
/// Largest decimation / interpolation of the N210 DSP chain (CIC 128 x two halfbands).
pub const MAX_DECIMATION: u32 = 512;
/// Largest host sample rate over gigabit Ethernet with sc16 samples.
pub const MAX_RATE_HZ: u32 = 25_000_000;
/// WBX tuning range.
pub const FREQ_RANGE_HZ: (f64, f64) = (50e6, 2.2e9);
/// WBX receive gain range (0.5 dB steps).
pub const RX_GAIN_RANGE_DB: (f64, f64) = (0.0, 31.5);
/// WBX transmit gain range (0.5 dB steps).
pub const TX_GAIN_RANGE_DB: (f64, f64) = (0.0, 25.0);
/// WBX analog bandwidth (the filter is fixed; smaller requested values are accepted).
pub const MAX_BANDWIDTH_HZ: f64 = 40e6;

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

/// Everything `uhd_device::init()` configures (table 3-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfConfig {
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
    /// LTE 1.4 MHz (6 RB) at 1.92 Msps in TDD band 39 (1.9 GHz).
    fn default() -> Self {
        Self {
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
    /// Master clock not one of [`MASTER_CLOCKS_HZ`].
    #[error("master clock {0} Hz not supported (choose 100e6, 61.44e6 or 30.72e6)")]
    MasterClock(f64),
    /// Rate is not master clock / integer decimation within limits.
    #[error("rate {rate} Hz is not master clock {master} Hz / an integer 1..={MAX_DECIMATION} at most {MAX_RATE_HZ} Hz{hint}")]
    Rate {
        /// Requested.
        rate: u32,
        /// Master clock.
        master: f64,
        /// Nearest supported rate, if any.
        hint: String,
    },
    /// Frequency outside the WBX range.
    #[error("{which} frequency {hz} Hz outside the WBX range 50 MHz..2.2 GHz")]
    Freq {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        hz: f64,
    },
    /// Gain outside range or not on the 0.5 dB grid.
    #[error("{which} gain {db} dB outside {min}..={max} dB in 0.5 dB steps")]
    Gain {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        db: f64,
        /// Range.
        min: f64,
        /// Range.
        max: f64,
    },
    /// TX on the RX2 port.
    #[error("the WBX transmits only on TX/RX")]
    TxAntenna,
    /// Bandwidth not in (0, 40 MHz].
    #[error("{which} bandwidth {hz} Hz outside 0..40 MHz")]
    Bandwidth {
        /// rx or tx.
        which: &'static str,
        /// Requested.
        hz: f64,
    },
}

impl RfConfig {
    /// Checks every parameter against the N210 + WBX limits.
    pub fn validate(&self) -> Result<(), RfError> {
        let m = self.master_clock_hz;
        if !MASTER_CLOCKS_HZ.iter().any(|c| (c - m).abs() < 1e-3) {
            return Err(RfError::MasterClock(m));
        }
        let rate = f64::from(self.rate_hz);
        let dec = m / rate.max(1.0);
        let near = dec.round();
        let exact = self.rate_hz > 0 && (dec - near).abs() < 1e-9 * dec.max(1.0);
        // An N210 (100 MHz) gives LTE rates through the rational resampler of the radio head
        // (`crate::resample`): 100 MHz / 52 × 624/625 = 1.92 Msps and so on.
        let resampled = (m - 100e6).abs() < 1e-3
            && crate::resample::N210Plan::for_lte_rate(self.rate_hz).is_ok();
        if resampled {
            // The device side is within the N210's limits by construction of the plan.
        } else if !exact
            || near < 1.0
            || near > f64::from(MAX_DECIMATION)
            || self.rate_hz > MAX_RATE_HZ
        {
            let n = near.clamp(1.0, f64::from(MAX_DECIMATION));
            let hint = match crate::resample::N210Plan::for_lte_rate(self.rate_hz) {
                Err(why) if (m - 100e6).abs() < 1e-3 && why.contains("N210") => format!(": {why}"),
                _ => format!(" (nearest: {m} / {n} = {:.1} Hz)", m / n),
            };
            return Err(RfError::Rate {
                rate: self.rate_hz,
                master: m,
                hint,
            });
        }
        for (which, hz) in [("rx", self.rx_freq_hz), ("tx", self.tx_freq_hz)] {
            if !(FREQ_RANGE_HZ.0..=FREQ_RANGE_HZ.1).contains(&hz) {
                return Err(RfError::Freq { which, hz });
            }
        }
        for (which, db, (min, max)) in [
            ("rx", self.rx_gain_db, RX_GAIN_RANGE_DB),
            ("tx", self.tx_gain_db, TX_GAIN_RANGE_DB),
        ] {
            if !(min..=max).contains(&db) || (db * 2.0).fract() != 0.0 {
                return Err(RfError::Gain {
                    which,
                    db,
                    min,
                    max,
                });
            }
        }
        if self.tx_antenna != Antenna::TxRx {
            return Err(RfError::TxAntenna);
        }
        for (which, hz) in [("rx", self.rx_bandwidth_hz), ("tx", self.tx_bandwidth_hz)] {
            if !(hz > 0.0 && hz <= MAX_BANDWIDTH_HZ) {
                return Err(RfError::Bandwidth { which, hz });
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
}
