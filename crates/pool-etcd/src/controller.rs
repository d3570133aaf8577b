//! The pool controller: campaigns with etcd's election API, and while it leads, reads the
//! pool from etcd, asks the ferry-pool scheduler, and carries out its moves as fenced
//! transactions (CAS on the cell's epoch and on the leader key) executed by a
//! [`MoveExecutor`]. A standby campaigns on the same election and takes over when the
//! leader's lease expires; moves a dead leader left half done (desired ≠ actual) are finished
//! from what the executor reports, never executed twice.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use ferry_pool::{
    CellDemand, DayLedger, Policy, Pool, PoolSnapshot, Power, PowerAction, SchedulerConfig,
    ServerId, ServerSpec,
};
use tracing::{info, warn};

use crate::layout;
use crate::store::{Fence, PoolState, PoolStore};
use crate::StoreError;

/// Carries out moves on the servers: [`crate::AgentExecutor`] drives the agents'
/// make-before-break (`ferry ctl migrate`'s machinery), [`DryRunLog`] only records.
pub trait MoveExecutor {
    /// Moves `cell` from `from` to `to` (make-before-break); Ok once `to` serves.
    fn execute(&mut self, cell: &str, from: &str, to: &str, epoch: u64) -> Result<(), String>;
    /// The server that serves `cell` now, as the executors know it (None: unknown).
    fn locate(&mut self, cell: &str) -> Result<Option<String>, String>;
    /// The pool as last read from etcd (servers' agent slots, cells' radios), before any
    /// `execute` or `locate` of a round.
    fn observe(&mut self, _state: &PoolState) {}
}

/// Records moves in an append-only file instead of executing them (`ferry pool run
/// --dry-run-log`): one line `cell epoch from to` per move, written when the move "completes"
/// after `move_ms`. Shared by every controller of a pool, it answers `locate` from the file.
pub struct DryRunLog {
    pub path: PathBuf,
    pub move_ms: u64,
}

impl DryRunLog {
    /// Every recorded move as (cell, epoch, from, to).
    pub fn read(path: &std::path::Path) -> std::io::Result<Vec<(String, u64, String, String)>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [c, e, from, to] => Some((
                        c.to_string(),
                        e.parse().ok()?,
                        from.to_string(),
                        to.to_string(),
                    )),
                    _ => None,
                }
            })
            .collect())
    }
}

impl MoveExecutor for DryRunLog {
    fn execute(&mut self, cell: &str, from: &str, to: &str, epoch: u64) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(self.move_ms));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| e.to_string())?;
        // One write of a whole line: appends from several processes do not interleave.
        file.write_all(format!("{cell} {epoch} {from} {to}\n").as_bytes())
            .map_err(|e| e.to_string())
    }

    fn locate(&mut self, cell: &str) -> Result<Option<String>, String> {
        let moves = DryRunLog::read(&self.path).map_err(|e| e.to_string())?;
        Ok(moves
            .into_iter()
            .filter(|m| m.0 == cell)
            .max_by_key(|m| m.1)
            .map(|m| m.3))
    }
}

/// How a controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub name: String,
    pub endpoints: Vec<String>,
    /// TTL of the leader's lease: a standby leads at most this long after the leader died.
    pub lease_ttl_s: i64,
    pub interval: Duration,
    /// Policy when etcd holds none.
    pub default_policy: Policy,
    pub scheduler: SchedulerConfig,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Keeps a lease alive from its own thread (and connection), so a long blocking move never
/// starves it; stops when `stop` is set or etcd stops answering (the lease then expires).
pub fn keep_lease_alive(endpoints: Vec<String>, lease: i64, ttl_s: i64, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(mut client) = Client::connect(&endpoints, None).await else {
                return;
            };
            let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await else {
                return;
            };
            let period = Duration::from_millis((ttl_s.max(1) as u64 * 1000) / 3);
            while !stop.load(Ordering::Relaxed) {
                if keeper.keep_alive().await.is_err() {
                    return;
                }
                match stream.message().await {
                    Ok(Some(resp)) if resp.ttl() > 0 => {}
                    _ => return,
                }
                tokio::time::sleep(period).await;
            }
        });
    });
}

