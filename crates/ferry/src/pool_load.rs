//! The per-server load reporter of `ferry pool register --slot … --key …`: every period it
//! asks each of this server's cell agents for `observe`; for a modem that serves (`active`)
//! it measures the cell's demand and writes it as the cell's `demand_cores`; every modem's
//! demand (shadows too) sums to the server's `load_cores`. Two measures
//! (`--demand`, [`DemandModel`]):
//!
//! - `cpu`: the modem process's CPU (`ferry_agent::load`, /proc utime + stime). The agents'
//!   `status` names the modem's pid, and the reporter runs on the server, where that pid is.
//! - `prb:BW:MOD`: the cell's PRB use — the share of the MAC bytes its link offered that
//!   carried something, from the modem's air-use counters in `observe` — through the cost
//!   table of a BW MHz MOD cell (`ferry_pool::cost`, the measured PHY benches). This is
//!   what a vRAN scheduler plans with (PRB use × MCS → decode CPU); it lets a testbed of
//!   1.4 MHz modems, whose CPU is the same idle or busy, stand for wide cells whose CPU
//!   follows their traffic (docs/POOL.md, "Demand").

use ferry_agent::load::CpuMeter;
use ferry_auth::AuthKey;
use ferry_ctl::AgentClient;
use ferry_migrate::{ModemMode, Request};
use ferry_pool::{cell_cores, Bandwidth, Modulation};
use ferry_pool_etcd::layout::{AgentSlot, ServerRecord};
use ferry_pool_etcd::PoolStore;
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// What a cell's demand is measured as (`ferry pool register --demand`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DemandModel {
    /// The modem process's CPU, cores.
    Cpu,
    /// The cell's measured PRB use through the cost of a cell of this bandwidth and
    /// modulation.
    Prb {
        bandwidth: Bandwidth,
        modulation: Modulation,
    },
}

impl std::str::FromStr for DemandModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--demand {s:?}: expected cpu or prb:BW:MOD with BW one of 1.4, 3, 5, 10, 15, \
                 20 (MHz) and MOD one of qpsk, 16qam, 64qam (e.g. prb:20:64qam)"
            )
        };
        if s == "cpu" {
            return Ok(DemandModel::Cpu);
        }
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("prb"), Some(bw), Some(m), None) => Ok(DemandModel::Prb {
                bandwidth: Bandwidth::from_mhz(bw).ok_or_else(bad)?,
                modulation: match m.to_ascii_lowercase().as_str() {
                    "qpsk" => Modulation::Qpsk,
                    "16qam" => Modulation::Qam16,
                    "64qam" => Modulation::Qam64,
                    _ => return Err(bad()),
                },
            }),
            _ => Err(bad()),
        }
    }
}

/// The form [`DemandModel`]'s `FromStr` reads (`cpu`, `prb:20:64qam`).
impl std::fmt::Display for DemandModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemandModel::Cpu => f.write_str("cpu"),
            DemandModel::Prb {
                bandwidth,
                modulation,
            } => write!(f, "prb:{}:{}", bandwidth.mhz_text(), modulation.text()),
        }
    }
}

/// A cell's PRB use between two readings of its modem's air-use counters (capacity bytes,
/// payload bytes): `None` for the first reading, a modem that restarted (counters went
/// back) or an interval without a subframe.
#[derive(Debug, Default)]
pub struct AirMeter {
    last: Option<(u32, u64, u64)>,
}

impl AirMeter {
    /// Reads the counters of modem `pid`; the PRB use since the last reading, 0..=1.
    pub fn sample(&mut self, pid: u32, capacity: u64, payload: u64) -> Option<f64> {
        let last = self.last.replace((pid, capacity, payload));
        let (p, c0, u0) = last?;
        if p != pid || capacity <= c0 || payload < u0 {
            return None;
        }
        Some(((payload - u0) as f64 / (capacity - c0) as f64).clamp(0.0, 1.0))
    }
}

/// One measurement of this server's modems.
#[derive(Debug, Clone, Default)]
pub struct LoadSample {
    /// Cells whose modem serves here, with their demand (cores).
    pub serving: Vec<(String, f64)>,
    /// Demand of every modem here (serving and shadow), cores.
    pub total_cores: f64,
}

