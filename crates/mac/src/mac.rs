//! [`Mac`]: the per-node MAC the modem drives once per subframe — schedule, grants,
//! packing, reassembly, relay forwarding and route discovery behind four calls:
//! [`Mac::enqueue`], [`Mac::on_subframe`], [`Mac::on_received`], and the route get/set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::{ipv4_destination, AddressPlan, NodeId, Rnti};
use crate::error::{ConfigError, EnqueueError, HandoverError, RouteError};
use crate::pack::{QueueSnapshot, TbWriter, TxQueue, MAX_PDU};
use crate::reassembly::{Reassembler, ReassemblyLimits, ReassemblyStats};
use crate::route::{
    forward_decision, Discovery, DiscoveryConfig, DiscoveryStats, ForwardDecision, RouteTable,
};
use crate::schedule::{Direction, Schedule, UplinkScheduler};
use crate::wire::{
    Beacon, MacHeader, RelayHeader, SegmentHeader, SegmentKind, TbView, BEACON_ENTRY_LEN,
    BEACON_FIXED_LEN, INFINITY, RELAY_HEADER_LEN,
};

/// The node's role (Control field `workmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// D2D master: transmits in downlink subframes, one slave owns the uplink ones.
    Master,
    /// Slave: transmits in uplink subframes — all of them under a D2D master, only the
    /// granted ones once it hears a base station's grants.
    Slave,
    /// Base station: a master serving several slaves, granting uplink subframes round-robin
    /// over slaves with queued data.
    BaseStation,
}

impl Role {
    /// From the thesis' `workmode` (0 master, 1 slave, 2 base station).
    pub fn from_workmode(w: u8) -> Result<Role, ConfigError> {
        match w {
            0 => Ok(Role::Master),
            1 => Ok(Role::Slave),
            2 => Ok(Role::BaseStation),
            _ => Err(ConfigError::Invalid {
                field: "workmode",
                value: w.to_string(),
                allowed: "0 (master), 1 (slave), 2 (base station)",
            }),
        }
    }

    /// The direction this role transmits in.
    pub fn direction(self) -> Direction {
        match self {
            Role::Master | Role::BaseStation => Direction::Down,
            Role::Slave => Direction::Up,
        }
    }
}

/// Everything a [`Mac`] needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacConfig {
    /// This node.
    pub node: NodeId,
    /// Master, slave or base station.
    pub role: Role,
    /// TDD pattern or FDD, grant delay.
    pub schedule: Schedule,
    /// Base station: slaves to poll from the start (others are added when heard).
    pub slaves: Vec<NodeId>,
    /// Transmit queue depth in packets.
    pub queue_depth: usize,
    /// Largest IP packet accepted.
    pub max_packet: usize,
    /// TTL of packets originated here (hops they may travel).
    pub initial_ttl: u8,
    /// Base station: every n-th grant polls round-robin over all slaves.
    pub poll_every: u64,
    /// Base station: every n-th grant is a contention grant for slaves it does not know yet
    /// (0: only while it knows no slave).
    pub contention_every: u64,
    /// A TB-sequence jump beyond this is a transmitter restart, not lost TBs.
    pub max_tb_gap: u16,
    /// Slave: subframes without hearing any grant after which it stops waiting for grants
    /// and uses every uplink subframe again (its base station is gone).
    pub grant_silence: u64,
    /// Reassembly bounds.
    pub reassembly: ReassemblyLimits,
    /// Route discovery timing.
    pub discovery: DiscoveryConfig,
}

impl MacConfig {
    /// Defaults for a node: queue 256, packets up to 9000 bytes, TTL 8, poll every 4th
    /// grant, 1 s beacons.
    pub fn new(node: NodeId, role: Role, schedule: Schedule) -> Self {
        MacConfig {
            node,
            role,
            schedule,
            slaves: Vec::new(),
            queue_depth: 256,
            max_packet: 9000,
            initial_ttl: 8,
            poll_every: 4,
            contention_every: 16,
            max_tb_gap: 1000,
            grant_silence: 2000,
            reassembly: ReassemblyLimits::default(),
            discovery: DiscoveryConfig::default(),
        }
    }

