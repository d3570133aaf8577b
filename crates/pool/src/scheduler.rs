//! The placement scheduler: the pool's servers and cells, and the policies that turn the
//! cells' CPU demand into make-before-break moves and power actions. Pure: the caller passes
//! the time and the demand, applies the decision (or executes it and reports back).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Index of a server in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerId(pub u32);

/// Index of a cell in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellId(pub u32);

/// What a server is and costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub name: String,
    pub cores: u32,
    /// From power-on to an agent that can take a cell (warm).
    pub boot_ms: u64,
    pub idle_w: f64,
    pub busy_w: f64,
}

/// A server's power state as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    Off,
    /// Powered on, not yet warm: takes no cell until `ready_at_ms`.
    Booting {
        ready_at_ms: u64,
    },
    On,
    /// On, takes no new cell; powered off once its cells have moved away.
    Draining,
}

impl Power {
    /// Draws power (counts in server-hours).
    pub fn is_powered(self) -> bool {
        !matches!(self, Power::Off)
    }
}

/// A server of the pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub spec: ServerSpec,
    pub power: Power,
    /// The operator asked for this server to be emptied (`ferry pool drain`): no policy
    /// places a cell on it, undrains or wakes it.
    #[serde(default)]
    pub operator_drain: bool,
}

/// A cell (one modem task) and where it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub name: String,
    pub host: ServerId,
    /// A move under way (make-before-break armed, not yet cut over): the cell costs CPU on
    /// both servers and is not moved again until it completes.
    pub moving_to: Option<ServerId>,
}

/// A cell's CPU demand in cores: now, and the most it will need before a server booted now
/// would be warm (the caller's forecast; the scheduler plans with the larger).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellDemand {
    pub now: f64,
    pub ahead: f64,
}

impl CellDemand {
    pub fn flat(cores: f64) -> CellDemand {
        CellDemand {
            now: cores,
            ahead: cores,
        }
    }

    fn plan(self) -> f64 {
        self.now.max(self.ahead)
    }
}

/// The placement policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The baseline: every cell stays where it started, every server that hosts one stays on.
    Static,
    /// Balance the load over every server of the pool (all on).
    Spread,
    /// Bin packing with headroom and hysteresis: as few servers on as the load needs.
    Consolidate,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Static, Policy::Spread, Policy::Consolidate];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Static => "static",
            Policy::Spread => "spread",
            Policy::Consolidate => "consolidate",
        }
    }

    pub fn parse(text: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == text.trim())
    }
}

/// Tunables of the policies (fractions of a server's usable cores unless said otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Share of each server's cores never planned (absorbs growth within an interval and the
    /// OS); usable = cores × (1 − headroom).
    pub headroom: f64,
    /// Placements made to consolidate fill a server to at most this share of usable, so a
    /// small rise does not immediately force a move back.
    pub fill_limit: f64,
    /// A server is drained only if the remaining servers' mean planned use stays at or
    /// below this share of usable (lower than `wake_above`: the hysteresis band).
    pub drain_below: f64,
    /// Servers are woken when the mean planned use of the warm and booting servers exceeds
    /// this share of usable.
    pub wake_above: f64,
    /// Spread: balance until the most and least used servers differ by at most this.
    pub spread_tolerance: f64,
    /// Moves per decision at most (each is a make-before-break of seconds).
    pub max_moves_per_decision: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            headroom: 0.2,
            fill_limit: 0.95,
            drain_below: 0.8,
            wake_above: 0.9,
            spread_tolerance: 0.1,
            max_moves_per_decision: 2000,
        }
    }
}

/// A make-before-break move of one cell to a warm server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub cell: CellId,
    pub from: ServerId,
    pub to: ServerId,
}

/// A change of a server's power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum PowerAction {
    /// Power on; warm at `ready_at_ms`.
    Wake { server: ServerId, ready_at_ms: u64 },
    /// Stop placing cells here; power off once empty.
    Drain { server: ServerId },
    /// A draining server is needed again (it is warm: cheaper than booting another).
    Undrain { server: ServerId },
    /// Power off an empty, drained server.
    PowerOff { server: ServerId },
}

