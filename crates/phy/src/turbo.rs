//! The LTE turbo code of TS 36.212 §5.1.3.2: two 8-state recursive systematic
//! convolutional encoders (g0 = 13, g1 = 15 octal) joined by the QPP interleaver of table
//! 5.1.3-3, trellis termination with 12 tail bits, and an iterative max-log-MAP decoder with
//! extrinsic scaling and early stopping on a caller-supplied CRC check.
//!
//! Stream layout used by the encoder, the rate matcher and the decoder: one buffer of
//! `3·D` values, `D = K + 4`, holding d⁽⁰⁾ (systematic), d⁽¹⁾ (parity 1) and d⁽²⁾ (parity 2)
//! back to back, exactly as §5.1.3.2.2 defines them including the tail bit placement.
//! Filler bits (the first F of code block 0) are transmitted as nothing: d⁽⁰⁾ and d⁽¹⁾ at
//! k < F are the spec's `<NULL>`; the encoder writes 0 there and the rate matcher skips them.

use crate::crc::pack8;
use crate::{PhyError, Result};

/// Smallest turbo code block size.
pub const MIN_K: usize = 40;
/// Largest turbo code block size, Z of §5.1.2.
pub const MAX_K: usize = 6144;
/// Number of tail steps per constituent encoder.
const TAIL: usize = 3;

/// Table 5.1.3-3: every allowed K with its QPP parameters (K, f1, f2), K ascending.
pub const BLOCK_SIZES: [(u16, u16, u16); 188] = [
    (40, 3, 10),
    (48, 7, 12),
    (56, 19, 42),
    (64, 7, 16),
    (72, 7, 18),
    (80, 11, 20),
    (88, 5, 22),
    (96, 11, 24),
    (104, 7, 26),
    (112, 41, 84),
    (120, 103, 90),
    (128, 15, 32),
    (136, 9, 34),
    (144, 17, 108),
    (152, 9, 38),
    (160, 21, 120),
    (168, 101, 84),
    (176, 21, 44),
    (184, 57, 46),
    (192, 23, 48),
    (200, 13, 50),
    (208, 27, 52),
    (216, 11, 36),
    (224, 27, 56),
    (232, 85, 58),
    (240, 29, 60),
    (248, 33, 62),
    (256, 15, 32),
    (264, 17, 198),
    (272, 33, 68),
    (280, 103, 210),
    (288, 19, 36),
    (296, 19, 74),
    (304, 37, 76),
    (312, 19, 78),
    (320, 21, 120),
    (328, 21, 82),
    (336, 115, 84),
    (344, 193, 86),
    (352, 21, 44),
    (360, 133, 90),
    (368, 81, 46),
    (376, 45, 94),
    (384, 23, 48),
    (392, 243, 98),
    (400, 151, 40),
    (408, 155, 102),
    (416, 25, 52),
    (424, 51, 106),
    (432, 47, 72),
    (440, 91, 110),
    (448, 29, 168),
    (456, 29, 114),
    (464, 247, 58),
    (472, 29, 118),
    (480, 89, 180),
    (488, 91, 122),
    (496, 157, 62),
    (504, 55, 84),
    (512, 31, 64),
    (528, 17, 66),
    (544, 35, 68),
    (560, 227, 420),
    (576, 65, 96),
    (592, 19, 74),
    (608, 37, 76),
    (624, 41, 234),
    (640, 39, 80),
    (656, 185, 82),
    (672, 43, 252),
    (688, 21, 86),
    (704, 155, 44),
    (720, 79, 120),
    (736, 139, 92),
    (752, 23, 94),
    (768, 217, 48),
    (784, 25, 98),
    (800, 17, 80),
    (816, 127, 102),
    (832, 25, 52),
    (848, 239, 106),
    (864, 17, 48),
    (880, 137, 110),
    (896, 215, 112),
    (912, 29, 114),
    (928, 15, 58),
    (944, 147, 118),
    (960, 29, 60),
    (976, 59, 122),
    (992, 65, 124),
    (1008, 55, 84),
    (1024, 31, 64),
    (1056, 17, 66),
    (1088, 171, 204),
    (1120, 67, 140),
    (1152, 35, 72),
    (1184, 19, 74),
    (1216, 39, 76),
    (1248, 19, 78),
    (1280, 199, 240),
    (1312, 21, 82),
    (1344, 211, 252),
    (1376, 21, 86),
    (1408, 43, 88),
    (1440, 149, 60),
    (1472, 45, 92),
    (1504, 49, 846),
    (1536, 71, 48),
    (1568, 13, 28),
    (1600, 17, 80),
    (1632, 25, 102),
    (1664, 183, 104),
    (1696, 55, 954),
    (1728, 127, 96),
    (1760, 27, 110),
    (1792, 29, 112),
    (1824, 29, 114),
    (1856, 57, 116),
    (1888, 45, 354),
    (1920, 31, 120),
    (1952, 59, 610),
    (1984, 185, 124),
    (2016, 113, 420),
    (2048, 31, 64),
    (2112, 17, 66),
    (2176, 171, 136),
    (2240, 209, 420),
    (2304, 253, 216),
    (2368, 367, 444),
    (2432, 265, 456),
    (2496, 181, 468),
    (2560, 39, 80),
    (2624, 27, 164),
    (2688, 127, 504),
    (2752, 143, 172),
    (2816, 43, 88),
    (2880, 29, 300),
    (2944, 45, 92),
    (3008, 157, 188),
    (3072, 47, 96),
    (3136, 13, 28),
    (3200, 111, 240),
    (3264, 443, 204),
    (3328, 51, 104),
    (3392, 51, 212),
    (3456, 451, 192),
    (3520, 257, 220),
    (3584, 57, 336),
    (3648, 313, 228),
    (3712, 271, 232),
    (3776, 179, 236),
    (3840, 331, 120),
    (3904, 363, 244),
    (3968, 375, 248),
    (4032, 127, 168),
    (4096, 31, 64),
    (4160, 33, 130),
    (4224, 43, 264),
    (4288, 33, 134),
    (4352, 477, 408),
    (4416, 35, 138),
    (4480, 233, 280),
    (4544, 357, 142),
    (4608, 337, 480),
    (4672, 37, 146),
    (4736, 71, 444),
    (4800, 71, 120),
    (4864, 37, 152),
    (4928, 39, 462),
    (4992, 127, 234),
    (5056, 39, 158),
    (5120, 39, 80),
    (5184, 31, 96),
    (5248, 113, 902),
    (5312, 41, 166),
    (5376, 251, 336),
    (5440, 43, 170),
    (5504, 21, 86),
    (5568, 43, 174),
    (5632, 45, 176),
    (5696, 45, 178),
    (5760, 161, 120),
    (5824, 89, 182),
    (5888, 323, 184),
    (5952, 47, 186),
    (6016, 23, 94),
    (6080, 47, 190),
    (6144, 263, 480),
];

