//! Re-protection (issue #12, item 5), sans-IO: after a failover the task is unprotected
//! until a new hot standby is warm. [`Reprotector`] watches the radio's arbiter (who serves,
//! its epoch, the standby, since when it is (un)protected) and the results of the jobs it
//! asked for, and decides what `ferry ctl protect --auto` does next:
//!
//! - once the task has been unprotected for [`ReprotectConfig::settle_ms`] (a flapping
//!   status does not start anything), a clean candidate is chosen and protected
//!   ([`Job::Protect`], the existing protect sequence) — never the serving server;
//! - a server whose modem may be stale (it served and was deposed, or a protect with it
//!   failed half-way) gets its modem stopped on its agent ([`Job::StopModem`]) as soon as
//!   the agent answers and no clean candidate is waiting to protect — never the serving
//!   server's, never the radio's standby's; once stopped it is a candidate again;
//! - a server whose agent does not answer the shell's health probes ([`Input::Agent`]) is
//!   not tried until it does, and is tried at once when it does; one that answered is
//!   preferred over one not probed yet; no protect starts while the serving server's own
//!   agent does not answer (the sequence reads the task from it);
//! - a failed job is retried with exponential backoff; after
//!   [`ReprotectConfig::give_up_after`] failures in a row a server is set aside for
//!   [`ReprotectConfig::set_aside_ms`] and the others are preferred;
//! - one job at a time: never two protect sequences at once;
//! - whether the task is protected is always the radio's word, never a job's: a protect
//!   that reported success but does not show in the radio's status within
//!   [`ReprotectConfig::verify_ms`] counts as failed;
//! - another radio's status, a garbled one, or one older than the last, is ignored and
//!   counted.
//!
//! How long the task was unprotected is measured on the radio's own clock: from the
//! `protection_since` of the first unprotected view (the failover instant) to the
//! `protection_since` of the first protected one (the instant the radio took the standby).

use crate::machine::{Level, Millis};
use std::collections::VecDeque;

/// A server that may serve the task or stand by for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its agent's name (a `--peer` name of `ferry ctl`).
    pub name: String,
    /// Its modem's radio endpoint (`ip:port`), as the radio names primaries and standbys.
    pub endpoint: String,
}

/// Settings of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReprotectConfig {
    /// The radio whose status counts; any other radio's is a stranger's.
    pub radio: String,
    /// Every server that may serve or protect the task, in order of preference.
    pub servers: Vec<Server>,
    /// The task must be seen unprotected this long before a protect starts.
    pub settle_ms: Millis,
    /// First retry delay after a failed job (doubled per failure in a row).
    pub retry_base_ms: Millis,
    /// Longest retry delay.
    pub retry_max_ms: Millis,
    /// Failures in a row after which a server is set aside.
    pub give_up_after: u32,
    /// How long a server that was given up on is passed over.
    pub set_aside_ms: Millis,
    /// A protect that succeeded must show in the radio's status this soon.
    pub verify_ms: Millis,
    /// A radio status older than this is not acted on (the radio may be unreachable).
    pub stale_status_ms: Millis,
}

impl ReprotectConfig {
    /// Defaults for `servers` behind radio `radio`.
    pub fn new(radio: impl Into<String>, servers: Vec<Server>) -> ReprotectConfig {
        ReprotectConfig {
            radio: radio.into(),
            servers,
            settle_ms: 40,
            retry_base_ms: 200,
            retry_max_ms: 3_000,
            give_up_after: 5,
            set_aside_ms: 30_000,
            verify_ms: 2_000,
            stale_status_ms: 1_000,
        }
    }
}

/// The radio's arbiter as the controller needs it (from link control `status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RadioView {
    /// The radio's name.
    pub radio: String,
    /// The radio's sample time of the reply.
    pub sample: u64,
    /// Its sample rate, Hz.
    pub rate_hz: u64,
    /// The serving endpoint.
    pub primary: Option<String>,
    /// Epoch of the current assignment.
    pub epoch: u64,
    /// The protecting standby's endpoint.
    pub standby: Option<String>,
    /// Since when (sample) the primary is protected by `standby`, or unprotected.
    pub protection_since: u64,
}

