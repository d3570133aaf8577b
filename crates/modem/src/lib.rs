//! `ferry-modem`: the real-time D2D / relay modem (the thesis' D2D program) and its local
//! control-socket protocol, which the per-server agent uses to supervise it.

pub mod proto;

pub use proto::{
    parse_request, ClientError, CutoverArm, ModemClient, ModemCounters, ModemReply, ModemRequest,
    ModemState, ModemStatus, RequestError, Role,
};
