//! (PHY-A) numerology — to be written.
