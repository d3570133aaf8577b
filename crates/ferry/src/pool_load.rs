//! The per-server load reporter of `ferry pool register --slot … --key …`: every period it
//! asks each of this server's cell agents for `status`; for a modem that serves (`active`)
//! it measures the modem process's CPU (`ferry_agent::load`, /proc utime + stime) and
//! writes it as the cell's `demand_cores`; every modem's CPU (shadows too) sums to the
//! server's `load_cores`. The agents' protocol is unchanged: `status` already names the
//! modem's pid, and the reporter runs on the server itself, where that pid is.

use ferry_agent::load::CpuMeter;
use ferry_auth::AuthKey;
use ferry_ctl::AgentClient;
use ferry_migrate::{ModemMode, Request};
use ferry_pool_etcd::layout::{AgentSlot, ServerRecord};
use ferry_pool_etcd::PoolStore;
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// One measurement of this server's modems.
#[derive(Debug, Clone, Default)]
pub struct LoadSample {
    /// Cells whose modem serves here, with the cores it used.
    pub serving: Vec<(String, f64)>,
    /// Cores of every modem here (serving and shadow).
    pub total_cores: f64,
}

/// Starts the measuring thread; one [`LoadSample`] per `period` on the receiver. Ends when
/// the receiver is dropped.
pub fn spawn_reporter(
    slots: BTreeMap<String, AgentSlot>,
    key: AuthKey,
    period: Duration,
) -> Receiver<LoadSample> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut meters: BTreeMap<String, CpuMeter> = BTreeMap::new();
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
                    continue;
                };
                let Some(cores) = meters.entry(cell.clone()).or_default().sample(pid) else {
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
