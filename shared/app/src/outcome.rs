//! What a run-starting invocation answers (nightly-sync, rescore), and the error shape every
//! function reports to Lambda.

use chrono::{DateTime, Utc};
use leadsync_domain::ports::RunReport;
use leadsync_pipeline::Started;
use serde::Serialize;

/// The invocation's result, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every slice ran in this invocation.
    Finished { report: Box<RunReport> },
    /// The slices are on the queue; the last one finishes the run.
    Queued {
        run_id: String,
        slices: u32,
        contacts: u64,
    },
    /// Another run holds the lease: nothing was done.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

impl RunOutcome {
    pub fn new(run_id: &str, started: Started) -> Self {
        match started {
            Started::Finished(report) => RunOutcome::Finished { report },
            Started::Queued { slices, contacts } => RunOutcome::Queued {
                run_id: run_id.to_owned(),
                slices,
                contacts,
            },
            Started::Busy(lease) => RunOutcome::Busy {
                holder: lease.holder,
                until: lease.until,
            },
        }
    }

    /// The report of a run that finished here.
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            RunOutcome::Finished { report } => Some(report),
            _ => None,
        }
    }
}

/// The message of an error with its whole source chain: the outer error says where, the
/// sources say why.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
