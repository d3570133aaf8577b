//! The length-31 Gold pseudo-random sequence c(n) of TS 36.211 §7.2, used by the
//! cell-specific reference signals and by scrambling.

/// Fills `out` with c(0..out.len()) for the given `c_init` (only the low 31 bits are used).
pub fn pseudo_random(c_init: u32, out: &mut [u8]) {
    const NC: usize = 1600;
    let mut x1: u32 = 1; // x1(0) = 1, x1(n) = 0 for n = 1..30
    let mut x2: u32 = c_init & 0x7fff_ffff;
    // Each register holds x(n)..x(n+30) in bits 0..30. Advance NC + len steps.
    let step = |x1: &mut u32, x2: &mut u32| {
        // x1(n+31) = x1(n+3) ^ x1(n)
        let n1 = ((*x1 >> 3) ^ *x1) & 1;
        // x2(n+31) = x2(n+3) ^ x2(n+2) ^ x2(n+1) ^ x2(n)
        let n2 = ((*x2 >> 3) ^ (*x2 >> 2) ^ (*x2 >> 1) ^ *x2) & 1;
        *x1 = (*x1 >> 1) | (n1 << 30);
        *x2 = (*x2 >> 1) | (n2 << 30);
    };
    for _ in 0..NC {
        step(&mut x1, &mut x2);
    }
    for o in out.iter_mut() {
        *o = ((x1 ^ x2) & 1) as u8;
        step(&mut x1, &mut x2);
    }
}

/// Convenience: c(0..len) as a new vector.
pub fn pseudo_random_vec(c_init: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    pseudo_random(c_init, &mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct transcription of the 36.211 recursion, as a reference.
    fn reference(c_init: u32, len: usize) -> Vec<u8> {
        let total = 1600 + len + 31;
        let mut x1 = vec![0u8; total];
        let mut x2 = vec![0u8; total];
        x1[0] = 1;
        for (i, x) in x2.iter_mut().take(31).enumerate() {
            *x = ((c_init >> i) & 1) as u8;
        }
        for n in 0..(total - 31) {
            x1[n + 31] = (x1[n + 3] + x1[n]) % 2;
            x2[n + 31] = (x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) % 2;
        }
        (0..len)
            .map(|n| (x1[n + 1600] + x2[n + 1600]) % 2)
            .collect()
    }

    #[test]
    fn matches_the_standard_recursion() {
        for c_init in [0u32, 1, 0x1234_5678 & 0x7fff_ffff, 0x7fff_ffff, 503, 12_345] {
            assert_eq!(pseudo_random_vec(c_init, 500), reference(c_init, 500));
        }
    }
}
