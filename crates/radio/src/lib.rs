//! Radio layer — to be written.
