//! Transport-block channel coding per TS 36.212 §5.1.1–5.1.4: CRC24A, code-block
//! segmentation (CRC24B), turbo coding, rate matching to exactly `g` bits, concatenation,
//! and the reverse with soft input.
//!
//! [`TbCodec`] keeps every buffer (turbo decoder state, rate-matching patterns, scratch)
//! between calls so a modem decodes subframe after subframe without allocating; the free
//! functions [`encode_transport_block`] and [`decode_transport_block`] wrap a fresh one.
//!
//! Assumptions: one layer (N_L = 1), full circular buffer (N_cb = K_w). HARQ soft combining
//! across transmissions goes through a [`SoftBuffer`] ([`TbCodec::decode_combining`]): each
//! transmission's LLRs are added into the circular buffer at its redundancy version's
//! positions, so a retransmission with another `rv` is incremental redundancy and one with
//! the same `rv` is Chase combining.

use crate::crc::{pack_bits, unpack_bytes, CRC24A, CRC24B};
use crate::ratematch::{code_block_e, RateMatchPattern};
use crate::turbo::{self, TurboDecoder, BLOCK_SIZES, MAX_K};
use crate::turbo_fixed::FixedTurboDecoder;
use crate::{PhyError, Result};

/// Outcome of decoding one transport block.
#[derive(Debug, Clone, PartialEq)]
pub struct TbDecode {
    /// The transport block's bytes when CRC24A passed, `None` on CRC failure.
    pub payload: Option<Vec<u8>>,
    /// Number of code blocks.
    pub code_blocks: usize,
    /// Code blocks whose CRC24B (or, for one block, CRC24A) failed.
    pub failed_code_blocks: usize,
    /// Turbo iterations actually run, summed over code blocks (early stop on CRC).
    pub iterations: usize,
}

/// The soft bits a HARQ receiver keeps for one transport block between its transmissions:
/// one circular buffer of accumulated LLRs per code block (36.212 §5.1.4.1.2's `w_k`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoftBuffer {
    tb_bytes: usize,
    blocks: Vec<Vec<f32>>,
    transmissions: u32,
}

impl SoftBuffer {
    /// An empty buffer (no transmission combined yet).
    pub fn new() -> Self {
        Self::default()
    }
    /// Forget what was combined (a new transport block follows).
    pub fn clear(&mut self) {
        self.tb_bytes = 0;
        self.transmissions = 0;
        self.blocks.iter_mut().for_each(Vec::clear);
    }
    /// Transmissions combined so far.
    pub fn transmissions(&self) -> u32 {
        self.transmissions
    }
    /// Transport-block size the buffer holds (0 when empty).
    pub fn tb_bytes(&self) -> usize {
        self.tb_bytes
    }
}

/// Highest code rate accepted: (transport block + all CRC bits) / g.
pub const MAX_CODE_RATE: f64 = 0.95;
/// Largest `g` accepted (far above a 20 MHz subframe's ~100 000 bits), so that a bad `g`
/// is an error instead of a huge allocation.
pub const MAX_G: usize = 1 << 21;
/// CRC bits of a transport block (CRC24A) and of each code block when C > 1 (CRC24B).
pub const CRC_BITS: usize = 24;

/// Code-block segmentation of §5.1.2 for B bits (transport block plus CRC24A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    /// Input bits B.
    pub b: usize,
    /// Number of code blocks C.
    pub c: usize,
    /// K₊, the larger block size.
    pub k_plus: usize,
    /// K₋, the smaller block size (0 when C = 1).
    pub k_minus: usize,
    /// Number of blocks of size K₊.
    pub c_plus: usize,
    /// Number of blocks of size K₋ (they come first).
    pub c_minus: usize,
    /// Filler bits F at the start of block 0.
    pub filler: usize,
    /// CRC bits per code block L (0 when C = 1, else 24).
    pub crc_bits: usize,
}

