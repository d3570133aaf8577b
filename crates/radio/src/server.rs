//! The IO shell of `ferry air`: one UDP socket per radio (its fronthaul endpoint), one
//! ZeroMQ REP socket for link control, SigMF capture files, and the real-time loop that
//! drives [`AirEngine`] from the wall clock. Everything else lives in the sans-IO engine.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ferry_fronthaul::control::{ControlError, ErrorCode, Reply, Request};
use serde::Serialize;
use thiserror::Error;

use crate::config::{AirConfig, ConfigError};
use crate::engine::{AirEngine, TickOutput};
use crate::medium::Medium;
use crate::sigmf::SigMfWriter;

/// Failures starting or running the air.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A fronthaul socket could not be bound.
    #[error("cannot bind fronthaul socket {addr} of radio {radio}: {source}")]
    Bind {
        /// Radio.
        radio: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// ZeroMQ failed.
    #[error("link-control socket {endpoint}: {source}")]
    Zmq {
        /// Endpoint.
        endpoint: String,
        /// Cause.
        source: zmq::Error,
    },
    /// Other IO.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The air thread died.
    #[error("air thread ended unexpectedly")]
    Thread,
}

/// What a run did, for the CPU-budget measurement.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Ticks processed.
    pub ticks: u64,
    /// Air time covered, in samples.
    pub samples: u64,
    /// Wall-clock duration of the run.
    pub wall_s: f64,
    /// CPU time of the air thread (from /proc/thread-self/schedstat), if readable.
    pub cpu_s: Option<f64>,
    /// `cpu_s / wall_s` in percent of one core.
    pub cpu_percent_of_one_core: Option<f64>,
    /// Ticks skipped because the loop fell behind real time.
    pub clock_slips: u64,
    /// Every radio's counters at the end.
    pub radios: Vec<(String, ferry_fronthaul::control::Counters)>,
}

/// CPU time of the calling thread in seconds.
pub fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// A bound, not yet running air.
pub struct AirServer {
    engine: AirEngine,
    sockets: Vec<UdpSocket>,
    _ctx: zmq::Context,
    rep: zmq::Socket,
    control_endpoint: String,
    captures: HashMap<u64, SigMfWriter>,
    buf: Vec<u8>,
    /// Real hardware (or its loopback model) instead of the emulated air.
    medium: Option<Box<dyn Medium>>,
}

impl AirServer {
    /// Validates the configuration, binds every radio's fronthaul socket and the
    /// link-control socket, powers the radios up (sample time 0 = now) and opens the
    /// captures the configuration asks for.
    pub fn bind(cfg: AirConfig) -> Result<Self, ServerError> {
        cfg.validate()?;
        let mut sockets = Vec::new();
        let mut addrs = Vec::new();
        for r in &cfg.radios {
            let bind_err = |source| ServerError::Bind {
                radio: r.name.clone(),
                addr: r.fronthaul,
                source,
            };
            let s = UdpSocket::bind(r.fronthaul).map_err(bind_err)?;
            s.set_nonblocking(true).map_err(bind_err)?;
            let _ = crate::sys::set_socket_buffers(&s, 4 << 20);
            addrs.push(s.local_addr()?);
            sockets.push(s);
        }
        let ctx = zmq::Context::new();
        let zerr = |source| ServerError::Zmq {
            endpoint: cfg.control.clone(),
            source,
        };
        let rep = ctx.socket(zmq::REP).map_err(zerr)?;
        rep.set_linger(0).map_err(zerr)?;
        rep.bind(&cfg.control).map_err(zerr)?;
        let control_endpoint = rep
            .get_last_endpoint()
            .map_err(zerr)?
            .unwrap_or_else(|_| cfg.control.clone());
        let captures_cfg = cfg.captures.clone();
        let mut s = Self {
            engine: AirEngine::new(cfg, Some(&addrs))?,
            sockets,
            _ctx: ctx,
            rep,
            control_endpoint,
            captures: HashMap::new(),
            buf: vec![0u8; 65_536],
            medium: None,
        };
        for c in captures_cfg {
            let req = Request::Capture {
                radio: c.radio,
                stream: c.stream,
                format: c.format,
                path: c.path,
                samples: c.samples,
            };
            if let Reply::Error { message, .. } = s.start_capture(&req) {
                return Err(ServerError::Io(io::Error::other(message)));
            }
        }
        Ok(s)
    }

    /// Like [`AirServer::bind`], but the radios' TX and RX go through `medium` (a USRP
    /// through UHD, or a cabled loopback) instead of the emulated air: a radio head. A
    /// paced medium's sample clock then drives the loop instead of the host's wall clock.
    pub fn bind_with_medium(cfg: AirConfig, medium: Box<dyn Medium>) -> Result<Self, ServerError> {
        let mut s = Self::bind(cfg)?;
        s.medium = Some(medium);
        // The hardware's LOs are set once from the RF configuration; not retuned at run time.
        s.engine.set_fixed_tuning(true);
        Ok(s)
    }

