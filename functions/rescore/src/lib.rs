//! The rescore function's handler lives in [`leadsync_app::rescore`] (the CLI's demo invokes
//! it too); this crate is the Lambda binary around it.

pub use leadsync_app::rescore::*;
