//! (PHY-FEC) turbo — to be written.