    /// The bound link-control endpoint (with the real port if `*` was asked).
    pub fn control_endpoint(&self) -> &str {
        &self.control_endpoint
    }

    /// Bound fronthaul addresses, in radio order.
    pub fn fronthaul_addrs(&self) -> Vec<SocketAddr> {
        self.engine.radios().iter().map(|r| r.fronthaul).collect()
    }

    fn start_capture(&mut self, req: &Request) -> Reply {
        let Request::Capture {
            radio,
            stream,
            format,
            path,
            samples,
        } = req
        else {
            return Reply::error(ErrorCode::Internal, "not a capture");
        };
        let Some(i) = self.engine.radio_index(radio) else {
            return Reply::error(ErrorCode::UnknownRadio, format!("no radio named {radio:?}"));
        };
        let u = &self.engine.radios()[i];
        let desc = format!("{stream:?} of radio {radio}");
        let writer = match SigMfWriter::create(
            Path::new(path),
            *format,
            self.engine.config().sample_rate_hz,
            u.rf.rx_freq_hz,
            self.engine.now(),
            SystemTime::now(),
            &desc,
        ) {
            Ok(w) => w,
            Err(e) => {
                return Reply::error(ErrorCode::Internal, format!("cannot create {path}: {e}"))
            }
        };
        match self.engine.start_capture(radio, *stream, *samples) {
            Ok(id) => {
                self.captures.insert(id, writer);
                Reply::Done {
                    radio: radio.clone(),
                    sample_time: self.engine.now(),
                }
            }
            Err(r) => r,
        }
    }

    fn handle_control(&mut self, bytes: &[u8]) -> Reply {
        match Request::from_bytes(bytes) {
            Ok(req @ Request::Capture { .. }) => self.start_capture(&req),
            Ok(req) => self.engine.control(&req),
            Err(e @ ControlError::TooLarge(_)) | Err(e @ ControlError::Malformed(_)) => {
                Reply::error(ErrorCode::BadRequest, e.to_string())
            }
        }
    }

