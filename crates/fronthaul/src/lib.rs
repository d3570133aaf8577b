//! Fronthaul wire format — to be written.
