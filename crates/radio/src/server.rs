//! The IO shell of `ferry air`: one UDP socket per radio (its fronthaul endpoint), one
//! ZeroMQ REP socket for link control, SigMF capture files, and the real-time loop that
//! drives [`AirEngine`] from the wall clock. Everything else lives in the sans-IO engine.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ferry_auth::{self as auth, Admission, ReplayGuard};
use ferry_fronthaul::control::{ControlCounters, ControlError, ErrorCode, Reply, Request};
use num_complex::Complex32;
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

/// Label of the key the radio's in-band switch notices are MAC'd with, derived from the
/// link-control key ([`ferry_auth::AuthKey::derive`]).
pub const NOTICE_KEY_LABEL: &str = "ferry switch notice";

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
    /// Radio-Msps served: radios × samples processed per second (clock slips excluded),
    /// in Msps (each radio carries RX out and TX in at that rate).
    pub radio_msps: f64,
    /// `cpu_percent_of_one_core / radio_msps`: the air's cost per radio per Msps, the figure
    /// that says how many radios of which width one core carries.
    pub cpu_percent_per_radio_msps: Option<f64>,
    /// Whether fronthaul IO was batched (`recvmmsg`/`sendmmsg`).
    pub batched_io: bool,
    /// Ticks skipped because the loop fell behind real time.
    pub clock_slips: u64,
    /// Every radio's counters at the end.
    pub radios: Vec<(String, ferry_fronthaul::control::Counters)>,
    /// The link-control socket's counters at the end.
    pub control: ControlCounters,
}

/// CPU time of the calling thread in seconds.
pub fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Largest link-control frame (ZMQ_MAXMSGSIZE): a request plus its header and headroom.
/// ZeroMQ disconnects a peer that sends a larger frame, before buffering it.
pub const MAX_CONTROL_FRAME: usize = ferry_fronthaul::control::MAX_MESSAGE + 1024;
/// Link-control requests handled per loop pass (each costs at most one HMAC of a 64 KiB
/// body), so a flood of requests cannot hold the clock.
const CONTROL_PER_PASS: usize = 8;
/// Capture chunks queued for the writer thread; when full, samples are dropped (counted).
const CAPTURE_QUEUE: usize = 256;

