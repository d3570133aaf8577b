//! A real USRP through UHD as the [`Medium`] of a radio head (`uhd` cargo feature; needs
//! Debian's `libuhd-dev` and `libclang-dev` to build, a USRP on the network to run).
//!
//! One USRP channel 0 serves the head's single radio: `uhd_device::init()` of the thesis
//! (table 3-2: master clock, rate, frequencies, gains, antennas, bandwidths, reference) is
//! applied from the radio's [`RfConfig`], RX streams continuously from a timed start, and
//! every tick's TX goes out as a timed burst `tx_advance` samples ahead. Sample time 0 is
//! the device time of the first RX sample, so RX sample `t` and TX sample `t` name the same
//! instant on the USRP's clock: switch instants and subframe boundaries keep their meaning.
//!
//! A real N210 has a fixed 100 MHz master clock: LTE's 1.92 Msps would be coerced to
//! 100 MHz / 52 = 1.923 Msps, which the PHY cannot use. [`UhdMedium::open`] refuses a rate
//! the device does not give exactly, naming what it got (B2xx/X3xx: pass
//! `master_clock_rate=30.72e6` in the device arguments). [`open_lte`] is what the radio
//! head uses: a radio configured with the N210's 100 MHz master clock is opened at its
//! nearest integer decimation and put behind the rational resampler
//! ([`crate::resample::ResampledMedium`], 624/625 or 576/625), anything else at the exact
//! rate.

use ferry_fronthaul::vrt::SampleTime;
use num_complex::Complex32;
use thiserror::Error;
use uhd::{
    ReceiveStreamer, StreamArgs, StreamCommand, StreamCommandType, StreamTime, TimeSpec,
    TransmitMetadata, TransmitStreamer, TuneRequest, Usrp,
};

use crate::medium::{Medium, MediumEvents};
use crate::rf::{Antenna, ClockRef, RfConfig};

/// Why the USRP could not be opened or configured.
#[derive(Debug, Error)]
pub enum UhdError {
    /// No device answered for these arguments.
    #[error("no USRP found for device arguments {args:?} (is it powered, on this subnet, and does `uhd_find_devices` see it?)")]
    NotFound {
        /// The arguments.
        args: String,
    },
    /// UHD refused a call.
    #[error("UHD {what}: {source}")]
    Uhd {
        /// What was being done.
        what: &'static str,
        /// UHD's error.
        source: uhd::Error,
    },
    /// An N210 cannot give this LTE rate even through the resampler.
    #[error("{0}")]
    N210(String),
    /// The device cannot give the exact sample rate.
    #[error("the device gives {got} sps for {asked} sps; LTE numerology needs the exact rate (on B2xx/X3xx add master_clock_rate=30.72e6 to the device arguments; an N210's fixed 100 MHz clock needs the resampler: give the radio master_clock_hz 100e6)")]
    Rate {
        /// Requested.
        asked: f64,
        /// What the device set.
        got: f64,
    },
}

fn uhd_err(what: &'static str) -> impl FnOnce(uhd::Error) -> UhdError {
    move |source| UhdError::Uhd { what, source }
}

/// The device arguments with `master_clock_rate` added when the radio's RF configuration
/// asks for a clock other than the N210's 100 MHz and the arguments do not set one.
pub fn device_args(args: &str, rf: &RfConfig) -> String {
    if args.contains("master_clock_rate") || (rf.master_clock_hz - 100e6).abs() < 1.0 {
        return args.to_string();
    }
    let mcr = format!("master_clock_rate={}", rf.master_clock_hz);
    if args.trim().is_empty() {
        mcr
    } else {
        format!("{args},{mcr}")
    }
}

fn antenna(a: Antenna) -> &'static str {
    match a {
        Antenna::TxRx => "TX/RX",
        Antenna::Rx2 => "RX2",
    }
}

/// A USRP streaming one channel for a radio head.
pub struct UhdMedium {
    rx: ReceiveStreamer<'static, Complex32>,
    tx: TransmitStreamer<'static, Complex32>,
    rate: f64,
    tx_advance: u64,
    /// Device time of sample time 0 (the first RX sample), once known.
    epoch: Option<TimeSpec>,
    /// RX samples received beyond the last tick (a packet straddles ticks).
    spill: Vec<Complex32>,
    scratch: Vec<Complex32>,
    first_burst: bool,
}

impl std::fmt::Debug for UhdMedium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UhdMedium")
            .field("rate", &self.rate)
            .field("tx_advance", &self.tx_advance)
            .finish_non_exhaustive()
    }
}

impl UhdMedium {
    /// Opens the USRP named by `args` (e.g. `addr=192.168.10.2`), applies `rf` to channel 0
    /// and starts RX streaming 100 ms from now. `tx_advance` samples of TX lead.
    pub fn open(args: &str, rf: &RfConfig, tx_advance: u64) -> Result<Self, UhdError> {
        Self::open_at(args, rf, f64::from(rf.rate_hz), tx_advance)
    }

