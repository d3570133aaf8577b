//! The transport-block API: bytes ⇄ one 1 ms subframe of time-domain samples.
//!
//! Resource mapping of a subframe (one antenna port, PDSCH-like, TS 36.211 §6.3–6.4):
//! the first `control_symbols` OFDM symbols carry the CRS and, when the sender has one, a
//! small control message ([`CONTROL_BYTES`], Ferry's PDCCH-like channel that carries HARQ
//! information: turbo-coded with CRC24A into every non-CRS RE of the control region, QPSK,
//! scrambled with the PDCCH's c_init = ⌊n_s/2⌋·2^9 + N_ID^cell of §6.8.2); the data REs are the allocated PRBs of the remaining symbols (DwPTS only in a TDD
//! special subframe) minus port-0 CRS REs and minus the 72 central subcarriers of the
//! symbols carrying PSS/SSS. Data REs are filled frequency first, then time. Coded bits
//! are scrambled with c_init = RNTI·2^14 + ⌊n_s/2⌋·2^9 + N_ID^cell (§6.3.1).

use crate::chest::{ChannelEstimator, ChannelQuality};
use crate::crs::CellReference;
use crate::fec::{self, TbCodec};
use crate::gold::pseudo_random;
use crate::modulation::{self, Modulation};
use crate::numerology::{
    check_antennas, dwpts_symbols, Bandwidth, CellId, CyclicPrefix, Duplex, SubframeKind,
    SUBFRAMES_PER_FRAME,
};
use crate::ofdm::{OfdmDemodulator, OfdmModulator};
use crate::scrambling::{descramble_llrs, pdsch_c_init, scramble_bits};
use crate::sync::{self, placement, SYNC_LEN};
use crate::{PhyError, Result};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Bytes of the control message a subframe may carry in its control region.
pub const CONTROL_BYTES: usize = 10;

/// Turbo iterations allowed per code block by default (early stop on CRC).
pub const DEFAULT_MAX_ITERATIONS: usize = 8;

/// Everything that fixes the waveform of a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubframeConfig {
    /// Channel bandwidth.
    pub bandwidth: Bandwidth,
    /// Cyclic prefix.
    pub cp: CyclicPrefix,
    /// FDD or TDD with its configuration.
    pub duplex: Duplex,
    /// Physical cell identity (PSS/SSS, CRS, scrambling).
    pub cell: CellId,
    /// RNTI used for scrambling: 1..=0xFFF3.
    pub rnti: u16,
    /// Modulation of the data REs.
    pub modulation: Modulation,
    /// First allocated PRB.
    pub prb_start: usize,
    /// Number of allocated PRBs (≥ 1).
    pub prb_count: usize,
    /// OFDM symbols left for control at the start of each subframe (CFI): 0..=3, or 0..=4
    /// at 1.4 MHz. Default 1 (2 at 1.4 MHz).
    pub control_symbols: usize,
    /// The Control's `numAntennaTX` (1; 2 and 4 are valid LTE but unsupported here).
    pub num_antenna_tx: u8,
    /// The Control's `numAntennaRX`.
    pub num_antenna_rx: u8,
}

impl SubframeConfig {
    /// Full-band allocation with default control region and one antenna.
    pub fn new(
        bandwidth: Bandwidth,
        cp: CyclicPrefix,
        duplex: Duplex,
        cell: CellId,
        rnti: u16,
        modulation: Modulation,
    ) -> Self {
        SubframeConfig {
            bandwidth,
            cp,
            duplex,
            cell,
            rnti,
            modulation,
            prb_start: 0,
            prb_count: bandwidth.rb_count(),
            control_symbols: if bandwidth.rb_count() <= 10 { 2 } else { 1 },
            num_antenna_tx: 1,
            num_antenna_rx: 1,
        }
    }

