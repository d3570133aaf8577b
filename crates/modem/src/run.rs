//! The real-time shell: paces on the radio's RX blocks, runs the core once per subframe,
//! bridges the TUN, serves the control socket and the forward port.

use crate::carrier::{carrier_for, Carrier};
use crate::clock::{ClockConfig, RadioClock};
use crate::core::{roles, ModemCore, SubframeAssembler};
use crate::ctlsock::{self, Line, LineReader, OutBuffer};
use crate::cutover::{
    Cutover, CutoverAction, CutoverConfig, CutoverError, Duty, Notice, NoticeKind, RxFate, TxMode,
};
use crate::elect::{Auto, Hit};
use crate::forward::{self, ForwardReceiver};
use crate::horizon::{HorizonConfig, RxHorizon, Verdict};
use crate::proto::{
    parse_request, CutoverArm, ModemCounters, ModemReply, ModemRequest, ModemState, ModemStatus,
    Role,
};
use ferry_mac::election::{ElectedRole, ElectionConfig, RoleChange};
use ferry_mac::harq::HarqConfig;
use ferry_mac::{AddressPlan, NodeId, Window};
use ferry_migrate::{Control, ForwardToken, Route, RouteList, WarmStart};
use ferry_phy::{CellSearcher, DuplexKind};
use ferry_radio::{RadioError, RadioLink};
use num_complex::Complex32;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the modem reaches its radio.
#[derive(Debug, Clone)]
pub enum RadioSpec {
    /// Through `ferry air` link control.
    Link {
        /// Link-control endpoint (`tcp://…`).
        control: String,
        /// Radio name.
        radio: String,
        /// Local fronthaul address to bind (port 0 = any).
        bind: SocketAddr,
        /// Link-control key and the air's identity (`None`: unsigned requests).
        auth: Option<ferry_radio::LinkAuth>,
    },
    /// An address-bound (legacy) radio: it streams to whoever holds the bind address.
    Legacy {
        /// Local fronthaul address (usually 192.168.10.1:PORT).
        bind: SocketAddr,
        /// The radio's fronthaul address.
        radio: SocketAddr,
        /// Radio number (stream id).
        number: u16,
        /// Sample rate (Hz).
        sample_rate: u32,
    },
}

/// Everything `ferry modem` is started with.
#[derive(Debug, Clone)]
pub struct ModemOptions {
    /// Initial Control (table 3-3; warm-start timing for a warm slave).
    pub control: Control,
    /// Start at once: 0 cold, 1 warm; `None` waits for `start` on the control socket.
    pub start: Option<u8>,
    /// Start in shadow (decode, neither deliver nor transmit) rather than active.
    pub shadow: bool,
    /// Initial routes (warm start).
    pub routes: Option<RouteList>,
    /// The radio.
    pub radio: RadioSpec,
    /// TUN device name; `None` runs without a TUN (benchmarks).
    pub tun: Option<String>,
    /// TUN address.
    pub tun_addr: Ipv4Addr,
    /// TUN prefix length.
    pub tun_prefix: u8,
    /// TUN MTU.
    pub mtu: u16,
    /// Control socket path.
    pub control_socket: Option<PathBuf>,
    /// Forward port (UDP) for packets handed over by a releasing source.
    pub forward_bind: Option<SocketAddr>,
    /// Accept forwarded packets only from these addresses (empty: any); they must be sealed
    /// with the forward token of the migration in progress in any case.
    pub forward_allow: Vec<std::net::IpAddr>,
    /// Fronthaul MTU: TX packets are sized so no IP datagram exceeds it.
    pub fronthaul_mtu: usize,
    /// Subframes TX is built ahead of radio time.
    pub tx_lead: u64,
    /// Route-discovery beacon period in subframes.
    pub discovery_period: u64,
    /// Base-station grant delay in subframes (cell-wide; > every slave's `tx_lead` + 1).
    pub grant_delay: u64,
    /// Half-frames the cold cell search accumulates.
    pub search_half_frames: usize,
    /// Exit after this long (tests, benchmarks).
    pub duration: Option<Duration>,
    /// MAC node id (default: last octet of the TUN address).
    pub node: Option<u8>,
    /// SCHED_FIFO priority for the real-time loop (`None`: normal scheduler).
    pub realtime: Option<i32>,
    /// After a release, how long this modem stays warm (receiving the radio's RX copy,
    /// sending filler) in case the radio falls back to it; make-before-break asks the radio
    /// for the same grace.
    pub release_grace: Duration,
    /// Start as a hot standby (with `shadow`): filler TX, serves on a failover notice.
    pub hot_standby: bool,
}

/// Why a cutover is refused on a link without notices.
const NEEDS_NOTICES: &str = "make-before-break needs the radio's in-band switch notices, which \
     are authenticated with the link-control key: start the modem with the radio room's key \
     (--key) and the air with --key (not --open-control)";

/// Default fallback grace of a released source (`--release-grace-ms`).
pub const DEFAULT_RELEASE_GRACE: Duration = Duration::from_millis(300);

/// Packets decoded after T kept until the radio confirms a takeover (beyond: dropped and
/// counted; at 1 ms subframes the confirmation comes within a few subframes).
const MAX_HELD: usize = 4096;

/// Copies a warm replica decoded and did not deliver, kept for a fallback or failover to
/// replay what the dead primary never delivered: this many subframes back…
const COPIES_KEPT_SUBFRAMES: u64 = 64;
/// …and at most this many packets.
const COPIES_KEPT: usize = 1024;
/// Subframes of margin in that replay ([`CutoverConfig::replay_margin`]).
const REPLAY_MARGIN: u64 = 1;

