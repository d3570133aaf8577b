//! What the page shows, as one serialisable [`View`], and the pure rules that fold what was
//! observed into it: a demo's live events ([`LiveEvent`]), link control's `status` of the
//! radios and the agents' `status` / `get_control`. No IO here; every list is bounded.

use ferry_fronthaul::control::StatusReport;
use ferry_testbed::live::{LiveEvent, Second};
use ferry_testbed::report::PhaseReport;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Seconds of ping kept for the scrolling chart.
pub const HISTORY_SECONDS: usize = 300;
/// Migrations kept as marks on the chart.
pub const MAX_MARKS: usize = 64;
/// Poll errors kept.
pub const MAX_ERRORS: usize = 8;

/// Everything the page shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct View {
    /// Where the data comes from (one line per source).
    pub sources: Vec<String>,
    /// Experiment of the demo feeding the view, if any.
    pub experiment: Option<String>,
    /// Method of the demo's current session.
    pub method: Option<String>,
    /// The run is over.
    pub finished: bool,
    /// Servers of the testbed (pool servers first).
    pub servers: Vec<ServerView>,
    /// Radios as link control reports them.
    pub radios: Vec<RadioView>,
    /// The cells (tasks) and their state.
    pub cells: Vec<CellView>,
    /// The last finished second of ping.
    pub last_second: Option<Second>,
    /// Recent seconds, oldest first.
    pub history: VecDeque<Second>,
    /// Migrations, oldest first (running ones have no end).
    pub migrations: VecDeque<MigrationView>,
    /// The last finished migration, with its phases.
    pub last_migration: Option<MigrationView>,
    /// The pool's figures, when a pool feeds the view.
    pub pool: Option<PoolView>,
    /// Latest poll errors.
    pub errors: VecDeque<String>,
}

/// One server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerView {
    /// `server1`…
    pub name: String,
    /// What it is in the testbed.
    pub role: String,
    /// `on` (its agent answers), `silent` (its agent does not), `draining` (source of a
    /// running migration), `off` (switched off by the pool) or `unknown` (not polled).
    pub power: String,
    /// Serves the task (primary).
    pub serving: bool,
    /// Its agent's last `status`, when polled.
    pub agent: Option<AgentView>,
}

/// An agent's `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    /// A modem (D2D program) runs.
    pub d2d: bool,
    /// Modem cutover state (`active`, `shadow`, …).
    pub modem_mode: Option<String>,
    /// Modem locked to the cell.
    pub synced: Option<bool>,
    /// TUN address.
    pub tun_ip: Option<String>,
    /// eth3 (fronthaul) address.
    pub eth3: Option<String>,
}

/// One radio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RadioView {
    /// Radio name.
    pub name: String,
    /// Powered and initialised.
    pub ready: bool,
    /// Server it streams to (primary), by name when known, else the address.
    pub primary: Option<String>,
    /// Server receiving a copy of RX (shadow).
    pub shadow: Option<String>,
    /// A scheduled switch: `server2 at 123456`.
    pub pending_switch: Option<String>,
    /// Link-control epoch, when link control reports one.
    pub epoch: Option<u64>,
    /// Late and underflow counters.
    pub late_packets: u64,
    /// Underflow events.
    pub underflows: u64,
}

/// One cell (task).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellView {
    /// `pool` (the task's radio).
    pub name: String,
    /// `serving on server1`, `migrating server1 → server2`, `down`.
    pub state: String,
    /// Control summary (`workmode 0, BW 3 MHz, cell 0, FDD`), when read.
    pub control: Option<String>,
}

/// One migration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationView {
    /// Label (`M`, `MB`, `mbb out`).
    pub label: String,
    /// `legacy` or `mbb`.
    pub method: String,
    /// `server1 → server2`.
    pub route: String,
    /// Start, ms since the run's origin.
    pub start_ms: f64,
    /// End, when finished.
    pub end_ms: Option<f64>,
    /// Every phase succeeded (when finished).
    pub ok: Option<bool>,
    /// Phases (when finished).
    pub phases: Vec<PhaseReport>,
}

/// The pool's figures (fed by `ferry demo pool --web`; see docs/WEB.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolView {
    /// Servers switched on now.
    pub servers_on: u32,
    /// Servers in the pool.
    pub servers_total: u32,
    /// Load, 0..1 of the pool's capacity.
    pub load: f64,
    /// Task moves so far.
    pub moves: u64,
    /// Server-hours saved so far against all servers on.
    pub saved_server_hours: f64,
    /// Servers on along the day: (hour of day, servers on), oldest first.
    pub on_along_day: Vec<(f64, u32)>,
    /// Hour of the (simulated) day now.
    pub hour: f64,
    /// The policy deciding.
    pub policy: String,
    /// Every pool server: power, load, the cells it serves.
    pub servers: Vec<PoolServerView>,
}