/// What one decision asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub moves: Vec<Move>,
    pub power: Vec<PowerAction>,
}

impl Decision {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.power.is_empty()
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum PoolError {
    #[error("{got} demands for {cells} cells")]
    DemandCount { got: usize, cells: usize },
    #[error("demand of cell {0} is not a finite, non-negative number of cores")]
    BadDemand(u32),
    #[error("cell {cell} is placed on server {server}, which does not exist")]
    NoSuchServer { cell: u32, server: u32 },
    #[error("the pool has no server")]
    NoServers,
    #[error("move of cell {0} is not valid in the current state: {1}")]
    BadMove(u32, &'static str),
}

/// The pool: servers, cells and their placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub servers: Vec<Server>,
    pub cells: Vec<Cell>,
    pub config: SchedulerConfig,
}

/// The decision's working copy of the pool's per-server state.
struct Plan<'a> {
    pool: &'a Pool,
    load: Vec<f64>,
    power: Vec<Power>,
    host: Vec<ServerId>,
    /// Cells hosted per server (kept current as moves are planned).
    cells_on: Vec<Vec<CellId>>,
    /// Servers that are the destination of a move under way.
    incoming: Vec<bool>,
    /// Cells moved in this decision (one move per cell per decision).
    moved: Vec<bool>,
    plan: Vec<f64>,
    decision: Decision,
}

impl Pool {
    /// A pool with every server in `power` and every cell on its initial server.
    pub fn new(
        servers: Vec<ServerSpec>,
        power: Power,
        cells: Vec<(String, ServerId)>,
        config: SchedulerConfig,
    ) -> Result<Pool, PoolError> {
        if servers.is_empty() {
            return Err(PoolError::NoServers);
        }
        let n = servers.len() as u32;
        let mut out = Vec::with_capacity(cells.len());
        for (i, (name, host)) in cells.into_iter().enumerate() {
            if host.0 >= n {
                return Err(PoolError::NoSuchServer {
                    cell: i as u32,
                    server: host.0,
                });
            }
            out.push(Cell {
                name,
                host,
                moving_to: None,
            });
        }
        Ok(Pool {
            servers: servers
                .into_iter()
                .map(|spec| Server {
                    spec,
                    power,
                    operator_drain: false,
                })
                .collect(),
            cells: out,
            config,
        })
    }

    /// The operator's drain: every policy moves the server's cells away (make-before-break)
    /// and powers it off once empty; it stays off until released.
    pub fn request_drain(&mut self, server: ServerId) {
        if let Some(s) = self.servers.get_mut(server.0 as usize) {
            s.operator_drain = true;
            if s.power.is_powered() {
                s.power = Power::Draining;
            }
        }
    }

    /// Usable cores of a server (cores less the headroom).
    pub fn usable(&self, server: ServerId) -> f64 {
        self.servers[server.0 as usize].spec.cores as f64 * (1.0 - self.config.headroom)
    }

    /// Booting servers whose boot time has passed become warm.
    pub fn advance(&mut self, now_ms: u64) {
        for s in &mut self.servers {
            if let Power::Booting { ready_at_ms } = s.power {
                if ready_at_ms <= now_ms {
                    s.power = Power::On;
                }
            }
        }
    }

    /// CPU load per server (cores) for the given per-cell cores; a cell in a move counts on
    /// both servers (make-before-break runs both copies).
    pub fn server_loads(&self, cores: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut load = vec![0.0; self.servers.len()];
        for (i, c) in self.cells.iter().enumerate() {
            let x = cores(i);
            load[c.host.0 as usize] += x;
            if let Some(to) = c.moving_to {
                load[to.0 as usize] += x;
            }
        }
        load
    }

    fn check_demand(&self, demand: &[CellDemand]) -> Result<(), PoolError> {
        if demand.len() != self.cells.len() {
            return Err(PoolError::DemandCount {
                got: demand.len(),
                cells: self.cells.len(),
            });
        }
        for (i, d) in demand.iter().enumerate() {
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !ok(d.now) || !ok(d.ahead) {
                return Err(PoolError::BadDemand(i as u32));
            }
        }
        Ok(())
    }

