//! `ferry-modem`: the real-time D2D / relay modem (the thesis' D2D program) and its local
//! control-socket protocol, which the per-server agent uses to supervise it.
//!
//! - [`carrier`]: band table, EARFCN → DL/UL carrier, which LO each role tunes (pure).
//! - [`clock`]: radio clock tracking, offset and rate against the host (pure).
//! - [`proto`]: control-socket messages and a blocking client (pure).
//! - [`horizon`]: which RX blocks are plausible on the radio's clock (pure).
//! - [`phylink`]: the waveform fixed by `Control` (pure).
//! - [`core`]: one subframe in, deliveries and TX out (pure).
//! - [`elect`]: auto mode, the master election's glue (pure).
//! - [`cutover`]: takeover, release, fallback, failover and fencing as a state machine (pure).
//! - [`ctlsock`]: bounded line reading, reply buffers and the connection cap (pure).
//! - [`forward`]: forward-port datagrams for make-before-break handover (pure).
//! - [`run`]: the real-time shell: radio, TUN, control socket, forward port.

pub mod carrier;
pub mod clock;
pub mod core;
pub mod ctlsock;
pub mod cutover;
pub mod elect;
pub mod forward;
pub mod horizon;
pub mod latency;
pub mod phylink;
pub mod proto;
pub mod run;

pub use proto::{
    parse_request, ClientError, CutoverArm, ElectedRoleName, ElectionStatus, ModemClient,
    ModemCounters, ModemReply, ModemRequest, ModemState, ModemStatus, RequestError, Role,
};
pub use run::{Modem, ModemError, ModemOptions, RadioSpec};
