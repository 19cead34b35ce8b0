//! The event bus: news of leads (a new SQL, …) sent at least once.

use super::*;

/// The event bus refused the whole call or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event bus could not take the events: {0}")]
pub struct EventError(pub String);

/// Where news about leads goes (EventBridge). Object-safe, so a run takes it as an option.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Send the events; the answer says, in order, which the bus accepted. At-least-once: an
    /// event may arrive twice (consumers dedupe on lead id and [`LeadEvent::key`]).
    fn send<'a>(
        &'a self,
        events: &'a [LeadEvent],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<bool>, EventError>> + Send + 'a>>;
}