    /// Decides moves and power actions for the demand at `now_ms`.
    pub fn decide(
        &self,
        now_ms: u64,
        demand: &[CellDemand],
        policy: Policy,
    ) -> Result<Decision, PoolError> {
        self.check_demand(demand)?;
        let mut plan = Plan::new(self, now_ms, demand);
        // Draining servers are emptied under every policy (the operator's drains included).
        plan.empty_draining();
        match policy {
            Policy::Static => plan.keep_hosts_powered(now_ms),
            Policy::Spread => {
                plan.wake_all(now_ms);
                plan.balance();
            }
            Policy::Consolidate => plan.consolidate(now_ms),
        }
        Ok(plan.decision)
    }

    /// Applies a decision as if every move completed at once (the simulator; a live pool
    /// calls [`Pool::begin_move`] and [`Pool::finish_move`] as the agents report).
    pub fn apply(&mut self, decision: &Decision) -> Result<(), PoolError> {
        for m in &decision.moves {
            self.begin_move(*m)?;
            self.finish_move(m.cell)?;
        }
        for a in &decision.power {
            match *a {
                PowerAction::Wake {
                    server,
                    ready_at_ms,
                } => self.servers[server.0 as usize].power = Power::Booting { ready_at_ms },
                PowerAction::Drain { server } => {
                    self.servers[server.0 as usize].power = Power::Draining
                }
                PowerAction::Undrain { server } => {
                    self.servers[server.0 as usize].power = Power::On
                }
                PowerAction::PowerOff { server } => {
                    if self.hosts_any(server) {
                        return Err(PoolError::BadMove(u32::MAX, "power-off of a busy server"));
                    }
                    self.servers[server.0 as usize].power = Power::Off
                }
            }
        }
        Ok(())
    }

    fn hosts_any(&self, server: ServerId) -> bool {
        self.cells
            .iter()
            .any(|c| c.host == server || c.moving_to == Some(server))
    }

    /// A move has been armed (the destination shadows the cell).
    pub fn begin_move(&mut self, m: Move) -> Result<(), PoolError> {
        let n = self.servers.len() as u32;
        let cell = self
            .cells
            .get_mut(m.cell.0 as usize)
            .ok_or(PoolError::BadMove(m.cell.0, "no such cell"))?;
        if m.to.0 >= n {
            return Err(PoolError::BadMove(m.cell.0, "no such server"));
        }
        if cell.host != m.from {
            return Err(PoolError::BadMove(m.cell.0, "cell is not on the source"));
        }
        if cell.moving_to.is_some() {
            return Err(PoolError::BadMove(m.cell.0, "cell is already moving"));
        }
        if !matches!(self.servers[m.to.0 as usize].power, Power::On) {
            return Err(PoolError::BadMove(
                m.cell.0,
                "destination is not on and warm",
            ));
        }
        cell.moving_to = Some(m.to);
        Ok(())
    }

    /// The destination serves: the move is done.
    pub fn finish_move(&mut self, cell: CellId) -> Result<(), PoolError> {
        let c = self
            .cells
            .get_mut(cell.0 as usize)
            .ok_or(PoolError::BadMove(cell.0, "no such cell"))?;
        let to = c
            .moving_to
            .take()
            .ok_or(PoolError::BadMove(cell.0, "cell is not moving"))?;
        c.host = to;
        Ok(())
    }

    /// The move failed; the source keeps serving (make-before-break never breaks first).
    pub fn abort_move(&mut self, cell: CellId) {
        if let Some(c) = self.cells.get_mut(cell.0 as usize) {
            c.moving_to = None;
        }
    }
}