/// What the controller learns.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A radio status.
    Status(RadioView),
    /// A reply that was not a readable status (bad signature, bad JSON, wrong kind).
    Garbled(String),
    /// No reply from the radio.
    NoStatus(String),
    /// The running job ended.
    JobDone(Result<(), String>),
    /// A health probe of `server`'s agent: it answered (`true`) or not.
    Agent {
        /// Server name.
        server: String,
        /// Whether its agent answered.
        reachable: bool,
    },
    /// Time passed.
    Tick,
}

/// Work for the IO shell; at most one runs at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// `kill_d2d` on `server`'s agent (it answers even when there is no modem).
    StopModem {
        /// Server name.
        server: String,
    },
    /// The protect sequence: `serving` keeps serving, `standby` starts a hot standby at
    /// `standby_endpoint` and the radio takes it.
    Protect {
        /// The serving server (the sequence's source).
        serving: String,
        /// The server that becomes the standby.
        standby: String,
        /// The standby modem's radio endpoint.
        standby_endpoint: String,
    },
}

/// A failover and how long it left the task unprotected.
#[derive(Debug, Clone, PartialEq)]
pub struct Reprotected {
    /// Serving server (or endpoint, if it is not a known server).
    pub serving: String,
    /// The new standby.
    pub standby: String,
    /// The radio's epoch.
    pub epoch: u64,
    /// Unprotected for this long, on the radio's clock, ms.
    pub unprotected_ms: f64,
}

/// What the controller asks of its shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start this job and report [`Input::JobDone`] when it ends.
    Start(Job),
    /// Log this.
    Log(Level, String),
    /// The task is protected again.
    Reprotected(Reprotected),
}

/// Counters of what was seen and done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Statuses of another radio (ignored).
    pub strangers: u64,
    /// Unreadable replies (ignored).
    pub garbled: u64,
    /// Statuses older than the last one (ignored).
    pub stale: u64,
    /// Polls the radio did not answer.
    pub no_status: u64,
    /// Changes of primary seen.
    pub primary_changes: u64,
    /// Protect jobs started.
    pub protects: u64,
    /// Protect jobs that failed (or did not show in the radio's status).
    pub protects_failed: u64,
    /// Stop jobs started.
    pub stops: u64,
    /// Stop jobs that failed.
    pub stops_failed: u64,
    /// Times the task became protected again.
    pub reprotections: u64,
}

#[derive(Debug, Clone)]
struct ServerState {
    server: Server,
    /// May run a stale modem: stop it before it stands by.
    dirty: bool,
    /// Failed jobs in a row.
    failures: u32,
    /// No job with it before this.
    next_try: Millis,
    /// Passed over until then.
    set_aside_until: Option<Millis>,
    /// Whether its agent answered the last health probe (`None`: not probed yet).
    reachable: Option<bool>,
}

/// The re-protection controller's core. Feed [`Input`]s with the time, take [`Action`]s.
#[derive(Debug)]
pub struct Reprotector {
    cfg: ReprotectConfig,
    servers: Vec<ServerState>,
    view: Option<(Millis, RadioView)>,
    /// The current (primary, epoch) has been unprotected since this local time.
    unprotected_seen_at: Option<Millis>,
    /// Radio sample since which the task is unprotected (for the measure).
    unprotected_since_sample: Option<u64>,
    /// The job in flight and the server it is about.
    job: Option<Job>,
    /// A protect that succeeded, waiting to show in the radio's status.
    expect: Option<(String, Millis)>,
    actions: VecDeque<Action>,
    counts: Counts,
    /// The unknown primary last logged (to log it once).
    unknown_logged: Option<String>,
}