impl Segmentation {
    /// Segments `b` bits (must be ≥ 1).
    pub fn new(b: usize) -> Result<Self> {
        if b == 0 {
            return Err(PhyError::invalid(
                "code block input bits B",
                b,
                "at least 1",
            ));
        }
        let (c, l) = if b <= MAX_K {
            (1, 0)
        } else {
            (b.div_ceil(MAX_K - CRC_BITS), CRC_BITS)
        };
        let bp = b + c * l;
        let i_plus = BLOCK_SIZES
            .iter()
            .position(|&(k, _, _)| c * usize::from(k) >= bp)
            .ok_or_else(|| PhyError::invalid("code block input bits B", b, "fits in C blocks"))?;
        let k_plus = usize::from(BLOCK_SIZES[i_plus].0);
        let (k_minus, c_plus, c_minus) = if c == 1 || i_plus == 0 {
            (0, c, 0)
        } else {
            let k_minus = usize::from(BLOCK_SIZES[i_plus - 1].0);
            let c_minus = (c * k_plus - bp) / (k_plus - k_minus);
            (k_minus, c - c_minus, c_minus)
        };
        let filler = c_plus * k_plus + c_minus * k_minus - bp;
        Ok(Segmentation {
            b,
            c,
            k_plus,
            k_minus,
            c_plus,
            c_minus,
            filler,
            crc_bits: l,
        })
    }

    /// B' = B + C·L.
    pub fn b_prime(&self) -> usize {
        self.b + self.c * self.crc_bits
    }

    /// Size K_r of code block `r`.
    pub fn block_size(&self, r: usize) -> usize {
        if r < self.c_minus {
            self.k_minus
        } else {
            self.k_plus
        }
    }

    /// Filler bits of code block `r` (only block 0 has any).
    pub fn block_filler(&self, r: usize) -> usize {
        if r == 0 {
            self.filler
        } else {
            0
        }
    }

    /// Transport-block bits carried by code block `r`.
    pub fn block_data_bits(&self, r: usize) -> usize {
        self.block_size(r) - self.crc_bits - self.block_filler(r)
    }
}

/// Code rate of a `tb_bytes` transport block in `g` bits: (8·tb_bytes + CRC24A + CRC24Bs)/g.
pub fn code_rate(tb_bytes: usize, g: usize) -> Option<f64> {
    if g == 0 || tb_bytes == 0 || tb_bytes > g {
        return None;
    }
    let seg = Segmentation::new(8 * tb_bytes + CRC_BITS).ok()?;
    Some(seg.b_prime() as f64 / g as f64)
}

/// The largest transport block (bytes) that fits `g` coded bits at a code rate of at most
/// `max_code_rate` (itself capped at [`MAX_CODE_RATE`]); 0 when not even one byte fits.
pub fn max_tb_bytes(g: usize, max_code_rate: f64) -> usize {
    let rate = if max_code_rate.is_nan() {
        0.0
    } else {
        max_code_rate.min(MAX_CODE_RATE)
    };
    if g == 0 || g > MAX_G || rate <= 0.0 {
        return 0;
    }
    let budget = rate * g as f64;
    let mut n = ((budget - CRC_BITS as f64) / 8.0).floor().max(0.0) as usize;
    // Each code block's CRC24B can push B' over the budget: step down until it fits.
    while n > 0 && code_rate(n, g).is_none_or(|r| r > rate) {
        n -= 1;
    }
    n
}

/// Checks the common arguments and returns the segmentation.
fn validate(tb_bytes: usize, g: usize, qm: usize, rv: u8) -> Result<Segmentation> {
    if !matches!(qm, 2 | 4 | 6) {
        return Err(PhyError::invalid(
            "qm",
            qm,
            "2 (QPSK), 4 (16QAM) or 6 (64QAM)",
        ));
    }
    if g == 0 || g % qm != 0 || g > MAX_G {
        return Err(PhyError::invalid(
            "g (coded bits)",
            g,
            "a positive multiple of qm, at most MAX_G",
        ));
    }
    if rv > 3 {
        return Err(PhyError::invalid("redundancy version rv", rv, "0..=3"));
    }
    if tb_bytes == 0 {
        return Err(PhyError::invalid(
            "transport block bytes",
            tb_bytes,
            "at least 1",
        ));
    }
    match code_rate(tb_bytes, g) {
        Some(r) if r <= MAX_CODE_RATE => Segmentation::new(8 * tb_bytes + CRC_BITS),
        _ => Err(PhyError::invalid(
            "transport block bytes",
            tb_bytes,
            "small enough for a code rate ≤ 0.95 in g bits (see max_tb_bytes)",
        )),
    }
}

