//! `ferry ctl protect --auto`: the re-protection controller's IO shell. It polls the radio's
//! `status` over authenticated link control, feeds the pure
//! [`ferry_migrate::reprotect::Reprotector`], and runs the jobs it asks for — `kill_d2d`
//! on an agent, or the existing protect sequence through a [`Driver`] — one at a time on a
//! worker thread, so the radio is still watched while a protect runs. Exits on SIGINT /
//! SIGTERM ([`crate::interrupt`]): a protect in flight finishes or rolls back first, and
//! the protection in force is left in place. A second thread asks every candidate's agent
//! for its `status` every [`AutoProtect::health_every`]: whether it answers is the core's
//! view of that server's health.

use crate::client::AgentClient;
use crate::driver::{Driver, RadioControl};
use ferry_migrate::reprotect::{Action, Input, Job, RadioView, Reprotected, Reprotector};
use ferry_migrate::{Level, MbbConfig, Peer, Request};
use ferry_radio::RadioError;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Makes a fresh agent client for a server name (each job gets its own).
pub type AgentFactory = Box<dyn Fn(&str) -> Result<AgentClient, String> + Send + Sync>;
/// Makes a fresh radio link-control handle (the worker's protect sequences need one).
pub type RadioFactory = Box<dyn Fn() -> RadioControl + Send + Sync>;

/// The controller's settings.
pub struct AutoProtect {
    /// The core's settings (radio name, servers, backoff).
    pub core: ferry_migrate::reprotect::ReprotectConfig,
    /// How often the radio's status is polled.
    pub poll: Duration,
    /// Relay task: the protect sequences carry the route list.
    pub relay: bool,
    /// Deadline of a `kill_d2d`.
    pub stop_timeout: Duration,
    /// How often every candidate's agent is asked for its `status` (health probe).
    pub health_every: Duration,
    /// Deadline of a health probe.
    pub health_timeout: Duration,
    /// Agent clients by server name.
    pub agents: std::sync::Arc<AgentFactory>,
    /// Radio link control.
    pub radio: std::sync::Arc<RadioFactory>,
}

/// What the controller did, when it exits.
#[derive(Debug, Clone, Default)]
pub struct AutoProtectSummary {
    /// Every re-protection, in order.
    pub reprotected: Vec<Reprotected>,
    /// The core's counters.
    pub counts: ferry_migrate::reprotect::Counts,
}

fn view_of(now: u64, st: &ferry_fronthaul::control::StatusReport) -> RadioView {
    let a = &st.arbiter;
    RadioView {
        radio: st.info.radio.clone(),
        sample: now,
        rate_hz: u64::from(st.info.sample_rate_hz),
        primary: st.linked.map(|p| p.to_string()),
        epoch: a.epoch,
        standby: a.standby.map(|s| s.to_string()),
        protection_since: a.protection_since,
    }
}

/// One radio `status` as the core's input: no answer and an unreadable answer differ.
fn poll_status(radio: &RadioControl) -> Input {
    match radio.client.status(&radio.radio) {
        Ok((now, st)) => Input::Status(view_of(now, &st)),
        Err(e @ (RadioError::Unexpected(_) | RadioError::Control(_))) => {
            Input::Garbled(e.to_string())
        }
        Err(e) => Input::NoStatus(e.to_string()),
    }
}

/// Runs one job to its end (on the worker thread).
fn run_job(
    job: &Job,
    agents: &AgentFactory,
    radio: &RadioFactory,
    relay: bool,
    stop_timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<(), String> {
    match job {
        Job::StopModem { server } => {
            let mut c = agents(server)?.with_retries(0);
            let mut r = c
                .call_body(&Request::KillD2d.encode(), stop_timeout)
                .map_err(|e| e.to_string())?;
            // A rebooted agent refuses a request ZeroMQ queued while it was starting (signed
            // before it started: replay protection). Signed anew, once, it is taken.
            if !r.ok
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("before this receiver started"))
            {
                r = c
                    .call_body(&Request::KillD2d.encode(), stop_timeout)
                    .map_err(|e| e.to_string())?;
            }
            if r.ok {
                Ok(())
            } else {
                Err(r.error.unwrap_or_else(|| "kill_d2d refused".into()))
            }
        }
        Job::Protect {
            serving,
            standby,
            standby_endpoint,
        } => {
            let source = agents(serving)?;
            let dest = agents(standby)?;
            // Nothing is forwarded when protecting: the address is never used.
            let unused = SocketAddr::from(([0, 0, 0, 0], 0));
            let mut cfg =
                MbbConfig::new(Peer::Local, Peer::Remote, standby_endpoint.clone(), unused);
            cfg.relay = relay;
            let mut driver = Driver::new(None, Some(source), Some(dest), Some(radio()));
            let seq = ferry_migrate::protect::protect(cfg, driver.now());
            let outcome = driver.run(seq, &mut |r| say(format!("  protect: {}", r.text)));
            if outcome.ok {
                Ok(())
            } else {
                Err(outcome.summary)
            }
        }
    }
}

