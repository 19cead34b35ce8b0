//! The event bus fake: keeps what it is sent, can refuse.

use super::*;

/// An event bus that keeps what it is sent; it can be told to refuse the next calls.
#[derive(Debug, Default)]
pub struct FakeEventSink {
    sent: Mutex<Vec<crate::news::LeadEvent>>,
    /// Calls to refuse (as a whole) before accepting again.
    refuse_calls: std::sync::atomic::AtomicU32,
}

impl FakeEventSink {
    pub fn sent(&self) -> Vec<crate::news::LeadEvent> {
        lock(&self.sent).clone()
    }

    /// Refuse the next `calls` calls.
    pub fn refuse(&self, calls: u32) {
        self.refuse_calls.store(calls, Ordering::SeqCst);
    }
}

impl crate::ports::EventSink for FakeEventSink {
    fn send<'a>(
        &'a self,
        events: &'a [crate::news::LeadEvent],
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Vec<bool>, crate::ports::EventError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let refused = self
                .refuse_calls
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refused {
                return Err(crate::ports::EventError("refused (fake)".into()));
            }
            lock(&self.sent).extend(events.iter().cloned());
            Ok(vec![true; events.len()])
        })
    }
}