/// How many rate-matching patterns to keep (a subframe uses at most three: K₋, K₊ and
/// block 0 with filler bits).
const PATTERN_CACHE: usize = 8;

/// Which turbo decoder a [`TbCodec`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DecoderKind {
    /// The 16-bit fixed-point decoder of [`crate::turbo_fixed`] (AVX2 / SSE4.1 / scalar):
    /// the default, 3–4× faster at the same error rate (docs/PHY-FEC.md).
    #[default]
    Fixed16,
    /// The f32 decoder of [`crate::turbo`], kept as the reference.
    Float,
}

/// Reusable transport-block encoder/decoder.
#[derive(Debug, Clone, Default)]
pub struct TbCodec {
    turbo: TurboDecoder,
    fixed: FixedTurboDecoder,
    /// The turbo decoder used by [`TbCodec::decode`].
    pub decoder: DecoderKind,
    patterns: Vec<RateMatchPattern>,
    pis: turbo::InterleaverCache,
    bits: Vec<u8>,
    cb: Vec<u8>,
    d: Vec<u8>,
    acc: Vec<f32>,
    tb_bits: Vec<u8>,
    /// When true, decoding stops at the first code block whose CRC fails (the transport
    /// block is lost anyway); the blocks not decoded count as failed. Bounds the time a
    /// bad subframe costs a real-time loop. Off by default (full statistics).
    pub stop_at_first_failure: bool,
}

impl TbCodec {
    /// A codec with empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// The f32 turbo decoder, e.g. to change its extrinsic scaling.
    pub fn turbo_mut(&mut self) -> &mut TurboDecoder {
        &mut self.turbo
    }

    /// The fixed-point turbo decoder.
    pub fn fixed_mut(&mut self) -> &mut FixedTurboDecoder {
        &mut self.fixed
    }

    fn pattern(&mut self, k: usize, filler: usize) -> Result<usize> {
        if let Some(i) = self
            .patterns
            .iter()
            .position(|p| p.k() == k && p.filler() == filler)
        {
            return Ok(i);
        }
        if self.patterns.len() >= PATTERN_CACHE {
            self.patterns.remove(0);
        }
        self.patterns.push(RateMatchPattern::new(k, filler)?);
        Ok(self.patterns.len() - 1)
    }

    /// Builds everything a `tb_bytes`/`g`/`qm` transport block needs (rate-matching
    /// patterns, QPP interleavers, decoder buffers) ahead of time, so that the first
    /// real-time encode/decode does not allocate.
    pub fn prepare(&mut self, tb_bytes: usize, g: usize, qm: usize) -> Result<()> {
        let seg = validate(tb_bytes, g, qm, 0)?;
        for r in 0..seg.c {
            let (k, f) = (seg.block_size(r), seg.block_filler(r));
            self.pattern(k, f)?;
            self.pis.get(k)?;
            match self.decoder {
                DecoderKind::Fixed16 => self.fixed.prepare(k)?,
                DecoderKind::Float => self.turbo.prepare(k)?,
            }
        }
        let kmax = seg.k_plus.max(seg.k_minus);
        self.acc.reserve(3 * turbo::stream_len(kmax));
        self.d.reserve(3 * turbo::stream_len(kmax));
        self.cb.reserve(kmax);
        self.bits.reserve(8 * tb_bytes + CRC_BITS);
        self.tb_bits.reserve(8 * tb_bytes + CRC_BITS);
        Ok(())
    }

    /// Encodes `tb` into exactly `g` bits (0/1) in `out` (cleared first).
    pub fn encode_into(
        &mut self,
        tb: &[u8],
        g: usize,
        qm: usize,
        rv: u8,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let seg = validate(tb.len(), g, qm, rv)?;
        self.bits.clear();
        unpack_bytes(tb, &mut self.bits);
        let crc = CRC24A.bytes(tb);
        self.bits
            .extend((0..CRC_BITS).rev().map(|i| (crc >> i & 1) as u8));
        out.clear();
        out.reserve(g);
        let mut s = 0;
        for r in 0..seg.c {
            let (k, f, n) = (
                seg.block_size(r),
                seg.block_filler(r),
                seg.block_data_bits(r),
            );
            self.cb.clear();
            self.cb.resize(f, 0);
            self.cb.extend_from_slice(&self.bits[s..s + n]);
            s += n;
            if seg.c > 1 {
                CRC24B.attach_bits(&mut self.cb);
            }
            self.d.clear();
            self.d.resize(3 * turbo::stream_len(k), 0);
            turbo::encode(&self.cb, f, self.pis.get(k)?, &mut self.d)?;
            let p = self.pattern(k, f)?;
            self.patterns[p].select(&self.d, rv, code_block_e(g, qm, seg.c, r), out)?;
        }
        Ok(())
    }

