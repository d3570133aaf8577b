//! 16-bit fixed-point max-log-MAP turbo decoder for the LTE turbo code (the encoder, the
//! QPP interleaver and the f32 reference decoder are in [`crate::turbo`]).
//!
//! Layout: a code block of K steps is cut into `nw` ≤ 16 windows of `lw = K / nw` steps
//! that run side by side, one window per 16-bit lane: the eight state metrics are eight
//! vectors of 16 lanes, so a trellis butterfly is plain lane-wise arithmetic (no shuffles)
//! and one AVX2 register advances 16 windows by one step. Windows are joined by "next
//! iteration initialisation": the metrics at a cut are those the neighbouring window
//! reached in the previous iteration (uniform in the first), as in most software and
//! hardware LTE decoders; with windows of at least [`MIN_WINDOW`] steps the loss is within
//! the measurement noise of the BLER tables in docs/PHY-FEC.md.
//!
//! Arithmetic: saturating i16 throughout. The channel LLRs are scaled per code block so
//! that their mean magnitude is [`Q_MEAN`] and clipped to ±[`CH_MAX`] (max-log-MAP is
//! scale-invariant, so the scale changes no decision; it only sets the resolution: a
//! quantisation step of 1/24 of the mean LLR, and clipping at > 10× the mean, which only
//! touches LLRs that are certain anyway). Branch metrics are kept doubled (Lu ± Lp, no
//! halving, no rounding); extrinsics are scaled by `extrinsic_scale` (0.75) with one
//! rounding multiply and clipped to ±[`EXT_MAX`]. With those bounds a branch metric is at
//! most 1021 and state metrics, renormalised every [`NORM_EVERY`] steps, stay far from
//! ±32767, so saturation is only a safety net.
//!
//! Instruction sets: AVX2 (one 256-bit register per state), SSE4.1 (two 128-bit ones) and
//! portable scalar code run the *same* generic kernel on a 16-lane vector type, so their
//! results are bit-identical (tested); the best available is picked at run time with
//! `is_x86_feature_detected!`.

use crate::turbo::{block_size_index, stream_len, InterleaverCache, TurboStats, MAX_ITERATIONS};
use crate::{PhyError, Result};

/// Windows decoded side by side (16-bit lanes of one AVX2 register).
pub const LANES: usize = 16;
/// Shortest window: K is cut into the most windows (16, 8, 4, 2 or 1) that divide it into
/// windows of at least this many steps.
pub const MIN_WINDOW: usize = 64;
/// Mean magnitude of the scaled channel LLRs of a code block.
pub const Q_MEAN: f32 = 24.0;
/// Largest magnitude of a quantised channel LLR.
pub const CH_MAX: i16 = 255;
/// Largest magnitude of an extrinsic LLR.
pub const EXT_MAX: i16 = 511;
/// State metrics are renormalised (state 0 subtracted) every this many steps.
pub const NORM_EVERY: usize = 4;
/// Layouts of other block sizes kept for reuse.
const SPARE_LAYOUTS: usize = 3;
/// Metric of a state the trellis cannot be in.
const NEG: i16 = -8192;
/// Tail steps per constituent code.
const TAIL: usize = 3;

type Lane = [i16; LANES];
type States = [Lane; 8];

/// Which kernel runs the constituent decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (any CPU).
    Scalar,
    /// Two 128-bit SSE registers per state vector (x86_64 with SSE4.1).
    Sse41,
    /// One 256-bit AVX2 register per state vector.
    Avx2,
}

impl Isa {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Isa {
        if Isa::Avx2.available() {
            Isa::Avx2
        } else if Isa::Sse41.available() {
            Isa::Sse41
        } else {
            Isa::Scalar
        }
    }

    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Sse41 => std::arch::is_x86_feature_detected!("sse4.1"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every kernel, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Sse41, Isa::Avx2];
}

/// Number of windows for block size `k`.
pub fn windows(k: usize) -> usize {
    [16usize, 8, 4, 2]
        .into_iter()
        .find(|&w| k % w == 0 && k / w >= MIN_WINDOW)
        .unwrap_or(1)
}

/// Reusable fixed-point iterative turbo decoder (same contract as
/// [`crate::turbo::TurboDecoder`]); buffers grow only when a larger K than before arrives.
#[derive(Debug, Clone)]
pub struct FixedTurboDecoder {
    isa: Isa,
    k: usize,
    lw: usize,
    nw: usize,
    pis: InterleaverCache,
    /// Layout of K: bit i of a decoder's own order sits at lane i / lw, step i % lw, i.e.
    /// at slot (i % lw)·16 + i / lw of the lane-major arrays. `to2[s]` is the slot of
    /// decoder 1's layout that holds the bit decoder 2 processes at slot s; `to1` is the
    /// inverse.
    layout_k: usize,
    to2: Perm,
    to1: Perm,
    /// Natural order (padded with zeros to lw·16) → lane-major slots.
    from_nat: Perm,
    /// Layouts of the last few other block sizes (a transport block alternates between
    /// two, K+ and K−), so that switching back does not rebuild them.
    spare: Vec<(usize, Perm, Perm, Perm)>,
    nat: Vec<i16>,
    tmp: Vec<Lane>,
    masks: Vec<u32>,
    sys: [Vec<Lane>; 2],
    par: [Vec<Lane>; 2],
    apri: [Vec<Lane>; 2],
    post: Vec<Lane>,
    ext: Vec<Lane>,
    mem: Vec<States>,
    tail_beta: [[i16; 8]; 2],
    a_init: [States; 2],
    b_init: [States; 2],
    hard: Vec<u8>,
    /// Factor applied to the extrinsic information passed between the constituent
    /// decoders (0..=1, applied as a Q14 multiplier).
    pub extrinsic_scale: f32,
}

impl Default for FixedTurboDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Flat i16 view of a slice of lanes.
fn flat(v: &[Lane]) -> impl Iterator<Item = &i16> {
    v.iter().flat_map(|l| l.iter())
}

impl FixedTurboDecoder {
    /// A decoder using the fastest kernel of this CPU.
    pub fn new() -> Self {
        FixedTurboDecoder {
            isa: Isa::detect(),
            k: 0,
            lw: 0,
            nw: 1,
            pis: InterleaverCache::new(),
            layout_k: 0,
            to2: Perm::default(),
            to1: Perm::default(),
            from_nat: Perm::default(),
            spare: Vec::new(),
            nat: Vec::new(),
            tmp: Vec::new(),
            masks: Vec::new(),
            sys: [Vec::new(), Vec::new()],
            par: [Vec::new(), Vec::new()],
            apri: [Vec::new(), Vec::new()],
            post: Vec::new(),
            ext: Vec::new(),
            mem: Vec::new(),
            tail_beta: [[0; 8]; 2],
            a_init: [[[0; LANES]; 8]; 2],
            b_init: [[[0; LANES]; 8]; 2],
            hard: Vec::new(),
            extrinsic_scale: crate::turbo::DEFAULT_EXTRINSIC_SCALE,
        }
    }