/// Index of `k` in [`BLOCK_SIZES`], if `k` is an allowed code block size.
pub fn block_size_index(k: usize) -> Option<usize> {
    BLOCK_SIZES
        .binary_search_by_key(&k, |&(kk, _, _)| usize::from(kk))
        .ok()
}

/// The QPP parameters (f1, f2) of block size `k`.
pub fn qpp_params(k: usize) -> Result<(usize, usize)> {
    let i = block_size_index(k).ok_or_else(|| {
        PhyError::invalid(
            "turbo block size K",
            k,
            "one of the 188 sizes of 36.212 table 5.1.3-3",
        )
    })?;
    let (_, f1, f2) = BLOCK_SIZES[i];
    Ok((usize::from(f1), usize::from(f2)))
}

/// Fills `out` with Π(i) = (f1·i + f2·i²) mod K for i = 0..K (the interleaved sequence is
/// c'_i = c_Π(i)). Computed incrementally, Π(i+1) = Π(i) + (f1 + f2·(2i+1)) mod K, with
/// conditional subtraction instead of division.
pub fn qpp_interleaver(k: usize, out: &mut Vec<u32>) -> Result<()> {
    let (f1, f2) = qpp_params(k)?;
    out.clear();
    out.reserve(k);
    let (mut p, mut step) = (0usize, (f1 + f2) % k);
    let inc = (2 * f2) % k;
    for _ in 0..k {
        out.push(p as u32);
        p += step;
        if p >= k {
            p -= k;
        }
        step += inc;
        if step >= k {
            step -= k;
        }
    }
    Ok(())
}

/// The last few QPP interleavers used (a transport block mixes at most two sizes, K₊ and
/// K₋), so that alternating block sizes do not rebuild them.
#[derive(Debug, Clone, Default)]
pub struct InterleaverCache {
    entries: Vec<(usize, Vec<u32>)>,
}

impl InterleaverCache {
    const CAPACITY: usize = 4;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Π for block size `k`, built on first use.
    pub fn get(&mut self, k: usize) -> Result<&[u32]> {
        let i = match self.entries.iter().position(|(kk, _)| *kk == k) {
            Some(i) => i,
            None => {
                let mut pi = Vec::new();
                qpp_interleaver(k, &mut pi)?;
                if self.entries.len() >= Self::CAPACITY {
                    self.entries.remove(0);
                }
                self.entries.push((k, pi));
                self.entries.len() - 1
            }
        };
        Ok(&self.entries[i].1)
    }
}

/// One step of a constituent encoder: state (s1 s2 s3) as `4·s1 + 2·s2 + s3`.
/// Returns (parity, next state). Feedback a = u ⊕ s2 ⊕ s3 (g0 = 1 + D² + D³),
/// parity z = a ⊕ s1 ⊕ s3 (g1 = 1 + D + D³).
#[inline]
pub(crate) const fn rsc_step(state: u8, u: u8) -> (u8, u8) {
    let (s1, s2, s3) = (state >> 2 & 1, state >> 1 & 1, state & 1);
    let a = u ^ s2 ^ s3;
    (a ^ s1 ^ s3, (a << 2) | (state >> 1))
}

/// Eight encoder steps at once: `RSC_BYTE[state][input byte, first bit = MSB]` is
/// (the 8 parity bits, first = MSB; the state after them).
static RSC_BYTE: [[(u8, u8); 256]; 8] = rsc_byte_table();

const fn rsc_byte_table() -> [[(u8, u8); 256]; 8] {
    let mut t = [[(0u8, 0u8); 256]; 8];
    let mut s = 0;
    while s < 8 {
        let mut b = 0;
        while b < 256 {
            let (mut st, mut par) = (s as u8, 0u8);
            let mut j = 0;
            while j < 8 {
                let (z, n) = rsc_step(st, (b >> (7 - j)) as u8 & 1);
                par = (par << 1) | z;
                st = n;
                j += 1;
            }
            t[s][b] = (par, st);
            b += 1;
        }
        s += 1;
    }
    t
}

/// Termination step: the input that zeroes the feedback, i.e. x = s2 ⊕ s3.
#[inline]
pub(crate) fn rsc_tail(state: u8) -> (u8, u8, u8) {
    let x = (state >> 1 & 1) ^ (state & 1);
    let (z, next) = rsc_step(state, x);
    (x, z, next)
}

/// Length D = K + 4 of each output stream.
pub fn stream_len(k: usize) -> usize {
    k + 4
}

/// Turbo-encodes code block `c` (K bits, 0/1) whose first `filler` bits are filler, into
/// `d` = d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾ (3·(K+4) bits). Filler positions are encoded as 0.
pub fn encode(c: &[u8], filler: usize, pi: &[u32], d: &mut [u8]) -> Result<()> {
    let k = c.len();
    block_size_index(k).ok_or_else(|| {
        PhyError::invalid(
            "turbo block size K",
            k,
            "one of the 188 sizes of 36.212 table 5.1.3-3",
        )
    })?;
    if pi.len() != k {
        return Err(PhyError::InvalidLength {
            what: "QPP interleaver",
            expected: k,
            got: pi.len(),
        });
    }
    let dl = stream_len(k);
    if d.len() != 3 * dl {
        return Err(PhyError::InvalidLength {
            what: "turbo encoder output (3·(K+4))",
            expected: 3 * dl,
            got: d.len(),
        });
    }
    if filler >= k {
        return Err(PhyError::invalid("filler bits F", filler, "fewer than K"));
    }
    let (d0, rest) = d.split_at_mut(dl);
    let (d1, d2) = rest.split_at_mut(dl);
    for (x, &ci) in d0[..k].iter_mut().zip(c) {
        *x = ci & 1;
    }
    d0[..filler].fill(0);
    // Eight trellis steps per table lookup (K is a multiple of 8).
    let (mut s1, mut s2) = (0u8, 0u8);
    let mut gathered = [0u8; 8];
    for i in (0..k).step_by(8) {
        let (p1, n1) = RSC_BYTE[usize::from(s1)][usize::from(pack8(&d0[i..i + 8]))];
        s1 = n1;
        for (g, &j) in gathered.iter_mut().zip(&pi[i..i + 8]) {
            *g = d0[j as usize];
        }
        let (p2, n2) = RSC_BYTE[usize::from(s2)][usize::from(pack8(&gathered))];
        s2 = n2;
        for j in 0..8 {
            d1[i + j] = (p1 >> (7 - j)) & 1;
            d2[i + j] = (p2 >> (7 - j)) & 1;
        }
    }
    // Tails: x_K z_K x_K+1 z_K+1 x_K+2 z_K+2, then the same primed for encoder 2.
    let mut t1 = [0u8; 6];
    let mut t2 = [0u8; 6];
    for j in 0..TAIL {
        let (x, z, n) = rsc_tail(s1);
        t1[2 * j] = x;
        t1[2 * j + 1] = z;
        s1 = n;
        let (x, z, n) = rsc_tail(s2);
        t2[2 * j] = x;
        t2[2 * j + 1] = z;
        s2 = n;
    }
    let [x0, z0, x1, z1, x2, z2] = t1;
    let [y0, w0, y1, w1, y2, w2] = t2;
    d0[k..].copy_from_slice(&[x0, z1, y0, w1]);
    d1[k..].copy_from_slice(&[z0, x2, w0, y2]);
    d2[k..].copy_from_slice(&[x1, z2, y1, w2]);
    Ok(())
}