    /// Encodes `tb` into a new vector of exactly `g` bits.
    pub fn encode(&mut self, tb: &[u8], g: usize, qm: usize, rv: u8) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(g);
        self.encode_into(tb, g, qm, rv, &mut out)?;
        Ok(out)
    }

    /// Decodes the `g = llr.len()` soft bits (positive = 0, after descrambling) of one
    /// transmission into a transport block of `tb_bytes` bytes. Each code block runs at most
    /// `max_iterations` turbo iterations (1..=32), stopping early when its CRC passes.
    pub fn decode(
        &mut self,
        llr: &[f32],
        tb_bytes: usize,
        qm: usize,
        rv: u8,
        max_iterations: usize,
    ) -> Result<TbDecode> {
        self.decode_inner(llr, tb_bytes, qm, rv, max_iterations, None)
    }

    /// Like [`TbCodec::decode`], but first adds this transmission's soft bits into `soft`
    /// (cleared when it holds another transport-block size) and decodes from the sum: HARQ
    /// soft combining. The caller clears `soft` when a new transport block starts (new data
    /// indicator) and may keep it after a CRC failure for the next retransmission.
    pub fn decode_combining(
        &mut self,
        llr: &[f32],
        tb_bytes: usize,
        qm: usize,
        rv: u8,
        max_iterations: usize,
        soft: &mut SoftBuffer,
    ) -> Result<TbDecode> {
        self.decode_inner(llr, tb_bytes, qm, rv, max_iterations, Some(soft))
    }

    fn decode_inner(
        &mut self,
        llr: &[f32],
        tb_bytes: usize,
        qm: usize,
        rv: u8,
        max_iterations: usize,
        mut soft: Option<&mut SoftBuffer>,
    ) -> Result<TbDecode> {
        let g = llr.len();
        let seg = validate(tb_bytes, g, qm, rv)?;
        if !(1..=turbo::MAX_ITERATIONS).contains(&max_iterations) {
            return Err(PhyError::invalid(
                "max_iterations",
                max_iterations,
                "1..=32",
            ));
        }
        if let Some(s) = soft.as_deref_mut() {
            if s.tb_bytes != tb_bytes || s.blocks.len() < seg.c {
                s.clear();
                s.tb_bytes = tb_bytes;
                s.blocks.resize_with(seg.c.max(s.blocks.len()), Vec::new);
            }
            s.transmissions += 1;
        }
        self.tb_bits.clear();
        let mut offset = 0;
        let (mut failed, mut iterations) = (0, 0);
        for r in 0..seg.c {
            let (k, f) = (seg.block_size(r), seg.block_filler(r));
            let e = code_block_e(g, qm, seg.c, r);
            let p = self.pattern(k, f)?;
            let n_w = 3 * turbo::stream_len(k);
            let acc = match soft.as_deref_mut() {
                Some(s) => {
                    let a = &mut s.blocks[r];
                    if a.len() != n_w {
                        a.clear();
                        a.resize(n_w, 0.0);
                    }
                    a
                }
                None => {
                    self.acc.clear();
                    self.acc.resize(n_w, 0.0);
                    &mut self.acc
                }
            };
            self.patterns[p].accumulate(&llr[offset..offset + e], rv, acc)?;
            offset += e;
            let several = seg.c > 1;
            let mut check = |h: &[u8]| {
                if several {
                    CRC24B.check_bits(h)
                } else {
                    CRC24A.check_bits(&h[f..])
                }
            };
            let acc: &[f32] = match soft.as_deref() {
                Some(s) => &s.blocks[r],
                None => &self.acc,
            };
            let stats = match self.decoder {
                DecoderKind::Fixed16 => self.fixed.decode(acc, k, f, max_iterations, &mut check)?,
                DecoderKind::Float => self.turbo.decode(acc, k, f, max_iterations, &mut check)?,
            };
            iterations += stats.iterations();
            if !stats.check_passed {
                failed += 1;
                if self.stop_at_first_failure {
                    // The blocks not decoded still keep this transmission's soft bits for
                    // the retransmission.
                    if let Some(s) = soft.as_deref_mut() {
                        for r2 in r + 1..seg.c {
                            let (k2, f2) = (seg.block_size(r2), seg.block_filler(r2));
                            let e2 = code_block_e(g, qm, seg.c, r2);
                            let p2 = self.pattern(k2, f2)?;
                            let a = &mut s.blocks[r2];
                            let n_w = 3 * turbo::stream_len(k2);
                            if a.len() != n_w {
                                a.clear();
                                a.resize(n_w, 0.0);
                            }
                            self.patterns[p2].accumulate(&llr[offset..offset + e2], rv, a)?;
                            offset += e2;
                        }
                    }
                    return Ok(TbDecode {
                        payload: None,
                        code_blocks: seg.c,
                        failed_code_blocks: failed + (seg.c - 1 - r),
                        iterations,
                    });
                }
            }
            let hard = match self.decoder {
                DecoderKind::Fixed16 => self.fixed.hard_bits(),
                DecoderKind::Float => self.turbo.hard_bits(),
            };
            self.tb_bits.extend_from_slice(&hard[f..k - seg.crc_bits]);
        }
        let payload = if CRC24A.check_bits(&self.tb_bits) {
            let mut bytes = Vec::with_capacity(tb_bytes);
            pack_bits(&self.tb_bits[..8 * tb_bytes], &mut bytes);
            Some(bytes)
        } else {
            None
        };
        Ok(TbDecode {
            payload,
            code_blocks: seg.c,
            failed_code_blocks: failed,
            iterations,
        })
    }
}