    /// A decoder forced onto kernel `isa` (for tests and benchmarks); an error when this
    /// CPU cannot run it.
    pub fn with_isa(isa: Isa) -> Result<Self> {
        if !isa.available() {
            return Err(PhyError::Unsupported(format!(
                "this CPU cannot run the {isa:?} turbo kernel"
            )));
        }
        Ok(FixedTurboDecoder { isa, ..Self::new() })
    }

    /// The kernel in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Sizes buffers and layout for block size `k`.
    pub fn prepare(&mut self, k: usize) -> Result<()> {
        let pi = self.pis.get(k)?;
        let nw = windows(k);
        let lw = k / nw;
        if self.layout_k != k {
            // Keep the current layout; take K's from the spares if it is there.
            let cur = (
                self.layout_k,
                std::mem::take(&mut self.to2),
                std::mem::take(&mut self.to1),
                std::mem::take(&mut self.from_nat),
            );
            if let Some(i) = self.spare.iter().position(|l| l.0 == k) {
                let (_, to2, to1, from_nat) = self.spare.remove(i);
                (self.to2, self.to1, self.from_nat) = (to2, to1, from_nat);
                self.layout_k = k;
            }
            if cur.0 != 0 {
                self.spare.push(cur);
                if self.spare.len() > SPARE_LAYOUTS {
                    self.spare.remove(0);
                }
            }
        }
        if self.layout_k != k {
            let n = lw * LANES;
            let slot = |i: usize| (i % lw) * LANES + i / lw;
            // Slots of unused lanes map to themselves (their contents never reach a used lane).
            let mut to2: Vec<u16> = (0..n as u16).collect();
            for (i, &j) in pi.iter().enumerate() {
                to2[slot(i)] = slot(j as usize) as u16;
            }
            let mut to1 = vec![0u16; n];
            for (s2, &s1) in to2.iter().enumerate() {
                to1[usize::from(s1)] = s2 as u16;
            }
            self.to2 = Perm::new(to2, nw);
            self.to1 = Perm::new(to1, nw);
            // Slot t·16 + w of a used lane reads bit w·lw + t; unused lanes read the zero
            // padding after bit K.
            let unused = LANES - nw;
            let from_nat = (0..n)
                .map(|s| {
                    let (t, w) = (s / LANES, s % LANES);
                    if w < nw {
                        (w * lw + t) as u16
                    } else {
                        (k + t * unused + (w - nw)) as u16
                    }
                })
                .collect();
            self.from_nat = Perm::slots(from_nat);
            self.layout_k = k;
        }
        self.k = k;
        self.nw = nw;
        self.lw = lw;
        for v in self
            .sys
            .iter_mut()
            .chain(self.par.iter_mut())
            .chain(self.apri.iter_mut())
            .chain([&mut self.post, &mut self.ext, &mut self.tmp])
        {
            v.resize(lw, [0; LANES]);
        }
        self.mem.resize(lw, [[0; LANES]; 8]);
        self.hard.resize(k, 0);
        Ok(())
    }

    /// Hard decisions (0/1) of the last decoded block (an a-posteriori LLR ≤ 0 decides 1,
    /// so an erased input does not decode to the all-zero word whose CRC would pass).
    pub fn hard_bits(&self) -> &[u8] {
        &self.hard[..self.k]
    }

    /// Decodes one code block of size `k` from `d` = the 3·(K+4) LLRs of d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾
    /// (positive = bit 0, 0 = nothing received); `filler` leading bits are known zeros.
    /// Runs up to `max_iterations` iterations and stops as soon as `check(hard_bits)`
    /// passes after a half-iteration.
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
        block_size_index(k).ok_or_else(|| {
            PhyError::invalid(
                "turbo block size K",
                k,
                "one of the 188 sizes of 36.212 table 5.1.3-3",
            )
        })?;
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
        self.prepare(k)?;
        self.load(d, k, filler);
        let coef = (self.extrinsic_scale.clamp(0.0, 1.0) * 16384.0).round() as i16;
        let mut stats = TurboStats {
            half_iterations: 0,
            check_passed: false,
        };
        let (nw, lw, isa) = (self.nw, self.lw, self.isa);
        for _ in 0..max_iterations {
            for which in 0..2 {
                self.set_boundaries(which);
                let mut a_end = [[0; LANES]; 8];
                let mut b_start = [[0; LANES]; 8];
                let mut io = Pass {
                    sys: &self.sys[which][..lw],
                    par: &self.par[which][..lw],
                    apri: &self.apri[which][..lw],
                    mem: &mut self.mem[..lw],
                    post: &mut self.post[..lw],
                    ext: &mut self.ext[..lw],
                    a_init: &self.a_init[which],
                    b_init: &self.b_init[which],
                    a_end: &mut a_end,
                    b_start: &mut b_start,
                    coef,
                };
                run_pass(isa, &mut io);
                // Next iteration's metrics at the cuts: α entering window w+1 is where
                // window w ended, β leaving window w−1 is where window w started.
                for s in 0..8 {
                    for w in 1..nw {
                        self.a_init[which][s][w] = a_end[s][w - 1];
                        self.b_init[which][s][w - 1] = b_start[s][w];
                    }
                }
                stats.half_iterations += 1;
                self.exchange(which, filler);
                if check(&self.hard[..k]) {
                    stats.check_passed = true;
                    return Ok(stats);
                }
            }
        }
        Ok(stats)
    }

    /// Hard decisions of the pass just run and its extrinsics to the other decoder's
    /// a-priori input.
    fn exchange(&mut self, which: usize, filler: usize) {
        let (k, lw, nw) = (self.k, self.lw, self.nw);
        let post: &[i16] = self.post[..lw].as_flattened();
        let ext: &[i16] = self.ext[..lw].as_flattened();
        if which == 0 {
            // Decoder 1 ran in natural order.
            self.to2
                .gather(self.isa, ext, self.apri[1][..lw].as_flattened_mut());
            hard_decisions(
                self.isa,
                &self.post[..lw],
                nw,
                &mut self.masks,
                &mut self.hard[..k],
            );
        } else {
            // Decoder 2 ran in interleaved order: back to natural order first.
            self.to1
                .gather(self.isa, ext, self.apri[0][..lw].as_flattened_mut());
            self.to1
                .gather(self.isa, post, self.tmp[..lw].as_flattened_mut());
            hard_decisions(
                self.isa,
                &self.tmp[..lw],
                nw,
                &mut self.masks,
                &mut self.hard[..k],
            );
        }
        self.hard[..filler].fill(0);
    }

    /// Window-boundary metrics of decoder `which` for the coming pass: the fixed ends of
    /// the trellis (state 0 at the start, the terminated tail at the end).
    fn set_boundaries(&mut self, which: usize) {
        let last = self.nw - 1;
        for s in 0..8 {
            self.a_init[which][s][0] = if s == 0 { 0 } else { NEG };
            self.b_init[which][s][last] = self.tail_beta[which][s];
        }
    }

    /// Quantises the d-streams into both decoders' lane layouts.
    fn load(&mut self, d: &[f32], k: usize, filler: usize) {
        let dl = stream_len(k);
        let (d0, rest) = d.split_at(dl);
        let (d1, d2) = rest.split_at(dl);
        let (sum, n) = mean_abs(self.isa, d);
        let scale = if n == 0 || sum <= 0.0 {
            1.0
        } else {
            (f64::from(Q_MEAN) * f64::from(n) / sum).min(1.0e30) as f32
        };
        let q = |x: f32| quantise1(x, scale);
        for v in self.apri.iter_mut() {
            v.fill([0; LANES]);
        }
        let lw = self.lw;
        // Quantise each stream in natural order (vectorises), then move it to the lane
        // layout with one gather.
        self.nat.resize(lw * LANES, 0);
        let [par1, par2] = &mut self.par;
        for (src, dst) in [
            (d0, self.sys[0][..lw].as_flattened_mut()),
            (d1, par1[..lw].as_flattened_mut()),
            (d2, par2[..lw].as_flattened_mut()),
        ] {
            quantise(self.isa, &src[..k], scale, &mut self.nat[..k]);
            self.nat[k..].fill(0);
            self.from_nat.gather(self.isa, &self.nat, dst);
        }
        // Filler bits are known zeros, and so is encoder 1's parity over them.
        for i in 0..filler {
            self.sys[0][i % lw][i / lw] = CH_MAX;
            self.par[0][i % lw][i / lw] = CH_MAX;
        }
        let [s1, s2] = &mut self.sys;
        self.to2.gather(
            self.isa,
            s1[..lw].as_flattened(),
            s2[..lw].as_flattened_mut(),
        );
        // Tail bits, §5.1.3.2.2 (see turbo.rs): systematic and parity of the 3 tail steps.
        let t = |s: &[f32], i: usize| q(s[k + i]);
        let tails = [
            (
                [t(d0, 0), t(d2, 0), t(d1, 1)],
                [t(d1, 0), t(d0, 1), t(d2, 1)],
            ),
            (
                [t(d0, 2), t(d2, 2), t(d1, 3)],
                [t(d1, 2), t(d0, 3), t(d2, 3)],
            ),
        ];
        for (which, (sys, par)) in tails.into_iter().enumerate() {
            self.tail_beta[which] = tail_beta(&sys, &par);
            self.a_init[which] = [[0; LANES]; 8];
            self.b_init[which] = [[0; LANES]; 8];
        }
    }

    /// The raw lane arrays of the last pass (a-posteriori, extrinsic), for the bit-exact
    /// tests across kernels.
    #[doc(hidden)]
    pub fn last_pass(&self) -> (Vec<i16>, Vec<i16>) {
        (
            flat(&self.post[..self.lw]).copied().collect(),
            flat(&self.ext[..self.lw]).copied().collect(),
        )
    }
}