/// Starts the measuring thread; one [`LoadSample`] per `period` on the receiver. Ends when
/// the receiver is dropped.
pub fn spawn_reporter(
    slots: BTreeMap<String, AgentSlot>,
    key: AuthKey,
    period: Duration,
    model: DemandModel,
) -> Receiver<LoadSample> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut meters: BTreeMap<String, CpuMeter> = BTreeMap::new();
        let mut air: BTreeMap<String, AirMeter> = BTreeMap::new();
        loop {
            std::thread::sleep(period);
            let mut sample = LoadSample::default();
            for (cell, slot) in &slots {
                let mut client = AgentClient::named(
                    slot.name.clone(),
                    slot.agent.clone(),
                    key.clone(),
                    Duration::from_millis(800),
                );
                let Ok(Ok(st)) = client.call(&Request::Observe).map(|r| r.status()) else {
                    continue;
                };
                let Some(pid) = st.modem_pid else {
                    meters.remove(cell);
                    air.remove(cell);
                    continue;
                };
                let cores = match model {
                    DemandModel::Cpu => meters.entry(cell.clone()).or_default().sample(pid),
                    DemandModel::Prb {
                        bandwidth,
                        modulation,
                    } => st.modem.as_ref().and_then(|m| {
                        air.entry(cell.clone())
                            .or_default()
                            .sample(pid, m.air_capacity_bytes, m.air_payload_bytes)
                            .map(|u| cell_cores(bandwidth, modulation, u))
                    }),
                };
                let Some(cores) = cores else {
                    continue;
                };
                sample.total_cores += cores;
                if st
                    .modem
                    .as_ref()
                    .is_some_and(|m| m.mode == ModemMode::Active)
                {
                    sample.serving.push((cell.clone(), cores));
                }
            }
            if tx.send(sample).is_err() {
                return;
            }
        }
    });
    rx
}

/// Writes a sample: each serving cell's demand (if etcd places it on this server) and the
/// server's load (its record re-put under its lease).
pub async fn write(
    store: &mut PoolStore,
    server: &str,
    record: &ServerRecord,
    lease: i64,
    sample: &LoadSample,
) -> anyhow::Result<()> {
    for (cell, cores) in &sample.serving {
        let placed_here = store
            .cell(cell)
            .await?
            .is_some_and(|c| c.actual == server && c.desired == server);
        // A refused write (a move began meanwhile) is dropped: the next sample comes soon.
        if placed_here {
            let _ = store.set_demand(cell, *cores).await?;
        }
    }
    let mut record = record.clone();
    record.load_cores = sample.total_cores;
    store.register_server(server, &record, lease).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_models_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("cpu".parse::<DemandModel>(), Ok(DemandModel::Cpu));
        assert_eq!(
            "prb:20:64qam".parse::<DemandModel>(),
            Ok(DemandModel::Prb {
                bandwidth: Bandwidth::Mhz20,
                modulation: Modulation::Qam64
            })
        );
        assert!("prb:1.4:QPSK".parse::<DemandModel>().is_ok());
        for bandwidth in Bandwidth::ALL {
            for modulation in Modulation::ALL {
                let model = DemandModel::Prb {
                    bandwidth,
                    modulation,
                };
                assert_eq!(model.to_string().parse::<DemandModel>(), Ok(model));
            }
        }
        for bad in [
            "",
            "prb",
            "prb:7:qpsk",
            "prb:20:256qam",
            "prb:20:64qam:x",
            "gpu",
        ] {
            let e = bad.parse::<DemandModel>().unwrap_err();
            assert!(e.contains("prb:20:64qam"), "{e}");
        }
    }

    #[test]
    fn the_air_meter_gives_the_share_used_and_nothing_across_a_restart() {
        let mut m = AirMeter::default();
        assert_eq!(m.sample(7, 1000, 10), None);
        assert_eq!(m.sample(7, 2000, 510), Some(0.5));
        // No subframe in between: no figure rather than a division by zero.
        assert_eq!(m.sample(7, 2000, 510), None);
        // Another modem (a move, a restart): start again.
        assert_eq!(m.sample(8, 50, 0), None);
        assert_eq!(m.sample(8, 150, 25), Some(0.25));
        // Counters that went back (the same pid reused): nothing.
        assert_eq!(m.sample(8, 100, 5), None);
        assert_eq!(m.sample(8, 200, 105), Some(1.0));
    }
}