/// Largest magnitude an input LLR is clipped to (NaN becomes 0). Max-log-MAP is
/// scale-invariant, so this only guards against overflow, never changes a decision.
pub const LLR_CLAMP: f32 = 1.0e6;
const EXT_CLAMP: f32 = 1.0e7;
/// "Impossible" state metric.
const NEG: f32 = -1.0e30;

/// Default extrinsic scaling for max-log-MAP (compensates its over-confidence).
pub const DEFAULT_EXTRINSIC_SCALE: f32 = 0.75;

#[inline(always)]
fn clean(x: f32) -> f32 {
    // A select, not a branch: the load loop vectorises.
    let y = x.clamp(-LLR_CLAMP, LLR_CLAMP);
    if y.is_nan() {
        0.0
    } else {
        y
    }
}

/// What one code block's decoding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurboStats {
    /// Half-iterations run (one constituent decoder pass each).
    pub half_iterations: usize,
    /// True when the caller's check passed (decoding stopped early on it).
    pub check_passed: bool,
}

impl TurboStats {
    /// Full iterations, counting a final lone half-iteration as one.
    pub fn iterations(&self) -> usize {
        self.half_iterations.div_ceil(2)
    }
}

/// Reusable iterative max-log-MAP turbo decoder: all buffers are kept between calls, so
/// decoding allocates only when a larger K than ever before arrives.
#[derive(Debug, Clone)]
pub struct TurboDecoder {
    k: usize,
    pis: InterleaverCache,
    sys1: Vec<f32>,
    par1: Vec<f32>,
    sys2: Vec<f32>,
    par2: Vec<f32>,
    apri1: Vec<f32>,
    apri2: Vec<f32>,
    post: Vec<f32>,
    ext: Vec<f32>,
    gam: Vec<Simd>,
    alpha: Vec<States<Simd>>,
    hard: Vec<u8>,
    win: Windows,
    /// Factor applied to extrinsic information passed between the constituent decoders.
    pub extrinsic_scale: f32,
}

/// Smallest K decoded with two windows (when the CPU allows): below it the block is cheap
/// anyway and the window cut would cost more of its performance.
pub const WINDOW_MIN_K: usize = 512;

/// State of the two-window AVX decoder, when available.
#[derive(Debug, Clone)]
struct Windows {
    enabled: bool,
    #[cfg(target_arch = "x86_64")]
    scratch: avx::Scratch,
    #[cfg(target_arch = "x86_64")]
    bnd: [avx::Boundary; 2],
}

impl Windows {
    fn new() -> Self {
        Windows {
            #[cfg(target_arch = "x86_64")]
            enabled: std::arch::is_x86_feature_detected!("avx"),
            #[cfg(not(target_arch = "x86_64"))]
            enabled: false,
            #[cfg(target_arch = "x86_64")]
            scratch: avx::Scratch::default(),
            #[cfg(target_arch = "x86_64")]
            bnd: [avx::Boundary::uniform(); 2],
        }
    }

    fn reset(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            self.bnd = [avx::Boundary::uniform(); 2];
        }
    }

    /// One constituent pass of decoder `which` (0 or 1), windowed when possible.
    #[allow(clippy::too_many_arguments)]
    fn siso(
        &mut self,
        which: usize,
        sys: &[f32],
        par: &[f32],
        apri: &[f32],
        gam: &mut [Simd],
        mem: &mut [States<Simd>],
        post: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.enabled && apri.len() >= WINDOW_MIN_K {
            // SAFETY: `enabled` is only true when the CPU reported AVX support.
            unsafe {
                avx::siso_windows(
                    sys,
                    par,
                    apri,
                    &mut self.scratch,
                    post,
                    &mut self.bnd[which],
                )
            };
            return;
        }
        let _ = which;
        siso(sys, par, apri, gam, mem, post);
    }
}

impl Default for TurboDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TurboDecoder {
    /// An empty decoder; buffers grow on first use.
    pub fn new() -> Self {
        TurboDecoder {
            k: 0,
            pis: InterleaverCache::new(),
            sys1: Vec::new(),
            par1: Vec::new(),
            sys2: Vec::new(),
            par2: Vec::new(),
            apri1: Vec::new(),
            apri2: Vec::new(),
            post: Vec::new(),
            ext: Vec::new(),
            gam: Vec::new(),
            alpha: Vec::new(),
            hard: Vec::new(),
            win: Windows::new(),
            extrinsic_scale: DEFAULT_EXTRINSIC_SCALE,
        }
    }

    /// Whether blocks of K ≥ [`WINDOW_MIN_K`] are decoded as two windows side by side in
    /// AVX registers (on by default when the CPU has AVX). Turning it on without AVX does
    /// nothing.
    pub fn set_windowed(&mut self, on: bool) {
        let fresh = Windows::new();
        self.win.enabled = on && fresh.enabled;
    }

    /// True when two-window decoding is in use for large blocks.
    pub fn is_windowed(&self) -> bool {
        self.win.enabled
    }

    /// Sizes the buffers for `k`.
    pub fn prepare(&mut self, k: usize) -> Result<()> {
        self.pis.get(k)?;
        self.k = k;
        let n = k + TAIL;
        for v in [
            &mut self.sys1,
            &mut self.par1,
            &mut self.sys2,
            &mut self.par2,
        ] {
            v.resize(n, 0.0);
        }
        self.apri1.resize(k, 0.0);
        self.apri2.resize(k, 0.0);
        self.post.resize(k, 0.0);
        self.ext.resize(k, 0.0);
        self.gam.resize(n, Simd::from_array([0.0; 4]));
        self.alpha.resize(k + 1, start_state());
        self.hard.resize(k, 0);
        Ok(())
    }

    /// Hard decisions (0/1) of the last decoded block, K bits (filler positions are 0).
    /// An a-posteriori LLR of exactly 0 decides 1, so that an erased (all-zero) input
    /// does not decode to the all-zero codeword, whose CRC would pass.
    pub fn hard_bits(&self) -> &[u8] {
        &self.hard[..self.k]
    }