    /// [`UhdMedium::open`] at a device sample rate `rate` other than the radio's (the N210
    /// behind the resampler).
    pub fn open_at(
        args: &str,
        rf: &RfConfig,
        rate: f64,
        tx_advance: u64,
    ) -> Result<Self, UhdError> {
        let args = device_args(args, rf);
        let found = Usrp::find(&args).map_err(uhd_err("find"))?;
        if found.is_empty() {
            return Err(UhdError::NotFound { args });
        }
        let usrp = Usrp::open(&args).map_err(uhd_err("open"))?;
        // The streamers borrow the device for its lifetime; the radio head keeps the device
        // for the whole process, so it is leaked rather than made self-referential.
        let usrp: &'static mut Usrp = Box::leak(Box::new(usrp));
        if rf.reference == ClockRef::External {
            usrp.set_clock_source("external", 0)
                .map_err(uhd_err("set_clock_source"))?;
            usrp.set_time_source("external", 0)
                .map_err(uhd_err("set_time_source"))?;
        }
        usrp.set_rx_sample_rate(rate, 0)
            .map_err(uhd_err("set_rx_rate"))?;
        usrp.set_tx_sample_rate(rate, 0)
            .map_err(uhd_err("set_tx_rate"))?;
        for got in [
            usrp.get_rx_sample_rate(0).map_err(uhd_err("get_rx_rate"))?,
            usrp.get_tx_sample_rate(0).map_err(uhd_err("get_tx_rate"))?,
        ] {
            if (got - rate).abs() > 1e-3 {
                return Err(UhdError::Rate { asked: rate, got });
            }
        }
        usrp.set_rx_frequency(&TuneRequest::with_frequency(rf.rx_freq_hz), 0)
            .map_err(uhd_err("set_rx_freq"))?;
        usrp.set_tx_frequency(&TuneRequest::with_frequency(rf.tx_freq_hz), 0)
            .map_err(uhd_err("set_tx_freq"))?;
        usrp.set_rx_gain(rf.rx_gain_db, 0, "")
            .map_err(uhd_err("set_rx_gain"))?;
        usrp.set_tx_gain(rf.tx_gain_db, 0, "")
            .map_err(uhd_err("set_tx_gain"))?;
        usrp.set_rx_antenna(antenna(rf.rx_antenna), 0)
            .map_err(uhd_err("set_rx_antenna"))?;
        usrp.set_tx_antenna(antenna(rf.tx_antenna), 0)
            .map_err(uhd_err("set_tx_antenna"))?;
        usrp.set_rx_bandwidth(rf.rx_bandwidth_hz, 0)
            .map_err(uhd_err("set_rx_bandwidth"))?;
        usrp.set_tx_bandwidth(rf.tx_bandwidth_hz, 0)
            .map_err(uhd_err("set_tx_bandwidth"))?;
        let now = usrp.get_current_time(0).map_err(uhd_err("get_time_now"))?;
        let ptr: *mut Usrp = usrp;
        let stream_args = StreamArgs::<Complex32>::new("sc16");
        // SAFETY: `ptr` comes from a leaked Box and is never freed; the two streamers hold
        // their own UHD handles and only use the device through UHD's thread-safe C API.
        // The `&mut` borrows below exist one at a time, only to create the streamers.
        let mut rx = unsafe { (*ptr).get_rx_stream(&stream_args) }.map_err(uhd_err("rx_stream"))?;
        let tx = unsafe { (*ptr).get_tx_stream(&stream_args) }.map_err(uhd_err("tx_stream"))?;
        let start = now.seconds as f64 + now.fraction + 0.1;
        rx.send_command(&StreamCommand {
            command_type: StreamCommandType::StartContinuous,
            time: StreamTime::Later(std::time::Duration::from_secs_f64(start.max(0.0))),
        })
        .map_err(uhd_err("start streaming"))?;
        Ok(Self {
            rx,
            tx,
            rate,
            tx_advance,
            epoch: None,
            spill: Vec::new(),
            scratch: Vec::new(),
            first_burst: true,
        })
    }

    fn time_of(&self, t: SampleTime) -> Option<TimeSpec> {
        let e = self.epoch?;
        let secs = e.fraction + t as f64 / self.rate;
        let whole = secs.floor();
        Some(TimeSpec::new(e.seconds + whole as i64, secs - whole))
    }

    fn seconds_since_epoch(&self, t: TimeSpec) -> Option<f64> {
        let e = self.epoch?;
        Some((t.seconds - e.seconds) as f64 + (t.fraction - e.fraction))
    }

