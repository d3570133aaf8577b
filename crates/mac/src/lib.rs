//! Ferry's MAC as a pure library: who transmits in which subframe, how IP packets ride in
//! transport blocks, and how the relay finds and uses routes.
//!
//! No sockets, no threads, no clocks. The modem calls [`Mac`] once per subframe; the absolute
//! subframe number `n` (1 subframe = 1 ms of radio time) is the only clock, so every timer
//! here (reassembly timeout, beacon period, route expiry) counts subframes.
//!
//! Module map:
//! - [`addr`]: node IDs, RNTIs, and the IP-address → node-ID plan.
//! - [`election`]: master election among terminals without a base station.
//! - [`schedule`]: TDD configurations 0–6 and FDD; which direction/carrier a subframe serves;
//!   the base-station uplink grant scheduler.
//! - [`wire`]: checked parse/emit of the MAC header, segment subheaders, relay header, beacon.
//! - [`pack`]: the bounded transmit queue and the packer filling a TB of a given size.
//! - [`reassembly`]: segment reassembly with timeouts, bounded memory and loss accounting.
//! - [`route`]: the route table (`route_t`) and the distance-vector discovery state machine.
//! - [`mac`]: [`Mac`], composing all of the above behind the per-subframe API.
//! - [`sim`]: a deterministic multi-node harness (link matrix, virtual clock) for tests.
//!
//! Wire formats and timing constants are documented byte by byte in `docs/MAC.md`.
//!
//! ```
//! use ferry_mac::{Delivery, Mac, MacConfig, NodeId, Role, Schedule};
//!
//! let fdd = Schedule::fdd();
//! let mut master = Mac::new(MacConfig::new(NodeId(9), Role::Master, fdd)).unwrap();
//! let mut slave = Mac::new(MacConfig::new(NodeId(8), Role::Slave, fdd)).unwrap();
//! // Warm start: routes from a migrated route_list instead of waiting for beacons.
//! slave.set_routes(0, &[(NodeId(9), NodeId(9))]).unwrap();
//! slave.enqueue(b"an IP packet", NodeId(9)).unwrap();
//! let mut delivered = Vec::new();
//! for n in 0..10 {
//!     // The modem: one call per subframe per node, TB size from the PHY.
//!     if let Some(tb) = master.on_subframe(n, 200) {
//!         delivered.extend(slave.on_received(n, &tb.bytes));
//!     }
//!     if let Some(tb) = slave.on_subframe(n, 200) {
//!         delivered.extend(master.on_received(n, &tb.bytes));
//!     }
//! }
//! assert!(delivered.contains(&Delivery::Local { src: NodeId(8), packet: b"an IP packet".to_vec() }));
//! ```

#![deny(missing_docs)]

pub mod addr;
pub mod election;
pub mod error;
pub mod harq;
pub mod mac;
pub mod pack;
pub mod reassembly;
pub mod route;
pub mod schedule;
pub mod sim;
pub mod wire;

pub use addr::{AddressPlan, NodeId, Rnti};
pub use error::{ConfigError, EnqueueError, HandoverError, RouteError, WireError};
pub use mac::{
    Delivery, Mac, MacConfig, MacCounters, MacStatus, Role, TxBlock, TxHandover, Window,
};
pub use route::{DiscoveryConfig, RouteEntry, RouteTable};
pub use schedule::{Direction, Duplex, Schedule, SubframeKind};