impl Reprotector {
    /// A controller for `cfg.servers`; nothing happens before the first status.
    pub fn new(cfg: ReprotectConfig) -> Reprotector {
        let servers = cfg
            .servers
            .iter()
            .map(|s| ServerState {
                server: s.clone(),
                dirty: false,
                failures: 0,
                next_try: 0,
                set_aside_until: None,
                reachable: None,
            })
            .collect();
        Reprotector {
            cfg,
            servers,
            view: None,
            unprotected_seen_at: None,
            unprotected_since_sample: None,
            job: None,
            expect: None,
            actions: VecDeque::new(),
            counts: Counts::default(),
            unknown_logged: None,
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The job in flight.
    pub fn job(&self) -> Option<&Job> {
        self.job.as_ref()
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the controller wants a [`Input::Tick`] at the latest (a settle, a backoff or a
    /// verification ends).
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t: Vec<Millis> = Vec::new();
        if let Some(at) = self.unprotected_seen_at {
            t.push(at + self.cfg.settle_ms);
        }
        if let Some((_, d)) = &self.expect {
            t.push(*d);
        }
        for s in &self.servers {
            t.push(s.next_try);
            t.extend(s.set_aside_until);
        }
        t.into_iter().filter(|&x| x > 0).min()
    }

    fn log(&mut self, level: Level, text: String) {
        self.actions.push_back(Action::Log(level, text));
    }

    fn index_of(&self, endpoint: &str) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.server.endpoint == endpoint)
    }

    fn name_of(&self, endpoint: &str) -> String {
        self.index_of(endpoint).map_or_else(
            || endpoint.to_string(),
            |i| self.servers[i].server.name.clone(),
        )
    }

    /// Feed one input at local time `now` (ms, monotonic).
    pub fn handle(&mut self, now: Millis, input: Input) {
        match input {
            Input::Status(v) => self.on_status(now, v),
            Input::Garbled(why) => {
                self.counts.garbled += 1;
                self.log(
                    Level::Warn,
                    format!("ignored an unreadable radio reply: {why}"),
                );
            }
            // Counted, not logged per poll: the shell logs its own errors at a bounded rate.
            Input::NoStatus(_) => self.counts.no_status += 1,
            Input::JobDone(r) => self.on_job_done(now, r),
            Input::Agent { server, reachable } => self.on_health(now, &server, reachable),
            Input::Tick => {}
        }
        self.check_expect(now);
        self.decide(now);
    }

    fn on_status(&mut self, now: Millis, v: RadioView) {
        if v.radio != self.cfg.radio {
            self.counts.strangers += 1;
            self.log(
                Level::Warn,
                format!(
                    "ignored a status of radio {:?} (watching {:?})",
                    v.radio, self.cfg.radio
                ),
            );
            return;
        }
        let prev = self.view.as_ref().map(|(_, p)| p.clone());
        if let Some(p) = &prev {
            if v.sample < p.sample {
                self.counts.stale += 1;
                return;
            }
        }
        match &prev {
            None => {
                // First sight: a server that neither serves nor stands by may run a
                // leftover modem; stop it before it stands by.
                for s in &mut self.servers {
                    let e = Some(&s.server.endpoint);
                    s.dirty = v.primary.as_ref() != e && v.standby.as_ref() != e;
                }
                self.log(
                    Level::Info,
                    format!(
                        "radio {}: primary {}, epoch {}, {}",
                        v.radio,
                        v.primary
                            .as_deref()
                            .map_or("nobody".into(), |p| self.name_of(p)),
                        v.epoch,
                        v.standby
                            .as_deref()
                            .map_or("unprotected".into(), |s| format!(
                                "protected by {}",
                                self.name_of(s)
                            ))
                    ),
                );
            }
            Some(p) if p.primary != v.primary => {
                self.counts.primary_changes += 1;
                if let Some(old) = p.primary.as_deref().and_then(|e| self.index_of(e)) {
                    // The deposed primary is fenced (or dead): its modem must go before it
                    // can stand by; a new incident, so its record starts afresh.
                    let s = &mut self.servers[old];
                    s.dirty = true;
                    s.failures = 0;
                    s.next_try = now;
                    s.set_aside_until = None;
                }
                if let Some(new) = v.primary.as_deref().and_then(|e| self.index_of(e)) {
                    self.servers[new].dirty = false;
                }
                self.log(
                    Level::Info,
                    format!(
                        "primary changed: {} → {} (epoch {}), {}",
                        p.primary
                            .as_deref()
                            .map_or("nobody".into(), |e| self.name_of(e)),
                        v.primary
                            .as_deref()
                            .map_or("nobody".into(), |e| self.name_of(e)),
                        v.epoch,
                        if v.standby.is_some() {
                            "still protected"
                        } else {
                            "unprotected"
                        }
                    ),
                );
            }
            Some(_) => {}
        }
        if let Some(p) = v.primary.as_deref() {
            if self.index_of(p).is_none() && self.unknown_logged.as_deref() != Some(p) {
                self.unknown_logged = Some(p.to_string());
                self.log(
                    Level::Warn,
                    format!("the primary {p} is none of the candidates: not acting"),
                );
            }
        }
        let changed = prev
            .as_ref()
            .is_none_or(|p| p.primary != v.primary || p.epoch != v.epoch);
        match &v.standby {
            None => {
                if changed || self.unprotected_seen_at.is_none() {
                    self.unprotected_seen_at = Some(now);
                }
                self.unprotected_since_sample
                    .get_or_insert(v.protection_since);
            }
            Some(s) => {
                self.unprotected_seen_at = None;
                if let Some(i) = self.index_of(s) {
                    self.servers[i].dirty = false;
                }
                if let Some(since) = self.unprotected_since_sample.take() {
                    let rate = v.rate_hz.max(1) as f64;
                    let ms = v.protection_since.saturating_sub(since) as f64 / rate * 1e3;
                    self.counts.reprotections += 1;
                    let r = Reprotected {
                        serving: v
                            .primary
                            .as_deref()
                            .map_or("nobody".into(), |e| self.name_of(e)),
                        standby: self.name_of(s),
                        epoch: v.epoch,
                        unprotected_ms: ms,
                    };
                    // The first protection after start: unprotected since the radio's last
                    // change (a link or a failover before this controller ran).
                    let again = if self.counts.primary_changes > 0 {
                        "protected again"
                    } else {
                        "protected"
                    };
                    self.log(
                        Level::Info,
                        format!(
                            "{again}: {} by {} (epoch {}); unprotected for {ms:.0} ms",
                            r.serving, r.standby, r.epoch
                        ),
                    );
                    self.actions.push_back(Action::Reprotected(r));
                }
                if self.expect.as_ref().is_some_and(|(e, _)| e == s) {
                    self.expect = None;
                }
            }
        }
        self.view = Some((now, v));
    }

    fn on_health(&mut self, now: Millis, server: &str, reachable: bool) {
        let Some(s) = self.servers.iter_mut().find(|s| s.server.name == server) else {
            return;
        };
        let was = s.reachable.replace(reachable);
        if was == Some(reachable) {
            return;
        }
        if reachable && was == Some(false) {
            // New evidence: it is back. Try it now rather than at the end of a backoff
            // earned while it was down.
            s.failures = 0;
            s.next_try = now;
            s.set_aside_until = None;
            self.log(Level::Info, format!("{server}: agent answers again"));
        } else if !reachable {
            self.log(Level::Warn, format!("{server}: agent does not answer"));
        }
    }

    fn on_job_done(&mut self, now: Millis, r: Result<(), String>) {
        let Some(job) = self.job.take() else {
            self.log(Level::Warn, "a job ended that was not running".into());
            return;
        };
        let (name, what) = match &job {
            Job::StopModem { server } => (server.clone(), "stopping its modem"),
            Job::Protect { standby, .. } => (standby.clone(), "protecting with it"),
        };
        let Some(i) = self.servers.iter().position(|s| s.server.name == name) else {
            return;
        };
        match r {
            Ok(()) => {
                let s = &mut self.servers[i];
                s.failures = 0;
                s.next_try = now;
                match &job {
                    Job::StopModem { .. } => {
                        s.dirty = false;
                        self.log(Level::Info, format!("{name}: modem stopped"));
                    }
                    Job::Protect {
                        standby_endpoint, ..
                    } => {
                        // The radio's status decides; until it shows, the standby may be
                        // a modem nobody uses.
                        let shown = self
                            .view
                            .as_ref()
                            .is_some_and(|(_, v)| v.standby.as_ref() == Some(standby_endpoint));
                        s.dirty = !shown;
                        if !shown {
                            self.expect =
                                Some((standby_endpoint.clone(), now + self.cfg.verify_ms));
                        }
                        self.log(Level::Info, format!("{name}: protect sequence done"));
                    }
                }
            }
            Err(e) => {
                match &job {
                    Job::StopModem { .. } => self.counts.stops_failed += 1,
                    Job::Protect { .. } => self.counts.protects_failed += 1,
                }
                self.fail(now, i, &format!("{what} failed: {e}"));
            }
        }
    }

    /// Count a failure of server `i`: backoff, and set aside after too many in a row.
    fn fail(&mut self, now: Millis, i: usize, why: &str) {
        let cfg = &self.cfg;
        let s = &mut self.servers[i];
        s.dirty = true;
        s.failures += 1;
        let shift = s.failures.saturating_sub(1).min(20);
        let delay = cfg
            .retry_base_ms
            .saturating_mul(1 << shift)
            .min(cfg.retry_max_ms);
        s.next_try = now + delay;
        let name = s.server.name.clone();
        if s.failures >= cfg.give_up_after {
            s.set_aside_until = Some(now + cfg.set_aside_ms);
            s.failures = 0;
            let ms = cfg.set_aside_ms;
            self.log(
                Level::Warn,
                format!("{name}: {why}; given up for {ms} ms, other servers first"),
            );
        } else {
            self.log(Level::Warn, format!("{name}: {why}; retry in {delay} ms"));
        }
    }

    fn check_expect(&mut self, now: Millis) {
        let Some((endpoint, deadline)) = self.expect.clone() else {
            return;
        };
        let primary = self.view.as_ref().and_then(|(_, v)| v.primary.clone());
        if primary.as_ref() == Some(&endpoint) {
            // It serves now (the task failed over to it meanwhile): nothing to verify.
            self.expect = None;
        } else if now >= deadline {
            self.expect = None;
            self.counts.protects_failed += 1;
            if let Some(i) = self.index_of(&endpoint) {
                self.fail(
                    now,
                    i,
                    "the protect succeeded but the radio does not name it the standby",
                );
            }
        }
    }

    fn usable(&mut self, now: Millis, i: usize) -> bool {
        let s = &mut self.servers[i];
        if s.reachable == Some(false) {
            return false;
        }
        if let Some(until) = s.set_aside_until {
            if now < until {
                return false;
            }
            s.set_aside_until = None;
        }
        now >= s.next_try
    }

    fn decide(&mut self, now: Millis) {
        if self.job.is_some() || self.expect.is_some() {
            return;
        }
        let Some((at, v)) = self.view.clone() else {
            return;
        };
        if now.saturating_sub(at) > self.cfg.stale_status_ms {
            return;
        }
        let Some(primary) = v.primary.as_deref().and_then(|p| self.index_of(p)) else {
            return;
        };
        let standby = v.standby.as_deref().and_then(|s| self.index_of(s));
        // The protect sequence reads the task from the serving server's agent: not while
        // that agent does not answer (a failure then would be blamed on the standby).
        let source_answers = self.servers[primary].reachable != Some(false);
        if v.standby.is_none() && source_answers {
            // Unprotected: a clean candidate protects first (the stale modems can wait: the
            // radio fences them), even if that means holding off during the settle.
            if let Some(i) = self.best_candidate(now, primary) {
                let settled = self
                    .unprotected_seen_at
                    .is_some_and(|t| now >= t + self.cfg.settle_ms);
                if settled {
                    let s = &self.servers[i].server;
                    self.start(Job::Protect {
                        serving: self.servers[primary].server.name.clone(),
                        standby: s.name.clone(),
                        standby_endpoint: s.endpoint.clone(),
                    });
                }
                return;
            }
        }
        // The stale modems (the deposed primary's above all), when their agents answer;
        // never the serving one or the standby. Cleaning one may make it a candidate.
        for i in 0..self.servers.len() {
            if i != primary && Some(i) != standby && self.servers[i].dirty && self.usable(now, i) {
                return self.start(Job::StopModem {
                    server: self.servers[i].server.name.clone(),
                });
            }
        }
    }

    /// A clean candidate that is not the primary, not set aside and not known unreachable:
    /// one whose agent answered first, then the fewest recent failures, then the given
    /// order.
    fn best_candidate(&mut self, now: Millis, primary: usize) -> Option<usize> {
        let rank = |s: &ServerState| (s.reachable != Some(true), s.failures);
        let mut best: Option<usize> = None;
        for i in 0..self.servers.len() {
            if i == primary || self.servers[i].dirty || !self.usable(now, i) {
                continue;
            }
            if best.is_none_or(|b| rank(&self.servers[i]) < rank(&self.servers[b])) {
                best = Some(i);
            }
        }
        best
    }

    fn start(&mut self, job: Job) {
        match &job {
            Job::StopModem { server } => {
                self.counts.stops += 1;
                self.log(
                    Level::Info,
                    format!("{server}: stopping its modem (kill_d2d)"),
                );
            }
            Job::Protect {
                serving, standby, ..
            } => {
                self.counts.protects += 1;
                self.log(
                    Level::Info,
                    format!("protecting {serving}'s task with a hot standby on {standby}"),
                );
            }
        }
        self.job = Some(job.clone());
        self.actions.push_back(Action::Start(job));
    }
}

#[cfg(test)]
mod tests;
