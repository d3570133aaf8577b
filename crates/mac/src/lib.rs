//! MAC — to be written.
