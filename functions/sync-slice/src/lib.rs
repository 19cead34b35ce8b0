//! The sync-slice function's handler lives in [`leadsync_app::slice`] (the CLI's demo and the
//! local queue pump invoke it too); this crate is the Lambda binary around it.

pub use leadsync_app::slice::*;