    fn drain_control(&mut self) {
        // REP alternates strictly: every request received gets exactly one reply.
        for _ in 0..64 {
            match self.rep.recv_bytes(zmq::DONTWAIT) {
                Ok(b) => {
                    let reply = self.handle_control(&b);
                    if let Err(e) = self.rep.send(reply.to_bytes(), 0) {
                        tracing::warn!("link-control reply failed: {e}");
                    }
                }
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!("link-control receive failed: {e}");
                    break;
                }
            }
        }
    }

    fn drain_fronthaul(&mut self) {
        for i in 0..self.sockets.len() {
            // Bounded so a flood on one socket cannot starve the clock.
            for _ in 0..4096 {
                match self.sockets[i].recv_from(&mut self.buf) {
                    Ok((n, from)) => {
                        let bytes = &self.buf[..n];
                        if let Some(o) = self.engine.on_datagram(i, from, bytes) {
                            let _ = self.sockets[i].send_to(&o.bytes, o.to);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP errors surfacing on the socket: nothing to read, keep serving.
                    Err(_) => break,
                }
            }
        }
    }

    fn flush(&mut self, out: &mut TickOutput) {
        for p in out.packets.drain(..) {
            match self.sockets[p.radio].send_to(&p.bytes, p.to) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.engine.count_overflow(p.radio)
                }
                // Unreachable hosts (legacy address not held by anyone, closed ports):
                // the radio keeps streaming, like an N210 does.
                Err(_) => {}
            }
        }
        for c in out.captures.drain(..) {
            let done = c.finished;
            if let Some(w) = self.captures.get_mut(&c.id) {
                if let Err(e) = w.write(&c.samples) {
                    tracing::warn!("capture {} write failed: {e}", c.id);
                }
            }
            if done {
                if let Some(w) = self.captures.remove(&c.id) {
                    if let Err(e) = w.finish() {
                        tracing::warn!("capture {} finish failed: {e}", c.id);
                    }
                }
            }
        }
    }

    /// Runs in real time until `stop` is set (or `limit` passes), then returns a summary.
    pub fn run(mut self, stop: &AtomicBool, limit: Option<Duration>) -> RunSummary {
        let rate = f64::from(self.engine.config().sample_rate_hz);
        let tick = self.engine.config().tick_samples as u64;
        if let Some(p) = self.engine.config().realtime_priority {
            if let Err(e) = crate::sys::set_realtime_priority(p) {
                tracing::warn!("air thread keeps normal scheduling (real-time priority {p}: {e})");
            }
        }
        let osc = crate::oscillator::Oscillator::new(
            self.engine.config().clock_ppm,
            self.engine.config().clock_drift_ppm_per_hour,
        );
        let start = Instant::now();
        let cpu0 = thread_cpu_seconds();
        let mut out = TickOutput::default();
        let mut ticks = 0u64;
        let mut slips = 0u64;
        let rep_fd = self.rep.get_fd().ok();
        let max_behind = self
            .engine
            .config()
            .max_catchup_ms
            .map(|ms| (ms.saturating_mul(rate as u64) / 1000 / tick).max(1));
        loop {
            if stop.load(Ordering::Relaxed) || limit.is_some_and(|l| start.elapsed() >= l) {
                break;
            }
            self.drain_control();
            self.drain_fronthaul();
            if let Some(m) = self.medium.as_mut().filter(|m| m.paced()) {
                // The hardware's clock: exchange returns once the tick's RX has arrived.
                self.engine.tick_via(&mut out, Some(m.as_mut()));
                ticks += 1;
                self.flush(&mut out);
                continue;
            }
            // The radio room's oscillator, not the host's clock, says how many samples are due.
            let due = osc.samples_due(start.elapsed().as_secs_f64(), rate);
            let behind = due.saturating_sub(self.engine.now()) / tick;
            if max_behind.is_some_and(|m| behind > m) {
                // Fell too far behind (stopped in a debugger, starved): skip rather than
                // burst a flood of stale samples.
                let skip = behind - 1;
                self.engine.skip(skip);
                self.engine.count_clock_slip(skip);
                slips += skip;
            }
            while self.engine.now() + tick <= due {
                let m = self.medium.as_mut().map(|m| m.as_mut() as &mut dyn Medium);
                self.engine.tick_via(&mut out, m);
                ticks += 1;
                self.flush(&mut out);
            }
            let next = osc.due_at(self.engine.now() + tick, rate);
            let wait = next - start.elapsed().as_secs_f64();
            if wait >= 0.001 {
                // Wake early on a control request or a fronthaul datagram.
                let mut items: Vec<zmq::PollItem<'_>> = Vec::new();
                items.push(self.rep.as_poll_item(zmq::POLLIN));
                let _ = rep_fd;
                #[cfg(unix)]
                for s in &self.sockets {
                    use std::os::fd::AsRawFd;
                    items.push(zmq::PollItem::from_fd(s.as_raw_fd(), zmq::POLLIN));
                }
                let _ = zmq::poll(&mut items, (wait * 1000.0) as i64);
            } else if wait > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
        }
        for (_, w) in self.captures.drain() {
            let _ = w.finish();
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        RunSummary {
            ticks,
            samples: self.engine.now(),
            wall_s: wall,
            cpu_s: cpu,
            cpu_percent_of_one_core: cpu.map(|c| 100.0 * c / wall.max(1e-9)),
            clock_slips: slips,
            radios: self
                .engine
                .radios()
                .iter()
                .map(|u| (u.name.clone(), u.counters.clone()))
                .collect(),
        }
    }

    /// Binds and runs on a new thread. `enter` runs on that thread first (e.g. to join a
    /// network namespace so the sockets are created there).
    pub fn spawn(
        cfg: AirConfig,
        enter: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> Result<AirHandle, ServerError> {
        Self::spawn_with(cfg, None, enter)
    }

    /// [`AirServer::spawn`] through `medium` (a radio head) when given.
    pub fn spawn_with(
        cfg: AirConfig,
        medium: Option<Box<dyn Medium>>,
        enter: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> Result<AirHandle, ServerError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-air".into())
            .spawn(move || {
                let bound = enter()
                    .map_err(ServerError::Io)
                    .and_then(|()| match medium {
                        Some(m) => AirServer::bind_with_medium(cfg, m),
                        None => AirServer::bind(cfg),
                    });
                match bound {
                    Ok(s) => {
                        let _ = tx.send(Ok((s.control_endpoint().to_owned(), s.fronthaul_addrs())));
                        Some(s.run(&stop2, None))
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        None
                    }
                }
            })?;
        let (control, fronthaul) = rx.recv().map_err(|_| ServerError::Thread)??;
        Ok(AirHandle {
            stop,
            thread: Some(thread),
            control,
            fronthaul,
        })
    }
}

/// A running air on its own thread; dropping it stops the thread.
pub struct AirHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<RunSummary>>>,
    /// Link-control endpoint.
    pub control: String,
    /// Fronthaul addresses in radio order.
    pub fronthaul: Vec<SocketAddr>,
}

impl AirHandle {
    /// Stops the air and returns its run summary.
    pub fn stop(mut self) -> Option<RunSummary> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl Drop for AirHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