    /// Checks every field against what LTE and this implementation allow.
    pub fn validate(&self) -> Result<()> {
        check_antennas(self.num_antenna_tx, self.num_antenna_rx)?;
        if self.rnti == 0 || self.rnti > 0xFFF3 {
            return Err(PhyError::invalid(
                "RNTI",
                self.rnti,
                "1..=65523 (0x0001..=0xFFF3)",
            ));
        }
        let n_rb = self.bandwidth.rb_count();
        if self.prb_count == 0 || self.prb_count > n_rb {
            return Err(PhyError::invalid(
                "prb_count",
                self.prb_count,
                "1..=N_RB of the bandwidth",
            ));
        }
        if self.prb_start > n_rb - self.prb_count {
            return Err(PhyError::invalid(
                "prb_start",
                self.prb_start,
                "prb_start + prb_count ≤ N_RB",
            ));
        }
        let max_cfi = if n_rb <= 10 { 4 } else { 3 };
        if self.control_symbols > max_cfi {
            return Err(PhyError::invalid(
                "control_symbols",
                self.control_symbols,
                "0..=3 (0..=4 at 1.4 MHz)",
            ));
        }
        Ok(())
    }

    /// OFDM symbols that carry signal in subframe `sf` (all, or DwPTS in a special one).
    pub fn active_symbols(&self, sf: usize) -> usize {
        match self.duplex.subframe_kind(sf) {
            SubframeKind::Special => dwpts_symbols(self.cp),
            _ => self.cp.symbols_per_subframe(),
        }
    }

    /// Samples per subframe.
    pub fn samples_per_subframe(&self) -> usize {
        self.bandwidth.samples_per_subframe()
    }

    /// Data capacity of subframe `sf` (0..=9): data REs, coded bits G, and the largest
    /// transport block at code rate ≤ `max_code_rate`.
    pub fn capacity(&self, sf: usize, max_code_rate: f64) -> Result<Capacity> {
        self.validate()?;
        check_subframe(sf)?;
        let res = data_res(self, sf).len();
        let g = res * self.modulation.bits_per_symbol();
        Ok(Capacity {
            data_res: res,
            coded_bits: g,
            max_tb_bytes: fec::max_tb_bytes(g, max_code_rate),
        })
    }
}

/// Data capacity of one subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Data resource elements.
    pub data_res: usize,
    /// Coded bits G = data REs · Q_m.
    pub coded_bits: usize,
    /// Largest transport block (bytes) at the requested maximum code rate.
    pub max_tb_bytes: usize,
}

fn check_subframe(sf: usize) -> Result<()> {
    if sf < SUBFRAMES_PER_FRAME {
        Ok(())
    } else {
        Err(PhyError::invalid("subframe index", sf, "0..=9"))
    }
}

/// Grid indices (l·n_sc + k) of the data REs of subframe `sf`, frequency first.
fn data_res(cfg: &SubframeConfig, sf: usize) -> Vec<u32> {
    res_of_symbols(cfg, sf, cfg.control_symbols..cfg.active_symbols(sf))
}

/// Grid indices of the control region's REs of subframe `sf` (symbols before
/// `control_symbols`).
fn control_res(cfg: &SubframeConfig, sf: usize) -> Vec<u32> {
    res_of_symbols(cfg, sf, 0..cfg.control_symbols.min(cfg.active_symbols(sf)))
}

/// The allocated PRBs' REs of `symbols` in subframe `sf`, frequency first, minus CRS and the
/// central 72 subcarriers of a symbol carrying PSS/SSS.
fn res_of_symbols(cfg: &SubframeConfig, sf: usize, symbols: std::ops::Range<usize>) -> Vec<u32> {
    let n_sc = cfg.bandwidth.subcarriers();
    let crs = crs_pattern(cfg);
    let sync = placement(cfg.duplex, cfg.cp, sf);
    let sync_syms = [sync.pss_symbol, sync.sss_symbol.map(|s| s.0)];
    let k_lo = 12 * cfg.prb_start;
    let k_hi = 12 * (cfg.prb_start + cfg.prb_count);
    let mut out = Vec::new();
    for l in symbols {
        let is_sync = sync_syms.contains(&Some(l));
        for k in k_lo..k_hi {
            if crs.is_crs(l, k) || (is_sync && k + 36 >= n_sc / 2 && k < n_sc / 2 + 36) {
                continue;
            }
            out.push((l * n_sc + k) as u32);
        }
    }
    out
}

/// The control channel's scrambling seed (36.211 §6.8.2, PDCCH).
fn control_c_init(sf: usize, pci: u16) -> u32 {
    (sf as u32) << 9 | u32::from(pci)
}

