//! (PHY-FEC) ratematch — to be written.