/// Hard decisions (an LLR ≤ 0 decides 1) of a decoder-1 lane layout, in natural order:
/// first one sign mask per step (bit 2w for lane w, `pmovmskb` on x86), then each lane's
/// bits read out sequentially (a direct strided read of one lane per bit is slow).
fn hard_decisions(isa: Isa, post: &[Lane], nw: usize, masks: &mut Vec<u32>, hard: &mut [u8]) {
    let lw = post.len();
    masks.clear();
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only selected when the CPU reported the feature (see `run_pass`).
        Isa::Avx2 => unsafe { x86::masks_avx2(post, masks) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Sse41 => unsafe { x86::masks_sse41(post, masks) },
        _ => masks.extend(post.iter().map(|&l| Sc(l).sign_mask())),
    }
    for (w, out) in hard.chunks_exact_mut(lw).take(nw).enumerate() {
        let shift = 2 * (w % LANES) as u32;
        for (h, &m) in out.iter_mut().zip(masks.iter()) {
            *h = (m >> shift & 1) as u8;
        }
    }
}

/// A permutation of the slots 0..n of a lane layout, checked on construction so that
/// gathering through it needs no bounds checks.
///
/// The QPP interleaver is contention-free for every window count that divides K: the bits
/// the 16 windows process at one step all come from one step of the other decoder's
/// layout (π(t + w·lw) ≡ π(t) mod lw). Such a permutation moves whole rows of 16 lanes with
/// their lanes reordered, which AVX2 does with two byte shuffles per row instead of 16
/// scalar loads and stores ([`RowPlan`]).
#[derive(Debug, Clone, Default)]
struct Perm {
    idx: Vec<u16>,
    rows: Option<RowPlan>,
}

/// Row form of a [`Perm`]: destination row t is source row `row[t]` with its lanes
/// reordered by two `pshufb` controls (bytes from the same 128-bit half, and from the other
/// half once the halves are swapped; 0x80 zeroes a byte).
#[derive(Debug, Clone)]
struct RowPlan {
    row: Vec<u16>,
    ctl: Vec<[[u8; 32]; 2]>,
}

impl RowPlan {
    /// The row form of `idx` (slot s = row·16 + lane reads slot idx[s]) for `used` lanes,
    /// if every row's used lanes read one source row; unused lanes read any lane (their
    /// contents never reach a used one).
    fn new(idx: &[u16], used: usize) -> Option<RowPlan> {
        if idx.len() % LANES != 0 || used == 0 {
            return None;
        }
        let mut row = Vec::with_capacity(idx.len() / LANES);
        let mut ctl = Vec::with_capacity(idx.len() / LANES);
        for dst in idx.chunks_exact(LANES) {
            let r = usize::from(dst[0]) / LANES;
            if dst[..used].iter().any(|&i| usize::from(i) / LANES != r) {
                return None;
            }
            let mut c = [[0x80u8; 32]; 2];
            for (w, &i) in dst.iter().enumerate() {
                let lane = if w < used { usize::from(i) % LANES } else { w };
                let (half, src_half) = (w / 8, lane / 8);
                let which = usize::from(half != src_half);
                let b = (2 * (lane % 8)) as u8;
                c[which][2 * w] = b;
                c[which][2 * w + 1] = b + 1;
            }
            row.push(r as u16);
            ctl.push(c);
        }
        Some(RowPlan { row, ctl })
    }
}

impl Perm {
    /// The permutation `idx`, with its row form when the first `used` lanes allow one.
    fn new(idx: Vec<u16>, used: usize) -> Perm {
        let mut seen = vec![false; idx.len()];
        for &i in &idx {
            let i = usize::from(i);
            assert!(i < idx.len() && !seen[i], "not a permutation");
            seen[i] = true;
        }
        let rows = RowPlan::new(&idx, used);
        Perm { idx, rows }
    }

    /// A permutation gathered slot by slot only (no row form).
    fn slots(idx: Vec<u16>) -> Perm {
        Perm {
            rows: None,
            ..Perm::new(idx, 0)
        }
    }

    /// dst[s] = src[idx[s]] for every slot s of a used lane (all slots when gathered slot by
    /// slot).
    #[inline]
    fn gather(&self, isa: Isa, src: &[i16], dst: &mut [i16]) {
        let n = self.idx.len();
        let (src, dst) = (&src[..n], &mut dst[..n]);
        #[cfg(target_arch = "x86_64")]
        if let (Isa::Avx2, Some(plan)) = (isa, &self.rows) {
            // SAFETY: AVX2 was detected (an `Isa::Avx2` decoder is only built when it is);
            // the plan was built from this permutation, so every row index is < n / 16.
            unsafe { x86::gather_rows_avx2(plan, src, dst) };
            return;
        }
        let _ = isa;
        for (d, &i) in dst.iter_mut().zip(&self.idx) {
            // SAFETY: every entry of `idx` is < n = src.len() (checked in `Perm::new`).
            *d = unsafe { *src.get_unchecked(usize::from(i)) };
        }
    }
}