/// Runs a controller for ever: campaign, lead until leadership is lost, campaign again.
pub async fn run_controller(
    config: ControllerConfig,
    executor: &mut dyn MoveExecutor,
) -> Result<(), StoreError> {
    loop {
        let mut store = PoolStore::connect(&config.endpoints).await?;
        let lease = store
            .client
            .lease_grant(config.lease_ttl_s, None)
            .await?
            .id();
        let stop = Arc::new(AtomicBool::new(false));
        keep_lease_alive(
            config.endpoints.clone(),
            lease,
            config.lease_ttl_s,
            stop.clone(),
        );
        info!(name = %config.name, "standing by for the pool's leadership");
        let resp = store
            .client
            .campaign(layout::ELECTION, config.name.clone(), lease)
            .await?;
        let leader = resp
            .leader()
            .ok_or_else(|| StoreError::Corrupt("campaign answered without a leader key".into()))?;
        let fence = Fence {
            key: leader.key().to_vec(),
            rev: leader.rev(),
        };
        info!(name = %config.name, "leading the pool");
        let result = lead(&config, &mut store, &fence, executor).await;
        stop.store(true, Ordering::Relaxed);
        match result {
            Err(StoreError::LostLeadership) => {
                warn!(name = %config.name, "lost the leadership; campaigning again");
            }
            other => return other,
        }
    }
}

async fn lead(
    config: &ControllerConfig,
    store: &mut PoolStore,
    fence: &Fence,
    executor: &mut dyn MoveExecutor,
) -> Result<(), StoreError> {
    // The day's ledger goes on from where the previous leader left it.
    let mut ledger = store
        .snapshot()
        .await?
        .map(|s| s.ledger)
        .unwrap_or_default();
    let mut last_round_ms = unix_ms();
    loop {
        still_leader(store, fence).await?;
        let state = store.read().await?;
        executor.observe(&state);
        finish_interrupted_moves(store, &state, fence, executor).await?;
        let state = store.read().await?;
        executor.observe(&state);
        let now = unix_ms();
        let elapsed = now.saturating_sub(last_round_ms);
        last_round_ms = now;
        round(config, store, &state, fence, executor, &mut ledger, elapsed).await?;
        tokio::time::sleep(config.interval).await;
    }
}

async fn still_leader(store: &mut PoolStore, fence: &Fence) -> Result<(), StoreError> {
    let resp = store.client.get(fence.key.clone(), None).await?;
    match resp.kvs().first() {
        Some(kv) if kv.create_revision() == fence.rev => Ok(()),
        _ => Err(StoreError::LostLeadership),
    }
}

/// Moves begun (desired ≠ actual) by a leader that died: finished if the executor already
/// serves the cell at the destination, else executed now. Each exactly once.
async fn finish_interrupted_moves(
    store: &mut PoolStore,
    state: &PoolState,
    fence: &Fence,
    executor: &mut dyn MoveExecutor,
) -> Result<(), StoreError> {
    for (cell, rec) in &state.cells {
        if rec.desired == rec.actual {
            continue;
        }
        let at = executor.locate(cell).map_err(StoreError::Executor)?;
        if at.as_deref() != Some(rec.desired.as_str()) {
            info!(%cell, from = %rec.actual, to = %rec.desired, epoch = rec.epoch, "re-driving an interrupted move");
            if let Err(e) = executor.execute(cell, &rec.actual, &rec.desired, rec.epoch) {
                warn!(%cell, error = %e, "re-driven move failed");
                settle_failed_move(store, executor, cell, &rec.desired, rec.epoch, fence).await?;
                continue;
            }
        } else {
            info!(%cell, to = %rec.desired, epoch = rec.epoch, "interrupted move had completed; recording it");
        }
        if !store.finish_move(cell, rec.epoch, Some(fence)).await? {
            still_leader(store, fence).await?;
        }
    }
    Ok(())
}

/// After a failed move: asks the executor where `cell` really serves and makes etcd say
/// so (never claims the move). At the destination after all: the move is finished (true).
/// Elsewhere: the move is aborted there (desired = actual = where it serves). Nowhere, or
/// the executor cannot tell: desired ≠ actual stays, and the next round asks again.
async fn settle_failed_move(
    store: &mut PoolStore,
    executor: &mut dyn MoveExecutor,
    cell: &str,
    to: &str,
    epoch: u64,
    fence: &Fence,
) -> Result<bool, StoreError> {
    match executor.locate(cell) {
        Ok(Some(at)) if at == to => {
            info!(%cell, %to, "the failed move's destination serves after all: finishing it");
            if !store.finish_move(cell, epoch, Some(fence)).await? {
                still_leader(store, fence).await?;
            }
            Ok(true)
        }
        Ok(Some(at)) => {
            info!(%cell, %at, "the cell still serves at {at}: aborting the move");
            if !store.abort_move(cell, epoch, &at, Some(fence)).await? {
                still_leader(store, fence).await?;
            }
            Ok(false)
        }
        Ok(None) => {
            warn!(%cell, "no server serves the cell: its move stays open");
            Ok(false)
        }
        Err(e) => {
            warn!(%cell, error = %e, "cannot locate the cell: its move stays open");
            Ok(false)
        }
    }
}

