//! The length-31 Gold pseudo-random sequence c(n) of TS 36.211 §7.2, used by the
//! cell-specific reference signals and by scrambling. Generated 28 bits at a time: both
//! m-sequences have taps within the lowest 4 bits of a 31-bit window, so 28 new bits come
//! out of one shift-and-XOR (the recursion bit by bit is the test's reference).

/// Word-parallel generator of c(n).
pub(crate) struct Gold {
    x1: u32,
    x2: u32,
}

/// Outputs per step of [`Gold::advance`].
pub(crate) const W: usize = 28;
const WMASK: u32 = (1 << W) - 1;

impl Gold {
    /// The generator for `c_init` (low 31 bits), positioned at c(0).
    pub(crate) fn new(c_init: u32) -> Self {
        let mut g = Gold {
            x1: 1,
            x2: c_init & 0x7fff_ffff,
        };
        // Discard N_c = 1600 = 57·28 + 4 outputs.
        for _ in 0..57 {
            g.advance(W);
        }
        g.advance(4);
        g
    }

    /// Next `n ≤ 28` outputs in the low bits (bit 0 first), advancing by `n`.
    #[inline]
    pub(crate) fn advance(&mut self, n: usize) -> u32 {
        let out = (self.x1 ^ self.x2) & WMASK;
        // Bits 0..30 hold x(k)..x(k+30); the next 28 values x(k+31..k+58) at once.
        let n1 = (self.x1 ^ (self.x1 >> 3)) & WMASK;
        let n2 = (self.x2 ^ (self.x2 >> 1) ^ (self.x2 >> 2) ^ (self.x2 >> 3)) & WMASK;
        // Window of 59 bits, shifted down by n.
        let w1 = u64::from(self.x1) | (u64::from(n1) << 31);
        let w2 = u64::from(self.x2) | (u64::from(n2) << 31);
        self.x1 = ((w1 >> n) & 0x7fff_ffff) as u32;
        self.x2 = ((w2 >> n) & 0x7fff_ffff) as u32;
        out
    }
}

/// Fills `out` with c(0..out.len()) for the given `c_init` (only the low 31 bits are used).
pub fn pseudo_random(c_init: u32, out: &mut [u8]) {
    let mut g = Gold::new(c_init);
    for chunk in out.chunks_mut(W) {
        let c = g.advance(chunk.len());
        for (i, o) in chunk.iter_mut().enumerate() {
            *o = (c >> i & 1) as u8;
        }
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