/// One pool server as etcd holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolServerView {
    /// `server1`…
    pub name: String,
    /// `on`, `off`, `booting` or `draining` (the controller's decision).
    pub power: String,
    /// Measured load of the cells it serves, cores.
    pub load_cores: f64,
    /// Cells it serves (etcd's actual placement).
    pub cells: Vec<String>,
}

/// A server name for a fronthaul address of the thesis testbed (pool servers' permanent
/// and parked addresses, the legacy host address resolved by who holds it).
pub fn server_of(addr: &SocketAddr, servers: &[ServerView]) -> String {
    let ip = addr.ip().to_string();
    let by_fixed = match ip.as_str() {
        "192.168.10.11" | "192.168.20.1" => Some("server1"),
        "192.168.10.12" | "192.168.20.2" => Some("server2"),
        "192.168.13.1" => Some("server3"),
        "192.168.14.1" => Some("server4"),
        _ => None,
    };
    if let Some(n) = by_fixed {
        return n.to_string();
    }
    // The legacy .10.1 moves with DS/M: whoever's eth3 holds it.
    servers
        .iter()
        .find(|s| s.agent.as_ref().and_then(|a| a.eth3.as_deref()) == Some(ip.as_str()))
        .map_or(addr.to_string(), |s| s.name.clone())
}

impl View {
    /// The thesis testbed's servers, nothing observed yet.
    pub fn thesis() -> View {
        let server = |name: &str, role: &str| ServerView {
            name: name.into(),
            role: role.into(),
            power: "unknown".into(),
            serving: false,
            agent: None,
        };
        View {
            servers: vec![
                server("server1", "pool server"),
                server("server2", "pool server"),
                server("server3", "far end (ping, probe)"),
                server("server4", "relay receiver"),
            ],
            ..View::default()
        }
    }

    fn server_mut(&mut self, name: &str) -> Option<&mut ServerView> {
        self.servers.iter_mut().find(|s| s.name == name)
    }

    fn push_error(&mut self, e: String) {
        if self.errors.back() != Some(&e) {
            self.errors.push_back(e);
        }
        while self.errors.len() > MAX_ERRORS {
            self.errors.pop_front();
        }
    }