/// One scheduling round over the state read from etcd.
async fn round(
    config: &ControllerConfig,
    store: &mut PoolStore,
    state: &PoolState,
    fence: &Fence,
    executor: &mut dyn MoveExecutor,
    ledger: &mut DayLedger,
    elapsed_ms: u64,
) -> Result<(), StoreError> {
    let names: Vec<&String> = state.servers.keys().collect();
    let index: BTreeMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let specs = state
        .servers
        .iter()
        .map(|(name, r)| ServerSpec {
            name: name.clone(),
            cores: r.cores,
            boot_ms: r.boot_ms,
            idle_w: r.idle_w,
            busy_w: r.busy_w,
        })
        .collect();
    // Cells on servers that are not registered (dead) are not scheduled here: re-protecting
    // them is failover's job.
    let cells: Vec<(&String, &layout::CellRecord)> = state
        .cells
        .iter()
        .filter(|(_, r)| r.desired == r.actual && index.contains_key(r.actual.as_str()))
        .collect();
    if names.is_empty() {
        return Ok(());
    }

    let placement = cells
        .iter()
        .map(|(n, r)| ((*n).clone(), ServerId(index[r.actual.as_str()])))
        .collect();
    let mut pool = Pool::new(specs, Power::On, placement, config.scheduler)?;
    for (i, name) in names.iter().enumerate() {
        if let Some(p) = state.power.get(*name) {
            pool.servers[i].power = *p;
        }
    }
    for d in &state.drains {
        if let Some(i) = index.get(d.as_str()) {
            pool.request_drain(ServerId(*i));
        }
    }
    let now = unix_ms();
    pool.advance(now);
    let demand: Vec<CellDemand> = cells
        .iter()
        .map(|(_, r)| CellDemand::flat(r.demand_cores.max(0.0)))
        .collect();
    let policy = state.policy.unwrap_or(config.default_policy);
    let decision = pool.decide(now, &demand, policy)?;
    let mut done = Vec::new();
    for m in &decision.moves {
        let (cell, rec) = cells[m.cell.0 as usize];
        let (from, to) = (names[m.from.0 as usize], names[m.to.0 as usize]);
        if !store
            .begin_move(cell, rec.epoch, from, to, Some(fence))
            .await?
        {
            still_leader(store, fence).await?;
            warn!(%cell, "move refused: the cell changed since it was read");
            continue;
        }
        let epoch = rec.epoch + 1;
        info!(%cell, %from, %to, epoch, "moving");
        match executor.execute(cell, from, to, epoch) {
            Ok(()) => {
                if !store.finish_move(cell, epoch, Some(fence)).await? {
                    still_leader(store, fence).await?;
                }
                done.push(*m);
            }
            Err(e) => {
                warn!(%cell, error = %e, "move failed");
                if settle_failed_move(store, executor, cell, to, epoch, fence).await? {
                    done.push(*m);
                }
            }
        }
    }
    // Only what was done: a server whose cell did not move stays on.
    let done_moves = done.clone();
    pool.apply(&ferry_pool::Decision {
        moves: done,
        power: Vec::new(),
    })?;
    let power: Vec<PowerAction> = decision
        .power
        .iter()
        .copied()
        .filter(|a| match a {
            PowerAction::PowerOff { server } => pool.cells.iter().all(|c| c.host != *server),
            _ => true,
        })
        .collect();
    pool.apply(&ferry_pool::Decision {
        moves: Vec::new(),
        power: power.clone(),
    })?;
    for a in &power {
        let s = match *a {
            PowerAction::Wake { server, .. }
            | PowerAction::Drain { server }
            | PowerAction::Undrain { server }
            | PowerAction::PowerOff { server } => server,
        };
        info!(server = %names[s.0 as usize], action = ?a, "power");
    }
    // Persist every power state that changed (decisions and boots that completed).
    for (i, name) in names.iter().enumerate() {
        let p = pool.servers[i].power;
        if state.power.get(*name) != Some(&p) && !store.set_power(name, p, Some(fence)).await? {
            return Err(StoreError::LostLeadership);
        }
    }
    // The snapshot views read (ferry pool status, the web view): the static baseline keeps
    // every registered server on.
    let done_decision = ferry_pool::Decision {
        moves: done_moves,
        power,
    };
    let load: Vec<f64> = demand.iter().map(|d| d.now).collect();
    ledger.record(&pool, &done_decision, &load, names.len(), elapsed_ms);
    let snapshot = PoolSnapshot::of(&pool, policy, now, &load, ledger);
    if !store.put_snapshot(&snapshot, fence).await? {
        return Err(StoreError::LostLeadership);
    }
    Ok(())
}