    /// Reject configurations that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: String, allowed| {
            Err(ConfigError::Invalid {
                field,
                value,
                allowed,
            })
        };
        if self.queue_depth == 0 {
            return bad("queue_depth", "0".into(), ">= 1");
        }
        let max_pdu = self.reassembly.max_pdu.min(MAX_PDU);
        if self.max_packet == 0 || self.max_packet + RELAY_HEADER_LEN > max_pdu {
            return bad(
                "max_packet",
                self.max_packet.to_string(),
                "1 ..= reassembly.max_pdu - 4 (and <= 65531)",
            );
        }
        if self.initial_ttl == 0 || self.initial_ttl > INFINITY {
            return bad("initial_ttl", self.initial_ttl.to_string(), "1-16");
        }
        if self.reassembly.max_streams == 0 || self.reassembly.timeout == 0 {
            return bad(
                "reassembly",
                format!("{:?}", self.reassembly),
                "max_streams and timeout >= 1",
            );
        }
        self.schedule.validate()?;
        if self.slaves.contains(&self.node) {
            return bad("slaves", self.node.to_string(), "other nodes than this one");
        }
        self.discovery.validate()
    }
}

/// One transport block to transmit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBlock {
    /// Absolute subframe it belongs to.
    pub subframe: u64,
    /// Master→slaves or slave→master.
    pub direction: Direction,
    /// Carrier index (TDD: 0; FDD: 0 down, 1 up).
    pub carrier: u8,
    /// Link-layer receiver (or broadcast).
    pub dst: Rnti,
    /// Exactly the TB size asked for.
    pub bytes: Vec<u8>,
}

/// Why a received packet was not delivered or forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropReason {
    /// No route to the destination.
    NoRoute,
    /// TTL exhausted.
    Ttl,
    /// The transmit queue was full.
    QueueFull,
}

/// What happened to a data packet received from the air.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// For this node: write `packet` (an IP packet) to the tun.
    Local {
        /// Originating node.
        src: NodeId,
        /// The IP packet.
        packet: Vec<u8>,
    },
    /// Relayed: queued for the next hop.
    Forwarded {
        /// Originating node.
        src: NodeId,
        /// Final destination.
        dst: NodeId,
        /// Neighbour it was queued for.
        next_hop: NodeId,
        /// IP packet bytes.
        len: usize,
    },
    /// Dropped (also counted).
    Dropped {
        /// Originating node.
        src: NodeId,
        /// Final destination.
        dst: NodeId,
        /// Why.
        reason: DropReason,
    },
}

/// A half-open range of subframes `[from, until)`; `None` = unbounded. A make-before-break
/// cutover at subframe T gives the source `until = T` and the target `from = T`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First subframe inside.
    pub from: Option<u64>,
    /// First subframe after.
    pub until: Option<u64>,
}

impl Window {
    /// Every subframe.
    pub const ALWAYS: Window = Window {
        from: None,
        until: None,
    };

    /// Whether subframe `n` is inside.
    pub fn contains(&self, n: u64) -> bool {
        self.from.is_none_or(|f| n >= f) && self.until.is_none_or(|u| n < u)
    }
}

/// The transmit state a migration source hands to its target at the cutover so receivers
/// see one continuous transmitter: TB sequence number, packet-id counters, queued PDUs with
/// their progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxHandover {
    /// Next TB sequence number.
    pub tb_seq: u16,
    /// The transmit queue.
    pub queue: QueueSnapshot,
}

/// A queued packet taken out of the MAC (e.g. handed to a migration target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedPacket {
    /// Originating node.
    pub src: NodeId,
    /// Final destination.
    pub dst: NodeId,
    /// Remaining TTL.
    pub ttl: u8,
    /// The IP packet.
    pub packet: Vec<u8>,
}

fn queued_packet(pdu: &[u8]) -> Option<QueuedPacket> {
    let (h, ip) = RelayHeader::parse(pdu).ok()?;
    Some(QueuedPacket {
        src: h.src,
        dst: h.dst,
        ttl: h.ttl,
        packet: ip.to_vec(),
    })
}

