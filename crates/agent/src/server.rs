//! The agent's service loop: a ZeroMQ REP socket answering authenticated requests one at a
//! time (docs/AGENT-PROTOCOL.md), the pure [`Agent`] deciding, [`HostExec`] doing. A
//! failing or panicking step becomes a `raised` reply; the loop always goes on serving.

use crate::collector::Collected;
use crate::host::{HostConfig, HostExec, StepError};
use ferry_migrate::auth::{self, Admission, AuthKey, ReplayGuard};
use ferry_migrate::lease::{Lease, Verdict};
use ferry_migrate::{Agent, AgentAction, AgentConfig, ErrorKind, Event, Level, Reply, Request};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// ZeroMQ socket setup.
    #[error("zmq {what}: {source}")]
    Zmq {
        /// What was being done.
        what: String,
        /// Cause.
        source: zmq::Error,
    },
}

/// Everything `ferry agent` runs with.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// ZeroMQ endpoint to bind (e.g. `tcp://10.99.0.2:5555`; port 0 picks one).
    pub endpoint: String,
    /// This agent's identity: requests must name it as their recipient (`to`).
    pub name: String,
    /// The shared key.
    pub key: AuthKey,
    /// Replay window.
    pub window_ms: u64,
    /// Lease on what an interrupted migration leaves, ms (0: none; `ferry_migrate::lease`).
    pub lease_ms: u64,
    /// The pure agent's settings (addresses, probe tries, deadlines).
    pub agent: AgentConfig,
    /// The host's settings.
    pub host: HostConfig,
}

/// Counters of one run, returned when the agent exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Requests answered (any reply).
    pub answered: u64,
    /// Requests refused as unauthorized.
    pub unauthorized: u64,
    /// Messages of more than four frames (refused unread past the fourth).
    pub too_many_frames: u64,
    /// Retried requests answered from the reply cache (not run again).
    pub retries: u64,
    /// Handlers that raised.
    pub raised: u64,
}

/// How often the lease looks at the modem while no controller speaks, ms.
const LEASE_POLL_MS: u64 = 1_000;

/// Largest frame the socket takes (ZMQ_MAXMSGSIZE): a body plus headroom.
pub const MAX_FRAME_BYTES: usize = auth::MAX_BODY + 4096;

