//! Two antennas: transmit diversity (SFBC, TS 36.211 §6.3.4.3) over antenna ports 0 and 1,
//! and receive diversity (maximum-ratio combining) over two receive antennas.
//!
//! Subframe structure with two TX ports: both ports send CRS (§6.10.1, port 1 three
//! subcarriers from port 0) and each leaves the other's CRS REs empty; the data REs are
//! those of the one-port map minus the CRS REs of both ports. PSS/SSS go out on antenna 0
//! only. Modulated symbols are taken in pairs (x0, x1) on adjacent data REs of one OFDM
//! symbol (frequency first); port 0 sends (x0, x1)/√2 and port 1 (−x1*, x0*)/√2, so the
//! total power per data RE stays 1 (the SNR definition of `channel.rs` holds per receive
//! antenna).
//!
//! Receiver: per receive antenna and port, the port-0 estimator of [`crate::chest`] run on
//! that port's CRS (an LS pilot sees one port only, the other is silent there). Combining
//! weights each receive antenna by its own inverse noise variance; the noise variance handed
//! to the soft demapper is the post-combining one (2/Σ|h|²/σ² for SFBC, 1/Σ|h|²/σ² for MRC,
//! σ² including the estimation error), so the turbo decoder's LLRs stay calibrated.
//!
//! One TX port with one RX antenna is the single-antenna link of [`crate::subframe`]: same
//! samples out of the encoder, same equaliser in the decoder (tests check both). Spatial
//! multiplexing (`trans_mode` 3–9) and four antennas are refused with
//! [`PhyError::Unsupported`].

use crate::chest::ChannelEstimator;
use crate::crs::{CellReference, CrsPort};
use crate::fec::TbCodec;
use crate::modulation;
use crate::numerology::SUBFRAMES_PER_FRAME;
use crate::ofdm::{OfdmDemodulator, OfdmModulator};
use crate::scrambling::{descramble_llrs, pdsch_c_init, scramble_bits};
use crate::subframe::{DecodeReport, SubframeConfig, DEFAULT_MAX_ITERATIONS};
use crate::sync::{self, placement, SYNC_LEN};
use crate::{PhyError, Result};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};
use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};

/// Most antennas on either side implemented here.
pub const MAX_ANTENNAS: usize = 2;

/// How a transport block goes out over the TX antennas (the Control's `trans_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxScheme {
    /// `trans_mode` 1: antenna port 0 only.
    SinglePort,
    /// `trans_mode` 2: SFBC over ports 0 and 1.
    TransmitDiversity,
}

impl TxScheme {
    /// The scheme of a Control's `trans_mode` (1–9) with `numAntennaTX` antennas: 1 needs one
    /// antenna, 2 needs two; 3–9 (spatial multiplexing, beamforming) and four antennas are
    /// valid LTE but `Unsupported` here.
    pub fn from_control(trans_mode: u8, num_tx: u8) -> Result<Self> {
        if !matches!(num_tx, 1 | 2 | 4) {
            return Err(PhyError::invalid("numAntennaTX", num_tx, "1, 2 or 4"));
        }
        match trans_mode {
            1 if num_tx == 1 => Ok(TxScheme::SinglePort),
            1 => Err(PhyError::invalid(
                "numAntennaTX",
                num_tx,
                "1 with trans_mode 1 (single antenna port); use trans_mode 2 for two",
            )),
            2 if num_tx == 2 => Ok(TxScheme::TransmitDiversity),
            2 if num_tx == 4 => Err(PhyError::Unsupported(
                "trans_mode 2 with numAntennaTX = 4: four-port SFBC-FSTD is not implemented; \
                 use 2 antennas"
                    .into(),
            )),
            2 => Err(PhyError::invalid(
                "numAntennaTX",
                num_tx,
                "2 (or 4) with trans_mode 2 (transmit diversity)",
            )),
            3..=9 => Err(PhyError::Unsupported(format!(
                "trans_mode {trans_mode}: spatial multiplexing / beamforming is not \
                 implemented; use trans_mode 2 (transmit diversity) with 2 TX antennas"
            ))),
            _ => Err(PhyError::invalid("trans_mode", trans_mode, "1..=9")),
        }
    }
}

/// Checks a link's antenna counts (1 or 2 each; 4 is `Unsupported`) and every other field
/// of `cfg`; returns (TX antennas, RX antennas).
pub fn check_link(cfg: &SubframeConfig) -> Result<(usize, usize)> {
    let fields = [
        ("numAntennaTX", cfg.num_antenna_tx),
        ("numAntennaRX", cfg.num_antenna_rx),
    ];
    for (name, n) in fields {
        if !matches!(n, 1 | 2 | 4) {
            return Err(PhyError::invalid(
                name,
                n,
                "1, 2 or 4 (1 and 2 implemented)",
            ));
        }
    }
    for (name, n) in fields {
        if n == 4 {
            return Err(PhyError::Unsupported(format!(
                "{name} = 4: LTE allows it, but this PHY implements at most 2 antennas"
            )));
        }
    }
    // Everything else as the single-antenna link checks it.
    SubframeConfig {
        num_antenna_tx: 1,
        num_antenna_rx: 1,
        ..*cfg
    }
    .validate()?;
    Ok((
        usize::from(cfg.num_antenna_tx),
        usize::from(cfg.num_antenna_rx),
    ))
}

