//! The thesis testbed as Linux network namespaces on one machine.
//!
//! [`topology`] describes hosts, bridges and addresses as data and plans the build (pure);
//! [`netns`] runs the plan with iproute2 and reads the state back.

pub mod demo;
pub mod failover;
pub mod harq_demo;
pub mod live;
pub mod mimo_demo;
pub mod netns;
pub mod ping;
pub mod plot;
pub mod pool_bed;
pub mod pool_plot;
pub mod probe;
pub mod relay_demo;
pub mod report;
pub mod session;
pub mod topology;
pub mod video;

pub use netns::{check, down, up, TestbedError, TestbedState, UpOutcome};
pub use topology::Topology;

/// Default namespace prefix of the testbed (`ferry-server1`, …).
pub const DEFAULT_PREFIX: &str = "ferry";

/// For tests that need root: prints a loud SKIPPED line and returns false when not root.
pub fn root_or_skip(test: &str) -> bool {
    if netns::is_root() {
        return true;
    }
    eprintln!("==============================================================");
    eprintln!("SKIPPED (needs root): {test}");
    eprintln!("  network namespaces / TUN need root; CI runs as root.");
    eprintln!("==============================================================");
    false
}
