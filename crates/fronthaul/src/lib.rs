//! Fronthaul wire format (sans-IO): VITA-49 (VRT) IF data and context packets carrying sc16
//! IQ samples over UDP, the discovery probe datagram, and the link-control messages spoken
//! over ZeroMQ. `docs/FRONTHAUL.md` is the prose version of this crate.
//!
//! Layout follows smoltcp's `wire`: [`vrt::Packet`] is a checked view over raw bytes,
//! [`vrt::DataRepr`] / [`vrt::ContextRepr`] are parsed, validated values. Parsing can fail
//! with a typed [`vrt::WireError`]; it never panics on any input.

pub mod control;
pub mod notice;
pub mod probe;
pub mod vrt;

pub use control::{ControlError, Reply, Request, StatusReport};
pub use vrt::{
    ContextRepr, DataRepr, Packet, PacketType, SampleTime, StreamId, Timestamp, WireError,
};
