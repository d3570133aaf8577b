//! Accounting over a day (server-hours, energy, moves, overloads against the static
//! baseline) and the serialisable snapshot of the pool that status views and the web view
//! read.

use serde::{Deserialize, Serialize};

use crate::scheduler::{Decision, Policy, Pool, Power, ServerId};

/// What the pool has cost and done so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayLedger {
    pub elapsed_h: f64,
    /// Hours of powered servers (booting, on, draining).
    pub server_hours: f64,
    /// Hours the static baseline keeps powered over the same time.
    pub static_server_hours: f64,
    pub energy_wh: f64,
    pub moves: u64,
    pub peak_moves_per_interval: u64,
    /// Server-intervals whose real load (now) exceeded the server's cores: late subframes.
    pub overloads: u64,
    /// Server-intervals above the usable cores (inside the headroom, still real time).
    pub over_headroom: u64,
    pub intervals: u64,
}

impl DayLedger {
    /// Books one interval of `interval_ms` after `decision`, with the cells' real load
    /// `now_cores` and `static_powered` servers kept on by the baseline.
    pub fn record(
        &mut self,
        pool: &Pool,
        decision: &Decision,
        now_cores: &[f64],
        static_powered: usize,
        interval_ms: u64,
    ) {
        let dt_h = interval_ms as f64 / 3_600_000.0;
        let load = pool.server_loads(|i| now_cores.get(i).copied().unwrap_or(0.0));
        for (i, s) in pool.servers.iter().enumerate() {
            if !s.power.is_powered() {
                continue;
            }
            self.server_hours += dt_h;
            let cores = s.spec.cores as f64;
            let busy = match s.power {
                Power::Booting { .. } => 0.0,
                _ => (load[i] / cores).clamp(0.0, 1.0),
            };
            self.energy_wh += dt_h * (s.spec.idle_w + (s.spec.busy_w - s.spec.idle_w) * busy);
            if load[i] > cores {
                self.overloads += 1;
            } else if load[i] > pool.usable(ServerId(i as u32)) {
                self.over_headroom += 1;
            }
        }
        self.static_server_hours += static_powered as f64 * dt_h;
        self.elapsed_h += dt_h;
        let moves = decision.moves.len() as u64;
        self.moves += moves;
        self.peak_moves_per_interval = self.peak_moves_per_interval.max(moves);
        self.intervals += 1;
    }

    /// Server-hours saved against the static baseline, percent.
    pub fn saved_pct(&self) -> f64 {
        if self.static_server_hours <= 0.0 {
            return 0.0;
        }
        100.0 * (1.0 - self.server_hours / self.static_server_hours)
    }
}

/// One server as a view shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub id: u32,
    pub name: String,
    pub cores: u32,
    pub power: Power,
    pub load_cores: f64,
    pub cells: u32,
}

/// One cell as a view shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellView {
    pub id: u32,
    pub name: String,
    pub host: String,
    pub moving_to: Option<String>,
    pub load_cores: f64,
}

/// The pool's state at one moment: what `ferry pool status` prints and the web view serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    pub at_ms: u64,
    pub policy: Policy,
    pub servers_on: u32,
    pub load_cores: f64,
    pub servers: Vec<ServerView>,
    pub cells: Vec<CellView>,
    pub ledger: DayLedger,
    pub saved_pct: f64,
}

impl PoolSnapshot {
    pub fn of(
        pool: &Pool,
        policy: Policy,
        at_ms: u64,
        now_cores: &[f64],
        ledger: &DayLedger,
    ) -> PoolSnapshot {
        let core = |i: usize| now_cores.get(i).copied().unwrap_or(0.0);
        let load = pool.server_loads(core);
        let mut count = vec![0u32; pool.servers.len()];
        for c in &pool.cells {
            count[c.host.0 as usize] += 1;
        }
        let name = |s: ServerId| pool.servers[s.0 as usize].spec.name.clone();
        PoolSnapshot {
            at_ms,
            policy,
            servers_on: pool.servers.iter().filter(|s| s.power.is_powered()).count() as u32,
            load_cores: (0..pool.cells.len()).map(core).sum(),
            servers: pool
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| ServerView {
                    id: i as u32,
                    name: s.spec.name.clone(),
                    cores: s.spec.cores,
                    power: s.power,
                    load_cores: load[i],
                    cells: count[i],
                })
                .collect(),
            cells: pool
                .cells
                .iter()
                .enumerate()
                .map(|(i, c)| CellView {
                    id: i as u32,
                    name: c.name.clone(),
                    host: name(c.host),
                    moving_to: c.moving_to.map(name),
                    load_cores: core(i),
                })
                .collect(),
            ledger: ledger.clone(),
            saved_pct: ledger.saved_pct(),
        }
    }
}