    /// Folds one of a demo's live events in.
    pub fn apply_event(&mut self, event: &LiveEvent) {
        match event {
            LiveEvent::Testbed {
                experiment,
                radio_control,
                agents,
                ..
            } => {
                self.experiment = Some(experiment.clone());
                self.finished = false;
                self.sources = vec![
                    format!("live events of ferry demo ({experiment})"),
                    format!("link control status at {radio_control}"),
                    format!(
                        "agents' status at {}",
                        agents
                            .iter()
                            .map(|(n, e)| format!("{n}={e}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ];
            }
            LiveEvent::Method { method } => {
                self.method = Some(method.clone());
            }
            LiveEvent::Serving { server } => {
                for s in &mut self.servers {
                    s.serving = &s.name == server;
                    if s.power == "draining" {
                        s.power = "on".into();
                    }
                }
                self.set_cell_state(format!("serving on {server}"));
            }
            LiveEvent::Second(s) => {
                self.last_second = Some(*s);
                self.history.push_back(*s);
                while self.history.len() > HISTORY_SECONDS {
                    self.history.pop_front();
                }
            }
            LiveEvent::MigrationStarted {
                label,
                method,
                from,
                to,
                t_ms,
            } => {
                if let Some(s) = self.server_mut(from) {
                    s.power = "draining".into();
                }
                let route = format!("{from} → {to}");
                self.set_cell_state(format!("migrating {route} ({method})"));
                self.migrations.push_back(MigrationView {
                    label: label.clone(),
                    method: method.clone(),
                    route,
                    start_ms: *t_ms,
                    end_ms: None,
                    ok: None,
                    phases: Vec::new(),
                });
                while self.migrations.len() > MAX_MARKS {
                    self.migrations.pop_front();
                }
            }
            LiveEvent::MigrationEnded {
                label,
                method,
                route,
                t_ms,
                total_ms,
                ok,
                phases,
            } => {
                let done = MigrationView {
                    label: label.clone(),
                    method: method.clone(),
                    route: route.clone(),
                    start_ms: *t_ms,
                    end_ms: Some(t_ms + total_ms),
                    ok: Some(*ok),
                    phases: phases.clone(),
                };
                // The open migration is this one (one runs at a time).
                match self.migrations.back_mut() {
                    Some(m) if m.end_ms.is_none() => *m = done.clone(),
                    _ => self.migrations.push_back(done.clone()),
                }
                while self.migrations.len() > MAX_MARKS {
                    self.migrations.pop_front();
                }
                self.last_migration = Some(done);
            }
            LiveEvent::Finished => {
                self.finished = true;
                // The radio room goes down with the testbed: what it said last is stale.
                self.radios.clear();
                self.set_cell_state("down (run finished)".into());
                for s in &mut self.servers {
                    s.serving = false;
                }
            }
        }
    }

    fn set_cell_state(&mut self, state: String) {
        match self.cells.iter_mut().find(|c| c.name == "pool") {
            Some(c) => c.state = state,
            None => self.cells.push(CellView {
                name: "pool".into(),
                state,
                control: None,
            }),
        }
    }

    /// Folds in link control's `status` of every radio (or the error of the poll).
    pub fn apply_radio_status(&mut self, status: Result<Vec<StatusReport>, String>) {
        let reports = match status {
            Ok(r) => r,
            Err(e) => {
                self.push_error(format!("link control: {e}"));
                return;
            }
        };
        let servers = self.servers.clone();
        self.radios = reports
            .iter()
            .map(|r| RadioView {
                name: r.info.radio.clone(),
                ready: r.ready,
                primary: r.linked.map(|a| server_of(&a, &servers)),
                shadow: r.shadow.map(|a| server_of(&a, &servers)),
                pending_switch: r
                    .pending_switch
                    .map(|(t, a)| format!("{} at sample {t}", server_of(&a, &servers))),
                epoch: Some(r.arbiter.epoch),
                late_packets: r.counters.late_packets,
                underflows: r.counters.underflow_events,
            })
            .collect();
    }

    /// Folds in one agent's `status` result (or why it did not answer).
    pub fn apply_agent_status(&mut self, server: &str, status: Result<serde_json::Value, String>) {
        let draining = self
            .server_mut(server)
            .is_some_and(|s| s.power == "draining");
        let error = status.as_ref().err().cloned();
        if let Some(s) = self.server_mut(server) {
            match status {
                Ok(v) => {
                    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                    s.power = if draining { "draining" } else { "on" }.into();
                    s.agent = Some(AgentView {
                        d2d: v.get("d2d").and_then(serde_json::Value::as_bool) == Some(true),
                        modem_mode: v
                            .pointer("/modem/mode")
                            .and_then(|x| x.as_str())
                            .map(str::to_string),
                        synced: v.pointer("/modem/synced").and_then(|x| x.as_bool()),
                        tun_ip: text("tun_ip"),
                        eth3: text("eth3"),
                    });
                }
                // No answer says nothing about power: the agent may just not run (the legacy
                // method's console runs without one on server1). Only the pool says "off".
                Err(_) => {
                    s.power = if draining { "draining" } else { "silent" }.into();
                    s.agent = None;
                }
            }
        }
        if let Some(e) = error {
            self.push_error(format!("agent {server}: {e}"));
        }
    }

    /// Folds in the serving server's `get_control` result.
    pub fn apply_control(&mut self, control: &serde_json::Value) {
        let summary = control_summary(control);
        match self.cells.iter_mut().find(|c| c.name == "pool") {
            Some(c) => c.control = Some(summary),
            None => self.cells.push(CellView {
                name: "pool".into(),
                state: "up".into(),
                control: Some(summary),
            }),
        }
    }

    /// The serving server, if known.
    pub fn serving(&self) -> Option<&str> {
        self.servers
            .iter()
            .find(|s| s.serving)
            .map(|s| s.name.as_str())
    }
}

/// A one-line summary of a thesis-format Control (keys as the thesis' JSON).
pub fn control_summary(c: &serde_json::Value) -> String {
    let num = |k: &str| c.get(k).and_then(serde_json::Value::as_i64);
    let mut parts = Vec::new();
    if let Some(w) = num("workmode") {
        parts.push(format!(
            "workmode {w} ({})",
            match w {
                0 => "D2D master",
                1 => "D2D slave",
                2 => "base-station mode",
                _ => "other",
            }
        ));
    }
    if let Some(b) = num("BW") {
        parts.push(format!("BW index {b}"));
    }
    if let Some(rb) = num("RBIdx") {
        parts.push(format!("{rb} RB"));
    }
    if let Some(p) = num("phy_cell_ID") {
        parts.push(format!("cell {p}"));
    }
    if let Some(d) = num("duplexMode") {
        parts.push(if d == 1 { "FDD" } else { "TDD" }.into());
    }
    if parts.is_empty() {
        "Control read (no known keys)".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_testbed::live::Source;

    fn second(t: f64, lost: u64) -> LiveEvent {
        LiveEvent::Second(Second {
            source: Source::Probe,
            t_ms: t,
            sent: 10,
            lost,
            rtt_avg_ms: Some(3.0),
            rtt_max_ms: Some(4.0),
            longest_gap_ms: Some(1.0),
        })
    }

    #[test]
    fn a_migration_drains_its_source_and_moves_the_primary() {
        let mut v = View::thesis();
        v.apply_event(&LiveEvent::Serving {
            server: "server1".into(),
        });
        assert_eq!(v.serving(), Some("server1"));
        v.apply_event(&LiveEvent::MigrationStarted {
            label: "M".into(),
            method: "legacy".into(),
            from: "server1".into(),
            to: "server2".into(),
            t_ms: 5000.0,
        });
        assert_eq!(v.servers[0].power, "draining");
        assert_eq!(v.cells[0].state, "migrating server1 → server2 (legacy)");
        assert_eq!(v.migrations.len(), 1);
        assert_eq!(v.migrations[0].end_ms, None);
        v.apply_event(&LiveEvent::MigrationEnded {
            label: "M".into(),
            method: "legacy".into(),
            route: "server1 → server2".into(),
            t_ms: 5000.0,
            total_ms: 1969.0,
            ok: true,
            phases: vec![],
        });
        v.apply_event(&LiveEvent::Serving {
            server: "server2".into(),
        });
        assert_eq!(
            v.migrations.len(),
            1,
            "the open migration is closed, not added"
        );
        assert_eq!(v.migrations[0].end_ms, Some(6969.0));
        assert_eq!(v.serving(), Some("server2"));
        assert_eq!(v.servers[0].power, "on");
        assert_eq!(
            v.last_migration.as_ref().map(|m| m.label.as_str()),
            Some("M")
        );
    }

    #[test]
    fn history_and_errors_are_bounded() {
        let mut v = View::thesis();
        for i in 0..(HISTORY_SECONDS + 50) {
            v.apply_event(&second(i as f64 * 1000.0, 0));
        }
        assert_eq!(v.history.len(), HISTORY_SECONDS);
        assert_eq!(v.history.front().map(|s| s.t_ms), Some(50_000.0));
        for i in 0..20 {
            v.apply_agent_status("server1", Err(format!("timeout {i}")));
        }
        assert_eq!(v.errors.len(), MAX_ERRORS);
        assert_eq!(v.servers[0].power, "silent");
    }

    #[test]
    fn radios_name_their_hosts_by_fronthaul_address() {
        let mut v = View::thesis();
        v.apply_agent_status(
            "server2",
            Ok(serde_json::json!({"d2d": true, "eth3": "192.168.10.1",
                "modem": {"mode": "active", "synced": true}})),
        );
        let a: SocketAddr = "192.168.10.1:49200".parse().expect("addr");
        let b: SocketAddr = "192.168.10.11:40000".parse().expect("addr");
        let c: SocketAddr = "10.0.0.9:1".parse().expect("addr");
        assert_eq!(server_of(&a, &v.servers), "server2");
        assert_eq!(server_of(&b, &v.servers), "server1");
        assert_eq!(server_of(&c, &v.servers), "10.0.0.9:1");
        let agent = v.servers[1].agent.as_ref().expect("agent");
        assert_eq!(agent.modem_mode.as_deref(), Some("active"));
        assert_eq!(v.servers[1].power, "on");
    }

    #[test]
    fn control_summary_reads_thesis_keys() {
        let c = serde_json::json!({"workmode": 0, "BW": 1, "RBIdx": 15, "phy_cell_ID": 7,
            "duplexMode": 1});
        assert_eq!(
            control_summary(&c),
            "workmode 0 (D2D master), BW index 1, 15 RB, cell 7, FDD"
        );
        assert_eq!(
            control_summary(&serde_json::json!({})),
            "Control read (no known keys)"
        );
    }
}