/// Everything the MAC counts (cumulative since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacCounters {
    /// TBs transmitted.
    pub tx_tbs: u64,
    /// Of those, carrying a beacon.
    pub tx_beacon_tbs: u64,
    /// Of those, header only (a base station's grant with nothing else to say).
    pub tx_grant_only_tbs: u64,
    /// Segment payload bytes transmitted.
    pub tx_payload_bytes: u64,
    /// Padding bytes transmitted.
    pub tx_padding_bytes: u64,
    /// Opportunities skipped because the offered TB could not hold even the header.
    pub tb_too_small: u64,
    /// Packets accepted by [`Mac::enqueue`].
    pub enqueued: u64,
    /// Packets dropped because the queue was full (originated or relayed).
    pub queue_full_drops: u64,
    /// Packets dropped for lack of a route (originated or relayed).
    pub no_route_drops: u64,
    /// Packets refused as too large or empty.
    pub refused: u64,
    /// Relayed packets dropped because the TTL ran out.
    pub ttl_drops: u64,
    /// Packets relayed to a next hop.
    pub forwarded: u64,
    /// TBs handed to [`Mac::on_received`].
    pub rx_tbs: u64,
    /// Segment bytes (headers and payload, beacons included) of the TBs received from other
    /// nodes, whoever they were for; with `tx_payload_bytes`, what the link carried.
    #[serde(default)]
    pub rx_payload_bytes: u64,
    /// TBs or PDUs that failed to parse.
    pub rx_malformed: u64,
    /// TBs addressed to another node (headers still read for grants and loss counting).
    pub rx_not_for_me: u64,
    /// TBs with this node's own RNTI as source (echo) or a non-node source.
    pub rx_ignored: u64,
    /// TBs missing from a transmitter's sequence: lost on the air.
    pub rx_tb_lost: u64,
    /// TBs received twice.
    pub rx_duplicate_tbs: u64,
    /// Sequence jumps treated as a transmitter restart.
    pub rx_seq_resyncs: u64,
    /// Packets delivered locally.
    pub delivered: u64,
    /// IP bytes delivered locally.
    pub delivered_bytes: u64,
    /// Base station: grants issued.
    pub grants_issued: u64,
    /// Slave: uplink subframes granted to this node.
    pub grants_received: u64,
    /// Base station: of `grants_issued`, contention grants.
    pub contention_grants: u64,
    /// Slave: TBs sent in contention slots to announce itself.
    pub contention_tbs: u64,
    /// Data packets completed outside the receive window (shadow mode): neither delivered
    /// nor forwarded here, because the other side of a cutover handles them.
    pub shadow_suppressed: u64,
    /// Reassembly counters (`lost` = packets lost in flight).
    pub reassembly: ReassemblyStats,
    /// Discovery counters.
    pub discovery: DiscoveryStats,
}

/// A snapshot of the MAC's state for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacStatus {
    /// This node.
    pub node: NodeId,
    /// Its RNTI.
    pub rnti: Rnti,
    /// Its role.
    pub role: Role,
    /// Packets queued.
    pub queue_len: usize,
    /// Queue depth.
    pub queue_depth: usize,
    /// Usable routes (`route_list`).
    pub routes: Vec<(NodeId, NodeId)>,
    /// Neighbours heard recently, with the subframe last heard.
    pub neighbours: Vec<(NodeId, u64)>,
    /// Partial packets being reassembled.
    pub reassembly_in_progress: usize,
    /// Slave: following a base station's grants.
    pub following_grants: bool,
}

