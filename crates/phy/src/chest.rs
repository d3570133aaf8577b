//! (PHY-A) chest — to be written.