/// Grid indices (l·n_sc + k) of the data REs of subframe `sf` with `ports` CRS ports (1 or
/// 2), frequency first (`sf` taken modulo 10; `cfg` as passed by [`check_link`]). With one
/// port this is exactly the map of [`crate::subframe`].
pub fn data_res(cfg: &SubframeConfig, ports: usize, sf: usize) -> Vec<u32> {
    let n_sc = cfg.bandwidth.subcarriers();
    let crs: Vec<CellReference> = CrsPort::ALL[..ports.clamp(1, MAX_ANTENNAS)]
        .iter()
        .map(|&p| CellReference::for_port(cfg.bandwidth, cfg.cp, cfg.cell, p))
        .collect();
    let sync = placement(cfg.duplex, cfg.cp, sf);
    let sync_syms = [sync.pss_symbol, sync.sss_symbol.map(|s| s.0)];
    let k_lo = 12 * cfg.prb_start;
    let k_hi = 12 * (cfg.prb_start + cfg.prb_count);
    let mut out = Vec::new();
    for l in cfg.control_symbols..cfg.active_symbols(sf) {
        let is_sync = sync_syms.contains(&Some(l));
        for k in k_lo..k_hi {
            if crs.iter().any(|c| c.is_crs(l, k)) {
                continue;
            }
            if is_sync && k + 36 >= n_sc / 2 && k < n_sc / 2 + 36 {
                continue;
            }
            out.push((l * n_sc + k) as u32);
        }
    }
    out
}

/// SFBC precoding (§6.3.4.3, two ports): each pair (x0, x1) becomes (x0, x1)/√2 on port 0
/// and (−x1*, x0*)/√2 on port 1. `symbols` must have an even length; the outputs are
/// overwritten.
pub fn sfbc_precode(
    symbols: &[Complex32],
    port0: &mut Vec<Complex32>,
    port1: &mut Vec<Complex32>,
) -> Result<()> {
    if symbols.len() % 2 != 0 {
        return Err(PhyError::InvalidLength {
            what: "SFBC symbols (pairs)",
            expected: symbols.len() + 1,
            got: symbols.len(),
        });
    }
    port0.clear();
    port1.clear();
    for pair in symbols.chunks_exact(2) {
        let (x0, x1) = (pair[0] * FRAC_1_SQRT_2, pair[1] * FRAC_1_SQRT_2);
        port0.extend_from_slice(&[x0, x1]);
        port1.extend_from_slice(&[-x1.conj(), x0.conj()]);
    }
    Ok(())
}

/// What one receive antenna saw of one SFBC pair: the two REs, the channel from each port
/// (averaged over the pair), and the antenna's noise variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SfbcBranch {
    /// Received values on the pair's two REs.
    pub y: [Complex32; 2],
    /// Channel from port 0 and from port 1.
    pub h: [Complex32; 2],
    /// Noise variance of this antenna (including channel-estimation error).
    pub noise_var: f32,
}

/// Alamouti combining of one SFBC pair over the receive antennas, each weighted by its
/// inverse noise variance: returns (x0, x1) and their common noise variance
/// 2 / Σ_r (|h0r|² + |h1r|²)/σ_r². A dead channel gives zeros with infinite variance
/// (LLRs 0).
pub fn sfbc_combine(branches: &[SfbcBranch]) -> ([Complex32; 2], f32) {
    let mut a0 = Complex32::new(0.0, 0.0);
    let mut a1 = Complex32::new(0.0, 0.0);
    let mut gain = 0.0f32;
    for b in branches {
        let w = 1.0 / b.noise_var.max(modulation::MIN_NOISE_VAR);
        let [h0, h1] = b.h;
        let [y0, y1] = b.y;
        a0 += (h0.conj() * y0 + h1 * y1.conj()) * w;
        a1 += (h0.conj() * y1 - h1 * y0.conj()) * w;
        gain += (h0.norm_sqr() + h1.norm_sqr()) * w;
    }
    if gain.is_nan() || gain < 1e-20 {
        return ([Complex32::new(0.0, 0.0); 2], f32::INFINITY);
    }
    let s = SQRT_2 / gain;
    ([a0 * s, a1 * s], 2.0 / gain)
}

/// What one receive antenna saw of one single-port RE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MrcBranch {
    /// Received value.
    pub y: Complex32,
    /// Channel from port 0.
    pub h: Complex32,
    /// Noise variance of this antenna (including channel-estimation error).
    pub noise_var: f32,
}

/// Maximum-ratio combining of one RE over the receive antennas: returns the symbol
/// estimate and its noise variance 1 / Σ_r |h_r|²/σ_r².
pub fn mrc_combine(branches: &[MrcBranch]) -> (Complex32, f32) {
    let mut acc = Complex32::new(0.0, 0.0);
    let mut gain = 0.0f32;
    for b in branches {
        let w = 1.0 / b.noise_var.max(modulation::MIN_NOISE_VAR);
        acc += b.h.conj() * b.y * w;
        gain += b.h.norm_sqr() * w;
    }
    if gain.is_nan() || gain < 1e-20 {
        return (Complex32::new(0.0, 0.0), f32::INFINITY);
    }
    (acc / gain, 1.0 / gain)
}

/// Per-cell signals and per-subframe RE maps of a one- or two-port link.
struct PortMaps {
    crs: Vec<CellReference>,
    pss: [Complex32; SYNC_LEN],
    sss: [[f32; SYNC_LEN]; 2],
    data: Vec<Vec<u32>>,
}

