//! (PHY-FEC) bit-level scrambling with c(n) of [`crate::gold`] (36.211 §6.3.1) — to be written.
