//! (PHY-A) channel — to be written.
