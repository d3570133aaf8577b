//! Ferry's physical layer: an LTE-numerology OFDM PHY as a pure library.
//!
//! No sockets, no threads, no clocks: samples in, bytes out (and back). The D2D / relay
//! modem that Ferry migrates is built on it; the cost of its cell search is exactly what a
//! warm start (Control information migration) avoids.
//!
//! Module map:
//! - [`numerology`]: bandwidths, FFT sizes, cyclic prefixes, frame structure, TDD configs.
//! - [`sync`]: PSS/SSS generation (TS 36.211 §6.11); [`cellsearch`]: blind search from raw IQ.
//! - [`ofdm`]: OFDM modulation and demodulation of symbols and subframes.
//! - [`crs`]: cell-specific reference signals; [`chest`]: channel estimation, equalisation, SNR/EVM.
//! - [`modulation`]: QPSK/16QAM/64QAM mapping (36.211 §7.1) and soft demapping.
//! - [`crc`], [`turbo`], [`turbo_fixed`], [`ratematch`], [`scrambling`], [`fec`]: channel coding (TS 36.212).
//! - [`subframe`]: the transport-block API: bytes ⇄ a subframe of time-domain samples.
//! - [`mimo`]: two antennas: CRS of ports 0 and 1, SFBC transmit diversity, MRC receive diversity.
//! - [`channel`]: a seeded simulated channel (AWGN, CFO, timing offset; flat Rayleigh
//!   N_tx × N_rx block fading) for tests and benches;
//!   [`sim`]: seeded BLER and cell-search simulations built on it.

pub mod error;
pub mod gold;

pub mod cellsearch;
pub mod channel;
pub mod chest;
pub mod crs;
pub mod mimo;
pub mod numerology;
pub mod ofdm;
pub mod sim;
pub mod subframe;
pub mod sync;

pub mod crc;
pub mod fec;
pub mod modulation;
pub mod ratematch;
pub mod scrambling;
pub mod turbo;
pub mod turbo_fixed;

pub use cellsearch::{CellSearchResult, CellSearcher, DuplexKind};
pub use channel::{Channel, ChannelParams};
pub use chest::ChannelQuality;
pub use error::{PhyError, Result};
pub use fec::SoftBuffer;
pub use modulation::Modulation;
pub use numerology::{Bandwidth, CellId, CyclicPrefix, Duplex, SubframeKind, TddConfig};
pub use subframe::{Capacity, DecodeReport, SubframeConfig, SubframeDecoder, SubframeEncoder};