/// Runs the controller until SIGINT/SIGTERM; `say` gets every log line.
pub fn run(opts: AutoProtect, say: &(dyn Fn(String) + Sync)) -> AutoProtectSummary {
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut core = Reprotector::new(opts.core.clone());
    let mut summary = AutoProtectSummary::default();
    let status_radio = (opts.radio)();
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    let mut worker: Option<std::thread::JoinHandle<()>> = None;
    let mut last_no_status: Option<Instant> = None;
    say(format!(
        "watching radio {} every {} ms; candidates {}",
        opts.core.radio,
        opts.poll.as_millis(),
        opts.core
            .servers
            .iter()
            .map(|s| format!("{} ({})", s.name, s.endpoint))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (say_tx, say_rx) = mpsc::channel::<String>();
    let (health_tx, health_rx) = mpsc::channel::<(String, bool)>();
    let stop_health = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let health = {
        let names: Vec<String> = opts.core.servers.iter().map(|s| s.name.clone()).collect();
        let agents = opts.agents.clone();
        let stop = stop_health.clone();
        let (every, timeout) = (opts.health_every, opts.health_timeout);
        std::thread::spawn(move || probe_health(&names, &agents, every, timeout, &stop, &health_tx))
    };
    loop {
        let stopping = crate::interrupt::requested();
        let input = poll_status(&status_radio);
        if let Input::NoStatus(why) = &input {
            // One line per second at most while the radio does not answer.
            if last_no_status.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                say(format!("radio status: {why}"));
                last_no_status = Some(Instant::now());
            }
        }
        core.handle(now(), input);
        while let Ok(r) = done_rx.try_recv() {
            if let Some(w) = worker.take() {
                let _ = w.join();
            }
            core.handle(now(), Input::JobDone(r));
        }
        // A worker that ended without a result (it panicked) must not leave the core
        // waiting for a job forever.
        if worker.as_ref().is_some_and(|w| w.is_finished()) {
            if let Ok(r) = done_rx.try_recv() {
                core.handle(now(), Input::JobDone(r));
            } else {
                core.handle(
                    now(),
                    Input::JobDone(Err("the job's thread ended without a result".into())),
                );
            }
            if let Some(w) = worker.take() {
                let _ = w.join();
            }
        }
        while let Ok((server, reachable)) = health_rx.try_recv() {
            core.handle(now(), Input::Agent { server, reachable });
        }
        while let Ok(line) = say_rx.try_recv() {
            say(line);
        }
        while let Some(a) = core.poll_action() {
            match a {
                Action::Log(level, text) => {
                    let tag = match level {
                        Level::Info => "",
                        Level::Warn => "warning: ",
                        Level::Error => "error: ",
                    };
                    say(format!("{tag}{text}"));
                }
                Action::Reprotected(r) => summary.reprotected.push(r),
                Action::Start(job) if stopping => say(format!("stopping: not starting {job:?}")),
                Action::Start(job) => {
                    let agents = opts.agents.clone();
                    let radio = opts.radio.clone();
                    let tx = done_tx.clone();
                    let lines = say_tx.clone();
                    let (relay, stop_timeout) = (opts.relay, opts.stop_timeout);
                    worker = Some(std::thread::spawn(move || {
                        let say = move |l: String| {
                            let _ = lines.send(l);
                        };
                        let r = run_job(&job, &agents, &radio, relay, stop_timeout, &say);
                        let _ = tx.send(r);
                    }));
                }
            }
        }
        if stopping && worker.is_none() {
            break;
        }
        std::thread::sleep(opts.poll);
    }
    stop_health.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = health.join();
    summary.counts = core.counts();
    summary
}

/// The health thread: every `every`, each agent's `status`; any reply means it answers.
fn probe_health(
    names: &[String],
    agents: &AgentFactory,
    every: Duration,
    timeout: Duration,
    stop: &std::sync::atomic::AtomicBool,
    out: &mpsc::Sender<(String, bool)>,
) {
    let mut clients: Vec<Option<AgentClient>> = names
        .iter()
        .map(|n| agents(n).ok().map(|c| c.with_retries(0)))
        .collect();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for (name, client) in names.iter().zip(clients.iter_mut()) {
            let Some(c) = client.as_mut() else {
                continue;
            };
            let answered = c.call_body(&Request::Status.encode(), timeout).is_ok();
            if out.send((name.clone(), answered)).is_err() {
                return;
            }
        }
        std::thread::sleep(every);
    }
}