impl PortMaps {
    fn new(cfg: &SubframeConfig, ports: usize) -> Result<Self> {
        let cell = cfg.cell;
        let data: Vec<Vec<u32>> = (0..SUBFRAMES_PER_FRAME)
            .map(|sf| data_res(cfg, ports, sf))
            .collect();
        if ports == 2 {
            // SFBC pairs must sit in one OFDM symbol: every symbol has an even count.
            let n_sc = cfg.bandwidth.subcarriers() as u32;
            let split = data.iter().any(|d| {
                d.chunks(2)
                    .any(|p| p.len() != 2 || p[0] / n_sc != p[1] / n_sc)
            });
            if split {
                return Err(PhyError::Unsupported(
                    "an allocation whose data REs do not pair up within OFDM symbols".into(),
                ));
            }
        }
        Ok(PortMaps {
            crs: CrsPort::ALL[..ports.clamp(1, MAX_ANTENNAS)]
                .iter()
                .map(|&p| CellReference::for_port(cfg.bandwidth, cfg.cp, cell, p))
                .collect(),
            pss: sync::pss(cell.sector())?,
            sss: [
                sync::sss(cell.group(), cell.sector(), sync::SssSubframe::Sf0)?,
                sync::sss(cell.group(), cell.sector(), sync::SssSubframe::Sf5)?,
            ],
            data,
        })
    }

    /// Writes port `port`'s CRS (and, on port 0, PSS/SSS) of subframe `sf` into a zeroed grid.
    fn insert_reference(
        &self,
        cfg: &SubframeConfig,
        port: usize,
        sf: usize,
        grid: &mut [Complex32],
    ) {
        let n_sc = cfg.bandwidth.subcarriers();
        let active = cfg.active_symbols(sf);
        self.crs[port].insert(sf, grid, active);
        if port != 0 {
            return;
        }
        let p = placement(cfg.duplex, cfg.cp, sf);
        if let Some(l) = p.pss_symbol.filter(|&l| l < active) {
            for (n, &v) in self.pss.iter().enumerate() {
                grid[l * n_sc + sync::sync_subcarrier(n, n_sc)] = v;
            }
        }
        if let Some((l, which)) = p.sss_symbol.filter(|s| s.0 < active) {
            let seq = &self.sss[usize::from(which == sync::SssSubframe::Sf5)];
            for (n, &v) in seq.iter().enumerate() {
                grid[l * n_sc + sync::sync_subcarrier(n, n_sc)] = Complex32::new(v, 0.0);
            }
        }
    }
}

fn check_subframe(sf: usize) -> Result<()> {
    if sf < SUBFRAMES_PER_FRAME {
        Ok(())
    } else {
        Err(PhyError::invalid("subframe index", sf, "0..=9"))
    }
}

fn c_init(cfg: &SubframeConfig, sf: usize) -> Result<u32> {
    pdsch_c_init(cfg.rnti, 0, (2 * sf) as u8, cfg.cell.pci())
}

/// Encodes transport blocks into one subframe of samples per TX antenna (SFBC with two).
pub struct MimoEncoder {
    cfg: SubframeConfig,
    n_tx: usize,
    maps: PortMaps,
    ofdm: OfdmModulator,
    grid: Vec<Complex32>,
    symbols: Vec<Complex32>,
    ports: [Vec<Complex32>; 2],
    codec: TbCodec,
    bits: Vec<u8>,
}