impl<'a> Plan<'a> {
    fn new(pool: &'a Pool, now_ms: u64, demand: &[CellDemand]) -> Plan<'a> {
        let plan: Vec<f64> = demand.iter().map(|d| d.plan()).collect();
        let load = pool.server_loads(|i| plan[i]);
        let power = pool
            .servers
            .iter()
            .map(|s| match s.power {
                Power::Booting { ready_at_ms } if ready_at_ms <= now_ms => Power::On,
                p => p,
            })
            .collect();
        let mut cells_on = vec![Vec::new(); pool.servers.len()];
        let mut incoming = vec![false; pool.servers.len()];
        for (i, c) in pool.cells.iter().enumerate() {
            cells_on[c.host.0 as usize].push(CellId(i as u32));
            if let Some(to) = c.moving_to {
                incoming[to.0 as usize] = true;
            }
        }
        Plan {
            pool,
            load,
            power,
            host: pool.cells.iter().map(|c| c.host).collect(),
            cells_on,
            incoming,
            moved: vec![false; pool.cells.len()],
            plan,
            decision: Decision::default(),
        }
    }

    fn usable(&self, s: usize) -> f64 {
        self.pool.usable(ServerId(s as u32))
    }

    fn movable(&self, cell: CellId) -> bool {
        self.pool.cells[cell.0 as usize].moving_to.is_none() && !self.moved[cell.0 as usize]
    }

    fn hosts_any(&self, s: usize) -> bool {
        !self.cells_on[s].is_empty() || self.incoming[s]
    }

    fn moves_left(&self) -> bool {
        self.decision.moves.len() < self.pool.config.max_moves_per_decision
    }

    fn push_move(&mut self, cell: CellId, to: usize) {
        let from = self.host[cell.0 as usize].0 as usize;
        let x = self.plan[cell.0 as usize];
        self.load[from] -= x;
        self.load[to] += x;
        self.cells_on[from].retain(|c| *c != cell);
        self.cells_on[to].push(cell);
        self.host[cell.0 as usize] = ServerId(to as u32);
        self.moved[cell.0 as usize] = true;
        self.decision.moves.push(Move {
            cell,
            from: ServerId(from as u32),
            to: ServerId(to as u32),
        });
    }

    fn set_power(&mut self, s: usize, action: PowerAction, power: Power) {
        self.power[s] = power;
        self.decision.power.push(action);
    }

    fn wake(&mut self, s: usize, now_ms: u64) {
        let ready_at_ms = now_ms + self.pool.servers[s].spec.boot_ms;
        self.set_power(
            s,
            PowerAction::Wake {
                server: ServerId(s as u32),
                ready_at_ms,
            },
            Power::Booting { ready_at_ms },
        );
    }

    /// Static: a server hosting a cell must be on.
    fn keep_hosts_powered(&mut self, now_ms: u64) {
        for s in 0..self.power.len() {
            if self.hosts_any(s) && self.power[s] == Power::Off {
                self.wake(s, now_ms);
            }
        }
    }

    fn wake_all(&mut self, now_ms: u64) {
        for s in 0..self.power.len() {
            if self.pool.servers[s].operator_drain {
                continue;
            }
            match self.power[s] {
                Power::Off => self.wake(s, now_ms),
                Power::Draining => self.set_power(
                    s,
                    PowerAction::Undrain {
                        server: ServerId(s as u32),
                    },
                    Power::On,
                ),
                _ => {}
            }
        }
    }

    fn utilisation(&self, s: usize) -> f64 {
        self.load[s] / self.usable(s)
    }

    /// Spread: move cells from the most to the least used warm server while that narrows
    /// the gap beyond the tolerance. Each move lowers the sum of squared utilisations, so it
    /// ends, and a balanced pool under a flat load does not move.
    fn balance(&mut self) {
        let tolerance = self.pool.config.spread_tolerance;
        while self.moves_left() {
            let warm: Vec<usize> = (0..self.power.len())
                .filter(|s| self.power[*s] == Power::On)
                .collect();
            let Some(&hi) = warm
                .iter()
                .max_by(|a, b| self.utilisation(**a).total_cmp(&self.utilisation(**b)))
            else {
                return;
            };
            let Some(&lo) = warm
                .iter()
                .min_by(|a, b| self.utilisation(**a).total_cmp(&self.utilisation(**b)))
            else {
                return;
            };
            if self.utilisation(hi) - self.utilisation(lo) <= tolerance {
                return;
            }
            // The largest cell whose move leaves the destination less used than the source
            // (strict improvement) and within its usable cores.
            let (u_hi, u_lo) = (self.usable(hi), self.usable(lo));
            let best = self.cells_on[hi]
                .iter()
                .copied()
                .filter(|c| self.movable(*c))
                .filter(|c| {
                    let x = self.plan[c.0 as usize];
                    x > 0.0
                        && self.load[lo] + x <= u_lo
                        && (self.load[lo] + x) / u_lo < (self.load[hi] - x) / u_hi
                })
                .max_by(|a, b| self.plan[a.0 as usize].total_cmp(&self.plan[b.0 as usize]));
            match best {
                Some(c) => self.push_move(c, lo),
                None => return,
            }
        }
    }

    /// The warm server, not excluded, on which `x` cores fit under `limit` × usable with
    /// the least room left (best fit).
    fn best_fit(&self, x: f64, limit: f64, exclude: &[bool]) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (s, excluded) in exclude.iter().enumerate() {
            if self.power[s] != Power::On || *excluded {
                continue;
            }
            let room = self.usable(s) * limit - self.load[s] - x;
            if room >= 0.0 && best.is_none_or(|(_, r)| room < r) {
                best = Some((s, room));
            }
        }
        best.map(|(s, _)| s)
    }