/// Receive one message frame by frame, keeping at most `max_frames` (the rest are read and
/// dropped at once, so a long multipart message never grows our own buffers). Returns the
/// frames kept and the count received. ZeroMQ itself assembles a whole multipart message
/// before delivering it; ZMQ_MAXMSGSIZE bounds each of its frames (docs/SECURITY.md).
pub fn recv_bounded(
    sock: &zmq::Socket,
    max_frames: usize,
) -> Result<(Vec<Vec<u8>>, usize), zmq::Error> {
    let mut frames = Vec::new();
    let mut count = 0usize;
    loop {
        let m = sock.recv_msg(0)?;
        count += 1;
        if frames.len() < max_frames {
            frames.push(m.to_vec());
        }
        if !m.get_more() {
            return Ok((frames, count));
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A bound agent socket, ready to serve.
pub struct AgentServer {
    /// When the socket was bound (ms since the Unix epoch): requests signed before it are
    /// refused. Taken before the endpoint is known to anyone, so no genuine request can
    /// predate it.
    started_ms: u64,
    ctx: zmq::Context,
    sock: zmq::Socket,
    endpoint: String,
    settings: AgentSettings,
}

impl AgentServer {
    /// Bind the REP socket.
    pub fn bind(settings: AgentSettings) -> Result<AgentServer, AgentError> {
        let started_ms = epoch_ms();
        let ctx = zmq::Context::new();
        let z = |what: &str| {
            let what = what.to_string();
            move |source| AgentError::Zmq { what, source }
        };
        let sock = ctx.socket(zmq::REP).map_err(z("socket"))?;
        sock.set_linger(0).map_err(z("linger"))?;
        // Each frame at most a body plus headroom: larger ones make ZeroMQ drop the peer
        // before buffering them (ZMQ_MAXMSGSIZE limits every frame of a message).
        sock.set_maxmsgsize(MAX_FRAME_BYTES as i64)
            .map_err(z("maxmsgsize"))?;
        sock.bind(&settings.endpoint)
            .map_err(z(&format!("bind {}", settings.endpoint)))?;
        let endpoint = sock
            .get_last_endpoint()
            .map_err(z("last endpoint"))?
            .unwrap_or_else(|_| settings.endpoint.clone());
        Ok(AgentServer {
            started_ms,
            ctx,
            sock,
            endpoint,
            settings,
        })
    }

    /// The endpoint actually bound (with the chosen port).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Serve until `end` is received or `stop` is set. Cleans up what it started.
    pub fn serve(self, stop: &AtomicBool) -> ServeSummary {
        let _keep = &self.ctx;
        let mut exec = HostExec::new(self.settings.host.clone());
        if let Some(what) = exec.adopt_modem() {
            tracing::warn!("{what}");
        }
        let mut agent = Agent::new(self.settings.agent.clone());
        // Nothing from before this start is taken: a restarted agent cannot be replayed into.
        let mut guard = ReplayGuard::new(self.started_ms, self.settings.window_ms, 100_000);
        let key = self.settings.key.clone();
        let start = Instant::now();
        let mono = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut summary = ServeSummary::default();
        let mut lease = Lease::new(self.settings.lease_ms, mono());
        let mut observed_at = 0;
        let poll_ms = (self.settings.lease_ms / 5).clamp(50, LEASE_POLL_MS);
        tracing::info!(endpoint = %self.endpoint, "agent serving");
        while !stop.load(Ordering::Relaxed) {
            if let Some(why) = exec.check_modem() {
                tracing::warn!("{why}");
            }
            // The lease (see ferry_migrate::lease): looked at about once a second while no
            // controller speaks to this agent.
            let now = mono();
            if lease.due(now) && now.saturating_sub(observed_at) >= poll_ms {
                observed_at = now;
                let seen = exec.lease_observation();
                if let Verdict::Stop { unshadow, why, .. } = lease.observe(mono(), seen) {
                    let done = exec.stop_leftover(unshadow);
                    tracing::warn!("lease ended: {why}; {done}");
                }
            }
            for c in exec.poll_collected() {
                match c {
                    Collected::Control(c) => agent.collected_control(c),
                    Collected::Routes(r) => agent.collected_routes(r),
                    Collected::Failed(e) => tracing::warn!("collector: {e}"),
                }
            }
            match self.sock.poll(zmq::POLLIN, 100) {
                Ok(n) if n > 0 => {}
                _ => continue,
            }
            let (mut frames, count) = match recv_bounded(&self.sock, auth::FRAMES) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("recv: {e}");
                    continue;
                }
            };
            if count > auth::FRAMES {
                summary.too_many_frames += 1;
                // Keep only the tag: the envelope check below refuses it as malformed.
                frames.truncate(1);
            }
            let opened = auth::open_request(&key, &frames, &self.settings.name)
                .and_then(|o| guard.admit(epoch_ms(), &o).map(|a| (o, a)));
            let (reply, re, to, exit, renews) = match opened {
                Err(e) => {
                    summary.unauthorized += 1;
                    let e = if count > auth::FRAMES {
                        format!("{count} frames, expected {}", auth::FRAMES)
                    } else {
                        e.to_string()
                    };
                    tracing::warn!("unauthorized request: {e}");
                    let (re, to) = auth::unverified_return_address(&frames);
                    (
                        Reply::fail("", ErrorKind::Unauthorized, e),
                        re,
                        to,
                        false,
                        false,
                    )
                }
                Ok((opened, Admission::Retry(cached))) => {
                    if Request::decode(&opened.body).is_ok_and(|r| r.renews_lease()) {
                        lease.renew(mono());
                    }
                    summary.retries += 1;
                    tracing::info!(nonce = %opened.header.nonce, "retried request: cached reply");
                    if let Err(e) = self.sock.send_multipart(cached, 0) {
                        tracing::warn!("send: {e}");
                    }
                    summary.answered += 1;
                    continue;
                }
                Ok((opened, Admission::Fresh)) => {
                    let req = Request::decode(&opened.body).ok();
                    // Renewed once answered (below): the lease is not looked at meanwhile.
                    let renews = req.as_ref().is_some_and(Request::renews_lease);
                    if req == Some(Request::GetRoute) {
                        // get_route answers the route list of now, not of the last period.
                        if let Some(r) = exec.collect_routes_now() {
                            agent.collected_routes(r);
                        }
                    }
                    let (reply, exit) = run_request(&mut agent, &mut exec, &opened.body, &mono);
                    if reply.kind == Some(ErrorKind::Raised) {
                        summary.raised += 1;
                    }
                    (reply, opened.header.nonce, opened.header.from, exit, renews)
                }
            };
            tracing::info!(cmd = %reply.cmd, ok = reply.ok, "{}", reply.describe());
            let frames = auth::seal_reply(
                &key,
                epoch_ms(),
                rand::random(),
                &self.settings.name,
                &to,
                &re,
                &reply.encode(),
            );
            if reply.kind != Some(ErrorKind::Unauthorized) {
                guard.remember_reply(&re, &frames);
            }
            if let Err(e) = self.sock.send_multipart(frames, 0) {
                tracing::warn!("send: {e}");
            }
            summary.answered += 1;
            // A long step (a modem start) counts from its end; a stranger or a monitor's
            // `observe` renews nothing.
            if renews {
                lease.renew(mono());
            }
            if exit {
                tracing::info!("end received: exiting");
                break;
            }
        }
        exec.shutdown();
        summary
    }
}

/// Run one authenticated request body to its reply, executing its local steps.
fn run_request(
    agent: &mut Agent,
    exec: &mut HostExec,
    body: &[u8],
    mono: &dyn Fn() -> u64,
) -> (Reply, bool) {
    agent.receive(mono(), body);
    let mut reply = None;
    let mut exit = false;
    loop {
        match agent.poll_action() {
            Some(AgentAction::Local(op)) => {
                tracing::debug!(?op, "step");
                let r = std::panic::catch_unwind(AssertUnwindSafe(|| exec.perform(&op)));
                match r {
                    Ok(Ok(v)) => agent.handle(mono(), Event::LocalDone(Ok(v))),
                    Ok(Err(StepError::Failed(e))) => agent.handle(mono(), Event::LocalDone(Err(e))),
                    Ok(Err(StepError::Raised(e))) => agent.raised(&e),
                    Err(p) => {
                        let what = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".into());
                        agent.raised(&format!("internal error: {what}"));
                    }
                }
            }
            Some(AgentAction::Report(r)) => match r.level {
                Level::Info => tracing::info!("{}", r.text),
                Level::Warn => tracing::warn!("{}", r.text),
                Level::Error => tracing::error!("{}", r.text),
            },
            Some(AgentAction::Reply(r)) => reply = Some(r),
            Some(AgentAction::Exit) => exit = true,
            None => {
                if reply.is_some() || !agent.is_busy() {
                    break;
                }
                // Waiting on a deadline only (no step outstanding): let time pass.
                let now = mono();
                let at = agent.poll_timeout().unwrap_or(now + 10);
                std::thread::sleep(Duration::from_millis(at.saturating_sub(now).clamp(1, 50)));
                agent.handle(mono(), Event::Tick);
            }
        }
    }
    if let Some(t) = agent.last_timeline() {
        tracing::debug!("handler timeline:\n{}", t.render_table());
    }
    let reply = reply.unwrap_or_else(|| Reply::raised("", "handler produced no reply"));
    (reply, exit)
}

/// Run an agent on a thread (tests, demos): returns the bound endpoint, a stop flag and
/// the thread's handle.
pub fn spawn(
    settings: AgentSettings,
) -> Result<
    (
        String,
        Arc<AtomicBool>,
        std::thread::JoinHandle<ServeSummary>,
    ),
    AgentError,
> {
    let server = AgentServer::bind(settings)?;
    let endpoint = server.endpoint().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || server.serve(&s));
    Ok((endpoint, stop, h))
}
