//! (PHY-FEC) crc — to be written.
