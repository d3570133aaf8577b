//! The agents' signed envelope lives in the `ferry-auth` crate (shared with the radios'
//! link control); re-exported here for the agent protocol's users.

pub use ferry_auth::*;