/// NaN → 0, ±inf and huge values clipped (the mean used for scaling stays finite).
#[inline(always)]
fn clean(x: f32) -> f32 {
    let y = x.clamp(-1.0e6, 1.0e6);
    if y.is_nan() {
        0.0
    } else {
        y
    }
}

/// Sum of |clean(x)| over `d` and how many are non-zero: eight partial f32 sums (element i
/// into sum i mod 8), added up in f64 — the same arithmetic in every kernel.
fn mean_abs(isa: Isa, d: &[f32]) -> (f64, u32) {
    let (mut sum, mut cnt) = ([0.0f32; 8], [0.0f32; 8]);
    let chunks = d.chunks_exact(8);
    let rest = chunks.remainder();
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only an AVX2 decoder gets here, and it is built only when AVX2 was found.
        Isa::Avx2 => unsafe { x86::mean_abs_avx2(d, &mut sum, &mut cnt) },
        _ => {
            for ch in chunks {
                for j in 0..8 {
                    let y = clean_abs(ch[j]);
                    sum[j] += y;
                    cnt[j] += if y > 0.0 { 1.0 } else { 0.0 };
                }
            }
        }
    }
    for (j, &x) in rest.iter().enumerate() {
        let y = clean_abs(x);
        sum[j] += y;
        cnt[j] += if y > 0.0 { 1.0 } else { 0.0 };
    }
    (
        sum.iter().map(|&x| f64::from(x)).sum::<f64>(),
        cnt.iter().map(|&c| c as u32).sum::<u32>(),
    )
}

/// One channel LLR quantised: clean, scaled, rounded half away from zero with a truncating
/// conversion (no libm call), within ±[`CH_MAX`].
#[inline(always)]
fn quantise1(x: f32, scale: f32) -> i16 {
    let y = clean(x) * scale;
    let lim = f32::from(CH_MAX);
    // max/min drop NaN (0 · inf), so the value is finite and within ±CH_MAX.
    let r = (y + 0.5f32.copysign(y)).max(-lim).min(lim);
    // SAFETY: `r` is finite and within i32's range.
    unsafe { r.to_int_unchecked::<i32>() as i16 }
}

/// [`quantise1`] of every `src` into `dst` (same length).
fn quantise(isa: Isa, src: &[f32], scale: f32, dst: &mut [i16]) {
    let n = src.len().min(dst.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        // SAFETY: as in `mean_abs`.
        done = unsafe { x86::quantise_avx2(&src[..n], scale, &mut dst[..n]) };
    }
    let _ = isa;
    for (o, &x) in dst[done..n].iter_mut().zip(&src[done..n]) {
        *o = quantise1(x, scale);
    }
}

/// `clean(x).abs()` as selects only (NaN fails both comparisons and becomes 0), so that a
/// loop over it vectorises.
#[inline(always)]
fn clean_abs(x: f32) -> f32 {
    let a = x.abs();
    if a <= 1.0e6 {
        a
    } else if a > 1.0e6 {
        1.0e6
    } else {
        0.0
    }
}

/// β at step K of a terminated constituent trellis: three backward steps from state 0
/// over the tail (doubled branch metrics, renormalised to state 0).
fn tail_beta(sys: &[i16; TAIL], par: &[i16; TAIL]) -> [i16; 8] {
    let mut b = [NEG; 8];
    b[0] = 0;
    for t in (0..TAIL).rev() {
        let g0 = sys[t].saturating_add(par[t]);
        let g1 = sys[t].saturating_sub(par[t]);
        b = bwd(b.map(Sc::splat1), Sc::splat1(g0), Sc::splat1(g1)).map(|v| v.0[0]);
    }
    let b0 = b[0];
    b.map(|x| x.saturating_sub(b0))
}

/// Inputs and outputs of one constituent pass over all windows.
struct Pass<'a> {
    sys: &'a [Lane],
    par: &'a [Lane],
    apri: &'a [Lane],
    mem: &'a mut [States],
    post: &'a mut [Lane],
    ext: &'a mut [Lane],
    a_init: &'a States,
    b_init: &'a States,
    a_end: &'a mut States,
    b_start: &'a mut States,
    coef: i16,
}