    /// Decodes one code block of size `k` from `d` = the 3·(K+4) LLRs of d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾
    /// (positive = bit 0; 0 for bits that were not received). `filler` leading bits are
    /// known zeros. Runs up to `max_iterations` full iterations and stops as soon as
    /// `check(hard_bits)` returns true after any half-iteration. The decision is left in
    /// [`TurboDecoder::hard_bits`].
    pub fn decode(
        &mut self,
        d: &[f32],
        k: usize,
        filler: usize,
        max_iterations: usize,
        check: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<TurboStats> {
        if !(1..=MAX_ITERATIONS).contains(&max_iterations) {
            return Err(PhyError::invalid(
                "max_iterations",
                max_iterations,
                "1..=32",
            ));
        }
        self.prepare(k)?;
        let dl = stream_len(k);
        if d.len() != 3 * dl {
            return Err(PhyError::InvalidLength {
                what: "turbo decoder input (3·(K+4) LLRs)",
                expected: 3 * dl,
                got: d.len(),
            });
        }
        if filler >= k {
            return Err(PhyError::invalid("filler bits F", filler, "fewer than K"));
        }
        self.load(d, k, filler);
        let scale = self.extrinsic_scale.clamp(0.0, 1.0);
        let mut stats = TurboStats {
            half_iterations: 0,
            check_passed: false,
        };
        // Local slices: lets the compiler keep pointers in registers (no aliasing with self).
        let pi = &self.pis.get(k)?[..k];
        let (sys1, par1) = (&self.sys1[..], &self.par1[..]);
        let (sys2, par2) = (&self.sys2[..], &self.par2[..]);
        let (apri1, apri2) = (&mut self.apri1[..k], &mut self.apri2[..k]);
        let (post, ext, hard) = (&mut self.post[..k], &mut self.ext[..k], &mut self.hard[..k]);
        let (gam, mem) = (&mut self.gam[..], &mut self.alpha[..]);
        let win = &mut self.win;
        win.reset();
        for _ in 0..max_iterations {
            // Decoder 1, natural order.
            win.siso(0, sys1, par1, apri1, gam, mem, post);
            stats.half_iterations += 1;
            // Decisions and extrinsics in one pass (the extrinsics are wasted only when the
            // check passes, i.e. once).
            for ((((h, e), &p), &s), &a) in hard
                .iter_mut()
                .zip(ext.iter_mut())
                .zip(post.iter())
                .zip(&sys1[..k])
                .zip(apri1.iter())
            {
                *h = u8::from(p <= 0.0);
                *e = (scale * (p - s - a)).clamp(-EXT_CLAMP, EXT_CLAMP);
            }
            hard[..filler].fill(0);
            if check(hard) {
                stats.check_passed = true;
                return Ok(stats);
            }
            for (a2, &j) in apri2.iter_mut().zip(pi) {
                *a2 = ext[j as usize];
            }
            // Decoder 2, interleaved order.
            win.siso(1, sys2, par2, apri2, gam, mem, post);
            stats.half_iterations += 1;
            for (((&j, &p), &s), &a) in pi.iter().zip(post.iter()).zip(&sys2[..k]).zip(apri2.iter())
            {
                let j = j as usize;
                apri1[j] = (scale * (p - s - a)).clamp(-EXT_CLAMP, EXT_CLAMP);
                hard[j] = u8::from(p <= 0.0);
            }
            hard[..filler].fill(0);
            if check(hard) {
                stats.check_passed = true;
                return Ok(stats);
            }
        }
        Ok(stats)
    }

    /// Splits the d-streams into the two constituent decoders' inputs.
    fn load(&mut self, d: &[f32], k: usize, filler: usize) {
        let dl = stream_len(k);
        let (d0, rest) = d.split_at(dl);
        let (d1, d2) = rest.split_at(dl);
        for (dst, src) in [
            (&mut self.sys1[..k], &d0[..k]),
            (&mut self.par1[..k], &d1[..k]),
            (&mut self.par2[..k], &d2[..k]),
        ] {
            for (o, &x) in dst.iter_mut().zip(src) {
                *o = clean(x);
            }
        }
        // Filler bits are known zeros (and so is encoder 1's parity over them).
        for i in 0..filler {
            self.sys1[i] = LLR_CLAMP;
            self.par1[i] = LLR_CLAMP;
        }
        let pi = self.pis.get(k).unwrap_or(&[]);
        for (s2, &j) in self.sys2.iter_mut().zip(pi) {
            *s2 = self.sys1[j as usize];
        }
        // Tail bits, §5.1.3.2.2: x_K = d0[K], z_K = d1[K], x_K+1 = d2[K], z_K+1 = d0[K+1],
        // x_K+2 = d1[K+1], z_K+2 = d2[K+1]; the primed ones at K+2, K+3 likewise.
        let t = |s: &[f32], i: usize| clean(s[k + i]);
        self.sys1[k..].copy_from_slice(&[t(d0, 0), t(d2, 0), t(d1, 1)]);
        self.par1[k..].copy_from_slice(&[t(d1, 0), t(d0, 1), t(d2, 1)]);
        self.sys2[k..].copy_from_slice(&[t(d0, 2), t(d2, 2), t(d1, 3)]);
        self.par2[k..].copy_from_slice(&[t(d1, 2), t(d0, 3), t(d2, 3)]);
        self.apri1.fill(0.0);
        self.apri2.fill(0.0);
    }
}

/// Upper bound on iterations a caller may ask for.
pub const MAX_ITERATIONS: usize = 32;

// ---- constituent max-log-MAP decoder -------------------------------------------------
//
// With state s = 4·s1 + 2·s2 + s3, the parity of branch (s, u) is u ⊕ s1 ⊕ s2, so every
// branch metric is ±g0 or ±g1 with g0 = (Lu + Lp)/2, g1 = (Lu − Lp)/2. The trellis is four
// butterflies: states (2j, 2j+1) lead to (j, j+4) with metric ±S_j, S = (g0, −g1, g1, −g0):
//   α'[j]   = max(α[2j] + S_j, α[2j+1] − S_j)
//   α'[j+4] = max(α[2j] − S_j, α[2j+1] + S_j)
// Lanes j = 0, 2 carry u = 0 on the +S_j branches, lanes 1, 3 carry u = 1 on them.
// The 8 state metrics live in two 4-lane vectors (states 0..3, 4..7).

/// Four f32 lanes and the few shuffles the trellis needs.
pub(crate) trait Lanes: Copy {
    fn from_array(a: [f32; 4]) -> Self;
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    /// Lane-wise maximum (inputs are never NaN).
    fn max(self, b: Self) -> Self;
    /// (x0..x3), (x4..x7) → even states (x0, x2, x4, x6), odd states (x1, x3, x5, x7).
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self);
    /// Inverse of [`Lanes::deinterleave`].
    fn interleave(even: Self, odd: Self) -> (Self, Self);
    /// Lane 0 broadcast to all lanes.
    fn broadcast0(self) -> Self;
    /// max(p0, m1, p2, m3) − max(m0, p1, m2, p3): the LLR from the butterfly sums.
    fn llr(p: Self, m: Self) -> f32;
}

