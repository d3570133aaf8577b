//! (PHY-A) sync — to be written.
