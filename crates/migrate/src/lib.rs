//! Migration state machines — to be written.
