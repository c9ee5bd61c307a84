//! Response codes (field 39) of the agent↔switch dialect: defined once, in `protocols::dialect`,
//! so the agent and the switch cannot disagree on them.

pub use protocols::dialect::ResponseCode;
