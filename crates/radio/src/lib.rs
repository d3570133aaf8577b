//! Radio layer: emulated N210-class radio units on a shared air channel (`ferry air`), their
//! VITA-49 fronthaul and ZeroMQ link control, legacy address-bound mode, the modem-side
//! [`RadioLink`] client, and SigMF capture.
//!
//! The cores ([`unit`], [`air`], [`engine`]) are sans-IO: sample time is passed in. The
//! shells ([`server`], [`client`], [`sigmf`]) do the sockets, threads and files.

pub mod air;
pub mod batch;
pub mod client;
pub mod config;
pub mod engine;
pub mod loadgen;
pub mod medium;
mod mixsimd;
pub mod oscillator;
pub mod resample;
pub mod rf;
pub mod server;
pub mod sigmf;
pub mod sys;
#[cfg(feature = "uhd")]
pub mod uhd;
pub mod unit;

pub use client::{ControlClient, RadioError, RadioLink, RadioLinkConfig, RxBlock};
pub use config::{AirConfig, LinkAuth, RadioConfig, DEFAULT_AIR_IDENTITY};
pub use engine::AirEngine;
pub use server::{AirHandle, AirServer};