    fn cells_by_size_desc(&self, s: usize) -> Vec<CellId> {
        let mut cells: Vec<CellId> = self.cells_on[s]
            .iter()
            .copied()
            .filter(|c| self.movable(*c))
            .collect();
        cells.sort_by(|a, b| self.plan[b.0 as usize].total_cmp(&self.plan[a.0 as usize]));
        cells
    }

    /// Moves the cells of draining servers to warm ones (best fit within the fill limit);
    /// powers off the empty ones.
    fn empty_draining(&mut self) {
        let n = self.power.len();
        let fill = self.pool.config.fill_limit;
        for s in 0..n {
            if self.power[s] != Power::Draining {
                continue;
            }
            let mut exclude = vec![false; n];
            exclude[s] = true;
            for c in self.cells_by_size_desc(s) {
                if !self.moves_left() {
                    break;
                }
                if let Some(to) = self.best_fit(self.plan[c.0 as usize], fill, &exclude) {
                    self.push_move(c, to);
                }
            }
            if !self.hosts_any(s) && self.decision.moves.iter().all(|m| m.from.0 as usize != s) {
                self.set_power(
                    s,
                    PowerAction::PowerOff {
                        server: ServerId(s as u32),
                    },
                    Power::Off,
                );
            }
        }
    }