fn crs_pattern(cfg: &SubframeConfig) -> CellReference {
    CellReference::new(cfg.bandwidth, cfg.cp, cfg.cell)
}

/// Precomputed per-cell signals and per-subframe RE maps shared by encoder and decoder.
struct CellMaps {
    crs: CellReference,
    pss: [Complex32; SYNC_LEN],
    sss: [[f32; SYNC_LEN]; 2],
    data: Vec<Vec<u32>>,
    control: Vec<Vec<u32>>,
}

impl CellMaps {
    fn new(cfg: &SubframeConfig) -> Result<Self> {
        cfg.validate()?;
        let cell = cfg.cell;
        Ok(CellMaps {
            crs: crs_pattern(cfg),
            pss: sync::pss(cell.sector())?,
            sss: [
                sync::sss(cell.group(), cell.sector(), sync::SssSubframe::Sf0)?,
                sync::sss(cell.group(), cell.sector(), sync::SssSubframe::Sf5)?,
            ],
            data: (0..SUBFRAMES_PER_FRAME)
                .map(|sf| data_res(cfg, sf))
                .collect(),
            control: (0..SUBFRAMES_PER_FRAME)
                .map(|sf| control_res(cfg, sf))
                .collect(),
        })
    }

    /// Writes CRS and sync signals of subframe `sf` into a zeroed grid.
    fn insert_reference(&self, cfg: &SubframeConfig, sf: usize, grid: &mut [Complex32]) {
        let n_sc = cfg.bandwidth.subcarriers();
        let active = cfg.active_symbols(sf);
        self.crs.insert(sf, grid, active);
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

/// Encodes transport blocks into subframes of samples. Buffers are reused across calls.
pub struct SubframeEncoder {
    cfg: SubframeConfig,
    maps: CellMaps,
    ofdm: OfdmModulator,
    grid: Vec<Complex32>,
    symbols: Vec<Complex32>,
    filler: Vec<u8>,
    codec: TbCodec,
    bits: Vec<u8>,
}

impl SubframeEncoder {
    /// Validates `cfg` and prepares the encoder.
    pub fn new(cfg: SubframeConfig) -> Result<Self> {
        let maps = CellMaps::new(&cfg)?;
        Ok(SubframeEncoder {
            ofdm: OfdmModulator::new(cfg.bandwidth, cfg.cp),
            grid: vec![
                Complex32::new(0.0, 0.0);
                cfg.cp.symbols_per_subframe() * cfg.bandwidth.subcarriers()
            ],
            symbols: Vec::new(),
            filler: Vec::new(),
            codec: TbCodec::new(),
            bits: Vec::new(),
            maps,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SubframeConfig {
        &self.cfg
    }

    /// Encodes `tb` into subframe `sf` (0..=9) of samples written to `out`
    /// (`samples_per_subframe` long).
    pub fn encode(&mut self, sf: usize, tb: &[u8], out: &mut [Complex32]) -> Result<()> {
        self.encode_with(sf, Some((tb, 0)), None, out)
    }

    /// Encodes subframe `sf` with an optional transport block at redundancy version `rv`
    /// (`(tb, rv)`: a HARQ retransmission sends the same `tb` with another `rv`) and an
    /// optional control message in the control region. With neither, the subframe carries
    /// reference and sync signals only.
    pub fn encode_with(
        &mut self,
        sf: usize,
        tb: Option<(&[u8], u8)>,
        control: Option<&[u8; CONTROL_BYTES]>,
        out: &mut [Complex32],
    ) -> Result<()> {
        check_subframe(sf)?;
        self.grid.fill(Complex32::new(0.0, 0.0));
        self.maps.insert_reference(&self.cfg, sf, &mut self.grid);
        if let Some((tb, rv)) = tb {
            let m = self.cfg.modulation;
            let g = self.maps.data[sf].len() * m.bits_per_symbol();
            self.codec
                .encode_into(tb, g, m.bits_per_symbol(), rv, &mut self.bits)?;
            let c_init = self.c_init(sf)?;
            scramble_bits(&mut self.bits, c_init);
            self.symbols.clear();
            modulation::map(&self.bits, m, &mut self.symbols)?;
            for (&i, &s) in self.maps.data[sf].iter().zip(self.symbols.iter()) {
                self.grid[i as usize] = s;
            }
        }
        if let Some(msg) = control {
            let res = &self.maps.control[sf];
            if res.is_empty() {
                return Err(PhyError::invalid(
                    "control message",
                    sf,
                    "a subframe with a control region (control_symbols ≥ 1)",
                ));
            }
            self.codec
                .encode_into(msg, 2 * res.len(), 2, 0, &mut self.bits)?;
            scramble_bits(&mut self.bits, control_c_init(sf, self.cfg.cell.pci()));
            self.symbols.clear();
            modulation::map(&self.bits, Modulation::Qpsk, &mut self.symbols)?;
            for (&i, &s) in res.iter().zip(self.symbols.iter()) {
                self.grid[i as usize] = s;
            }
        }
        self.ofdm.modulate(&self.grid, out)
    }

    /// A subframe with reference and sync signals only (no data).
    pub fn encode_idle(&mut self, sf: usize, out: &mut [Complex32]) -> Result<()> {
        check_subframe(sf)?;
        self.grid.fill(Complex32::new(0.0, 0.0));
        self.maps.insert_reference(&self.cfg, sf, &mut self.grid);
        self.ofdm.modulate(&self.grid, out)
    }

    /// A fully loaded subframe: every RE of the active symbols that is not CRS or sync
    /// carries pseudo-random QPSK (seeded) — the worst case for cell search.
    pub fn encode_random_load(
        &mut self,
        sf: usize,
        seed: u32,
        out: &mut [Complex32],
    ) -> Result<()> {
        check_subframe(sf)?;
        self.grid.fill(Complex32::new(0.0, 0.0));
        let n = self.grid.len();
        self.filler.resize(2 * n, 0);
        pseudo_random(seed, &mut self.filler);
        let a = std::f32::consts::FRAC_1_SQRT_2;
        let active = self.cfg.active_symbols(sf) * self.cfg.bandwidth.subcarriers();
        for (i, g) in self.grid.iter_mut().enumerate().take(active) {
            let b = &self.filler[2 * i..2 * i + 2];
            *g = Complex32::new(
                a * (1.0 - 2.0 * f32::from(b[0])),
                a * (1.0 - 2.0 * f32::from(b[1])),
            );
        }
        // Clear the central sync band of sync symbols before writing references there.
        let n_sc = self.cfg.bandwidth.subcarriers();
        let p = placement(self.cfg.duplex, self.cfg.cp, sf);
        for l in [p.pss_symbol, p.sss_symbol.map(|s| s.0)]
            .into_iter()
            .flatten()
        {
            for k in n_sc / 2 - 36..n_sc / 2 + 36 {
                if let Some(g) = self.grid.get_mut(l * n_sc + k) {
                    *g = Complex32::new(0.0, 0.0);
                }
            }
        }
        self.maps.insert_reference(&self.cfg, sf, &mut self.grid);
        self.ofdm.modulate(&self.grid, out)
    }

    fn c_init(&self, sf: usize) -> Result<u32> {
        pdsch_c_init(self.cfg.rnti, 0, (2 * sf) as u8, self.cfg.cell.pci())
    }
}

/// What came out of decoding one subframe.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeReport {
    /// The transport block when its CRC passed, `None` on CRC failure.
    pub payload: Option<Vec<u8>>,
    /// SNR, EVM, residual CFO and timing estimated from the CRS.
    pub quality: ChannelQuality,
    /// Turbo iterations run (summed over code blocks).
    pub iterations: usize,
    /// Code blocks in the transport block.
    pub code_blocks: usize,
    /// Code blocks whose CRC failed.
    pub failed_code_blocks: usize,
    /// Coded bits G of the subframe.
    pub coded_bits: usize,
}

/// Decodes subframes of samples back into transport blocks. Buffers are reused.
pub struct SubframeDecoder {
    cfg: SubframeConfig,
    maps: CellMaps,
    ofdm: OfdmDemodulator,
    chest: ChannelEstimator,
    grid: Vec<Complex32>,
    eq: Vec<Complex32>,
    noise: Vec<f32>,
    llr: Vec<f32>,
    codec: TbCodec,
    control_codec: TbCodec,
    max_iterations: usize,
}

impl SubframeDecoder {
    /// Validates `cfg` and prepares the decoder.
    pub fn new(cfg: SubframeConfig) -> Result<Self> {
        let maps = CellMaps::new(&cfg)?;
        Ok(SubframeDecoder {
            ofdm: OfdmDemodulator::new(cfg.bandwidth, cfg.cp),
            chest: ChannelEstimator::new(cfg.bandwidth, cfg.cp),
            grid: vec![
                Complex32::new(0.0, 0.0);
                cfg.cp.symbols_per_subframe() * cfg.bandwidth.subcarriers()
            ],
            eq: Vec::new(),
            noise: Vec::new(),
            llr: Vec::new(),
            codec: TbCodec::new(),
            control_codec: TbCodec::new(),
            max_iterations: DEFAULT_MAX_ITERATIONS,
            maps,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SubframeConfig {
        &self.cfg
    }

    /// Sets the turbo iteration limit per code block (1..=32).
    pub fn set_max_iterations(&mut self, n: usize) -> Result<()> {
        if !(1..=32).contains(&n) {
            return Err(PhyError::invalid("max_iterations", n, "1..=32"));
        }
        self.max_iterations = n;
        Ok(())
    }

    /// When true, decoding a transport block stops at its first failed code block (the
    /// block is lost anyway): bounds the time a bad subframe costs a real-time loop. The
    /// remaining code blocks are then counted as failed. Off by default.
    pub fn set_stop_at_first_failure(&mut self, stop: bool) {
        self.codec.stop_at_first_failure = stop;
    }

    /// Chooses the turbo decoder (the 16-bit fixed-point one by default; the f32 one is
    /// the reference).
    pub fn set_turbo_decoder(&mut self, kind: fec::DecoderKind) {
        self.codec.decoder = kind;
    }

    /// Demodulates and estimates the channel only: SNR / EVM / drift of subframe `sf`.
    pub fn measure(&mut self, sf: usize, samples: &[Complex32]) -> Result<ChannelQuality> {
        check_subframe(sf)?;
        let active = self.cfg.active_symbols(sf);
        self.ofdm.demodulate(samples, active, &mut self.grid)?;
        Ok(self.chest.estimate(&self.grid, active, &self.maps.crs, sf))
    }

    /// Decodes subframe `sf` (0..=9) from `samples` (`samples_per_subframe` long) into a
    /// transport block of `tb_bytes` bytes, or a CRC failure with statistics.
    pub fn decode(
        &mut self,
        sf: usize,
        samples: &[Complex32],
        tb_bytes: usize,
    ) -> Result<DecodeReport> {
        let quality = self.measure(sf, samples)?;
        self.decode_data(sf, quality, tb_bytes, 0, None)
    }

    /// Decodes the control message of subframe `sf` from the grid of the last
    /// [`SubframeDecoder::measure`] of that subframe: `None` when its CRC fails (no message,
    /// or one lost to noise).
    pub fn decode_control(&mut self, sf: usize) -> Result<Option<[u8; CONTROL_BYTES]>> {
        check_subframe(sf)?;
        let res = &self.maps.control[sf];
        if res.is_empty() {
            return Ok(None);
        }
        let n_sc = self.cfg.bandwidth.subcarriers();
        equalize_res(
            &self.chest,
            &self.grid,
            n_sc,
            res,
            &mut self.eq,
            &mut self.noise,
        );
        self.llr.clear();
        modulation::demap_soft(&self.eq, &self.noise, Modulation::Qpsk, &mut self.llr)?;
        descramble_llrs(&mut self.llr, control_c_init(sf, self.cfg.cell.pci()));
        let r =
            self.control_codec
                .decode(&self.llr, CONTROL_BYTES, 2, 0, DEFAULT_MAX_ITERATIONS)?;
        Ok(r.payload
            .and_then(|p| <[u8; CONTROL_BYTES]>::try_from(p).ok()))
    }

    /// Decodes the transport block of subframe `sf` (`tb_bytes`, redundancy version `rv`)
    /// from the grid of the last [`SubframeDecoder::measure`] of that subframe; with `soft`,
    /// this transmission is combined with the earlier ones kept there (HARQ).
    pub fn decode_data(
        &mut self,
        sf: usize,
        quality: ChannelQuality,
        tb_bytes: usize,
        rv: u8,
        soft: Option<&mut fec::SoftBuffer>,
    ) -> Result<DecodeReport> {
        check_subframe(sf)?;
        let m = self.cfg.modulation;
        let n_sc = self.cfg.bandwidth.subcarriers();
        equalize_res(
            &self.chest,
            &self.grid,
            n_sc,
            &self.maps.data[sf],
            &mut self.eq,
            &mut self.noise,
        );
        self.llr.clear();
        modulation::demap_soft(&self.eq, &self.noise, m, &mut self.llr)?;
        let c_init = pdsch_c_init(self.cfg.rnti, 0, (2 * sf) as u8, self.cfg.cell.pci())?;
        descramble_llrs(&mut self.llr, c_init);
        let tb = match soft {
            Some(soft) => self.codec.decode_combining(
                &self.llr,
                tb_bytes,
                m.bits_per_symbol(),
                rv,
                self.max_iterations,
                soft,
            )?,
            None => self.codec.decode(
                &self.llr,
                tb_bytes,
                m.bits_per_symbol(),
                rv,
                self.max_iterations,
            )?,
        };
        Ok(DecodeReport {
            payload: tb.payload,
            quality,
            iterations: tb.iterations,
            code_blocks: tb.code_blocks,
            failed_code_blocks: tb.failed_code_blocks,
            coded_bits: self.llr.len(),
        })
    }
}

/// Equalises the grid's REs `res` (indices l·n_sc + k) into `eq` and their noise variances
/// into `noise` (both cleared first). The symbol l is followed as the indices ascend (a
/// division only when it changes: a per-RE division cost more than the equaliser itself).
fn equalize_res(
    chest: &ChannelEstimator,
    grid: &[Complex32],
    n_sc: usize,
    res: &[u32],
    eq: &mut Vec<Complex32>,
    noise: &mut Vec<f32>,
) {
    eq.clear();
    noise.clear();
    let n_sc = n_sc.max(1);
    let (mut l, mut base) = (0usize, 0usize);
    for &i in res {
        let i = i as usize;
        if i < base || i >= base + n_sc {
            l = i / n_sc;
            base = l * n_sc;
        }
        let (x, nv) = chest.equalize(l, i - base, grid[i]);
        eq.push(x);
        noise.push(nv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bw: Bandwidth, cp: CyclicPrefix, duplex: Duplex) -> SubframeConfig {
        SubframeConfig::new(
            bw,
            cp,
            duplex,
            CellId::new(123).unwrap(),
            0x1234,
            Modulation::Qam16,
        )
    }

    #[test]
    fn data_re_counts() {
        // 5 MHz, normal CP, FDD, CFI 1, subframe 1: 13 symbols × 300 − CRS (3 of the
        // 4 CRS symbols are data symbols: 3 × 50).
        let c = cfg(Bandwidth::Mhz5, CyclicPrefix::Normal, Duplex::Fdd);
        assert_eq!(data_res(&c, 1).len(), 13 * 300 - 150);
        // Subframe 0 also loses 72 REs in each of the SSS and PSS symbols.
        assert_eq!(data_res(&c, 0).len(), 13 * 300 - 150 - 144);
        // TDD special subframe: DwPTS 12 symbols, PSS in symbol 2.
        let t = cfg(
            Bandwidth::Mhz5,
            CyclicPrefix::Normal,
            Duplex::Tdd(crate::numerology::TddConfig::new(1).unwrap()),
        );
        assert_eq!(data_res(&t, 1).len(), 11 * 300 - 150 - 72);
        // 1.4 MHz, CFI 2, subframe 0: sync symbols carry no data at all.
        let s = cfg(Bandwidth::Mhz1_4, CyclicPrefix::Normal, Duplex::Fdd);
        assert_eq!(data_res(&s, 0).len(), 10 * 72 - 3 * 12);
        let d = data_res(&c, 3);
        assert!(
            d.windows(2).all(|w| w[0] < w[1]),
            "frequency first, then time"
        );
    }

    /// Subframe samples through AWGN at `snr_db` (seeded).
    fn awgn(x: &[Complex32], snr_db: f64, seed: u64) -> Vec<Complex32> {
        let p = x.iter().map(|s| s.norm_sqr()).sum::<f32>() / x.len() as f32;
        let mut ch = crate::Channel::new(
            crate::ChannelParams {
                snr_db: Some(snr_db),
                ..crate::ChannelParams::ideal(1.92e6)
            },
            seed,
        );
        let scaled: Vec<Complex32> = x.iter().map(|s| s / p.sqrt()).collect();
        let mut out = Vec::new();
        ch.process(&scaled, &mut out);
        out
    }

    #[test]
    fn control_message_rides_beside_the_data_and_is_absent_when_not_sent() {
        let c = SubframeConfig::new(
            Bandwidth::Mhz1_4,
            CyclicPrefix::Normal,
            Duplex::Tdd(crate::numerology::TddConfig::new(1).unwrap()),
            CellId::new(7).unwrap(),
            0xFFF3,
            Modulation::Qpsk,
        );
        let mut enc = SubframeEncoder::new(c).unwrap();
        let mut dec = SubframeDecoder::new(c).unwrap();
        let n = c.samples_per_subframe();
        let tb_bytes = c.capacity(4, 0.5).unwrap().max_tb_bytes;
        let tb: Vec<u8> = (0..tb_bytes).map(|i| i as u8 ^ 0x5A).collect();
        let msg = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let mut out = vec![Complex32::new(0.0, 0.0); n];
        for (sf, rv) in [(4usize, 0u8), (9, 2), (1, 0)] {
            let data = (c.duplex.subframe_kind(sf) != SubframeKind::Special).then_some(rv);
            enc.encode_with(sf, data.map(|rv| (&tb[..], rv)), Some(&msg), &mut out)
                .unwrap();
            let rx = awgn(&out, 8.0, sf as u64);
            let q = dec.measure(sf, &rx).unwrap();
            assert_eq!(dec.decode_control(sf).unwrap(), Some(msg), "sf {sf}");
            if let Some(rv) = data {
                let r = dec.decode_data(sf, q, tb_bytes, rv, None).unwrap();
                assert_eq!(r.payload.as_deref(), Some(&tb[..]), "sf {sf} rv {rv}");
            }
        }
        // No message sent: nothing decodes (and the data still does).
        enc.encode_with(4, Some((&tb, 0)), None, &mut out).unwrap();
        let rx = awgn(&out, 8.0, 99);
        let q = dec.measure(4, &rx).unwrap();
        assert_eq!(dec.decode_control(4).unwrap(), None);
        assert!(dec
            .decode_data(4, q, tb_bytes, 0, None)
            .unwrap()
            .payload
            .is_some());
        // Another subframe's message does not decode in this one (scrambling per subframe).
        enc.encode_with(5, None, Some(&msg), &mut out).unwrap();
        let _ = dec.measure(4, &out).unwrap();
        assert_eq!(dec.decode_control(4).unwrap(), None);
        // The control message is more robust than the data (code rate ≈ 0.4 vs 0.5):
        // at 0 dB it still decodes in most subframes.
        let mut ok = 0;
        for seed in 0..20 {
            enc.encode_with(4, Some((&tb, 0)), Some(&msg), &mut out)
                .unwrap();
            let rx = awgn(&out, 0.0, 1000 + seed);
            let _ = dec.measure(4, &rx).unwrap();
            ok += usize::from(dec.decode_control(4).unwrap() == Some(msg));
        }
        assert!(ok >= 18, "control decoded {ok}/20 at 0 dB");
    }

    #[test]
    fn config_validation() {
        let ok = cfg(Bandwidth::Mhz5, CyclicPrefix::Normal, Duplex::Fdd);
        assert!(ok.validate().is_ok());
        for bad in [
            SubframeConfig { rnti: 0, ..ok },
            SubframeConfig { rnti: 0xFFF4, ..ok },
            SubframeConfig { prb_count: 0, ..ok },
            SubframeConfig {
                prb_count: 26,
                ..ok
            },
            SubframeConfig {
                prb_start: 20,
                prb_count: 6,
                ..ok
            },
            SubframeConfig {
                control_symbols: 4,
                ..ok
            },
            SubframeConfig {
                num_antenna_tx: 3,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(SubframeEncoder::new(bad).is_err());
        }
        assert!(matches!(
            SubframeDecoder::new(SubframeConfig {
                num_antenna_rx: 2,
                ..ok
            })
            .err(),
            Some(PhyError::Unsupported(_))
        ));
    }
}