    /// Fills `out` with RX for `[t0, t0 + out.len())`; returns samples lost to overflow.
    fn receive(&mut self, t0: SampleTime, out: &mut Vec<Complex32>, n: usize) -> u64 {
        out.clear();
        let mut lost = 0u64;
        let take = self.spill.len().min(n);
        out.extend(self.spill.drain(..take));
        self.scratch.resize(n.max(4096), Complex32::default());
        while out.len() < n {
            let md = match self.rx.receive(&mut [&mut self.scratch[..]], 0.5, true) {
                Ok(md) => md,
                Err(e) => {
                    tracing::warn!("UHD receive: {e}");
                    break;
                }
            };
            if let Some(err) = md.last_error() {
                tracing::debug!("UHD RX event: {err:?}");
            }
            let got = md.samples().min(self.scratch.len());
            let Some(ts) = md.time_spec() else {
                out.extend_from_slice(&self.scratch[..got]);
                continue;
            };
            if self.epoch.is_none() {
                self.epoch = Some(ts);
            }
            // Where this packet really starts in sample time: after an overflow the
            // hardware skipped samples; zeros keep the sample clock honest.
            let at = self
                .seconds_since_epoch(ts)
                .map_or(0, |s| (s * self.rate).round().max(0.0) as u64);
            let expected = t0 + out.len() as u64;
            if at > expected {
                let gap = (at - expected) as usize;
                lost += gap as u64;
                let fill = gap.min(n - out.len());
                out.extend(std::iter::repeat_n(Complex32::default(), fill));
                // A gap longer than the tick: the rest of the zeros belong to later ticks.
                self.spill
                    .extend(std::iter::repeat_n(Complex32::default(), gap - fill));
            }
            let room = n.saturating_sub(out.len());
            let k = got.min(room);
            out.extend_from_slice(&self.scratch[..k]);
            self.spill.extend_from_slice(&self.scratch[k..got]);
        }
        out.resize(n, Complex32::default());
        lost
    }
}

/// Opens a USRP for a radio head at the LTE rate of `rf`: through the N210 resampler when
/// `rf` names the N210's fixed 100 MHz master clock, directly otherwise. `tick` is the
/// engine's tick in LTE samples; the returned medium's TX advance is at least `tx_advance`.
pub fn open_lte(
    args: &str,
    rf: &RfConfig,
    tx_advance: u64,
    tick: usize,
) -> Result<Box<dyn Medium>, UhdError> {
    if (rf.master_clock_hz - 100e6).abs() >= 1.0 {
        return Ok(Box::new(UhdMedium::open(args, rf, tx_advance)?));
    }
    let plan = crate::resample::N210Plan::for_lte_rate(rf.rate_hz).map_err(UhdError::N210)?;
    let device_tick = (tick * plan.down).div_ceil(plan.up);
    let device_advance = tx_advance * plan.down as u64 / plan.up as u64;
    let dev = UhdMedium::open_at(args, rf, plan.device_rate_hz(), device_advance)?;
    Ok(Box::new(crate::resample::ResampledMedium::new(
        Box::new(dev),
        &plan,
        device_tick,
    )))
}

impl Medium for UhdMedium {
    fn tx_advance(&self) -> u64 {
        self.tx_advance
    }

    fn paced(&self) -> bool {
        true
    }

    fn exchange(
        &mut self,
        t0: SampleTime,
        tx: &[Vec<Complex32>],
        rx: &mut [Vec<Complex32>],
        events: &mut [MediumEvents],
    ) {
        let n = tx.first().map_or(0, Vec::len);
        let mut ev = MediumEvents::default();
        // TX needs the epoch, which the first RX packet gives.
        if self.epoch.is_some() {
            if let (Some(t), Some(when)) = (tx.first(), self.time_of(t0 + self.tx_advance)) {
                let mut md = TransmitMetadata::with_flags(self.first_burst, false, Some(when));
                match self.tx.send(&mut [&t[..]], &mut md, 0.1) {
                    Ok(sent) => {
                        self.first_burst = false;
                        ev.tx_lost_samples += (n - sent.min(n)) as u64;
                    }
                    Err(e) => {
                        tracing::warn!("UHD send: {e}");
                        ev.tx_lost_samples += n as u64;
                    }
                }
            }
        } else {
            ev.tx_lost_samples += n as u64;
        }
        if let Some(r) = rx.first_mut() {
            let mut buf = std::mem::take(r);
            ev.rx_lost_samples = self.receive(t0, &mut buf, n);
            *r = buf;
        }
        if let Some(e) = events.first_mut() {
            *e = ev;
        }
        for r in rx.iter_mut().skip(1) {
            r.clear();
            r.resize(n, Complex32::default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_clock_goes_into_the_device_arguments() {
        let rf = RfConfig::default();
        assert_eq!(
            device_args("addr=192.168.10.2", &rf),
            "addr=192.168.10.2,master_clock_rate=30720000"
        );
        assert_eq!(device_args("", &rf), "master_clock_rate=30720000");
        let n210 = RfConfig {
            master_clock_hz: 100e6,
            ..RfConfig::default()
        };
        assert_eq!(device_args("addr=1.2.3.4", &n210), "addr=1.2.3.4");
        assert_eq!(
            device_args("type=b200,master_clock_rate=61.44e6", &rf),
            "type=b200,master_clock_rate=61.44e6"
        );
    }

    /// Real UHD, no hardware: finding a USRP at an address nobody answers on is a clear
    /// `NotFound`, not a hang or a crash — the boundary this machine can test.
    #[test]
    fn no_usrp_is_a_clear_error() {
        let e = UhdMedium::open("addr=127.0.0.1", &RfConfig::default(), 3840).unwrap_err();
        assert!(matches!(e, UhdError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("no USRP found"), "{e}");
    }
}
