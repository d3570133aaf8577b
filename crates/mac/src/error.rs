//! Typed errors of the MAC: malformed bytes, bad configuration, refused packets, bad routes.

use thiserror::Error;

/// Why a byte string is not a valid MAC / relay / beacon structure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: truncated, need {need} bytes, have {have}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A version this implementation does not speak.
    #[error("{what}: unsupported version {version}")]
    BadVersion {
        /// Which structure.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: invalid {field} = {value}")]
    BadField {
        /// Which structure.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// The offending value.
        value: u32,
    },
    /// The structure does not fit the buffer it is written into.
    #[error("{what}: needs {need} bytes, buffer has {have}")]
    BufferTooSmall {
        /// Which structure.
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// A [`crate::MacConfig`] or schedule value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// TDD uplink/downlink configuration outside 0–6 (`DLULAssign`).
    #[error("unknown TDD configuration (DLULAssign) {0}: allowed 0-6")]
    UnknownTddConfig(u8),
    /// A frame pattern without a downlink subframe cannot carry grants or sync.
    #[error("subframe pattern has no downlink subframe")]
    NoDownlink,
    /// A frame pattern without an uplink subframe leaves slaves mute.
    #[error("subframe pattern has no uplink subframe")]
    NoUplink,
    /// Any other out-of-range value.
    #[error("invalid {field} = {value}: {allowed}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What would have been accepted.
        allowed: &'static str,
    },
}

/// Why [`crate::Mac::enqueue`] refused a packet. Every refusal is also counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnqueueError {
    /// The transmit queue is at its configured depth.
    #[error("transmit queue full ({depth} packets)")]
    QueueFull {
        /// Configured depth.
        depth: usize,
    },
    /// The route table has no usable entry for the destination.
    #[error("no route to node {0}")]
    NoRoute(u8),
    /// The packet is larger than the MAC carries.
    #[error("packet of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Packet length.
        len: usize,
        /// Maximum accepted.
        max: usize,
    },
    /// An empty packet carries nothing.
    #[error("empty packet")]
    Empty,
    /// The destination is this node itself.
    #[error("destination is this node ({0})")]
    ToSelf(u8),
    /// Not an IPv4 packet the address plan can route (e.g. IPv6 from the tun).
    #[error("cannot read the destination: {0}")]
    BadPacket(WireError),
    /// The address plan maps no node to the destination address.
    #[error("no node has address {}.{}.{}.{}", .0[0], .0[1], .0[2], .0[3])]
    UnknownAddress([u8; 4]),
}

/// Why a route list (e.g. a migrated `route_list`) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    /// A route to this node itself.
    #[error("route to self (node {0})")]
    RouteToSelf(u8),
    /// A route whose next hop is this node: packets would loop here.
    #[error("route to {dest} has this node ({node}) as next hop")]
    NextHopIsSelf {
        /// Destination of the route.
        dest: u8,
        /// This node.
        node: u8,
    },
    /// The same destination appears twice.
    #[error("duplicate route for destination {0}")]
    DuplicateDest(u8),
    /// The next hop is not itself directly reachable (no route `(nexthop, nexthop)`) while
    /// the list has an entry for it pointing elsewhere: a two-step loop risk.
    #[error("route to {dest} via {next_hop}, but {next_hop} itself is routed via {via}")]
    IndirectNextHop {
        /// Destination.
        dest: u8,
        /// Claimed next hop.
        next_hop: u8,
        /// How the list routes to the next hop.
        via: u8,
    },
    /// More routes than the table holds.
    #[error("{len} routes exceed the table capacity {max}")]
    TooMany {
        /// Entries given.
        len: usize,
        /// Capacity.
        max: usize,
    },
}

/// Why a transmit-state handover (make-before-break) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandoverError {
    /// More queued PDUs than the receiving queue holds.
    #[error("{len} handed-over PDUs (plus {queued} queued) exceed the queue depth {depth}")]
    QueueTooLong {
        /// PDUs in the handover.
        len: usize,
        /// PDUs already queued here.
        queued: usize,
        /// Queue depth.
        depth: usize,
    },
    /// A PDU that cannot be continued.
    #[error("handed-over PDU {index}: {why}")]
    BadPdu {
        /// Position in the handover.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
}