    fn consolidate(&mut self, now_ms: u64) {
        let n = self.power.len();
        let no_exclusion = vec![false; n];
        let fill = self.pool.config.fill_limit;

        // 1. Relieve servers planned over their usable cores, largest cells first, onto
        //    warm servers that stay within the fill limit.
        let mut still_over = false;
        for s in 0..n {
            if !self.power[s].is_powered() || self.load[s] <= self.usable(s) {
                continue;
            }
            let mut exclude = no_exclusion.clone();
            exclude[s] = true;
            for c in self.cells_by_size_desc(s) {
                if self.load[s] <= self.usable(s) || !self.moves_left() {
                    break;
                }
                if let Some(to) = self.best_fit(self.plan[c.0 as usize], fill, &exclude) {
                    self.push_move(c, to);
                }
            }
            still_over |= self.load[s] > self.usable(s);
        }

        // 3. Capacity ahead of the ramp: wake (or keep) enough servers that the planned load
        //    is at most `wake_above` of the active servers' usable cores; woken servers are
        //    warm after their boot time, which the demand's look-ahead covers.
        let total: f64 = self.plan.iter().sum();
        let active_capacity = |p: &Plan| -> f64 {
            (0..n)
                .filter(|s| matches!(p.power[*s], Power::On | Power::Booting { .. }))
                .map(|s| p.usable(s))
                .sum()
        };
        let target = (self.pool.config.wake_above + self.pool.config.drain_below) / 2.0;
        let mut woke = false;
        let booting = (0..n).any(|s| matches!(self.power[s], Power::Booting { .. }));
        if total > self.pool.config.wake_above * active_capacity(self) || (still_over && !booting) {
            // Warm draining servers first, the fullest first (fewest moves undone).
            let operator = |s: usize| self.pool.servers[s].operator_drain;
            let mut draining: Vec<usize> = (0..n)
                .filter(|s| self.power[*s] == Power::Draining && !operator(*s))
                .collect();
            draining.sort_by(|a, b| self.load[*b].total_cmp(&self.load[*a]));
            let mut off: Vec<usize> = (0..n)
                .filter(|s| self.power[*s] == Power::Off && !operator(*s))
                .collect();
            // Largest first: fewer servers for the same cores.
            off.sort_by_key(|s| std::cmp::Reverse(self.pool.servers[*s].spec.cores));
            let mut need_one = still_over && !booting;
            for s in draining {
                if total <= target * active_capacity(self) && !need_one {
                    break;
                }
                self.set_power(
                    s,
                    PowerAction::Undrain {
                        server: ServerId(s as u32),
                    },
                    Power::On,
                );
                need_one = false;
                woke = true;
            }
            for s in off {
                if total <= target * active_capacity(self) && !need_one {
                    break;
                }
                self.wake(s, now_ms);
                need_one = false;
                woke = true;
            }
        }

        // 4. Drain: while the pool has more warm servers than the load needs, empty the
        //    least used one onto the others (best fit, decreasing sizes) if all its cells fit.
        //    Not while servers boot: they were woken for a ramp.
        let booting = (0..n).any(|s| matches!(self.power[s], Power::Booting { .. }));
        if woke || booting || still_over {
            return;
        }
        let mut candidates: Vec<usize> = (0..n).filter(|s| self.power[*s] == Power::On).collect();
        candidates.sort_by(|a, b| self.utilisation(*a).total_cmp(&self.utilisation(*b)));
        let mut exclude = no_exclusion;
        for s in candidates {
            let remaining_capacity = active_capacity(self) - self.usable(s);
            if remaining_capacity <= 0.0
                || total > self.pool.config.drain_below * remaining_capacity
            {
                continue;
            }
            let cells = self.cells_by_size_desc(s);
            if cells.len() != self.cells_on[s].len() {
                continue; // a cell in a move: try again next time
            }
            if cells.len() > self.pool.config.max_moves_per_decision - self.decision.moves.len() {
                continue;
            }
            exclude[s] = true;
            let mark = self.decision.moves.len();
            let mut all_fit = true;
            for c in cells {
                match self.best_fit(self.plan[c.0 as usize], fill, &exclude) {
                    Some(to) => self.push_move(c, to),
                    None => {
                        all_fit = false;
                        break;
                    }
                }
            }
            if !all_fit {
                self.undo_moves_from(mark);
                exclude[s] = false;
                continue;
            }
            let server = ServerId(s as u32);
            if self.hosts_any(s) || mark != self.decision.moves.len() {
                self.set_power(s, PowerAction::Drain { server }, Power::Draining);
            } else {
                self.set_power(s, PowerAction::PowerOff { server }, Power::Off);
            }
        }
    }

    fn undo_moves_from(&mut self, mark: usize) {
        while self.decision.moves.len() > mark {
            let m = self.decision.moves.pop().expect("len > mark");
            let x = self.plan[m.cell.0 as usize];
            let (from, to) = (m.from.0 as usize, m.to.0 as usize);
            self.load[to] -= x;
            self.load[from] += x;
            self.cells_on[to].retain(|c| *c != m.cell);
            self.cells_on[from].push(m.cell);
            self.host[m.cell.0 as usize] = m.from;
            self.moved[m.cell.0 as usize] = false;
        }
    }
}
