//! Interrupting blocked hardware calls from another thread.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// A hook that wakes a blocked transport call (for PC/SC: `SCardCancel` on the blocked context).
pub type WakeHook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Shared {
    cancelled: Mutex<bool>,
    changed: Condvar,
    hooks: Mutex<Vec<WakeHook>>,
}

/// A cloneable handle that cancels the blocking calls of one encoder.
///
/// Once cancelled it stays cancelled until [`Canceller::reset`]: the encoder's waits and
/// backoff sleeps return [`crate::ErrorKind::Cancelled`] at once. The owner of the encoder
/// resets it when the cancelled operation is over (the runner does, after a job whose card
/// wait was cancelled), and the encoder is used again as it is.
#[derive(Clone, Default)]
pub struct Canceller {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Canceller {
    /// A fresh, not yet cancelled handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: wakes every registered hook and every sleeper, now and for good.
    pub fn cancel(&self) {
        *self
            .shared
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.changed.notify_all();
        for hook in self
            .shared
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            hook();
        }
    }

    /// Re-arms a cancelled handle: later waits block again. Hooks stay registered. Call it
    /// only from the thread that drives the encoder, between two operations, so no cancel
    /// meant for a running operation is lost.
    pub fn reset(&self) {
        *self
            .shared
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Whether [`Canceller::cancel`] was called (since the last [`Canceller::reset`]).
    pub fn is_cancelled(&self) -> bool {
        *self
            .shared
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a hook run on cancellation (immediately, if already cancelled).
    pub fn on_cancel(&self, hook: WakeHook) {
        if self.is_cancelled() {
            hook();
        }
        self.shared
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// Sleeps for `duration` unless cancelled first; returns `false` when cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let guard = self
            .shared
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, duration, |cancelled| !*cancelled)
            .unwrap_or_else(PoisonError::into_inner);
        !*guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn cancel_wakes_a_sleeper_at_once() {
        let canceller = Canceller::new();
        let other = canceller.clone();
        let sleeper = std::thread::spawn(move || {
            let start = Instant::now();
            let completed = other.sleep(Duration::from_secs(30));
            (completed, start.elapsed())
        });
        canceller.cancel();
        let (completed, took) = sleeper.join().unwrap_or((true, Duration::MAX));
        assert!(!completed);
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn hooks_run_on_cancel_and_when_registered_late() {
        let canceller = Canceller::new();
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        canceller.on_cancel(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        canceller.cancel();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let c = Arc::clone(&count);
        canceller.on_cancel(Box::new(move || {
            c.fetch_add(10, Ordering::SeqCst);
        }));
        assert_eq!(count.load(Ordering::SeqCst), 11);
        assert!(!canceller.sleep(Duration::from_secs(1)));
    }

    #[test]
    fn a_reset_handle_blocks_again_and_its_hooks_still_fire() {
        let canceller = Canceller::new();
        let count = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&count);
        canceller.on_cancel(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        canceller.cancel();
        assert!(!canceller.sleep(Duration::from_secs(1)));
        canceller.reset();
        assert!(!canceller.is_cancelled());
        assert!(canceller.sleep(Duration::from_millis(1)), "blocks again");
        canceller.cancel();
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "the hook fires on the next cancel"
        );
    }

    #[test]
    fn sleep_completes_when_not_cancelled() {
        assert!(Canceller::new().sleep(Duration::from_millis(1)));
    }
}