/// Receive one message frame by frame, keeping at most `max_frames` (the rest are read and
/// dropped at once). Returns the frames kept and the count received.
pub fn recv_bounded(
    sock: &zmq::Socket,
    max_frames: usize,
    flags: i32,
) -> Result<(Vec<Vec<u8>>, usize), zmq::Error> {
    let mut frames = Vec::new();
    let mut count = 0usize;
    let mut flags = flags;
    loop {
        let m = sock.recv_msg(flags)?;
        // The rest of a multipart message is already here: never wait for it.
        flags = 0;
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
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

enum WriterMsg {
    Open(u64, Box<SigMfWriter>),
    Write(u64, Vec<Complex32>),
    Finish(u64),
}

/// The capture file writer: its own thread, fed through a bounded channel so the real-time
/// loop never waits on a disk.
fn spawn_writer() -> io::Result<(SyncSender<WriterMsg>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::sync_channel::<WriterMsg>(CAPTURE_QUEUE);
    let h = std::thread::Builder::new()
        .name("ferry-capture".into())
        .spawn(move || {
            let mut open: HashMap<u64, Box<SigMfWriter>> = HashMap::new();
            for m in rx {
                match m {
                    WriterMsg::Open(id, w) => {
                        open.insert(id, w);
                    }
                    WriterMsg::Write(id, samples) => {
                        if let Some(w) = open.get_mut(&id) {
                            if let Err(e) = w.write(&samples) {
                                tracing::warn!("capture {id} write failed: {e}");
                            }
                        }
                    }
                    WriterMsg::Finish(id) => {
                        if let Some(w) = open.remove(&id) {
                            if let Err(e) = w.finish() {
                                tracing::warn!("capture {id} finish failed: {e}");
                            }
                        }
                    }
                }
            }
            for (_, w) in open {
                let _ = w.finish();
            }
        })?;
    Ok((tx, h))
}

/// A bound, not yet running air.
pub struct AirServer {
    engine: AirEngine,
    sockets: Vec<UdpSocket>,
    _ctx: zmq::Context,
    rep: zmq::Socket,
    monitor: Option<zmq::Socket>,
    control_endpoint: String,
    guard: ReplayGuard,
    counters: ControlCounters,
    /// Open captures: id → radio index.
    captures: HashMap<u64, usize>,
    writer: Option<SyncSender<WriterMsg>>,
    writer_thread: Option<JoinHandle<()>>,
    /// Finish messages the full queue did not take yet.
    pending_finish: Vec<u64>,
    capture_seq: u64,
    buf: Vec<u8>,
    /// Batched fronthaul IO (`recvmmsg`/`sendmmsg`, [`crate::batch`]); off: one system call
    /// per datagram (the before of the throughput bench).
    batched: bool,
    recv_batch: crate::batch::RecvBatch,
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
        rep.set_maxmsgsize(MAX_CONTROL_FRAME as i64).map_err(zerr)?;
        rep.bind(&cfg.control).map_err(zerr)?;
        // Disconnects (ZeroMQ cuts off a peer whose frame exceeds ZMQ_MAXMSGSIZE) are
        // counted through the socket monitor.
        let monitor_ep = format!("inproc://ferry-air-monitor-{}", rand::random::<u64>());
        let monitor = rep
            .monitor(&monitor_ep, zmq::SocketEvent::DISCONNECTED as i32)
            .and_then(|()| ctx.socket(zmq::PAIR))
            .and_then(|m| m.connect(&monitor_ep).map(|()| m))
            .map_err(|e| tracing::warn!("link-control monitor unavailable: {e}"))
            .ok();
        let control_endpoint = rep
            .get_last_endpoint()
            .map_err(zerr)?
            .unwrap_or_else(|_| cfg.control.clone());
        let captures_cfg = cfg.captures.clone();
        let (writer, writer_thread) = spawn_writer()?;
        let mut s = Self {
            engine: {
                let notice_key = cfg.auth.as_ref().map(|a| a.key.derive(NOTICE_KEY_LABEL));
                let mut e = AirEngine::new(cfg, Some(&addrs))?;
                e.set_notice_key(notice_key);
                e
            },
            sockets,
            _ctx: ctx,
            rep,
            monitor,
            control_endpoint,
            // Nothing signed before this start is taken (a restarted air cannot be
            // replayed into).
            guard: ReplayGuard::new(epoch_ms(), auth::DEFAULT_WINDOW_MS, 100_000),
            counters: ControlCounters::default(),
            captures: HashMap::new(),
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            pending_finish: Vec::new(),
            capture_seq: 0,
            buf: vec![0u8; 65_536],
            batched: true,
            recv_batch: crate::batch::RecvBatch::new(65_536),
            medium: None,
        };
        for c in captures_cfg {
            // The operator's own configuration: its paths are taken as given (but never
            // over an existing file or through a symlink).
            if let Reply::Error { message, .. } = s.start_capture(
                &c.radio,
                c.stream,
                c.format,
                std::path::PathBuf::from(&c.path),
                c.samples,
            ) {
                return Err(ServerError::Io(io::Error::other(message)));
            }
        }
        Ok(s)
    }

    /// Like [`AirServer::bind`], but the radios' TX and RX go through `medium` (a USRP
    /// through UHD, or a cabled loopback) instead of the emulated air: a radio head. A
    /// paced medium's sample clock then drives the loop instead of the host's wall clock.
    pub fn bind_with_medium(cfg: AirConfig, medium: Box<dyn Medium>) -> Result<Self, ServerError> {
        if let Some(r) = cfg.radios.iter().find(|r| r.channels != 1) {
            return Err(ServerError::Config(ConfigError::Invalid(format!(
                "radio {}: channels {}: a radio head streams one channel per radio (two \
                 channels through UHD are not built); use channels 1",
                r.name, r.channels
            ))));
        }
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

    /// A `capture` request: checked against the directory and cap, named by the radio.
    fn capture_request(&mut self, req: &Request) -> Reply {
        let Request::Capture {
            radio,
            stream,
            format,
            samples,
        } = req
        else {
            return Reply::error(ErrorCode::Internal, "not a capture");
        };
        let Some(dir) = self.engine.config().capture_dir.clone() else {
            return Reply::error(
                ErrorCode::Refused,
                "no capture directory configured (ferry air --capture-dir)",
            );
        };
        let cap = self.engine.config().max_capture_samples;
        if *samples > cap {
            return Reply::error(
                ErrorCode::Refused,
                format!("capture of {samples} samples exceeds the cap of {cap}"),
            );
        }
        if self.engine.radio_index(radio).is_none() {
            return Reply::error(ErrorCode::UnknownRadio, format!("no radio named {radio:?}"));
        }
        self.capture_seq += 1;
        // Only characters that cannot form a path (radio names come from the
        // configuration, but stay safe whatever they are).
        let safe: String = radio
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let s = match stream {
            ferry_fronthaul::control::CaptureStream::Rx => "rx",
            ferry_fronthaul::control::CaptureStream::Tx => "tx",
        };
        let file = format!("{safe}-{s}-{}-{}", epoch_ms(), self.capture_seq);
        self.start_capture(radio, *stream, *format, dir.join(&file), *samples)
            .with_file(file)
    }

    fn start_capture(
        &mut self,
        radio: &str,
        stream: ferry_fronthaul::control::CaptureStream,
        format: ferry_fronthaul::control::CaptureFormat,
        base: std::path::PathBuf,
        samples: u64,
    ) -> Reply {
        let Some(i) = self.engine.radio_index(radio) else {
            return Reply::error(ErrorCode::UnknownRadio, format!("no radio named {radio:?}"));
        };
        let u = &self.engine.radios()[i];
        let desc = format!("{stream:?} of radio {radio}");
        let writer = match SigMfWriter::create(
            &base,
            format,
            self.engine.config().sample_rate_hz,
            u.rf.rx_freq_hz,
            self.engine.now(),
            SystemTime::now(),
            &desc,
        ) {
            Ok(w) => w,
            Err(e) => {
                return Reply::error(
                    ErrorCode::Internal,
                    format!("cannot create {}: {e}", base.display()),
                )
            }
        };
        let Some(tx) = self.writer.as_ref() else {
            return Reply::error(ErrorCode::Internal, "capture writer gone");
        };
        match self.engine.start_capture(radio, stream, samples) {
            Ok(id) => {
                if tx.try_send(WriterMsg::Open(id, Box::new(writer))).is_err() {
                    self.engine.control(&Request::StopCapture {
                        radio: radio.to_string(),
                    });
                    return Reply::error(ErrorCode::Refused, "capture writer busy, retry");
                }
                self.captures.insert(id, i);
                Reply::Capturing {
                    radio: radio.to_string(),
                    id,
                    file: base.display().to_string(),
                    sample_time: self.engine.now(),
                }
            }
            Err(r) => r,
        }
    }

    fn handle_control(&mut self, bytes: &[u8]) -> Reply {
        let mut reply = match Request::from_bytes(bytes) {
            Ok(req @ Request::Capture { .. }) => self.capture_request(&req),
            Ok(req @ Request::StopCapture { .. }) => {
                let r = self.engine.control(&req);
                if let (Request::StopCapture { radio }, Reply::Done { .. }) = (&req, &r) {
                    let i = self.engine.radio_index(radio);
                    let ids: Vec<u64> = self
                        .captures
                        .iter()
                        .filter(|(_, r)| Some(**r) == i)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in ids {
                        self.captures.remove(&id);
                        self.pending_finish.push(id);
                    }
                    self.send_finishes();
                }
                r
            }
            Ok(req) => self.engine.control(&req),
            Err(e @ ControlError::TooLarge(_)) | Err(e @ ControlError::Malformed(_)) => {
                Reply::error(ErrorCode::BadRequest, e.to_string())
            }
        };
        if let Reply::Status { control, .. } = &mut reply {
            *control = self.counters.clone();
        }
        reply
    }

    /// Turn one received message into the reply frames: verify (when a key is set), run,
    /// seal. Every refusal is counted and answered.
    fn handle_message(&mut self, frames: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
        self.counters.requests += 1;
        if count > auth::FRAMES {
            self.counters.too_many_frames += 1;
        }
        let Some(la) = self.engine.config().auth.clone() else {
            let reply = match frames {
                [one] if count == 1 => self.handle_control(one),
                _ => Reply::error(ErrorCode::BadRequest, format!("{count} frames, expected 1")),
            };
            return vec![reply.to_bytes()];
        };
        let opened = if count > auth::FRAMES {
            Err(auth::AuthError::Malformed(format!(
                "{count} frames, expected {}",
                auth::FRAMES
            )))
        } else {
            auth::open_request(&la.key, frames, &la.identity)
                .and_then(|o| self.guard.admit(epoch_ms(), &o).map(|a| (o, a)))
        };
        match opened {
            Err(e) => {
                self.counters.unauthenticated += 1;
                tracing::warn!("link control: unauthenticated request refused: {e}");
                let reply = Reply::error(
                    ErrorCode::Unauthorized,
                    format!("unauthenticated link-control request refused: {e}"),
                );
                if frames.len() == auth::FRAMES {
                    let (re, to) = auth::unverified_return_address(frames);
                    auth::seal_reply(
                        &la.key,
                        epoch_ms(),
                        rand::random(),
                        &la.identity,
                        &to,
                        &re,
                        &reply.to_bytes(),
                    )
                } else {
                    vec![reply.to_bytes()]
                }
            }
            Ok((_, Admission::Retry(cached))) => {
                self.counters.retries += 1;
                cached
            }
            Ok((o, Admission::Fresh)) => {
                let reply = self.handle_control(&o.body);
                let f = auth::seal_reply(
                    &la.key,
                    epoch_ms(),
                    rand::random(),
                    &la.identity,
                    &o.header.from,
                    &o.header.nonce,
                    &reply.to_bytes(),
                );
                self.guard.remember_reply(&o.header.nonce, &f);
                f
            }
        }
    }

    fn send_finishes(&mut self) {
        let Some(tx) = self.writer.as_ref() else {
            return;
        };
        while let Some(&id) = self.pending_finish.first() {
            match tx.try_send(WriterMsg::Finish(id)) {
                Ok(()) => {
                    self.pending_finish.remove(0);
                }
                Err(_) => break,
            }
        }
    }

    fn drain_control(&mut self) {
        if let Some(m) = &self.monitor {
            // Each monitor event is two frames (event id + value, endpoint).
            while let Ok((_, n)) = recv_bounded(m, 0, zmq::DONTWAIT) {
                if n > 0 {
                    self.counters.disconnects += 1;
                }
            }
        }
        // REP alternates strictly: every request received gets exactly one reply.
        for _ in 0..CONTROL_PER_PASS {
            match recv_bounded(&self.rep, auth::FRAMES, zmq::DONTWAIT) {
                Ok((frames, count)) => {
                    let reply = self.handle_message(&frames, count);
                    if let Err(e) = self.rep.send_multipart(reply, zmq::DONTWAIT) {
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

    /// Batched (`recvmmsg`/`sendmmsg`, the default) or one system call per datagram.
    pub fn set_batched_io(&mut self, on: bool) {
        self.batched = on;
    }

    fn drain_fronthaul(&mut self) {
        for i in 0..self.sockets.len() {
            // Bounded so a flood on one socket cannot starve the clock.
            if self.batched {
                for _ in 0..4096 / crate::batch::BATCH {
                    // ICMP errors surfacing on the socket: nothing to read, keep serving.
                    let n = self.recv_batch.recv(&self.sockets[i]).unwrap_or_default();
                    for k in 0..n {
                        let Some((bytes, from)) = self.recv_batch.get(k) else {
                            continue;
                        };
                        if let Some(o) = self.engine.on_datagram(i, from, bytes) {
                            let _ = self.sockets[i].send_to(&o.bytes, o.to);
                        }
                    }
                    if n < crate::batch::BATCH {
                        break;
                    }
                }
                continue;
            }
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
        if self.batched {
            for (radio, sock) in self.sockets.iter().enumerate() {
                let batch: Vec<(&[u8], SocketAddr)> = out
                    .packets
                    .iter()
                    .filter(|p| p.radio == radio)
                    .map(|p| (&p.bytes[..], p.to))
                    .collect();
                let engine = &mut self.engine;
                // Unreachable hosts (legacy address not held by anyone, closed ports):
                // the radio keeps streaming, like an N210 does; a full buffer overflows.
                crate::batch::send_batch(sock, &batch, |_, e| {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        engine.count_overflow(radio)
                    }
                });
            }
            out.packets.clear();
        }
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
            let n = c.samples.len() as u64;
            if let Some(tx) = self.writer.as_ref() {
                match tx.try_send(WriterMsg::Write(c.id, c.samples)) {
                    Ok(()) => {}
                    // The writer fell behind: drop, count, never wait.
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        self.counters.capture_dropped_samples += n;
                    }
                }
            }
            if c.finished && self.captures.remove(&c.id).is_some() {
                self.pending_finish.push(c.id);
            }
        }
        if !self.pending_finish.is_empty() {
            self.send_finishes();
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
            if self.medium.as_ref().is_none_or(|m| !m.paced()) {
                // Arrivals are dated by the wall clock, not the (possibly lagging) tick.
                let due = osc.samples_due(start.elapsed().as_secs_f64(), rate);
                self.engine.set_wall_now(due);
            }
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
        // Shutting down: the writer finishes every open file (waiting here is fine now).
        self.captures.clear();
        drop(self.writer.take());
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        // Samples the air processed (not skipped), so a saturated run still gives its cost.
        let radio_msps =
            (ticks * tick) as f64 * self.engine.radios().len() as f64 / wall.max(1e-9) / 1e6;
        let cpu_percent = cpu.map(|c| 100.0 * c / wall.max(1e-9));
        RunSummary {
            ticks,
            samples: self.engine.now(),
            wall_s: wall,
            cpu_s: cpu,
            cpu_percent_of_one_core: cpu_percent,
            radio_msps,
            cpu_percent_per_radio_msps: cpu_percent.map(|p| p / radio_msps.max(1e-9)),
            batched_io: self.batched,
            clock_slips: slips,
            control: self.counters.clone(),
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

trait WithFile {
    fn with_file(self, file: String) -> Reply;
}

impl WithFile for Reply {
    /// Name only the file, not the directory, in the reply to a `capture` request.
    fn with_file(self, file: String) -> Reply {
        match self {
            Reply::Capturing {
                radio,
                id,
                sample_time,
                ..
            } => Reply::Capturing {
                radio,
                id,
                file,
                sample_time,
            },
            r => r,
        }
    }
}
