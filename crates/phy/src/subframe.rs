//! (PHY-A) subframe — to be written.