/// Portable lanes; the compiler may or may not vectorise them.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))] // tested against the SSE lanes
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable([f32; 4]);

impl Lanes for Portable {
    #[inline(always)]
    fn from_array(a: [f32; 4]) -> Self {
        Portable(a)
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i] + b.0[i]))
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i] - b.0[i]))
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // f32::max is branch-free; a compare-and-select can become a mispredicted branch.
        Portable(std::array::from_fn(|i| self.0[i].max(b.0[i])))
    }
    #[inline(always)]
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
        let (l, h) = (lo.0, hi.0);
        (
            Portable([l[0], l[2], h[0], h[2]]),
            Portable([l[1], l[3], h[1], h[3]]),
        )
    }
    #[inline(always)]
    fn interleave(e: Self, o: Self) -> (Self, Self) {
        let (e, o) = (e.0, o.0);
        (
            Portable([e[0], o[0], e[1], o[1]]),
            Portable([e[2], o[2], e[3], o[3]]),
        )
    }
    #[inline(always)]
    fn broadcast0(self) -> Self {
        Portable([self.0[0]; 4])
    }
    #[inline(always)]
    fn llr(p: Self, m: Self) -> f32 {
        let (p, m) = (p.0, m.0);
        p[0].max(m[1]).max(p[2].max(m[3])) - m[0].max(p[1]).max(m[2].max(p[3]))
    }
}

#[cfg(target_arch = "x86_64")]
mod sse {
    // SSE/SSE2 are part of the x86_64 baseline, so these intrinsics are always available.
    // They are safe functions on recent compilers and `unsafe` on older ones.
    #![allow(unused_unsafe)]
    use super::Lanes;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Sse(pub(crate) __m128);

