//! Load-generating hosts for measuring `ferry air`: each links one radio, receives its RX
//! and answers every block with as many TX samples a fixed lead time later, as a modem
//! does. Used by `ferry air --load` and the real-time budget measurement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use num_complex::Complex32;

use crate::client::{RadioError, RadioLink, RadioLinkConfig};

/// What a load host saw.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Radio name.
    pub radio: String,
    /// Samples received.
    pub rx_samples: u64,
    /// Samples missing in the RX stream.
    pub rx_gap_samples: u64,
    /// Samples sent.
    pub tx_samples: u64,
}

/// Starts one host thread per radio name; they run until `stop` is set. Their TX packets
/// carry `samples_per_packet` samples (the fronthaul MTU's).
pub fn spawn_hosts(
    control: &str,
    radios: &[String],
    lead_samples: u64,
    samples_per_packet: usize,
    auth: Option<crate::config::LinkAuth>,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<Result<LoadStats, RadioError>>> {
    radios
        .iter()
        .map(|name| {
            let (control, name, stop) = (control.to_owned(), name.clone(), stop.clone());
            let auth = auth.clone();
            std::thread::spawn(move || {
                // A modem's radio thread runs at real-time priority too (best effort).
                let _ = crate::sys::set_realtime_priority(10);
                let mut cfg = RadioLinkConfig::new(control, name.clone()).with_auth(auth);
                cfg.samples_per_packet = samples_per_packet;
                let mut link = RadioLink::create(&cfg)?;
                link.link()?;
                let mut st = LoadStats {
                    radio: name,
                    ..Default::default()
                };
                let mut tx = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(b) = link.recv(Duration::from_millis(50)) else {
                        continue;
                    };
                    st.rx_samples += b.samples.len() as u64;
                    tx.clear();
                    // A tone at -20 dBFS: non-zero work for the air's mixer.
                    tx.extend((0..b.samples.len() as u64).map(|k| {
                        let ph = ((b.time + k) % 64) as f32 * std::f32::consts::TAU / 64.0;
                        Complex32::from_polar(0.1, ph)
                    }));
                    link.send(b.time + lead_samples, &tx)?;
                    st.tx_samples += tx.len() as u64;
                }
                st.rx_gap_samples = link.stats.rx_gap_samples;
                Ok(st)
            })
        })
        .collect()
}
