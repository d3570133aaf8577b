//! `ferry ctl`, the operator side (thesis 3.4): the console and scriptable client of the
//! agents. [`client`] sends authenticated requests with the Lazy Pirate pattern, [`driver`]
//! executes the pure migration sequences of `ferry_migrate`, [`console`] reads the thesis
//! command lines and prints results and timelines.

pub mod auto_protect;
pub mod client;
pub mod console;
pub mod driver;
pub mod interrupt;

pub use client::{AgentClient, CallError, DEFAULT_AGENT_NAME};
pub use console::{print_outcome, run_console, run_line, ConsoleOptions, InterruptibleStdin};
pub use driver::{Driver, RadioControl};
