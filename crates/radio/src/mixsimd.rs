//! The air's inner loop, explicitly vectorised: `out[s] += src[s] · rot`, the rotator
//! advancing by a fixed phasor per sample (a path's gain and carrier offset).
//!
//! The portable loop keeps [`LANES`] rotators a sample apart, each stepped by the phasor to
//! the power [`LANES`], so the compiler has independent chains to vectorise; with SSE2 only
//! (the default x86-64 target) it does so with shuffles around every complex product. On a
//! CPU with AVX2 and FMA (detected at run time) the same arithmetic runs four complex
//! samples per register: a complex product is two duplicates, one swap, one multiply and
//! one `fmaddsub`. The results agree with the portable loop to float rounding (FMA rounds
//! once where the portable loop rounds twice); the air's tests and its seeded noise are
//! unchanged by which one runs.

use num_complex::Complex32;

/// Rotators side by side (one chain per sample of a chunk).
pub(crate) const LANES: usize = 8;

/// `out[s] += src[s] · rot[s % LANES]`, each rotator then multiplied by `dr` (the phasor
/// to the power [`LANES`]), over the whole chunks of [`LANES`] samples of `out` and `src`
/// (the shorter of the two). Returns how many samples it did; the caller does the rest
/// with `rot` as left.
pub(crate) fn rotate_mac(
    out: &mut [Complex32],
    src: &[Complex32],
    rot: &mut [Complex32; LANES],
    dr: Complex32,
) -> usize {
    let len = out.len().min(src.len()) / LANES * LANES;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { avx2::rotate_mac(&mut out[..len], &src[..len], rot, dr) };
        return len;
    }
    portable(&mut out[..len], &src[..len], rot, dr);
    len
}

/// The portable loop (also the reference the tests hold the AVX2 one to).
fn portable(out: &mut [Complex32], src: &[Complex32], rot: &mut [Complex32; LANES], dr: Complex32) {
    for (o, s) in out.chunks_exact_mut(LANES).zip(src.chunks_exact(LANES)) {
        for l in 0..LANES {
            o[l] += s[l] * rot[l];
            rot[l] *= dr;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use num_complex::Complex32;
    use std::arch::x86_64::*;

    /// `a · b` for four interleaved complex numbers each.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn cmul(a: __m256, b: __m256) -> __m256 {
        let b_re = _mm256_moveldup_ps(b);
        let b_im = _mm256_movehdup_ps(b);
        let a_swapped = _mm256_permute_ps(a, 0b1011_0001);
        // even lanes: a.re·b.re − a.im·b.im; odd lanes: a.im·b.re + a.re·b.im
        _mm256_fmaddsub_ps(a, b_re, _mm256_mul_ps(a_swapped, b_im))
    }

    /// See [`super::rotate_mac`]; `out` and `src` are whole chunks of the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rotate_mac(
        out: &mut [Complex32],
        src: &[Complex32],
        rot: &mut [Complex32; LANES],
        dr: Complex32,
    ) {
        debug_assert_eq!(out.len(), src.len());
        debug_assert_eq!(out.len() % LANES, 0);
        // Complex32 is repr(C) {re, im}: a slice of them is interleaved f32s.
        let (o, s) = (out.as_mut_ptr().cast::<f32>(), src.as_ptr().cast::<f32>());
        let r = rot.as_mut_ptr().cast::<f32>();
        let mut r0 = _mm256_loadu_ps(r);
        let mut r1 = _mm256_loadu_ps(r.add(8));
        let d = _mm256_setr_ps(dr.re, dr.im, dr.re, dr.im, dr.re, dr.im, dr.re, dr.im);
        let mut k = 0;
        while k < out.len() * 2 {
            let s0 = _mm256_loadu_ps(s.add(k));
            let s1 = _mm256_loadu_ps(s.add(k + 8));
            let o0 = _mm256_add_ps(_mm256_loadu_ps(o.add(k)), cmul(s0, r0));
            let o1 = _mm256_add_ps(_mm256_loadu_ps(o.add(k + 8)), cmul(s1, r1));
            _mm256_storeu_ps(o.add(k), o0);
            _mm256_storeu_ps(o.add(k + 8), o1);
            r0 = cmul(r0, d);
            r1 = cmul(r1, d);
            k += 2 * LANES;
        }
        _mm256_storeu_ps(r, r0);
        _mm256_storeu_ps(r.add(8), r1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize, seed: f32) -> Vec<Complex32> {
        (0..n)
            .map(|k| Complex32::from_polar(0.1 + (k % 7) as f32 * 0.05, seed * k as f32))
            .collect()
    }

    #[test]
    fn the_dispatched_loop_equals_the_portable_one_to_rounding() {
        let dr = Complex32::from_polar(1.0, 0.0123 * LANES as f32);
        for n in [0, 7, 8, 64, 1_000] {
            let src = signal(n, 0.37);
            let start: [Complex32; LANES] =
                std::array::from_fn(|l| Complex32::from_polar(0.8, 0.0123 * l as f32));
            let (mut a, mut b) = (signal(n, 0.11), signal(n, 0.11));
            let (mut ra, mut rb) = (start, start);
            let done = rotate_mac(&mut a, &src, &mut ra, dr);
            assert_eq!(done, n / LANES * LANES);
            portable(&mut b[..done], &src[..done], &mut rb, dr);
            for (x, y) in a.iter().zip(&b).chain(ra.iter().zip(&rb)) {
                assert!((x - y).norm() < 1e-5, "n {n}: {x} vs {y}");
            }
            // The tail is left for the caller.
            assert_eq!(a[done..], signal(n, 0.11)[done..]);
        }
    }

    #[test]
    fn a_rotator_turns_a_tone_by_the_path_offset() {
        // A constant input through a rotator of phasor e^{iθ} per sample: out[s] = e^{iθs}.
        let th = 0.05f32;
        let dr1 = Complex32::from_polar(1.0, th);
        let mut rot: [Complex32; LANES] = std::array::from_fn(|l| dr1.powu(l as u32));
        let src = vec![Complex32::new(1.0, 0.0); 256];
        let mut out = vec![Complex32::new(0.0, 0.0); 256];
        let dr = dr1.powu(LANES as u32);
        assert_eq!(rotate_mac(&mut out, &src, &mut rot, dr), 256);
        for (s, o) in out.iter().enumerate() {
            let want = Complex32::from_polar(1.0, th * s as f32);
            assert!((o - want).norm() < 1e-4, "sample {s}: {o} vs {want}");
        }
    }
}