/// Modem-level failures (start-up; the loop itself never fails on input).
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// Radio.
    #[error("radio: {0}")]
    Radio(#[from] RadioError),
    /// Core configuration.
    #[error(transparent)]
    Core(#[from] crate::core::CoreError),
    /// TUN / netlink.
    #[error("tun: {0}")]
    Tun(#[from] ferry_netif::NetifError),
    /// Sockets.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Start refused.
    #[error("{0}")]
    Start(String),
    /// No usable carrier for this Control.
    #[error("carrier: {0}")]
    Carrier(#[from] crate::carrier::CarrierError),
}

/// Subframes without a single decodable subframe before a slave searches again.
const LOST_SYNC_SUBFRAMES: u64 = 200;

/// How recent the last processed (and, for a slave, decoded) subframe must be for
/// `status` to say `synced`.
const SYNC_FRESH: Duration = Duration::from_millis(200);

/// How long after a takeover resolved the forward port still accepts the source's
/// packets (it forwards for up to its drain time).
const FORWARD_GRACE: Duration = Duration::from_secs(5);

/// Longest the control socket may take of one poll (2 ms) once a request was answered.
const CONTROL_TIME_BUDGET: Duration = Duration::from_micros(200);

/// What the shell keeps for an armed or done release (the decisions are the cutover
/// machine's).
struct Release {
    forward_to: SocketAddr,
    /// The migration's forward-port key: every forwarded packet is sealed with it.
    token: ForwardToken,
    /// Packets already handed to the destination as copies when RX reached T (by content,
    /// with multiplicity): not forwarded again when the release is confirmed.
    early: Option<std::collections::HashMap<Vec<u8>, u32>>,
}

/// A master's background cell search over its own RX (auto mode): the air never returns a
/// radio's own TX, so a PSS/SSS found there is another master's.
struct Probe {
    searcher: CellSearcher,
    buf: Vec<Complex32>,
    t0: Option<u64>,
    /// Accumulating a window (between windows the probe sleeps, see `elect::PROBE_PERIOD`).
    active: bool,
}

/// One control-socket client.
struct ControlConn {
    stream: UnixStream,
    reader: LineReader,
    out: OutBuffer,
    /// Last time it sent something (eviction picks the one idle longest).
    last_active: Instant,
    /// Refused (over-long line): closed once the error reply is written.
    closing: bool,
}

/// The running modem.
pub struct Modem {
    opts: ModemOptions,
    control: Control,
    routes: Option<RouteList>,
    role: Role,
    state: ModemState,
    node: NodeId,
    plan: AddressPlan,
    link: RadioLink,
    tun: Option<ferry_netif::Tun>,
    listener: Option<UnixListener>,
    conns: Vec<ControlConn>,
    /// Which connection's request comes first in the next poll (round robin).
    control_turn: usize,
    fwd_sock: Option<UdpSocket>,
    fwd_out: Option<UdpSocket>,
    fwd_seq: u64,
    /// The forward port's key while a takeover is armed (and [`FORWARD_GRACE`] after it
    /// resolved); `None`: every forwarded datagram is refused.
    fwd_receiver: Option<ForwardReceiver>,
    fwd_close_at: Option<Instant>,
    core: Option<ModemCore>,
    asm: Option<SubframeAssembler>,
    /// The second RX antenna's assembler (a node with numAntennaRX = 2).
    asm_second: Option<SubframeAssembler>,
    search: Option<(CellSearcher, Vec<Complex32>, Option<u64>)>,
    cold: bool,
    /// Who serves which subframe: takeover, release, fallback, failover, fencing, acting on
    /// the radio's in-band notices (None before `start`).
    cut: Option<Cutover>,
    release: Option<Release>,
    held: Vec<(u64, Vec<u8>)>,
    /// Packets decoded as a warm replica and not delivered (someone else's subframes), by
    /// subframe: what a fallback or failover replays of what the dead primary never
    /// delivered. Bounded by [`COPIES_KEPT_SUBFRAMES`] and [`COPIES_KEPT`].
    copies: VecDeque<(u64, Vec<u8>)>,
    /// Newest subframe whose TX (data, filler or heartbeat) was sent to the radio: a
    /// subframe `n` decoded is delivered only once the TX of `n + tx_lead` went out, so the
    /// radio's record of this modem's newest TX bounds what it delivered.
    tx_sent_through: Option<u64>,
    /// Radio time as seen from this host: offset and rate (the oscillator's ppm).
    clock: RadioClock,
    next_tx: Option<u64>,
    /// Routes given before sync, to install at the first subframe (dated by it).
    routes_pending: bool,
    /// End of the last accepted RX block (radio samples): the stream's position, and what
    /// a block must continue to feed the clock tracker.
    last_rx: Option<u64>,
    counters: ModemCounters,
    started: Instant,
    first_delivery_ms: Option<f64>,
    sync_ms: Option<f64>,
    quit: bool,
    /// One TX buffer per TX antenna of the link.
    txbufs: Vec<Vec<Complex32>>,
    rx_pending: VecDeque<(u64, Vec<Complex32>)>,
    /// Subframes of the second RX antenna, in step with `rx_pending`.
    rx_pending_second: VecDeque<(u64, Vec<Complex32>)>,
    /// Subframe of the last good decode (a slave that decodes nothing for a while has
    /// lost, or never had, its master: it searches again).
    last_ok: Option<u64>,
    /// First cell-search hit (PCI, frame offset) awaiting confirmation by a second search.
    candidate: Option<(u16, u64)>,
    /// The radio clock as the genuine RX stream shows it; blocks far from it are dropped.
    horizon: RxHorizon,
    /// When the last subframe was processed and the last one decoded (`synced` is true
    /// only while both are recent: a modem that stopped decoding says so).
    last_subframe_at: Option<Instant>,
    last_decode_at: Option<Instant>,
    /// Cell searches that did not lead to decodable subframes.
    resyncs: u64,
    /// TBs decoded (data + filler) and CRC failures of the cores dropped at a resync: the
    /// status counts them over the modem's life, not only since the last cell search.
    retired_decodes: (u64, u64),
    /// `ModemCore::air_use` of the cores dropped at a resync or role change.
    retired_air: (u64, u64),
    /// The carrier the radio is tuned to on start (None: left as initialised).
    carrier: Option<Carrier>,
    /// Auto mode (Control `workmode` 3): the Control's workmode is the elected one while
    /// running; `current_control` reports 3 and the elected master.
    auto_mode: bool,
    /// What the election starts from at the first RX block (its clock is radio time):
    /// `None` a fresh election, `Some(m)` a migrated terminal that had elected `m`.
    auto_plan: Option<Option<NodeId>>,
    auto: Option<Auto>,
    /// Milliseconds from process start to the last role change.
    auto_ms: Option<f64>,
    probe: Option<Probe>,
}

fn json<T: serde::Serialize>(v: &T) -> Option<Value> {
    serde_json::to_value(v).ok()
}

impl Modem {
    /// `make`: open the radio link, TUN, sockets. Nothing streams until `start`.
    pub fn new(opts: ModemOptions) -> Result<Modem, ModemError> {
        let started = Instant::now();
        // Checked before touching the radio: a bad EARFCN is an operator error.
        let carrier = carrier_for(&opts.control)?;
        let link = match &opts.radio {
            RadioSpec::Link {
                control,
                radio,
                bind,
                auth,
            } => {
                let mut cfg = ferry_radio::RadioLinkConfig::new(control.clone(), radio.clone())
                    .with_auth(auth.clone());
                cfg.bind = *bind;
                cfg.samples_per_packet =
                    ferry_fronthaul::vrt::samples_per_packet_for_mtu(opts.fronthaul_mtu);
                RadioLink::create(&cfg)?
            }
            RadioSpec::Legacy {
                bind,
                radio,
                number,
                sample_rate,
            } => RadioLink::create_legacy(*bind, *radio, *number, *sample_rate)?,
        };
        let node = NodeId(opts.node.unwrap_or(opts.tun_addr.octets()[3]));
        let plan = AddressPlan::default();
        let tun = match &opts.tun {
            Some(name) => {
                let cidr = ferry_netif::Ipv4Cidr::new(opts.tun_addr, opts.tun_prefix)?;
                let t = ferry_netif::Tun::create(name, cidr, opts.mtu)?;
                t.set_nonblocking(true)?;
                Some(t)
            }
            None => None,
        };
        let listener = match &opts.control_socket {
            Some(p) => {
                let _ = std::fs::remove_file(p);
                let l = UnixListener::bind(p)?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let fwd_sock = match opts.forward_bind {
            Some(a) => {
                let s = UdpSocket::bind(a)?;
                s.set_nonblocking(true)?;
                Some(s)
            }
            None => None,
        };
        let (role, _) = roles(&opts.control);
        let rate_hz = link.info().sample_rate_hz;
        let horizon = RxHorizon::new(HorizonConfig::for_rate(u64::from(rate_hz)));
        Ok(Modem {
            control: opts.control.clone(),
            routes: opts.routes.clone(),
            role,
            state: ModemState::Idle,
            node,
            plan,
            link,
            tun,
            listener,
            conns: Vec::new(),
            control_turn: 0,
            fwd_sock,
            fwd_out: None,
            fwd_seq: 0,
            fwd_receiver: None,
            fwd_close_at: None,
            core: None,
            asm: None,
            asm_second: None,
            search: None,
            cold: true,
            cut: None,
            release: None,
            clock: RadioClock::new(f64::from(rate_hz), ClockConfig::default()),
            held: Vec::new(),
            copies: VecDeque::new(),
            tx_sent_through: None,
            next_tx: None,
            routes_pending: false,
            last_rx: None,
            counters: ModemCounters::default(),
            started,
            first_delivery_ms: None,
            sync_ms: None,
            quit: false,
            txbufs: vec![Vec::new()],
            rx_pending: VecDeque::new(),
            rx_pending_second: VecDeque::new(),
            last_ok: None,
            horizon,
            last_subframe_at: None,
            last_decode_at: None,
            candidate: None,
            resyncs: 0,
            retired_decodes: (0, 0),
            retired_air: (0, 0),
            carrier,
            auto_mode: false,
            auto_plan: None,
            auto: None,
            auto_ms: None,
            probe: None,
            opts,
        })
    }

    fn ms_since_start(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// Run until `quit` or the configured duration.
    pub fn run(&mut self) -> Result<(), ModemError> {
        if let Some(prio) = self.opts.realtime {
            set_realtime(prio);
        }
        if let Some(flag) = self.opts.start {
            self.start(flag, self.opts.shadow)
                .map_err(ModemError::Start)?;
        }
        let mut last_poll = Instant::now();
        while !self.quit {
            if let Some(d) = self.opts.duration {
                if self.started.elapsed() >= d {
                    break;
                }
            }
            if last_poll.elapsed() >= Duration::from_millis(2) || self.state == ModemState::Idle {
                // A request arrives on a fresh connection (the agent connects per request):
                // the poll that accepts it reads existing connections first, so poll once
                // more right away to read and answer it now instead of a poll period later.
                if self.poll_control() > 0 {
                    self.poll_control();
                }
                self.poll_forward();
                last_poll = Instant::now();
            }
            if self.state == ModemState::Idle {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            self.poll_tun();
            match self.link.recv(Duration::from_millis(3)) {
                Ok(b) => {
                    let len = b.samples.len() as u64;
                    match self.horizon.check(b.time, len, self.started.elapsed()) {
                        Verdict::Accept => {
                            self.counters.rx_gaps = self.link.stats.rx_gap_samples;
                            let end = b.time + len;
                            // Only blocks continuing the stream feed the clock: a forged
                            // block inside the horizon would have to land exactly on the
                            // next sample to move it.
                            if self.last_rx.is_none_or(|n| n == b.time) {
                                self.clock
                                    .observe(self.started.elapsed().as_secs_f64(), end);
                            }
                            self.last_rx = Some(end);
                            // Notices first: one that arrived with this block may change
                            // what its subframes are (delivered, held, dropped).
                            self.take_notices();
                            self.on_rx_block(b.time, &b.samples, b.other_channels.first());
                            if let Some(c) = self.cut.as_mut() {
                                c.on_rx(end);
                            }
                        }
                        verdict => {
                            self.counters.rx_dropped_horizon += 1;
                            tracing::debug!(
                                t = b.time,
                                len,
                                ?verdict,
                                "RX block outside the radio-clock horizon: dropped"
                            );
                        }
                    }
                }
                Err(RadioError::RxTimeout(_)) => {}
                Err(e) => tracing::warn!("radio receive: {e}"),
            }
            self.take_notices();
            if let (Some(now), Some(c)) = (self.radio_now(), self.cut.as_mut()) {
                c.on_tick(now);
            }
            self.apply_cutover();
        }
        Ok(())
    }

    /// Estimated current radio sample time: host time mapped through the tracked offset
    /// and rate of the radio clock (windowed minimum of the RX lag with a rate fit,
    /// [`RadioClock`]): a radio whose oscillator is off by tens of ppm stays tracked for
    /// hours, a block that arrives late after a stall does not move it, and only blocks
    /// that passed the [`RxHorizon`] and continue the stream feed it.
    fn radio_now(&self) -> Option<u64> {
        self.clock.radio_now(self.started.elapsed().as_secs_f64())
    }

    /// Takes the radio's authentic in-band switch notices into the cutover machine.
    fn take_notices(&mut self) {
        self.counters.notices = self.link.stats.notices;
        self.counters.bad_notices = self.link.stats.bad_notices;
        while let Some(n) = self.link.notices.pop_front() {
            let me = n.primary == Some(self.link.endpoint());
            let from_subframe = self
                .core
                .as_ref()
                .and_then(|c| c.subframe_of(n.from_sample))
                .unwrap_or(0);
            let kind = match n.kind {
                ferry_fronthaul::notice::NoticeKind::Link => NoticeKind::Link,
                ferry_fronthaul::notice::NoticeKind::Planned => NoticeKind::Planned,
                ferry_fronthaul::notice::NoticeKind::Fallback => NoticeKind::Fallback,
                ferry_fronthaul::notice::NoticeKind::Failover => NoticeKind::Failover,
            };
            let core = self.core.as_ref();
            let previous_heard_subframe = n
                .previous_heard_tx
                .and_then(|t| core.and_then(|c| c.subframe_of(t)));
            // The first subframe wholly after the tail (a slave's grid need not be the
            // radio's).
            let tail_until_subframe = n
                .tail_until
                .and_then(|t| core.and_then(|c| c.subframe_of(t.saturating_sub(1))))
                .map(|k| k + 1);
            let Some(c) = self.cut.as_mut() else {
                continue;
            };
            if n.epoch > c.epoch() {
                tracing::info!(
                    epoch = n.epoch,
                    me,
                    from_sample = n.from_sample,
                    ?kind,
                    primary = ?n.primary,
                    previous_heard_subframe,
                    tail_until_subframe,
                    "switch notice"
                );
            }
            c.on_notice(Notice {
                epoch: n.epoch,
                me,
                from_sample: n.from_sample,
                from_subframe,
                kind,
                previous_heard_subframe,
                tail_until_subframe,
            });
        }
        self.apply_cutover();
    }

    fn set_windows(&mut self, w: Window) {
        if let Some(c) = self.core.as_mut() {
            c.mac_mut().set_rx_window(w);
            c.mac_mut().set_tx_window(w);
        }
    }

    /// Executes what the cutover machine decided.
    fn apply_cutover(&mut self) {
        const NEVER: Window = Window {
            from: Some(u64::MAX),
            until: None,
        };
        while let Some(a) = self.cut.as_mut().and_then(Cutover::poll_action) {
            match a {
                CutoverAction::DeliverHeld => {
                    self.state = ModemState::Active;
                    self.fwd_close_at = Some(Instant::now() + FORWARD_GRACE);
                    let held = std::mem::take(&mut self.held);
                    tracing::info!(held = held.len(), "took over: the radio confirmed");
                    for (_, p) in held {
                        self.deliver(&p);
                    }
                }
                CutoverAction::DropHeld => {
                    // The radio gave the subframes from T to someone else (or the takeover
                    // was cancelled): what was decoded was theirs to deliver.
                    self.counters.drop_held += self.held.len() as u64;
                    self.held.clear();
                    self.set_windows(NEVER);
                    if self.fwd_close_at.is_none() {
                        self.fwd_close_at = Some(Instant::now() + FORWARD_GRACE);
                    }
                    if self.core.is_some() {
                        self.state = ModemState::Shadow;
                    }
                    tracing::warn!("takeover cancelled or not confirmed by the radio: shadow");
                }
                CutoverAction::CopyQueue { .. } => self.forward_early_copy(),
                CutoverAction::ForwardRest { to } => self.finish_release(to),
                CutoverAction::Serve {
                    from_subframe,
                    tx_from_subframe,
                    replay,
                } => {
                    if let Some(c) = self.core.as_mut() {
                        c.mac_mut().set_rx_window(Window {
                            from: Some(from_subframe),
                            until: None,
                        });
                        c.mac_mut().set_tx_window(Window {
                            from: Some(tx_from_subframe),
                            until: None,
                        });
                    }
                    self.state = ModemState::Active;
                    self.release = None;
                    // What the dead primary decoded and never delivered: this modem's
                    // copies of those subframes, in order.
                    let copies = std::mem::take(&mut self.copies);
                    let mut replayed = 0u64;
                    if let Some((a, b)) = replay {
                        for (_, p) in copies.iter().filter(|(k, _)| (a..b).contains(k)) {
                            self.deliver(p);
                            replayed += 1;
                        }
                    }
                    self.counters.replayed += replayed;
                    tracing::warn!(
                        from_subframe,
                        tx_from_subframe,
                        ?replay,
                        replayed,
                        epoch = self.cut.as_ref().map_or(0, Cutover::epoch),
                        "the radio made this modem primary (fallback or failover): serving"
                    );
                }
                CutoverAction::StepDown { epoch } => {
                    self.set_windows(NEVER);
                    self.state = ModemState::Fenced;
                    tracing::warn!(
                        epoch,
                        "a newer epoch names another host: stepped down (fenced)"
                    );
                }
                CutoverAction::Retired => {
                    tracing::info!("fallback grace over: this released modem is retired");
                }
            }
        }
        if let Some(c) = self.cut.as_ref() {
            let k = c.counters;
            self.counters.step_downs = k.step_downs;
            self.counters.unconfirmed_cutovers = k.unconfirmed_takeovers + k.unconfirmed_releases;
            self.counters.unplanned_takeovers = k.takeovers_unplanned;
            // A release the radio never made: the source serves on (the machine is back
            // to serving; the shell's windows follow).
            if self.release.is_some()
                && matches!(c.duty(), Duty::Serving { .. })
                && self.state != ModemState::Released
            {
                self.release = None;
                self.set_windows(Window::ALWAYS);
                tracing::warn!("release not confirmed by the radio: serving on");
            }
        }
    }

    fn start(&mut self, flag: u8, shadow: bool) -> Result<(), String> {
        if self.state != ModemState::Idle {
            return Err(format!("already started (state {:?})", self.state).to_lowercase());
        }
        let mut warm = flag == 1;
        self.cold = !warm;
        let sps = self.control.bandwidth.sample_rate_hz() as u64 / 1000;
        let rate = u64::from(self.link.info().sample_rate_hz);
        if rate != sps * 1000 {
            return Err(format!(
                "Control BW needs {} samples/s but the radio runs at {rate}",
                sps * 1000
            ));
        }
        if self.control.workmode == ferry_migrate::control::WorkMode::Auto {
            // A terminal with no role to resume listens: a cold search.
            warm = self.start_auto(warm)?;
            self.cold = !warm;
        }
        // Validate the waveform now so a bad Control is an error, not a dead loop.
        crate::phylink::PhyLink::new(&self.control).map_err(|e| e.to_string())?;
        let antennas = self.control.antennas_tx.max(self.control.antennas_rx);
        if antennas > self.link.channels() {
            return Err(format!(
                "numAntennaTX/RX = {}/{} needs a radio with {antennas} channels, but radio {} \
                 streams {} (give it \"channels\": 2 and a two-channel model in the air's \
                 configuration)",
                self.control.antennas_tx,
                self.control.antennas_rx,
                self.link.info().radio,
                self.link.channels()
            ));
        }
        let frame = 10 * sps;
        let (offset, cfo) = match (self.role, warm) {
            (Role::Master | Role::BaseStation, _) => (0, 0.0),
            (Role::Slave, true) => match &self.control.warm {
                Some(w) => (w.frame_start_sample % frame, w.cfo_hz),
                None => {
                    return Err(
                        "warm start of a slave needs the Control's frame_start_sample, \
                                SFN, sample_rate and CFO_Hz (or start cold)"
                            .into(),
                    )
                }
            },
            (Role::Slave, false) => (0, 0.0),
        };
        let needs_search = self.role == Role::Slave && !warm;
        let rate = u64::from(self.link.info().sample_rate_hz);
        self.cut = Some(Cutover::new(
            CutoverConfig {
                // The radio's notice comes with the RX of T; half a second without it means
                // the radio did not make the switch.
                confirm_timeout: rate / 2,
                hot_standby: shadow && self.opts.hot_standby,
                tx_lead: self.opts.tx_lead.max(1),
                replay_margin: REPLAY_MARGIN,
            },
            !shadow,
        ));
        if shadow {
            if self.link.control().is_none() {
                return Err(
                    "shadow needs a linked radio (legacy radios stream to one host)".into(),
                );
            }
            self.link.shadow().map_err(|e| e.to_string())?;
        } else if self.link.control().is_some() {
            self.link.link().map_err(|e| e.to_string())?;
        }
        // The linked host tunes the radio (a shadow may not: it hears whatever the host it
        // will replace tuned, which runs the same Control and carrier).
        if let (Some(c), false) = (self.carrier, shadow) {
            let t = c.tuning(self.role);
            self.link
                .tune(t.tx_hz, t.rx_hz, Duration::from_secs(1))
                .map_err(|e| e.to_string())?;
            tracing::info!(
                band = c.band,
                earfcn = c.earfcn,
                tx_hz = t.tx_hz,
                rx_hz = t.rx_hz,
                "radio tuned"
            );
        }
        if needs_search {
            let s = CellSearcher::new(
                crate::phylink::subframe_config(&self.control)
                    .map_err(|e| e.to_string())?
                    .bandwidth,
                self.search_kind(),
                self.opts.search_half_frames,
            )
            .map_err(|e| e.to_string())?;
            self.search = Some((s, Vec::new(), None));
            self.state = ModemState::Searching;
        } else {
            self.sync(offset, cfo, shadow).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Auto mode at `start`: a migrated terminal (warm, with `elected_master`) takes the
    /// role it had; otherwise it listens (cold search) until the election decides. The
    /// Control's workmode becomes the role the core is built for.
    /// Returns whether the start is still warm.
    fn start_auto(&mut self, warm: bool) -> Result<bool, String> {
        use ferry_migrate::control::{Duplex, WorkMode};
        if self.control.duplex != Duplex::Tdd {
            return Err("workmode 3 (auto) needs TDD (duplexMode 0): master and slaves share                  one carrier, so a master can hear another master"
                .into());
        }
        self.auto_mode = true;
        let resumed = match (warm, self.control.elected_master, &self.control.warm) {
            (true, Some(m), Some(_)) => Some(NodeId(m)),
            (true, Some(m), None) if m == self.node.0 => Some(NodeId(m)),
            _ => None,
        };
        self.auto_plan = Some(resumed);
        match resumed {
            Some(m) if m == self.node => {
                self.control.workmode = WorkMode::Master;
                self.set_pci(crate::elect::pci_of(self.node));
                self.role = Role::Master;
            }
            Some(_) => {
                self.control.workmode = WorkMode::Slave;
                self.role = Role::Slave;
            }
            None => {
                // Listening: search cold whatever the start flag said.
                self.control.workmode = WorkMode::Slave;
                self.role = Role::Slave;
            }
        }
        tracing::info!(resumed = ?resumed.map(|m| m.0), "auto mode: master election");
        Ok(resumed.is_some())
    }

    fn set_pci(&mut self, pci: u16) {
        self.control.phy_cell_id = pci;
        self.control.group_id = (pci / 3) as u8;
        self.control.cell_id = (pci % 3) as u8;
    }

    /// Auto mode, once per accepted RX block ending at radio sample `end`: starts the
    /// election on the first block, runs its timeouts and a master's probe, and acts on
    /// what it decides. Only a modem that serves acts (a shadow or a released source
    /// follows the Control it was given).
    fn elect_on_block(&mut self, t: u64, samples: &[Complex32]) {
        let sps = (u64::from(self.link.info().sample_rate_hz) / 1000).max(1);
        let end = t + samples.len() as u64;
        let now = end / sps;
        if self.auto.is_none() {
            let Some(plan) = self.auto_plan else {
                return;
            };
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let cfg = ElectionConfig::default();
            self.auto = Some(match plan {
                Some(m) => Auto::resume(self.node, m, cfg, seed, now, 10 * sps),
                None => Auto::new(self.node, cfg, seed, now, 10 * sps),
            });
        }
        if !matches!(
            self.state,
            ModemState::Searching | ModemState::Discovering | ModemState::Active
        ) {
            return;
        }
        let change = self.auto.as_mut().and_then(|a| a.on_tick(now));
        if let Some(c) = change {
            self.apply_role(c, None);
            return;
        }
        self.probe_block(t, samples, now);
    }

    /// A master's probe: one search window every `PROBE_PERIOD` subframes.
    fn probe_block(&mut self, t: u64, samples: &[Complex32], now: u64) {
        let Some(auto) = self.auto.as_ref() else {
            return;
        };
        if auto.role() != ElectedRole::Master {
            self.probe = None;
            return;
        }
        if self.probe.is_none() {
            match CellSearcher::new(
                ferry_phy::Bandwidth::from_rb_count(usize::from(self.control.rb_count))
                    .unwrap_or(ferry_phy::Bandwidth::Mhz1_4),
                DuplexKind::Tdd,
                self.opts.search_half_frames,
            ) {
                Ok(searcher) => {
                    self.probe = Some(Probe {
                        searcher,
                        buf: Vec::new(),
                        t0: None,
                        active: false,
                    })
                }
                Err(e) => {
                    tracing::warn!("probe search: {e}");
                    return;
                }
            }
        }
        let due = auto.probe_due(now);
        let Some(p) = self.probe.as_mut() else {
            return;
        };
        if !p.active {
            if !due {
                return;
            }
            p.active = true;
            p.buf.clear();
            p.t0 = Some(t);
        }
        let start = p.t0.unwrap_or(t);
        if t != start + p.buf.len() as u64 {
            p.buf.clear();
            p.t0 = Some(t);
        }
        p.buf.extend_from_slice(samples);
        if p.buf.len() < p.searcher.required_samples() {
            return;
        }
        let found = p.searcher.search(&p.buf);
        let base = p.t0.unwrap_or(t);
        p.active = false;
        p.buf.clear();
        p.t0 = None;
        let frame = 10 * self.core.as_ref().map_or(1920, ModemCore::sps);
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("probe search: {e}");
                None
            }
        };
        let hit = found.as_ref().map(|r| Hit {
            pci: r.cell.pci(),
            offset: (base + r.frame_start as u64) % frame,
        });
        if let Some(h) = hit {
            tracing::info!(
                pci = h.pci,
                offset = h.offset,
                "probe: another master heard"
            );
        }
        let change = self.auto.as_mut().and_then(|a| a.on_probe(hit, now));
        if let (Some(c), Some(h), Some(r)) = (change, hit, found) {
            self.apply_role(c, Some((h, r.cfo_hz)));
        }
    }

    /// Act on the election: rebuild the core for the new role (or stop and search).
    fn apply_role(&mut self, change: RoleChange, heard: Option<(Hit, f64)>) {
        use ferry_migrate::control::WorkMode;
        self.auto_ms = Some(self.ms_since_start());
        let st = self.auto.as_ref().map(|a| a.status(None));
        tracing::warn!(?change, election = ?st, "election: role change");
        eprintln!(
            "FERRY_MODEM election {change:?} at_ms={:.1}",
            self.auto_ms.unwrap_or(0.0)
        );
        self.retire_air();
        self.core = None;
        self.asm = None;
        self.asm_second = None;
        self.rx_pending_second.clear();
        self.last_ok = None;
        self.last_decode_at = None;
        self.next_tx = None;
        self.rx_pending.clear();
        self.search = None;
        self.candidate = None;
        self.probe = None;
        self.cold = true;
        let result = match (change, heard) {
            (RoleChange::BecomeMaster, _) => {
                self.control.workmode = WorkMode::Master;
                self.role = Role::Master;
                self.set_pci(crate::elect::pci_of(self.node));
                self.sync(0, 0.0, false)
            }
            (RoleChange::BecomeSlave { .. }, Some((h, cfo))) => {
                self.control.workmode = WorkMode::Slave;
                self.role = Role::Slave;
                self.set_pci(h.pci);
                self.sync(h.offset, cfo, false)
            }
            (RoleChange::BecomeSlave { .. } | RoleChange::Listen, _) => {
                self.control.workmode = WorkMode::Slave;
                self.role = Role::Slave;
                self.start_search();
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!("cannot take the elected role: {e}; listening");
            self.control.workmode = WorkMode::Slave;
            self.role = Role::Slave;
            self.start_search();
        }
    }

    fn start_search(&mut self) {
        match CellSearcher::new(
            ferry_phy::Bandwidth::from_rb_count(usize::from(self.control.rb_count))
                .unwrap_or(ferry_phy::Bandwidth::Mhz1_4),
            self.search_kind(),
            self.opts.search_half_frames,
        ) {
            Ok(s) => {
                self.search = Some((s, Vec::new(), None));
                self.state = ModemState::Searching;
            }
            Err(e) => tracing::warn!("cell search: {e}"),
        }
    }

    fn sync(&mut self, offset: u64, cfo: f64, shadow: bool) -> Result<(), ModemError> {
        if self.role == Role::Slave && self.opts.tx_lead + 1 >= self.opts.grant_delay {
            tracing::warn!(
                lead = self.opts.tx_lead,
                k = self.opts.grant_delay,
                "tx lead reaches the grant delay: grants from a base station arrive too late to use"
            );
        }
        let mut core = ModemCore::with_grant_delay(
            &self.control,
            self.node,
            self.plan.clone(),
            offset,
            cfo,
            Some(self.opts.discovery_period),
            Some(self.opts.grant_delay),
        )?;
        if self.control.harq {
            // A fresh generation for every core: a restarted modem or a migration's
            // destination must not be taken for its predecessor by the peers' HARQ.
            let gen = rand::random_range(1..=u8::MAX);
            core.enable_harq(HarqConfig::for_tx_lead(self.opts.tx_lead), gen)
                .map_err(crate::core::CoreError::from)?;
            tracing::info!(generation = gen, "HARQ on");
        }
        // Installed at the first subframe the core sees: the MAC ages routes by subframe
        // number, and a warm master's numbers are radio time (thousands of subframes), so
        // routes dated 0 would expire at once and the far end would be unreachable until its
        // next discovery beacon (up to a period of lost traffic after a migration).
        self.routes_pending = self.routes.is_some();
        self.asm = Some(SubframeAssembler::new(core.sps(), offset));
        self.asm_second =
            (core.phy().rx_antennas() > 1).then(|| SubframeAssembler::new(core.sps(), offset));
        self.rx_pending_second.clear();
        self.txbufs = vec![Vec::new(); core.phy().tx_antennas()];
        if shadow {
            let never = Window {
                from: Some(u64::MAX),
                until: None,
            };
            core.mac_mut().set_rx_window(never);
            core.mac_mut().set_tx_window(never);
        }
        self.core = Some(core);
        self.sync_ms = Some(self.ms_since_start());
        self.state = if shadow {
            ModemState::Shadow
        } else if self.cold {
            ModemState::Discovering
        } else {
            ModemState::Active
        };
        tracing::info!(
            offset,
            cfo,
            state = ?self.state,
            ms = self.sync_ms,
            "synchronised"
        );
        Ok(())
    }

    /// Feeds a received block (channel 0 and, from a two-channel radio, channel 1 over the
    /// same sample times) to the cell search or the subframe assemblers.
    fn on_rx_block(&mut self, t: u64, samples: &[Complex32], second: Option<&Vec<Complex32>>) {
        if self.auto_mode {
            self.elect_on_block(t, samples);
        }
        if self.state == ModemState::Searching {
            self.search_block(t, samples);
            return;
        }
        let (Some(_), Some(asm)) = (self.core.as_ref(), self.asm.as_mut()) else {
            return;
        };
        let pending = &mut self.rx_pending;
        asm.push(t, samples, |n, s| pending.push_back((n, s.to_vec())));
        self.counters.rx_gaps = asm.gap_samples;
        if let (Some(asm), Some(second)) = (self.asm_second.as_mut(), second) {
            let pending = &mut self.rx_pending_second;
            asm.push(t, second, |n, s| pending.push_back((n, s.to_vec())));
        }
        while let Some((n, mut s)) = self.rx_pending.pop_front() {
            if self.asm_second.is_none() {
                self.on_subframe(n, &mut [s.as_mut_slice()]);
                continue;
            }
            // Both antennas' assemblers see the same blocks, so they complete the same
            // subframes; an older one on antenna 1 is stale, a missing one is silence.
            while self.rx_pending_second.front().is_some_and(|(m, _)| *m < n) {
                self.rx_pending_second.pop_front();
            }
            let mut second = match self.rx_pending_second.front() {
                Some((m, _)) if *m == n => self.rx_pending_second.pop_front().map(|x| x.1),
                _ => None,
            }
            .unwrap_or_else(|| vec![Complex32::new(0.0, 0.0); s.len()]);
            self.on_subframe(n, &mut [s.as_mut_slice(), second.as_mut_slice()]);
        }
    }

    fn search_block(&mut self, t: u64, samples: &[Complex32]) {
        let Some((searcher, buf, t0)) = self.search.as_mut() else {
            return;
        };
        if t0.is_none() {
            *t0 = Some(t);
        }
        let start = t0.unwrap_or(t);
        if t != start + buf.len() as u64 {
            // A gap: start over so sample indices stay exact.
            buf.clear();
            *t0 = Some(t);
        }
        buf.extend_from_slice(samples);
        if buf.len() < searcher.required_samples() {
            return;
        }
        let found = searcher.search(buf);
        let base = t0.unwrap_or(t);
        let buf_len = buf.len() as u64;
        buf.clear();
        *t0 = None;
        match found {
            Ok(Some(r)) => {
                let sps = (self.link.info().sample_rate_hz / 1000) as u64;
                let frame = 10 * sps;
                let offset = (base + r.frame_start as u64) % frame;
                // Two searches in a row must agree (cell and frame timing within a few
                // samples): a single one can lock onto a master that is still starting.
                let agree = self.candidate.is_some_and(|(pci, off)| {
                    let d = offset.abs_diff(off);
                    pci == r.cell.pci() && d.min(frame - d) <= 4
                });
                if !agree {
                    tracing::debug!(pci = r.cell.pci(), offset, "cell candidate; confirming");
                    self.candidate = Some((r.cell.pci(), offset));
                    return;
                }
                self.candidate = None;
                let pci = r.cell.pci();
                if self.auto_mode {
                    let now = (base + buf_len) / sps;
                    match self.auto.as_mut().and_then(|a| a.on_cell_found(pci, now)) {
                        Some(RoleChange::BecomeSlave { .. }) => {
                            self.auto_ms = Some(self.ms_since_start());
                            eprintln!(
                                "FERRY_MODEM election BecomeSlave master={pci} at_ms={:.1}",
                                self.auto_ms.unwrap_or(0.0)
                            );
                        }
                        _ => {
                            tracing::info!(pci, "cell found is no elected master: ignored");
                            return;
                        }
                    }
                }
                // The cell found is the cell we join: take its identity and CP.
                self.control.phy_cell_id = pci;
                self.control.group_id = (pci / 3) as u8;
                self.control.cell_id = (pci % 3) as u8;
                self.control.cp_type = match r.cp {
                    ferry_phy::CyclicPrefix::Normal => ferry_migrate::control::CpType::Normal,
                    ferry_phy::CyclicPrefix::Extended => ferry_migrate::control::CpType::Extended,
                };
                tracing::info!(pci, offset, cfo = r.cfo_hz, pss = r.pss_ratio, "cell found");
                self.search = None;
                if let Err(e) = self.sync(offset, r.cfo_hz, false) {
                    tracing::warn!("cannot run on the cell found: {e}");
                    self.state = ModemState::Idle;
                }
            }
            Ok(_) => {
                self.candidate = None;
                tracing::debug!("cell search: nothing yet");
            }
            Err(e) => tracing::warn!("cell search: {e}"),
        }
    }

    fn on_subframe(&mut self, n: u64, s: &mut [&mut [Complex32]]) {
        if std::mem::take(&mut self.routes_pending) {
            self.install_routes(n);
        }
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let out = core.on_rx_antennas(n, s);
        let discovered = !core.mac().routes().is_empty();
        if out.decoded || self.last_ok.is_none() {
            self.last_ok = Some(n);
        }
        let now = Instant::now();
        self.last_subframe_at = Some(now);
        if out.decoded || self.last_decode_at.is_none() {
            self.last_decode_at = Some(now);
        }
        if self.auto_mode && out.decoded && self.role == Role::Slave {
            // Only the master sends in D and S subframes (slaves decode each other in U).
            let sf = (n % 10) as usize;
            if core.phy().kind(sf) != ferry_phy::SubframeKind::Uplink {
                let now = core.subframe_start(n) / core.sps();
                if let Some(a) = self.auto.as_mut() {
                    a.on_master_decoded(now);
                }
            }
        }
        // Auto mode: the election decides when the master is lost.
        if self.role == Role::Slave
            && !self.auto_mode
            && self.state != ModemState::Shadow
            && self.last_ok.is_some_and(|k| n > k + LOST_SYNC_SUBFRAMES)
        {
            self.lost_sync();
            return;
        }
        self.counters.subframes += 1;
        let fate = self.cut.as_ref().map_or(RxFate::Deliver, |c| c.rx_fate(n));
        // TX first, then what subframe n decoded: see `tx_sent_through`.
        self.transmit_ahead(n);
        let lead = self.opts.tx_lead.max(1);
        if !out.local.is_empty()
            && fate == RxFate::Deliver
            && self.tx_sent_through.is_none_or(|k| k < n + lead)
            && self.link.control().is_some()
        {
            // Nothing went out for n + lead (a late burst skipped it, or the subframe was
            // not this modem's): a heartbeat dated there tells the radio.
            if let Some(at) = self.core.as_ref().map(|c| c.subframe_start(n + lead)) {
                match self.link.heartbeat(at) {
                    Ok(()) => {
                        self.counters.heartbeats += 1;
                        self.tx_sent_through = Some(n + lead);
                    }
                    Err(e) => tracing::warn!("radio heartbeat: {e}"),
                }
            }
        }
        for p in out.local {
            match fate {
                RxFate::Deliver => self.deliver(&p),
                // Decoded after T before the radio confirmed the takeover.
                RxFate::Hold if self.held.len() < MAX_HELD => self.held.push((n, p)),
                RxFate::Hold | RxFate::Drop => self.counters.drop_held += 1,
            }
        }
        if fate == RxFate::Drop {
            // Someone else's subframe (the MAC's RX window kept it from `local`): kept a
            // while, for a fallback or failover to replay what a dead primary never
            // delivered.
            for p in out.copies {
                if self.copies.len() >= COPIES_KEPT {
                    self.copies.pop_front();
                }
                self.copies.push_back((n, p));
            }
        }
        while self
            .copies
            .front()
            .is_some_and(|(k, _)| k + COPIES_KEPT_SUBFRAMES < n)
        {
            self.copies.pop_front();
        }
        if self.state == ModemState::Discovering && discovered {
            self.state = ModemState::Active;
        }
    }

    /// Builds and sends the TX of the subframes up to `n + tx_lead` (RX subframe `n` was
    /// just processed).
    fn transmit_ahead(&mut self, n: u64) {
        // TX for the subframes up to n + lead.
        let lead = self.opts.tx_lead.max(1);
        // The first TX goes out two subframes ahead: n + 1 is already on the air.
        let first = self.next_tx.unwrap_or(n + 2);
        let mut m = first.max(n + 1);
        if first <= n {
            // Subframes whose TX was never built (RX stalled): the MAC clock skips them.
            self.counters.deadline_misses += n + 1 - first;
        }
        let now = self.radio_now();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        // After a stall (or the cell search) RX arrives in a burst: subframes whose air time
        // is over (by the radio-clock estimate, with one subframe of slack for its error) get
        // no TX at all, so no packet is packed into a TB the radio would drop.
        if let Some(on_air) = now.and_then(|t| core.subframe_of(t.saturating_sub(core.sps()))) {
            if m <= on_air {
                let skipped = on_air + 1 - m;
                self.counters.deadline_misses += skipped;
                tracing::debug!(n, m, on_air, skipped, "late: TX skipped");
                m = on_air + 1;
            }
        }
        // Heartbeats prove a primary (or a warm replica) alive to the radio in subframes it
        // has nothing to send; legacy radios know nothing of liveness.
        let heartbeats = self.link.control().is_some();
        while m <= n + lead {
            // Data: the subframe is ours to serve; filler: a warm replica's TX with the MAC's
            // window closed (a master's sync and reference signals, played only if the radio
            // hands it the task); silent: someone else's subframe.
            let mode = self.cut.as_ref().map_or(TxMode::Data, |c| c.tx_mode(m));
            if mode == TxMode::Silent {
                // Keep the MAC's clock running; its tx window keeps the queue intact.
                core.tick_silent(m);
                // Not ours (a released source after T): our last burst ends here.
                if let Err(e) = self.link.end_burst(core.subframe_start(m)) {
                    tracing::warn!("radio end of burst: {e}");
                }
            } else {
                let at = core.subframe_start(m);
                match core.on_tx_antennas(m, &mut self.txbufs) {
                    Ok(true) => {
                        // Built after its air time began: the radio drops (part of) it.
                        if now.is_some_and(|now| now >= at) {
                            self.counters.deadline_misses += 1;
                        }
                        let mut sent = false;
                        for (ch, buf) in self.txbufs.iter().enumerate() {
                            match self.link.send_channel(at, ch as u8, buf) {
                                Ok(_) => sent = true,
                                Err(e) => tracing::warn!("radio send: {e}"),
                            }
                        }
                        if sent {
                            self.tx_sent_through = Some(m);
                        }
                    }
                    Ok(false) if heartbeats => match self.link.heartbeat(at) {
                        Ok(()) => {
                            self.counters.heartbeats += 1;
                            self.tx_sent_through = Some(m);
                        }
                        Err(e) => tracing::warn!("radio heartbeat: {e}"),
                    },
                    Ok(false) => {
                        if let Err(e) = self.link.end_burst(at) {
                            tracing::warn!("radio end of burst: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("encode: {e}"),
                }
            }
            m += 1;
        }
        self.next_tx = Some(m);
    }

    /// Install the stored routes in the MAC, dated subframe `n`.
    fn install_routes(&mut self, n: u64) {
        let (Some(r), Some(core)) = (&self.routes, self.core.as_mut()) else {
            return;
        };
        let list: Vec<(NodeId, NodeId)> = r
            .routes()
            .iter()
            .filter_map(|r| {
                Some((
                    NodeId(u8::try_from(r.dest_id).ok()?),
                    NodeId(u8::try_from(r.nexthop).ok()?),
                ))
            })
            .collect();
        match core.mac_mut().set_routes(n, &list) {
            Ok(()) => tracing::info!(n, routes = list.len(), "routes installed"),
            Err(e) => tracing::warn!("routes refused by the MAC: {e}"),
        }
    }

    /// Back to cell search: the timing or cell we have decodes nothing.
    fn lost_sync(&mut self) {
        self.resyncs += 1;
        tracing::warn!(
            resyncs = self.resyncs,
            "no subframe decoded for {LOST_SYNC_SUBFRAMES} ms: searching again"
        );
        if let Some(core) = &self.core {
            let c = &core.counters;
            self.retired_decodes.0 += c.decode_ok + c.filler_ok;
            self.retired_decodes.1 += c.decode_fail;
        }
        self.retire_air();
        self.core = None;
        self.asm = None;
        self.asm_second = None;
        self.rx_pending_second.clear();
        self.last_ok = None;
        self.last_decode_at = None;
        self.next_tx = None;
        self.rx_pending.clear();
        match CellSearcher::new(
            ferry_phy::Bandwidth::from_rb_count(usize::from(self.control.rb_count))
                .unwrap_or(ferry_phy::Bandwidth::Mhz1_4),
            self.search_kind(),
            self.opts.search_half_frames,
        ) {
            Ok(s) => {
                self.search = Some((s, Vec::new(), None));
                self.state = ModemState::Searching;
            }
            Err(e) => tracing::warn!("cell search: {e}"),
        }
    }

    /// Where the searcher looks for PSS/SSS: FDD and TDD place them differently.
    fn search_kind(&self) -> DuplexKind {
        match self.control.duplex {
            ferry_migrate::control::Duplex::Fdd => DuplexKind::Fdd,
            ferry_migrate::control::Duplex::Tdd => DuplexKind::Tdd,
        }
    }

    /// The carrier the modem tuned its radio to (None: left as initialised).
    pub fn carrier(&self) -> Option<Carrier> {
        self.carrier
    }

    fn deliver(&mut self, p: &[u8]) {
        if self.first_delivery_ms.is_none() {
            let ms = self.ms_since_start();
            self.first_delivery_ms = Some(ms);
            tracing::info!(ms, "first packet delivered");
            eprintln!("FERRY_MODEM first_delivery_ms={ms:.1}");
        }
        match &self.tun {
            Some(t) => match t.send(p) {
                Ok(_) => self.counters.tun_out += 1,
                Err(_) => self.counters.drop_tun_write += 1,
            },
            None => self.counters.tun_out += 1,
        }
    }

    fn poll_tun(&mut self) {
        let Some(tun) = &self.tun else {
            return;
        };
        let mut buf = [0u8; 9216];
        let mut got: Vec<Vec<u8>> = Vec::new();
        for _ in 0..64 {
            match tun.recv(&mut buf) {
                Ok(n) if n > 0 => got.push(buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default()),
                _ => break,
            }
        }
        for p in got {
            self.counters.tun_in += 1;
            self.enqueue(&p);
        }
    }

    fn enqueue(&mut self, p: &[u8]) {
        if self.state == ModemState::Released {
            if let Some(r) = &self.release {
                let to = r.forward_to;
                self.forward(to, p);
                return;
            }
        }
        let Some(core) = self.core.as_mut() else {
            self.counters.drop_not_serving += 1;
            return;
        };
        match core.enqueue_ip(p) {
            Ok(_) => {}
            Err(ferry_mac::EnqueueError::QueueFull { .. }) => self.counters.drop_queue_full += 1,
            Err(ferry_mac::EnqueueError::NoRoute { .. }) => self.counters.drop_no_route += 1,
            Err(_) => self.counters.drop_refused += 1,
        }
    }

    fn forward(&mut self, to: SocketAddr, p: &[u8]) {
        if self.fwd_out.is_none() {
            let any: SocketAddr = if to.is_ipv4() {
                "0.0.0.0:0".parse().unwrap_or(to)
            } else {
                "[::]:0".parse().unwrap_or(to)
            };
            self.fwd_out = UdpSocket::bind(any).ok();
        }
        let Some(token) = self.release.as_ref().map(|r| &r.token) else {
            return;
        };
        let mut d = Vec::with_capacity(p.len() + forward::HEADER + forward::TAG);
        forward::encode(token, self.fwd_seq, p, &mut d);
        self.fwd_seq += 1;
        if let Some(s) = &self.fwd_out {
            if s.send_to(&d, to).is_ok() {
                self.counters.forward_out += 1;
            }
        }
    }

    fn poll_forward(&mut self) {
        if self.fwd_close_at.is_some_and(|t| Instant::now() >= t) {
            self.fwd_receiver = None;
            self.fwd_close_at = None;
        }
        let Some(sock) = &self.fwd_sock else {
            return;
        };
        let mut buf = [0u8; 9300];
        let mut got = Vec::new();
        for _ in 0..256 {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let allowed = self.opts.forward_allow.is_empty()
                        || self.opts.forward_allow.contains(&from.ip());
                    let d = buf.get(..n).unwrap_or(&[]);
                    // Deny by default: outside a migration there is no receiver at all.
                    let opened = match (allowed, self.fwd_receiver.as_mut()) {
                        (true, Some(rx)) => rx.open(d).map_err(|e| e.to_string()),
                        (false, _) => Err(format!("{from} not in --forward-allow")),
                        (true, None) => Err("no migration in progress".into()),
                    };
                    match opened {
                        Ok(ip) => got.push(ip.to_vec()),
                        Err(why) => {
                            self.counters.forward_rejected += 1;
                            tracing::debug!(%from, "forward datagram refused: {why}");
                        }
                    }
                }
                Err(_) => break,
            }
        }
        for p in got {
            self.counters.forward_in += 1;
            self.enqueue(&p);
        }
    }

    /// The radio confirmed the release (its notice names the destination from T): the MAC
    /// queue goes to the destination, less what the early copy already gave it.
    fn finish_release(&mut self, to: SocketAddr) {
        self.state = ModemState::Released;
        let queued = self
            .core
            .as_mut()
            .map(|c| c.mac_mut().drain_queue())
            .unwrap_or_default();
        let mut early = self
            .release
            .as_mut()
            .and_then(|r| r.early.take())
            .unwrap_or_default();
        let mut again = 0usize;
        for q in queued {
            match early.get_mut(&q.packet) {
                Some(k) if *k > 0 => *k -= 1,
                _ => {
                    again += 1;
                    self.forward(to, &q.packet);
                }
            }
        }
        tracing::info!(
            forwarded = again,
            "released: the radio confirmed the switch"
        );
    }

    /// RX has reached T and nothing from T on is transmitted here, so the queue is what the
    /// destination must send next if the radio switched. Hand it a copy now rather than after
    /// the 20 ms it takes to be sure of the switch: the destination then sends these older
    /// packets before the ones it receives itself after T (no reordering, a shorter gap).
    /// If the radio did not switch, the destination's TX never reaches the air (the radio
    /// drops a stranger's packets) and this side keeps the originals and serves them.
    fn forward_early_copy(&mut self) {
        let Some(to) = self.release.as_ref().map(|r| r.forward_to) else {
            return;
        };
        let copy = self
            .core
            .as_ref()
            .map(|c| c.mac().queued_packets())
            .unwrap_or_default();
        let mut sent: std::collections::HashMap<Vec<u8>, u32> = std::collections::HashMap::new();
        for q in copy {
            self.forward(to, &q.packet);
            *sent.entry(q.packet).or_default() += 1;
        }
        tracing::info!(
            copies = sent.values().sum::<u32>(),
            "RX reached T: queue copied to the destination"
        );
        if let Some(r) = self.release.as_mut() {
            r.early = Some(sent);
        }
    }

    /// Answer a request line from connection `i`: the reply goes into the connection's
    /// bounded output buffer; a client whose buffer is full is marked dead.
    fn answer_control(&mut self, i: usize, line: Line, dead: &mut [bool]) {
        let reply = match line {
            Line::Complete(text) if text.trim().is_empty() => return,
            Line::Complete(text) => match parse_request(&text) {
                Ok(req) => self.handle(req),
                Err(e) => ModemReply::refused(&e),
            },
            Line::TooLong(n) => {
                self.counters.control_refused += 1;
                if let Some(c) = self.conns.get_mut(i) {
                    c.closing = true;
                }
                ModemReply::err(
                    "?",
                    format!(
                        "request line longer than {} bytes (got {n} without a newline); closing the connection",
                        ctlsock::MAX_LINE
                    ),
                )
            }
        };
        let bytes = ctlsock::bounded_reply(&reply);
        if let Some(c) = self.conns.get_mut(i) {
            let already = dead.get(i).copied().unwrap_or(true);
            if c.out.queue(&bytes).is_err() && !already {
                self.counters.control_dropped += 1;
                if let Some(d) = dead.get_mut(i) {
                    *d = true;
                }
            }
        }
    }

    /// Serve the control socket without ever blocking: bounded reads, at most
    /// [`ctlsock::REQUESTS_PER_POLL`] requests in all, replies queued in a bounded
    /// per-connection buffer and written non-blocking (a client that does not read is
    /// dropped), and a connection cap that evicts the connection idle longest.
    /// Returns how many connections were accepted.
    fn poll_control(&mut self) -> usize {
        let now = Instant::now();
        let mut accepted = 0;
        // Existing connections first: a connection accepted in the last poll has its
        // request read before a flood of newer connections could evict it.
        let mut dead = vec![false; self.conns.len()];
        for (i, c) in self.conns.iter_mut().enumerate() {
            if c.closing {
                continue;
            }
            let mut tmp = [0u8; 4096];
            loop {
                let room = c.reader.room().min(tmp.len());
                if room == 0 {
                    break;
                }
                match c.stream.read(tmp.get_mut(..room).unwrap_or(&mut [])) {
                    Ok(0) => {
                        dead[i] = true;
                        break;
                    }
                    Ok(n) => {
                        c.reader.push(tmp.get(..n).unwrap_or(&[]));
                        c.last_active = now;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        dead[i] = true;
                        break;
                    }
                }
            }
        }
        // At most REQUESTS_PER_POLL requests and CONTROL_TIME_BUDGET of work in all (at
        // least one request), one per connection per round, starting with a different
        // connection each poll: a flooding client can take neither the agent's turn nor the
        // loop's time.
        let n = self.conns.len();
        let budget_start = Instant::now();
        let mut handled = 0;
        let mut progress = true;
        'rounds: while progress {
            progress = false;
            for k in 0..n {
                if handled >= ctlsock::REQUESTS_PER_POLL
                    || (handled > 0 && budget_start.elapsed() >= CONTROL_TIME_BUDGET)
                {
                    break 'rounds;
                }
                let i = (self.control_turn + k) % n;
                let Some(c) = self.conns.get_mut(i) else {
                    continue;
                };
                if c.closing || dead.get(i).copied().unwrap_or(true) {
                    continue;
                }
                let Some(line) = c.reader.next_line() else {
                    continue;
                };
                // Busy, not idle: a connection being served is not the one evicted.
                c.last_active = now;
                handled += 1;
                progress = true;
                self.answer_control(i, line, &mut dead);
            }
        }
        self.control_turn = self.control_turn.wrapping_add(1);
        for (i, c) in self.conns.iter_mut().enumerate() {
            while !c.out.is_empty() {
                match c.stream.write(c.out.front()) {
                    Ok(0) => {
                        dead[i] = true;
                        break;
                    }
                    Ok(n) => c.out.consume(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        dead[i] = true;
                        break;
                    }
                }
            }
            if c.closing && c.out.is_empty() {
                dead[i] = true;
            }
        }
        let mut k = 0;
        self.conns.retain(|_| {
            let keep = !dead.get(k).copied().unwrap_or(false);
            k += 1;
            keep
        });
        if let Some(l) = &self.listener {
            for _ in 0..ctlsock::ACCEPTS_PER_POLL {
                let Ok((s, _)) = l.accept() else {
                    break;
                };
                if s.set_nonblocking(true).is_err() {
                    continue;
                }
                let active: Vec<Instant> = self.conns.iter().map(|c| c.last_active).collect();
                if let Some(old) = ctlsock::evict_for_new(&active, ctlsock::MAX_CONNECTIONS) {
                    self.conns.remove(old);
                    self.counters.control_evicted += 1;
                }
                self.conns.push(ControlConn {
                    stream: s,
                    reader: LineReader::new(ctlsock::MAX_LINE),
                    out: OutBuffer::new(ctlsock::MAX_PENDING_OUT),
                    last_active: now,
                    closing: false,
                });
                accepted += 1;
            }
        }
        accepted
    }

    /// Synchronised and still working: subframes processed within the last
    /// [`SYNC_FRESH`] and, for a slave (which must hear its master), decoded within it.
    /// A modem whose RX stopped or jumped away, or that decodes nothing, says `false`.
    fn synced(&self) -> bool {
        let fresh = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() <= SYNC_FRESH);
        self.core.is_some()
            && fresh(self.last_subframe_at)
            && (self.role != Role::Slave || fresh(self.last_decode_at))
    }

    /// Keeps the air-use counters of a core about to be dropped.
    fn retire_air(&mut self) {
        if let Some((cap, used)) = self.core.as_ref().map(ModemCore::air_use) {
            self.retired_air.0 += cap;
            self.retired_air.1 += used;
        }
    }

    /// The `status` result.
    pub fn status(&self) -> ModemStatus {
        let mut c = self.counters.clone();
        let sps = (self.link.info().sample_rate_hz / 1000) as u64;
        (c.decode_ok, c.decode_fail) = self.retired_decodes;
        (c.air_capacity_bytes, c.air_payload_bytes) = self.retired_air;
        if let Some(core) = &self.core {
            let (cap, used) = core.air_use();
            c.air_capacity_bytes += cap;
            c.air_payload_bytes += used;
            let cc = &core.counters;
            c.decode_ok = self.retired_decodes.0 + cc.decode_ok + cc.filler_ok;
            c.decode_fail = self.retired_decodes.1 + cc.decode_fail;
            c.tx_blocks = cc.tx_blocks;
            c.relayed = cc.relayed;
            let mc = core.mac().counters();
            c.drop_reassembly = mc.reassembly.lost + mc.reassembly.timeouts;
            c.drop_queue_full = c.drop_queue_full.max(mc.queue_full_drops);
            c.queue_depth = core.mac().status().queue_len as u64;
        }
        c.rx_dropped_stranger = self.link.stats.strangers + self.link.stats.other_streams;
        let frame = 10 * sps.max(1);
        let (fs, sfn) = match (&self.core, self.last_rx) {
            (Some(core), Some(t)) => {
                let off = core.frame_offset();
                let k = t.saturating_sub(off) / frame;
                (Some(off + k * frame), Some((k % 1024) as u16))
            }
            _ => (None, None),
        };
        ModemStatus {
            role: self.role,
            state: self.state,
            synced: self.synced(),
            primary: self.cut.as_ref().is_some_and(Cutover::is_primary)
                && matches!(self.state, ModemState::Active | ModemState::Discovering),
            sample_time: self.last_rx.unwrap_or(0),
            sample_rate: u64::from(self.link.info().sample_rate_hz),
            frame_start_sample: fs,
            sfn,
            cfo_hz: self.core.as_ref().map_or(0.0, ModemCore::cfo_hz),
            snr_db: self
                .core
                .as_ref()
                .and_then(ModemCore::snr_db)
                .map(f64::from),
            cutover: match self.cut.as_ref().map(Cutover::duty) {
                Some(Duty::TakingOver { at_sample, .. }) => {
                    Some(CutoverArm::Takeover { at_sample })
                }
                Some(Duty::Releasing {
                    at_sample,
                    forward_to,
                    ..
                }) => Some(CutoverArm::Release {
                    at_sample,
                    forward_to,
                }),
                _ => None,
            },
            node_id: u16::from(self.node.0),
            tun_name: self.opts.tun.clone(),
            tun_addr: self
                .opts
                .tun
                .as_ref()
                .map(|_| format!("{}/{}", self.opts.tun_addr, self.opts.tun_prefix)),
            counters: c,
            epoch: self.cut.as_ref().map_or(0, Cutover::epoch),
            clock_ppm: self.clock.ppm(),
            harq: self.core.as_ref().and_then(ModemCore::harq_counters),
            election: self.auto.as_ref().map(|a| a.status(self.auto_ms)),
        }
    }

    /// The Control as it stands (with warm-start timing once synchronised).
    pub fn current_control(&self) -> Control {
        let mut c = self.control.clone();
        let st = self.status();
        if let (Some(core), Some(fs), Some(sfn)) = (&self.core, st.frame_start_sample, st.sfn) {
            c.warm = Some(WarmStart {
                frame_start_sample: fs,
                sfn,
                sample_rate: st.sample_rate,
                cfo_hz: core.cfo_hz().clamp(-15_000.0, 15_000.0),
            });
        }
        // The carrier in use, explicit, so a destination started from this Control tunes
        // to the same one even if this modem used the default.
        if let Some(k) = &self.carrier {
            c.earfcn = Some(k.earfcn);
        }
        // Auto mode: still auto, with the role it elected, so a migrated terminal resumes
        // it without an election.
        if self.auto_mode {
            c.workmode = ferry_migrate::control::WorkMode::Auto;
            c.elected_master = self.auto.as_ref().and_then(Auto::master).map(|m| m.0);
        }
        c
    }

    fn current_routes(&self) -> Result<RouteList, String> {
        match &self.core {
            Some(core) => RouteList::new(
                core.mac()
                    .routes()
                    .into_iter()
                    .map(|(d, n)| Route {
                        dest_id: u16::from(d.0),
                        nexthop: u16::from(n.0),
                    })
                    .collect(),
            )
            .map_err(|e| e.to_string()),
            None => Ok(self.routes.clone().unwrap_or_default()),
        }
    }

    fn subframe_boundary(&self, at: u64) -> Result<u64, String> {
        let Some(core) = &self.core else {
            return Err("not synchronised yet".into());
        };
        let sps = core.sps();
        let Some(d) = at.checked_sub(core.frame_offset()) else {
            return Err(format!("at_sample {at} is before the frame grid"));
        };
        if d % sps != 0 {
            return Err(format!(
                "at_sample {at} is not a subframe boundary (frame_start {} + k·{sps})",
                core.frame_offset()
            ));
        }
        if let Some(now) = self.radio_now() {
            if at <= now {
                return Err(format!(
                    "at_sample {at} is in the past (radio time ≈ {now})"
                ));
            }
        }
        Ok(d / sps)
    }

    /// Execute one control request.
    pub fn handle(&mut self, req: ModemRequest) -> ModemReply {
        let cmd = req.name();
        match req {
            ModemRequest::Status => ModemReply::ok(cmd, json(&self.status())),
            ModemRequest::GetControl => {
                ModemReply::ok(cmd, Some(self.current_control().to_value()))
            }
            ModemRequest::SetControl { control } => {
                if self.state != ModemState::Idle {
                    return ModemReply::err(cmd, "set_control only while idle (before start)");
                }
                if let Err(e) = crate::phylink::PhyLink::new(&control) {
                    return ModemReply::err(cmd, e.to_string());
                }
                // duplexMode may change: the carrier must still fit it.
                match carrier_for(&control) {
                    Ok(c) => self.carrier = c,
                    Err(e) => return ModemReply::err(cmd, format!("carrier: {e}")),
                }
                self.role = roles(&control).0;
                self.control = control;
                ModemReply::ok(cmd, None)
            }
            ModemRequest::GetRoutes => match self.current_routes() {
                Ok(r) => ModemReply::ok(cmd, Some(r.to_value())),
                Err(e) => ModemReply::err(cmd, e),
            },
            ModemRequest::SetRoutes { routes } => {
                let mut list = Vec::new();
                for r in routes.routes() {
                    match (u8::try_from(r.dest_id), u8::try_from(r.nexthop)) {
                        (Ok(d), Ok(n)) => list.push((NodeId(d), NodeId(n))),
                        _ => {
                            return ModemReply::err(
                                cmd,
                                format!(
                                    "route [{}, {}]: node ids are 0..=255",
                                    r.dest_id, r.nexthop
                                ),
                            )
                        }
                    }
                }
                match (self.core.as_mut(), self.next_tx) {
                    (Some(core), Some(n)) => {
                        if let Err(e) = core.mac_mut().set_routes(n, &list) {
                            return ModemReply::err(cmd, e.to_string());
                        }
                    }
                    // Synchronised but no subframe yet: validated now, re-dated by the
                    // first subframe.
                    (Some(core), None) => {
                        if let Err(e) = core.mac_mut().set_routes(0, &list) {
                            return ModemReply::err(cmd, e.to_string());
                        }
                        self.routes_pending = true;
                    }
                    (None, _) => {}
                }
                self.routes = Some(routes);
                ModemReply::ok(cmd, None)
            }
            ModemRequest::Start { control_flag } => match self.start(control_flag, false) {
                Ok(()) => ModemReply::ok(cmd, json(&self.status())),
                Err(e) => ModemReply::err(cmd, e),
            },
            ModemRequest::Shadow => {
                if self.state == ModemState::Idle {
                    return match self.start(1, true) {
                        Ok(()) => ModemReply::ok(cmd, json(&self.status())),
                        Err(e) => ModemReply::err(cmd, e),
                    };
                }
                ModemReply::err(
                    cmd,
                    format!("shadow needs state idle (now {:?})", self.state).to_lowercase(),
                )
            }
            ModemRequest::HotStandby => {
                if self.state != ModemState::Shadow {
                    return ModemReply::err(
                        cmd,
                        format!("hot_standby needs state shadow (now {:?})", self.state)
                            .to_lowercase(),
                    );
                }
                if !self.link.has_notice_key() {
                    return ModemReply::err(cmd, NEEDS_NOTICES);
                }
                match self.cut.as_mut() {
                    Some(c) if c.duty() == Duty::Standby => {
                        c.set_hot(true);
                        tracing::info!("hot standby: filler TX, serving on a failover notice");
                        ModemReply::ok(cmd, None)
                    }
                    _ => ModemReply::err(cmd, "hot_standby needs a standby (no cutover armed)"),
                }
            }
            ModemRequest::TakeoverAt {
                at_sample,
                forward_token,
            } => {
                if self.state != ModemState::Shadow {
                    return ModemReply::err(
                        cmd,
                        format!("takeover_at needs state shadow (now {:?})", self.state)
                            .to_lowercase(),
                    );
                }
                match self.subframe_boundary(at_sample) {
                    Ok(_) if !self.link.has_notice_key() => ModemReply::err(cmd, NEEDS_NOTICES),
                    Ok(at_n) => {
                        if let Err(e) = self
                            .cut
                            .as_mut()
                            .map_or(Ok(()), |c| c.arm_takeover(at_sample, at_n))
                        {
                            return ModemReply::err(cmd, e.to_string());
                        }
                        // The MAC delivers and sends from T on; the shell holds what it
                        // decodes from T until the radio's notice confirms this host.
                        self.set_windows(Window {
                            from: Some(at_n),
                            until: None,
                        });
                        // Only the source holding this migration's token may inject.
                        self.fwd_receiver = forward_token.map(ForwardReceiver::new);
                        self.fwd_close_at = None;
                        ModemReply::ok(cmd, None)
                    }
                    Err(e) => ModemReply::err(cmd, e),
                }
            }
            ModemRequest::ReleaseAt {
                at_sample,
                forward_to,
                forward_token,
            } => {
                let Some(token) = forward_token else {
                    return ModemReply::err(
                        cmd,
                        "release_at needs forward_token (the migration's forward-port key, 64 hex digits)",
                    );
                };
                if !matches!(self.state, ModemState::Active | ModemState::Discovering) {
                    return ModemReply::err(
                        cmd,
                        format!("release_at needs state active (now {:?})", self.state)
                            .to_lowercase(),
                    );
                }
                match self.subframe_boundary(at_sample) {
                    Ok(_) if !self.link.has_notice_key() => ModemReply::err(cmd, NEEDS_NOTICES),
                    // TX up to `next_tx` is built and sent, with the queue's packets in
                    // it: from T the radio plays the destination, so those past T would be
                    // lost. T must lie beyond what is built.
                    Ok(at_n) if self.next_tx.is_some_and(|nx| at_n < nx) => ModemReply::err(
                        cmd,
                        format!(
                            "release_at: T is subframe {at_n}, but TX up to subframe {} is \
                             already built (tx lead {}): its packets would be lost at T; arm \
                             with a larger margin",
                            self.next_tx.unwrap_or(0).saturating_sub(1),
                            self.opts.tx_lead
                        ),
                    ),
                    Ok(at_n) => {
                        let rate = u64::from(self.link.info().sample_rate_hz);
                        // The warm period ends a few subframes before the radio's grace
                        // (same length from T): filler built `tx_lead` ahead then never
                        // reaches a radio that no longer counts this host as a fallback.
                        let early = (self.opts.tx_lead + 2) * (rate / 1000);
                        let grace = ((self.opts.release_grace.as_micros() as u64)
                            .saturating_mul(rate)
                            / 1_000_000)
                            .saturating_sub(early);
                        if let Err(e) = self.cut.as_mut().map_or(Ok(()), |c| {
                            c.arm_release(at_sample, at_n, forward_to, grace)
                        }) {
                            return ModemReply::err(cmd, e.to_string());
                        }
                        self.set_windows(Window {
                            from: None,
                            until: Some(at_n),
                        });
                        self.release = Some(Release {
                            forward_to,
                            token,
                            early: None,
                        });
                        self.fwd_seq = 0;
                        ModemReply::ok(cmd, None)
                    }
                    Err(e) => ModemReply::err(cmd, e),
                }
            }
            ModemRequest::CancelCutover => {
                if self.state == ModemState::Released {
                    return ModemReply::err(cmd, "the release already happened");
                }
                let before = self.cut.as_ref().map(Cutover::duty);
                match self.cut.as_mut().map_or(Ok(()), Cutover::disarm) {
                    Err(CutoverError::AlreadyReleased(_)) => {
                        return ModemReply::err(cmd, "the release already happened");
                    }
                    Err(e) => return ModemReply::err(cmd, e.to_string()),
                    Ok(()) => {}
                }
                match before {
                    Some(Duty::Releasing { .. }) => {
                        self.release = None;
                        self.set_windows(Window::ALWAYS);
                    }
                    Some(Duty::TakingOver { .. }) => {
                        // Only the source holding this migration's token could inject.
                        self.fwd_receiver = None;
                    }
                    _ => {}
                }
                self.apply_cutover();
                ModemReply::ok(cmd, None)
            }
            ModemRequest::Quit => {
                self.quit = true;
                ModemReply::ok(cmd, None)
            }
        }
    }

    /// Milliseconds from process start to synchronisation and to the first delivered
    /// packet (cold vs warm start).
    pub fn start_figures(&self) -> (Option<f64>, Option<f64>) {
        (self.sync_ms, self.first_delivery_ms)
    }
}

/// Ask for SCHED_FIFO at `prio` (1..=99): a baseband task that must meet 1 ms deadlines on
/// a shared machine. Without the privilege it keeps the normal scheduler and says so.
fn set_realtime(prio: i32) {
    let param = libc::sched_param {
        sched_priority: prio.clamp(1, 99),
    };
    // SAFETY: plain syscall on the calling process with a valid, initialised parameter.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        tracing::info!(prio, "real-time scheduling (SCHED_FIFO)");
    } else {
        tracing::warn!(
            "SCHED_FIFO refused ({}): running with the normal scheduler; expect deadline misses under load",
            std::io::Error::last_os_error()
        );
    }
}