impl MimoEncoder {
    /// Validates `cfg` (its `num_antenna_tx` antennas: 1 or 2) and prepares the encoder.
    pub fn new(cfg: SubframeConfig) -> Result<Self> {
        let (n_tx, _) = check_link(&cfg)?;
        Ok(MimoEncoder {
            maps: PortMaps::new(&cfg, n_tx)?,
            ofdm: OfdmModulator::new(cfg.bandwidth, cfg.cp),
            grid: vec![
                Complex32::new(0.0, 0.0);
                cfg.cp.symbols_per_subframe() * cfg.bandwidth.subcarriers()
            ],
            symbols: Vec::new(),
            ports: [Vec::new(), Vec::new()],
            codec: TbCodec::new(),
            bits: Vec::new(),
            n_tx,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SubframeConfig {
        &self.cfg
    }

    /// TX antennas.
    pub fn antennas(&self) -> usize {
        self.n_tx
    }

    /// A subframe with reference signals only (each antenna its port's CRS, antenna 0 also
    /// PSS/SSS): what a radio sends when it has no data.
    pub fn encode_idle(&mut self, sf: usize, out: &mut [Vec<Complex32>]) -> Result<()> {
        check_subframe(sf)?;
        self.check_outputs(out)?;
        for (port, samples) in out.iter_mut().enumerate() {
            self.grid.fill(Complex32::new(0.0, 0.0));
            self.maps
                .insert_reference(&self.cfg, port, sf, &mut self.grid);
            self.ofdm.modulate(&self.grid, samples)?;
        }
        Ok(())
    }

    fn check_outputs(&self, out: &[Vec<Complex32>]) -> Result<()> {
        if out.len() == self.n_tx {
            Ok(())
        } else {
            Err(PhyError::InvalidLength {
                what: "TX antenna buffers",
                expected: self.n_tx,
                got: out.len(),
            })
        }
    }

    /// Data REs of subframe `sf` (fewer with two ports: both ports' CRS are excluded).
    pub fn data_res(&self, sf: usize) -> usize {
        self.maps.data.get(sf).map_or(0, Vec::len)
    }

    /// The largest transport block (bytes) at code rate ≤ `max_code_rate` in subframe `sf`.
    pub fn max_tb_bytes(&self, sf: usize, max_code_rate: f64) -> usize {
        let g = self.data_res(sf) * self.cfg.modulation.bits_per_symbol();
        crate::fec::max_tb_bytes(g, max_code_rate)
    }

    /// Encodes `tb` into subframe `sf`: `out` holds one buffer per TX antenna, each
    /// `samples_per_subframe` long.
    pub fn encode(&mut self, sf: usize, tb: &[u8], out: &mut [Vec<Complex32>]) -> Result<()> {
        check_subframe(sf)?;
        self.check_outputs(out)?;
        let m = self.cfg.modulation;
        let data = &self.maps.data[sf];
        let g = data.len() * m.bits_per_symbol();
        self.codec
            .encode_into(tb, g, m.bits_per_symbol(), 0, &mut self.bits)?;
        scramble_bits(&mut self.bits, c_init(&self.cfg, sf)?);
        self.symbols.clear();
        modulation::map(&self.bits, m, &mut self.symbols)?;
        if self.n_tx == 2 {
            let [p0, p1] = &mut self.ports;
            sfbc_precode(&self.symbols, p0, p1)?;
        }
        for (port, samples) in out.iter_mut().enumerate() {
            self.grid.fill(Complex32::new(0.0, 0.0));
            self.maps
                .insert_reference(&self.cfg, port, sf, &mut self.grid);
            let values = if self.n_tx == 2 {
                &self.ports[port]
            } else {
                &self.symbols
            };
            for (&i, &s) in data.iter().zip(values.iter()) {
                self.grid[i as usize] = s;
            }
            self.ofdm.modulate(&self.grid, samples)?;
        }
        Ok(())
    }
}

/// Decodes subframes received on one or two antennas (MRC, or SFBC combining when the
/// link has two TX antennas) back into transport blocks. Buffers are reused.
pub struct MimoDecoder {
    cfg: SubframeConfig,
    n_tx: usize,
    n_rx: usize,
    maps: PortMaps,
    ofdm: OfdmDemodulator,
    /// [rx antenna][port]
    chest: Vec<Vec<ChannelEstimator>>,
    /// One demodulated grid per RX antenna.
    grids: Vec<Vec<Complex32>>,
    /// Per RX antenna: noise variance including the estimation error.
    noise: Vec<f32>,
    eq: Vec<Complex32>,
    eq_noise: Vec<f32>,
    llr: Vec<f32>,
    codec: TbCodec,
    max_iterations: usize,
}

impl MimoDecoder {
    /// Validates `cfg` (`num_antenna_tx` and `num_antenna_rx`: 1 or 2) and prepares the
    /// decoder.
    pub fn new(cfg: SubframeConfig) -> Result<Self> {
        let (n_tx, n_rx) = check_link(&cfg)?;
        let grid_len = cfg.cp.symbols_per_subframe() * cfg.bandwidth.subcarriers();
        Ok(MimoDecoder {
            maps: PortMaps::new(&cfg, n_tx)?,
            ofdm: OfdmDemodulator::new(cfg.bandwidth, cfg.cp),
            chest: (0..n_rx)
                .map(|_| {
                    (0..n_tx)
                        .map(|_| ChannelEstimator::new(cfg.bandwidth, cfg.cp))
                        .collect()
                })
                .collect(),
            grids: vec![vec![Complex32::new(0.0, 0.0); grid_len]; n_rx],
            noise: vec![1.0; n_rx],
            eq: Vec::new(),
            eq_noise: Vec::new(),
            llr: Vec::new(),
            codec: TbCodec::new(),
            max_iterations: DEFAULT_MAX_ITERATIONS,
            n_tx,
            n_rx,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SubframeConfig {
        &self.cfg
    }

    /// (TX antennas, RX antennas).
    pub fn antennas(&self) -> (usize, usize) {
        (self.n_tx, self.n_rx)
    }

    /// Sets the turbo iteration limit per code block (1..=32), as
    /// [`crate::SubframeDecoder::set_max_iterations`].
    pub fn set_max_iterations(&mut self, n: usize) -> Result<()> {
        if !(1..=32).contains(&n) {
            return Err(PhyError::invalid("max_iterations", n, "1..=32"));
        }
        self.max_iterations = n;
        Ok(())
    }

    /// Stops a transport block at its first failed code block, as
    /// [`crate::SubframeDecoder::set_stop_at_first_failure`].
    pub fn set_stop_at_first_failure(&mut self, stop: bool) {
        self.codec.stop_at_first_failure = stop;
    }

    /// The channel estimate from TX port `port` to RX antenna `rx` at RE (l, k) of the last
    /// decoded subframe.
    pub fn channel(&self, rx: usize, port: usize, l: usize, k: usize) -> Option<Complex32> {
        self.chest.get(rx)?.get(port)?.channel(l, k)
    }

    /// Decodes subframe `sf` from `samples` (one buffer per RX antenna, each
    /// `samples_per_subframe` long) into a transport block of `tb_bytes` bytes. The report's
    /// `quality` is that of RX antenna 0 as seen on port 0's CRS.
    pub fn decode<S: AsRef<[Complex32]>>(
        &mut self,
        sf: usize,
        samples: &[S],
        tb_bytes: usize,
    ) -> Result<DecodeReport> {
        check_subframe(sf)?;
        if samples.len() != self.n_rx {
            return Err(PhyError::InvalidLength {
                what: "RX antenna buffers",
                expected: self.n_rx,
                got: samples.len(),
            });
        }
        let active = self.cfg.active_symbols(sf);
        let mut quality = None;
        for (r, s) in samples.iter().enumerate() {
            self.ofdm
                .demodulate(s.as_ref(), active, &mut self.grids[r])?;
            // Each port's estimator sees only that port's pilots; average their noise.
            let mut nv = 0.0;
            for (p, est) in self.chest[r].iter_mut().enumerate() {
                let q = est.estimate(&self.grids[r], active, &self.maps.crs[p], sf);
                nv += q.noise_var * (1.0 + est.estimation_error_factor());
                quality.get_or_insert(q);
            }
            self.noise[r] = nv / self.n_tx as f32;
        }
        self.equalize(sf);
        let m = self.cfg.modulation;
        self.llr.clear();
        modulation::demap_soft(&self.eq, &self.eq_noise, m, &mut self.llr)?;
        descramble_llrs(&mut self.llr, c_init(&self.cfg, sf)?);
        let tb = self.codec.decode(
            &self.llr,
            tb_bytes,
            m.bits_per_symbol(),
            0,
            self.max_iterations,
        )?;
        Ok(DecodeReport {
            payload: tb.payload,
            quality: quality.unwrap_or_default(),
            iterations: tb.iterations,
            code_blocks: tb.code_blocks,
            failed_code_blocks: tb.failed_code_blocks,
            coded_bits: self.llr.len(),
        })
    }

    /// Fills `eq` / `eq_noise` with the combined data symbols of subframe `sf`.
    fn equalize(&mut self, sf: usize) {
        let n_sc = self.cfg.bandwidth.subcarriers();
        let data = &self.maps.data[sf];
        self.eq.clear();
        self.eq_noise.clear();
        let at = |i: u32| (i as usize / n_sc, i as usize % n_sc);
        let h = |est: &ChannelEstimator, (l, k): (usize, usize)| {
            est.channel(l, k).unwrap_or(Complex32::new(0.0, 0.0))
        };
        match (self.n_tx, self.n_rx) {
            (1, 1) => {
                // Exactly the single-antenna equaliser.
                let est = &self.chest[0][0];
                for &i in data {
                    let (l, k) = at(i);
                    let (x, nv) = est.equalize(l, k, self.grids[0][i as usize]);
                    self.eq.push(x);
                    self.eq_noise.push(nv);
                }
            }
            (1, _) => {
                let mut branches = [MrcBranch {
                    y: Complex32::new(0.0, 0.0),
                    h: Complex32::new(0.0, 0.0),
                    noise_var: 1.0,
                }; MAX_ANTENNAS];
                for &i in data {
                    let re = at(i);
                    for (r, b) in branches.iter_mut().enumerate().take(self.n_rx) {
                        *b = MrcBranch {
                            y: self.grids[r][i as usize],
                            h: h(&self.chest[r][0], re),
                            noise_var: self.noise[r],
                        };
                    }
                    let (x, nv) = mrc_combine(&branches[..self.n_rx]);
                    self.eq.push(x);
                    self.eq_noise.push(nv);
                }
            }
            _ => {
                let mut branches = [SfbcBranch {
                    y: [Complex32::new(0.0, 0.0); 2],
                    h: [Complex32::new(0.0, 0.0); 2],
                    noise_var: 1.0,
                }; MAX_ANTENNAS];
                for pair in data.chunks_exact(2) {
                    let (a, b) = (at(pair[0]), at(pair[1]));
                    for (r, br) in branches.iter_mut().enumerate().take(self.n_rx) {
                        let ch = &self.chest[r];
                        *br = SfbcBranch {
                            y: [
                                self.grids[r][pair[0] as usize],
                                self.grids[r][pair[1] as usize],
                            ],
                            // The pair's REs are neighbours: one channel for both.
                            h: [
                                (h(&ch[0], a) + h(&ch[0], b)) * 0.5,
                                (h(&ch[1], a) + h(&ch[1], b)) * 0.5,
                            ],
                            noise_var: self.noise[r],
                        };
                    }
                    let (x, nv) = sfbc_combine(&branches[..self.n_rx]);
                    self.eq.extend_from_slice(&x);
                    self.eq_noise.extend_from_slice(&[nv, nv]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Fading, FadingChannel};
    use crate::numerology::{Bandwidth, CellId, CyclicPrefix, Duplex, TddConfig};
    use crate::sim::mimo_bler_point;
    use crate::subframe::{SubframeDecoder, SubframeEncoder};
    use crate::Modulation;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn link(bw: Bandwidth, tx: u8, rx: u8) -> SubframeConfig {
        SubframeConfig {
            num_antenna_tx: tx,
            num_antenna_rx: rx,
            ..SubframeConfig::new(
                bw,
                CyclicPrefix::Normal,
                Duplex::Fdd,
                CellId::new(301).unwrap(),
                0x3e9,
                Modulation::Qpsk,
            )
        }
    }

    fn c(re: f32, im: f32) -> Complex32 {
        Complex32::new(re, im)
    }

    fn random_tb(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.random()).collect()
    }

    #[test]
    fn control_fields_choose_the_scheme_or_say_why_not() {
        assert_eq!(TxScheme::from_control(1, 1).unwrap(), TxScheme::SinglePort);
        assert_eq!(
            TxScheme::from_control(2, 2).unwrap(),
            TxScheme::TransmitDiversity
        );
        for mode in 3..=9 {
            let e = TxScheme::from_control(mode, 2).unwrap_err();
            assert!(
                matches!(e, PhyError::Unsupported(ref s) if s.contains("spatial")),
                "{e}"
            );
        }
        assert!(matches!(
            TxScheme::from_control(2, 4),
            Err(PhyError::Unsupported(_))
        ));
        for (mode, tx) in [(0, 1), (10, 1), (1, 2), (2, 1), (1, 3)] {
            assert!(
                matches!(
                    TxScheme::from_control(mode, tx),
                    Err(PhyError::InvalidParameter { .. })
                ),
                "{mode} {tx}"
            );
        }
        assert_eq!(check_link(&link(Bandwidth::Mhz3, 2, 2)).unwrap(), (2, 2));
        assert!(matches!(
            check_link(&link(Bandwidth::Mhz3, 4, 1)),
            Err(PhyError::Unsupported(_))
        ));
        assert!(check_link(&link(Bandwidth::Mhz3, 3, 1)).is_err());
        let bad_rnti = SubframeConfig {
            rnti: 0,
            ..link(Bandwidth::Mhz3, 2, 2)
        };
        assert!(check_link(&bad_rnti).is_err(), "other fields still checked");
    }

    #[test]
    fn two_port_map_leaves_out_both_ports_crs_in_pairs() {
        let cfg = link(Bandwidth::Mhz1_4, 2, 1);
        // 1.4 MHz, CFI 2, subframe 1: 12 data symbols × 72, three of them CRS symbols
        // (l = 4, 7, 11) losing 12 REs per port.
        assert_eq!(data_res(&cfg, 1, 1).len(), 12 * 72 - 3 * 12);
        assert_eq!(data_res(&cfg, 2, 1).len(), 12 * 72 - 3 * 24);
        let p1 = CellReference::for_port(cfg.bandwidth, cfg.cp, cfg.cell, CrsPort::Port1);
        let n_sc = 72;
        for sf in 0..10 {
            let d = data_res(&cfg, 2, sf);
            assert!(d
                .iter()
                .all(|&i| !p1.is_crs(i as usize / n_sc, i as usize % n_sc)));
            assert!(d.chunks(2).all(|p| p.len() == 2 && p[0] / 72 == p[1] / 72));
        }
        // TDD with extended CP and a partial allocation still pairs up.
        let tdd = SubframeConfig {
            cp: CyclicPrefix::Extended,
            duplex: Duplex::Tdd(TddConfig::new(2).unwrap()),
            prb_start: 3,
            prb_count: 7,
            ..link(Bandwidth::Mhz3, 2, 2)
        };
        assert!(MimoEncoder::new(tdd).is_ok());
    }

    #[test]
    fn one_port_encoder_sends_the_single_antenna_samples() {
        let cfg = link(Bandwidth::Mhz3, 1, 1);
        let mut single = SubframeEncoder::new(cfg).unwrap();
        let mut enc = MimoEncoder::new(cfg).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut want = vec![c(0.0, 0.0); cfg.samples_per_subframe()];
        let mut got = vec![want.clone()];
        for sf in 0..10 {
            assert_eq!(
                data_res(&cfg, 1, sf).len(),
                cfg.capacity(sf, 0.5).unwrap().data_res
            );
            let tb = random_tb(&mut rng, enc.max_tb_bytes(sf, 0.5));
            single.encode(sf, &tb, &mut want).unwrap();
            enc.encode(sf, &tb, &mut got).unwrap();
            assert_eq!(got[0], want, "subframe {sf}");
        }
    }

    #[test]
    fn idle_subframes_carry_each_ports_references() {
        let one = link(Bandwidth::Mhz1_4, 1, 1);
        let mut single = SubframeEncoder::new(one).unwrap();
        let mut enc = MimoEncoder::new(one).unwrap();
        let len = one.samples_per_subframe();
        let mut want = vec![c(0.0, 0.0); len];
        let mut got = vec![vec![c(0.0, 0.0); len]];
        single.encode_idle(0, &mut want).unwrap();
        enc.encode_idle(0, &mut got).unwrap();
        assert_eq!(got[0], want);
        // Two ports: antenna 1 carries only its CRS (no sync), antenna 0 what one antenna
        // sends; the port-0 estimator on antenna 0 sees a clean channel.
        let two = link(Bandwidth::Mhz1_4, 2, 1);
        let mut enc = MimoEncoder::new(two).unwrap();
        let mut out = vec![vec![c(0.0, 0.0); len]; 2];
        enc.encode_idle(0, &mut out).unwrap();
        assert_eq!(out[0], want);
        let mut demod = crate::ofdm::OfdmDemodulator::new(two.bandwidth, two.cp);
        let mut grid = vec![c(0.0, 0.0); 14 * 72];
        demod.demodulate(&out[1], 14, &mut grid).unwrap();
        let p1 = CellReference::for_port(two.bandwidth, two.cp, two.cell, CrsPort::Port1);
        for (i, v) in grid.iter().enumerate() {
            let (l, k) = (i / 72, i % 72);
            assert_eq!(v.norm() > 0.5, p1.is_crs(l, k), "RE ({l}, {k}): {v}");
        }
        assert!(enc.encode_idle(0, &mut out[..1]).is_err());
    }

    #[test]
    fn one_by_one_decoder_is_the_single_antenna_decoder() {
        let cfg = link(Bandwidth::Mhz1_4, 1, 1);
        let mut enc = SubframeEncoder::new(cfg).unwrap();
        let mut single = SubframeDecoder::new(cfg).unwrap();
        let mut dec = MimoDecoder::new(cfg).unwrap();
        let mut ch = FadingChannel::new(1, 1, Fading::Rayleigh, Some(6.0), 11).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut tx = vec![c(0.0, 0.0); cfg.samples_per_subframe()];
        let mut rx = Vec::new();
        let mut failures = 0;
        for i in 0..20 {
            let sf = i % 10;
            let tb = random_tb(&mut rng, cfg.capacity(sf, 0.5).unwrap().max_tb_bytes);
            enc.encode(sf, &tb, &mut tx).unwrap();
            ch.process(&[&tx], &mut rx).unwrap();
            let a = single.decode(sf, &rx[0], tb.len()).unwrap();
            let b = dec.decode(sf, &rx, tb.len()).unwrap();
            assert_eq!(a, b, "subframe {i}");
            failures += usize::from(a.payload.is_none());
        }
        assert!(
            failures > 0 && failures < 20,
            "fading gives both: {failures}"
        );
    }

    #[test]
    fn sfbc_combining_recovers_symbols_exactly_on_a_known_channel() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut g = || c(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let x: Vec<Complex32> = (0..64).map(|_| g()).collect();
        let (mut p0, mut p1) = (Vec::new(), Vec::new());
        sfbc_precode(&x, &mut p0, &mut p1).unwrap();
        // Power split: each port carries half of the symbols' power.
        let px: f32 = x.iter().map(|v| v.norm_sqr()).sum();
        let pp: f32 = p0.iter().chain(&p1).map(|v| v.norm_sqr()).sum();
        assert!((px - pp).abs() < 1e-4 * px);
        for n_rx in [1, 2] {
            let h: Vec<[Complex32; 2]> = (0..n_rx).map(|_| [g(), g()]).collect();
            let nv = [0.5f32, 2.0];
            for i in 0..32 {
                let branches: Vec<SfbcBranch> = (0..n_rx)
                    .map(|r| {
                        let rx = |re: usize| h[r][0] * p0[re] + h[r][1] * p1[re];
                        SfbcBranch {
                            y: [rx(2 * i), rx(2 * i + 1)],
                            h: h[r],
                            noise_var: nv[r],
                        }
                    })
                    .collect();
                let (est, var) = sfbc_combine(&branches);
                assert!((est[0] - x[2 * i]).norm() < 1e-5, "{n_rx}: {est:?}");
                assert!((est[1] - x[2 * i + 1]).norm() < 1e-5);
                let s: f32 = (0..n_rx)
                    .map(|r| (h[r][0].norm_sqr() + h[r][1].norm_sqr()) / nv[r])
                    .sum();
                assert!((var - 2.0 / s).abs() < 1e-5 * var);
            }
        }
        assert!(sfbc_precode(&x[..3], &mut p0, &mut p1).is_err());
        let dead = SfbcBranch {
            y: [c(1.0, 0.0); 2],
            h: [c(0.0, 0.0); 2],
            noise_var: 1.0,
        };
        assert_eq!(sfbc_combine(&[dead]).1, f32::INFINITY);
    }

    #[test]
    fn mrc_weights_antennas_by_their_snr() {
        let x = c(0.3, -0.7);
        let h = [c(0.5, 0.5), c(-1.0, 0.2)];
        let nv = [0.1f32, 0.4];
        let b: Vec<MrcBranch> = (0..2)
            .map(|r| MrcBranch {
                y: h[r] * x,
                h: h[r],
                noise_var: nv[r],
            })
            .collect();
        let (est, var) = mrc_combine(&b);
        assert!((est - x).norm() < 1e-6);
        let s = h[0].norm_sqr() / nv[0] + h[1].norm_sqr() / nv[1];
        assert!((var - 1.0 / s).abs() < 1e-6);
    }

    /// Encodes subframes, sends them through `fading` at `snr_db` and checks every one decodes;
    /// with no noise, also that the combined symbols are the transmitted ones.
    fn round_trip(tx: u8, rx: u8, fading: Fading, snr_db: Option<f64>) {
        let cfg = link(Bandwidth::Mhz3, tx, rx);
        let mut enc = MimoEncoder::new(cfg).unwrap();
        let mut dec = MimoDecoder::new(cfg).unwrap();
        let mut ch = FadingChannel::new(tx.into(), rx.into(), fading, snr_db, 4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(u64::from(tx * 10 + rx));
        let mut out = vec![vec![c(0.0, 0.0); cfg.samples_per_subframe()]; tx.into()];
        let mut rx_buf = Vec::new();
        for sf in 0..10 {
            let tb = random_tb(&mut rng, enc.max_tb_bytes(sf, 0.5));
            enc.encode(sf, &tb, &mut out).unwrap();
            ch.process(&out, &mut rx_buf).unwrap();
            let r = dec.decode(sf, &rx_buf, tb.len()).unwrap();
            assert_eq!(r.payload.as_deref(), Some(&tb[..]), "{tx}x{rx} sf {sf}");
            if snr_db.is_none() {
                assert_eq!(dec.eq.len(), enc.symbols.len());
                for (a, b) in dec.eq.iter().zip(&enc.symbols) {
                    assert!((a - b).norm() < 1e-3, "{tx}x{rx} sf {sf}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn sfbc_round_trip_noiseless_is_exact() {
        let h = vec![c(0.8, 0.3), c(-0.2, -0.6)];
        round_trip(2, 1, Fading::Fixed(h), None);
    }

    #[test]
    fn decodes_through_identity_channels() {
        let one = c(1.0, 0.0);
        let zero = c(0.0, 0.0);
        // 2×1: either port alone carries the block.
        round_trip(2, 1, Fading::Fixed(vec![one, zero]), Some(15.0));
        round_trip(2, 1, Fading::Fixed(vec![zero, one]), Some(15.0));
        round_trip(2, 2, Fading::Fixed(vec![one, zero, zero, one]), None);
        round_trip(2, 2, Fading::Fixed(vec![one, zero, zero, one]), Some(5.0));
        // 1×2: MRC still decodes with one antenna deaf.
        round_trip(1, 2, Fading::Fixed(vec![zero, one]), Some(5.0));
    }

    #[test]
    fn post_combining_noise_variance_matches_the_actual_error() {
        // The demapper's LLRs are right when E|x̂ − x|² / reported variance ≈ 1.
        let h = [c(0.9, -0.4), c(-0.3, 0.7), c(0.2, 1.1), c(-0.8, -0.5)];
        for (tx, rx) in [(1u8, 1u8), (1, 2), (2, 1), (2, 2)] {
            let cfg = link(Bandwidth::Mhz3, tx, rx);
            let mut enc = MimoEncoder::new(cfg).unwrap();
            let mut dec = MimoDecoder::new(cfg).unwrap();
            let gains = h[..usize::from(tx * rx)].to_vec();
            let mut ch =
                FadingChannel::new(tx.into(), rx.into(), Fading::Fixed(gains), Some(12.0), 8)
                    .unwrap();
            let mut out = vec![vec![c(0.0, 0.0); cfg.samples_per_subframe()]; tx.into()];
            let mut rx_buf = Vec::new();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let (mut ratio, mut n) = (0.0f64, 0usize);
            for sf in [1, 2, 3] {
                let tb = random_tb(&mut rng, enc.max_tb_bytes(sf, 0.5));
                enc.encode(sf, &tb, &mut out).unwrap();
                ch.process(&out, &mut rx_buf).unwrap();
                dec.decode(sf, &rx_buf, tb.len()).unwrap();
                for ((e, v), x) in dec.eq.iter().zip(&dec.eq_noise).zip(&enc.symbols) {
                    ratio += f64::from((e - x).norm_sqr() / v);
                    n += 1;
                }
            }
            let ratio = ratio / n as f64;
            assert!((0.8..1.25).contains(&ratio), "{tx}x{rx}: {ratio}");
        }
    }

    #[test]
    fn two_antennas_survive_residual_cfo_and_timing_offset() {
        // One TX radio and one RX radio: every link shares the 80 Hz residual CFO and the
        // 3-sample late timing (inside the FFT window's backoff) of the single-antenna tests.
        use crate::channel::{Channel, ChannelParams};
        let h = [c(0.7, 0.2), c(-0.4, 0.6), c(0.1, -0.9), c(0.8, 0.3)];
        for (tx, rx) in [(2u8, 1u8), (1, 2), (2, 2)] {
            let cfg = link(Bandwidth::Mhz3, tx, rx);
            let mut enc = MimoEncoder::new(cfg).unwrap();
            let mut dec = MimoDecoder::new(cfg).unwrap();
            let gains = h[..usize::from(tx * rx)].to_vec();
            let mut ch =
                FadingChannel::new(tx.into(), rx.into(), Fading::Fixed(gains), Some(12.0), 5)
                    .unwrap();
            let params = ChannelParams {
                cfo_hz: 80.0,
                delay_samples: 3.0,
                ..ChannelParams::ideal(cfg.bandwidth.sample_rate_hz())
            };
            let mut drift: Vec<Channel> = (0..rx).map(|_| Channel::new(params, 0)).collect();
            let mut out = vec![vec![c(0.0, 0.0); cfg.samples_per_subframe()]; tx.into()];
            let (mut mixed, mut late) = (Vec::new(), vec![Vec::new(); rx.into()]);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            for i in 0..12 {
                let sf = i % 10;
                let tb = random_tb(&mut rng, enc.max_tb_bytes(sf, 0.5));
                enc.encode(sf, &tb, &mut out).unwrap();
                ch.process(&out, &mut mixed).unwrap();
                for (r, d) in drift.iter_mut().enumerate() {
                    d.process(&mixed[r], &mut late[r]);
                }
                let rep = dec.decode(sf, &late, tb.len()).unwrap();
                // The first subframe starts with 3 samples of silence: skip its verdict.
                if i > 0 {
                    assert_eq!(rep.payload.as_deref(), Some(&tb[..]), "{tx}x{rx} {i}");
                    assert!((rep.quality.residual_cfo_hz - 80.0).abs() < 40.0, "{rep:?}");
                }
            }
        }
    }

    #[test]
    fn wrong_buffer_counts_are_errors() {
        let cfg = link(Bandwidth::Mhz1_4, 2, 2);
        let mut enc = MimoEncoder::new(cfg).unwrap();
        let mut dec = MimoDecoder::new(cfg).unwrap();
        let len = cfg.samples_per_subframe();
        let mut one = vec![vec![c(0.0, 0.0); len]];
        assert!(enc.encode(0, &[1, 2, 3], &mut one).is_err());
        assert!(dec.decode(0, &one, 3).is_err());
        let short = vec![vec![c(0.0, 0.0); len - 1]; 2];
        assert!(dec.decode(0, &short, 3).is_err());
        assert!(dec.set_max_iterations(0).is_err() && dec.set_max_iterations(33).is_err());
        dec.set_max_iterations(4).unwrap();
        dec.set_stop_at_first_failure(true);
        let garbage = vec![vec![c(f32::NAN, 1e30); len]; 2];
        assert_eq!(dec.decode(1, &garbage, 20).unwrap().payload, None);
    }

    #[test]
    fn two_by_two_beats_one_by_one_over_fading() {
        // 1.4 MHz QPSK rate 0.5 at 8 dB mean SNR: 1×1 loses the blocks of deep fades
        // (P(|h|² < ~0.2) ≈ 0.2); with four links a fade that deep is rare.
        let point = |tx, rx| {
            mimo_bler_point(
                link(Bandwidth::Mhz1_4, tx, rx),
                Fading::Rayleigh,
                8.0,
                60,
                0.5,
                21,
            )
            .unwrap()
        };
        let siso = point(1, 1);
        let mimo = point(2, 2);
        assert!(siso.block_errors >= 5, "1×1: {siso:?}");
        assert!(mimo.block_errors <= 2, "2×2: {mimo:?}");
    }
}