/// The MAC of one node.
#[derive(Debug, Clone)]
pub struct Mac {
    cfg: MacConfig,
    rnti: Rnti,
    queue: TxQueue,
    reasm: Reassembler,
    disc: Discovery,
    tb_seq: u16,
    rx_seq: BTreeMap<Rnti, u16>,
    uplink: UplinkScheduler,
    grants: BTreeMap<u64, UplinkGrant>,
    last_own_grant: Option<u64>,
    grant_master: Option<Rnti>,
    last_grant_heard: Option<u64>,
    tx_window: Window,
    rx_window: Window,
    /// IP packets for this node received outside the RX window (a warm replica's copies),
    /// until the caller takes them; at most [`MAX_SUPPRESSED`].
    suppressed: Vec<Vec<u8>>,
    counters: MacCounters,
}

/// Suppressed packets kept for the caller between two [`Mac::take_suppressed`].
const MAX_SUPPRESSED: usize = 256;

/// Granted uplink subframes remembered ahead (bounds memory against odd input).
const MAX_REMEMBERED_GRANTS: usize = 64;

/// How a slave may use an uplink subframe, as its base station's grant said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UplinkGrant {
    Mine,
    Other,
    Contention,
}

/// Deterministic per-node coin for contention slots (SplitMix64 of subframe and node): new
/// slaves that collided once pick different slots next time.
fn contention_coin(node: NodeId, n: u64) -> bool {
    let mut z = n ^ (u64::from(node.0) << 48) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 0
}

