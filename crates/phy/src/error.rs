//! Typed errors of the PHY: every parameter LTE does not allow is one of these, never a panic.

use thiserror::Error;

/// Everything that can go wrong in the PHY.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PhyError {
    /// A parameter outside what LTE (or this implementation) allows.
    #[error("invalid {name} = {value}: {allowed}")]
    InvalidParameter {
        /// Field name as the operator knows it (e.g. `phy_cell_ID`, `BW`).
        name: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What would have been accepted.
        allowed: &'static str,
    },
    /// A buffer of the wrong length was handed in.
    #[error("{what}: expected {expected} elements, got {got}")]
    InvalidLength {
        /// What the buffer is.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A supported-by-LTE feature this implementation does not provide.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl PhyError {
    /// Shorthand for [`PhyError::InvalidParameter`].
    pub fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        allowed: &'static str,
    ) -> Self {
        PhyError::InvalidParameter {
            name,
            value: value.to_string(),
            allowed,
        }
    }
}

/// Result alias of the PHY.
pub type Result<T> = std::result::Result<T, PhyError>;