/// Encodes `tb` (a transport block of bytes) into exactly `g` coded bits (values 0/1) for
/// modulation order `qm`. `g` must be a multiple of `qm`. `rv` is the redundancy version 0..=3.
pub fn encode_transport_block(tb: &[u8], g: usize, qm: usize, rv: u8) -> Result<Vec<u8>> {
    TbCodec::new().encode(tb, g, qm, rv)
}

/// Decodes `llr` (exactly the `g` soft bits of [`encode_transport_block`], positive = 0)
/// back into a transport block of `tb_bytes` bytes.
pub fn decode_transport_block(
    llr: &[f32],
    tb_bytes: usize,
    qm: usize,
    rv: u8,
    max_iterations: usize,
) -> Result<TbDecode> {
    TbCodec::new().decode(llr, tb_bytes, qm, rv, max_iterations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BPSK-like LLRs of `bits` through AWGN with per-bit SNR `snr_db` (seeded).
    fn noisy_llrs(bits: &[u8], snr_db: f64, seed: &mut u64) -> Vec<f32> {
        let sigma2 = 10f64.powf(-snr_db / 10.0);
        let mut uni = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        bits.iter()
            .map(|&b| {
                let n = (-2.0 * uni().ln()).sqrt() * (2.0 * std::f64::consts::PI * uni()).cos();
                let y = (1.0 - 2.0 * f64::from(b)) + n * sigma2.sqrt();
                (2.0 * y / sigma2) as f32
            })
            .collect()
    }

    #[test]
    fn harq_combining_decodes_what_one_transmission_cannot() {
        // 2 code blocks, code rate ≈ 0.8: one transmission at 0.5 dB fails nearly always; the
        // same TB's rv 0 + rv 2 (incremental redundancy) together have rate ≈ 0.4.
        let (qm, g) = (2usize, 9_000usize);
        let tb_bytes = 900;
        let mut codec = TbCodec::new();
        let mut seed = 7u64;
        let (mut single_ok, mut combined_ok, mut chase_ok, mut single_chase_ok) = (0, 0, 0, 0);
        let trials = 12;
        for t in 0..trials {
            let tb: Vec<u8> = (0..tb_bytes).map(|i| (i * 31 + t * 7) as u8).collect();
            let tx0 = codec.encode(&tb, g, qm, 0).unwrap();
            let tx2 = codec.encode(&tb, g, qm, 2).unwrap();
            // Incremental redundancy at 0.5 dB: rv 0 alone fails, rv 0 + rv 2 decodes.
            let l0 = noisy_llrs(&tx0, 0.5, &mut seed);
            let l2 = noisy_llrs(&tx2, 0.5, &mut seed);
            let one = codec.decode(&l0, tb_bytes, qm, 0, 8).unwrap();
            single_ok += usize::from(one.payload.as_deref() == Some(&tb[..]));
            let mut soft = SoftBuffer::new();
            let _ = codec
                .decode_combining(&l0, tb_bytes, qm, 0, 8, &mut soft)
                .unwrap();
            let two = codec
                .decode_combining(&l2, tb_bytes, qm, 2, 8, &mut soft)
                .unwrap();
            assert_eq!(soft.transmissions(), 2);
            combined_ok += usize::from(two.payload.as_deref() == Some(&tb[..]));
            // Chase at 2.5 dB: the same rv twice gains 3 dB, no new parity.
            let c0 = noisy_llrs(&tx0, 2.5, &mut seed);
            let c1 = noisy_llrs(&tx0, 2.5, &mut seed);
            let one = codec.decode(&c0, tb_bytes, qm, 0, 8).unwrap();
            single_chase_ok += usize::from(one.payload.as_deref() == Some(&tb[..]));
            let mut chase = SoftBuffer::new();
            let _ = codec
                .decode_combining(&c0, tb_bytes, qm, 0, 8, &mut chase)
                .unwrap();
            let c2 = codec
                .decode_combining(&c1, tb_bytes, qm, 0, 8, &mut chase)
                .unwrap();
            chase_ok += usize::from(c2.payload.as_deref() == Some(&tb[..]));
        }
        eprintln!("IR: single {single_ok} combined {combined_ok}; chase: single {single_chase_ok} combined {chase_ok}");
        assert!(
            single_ok <= trials / 4,
            "one transmission decoded {single_ok}/{trials}"
        );
        assert_eq!(
            combined_ok, trials,
            "rv0+rv2 decoded {combined_ok}/{trials}"
        );
        assert!(
            chase_ok >= single_chase_ok + trials / 2,
            "chase {chase_ok} vs single {single_chase_ok}"
        );
    }

    /// Noiseless LLRs of magnitude `m` for `bits`.
    fn hard_llrs(bits: &[u8], m: f32) -> Vec<f32> {
        bits.iter().map(|&b| if b == 0 { m } else { -m }).collect()
    }

    #[test]
    fn soft_buffer_restarts_for_another_tb_size_and_after_clear() {
        let mut codec = TbCodec::new();
        let tb = vec![0x3Cu8; 40];
        let bits = codec.encode(&tb, 960, 2, 0).unwrap();
        let llr = hard_llrs(&bits, 4.0);
        let mut soft = SoftBuffer::new();
        let r = codec
            .decode_combining(&llr, 40, 2, 0, 8, &mut soft)
            .unwrap();
        assert_eq!(r.payload.as_deref(), Some(&tb[..]));
        assert_eq!((soft.transmissions(), soft.tb_bytes()), (1, 40));
        // A different size resets the buffer instead of mixing two TBs' soft bits.
        let tb2 = vec![0x11u8; 30];
        let bits2 = codec.encode(&tb2, 960, 2, 0).unwrap();
        let llr2 = hard_llrs(&bits2, 4.0);
        let r2 = codec
            .decode_combining(&llr2, 30, 2, 0, 8, &mut soft)
            .unwrap();
        assert_eq!(r2.payload.as_deref(), Some(&tb2[..]));
        assert_eq!((soft.transmissions(), soft.tb_bytes()), (1, 30));
        // Combining a different TB of the same size without clearing corrupts it: the
        // caller's new-data indicator is what separates TBs.
        let tb3 = vec![0xEEu8; 30];
        let bits3 = codec.encode(&tb3, 960, 2, 0).unwrap();
        let llr3 = hard_llrs(&bits3, 1.0);
        let mixed = codec
            .decode_combining(&llr3, 30, 2, 0, 8, &mut soft)
            .unwrap();
        assert_ne!(mixed.payload.as_deref(), Some(&tb3[..]));
        soft.clear();
        let clean = codec
            .decode_combining(&llr3, 30, 2, 0, 8, &mut soft)
            .unwrap();
        assert_eq!(clean.payload.as_deref(), Some(&tb3[..]));
    }

    #[test]
    fn segmentation_follows_5_1_2() {
        // Small block: one code block, filler up to K = 40.
        let s = Segmentation::new(32).unwrap();
        assert_eq!((s.c, s.k_plus, s.filler, s.crc_bits), (1, 40, 8, 0));
        // Exactly Z: one block, no filler.
        let s = Segmentation::new(6144).unwrap();
        assert_eq!((s.c, s.k_plus, s.filler), (1, 6144, 0));
        // Z + 1: two blocks of B'/2 ≈ 3097 → K+ = 3136, K- = 3072.
        let s = Segmentation::new(6145).unwrap();
        assert_eq!(s.c, 2);
        assert_eq!(s.b_prime(), 6193);
        assert_eq!((s.k_plus, s.k_minus), (3136, 3072));
        assert_eq!((s.c_plus, s.c_minus), (1, 1));
        assert_eq!(s.filler, 3136 + 3072 - 6193);
        // Largest LTE single-layer TBS 75376 + 24: C = 13 blocks of exactly 5824 (B' = 75712).
        let s = Segmentation::new(75_376 + 24).unwrap();
        assert_eq!((s.c, s.k_plus, s.c_minus, s.filler), (13, 5824, 0, 0));
        for b in [
            1usize, 39, 40, 41, 1000, 6144, 6145, 12_288, 12_289, 20_000, 100_000,
        ] {
            let s = Segmentation::new(b).unwrap();
            let total: usize = (0..s.c).map(|r| s.block_size(r)).sum();
            assert_eq!(total, s.b_prime() + s.filler, "B={b}");
            let data: usize = (0..s.c).map(|r| s.block_data_bits(r)).sum();
            assert_eq!(data, b);
            assert!(s.filler < 64 || s.c == 1, "B={b}: F={}", s.filler);
        }
        assert!(Segmentation::new(0).is_err());
    }

    #[test]
    fn max_tb_bytes_is_the_largest_that_encodes() {
        for &g in &[40usize, 200, 1_000, 7_000, 9_000, 18_000, 36_000] {
            for &rate in &[0.3, 0.5, 0.75, 0.95, 1.5] {
                let n = max_tb_bytes(g, rate);
                let cap = f64::min(rate, MAX_CODE_RATE);
                if n > 0 {
                    assert!(code_rate(n, g).unwrap() <= cap);
                    let qm = 2;
                    let g2 = g - g % qm;
                    if code_rate(n, g2).unwrap() <= MAX_CODE_RATE {
                        assert!(encode_transport_block(&vec![0xA5; n], g2, qm, 0).is_ok());
                    }
                }
                assert!(
                    code_rate(n + 1, g).is_none_or(|r| r > cap),
                    "g={g} rate={rate}"
                );
            }
        }
        assert_eq!(max_tb_bytes(0, 0.5), 0);
        assert_eq!(max_tb_bytes(30, 0.5), 0);
        assert_eq!(max_tb_bytes(1000, f64::NAN), 0);
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        let tb = [1u8; 10];
        assert!(encode_transport_block(&tb, 301, 2, 0).is_err()); // g not a multiple of qm
        assert!(encode_transport_block(&tb, 300, 3, 0).is_err()); // qm
        assert!(encode_transport_block(&tb, 300, 2, 4).is_err()); // rv
        assert!(encode_transport_block(&[], 300, 2, 0).is_err()); // empty
        assert!(encode_transport_block(&tb, 100, 2, 0).is_err()); // rate > 0.95
        assert!(encode_transport_block(&tb, 0, 2, 0).is_err());
        assert!(encode_transport_block(&tb, MAX_G + 2, 2, 0).is_err());
        let llr = vec![0.0f32; 300];
        assert!(decode_transport_block(&llr, 10, 2, 0, 0).is_err());
        assert!(decode_transport_block(&llr, 0, 2, 0, 4).is_err());
        assert!(decode_transport_block(&llr, 100, 2, 0, 4).is_err());
        assert!(decode_transport_block(&llr[..299], 10, 2, 0, 4).is_err());
        assert!(decode_transport_block(&llr, usize::MAX, 2, 0, 4).is_err());
    }
}