impl Mac {
    /// A MAC from a validated configuration.
    pub fn new(cfg: MacConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let slaves: Vec<Rnti> = cfg.slaves.iter().map(|&n| Rnti::of_node(n)).collect();
        Ok(Mac {
            rnti: Rnti::of_node(cfg.node),
            queue: TxQueue::new(cfg.queue_depth),
            reasm: Reassembler::new(cfg.reassembly),
            disc: Discovery::new(cfg.node, cfg.discovery)?,
            tb_seq: 0,
            rx_seq: BTreeMap::new(),
            uplink: UplinkScheduler::new(&slaves, cfg.poll_every, cfg.contention_every),
            grants: BTreeMap::new(),
            last_own_grant: None,
            grant_master: None,
            last_grant_heard: None,
            tx_window: Window::ALWAYS,
            rx_window: Window::ALWAYS,
            suppressed: Vec::new(),
            counters: MacCounters::default(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MacConfig {
        &self.cfg
    }

    /// This node's RNTI.
    pub fn rnti(&self) -> Rnti {
        self.rnti
    }

    /// Counters, including reassembly and discovery.
    pub fn counters(&self) -> MacCounters {
        MacCounters {
            reassembly: self.reasm.stats(),
            discovery: self.disc.stats(),
            ..self.counters
        }
    }

    /// A status snapshot.
    pub fn status(&self) -> MacStatus {
        MacStatus {
            node: self.cfg.node,
            rnti: self.rnti,
            role: self.cfg.role,
            queue_len: self.queue.len(),
            queue_depth: self.queue.depth(),
            routes: self.routes(),
            neighbours: self.disc.neighbours().collect(),
            reassembly_in_progress: self.reasm.in_progress(),
            following_grants: self.grant_master.is_some(),
        }
    }

    /// The route table.
    pub fn route_table(&self) -> &RouteTable {
        self.disc.table()
    }

    /// The usable routes as `route_list = [(destID, nexthop)]`.
    pub fn routes(&self) -> Vec<(NodeId, NodeId)> {
        self.disc.table().route_list()
    }

    /// Replace the routes with a (migrated) `route_list`, usable at once; `now` is the
    /// current subframe.
    /// A base station also learns its slaves from the next hops: a relay restarted on
    /// another server with the migrated routes grants the slaves at once, instead of
    /// waiting until they give up on the old base station's grants (`grant_silence` / 2)
    /// and announce themselves in contention slots.
    pub fn set_routes(&mut self, now: u64, list: &[(NodeId, NodeId)]) -> Result<(), RouteError> {
        self.disc.set_route_list(now, list)?;
        if self.cfg.role == Role::BaseStation {
            for &(_, hop) in list {
                if hop != self.cfg.node {
                    self.uplink.add_slave(Rnti::of_node(hop));
                }
            }
        }
        Ok(())
    }

    /// Queue an IP packet for node `dest`. Refusals are counted and returned.
    pub fn enqueue(&mut self, ip_packet: &[u8], dest: NodeId) -> Result<(), EnqueueError> {
        if ip_packet.is_empty() {
            self.counters.refused += 1;
            return Err(EnqueueError::Empty);
        }
        if ip_packet.len() > self.cfg.max_packet {
            self.counters.refused += 1;
            return Err(EnqueueError::TooLarge {
                len: ip_packet.len(),
                max: self.cfg.max_packet,
            });
        }
        if dest == self.cfg.node {
            self.counters.refused += 1;
            return Err(EnqueueError::ToSelf(dest.0));
        }
        let Some(next_hop) = self.disc.table().next_hop(dest) else {
            self.counters.no_route_drops += 1;
            return Err(EnqueueError::NoRoute(dest.0));
        };
        let h = RelayHeader {
            ttl: self.cfg.initial_ttl,
            src: self.cfg.node,
            dst: dest,
        };
        match self
            .queue
            .push(Rnti::of_node(next_hop), h.to_pdu(ip_packet))
        {
            Ok(()) => {
                self.counters.enqueued += 1;
                Ok(())
            }
            Err(_) => {
                self.counters.queue_full_drops += 1;
                Err(EnqueueError::QueueFull {
                    depth: self.queue.depth(),
                })
            }
        }
    }

    /// Queue an IPv4 packet read from the tun, addressed by `plan`; returns its destination
    /// node. Non-IPv4 packets and unknown addresses are refused (and counted).
    pub fn enqueue_ip(
        &mut self,
        plan: &AddressPlan,
        ip_packet: &[u8],
    ) -> Result<NodeId, EnqueueError> {
        let ip = match ipv4_destination(ip_packet) {
            Ok(ip) => ip,
            Err(e) => {
                self.counters.refused += 1;
                return Err(EnqueueError::BadPacket(e));
            }
        };
        let Some(dest) = plan.node_of(ip) else {
            self.counters.refused += 1;
            return Err(EnqueueError::UnknownAddress(ip));
        };
        self.enqueue(ip_packet, dest).map(|()| dest)
    }

    /// Subframes in which this MAC transmits (default: all). Outside, `on_subframe` returns
    /// `None`: a shadow target before the cutover, a source after it.
    pub fn set_tx_window(&mut self, w: Window) {
        self.tx_window = w;
    }

    /// Subframes whose received data this MAC delivers and forwards (default: all). Outside,
    /// it still tracks everything it hears — sequence numbers, grants, backlogs, beacons,
    /// partial packets — so a shadow target is warm at the cutover, but completed packets are
    /// only counted (`shadow_suppressed`): the other side of the cutover handles them.
    pub fn set_rx_window(&mut self, w: Window) {
        self.rx_window = w;
    }

    /// Source side of a make-before-break cutover, after its last transmission: take the
    /// transmit state (empties the queue). Packets it queues later (relayed from receptions
    /// before the cutover) can follow with [`Mac::drain_queue`] / [`Mac::requeue`].
    pub fn take_tx_handover(&mut self) -> TxHandover {
        TxHandover {
            tb_seq: self.tb_seq,
            queue: self.queue.take_snapshot(),
        }
    }

    /// Target side: continue the source's transmit state before the first own transmission.
    pub fn apply_tx_handover(&mut self, h: TxHandover) -> Result<(), HandoverError> {
        self.queue.restore(h.queue)?;
        self.tb_seq = h.tb_seq;
        Ok(())
    }

    /// Take every queued packet out (for a make-before-break handover); a packet already
    /// partly on the air is returned whole.
    pub fn drain_queue(&mut self) -> Vec<QueuedPacket> {
        self.queue
            .drain()
            .iter()
            .filter_map(|q| queued_packet(&q.pdu))
            .collect()
    }

    /// The queued packets in order, left queued: what [`Mac::drain_queue`] would return now.
    pub fn queued_packets(&self) -> Vec<QueuedPacket> {
        self.queue.pdus().filter_map(queued_packet).collect()
    }

    /// Queue a packet taken from another MAC's [`Mac::drain_queue`], routed by this node.
    pub fn requeue(&mut self, p: &QueuedPacket) -> Result<(), EnqueueError> {
        let Some(next_hop) = self.disc.table().next_hop(p.dst) else {
            self.counters.no_route_drops += 1;
            return Err(EnqueueError::NoRoute(p.dst.0));
        };
        let h = RelayHeader {
            ttl: p.ttl.max(1),
            src: p.src,
            dst: p.dst,
        };
        self.queue
            .push(Rnti::of_node(next_hop), h.to_pdu(&p.packet))
            .map_err(|_| {
                self.counters.queue_full_drops += 1;
                EnqueueError::QueueFull {
                    depth: self.queue.depth(),
                }
            })
    }

    fn tick(&mut self, n: u64) {
        self.disc.poll(n);
        self.reasm.poll(n);
    }

    /// Whether this node may transmit in subframe `n`, and on which carrier.
    pub fn may_transmit(&self, n: u64) -> Option<u8> {
        self.access(n).map(|(carrier, _)| carrier)
    }

    /// Carrier, and whether the opportunity is a contention slot this node uses to announce
    /// itself to a base station that does not know it.
    fn access(&self, n: u64) -> Option<(u8, bool)> {
        let carrier = self.cfg.schedule.carrier(n, self.cfg.role.direction())?;
        if self.cfg.role != Role::Slave || self.grant_master.is_none() {
            return Some((carrier, false));
        }
        match self.grants.get(&n) {
            Some(UplinkGrant::Mine) => Some((carrier, false)),
            Some(UplinkGrant::Contention)
                if !self.known_to_master(n) && contention_coin(self.cfg.node, n) =>
            {
                Some((carrier, true))
            }
            _ => None,
        }
    }

    /// A slave is known to its base station while it keeps receiving grants of its own.
    fn known_to_master(&self, n: u64) -> bool {
        self.last_own_grant
            .is_some_and(|t| n.saturating_sub(t) <= self.cfg.grant_silence / 2)
    }

    /// Whether this node may send a TB in subframe `n` (its transmit window and, under a
    /// base station, its grants allow it).
    pub fn tx_allowed(&self, n: u64) -> bool {
        self.tx_window.contains(n) && self.access(n).is_some()
    }

    /// Whether packets wait in the queue.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Advance the clock through subframe `n` without taking anything from the queue (the
    /// modem sends a HARQ retransmission in `n`, or has no free HARQ process).
    pub fn skip_subframe(&mut self, n: u64) {
        self.tick(n);
        self.expire_grants(n);
    }

    /// Called once per subframe `n` with the TB size the PHY offers (bytes): the TB to send,
    /// or `None` when this node does not transmit in `n` or has nothing to say.
    pub fn on_subframe(&mut self, n: u64, tb_capacity: usize) -> Option<TxBlock> {
        self.tick(n);
        self.expire_grants(n);
        if !self.tx_window.contains(n) {
            return None;
        }
        let (carrier, announce) = self.access(n)?;
        let direction = self.cfg.role.direction();
        // A base station grants the uplink subframes this downlink subframe controls.
        let grants_here =
            self.cfg.role == Role::BaseStation && !self.cfg.schedule.granted_by(n).is_empty();
        let beacon_due = self.disc.beacon_due(n);
        if !grants_here && !announce && !beacon_due && self.queue.is_empty() {
            return None;
        }
        let Some(mut w) = TbWriter::new(tb_capacity) else {
            self.counters.tb_too_small += 1;
            return None;
        };
        let mut dst = Rnti::BROADCAST;
        let mut beacon_sent = false;
        if beacon_due {
            let room = w.payload_room();
            if room >= BEACON_FIXED_LEN {
                let max_entries = (room - BEACON_FIXED_LEN) / BEACON_ENTRY_LEN;
                let beacon = self.disc.make_beacon(n, max_entries);
                if let Ok(bytes) = beacon.to_bytes() {
                    let sh = SegmentHeader {
                        kind: SegmentKind::Beacon,
                        last: true,
                        packet_id: 0,
                        offset: 0,
                        len: bytes.len() as u16,
                    };
                    beacon_sent = w.push(sh, &bytes).is_ok();
                }
            }
        }
        if !beacon_sent {
            if let Some(next) = self.queue.head_next_hop() {
                dst = next;
                self.queue.fill(next, &mut w);
            }
        }
        if w.segments() == 0 && !grants_here && !announce {
            self.counters.tb_too_small += 1;
            return None;
        }
        let grant = if grants_here {
            self.counters.grants_issued += 1;
            let g = self.uplink.next_grant();
            self.counters.contention_grants += u64::from(g == Rnti::BROADCAST);
            g
        } else {
            Rnti::NONE
        };
        self.counters.contention_tbs += u64::from(announce);
        let pending = self.queue.len() + usize::from(self.disc.beacon_due(n));
        let header = MacHeader {
            src: self.rnti,
            dst,
            seq: self.tb_seq,
            segments: 0,
            backlog: u16::try_from(pending).unwrap_or(u16::MAX),
            grant,
        };
        let used = w.used();
        let segments = w.segments();
        let bytes = w.finish(header).ok()?;
        self.tb_seq = self.tb_seq.wrapping_add(1);
        let c = &mut self.counters;
        c.tx_tbs += 1;
        c.tx_beacon_tbs += u64::from(beacon_sent);
        c.tx_grant_only_tbs += u64::from(segments == 0);
        let seg_bytes = used as u64;
        c.tx_payload_bytes += seg_bytes;
        c.tx_padding_bytes += (bytes.len() - crate::wire::MAC_HEADER_LEN) as u64 - seg_bytes;
        Some(TxBlock {
            subframe: n,
            direction,
            carrier,
            dst,
            bytes,
        })
    }

    fn expire_grants(&mut self, n: u64) {
        self.grants = self.grants.split_off(&n);
        if let Some(heard) = self.last_grant_heard {
            if n.saturating_sub(heard) > self.cfg.grant_silence {
                // The base station is gone: back to using every uplink subframe.
                self.grant_master = None;
                self.last_grant_heard = None;
                self.last_own_grant = None;
                self.grants.clear();
            }
        }
    }

    /// Called with each TB decoded from the air in subframe `n` (any TB heard, whoever it is
    /// addressed to: headers carry grants and sequence numbers). Returns what happened to
    /// the data packets it completed.
    pub fn on_received(&mut self, n: u64, tb: &[u8]) -> Vec<Delivery> {
        self.tick(n);
        self.counters.rx_tbs += 1;
        let view = match TbView::parse(tb) {
            Ok(v) => v,
            Err(_) => {
                self.counters.rx_malformed += 1;
                return Vec::new();
            }
        };
        let h = view.header;
        let Some(src_node) = h.src.node().filter(|_| h.src != self.rnti) else {
            self.counters.rx_ignored += 1;
            return Vec::new();
        };
        if !self.track_seq(h.src, h.seq) {
            return Vec::new();
        }
        self.counters.rx_payload_bytes += tb
            .len()
            .saturating_sub(crate::wire::MAC_HEADER_LEN)
            .saturating_sub(view.padding) as u64;
        match self.cfg.role {
            Role::Slave if h.grant != Rnti::NONE => self.take_grant(n, h.src, h.grant),
            Role::BaseStation => self.uplink.report_backlog(h.src, h.backlog),
            _ => {}
        }
        if h.dst != self.rnti && h.dst != Rnti::BROADCAST {
            self.counters.rx_not_for_me += 1;
            return Vec::new();
        }
        let mut out = Vec::new();
        for (sh, payload) in &view.segments {
            match sh.kind {
                SegmentKind::Beacon => match Beacon::parse(payload) {
                    Ok(b) if b.node == src_node => {
                        self.disc.on_beacon(n, &b);
                    }
                    _ => self.counters.rx_malformed += 1,
                },
                SegmentKind::Data => {
                    if let Some(pdu) = self.reasm.on_segment(n, h.src, h.dst, sh, payload) {
                        if !self.rx_window.contains(n) {
                            self.counters.shadow_suppressed += 1;
                            self.keep_suppressed(&pdu);
                        } else if let Some(d) = self.handle_pdu(&pdu) {
                            out.push(d);
                        }
                    }
                }
            }
        }
        out
    }

    /// A PDU outside the RX window that this node would deliver: kept as a copy (see
    /// [`Mac::take_suppressed`]); relayed ones are not (another node's queue).
    fn keep_suppressed(&mut self, pdu: &[u8]) {
        let Ok((h, ip)) = RelayHeader::parse(pdu) else {
            return;
        };
        if self.suppressed.len() < MAX_SUPPRESSED
            && forward_decision(self.disc.table(), &h) == ForwardDecision::Deliver
        {
            self.suppressed.push(ip.to_vec());
        }
    }

    /// The IP packets for this node received outside the RX window since the last call (a
    /// warm replica's copies of what the primary delivers), in order.
    pub fn take_suppressed(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.suppressed)
    }

    /// Loss accounting from TB sequence numbers; false for a duplicate.
    fn track_seq(&mut self, src: Rnti, seq: u16) -> bool {
        if let Some(last) = self.rx_seq.insert(src, seq) {
            let gap = seq.wrapping_sub(last);
            if gap == 0 {
                self.counters.rx_duplicate_tbs += 1;
                return false;
            }
            if gap <= self.cfg.max_tb_gap {
                self.counters.rx_tb_lost += u64::from(gap - 1);
            } else {
                self.counters.rx_seq_resyncs += 1;
            }
        }
        true
    }

    fn take_grant(&mut self, n: u64, from: Rnti, grant: Rnti) {
        if self.grant_master.is_some_and(|m| m != from) {
            return; // grants of another cell's base station
        }
        self.grant_master = Some(from);
        self.last_grant_heard = Some(n);
        let kind = if grant == self.rnti {
            self.last_own_grant = Some(n);
            UplinkGrant::Mine
        } else if grant == Rnti::BROADCAST {
            UplinkGrant::Contention
        } else {
            UplinkGrant::Other
        };
        for m in self.cfg.schedule.granted_by(n) {
            self.grants.insert(m, kind);
            self.counters.grants_received += u64::from(kind == UplinkGrant::Mine);
        }
        while self.grants.len() > MAX_REMEMBERED_GRANTS {
            self.grants.pop_first();
        }
    }

    fn handle_pdu(&mut self, pdu: &[u8]) -> Option<Delivery> {
        let Ok((h, ip)) = RelayHeader::parse(pdu) else {
            self.counters.rx_malformed += 1;
            return None;
        };
        let (src, dst) = (h.src, h.dst);
        Some(match forward_decision(self.disc.table(), &h) {
            ForwardDecision::Deliver => {
                self.counters.delivered += 1;
                self.counters.delivered_bytes += ip.len() as u64;
                Delivery::Local {
                    src,
                    packet: ip.to_vec(),
                }
            }
            ForwardDecision::Forward { next_hop } => {
                let fwd = RelayHeader {
                    ttl: h.ttl - 1,
                    ..h
                };
                match self.queue.push(Rnti::of_node(next_hop), fwd.to_pdu(ip)) {
                    Ok(()) => {
                        self.counters.forwarded += 1;
                        Delivery::Forwarded {
                            src,
                            dst,
                            next_hop,
                            len: ip.len(),
                        }
                    }
                    Err(_) => {
                        self.counters.queue_full_drops += 1;
                        Delivery::Dropped {
                            src,
                            dst,
                            reason: DropReason::QueueFull,
                        }
                    }
                }
            }
            ForwardDecision::DropNoRoute => {
                self.counters.no_route_drops += 1;
                Delivery::Dropped {
                    src,
                    dst,
                    reason: DropReason::NoRoute,
                }
            }
            ForwardDecision::DropTtl => {
                self.counters.ttl_drops += 1;
                Delivery::Dropped {
                    src,
                    dst,
                    reason: DropReason::Ttl,
                }
            }
        })
    }
}