fn run_pass(isa: Isa, io: &mut Pass) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Isa` other than Scalar is only selected when the CPU reported it
        // (`Isa::detect`, `FixedTurboDecoder::with_isa`).
        Isa::Avx2 => unsafe { x86::pass_avx2(io) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Sse41 => unsafe { x86::pass_sse41(io) },
        _ => pass::<Sc>(io),
    }
}

/// Sixteen i16 lanes with saturating arithmetic.
trait V: Copy {
    fn load(x: &Lane) -> Self;
    fn store(self, x: &mut Lane);
    fn splat(x: i16) -> Self;
    fn adds(self, b: Self) -> Self;
    fn subs(self, b: Self) -> Self;
    fn max(self, b: Self) -> Self;
    fn min(self, b: Self) -> Self;
    /// Rounded Q15 product: (a·b + 2¹⁴) >> 15 (x86 `pmulhrsw`).
    fn mulhrs(self, b: Self) -> Self;
    /// Bits 2w and 2w+1 set when lane w ≤ 0 (the layout of x86 `pmovmskb`).
    fn sign_mask(self) -> u32;
}

/// Portable lanes.
#[derive(Clone, Copy, Debug)]
struct Sc(Lane);

impl Sc {
    fn splat1(x: i16) -> Sc {
        Sc([x; LANES])
    }
}

impl V for Sc {
    #[inline(always)]
    fn load(x: &Lane) -> Self {
        Sc(*x)
    }
    #[inline(always)]
    fn store(self, x: &mut Lane) {
        *x = self.0;
    }
    #[inline(always)]
    fn splat(x: i16) -> Self {
        Sc([x; LANES])
    }
    #[inline(always)]
    fn adds(self, b: Self) -> Self {
        Sc(std::array::from_fn(|i| self.0[i].saturating_add(b.0[i])))
    }
    #[inline(always)]
    fn subs(self, b: Self) -> Self {
        Sc(std::array::from_fn(|i| self.0[i].saturating_sub(b.0[i])))
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        Sc(std::array::from_fn(|i| self.0[i].max(b.0[i])))
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        Sc(std::array::from_fn(|i| self.0[i].min(b.0[i])))
    }
    #[inline(always)]
    fn mulhrs(self, b: Self) -> Self {
        Sc(std::array::from_fn(|i| {
            ((i32::from(self.0[i]) * i32::from(b.0[i]) + 0x4000) >> 15) as i16
        }))
    }
    #[inline(always)]
    fn sign_mask(self) -> u32 {
        self.0
            .iter()
            .enumerate()
            .fold(0, |m, (w, &x)| m | (u32::from(x <= 0) * (3 << (2 * w))))
    }
}

// ---- the trellis on 16 windows at once ----------------------------------------------
//
// State s = 4·s1 + 2·s2 + s3 (turbo.rs); branch metrics doubled: g0 = Lu + Lp (u = 0,
// parity 0), g1 = Lu − Lp (u = 0, parity 1); u = 1 negates them. Butterfly j joins states
// 2j, 2j+1 to j, j+4 with metric ±S_j, S = (g0, −g1, g1, −g0).

#[inline(always)]
fn fwd<T: V>(a: [T; 8], g0: T, g1: T) -> [T; 8] {
    [
        a[0].adds(g0).max(a[1].subs(g0)),
        a[2].subs(g1).max(a[3].adds(g1)),
        a[4].adds(g1).max(a[5].subs(g1)),
        a[6].subs(g0).max(a[7].adds(g0)),
        a[0].subs(g0).max(a[1].adds(g0)),
        a[2].adds(g1).max(a[3].subs(g1)),
        a[4].subs(g1).max(a[5].adds(g1)),
        a[6].adds(g0).max(a[7].subs(g0)),
    ]
}

#[inline(always)]
fn bwd<T: V>(b: [T; 8], g0: T, g1: T) -> [T; 8] {
    [
        b[0].adds(g0).max(b[4].subs(g0)),
        b[0].subs(g0).max(b[4].adds(g0)),
        b[1].subs(g1).max(b[5].adds(g1)),
        b[1].adds(g1).max(b[5].subs(g1)),
        b[2].adds(g1).max(b[6].subs(g1)),
        b[2].subs(g1).max(b[6].adds(g1)),
        b[3].subs(g0).max(b[7].adds(g0)),
        b[3].adds(g0).max(b[7].subs(g0)),
    ]
}

/// A-posteriori LLR (doubled) of a step from α before it, β after it and its metrics.
#[inline(always)]
fn llr<T: V>(a: [T; 8], b: [T; 8], g0: T, g1: T) -> T {
    // Per butterfly j: A = α2j+βj, B = α2j+1+βj+4 (the +S_j branches), C = α2j+βj+4,
    // D = α2j+1+βj (the −S_j branches); u = 0 is +S for j = 0, 2 and −S for j = 1, 3.
    let ab = |j: usize| a[2 * j].adds(b[j]).max(a[2 * j + 1].adds(b[j + 4]));
    let cd = |j: usize| a[2 * j].adds(b[j + 4]).max(a[2 * j + 1].adds(b[j]));
    let u0 = ab(0).max(cd(3)).adds(g0).max(cd(1).max(ab(2)).adds(g1));
    let u1 = cd(0).max(ab(3)).subs(g0).max(ab(1).max(cd(2)).subs(g1));
    u0.subs(u1)
}

#[inline(always)]
fn norm<T: V>(m: [T; 8]) -> [T; 8] {
    let z = m[0];
    m.map(|x| x.subs(z))
}

#[inline(always)]
fn load8<T: V>(s: &States) -> [T; 8] {
    std::array::from_fn(|i| T::load(&s[i]))
}

#[inline(always)]
fn store8<T: V>(m: [T; 8], s: &mut States) {
    for (v, d) in m.into_iter().zip(s.iter_mut()) {
        v.store(d);
    }
}

/// One constituent max-log-MAP pass: α forward (stored), then β backward with the
/// a-posteriori and extrinsic outputs.
#[inline(always)]
fn pass<T: V>(io: &mut Pass) {
    let lw = io.sys.len();
    let (sys, par, apri) = (io.sys, &io.par[..lw], &io.apri[..lw]);
    let (mem, post, ext) = (&mut io.mem[..lw], &mut io.post[..lw], &mut io.ext[..lw]);
    let mut a: [T; 8] = load8(io.a_init);
    for t in 0..lw {
        store8(a, &mut mem[t]);
        let lu = T::load(&sys[t]).adds(T::load(&apri[t]));
        let p = T::load(&par[t]);
        a = fwd(a, lu.adds(p), lu.subs(p));
        if t % NORM_EVERY == NORM_EVERY - 1 {
            a = norm(a);
        }
    }
    store8(norm(a), io.a_end);
    let coef = T::splat(io.coef);
    let (hi, lo) = (T::splat(EXT_MAX), T::splat(-EXT_MAX));
    let mut b: [T; 8] = load8(io.b_init);
    for (n, t) in (0..lw).rev().enumerate() {
        let lu = T::load(&sys[t]).adds(T::load(&apri[t]));
        let p = T::load(&par[t]);
        let (g0, g1) = (lu.adds(p), lu.subs(p));
        let l = llr(load8(&mem[t]), b, g0, g1);
        l.store(&mut post[t]);
        l.subs(lu.adds(lu))
            .mulhrs(coef)
            .min(hi)
            .max(lo)
            .store(&mut ext[t]);
        b = bwd(b, g0, g1);
        if n % NORM_EVERY == NORM_EVERY - 1 {
            b = norm(b);
        }
    }
    store8(norm(b), io.b_start);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #![allow(unused_unsafe)]
    use super::{pass, Lane, Pass, RowPlan, LANES, V};
    use std::arch::x86_64::*;

    /// The AVX2 body of `mean_abs`: whole chunks of 8 into the partial sums and counts.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mean_abs_avx2(d: &[f32], sum: &mut [f32; 8], cnt: &mut [f32; 8]) {
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let big = _mm256_set1_ps(1.0e6);
        let one = _mm256_set1_ps(1.0);
        let zero = _mm256_setzero_ps();
        let mut s = _mm256_loadu_ps(sum.as_ptr());
        let mut c = _mm256_loadu_ps(cnt.as_ptr());
        for ch in d.chunks_exact(8) {
            let a = _mm256_and_ps(_mm256_loadu_ps(ch.as_ptr()), abs);
            // clean_abs: a when ≤ 1e6, 1e6 when above, 0 for NaN (both compares false).
            let y = _mm256_or_ps(
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(a, big), a),
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, big), big),
            );
            s = _mm256_add_ps(s, y);
            c = _mm256_add_ps(c, _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(y, zero), one));
        }
        _mm256_storeu_ps(sum.as_mut_ptr(), s);
        _mm256_storeu_ps(cnt.as_mut_ptr(), c);
    }

    /// The AVX2 body of `quantise`: the first multiple of 8 of `src`; returns how many.
    ///
    /// # Safety
    /// The CPU must support AVX2; `dst` at least as long as `src`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantise_avx2(src: &[f32], scale: f32, dst: &mut [i16]) -> usize {
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let half = _mm256_set1_ps(0.5);
        let (lo, hi) = (_mm256_set1_ps(-1.0e6), _mm256_set1_ps(1.0e6));
        let lim = f32::from(super::CH_MAX);
        let (nlim, plim) = (_mm256_set1_ps(-lim), _mm256_set1_ps(lim));
        let k = _mm256_set1_ps(scale);
        let n = src.len() / 8 * 8;
        for (i, ch) in src[..n].chunks_exact(8).enumerate() {
            let x = _mm256_loadu_ps(ch.as_ptr());
            // clean: NaN → 0 (unordered with itself), then clipped to ±1e6.
            let x = _mm256_and_ps(x, _mm256_cmp_ps::<_CMP_ORD_Q>(x, x));
            let c = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
            let y = _mm256_mul_ps(c, k);
            let r = _mm256_add_ps(y, _mm256_or_ps(_mm256_and_ps(y, sign), half));
            let r = _mm256_min_ps(_mm256_max_ps(r, nlim), plim);
            let q = _mm256_cvttps_epi32(r);
            // Eight i32 → eight i16 (in range, so packing saturates nothing), in order.
            let p = _mm256_packs_epi32(q, q);
            let p = _mm256_permute4x64_epi64::<0x08>(p);
            _mm_storeu_si128(
                dst.as_mut_ptr().add(8 * i).cast(),
                _mm256_castsi256_si128(p),
            );
        }
        n
    }

    /// `dst` row t = `src` row `plan.row[t]` with its lanes reordered (see [`RowPlan`]).
    ///
    /// # Safety
    /// The CPU must support AVX2; every `plan.row` entry must be < `src.len() / 16`, and
    /// `dst` must hold `plan.row.len()` rows.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gather_rows_avx2(plan: &RowPlan, src: &[i16], dst: &mut [i16]) {
        debug_assert!(dst.len() >= plan.row.len() * LANES);
        for (t, (&r, c)) in plan.row.iter().zip(&plan.ctl).enumerate() {
            let x = _mm256_loadu_si256(src.as_ptr().add(usize::from(r) * LANES).cast());
            let swapped = _mm256_permute4x64_epi64::<0x4E>(x);
            let c0 = _mm256_loadu_si256(c[0].as_ptr().cast());
            let c1 = _mm256_loadu_si256(c[1].as_ptr().cast());
            let y = _mm256_or_si256(_mm256_shuffle_epi8(x, c0), _mm256_shuffle_epi8(swapped, c1));
            _mm256_storeu_si256(dst.as_mut_ptr().add(t * LANES).cast(), y);
        }
    }

    #[derive(Clone, Copy, Debug)]
    pub(super) struct Avx2(__m256i);

    impl V for Avx2 {
        #[inline(always)]
        fn load(x: &Lane) -> Self {
            // SAFETY: `x` is 32 readable bytes; unaligned load.
            Avx2(unsafe { _mm256_loadu_si256(x.as_ptr().cast()) })
        }
        #[inline(always)]
        fn store(self, x: &mut Lane) {
            // SAFETY: `x` is 32 writable bytes; unaligned store.
            unsafe { _mm256_storeu_si256(x.as_mut_ptr().cast(), self.0) }
        }
        #[inline(always)]
        fn splat(x: i16) -> Self {
            Avx2(unsafe { _mm256_set1_epi16(x) })
        }
        #[inline(always)]
        fn adds(self, b: Self) -> Self {
            Avx2(unsafe { _mm256_adds_epi16(self.0, b.0) })
        }
        #[inline(always)]
        fn subs(self, b: Self) -> Self {
            Avx2(unsafe { _mm256_subs_epi16(self.0, b.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            Avx2(unsafe { _mm256_max_epi16(self.0, b.0) })
        }
        #[inline(always)]
        fn min(self, b: Self) -> Self {
            Avx2(unsafe { _mm256_min_epi16(self.0, b.0) })
        }
        #[inline(always)]
        fn mulhrs(self, b: Self) -> Self {
            Avx2(unsafe { _mm256_mulhrs_epi16(self.0, b.0) })
        }
        #[inline(always)]
        fn sign_mask(self) -> u32 {
            unsafe { _mm256_movemask_epi8(_mm256_cmpgt_epi16(_mm256_set1_epi16(1), self.0)) as u32 }
        }
    }

    /// Lanes 0..8 and 8..16 in two SSE registers.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Sse2x(__m128i, __m128i);

    impl V for Sse2x {
        #[inline(always)]
        fn load(x: &Lane) -> Self {
            // SAFETY: `x` is 32 readable bytes; two unaligned 16-byte loads.
            unsafe {
                Sse2x(
                    _mm_loadu_si128(x.as_ptr().cast()),
                    _mm_loadu_si128(x[LANES / 2..].as_ptr().cast()),
                )
            }
        }
        #[inline(always)]
        fn store(self, x: &mut Lane) {
            // SAFETY: `x` is 32 writable bytes.
            unsafe {
                _mm_storeu_si128(x.as_mut_ptr().cast(), self.0);
                _mm_storeu_si128(x[LANES / 2..].as_mut_ptr().cast(), self.1);
            }
        }
        #[inline(always)]
        fn splat(x: i16) -> Self {
            unsafe { Sse2x(_mm_set1_epi16(x), _mm_set1_epi16(x)) }
        }
        #[inline(always)]
        fn adds(self, b: Self) -> Self {
            unsafe { Sse2x(_mm_adds_epi16(self.0, b.0), _mm_adds_epi16(self.1, b.1)) }
        }
        #[inline(always)]
        fn subs(self, b: Self) -> Self {
            unsafe { Sse2x(_mm_subs_epi16(self.0, b.0), _mm_subs_epi16(self.1, b.1)) }
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            unsafe { Sse2x(_mm_max_epi16(self.0, b.0), _mm_max_epi16(self.1, b.1)) }
        }
        #[inline(always)]
        fn min(self, b: Self) -> Self {
            unsafe { Sse2x(_mm_min_epi16(self.0, b.0), _mm_min_epi16(self.1, b.1)) }
        }
        #[inline(always)]
        fn mulhrs(self, b: Self) -> Self {
            unsafe { Sse2x(_mm_mulhrs_epi16(self.0, b.0), _mm_mulhrs_epi16(self.1, b.1)) }
        }
        #[inline(always)]
        fn sign_mask(self) -> u32 {
            unsafe {
                let one = _mm_set1_epi16(1);
                let lo = _mm_movemask_epi8(_mm_cmpgt_epi16(one, self.0)) as u32;
                let hi = _mm_movemask_epi8(_mm_cmpgt_epi16(one, self.1)) as u32;
                lo | hi << 16
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn masks_avx2(post: &[Lane], out: &mut Vec<u32>) {
        out.extend(post.iter().map(|l| Avx2::load(l).sign_mask()));
    }

    /// # Safety
    /// The CPU must support SSE4.1.
    #[target_feature(enable = "sse4.1")]
    pub(super) unsafe fn masks_sse41(post: &[Lane], out: &mut Vec<u32>) {
        out.extend(post.iter().map(|l| Sse2x::load(l).sign_mask()));
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pass_avx2(io: &mut Pass) {
        pass::<Avx2>(io)
    }

    /// # Safety
    /// The CPU must support SSE4.1 (which implies the SSSE3 `pmulhrsw`).
    #[target_feature(enable = "sse4.1")]
    pub(super) unsafe fn pass_sse41(io: &mut Pass) {
        pass::<Sse2x>(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turbo::{encode, qpp_interleaver, rsc_step, rsc_tail};

    fn pseudo(n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect()
    }

    /// Textbook max-log BCJR over the explicit trellis in f64 (exact on integer inputs),
    /// returning the LLRs doubled like the fixed-point kernel's.
    fn reference(sys: &[i16], par: &[i16], apri: &[i16], tail: ([i16; 3], [i16; 3])) -> Vec<i32> {
        let k = apri.len();
        let n = k + TAIL;
        let lu = |i: usize| -> f64 {
            if i < k {
                f64::from(sys[i]) + f64::from(apri[i])
            } else {
                f64::from(tail.0[i - k])
            }
        };
        let lp = |i: usize| f64::from(if i < k { par[i] } else { tail.1[i - k] });
        let gamma = |i: usize, s: u8, u: u8| {
            let (p, _) = rsc_step(s, u);
            let xu = if u == 0 { 1.0 } else { -1.0 };
            let xp = if p == 0 { 1.0 } else { -1.0 };
            0.5 * (xu * lu(i) + xp * lp(i))
        };
        let allowed = |i: usize, s: u8, u: u8| i < k || u == rsc_tail(s).0;
        let mut alpha = vec![[f64::NEG_INFINITY; 8]; n + 1];
        alpha[0][0] = 0.0;
        let mut beta = vec![[f64::NEG_INFINITY; 8]; n + 1];
        beta[n][0] = 0.0;
        for i in 0..n {
            for s in 0..8u8 {
                for u in 0..2u8 {
                    if allowed(i, s, u) {
                        let (_, nx) = rsc_step(s, u);
                        let m = alpha[i][s as usize] + gamma(i, s, u);
                        alpha[i + 1][nx as usize] = alpha[i + 1][nx as usize].max(m);
                    }
                }
            }
        }
        for i in (0..n).rev() {
            for s in 0..8u8 {
                for u in 0..2u8 {
                    if allowed(i, s, u) {
                        let (_, nx) = rsc_step(s, u);
                        let m = beta[i + 1][nx as usize] + gamma(i, s, u);
                        beta[i][s as usize] = beta[i][s as usize].max(m);
                    }
                }
            }
        }
        (0..k)
            .map(|i| {
                let mut best = [f64::NEG_INFINITY; 2];
                for s in 0..8u8 {
                    for u in 0..2u8 {
                        let (_, nx) = rsc_step(s, u);
                        let m = alpha[i][s as usize] + gamma(i, s, u) + beta[i + 1][nx as usize];
                        best[u as usize] = best[u as usize].max(m);
                    }
                }
                (2.0 * (best[0] - best[1])) as i32
            })
            .collect()
    }

    fn one_window_pass(
        isa: Isa,
        sys: &[i16],
        par: &[i16],
        apri: &[i16],
        tail: ([i16; 3], [i16; 3]),
    ) -> Vec<i16> {
        let k = sys.len();
        let lane = |v: &[i16]| -> Vec<Lane> { v.iter().map(|&x| [x; LANES]).collect() };
        let (sys, par, apri) = (lane(sys), lane(par), lane(apri));
        let mut mem = vec![[[0; LANES]; 8]; k];
        let (mut post, mut ext) = (vec![[0; LANES]; k], vec![[0; LANES]; k]);
        let mut a_init = [[NEG; LANES]; 8];
        a_init[0] = [0; LANES];
        let tb = tail_beta(&tail.0, &tail.1);
        let b_init: States = std::array::from_fn(|s| [tb[s]; LANES]);
        let (mut a_end, mut b_start) = ([[0; LANES]; 8], [[0; LANES]; 8]);
        let mut io = Pass {
            sys: &sys,
            par: &par,
            apri: &apri,
            mem: &mut mem,
            post: &mut post,
            ext: &mut ext,
            a_init: &a_init,
            b_init: &b_init,
            a_end: &mut a_end,
            b_start: &mut b_start,
            coef: 12288,
        };
        run_pass(isa, &mut io);
        for l in &post {
            assert!(l.iter().all(|&x| x == l[0]), "identical lanes must agree");
        }
        post.iter().map(|l| l[0]).collect()
    }

    #[test]
    fn kernel_equals_textbook_max_log_bcjr() {
        for (seed, k) in [(1u64, 40usize), (2, 48), (3, 40), (4, 104)] {
            let r = pseudo(4 * k + 6, seed);
            let v = |x: u64, m: i64| (x % (2 * m as u64 + 1)) as i64 - m;
            let sys: Vec<i16> = (0..k).map(|i| v(r[i], 255) as i16).collect();
            let par: Vec<i16> = (0..k).map(|i| v(r[k + i], 255) as i16).collect();
            let apri: Vec<i16> = (0..k).map(|i| v(r[2 * k + i], 300) as i16).collect();
            let tail = (
                std::array::from_fn(|i| v(r[3 * k + i], 255) as i16),
                std::array::from_fn(|i| v(r[3 * k + 3 + i], 255) as i16),
            );
            let want = reference(&sys, &par, &apri, tail);
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let got = one_window_pass(isa, &sys, &par, &apri, tail);
                let got: Vec<i32> = got.into_iter().map(i32::from).collect();
                assert_eq!(got, want, "K={k} {isa:?}");
            }
        }
    }

    fn noisy_block(k: usize, filler: usize, sigma: f32, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut pi = Vec::new();
        qpp_interleaver(k, &mut pi).unwrap();
        let r = pseudo(k + 3 * (k + 4) * 2, seed);
        let mut c: Vec<u8> = (0..k).map(|i| (r[i] >> 33 & 1) as u8).collect();
        c[..filler].fill(0);
        let mut d = vec![0u8; 3 * stream_len(k)];
        encode(&c, filler, &pi, &mut d).unwrap();
        let dl = stream_len(k);
        let llr = d
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                // Sum of uniforms: roughly Gaussian noise.
                let u = |x: u64| (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
                let n = (u(r[k + 2 * i]) + u(r[k + 2 * i + 1]) + u(r[k + 2 * i] >> 3)) * 2.0;
                let x = if b == 0 { 1.0 } else { -1.0 };
                if (i < filler) || (i >= dl && i < dl + filler) {
                    0.0
                } else {
                    2.0 * (x + sigma * n) / (sigma * sigma)
                }
            })
            .collect();
        (c, llr)
    }

    /// Hard bits, raw lanes of the last pass, statistics.
    type Outcome = (Vec<u8>, (Vec<i16>, Vec<i16>), TurboStats);

    #[test]
    fn every_kernel_gives_bit_identical_results() {
        let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.available()).collect();
        for (k, filler, sigma) in [
            (40usize, 8usize, 1.0f32),
            (512, 0, 1.2),
            (1056, 20, 1.1),
            (3136, 0, 1.25),
            (6144, 0, 1.3),
            (6144, 0, 3.0),
        ] {
            let (_, llr) = noisy_block(k, filler, sigma, k as u64);
            let mut first: Option<Outcome> = None;
            for &isa in &isas {
                let mut dec = FixedTurboDecoder::with_isa(isa).unwrap();
                let s = dec
                    .decode(&llr, k, filler, 3, &mut |_: &[u8]| false)
                    .unwrap();
                let got = (dec.hard_bits().to_vec(), dec.last_pass(), s);
                match &first {
                    None => first = Some(got),
                    Some(f) => assert!(*f == got, "K={k} σ={sigma}: {isa:?} differs"),
                }
            }
        }
        // Saturating extremes: every kernel clips the same way.
        let k = 1024;
        let junk: Vec<f32> = (0..3 * stream_len(k))
            .map(|i| match i % 5 {
                0 => f32::INFINITY,
                1 => -1.0e30,
                2 => f32::NAN,
                3 => 1.0e-3,
                _ => -7.5,
            })
            .collect();
        let outs: Vec<_> = isas
            .iter()
            .map(|&isa| {
                let mut dec = FixedTurboDecoder::with_isa(isa).unwrap();
                dec.decode(&junk, k, 0, 4, &mut |_: &[u8]| false).unwrap();
                (dec.hard_bits().to_vec(), dec.last_pass())
            })
            .collect();
        assert!(outs.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn decodes_noisy_blocks_and_stops_early() {
        for (k, filler) in [(40usize, 0usize), (40, 8), (512, 0), (1056, 23), (6144, 0)] {
            let (c, llr) = noisy_block(k, filler, 0.8, 99 + k as u64);
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let mut dec = FixedTurboDecoder::with_isa(isa).unwrap();
                let want = c.clone();
                let s = dec
                    .decode(&llr, k, filler, 8, &mut |h: &[u8]| h == want.as_slice())
                    .unwrap();
                assert!(s.check_passed, "K={k} F={filler} {isa:?}");
                assert!(
                    s.half_iterations <= 6,
                    "K={k}: {} half-iterations",
                    s.half_iterations
                );
                assert_eq!(dec.hard_bits(), &c[..]);
            }
        }
    }

    #[test]
    fn runs_every_iteration_without_a_passing_check_and_rejects_bad_arguments() {
        let (_, llr) = noisy_block(512, 0, 0.8, 5);
        let mut dec = FixedTurboDecoder::new();
        let s = dec.decode(&llr, 512, 0, 5, &mut |_: &[u8]| false).unwrap();
        assert_eq!((s.half_iterations, s.check_passed), (10, false));
        let mut ok = |_: &[u8]| true;
        assert!(dec.decode(&[0.0; 10], 40, 0, 4, &mut ok).is_err());
        assert!(dec.decode(&[0.0; 3 * 44], 41, 0, 4, &mut ok).is_err());
        assert!(dec.decode(&[0.0; 3 * 44], 40, 40, 4, &mut ok).is_err());
        assert!(dec.decode(&[0.0; 3 * 44], 40, 0, 0, &mut ok).is_err());
        // An erased block does not decode to the all-zero word.
        dec.decode(&[0.0; 3 * 44], 40, 0, 1, &mut |_: &[u8]| false)
            .unwrap();
        assert!(dec.hard_bits().iter().all(|&b| b == 1));
    }

    /// QPP is contention-free for the windows of every block size: both interleaver
    /// directions have a row form, and the AVX2 row gather gives exactly the slot gather.
    #[test]
    fn every_block_size_moves_whole_rows_and_the_row_gather_is_exact() {
        let avx2 = Isa::Avx2.available();
        let mut d = FixedTurboDecoder::new();
        for &(k, _, _) in crate::turbo::BLOCK_SIZES.iter() {
            let k = usize::from(k);
            d.prepare(k).unwrap();
            for (name, p) in [("to2", &d.to2), ("to1", &d.to1)] {
                assert!(p.rows.is_some(), "K = {k}: {name} has no row form");
                let n = p.idx.len();
                let src: Vec<i16> = pseudo(n, k as u64).iter().map(|&x| x as i16).collect();
                let (mut a, mut b) = (vec![0i16; n], vec![0i16; n]);
                p.gather(Isa::Scalar, &src, &mut a);
                if avx2 {
                    p.gather(Isa::Avx2, &src, &mut b);
                    let used = |s: usize| s % LANES < d.nw;
                    for s in (0..n).filter(|&s| used(s)) {
                        assert_eq!(a[s], b[s], "K = {k} {name} slot {s}");
                    }
                }
            }
        }
    }

    /// The AVX2 mean and quantiser give exactly the portable results, special values and a
    /// length that is not a multiple of 8 included.
    #[test]
    fn avx2_mean_and_quantiser_equal_the_portable_ones() {
        if !Isa::Avx2.available() {
            return;
        }
        let mut d: Vec<f32> = pseudo(1003, 7)
            .iter()
            .map(|&x| ((x % 20_000) as f32 - 10_000.0) / 997.0)
            .collect();
        let specials = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0e6,
            -1.0e6,
            3.0e9,
            -3.0e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            1.0e-30,
        ];
        d[..specials.len()].copy_from_slice(&specials);
        let (s0, n0) = mean_abs(Isa::Scalar, &d);
        let (s1, n1) = mean_abs(Isa::Avx2, &d);
        assert_eq!((s0.to_bits(), n0), (s1.to_bits(), n1));
        for scale in [1.0f32, 24.0 / 3.7, 1.0e-3, 1.0e30] {
            let (mut a, mut b) = (vec![0i16; d.len()], vec![0i16; d.len()]);
            quantise(Isa::Scalar, &d, scale, &mut a);
            quantise(Isa::Avx2, &d, scale, &mut b);
            assert_eq!(a, b, "scale {scale}");
        }
    }

    /// Switching between block sizes (a TB's K+ and K−, and more) reuses kept layouts and
    /// decodes exactly as a fresh decoder for each K does.
    #[test]
    fn alternating_block_sizes_decode_as_fresh_decoders_do() {
        let sizes = [6144usize, 5056, 40, 6144, 1024, 5056, 512, 40, 6144];
        let mut shared = FixedTurboDecoder::new();
        for (i, &k) in sizes.iter().enumerate() {
            let (bits, d) = noisy_block(k, 0, 0.9, i as u64);
            let mut fresh = FixedTurboDecoder::new();
            let a = fresh.decode(&d, k, 0, 4, &mut |h| h == &bits[..]).unwrap();
            let b = shared.decode(&d, k, 0, 4, &mut |h| h == &bits[..]).unwrap();
            assert_eq!(a.half_iterations, b.half_iterations, "K = {k}");
            assert_eq!(fresh.hard_bits(), shared.hard_bits(), "K = {k}");
            assert!(shared.spare.len() <= SPARE_LAYOUTS);
        }
    }

    #[test]
    fn clean_abs_is_the_magnitude_of_clean() {
        for x in [
            0.0f32,
            -0.0,
            1.5,
            -2.25,
            1.0e6,
            -1.0e6,
            3.0e7,
            -3.0e7,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MIN_POSITIVE,
        ] {
            assert_eq!(clean_abs(x).to_bits(), clean(x).abs().to_bits(), "{x}");
        }
    }

    #[test]
    fn window_counts() {
        assert_eq!(windows(40), 1);
        assert_eq!(windows(136), 2);
        assert_eq!(windows(512), 8);
        assert_eq!(windows(1024), 16);
        assert_eq!(windows(5824), 16);
        assert_eq!(windows(6144), 16);
        for &(k, _, _) in crate::turbo::BLOCK_SIZES.iter() {
            let (k, w) = (usize::from(k), windows(usize::from(k)));
            assert_eq!(k % w, 0);
            assert!(w == 1 || k / w >= MIN_WINDOW);
        }
    }
}