    impl Lanes for Sse {
        #[inline(always)]
        fn from_array(a: [f32; 4]) -> Self {
            Sse(unsafe { _mm_set_ps(a[3], a[2], a[1], a[0]) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Sse(unsafe { _mm_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            Sse(unsafe { _mm_sub_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            Sse(unsafe { _mm_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
            unsafe {
                (
                    Sse(_mm_shuffle_ps::<0x88>(lo.0, hi.0)),
                    Sse(_mm_shuffle_ps::<0xDD>(lo.0, hi.0)),
                )
            }
        }
        #[inline(always)]
        fn interleave(e: Self, o: Self) -> (Self, Self) {
            unsafe {
                (
                    Sse(_mm_unpacklo_ps(e.0, o.0)),
                    Sse(_mm_unpackhi_ps(e.0, o.0)),
                )
            }
        }
        #[inline(always)]
        fn broadcast0(self) -> Self {
            Sse(unsafe { _mm_shuffle_ps::<0x00>(self.0, self.0) })
        }
        #[inline(always)]
        fn llr(p: Self, m: Self) -> f32 {
            unsafe {
                // a = (p0, p2, m1, m3): the u = 0 candidates; b = (m0, m2, p1, p3): u = 1.
                let a = _mm_shuffle_ps::<0xD8>(p.0, m.0);
                let b = _mm_shuffle_ps::<0xD8>(m.0, p.0);
                let u = _mm_max_ps(_mm_movelh_ps(a, b), _mm_movehl_ps(b, a));
                let v = _mm_max_ps(u, _mm_shuffle_ps::<0xB1>(u, u));
                _mm_cvtss_f32(v) - _mm_cvtss_f32(_mm_movehl_ps(v, v))
            }
        }
    }
}

/// Two-window decoding on 256-bit AVX registers: the block is cut in half and both halves
/// run the same recursions side by side, window 0 in the low 128 bits and window 1 in the
/// high 128 bits of every register (all shuffles used stay within 128-bit halves). The
/// metrics at the cut are taken from the previous iteration ("next iteration
/// initialisation"), uniform on the first.
#[cfg(target_arch = "x86_64")]
mod avx {
    #![allow(unused_unsafe)]
    use super::sse::Sse;
    use super::{
        backward_step, branch_metrics, forward_step, normalise, start_state, Lanes, States,
        NORM_EVERY, TAIL,
    };
    use std::arch::x86_64::*;

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx(__m256);

    impl Lanes for Avx {
        #[inline(always)]
        fn from_array(a: [f32; 4]) -> Self {
            Avx(unsafe { _mm256_setr_ps(a[0], a[1], a[2], a[3], a[0], a[1], a[2], a[3]) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            Avx(unsafe { _mm256_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sub(self, b: Self) -> Self {
            Avx(unsafe { _mm256_sub_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            Avx(unsafe { _mm256_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
            unsafe {
                (
                    Avx(_mm256_shuffle_ps::<0x88>(lo.0, hi.0)),
                    Avx(_mm256_shuffle_ps::<0xDD>(lo.0, hi.0)),
                )
            }
        }
        #[inline(always)]
        fn interleave(e: Self, o: Self) -> (Self, Self) {
            unsafe {
                (
                    Avx(_mm256_unpacklo_ps(e.0, o.0)),
                    Avx(_mm256_unpackhi_ps(e.0, o.0)),
                )
            }
        }
        #[inline(always)]
        fn broadcast0(self) -> Self {
            Avx(unsafe { _mm256_shuffle_ps::<0x00>(self.0, self.0) })
        }
        #[inline(always)]
        fn llr(p: Self, m: Self) -> f32 {
            llr2(p, m).0
        }
    }

    /// The LLRs of both windows (see `Sse::llr`; same steps per 128-bit half).
    #[inline(always)]
    fn llr2(p: Avx, m: Avx) -> (f32, f32) {
        unsafe {
            let a = _mm256_shuffle_ps::<0xD8>(p.0, m.0);
            let b = _mm256_shuffle_ps::<0xD8>(m.0, p.0);
            let lo = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)));
            let hi = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)));
            let u = _mm256_max_ps(lo, hi);
            let v = _mm256_max_ps(u, _mm256_shuffle_ps::<0xB1>(u, u));
            let d = _mm256_sub_ps(v, _mm256_shuffle_ps::<0x0E>(v, v));
            (
                _mm256_cvtss_f32(d),
                _mm_cvtss_f32(_mm256_extractf128_ps::<1>(d)),
            )
        }
    }

    #[inline(always)]
    fn join(w0: Sse, w1: Sse) -> Avx {
        Avx(unsafe { _mm256_set_m128(w1.0, w0.0) })
    }

    #[inline(always)]
    fn join_states(w0: States<Sse>, w1: States<Sse>) -> States<Avx> {
        [join(w0[0], w1[0]), join(w0[1], w1[1])]
    }

    #[inline(always)]
    fn window(x: States<Avx>, w: usize) -> States<Sse> {
        unsafe {
            if w == 0 {
                [
                    Sse(_mm256_castps256_ps128(x[0].0)),
                    Sse(_mm256_castps256_ps128(x[1].0)),
                ]
            } else {
                [
                    Sse(_mm256_extractf128_ps::<1>(x[0].0)),
                    Sse(_mm256_extractf128_ps::<1>(x[1].0)),
                ]
            }
        }
    }

    /// Metrics at the cut between the windows, kept per constituent decoder between
    /// iterations: α entering window 1 and β leaving window 0.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Boundary {
        pub(crate) alpha: States<Sse>,
        pub(crate) beta: States<Sse>,
    }

    impl Boundary {
        /// Uniform metrics: nothing known yet.
        pub(crate) fn uniform() -> Self {
            let z = Sse::from_array([0.0; 4]);
            Boundary {
                alpha: [z, z],
                beta: [z, z],
            }
        }
    }

    /// Scratch of the windowed decoder.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Scratch {
        gam: Vec<Sse>,
        gam2: Vec<Avx>,
        mem: Vec<States<Avx>>,
    }

    /// Windowed constituent max-log-MAP pass, same contract as `siso` plus the boundary.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[target_feature(enable = "avx")]
    pub(crate) unsafe fn siso_windows(
        sys: &[f32],
        par: &[f32],
        apri: &[f32],
        scratch: &mut Scratch,
        post: &mut [f32],
        bnd: &mut Boundary,
    ) {
        let k = apri.len();
        let n = k + TAIL;
        let w = k / 2;
        let zero = Sse::from_array([0.0; 4]);
        scratch.gam.resize(n, zero);
        scratch.gam2.resize(w, join(zero, zero));
        scratch
            .mem
            .resize(w + 1, join_states([zero, zero], [zero, zero]));
        let gam = &mut scratch.gam[..n];
        let (gam2, mem) = (&mut scratch.gam2[..w], &mut scratch.mem[..=w]);
        let post = &mut post[..k];
        branch_metrics(sys, par, apri, gam);
        for (t, g2) in gam2.iter_mut().enumerate() {
            *g2 = join(gam[t], gam[w + t]);
        }
        // Window 1's β starts from the terminated tail.
        let mut bt = start_state::<Sse>();
        for i in (k..n).rev() {
            bt = backward_step(bt, gam[i]);
        }
        let mut a = join_states(start_state::<Sse>(), bnd.alpha);
        let mut b = normalise(join_states(bnd.beta, bt));
        mem[0] = a;
        mem[w] = b;
        let h = w / 2;
        for i in 0..h {
            a = forward_step(a, gam2[i]);
            let j = w - 1 - i;
            if j > h {
                b = backward_step(b, gam2[j]);
            }
            if i % NORM_EVERY == NORM_EVERY - 1 {
                a = normalise(a);
                b = normalise(b);
            }
            mem[i + 1] = a;
            if j > h {
                mem[j] = b;
            }
        }
        for t in 0..w - h {
            let kf = h + t;
            let (l0, l1) = llr2_step(a, mem[kf + 1], gam2[kf]);
            post[kf] = l0;
            post[w + kf] = l1;
            a = forward_step(a, gam2[kf]);
            let kb = h - t;
            b = backward_step(b, gam2[kb]);
            let (l0, l1) = llr2_step(mem[kb - 1], b, gam2[kb - 1]);
            post[kb - 1] = l0;
            post[w + kb - 1] = l1;
            if t % NORM_EVERY == NORM_EVERY - 1 {
                a = normalise(a);
                b = normalise(b);
            }
        }
        // α at the cut leaves window 0; β at the cut leaves window 1 (one more step).
        bnd.alpha = window(normalise(a), 0);
        bnd.beta = window(normalise(backward_step(b, gam2[0])), 1);
    }

    #[inline(always)]
    fn llr2_step(a: States<Avx>, b: States<Avx>, s: Avx) -> (f32, f32) {
        let (e, o) = Avx::deinterleave(a[0], a[1]);
        let p = e.add(b[0]).max(o.add(b[1])).add(s);
        let m = e.add(b[1]).max(o.add(b[0])).sub(s);
        llr2(p, m)
    }
}

/// The lanes the decoder uses on this target.
#[cfg(target_arch = "x86_64")]
pub(crate) type Simd = sse::Sse;
/// The lanes the decoder uses on this target.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Simd = Portable;

/// State metrics of one trellis step: states 0..3 and 4..7.
type States<L> = [L; 2];

#[inline(always)]
fn forward_step<L: Lanes>(a: States<L>, s: L) -> States<L> {
    let (e, o) = L::deinterleave(a[0], a[1]);
    [e.add(s).max(o.sub(s)), e.sub(s).max(o.add(s))]
}

#[inline(always)]
fn backward_step<L: Lanes>(b: States<L>, s: L) -> States<L> {
    let even = b[0].add(s).max(b[1].sub(s));
    let odd = b[0].sub(s).max(b[1].add(s));
    let (lo, hi) = L::interleave(even, odd);
    [lo, hi]
}

/// A-posteriori LLR of step k from α_k, β_{k+1} and S_k.
#[inline(always)]
fn llr_step<L: Lanes>(a: States<L>, b: States<L>, s: L) -> f32 {
    let (e, o) = L::deinterleave(a[0], a[1]);
    // Branches with +S_j: 2j → j, 2j+1 → j+4; with −S_j: 2j → j+4, 2j+1 → j.
    let p = e.add(b[0]).max(o.add(b[1])).add(s);
    let m = e.add(b[1]).max(o.add(b[0])).sub(s);
    L::llr(p, m)
}

/// Subtracts state 0's metric from all (metrics only matter relative to each other).
#[inline(always)]
fn normalise<L: Lanes>(m: States<L>) -> States<L> {
    let n = m[0].broadcast0();
    [m[0].sub(n), m[1].sub(n)]
}

/// Steps between normalisations: metrics grow by at most max|γ| per step, harmless in
/// f32 over a few steps, and skipping the subtraction shortens the recursion's latency.
const NORM_EVERY: usize = 8;

fn start_state<L: Lanes>() -> States<L> {
    [
        L::from_array([0.0, NEG, NEG, NEG]),
        L::from_array([NEG, NEG, NEG, NEG]),
    ]
}

/// Branch metrics S_k = (g0, −g1, g1, −g0) of every step, computed once and shared by
/// both recursions.
#[inline(always)]
fn branch_metrics<L: Lanes>(sys: &[f32], par: &[f32], apri: &[f32], gam: &mut [L]) {
    let k = apri.len();
    let (sys, par) = (&sys[..gam.len()], &par[..gam.len()]);
    let (info, tail) = gam.split_at_mut(k);
    for (((g, &s), &a), &p) in info.iter_mut().zip(sys).zip(apri).zip(par) {
        let (lu, lp) = (0.5 * (s + a), 0.5 * p);
        *g = L::from_array([lu + lp, lp - lu, lu - lp, -lu - lp]);
    }
    for ((g, &s), &p) in tail.iter_mut().zip(&sys[k..]).zip(&par[k..]) {
        let (lu, lp) = (0.5 * s, 0.5 * p);
        *g = L::from_array([lu + lp, lp - lu, lu - lp, -lu - lp]);
    }
}

/// One constituent max-log-MAP pass over K info steps plus 3 tail steps (trellis starts and
/// ends in state 0). `sys`, `par`: K+3 channel LLRs; `apri`: K a-priori LLRs; writes K
/// a-posteriori LLRs to `post`. `gam` (K+3) and `mem` (K+1) are scratch.
fn siso<L: Lanes>(
    sys: &[f32],
    par: &[f32],
    apri: &[f32],
    gam: &mut [L],
    mem: &mut [States<L>],
    post: &mut [f32],
) {
    let k = apri.len();
    let n = k + TAIL;
    let (sys, par, gam) = (&sys[..n], &par[..n], &mut gam[..n]);
    let (mem, post) = (&mut mem[..=k], &mut post[..k]);
    branch_metrics(sys, par, apri, gam);
    // Forward and backward recursions run together (two independent dependency chains
    // for the CPU to overlap): first α over the first half and β over the second half are
    // stored in `mem`, then each continues through the other half, emitting LLRs from the
    // stored values of the other.
    let h = k / 2;
    let mut a = start_state::<L>();
    mem[0] = a;
    let mut b = start_state::<L>();
    for i in (k..n).rev() {
        b = backward_step(b, gam[i]);
    }
    b = normalise(b);
    mem[k] = b;
    // Phase 1: α_1..α_h and β_{k-1}..β_{h+1}.
    for i in 0..h {
        a = forward_step(a, gam[i]);
        let j = k - 1 - i;
        if j > h {
            b = backward_step(b, gam[j]);
        }
        if i % NORM_EVERY == NORM_EVERY - 1 {
            a = normalise(a);
            b = normalise(b);
        }
        mem[i + 1] = a;
        if j > h {
            mem[j] = b;
        }
    }
    // Phase 2: α_h..α_{k-1} with β from memory, β_h..β_1 with α from memory.
    for t in 0..k - h {
        let kf = h + t;
        post[kf] = llr_step(a, mem[kf + 1], gam[kf]);
        a = forward_step(a, gam[kf]);
        let kb = h - t;
        b = backward_step(b, gam[kb]);
        post[kb - 1] = llr_step(mem[kb - 1], b, gam[kb - 1]);
        if t % NORM_EVERY == NORM_EVERY - 1 {
            a = normalise(a);
            b = normalise(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_188_sizes_of_5_1_3_3() {
        let want: Vec<usize> = (40..=512)
            .step_by(8)
            .chain((528..=1024).step_by(16))
            .chain((1056..=2048).step_by(32))
            .chain((2112..=6144).step_by(64))
            .collect();
        let got: Vec<usize> = BLOCK_SIZES
            .iter()
            .map(|&(k, _, _)| usize::from(k))
            .collect();
        assert_eq!(got, want);
        assert_eq!(qpp_params(40).unwrap(), (3, 10));
        assert_eq!(qpp_params(1504).unwrap(), (49, 846));
        assert_eq!(qpp_params(6144).unwrap(), (263, 480));
        assert!(qpp_params(41).is_err());
        assert!(qpp_params(6208).is_err());
    }

    #[test]
    fn every_qpp_interleaver_is_a_permutation_and_matches_the_formula() {
        let mut pi = Vec::new();
        let mut seen = Vec::new();
        for &(k, f1, f2) in BLOCK_SIZES.iter() {
            let (k, f1, f2) = (usize::from(k), usize::from(f1), usize::from(f2));
            qpp_interleaver(k, &mut pi).unwrap();
            assert_eq!(pi.len(), k);
            seen.clear();
            seen.resize(k, false);
            for (i, &p) in pi.iter().enumerate() {
                assert_eq!(p as usize, (f1 * i + f2 * i * i) % k, "K={k} i={i}");
                assert!(!seen[p as usize], "K={k}: {p} twice");
                seen[p as usize] = true;
            }
        }
    }

    /// The encoder of figure 5.1.3-2 transcribed literally: a 3-cell shift register per
    /// constituent code, the switch in the lower position for the tail.
    fn reference_encode(c: &[u8], f1: usize, f2: usize) -> Vec<u8> {
        let k = c.len();
        let rsc = |input: &[u8]| -> (Vec<u8>, Vec<u8>, Vec<u8>) {
            let mut r = [0u8; 3]; // r[0] = D, r[1] = D², r[2] = D³
            let mut z = Vec::new();
            for &u in input {
                let fb = r[1] ^ r[2];
                let a = u ^ fb;
                z.push(a ^ r[0] ^ r[2]);
                r = [a, r[0], r[1]];
            }
            let (mut xt, mut zt) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                let fb = r[1] ^ r[2];
                xt.push(fb);
                zt.push(r[0] ^ r[2]); // a = 0 with the switch down
                r = [0, r[0], r[1]];
            }
            assert_eq!(r, [0, 0, 0]);
            (z, xt, zt)
        };
        let cp: Vec<u8> = (0..k).map(|i| c[(f1 * i + f2 * i * i) % k]).collect();
        let (z, xt, zt) = rsc(c);
        let (z2, xt2, zt2) = rsc(&cp);
        let mut d0: Vec<u8> = c.to_vec();
        let mut d1 = z;
        let mut d2 = z2;
        d0.extend([xt[0], zt[1], xt2[0], zt2[1]]);
        d1.extend([zt[0], xt[2], zt2[0], xt2[2]]);
        d2.extend([xt[1], zt[2], xt2[1], zt2[2]]);
        [d0, d1, d2].concat()
    }

    fn pseudo_bits(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 7 & 1) as u8
            })
            .collect()
    }

    #[test]
    fn encoder_matches_literal_transcription() {
        let mut pi = Vec::new();
        for &k in &[40usize, 48, 104, 512, 1056, 6144] {
            let (f1, f2) = qpp_params(k).unwrap();
            qpp_interleaver(k, &mut pi).unwrap();
            let c = pseudo_bits(k, k as u32);
            let mut d = vec![0u8; 3 * stream_len(k)];
            encode(&c, 0, &pi, &mut d).unwrap();
            assert_eq!(d, reference_encode(&c, f1, f2), "K={k}");
        }
    }

    /// Textbook max-log BCJR over the explicit trellis, for checking the butterfly algebra.
    fn reference_siso(sys: &[f32], par: &[f32], apri: &[f32]) -> Vec<f32> {
        let k = apri.len();
        let n = k + TAIL;
        let gamma = |i: usize, s: u8, u: u8| {
            let (p, _) = rsc_step(s, u);
            let lu = if i < k { sys[i] + apri[i] } else { sys[i] };
            let xu = if u == 0 { 1.0 } else { -1.0 };
            let xp = if p == 0 { 1.0 } else { -1.0 };
            0.5 * (xu * lu + xp * par[i])
        };
        let mut alpha = vec![[f32::NEG_INFINITY; 8]; n + 1];
        alpha[0][0] = 0.0;
        for i in 0..n {
            for s in 0..8u8 {
                for u in 0..2u8 {
                    if i >= k && u != rsc_tail(s).0 {
                        continue;
                    }
                    let (_, nx) = rsc_step(s, u);
                    let m = alpha[i][s as usize] + gamma(i, s, u);
                    if m > alpha[i + 1][nx as usize] {
                        alpha[i + 1][nx as usize] = m;
                    }
                }
            }
        }
        let mut beta = vec![[f32::NEG_INFINITY; 8]; n + 1];
        beta[n][0] = 0.0;
        for i in (0..n).rev() {
            for s in 0..8u8 {
                for u in 0..2u8 {
                    if i >= k && u != rsc_tail(s).0 {
                        continue;
                    }
                    let (_, nx) = rsc_step(s, u);
                    let m = beta[i + 1][nx as usize] + gamma(i, s, u);
                    if m > beta[i][s as usize] {
                        beta[i][s as usize] = m;
                    }
                }
            }
        }
        (0..k)
            .map(|i| {
                let mut best = [f32::NEG_INFINITY; 2];
                for s in 0..8u8 {
                    for u in 0..2u8 {
                        let (_, nx) = rsc_step(s, u);
                        let m = alpha[i][s as usize] + gamma(i, s, u) + beta[i + 1][nx as usize];
                        best[u as usize] = best[u as usize].max(m);
                    }
                }
                best[0] - best[1]
            })
            .collect()
    }

    #[test]
    fn fast_siso_equals_textbook_max_log_bcjr() {
        let k = 48;
        let n = k + TAIL;
        let noise = |i: usize, s: u32| {
            let b = pseudo_bits(8, s.wrapping_add(i as u32));
            b.iter().fold(0.0f32, |acc, &x| acc * 2.0 + f32::from(x)) / 64.0 - 2.0
        };
        for seed in 0..5u32 {
            let sys: Vec<f32> = (0..n).map(|i| noise(i, seed * 1000)).collect();
            let par: Vec<f32> = (0..n).map(|i| noise(i, seed * 1000 + 500)).collect();
            let apri: Vec<f32> = (0..k).map(|i| 0.3 * noise(i, seed * 1000 + 900)).collect();
            let want = reference_siso(&sys, &par, &apri);
            let mut gam = vec![Simd::from_array([0.0; 4]); n];
            let mut mem = vec![start_state(); k + 1];
            let mut post = vec![0.0; k];
            siso(&sys, &par, &apri, &mut gam, &mut mem, &mut post);
            for (a, b) in post.iter().zip(&want) {
                assert!((a - b).abs() < 1e-3, "{a} vs {b}");
            }
            // The portable lanes (used off x86_64) give the same numbers.
            let mut gam = vec![Portable([0.0; 4]); n];
            let mut mem = vec![start_state(); k + 1];
            let mut post = vec![0.0; k];
            siso(&sys, &par, &apri, &mut gam, &mut mem, &mut post);
            for (a, b) in post.iter().zip(&want) {
                assert!((a - b).abs() < 1e-3, "portable {a} vs {b}");
            }
        }
    }

    fn to_llr(d: &[u8], amp: f32) -> Vec<f32> {
        d.iter().map(|&b| if b == 0 { amp } else { -amp }).collect()
    }

    #[test]
    fn noiseless_round_trip_with_and_without_filler() {
        let mut pi = Vec::new();
        let mut dec = TurboDecoder::new();
        for &(k, filler) in &[
            (40usize, 0usize),
            (40, 8),
            (48, 0),
            (512, 0),
            (1024, 23),
            (6144, 0),
        ] {
            qpp_interleaver(k, &mut pi).unwrap();
            let mut c = pseudo_bits(k, 7 + k as u32);
            c[..filler].fill(0);
            let mut d = vec![0u8; 3 * stream_len(k)];
            encode(&c, filler, &pi, &mut d).unwrap();
            let mut llr = to_llr(&d, 4.0);
            // Filler positions of d0/d1 are never transmitted: the receiver has nothing.
            let dl = stream_len(k);
            llr[..filler].fill(0.0);
            llr[dl..dl + filler].fill(0.0);
            let want = c.clone();
            let stats = dec
                .decode(&llr, k, filler, 4, &mut |h: &[u8]| h == want.as_slice())
                .unwrap();
            assert!(stats.check_passed, "K={k} F={filler}");
            assert_eq!(stats.half_iterations, 1, "clean input decodes in one pass");
            assert_eq!(dec.hard_bits(), &c[..]);
        }
    }

    #[test]
    fn without_early_stop_runs_all_iterations() {
        let k = 40;
        let mut pi = Vec::new();
        qpp_interleaver(k, &mut pi).unwrap();
        let c = pseudo_bits(k, 3);
        let mut d = vec![0u8; 3 * stream_len(k)];
        encode(&c, 0, &pi, &mut d).unwrap();
        let mut dec = TurboDecoder::new();
        let s = dec
            .decode(&to_llr(&d, 1.0), k, 0, 5, &mut |_: &[u8]| false)
            .unwrap();
        assert_eq!(s.half_iterations, 10);
        assert_eq!(s.iterations(), 5);
        assert!(!s.check_passed);
        assert_eq!(dec.hard_bits(), &c[..]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut dec = TurboDecoder::new();
        let mut ok = |_: &[u8]| true;
        assert!(dec.decode(&[0.0; 10], 40, 0, 4, &mut ok).is_err());
        assert!(dec.decode(&vec![0.0; 3 * 44], 41, 0, 4, &mut ok).is_err());
        assert!(dec.decode(&vec![0.0; 3 * 44], 40, 40, 4, &mut ok).is_err());
        assert!(dec.decode(&vec![0.0; 3 * 44], 40, 0, 0, &mut ok).is_err());
        let mut d = vec![0u8; 3 * 44];
        assert!(encode(&[0; 40], 0, &[0; 39], &mut d).is_err());
        assert!(encode(&[0; 39], 0, &[0; 39], &mut d).is_err());
        // Garbage LLRs decode to something without panicking.
        let junk: Vec<f32> = (0..3 * 44)
            .map(|i| match i % 4 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => -1e38,
                _ => 1e-40,
            })
            .collect();
        let s = dec.decode(&junk, 40, 0, 3, &mut |_: &[u8]| false).unwrap();
        assert_eq!(s.half_iterations, 6);
    }
}
