//! (PHY-A) ofdm — to be written.
