//! (PHY-A) crs — to be written.
