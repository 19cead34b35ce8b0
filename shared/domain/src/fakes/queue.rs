//! The slice queue fake: sent slices wait until a test takes them.

use super::*;

/// A slice queue in memory: sent slices wait until a test takes them.
#[derive(Debug, Default)]
pub struct FakeSliceQueue {
    queued: Mutex<VecDeque<SliceSpec>>,
    deferred: Mutex<VecDeque<(crate::runs::DeferredRescore, std::time::Duration)>>,
    erasures: Mutex<VecDeque<(crate::runs::DeferredErase, std::time::Duration)>>,
    failures: Mutex<VecDeque<StoreError>>,
}

impl FakeSliceQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` sends fail with `error`.
    pub fn fail_next(&self, n: usize, error: StoreError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }

    /// Take every queued slice, oldest first.
    pub fn drain(&self) -> Vec<SliceSpec> {
        lock(&self.queued).drain(..).collect()
    }

    /// Take every deferred erasure with its delay, oldest first.
    pub fn drain_erasures(&self) -> Vec<(crate::runs::DeferredErase, std::time::Duration)> {
        lock(&self.erasures).drain(..).collect()
    }

    /// Take every deferred re-score with its delay, oldest first.
    pub fn drain_deferred(&self) -> Vec<(crate::runs::DeferredRescore, std::time::Duration)> {
        lock(&self.deferred).drain(..).collect()
    }
}

impl crate::ports::SliceQueue for FakeSliceQueue {
    async fn send(&self, slices: &[SliceSpec]) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.queued).extend(slices.iter().cloned());
        Ok(())
    }

    async fn defer(
        &self,
        rescore: &crate::runs::DeferredRescore,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.deferred).push_back((rescore.clone(), delay));
        Ok(())
    }

    async fn defer_erase(
        &self,
        erase: &crate::runs::DeferredErase,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.erasures).push_back((erase.clone(), delay));
        Ok(())
    }
}
