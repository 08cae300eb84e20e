//! One pcsc-lite context per thread, re-established after pcscd restarts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::cancel::Canceller;
use crate::error::{ErrorKind, HalError};

use super::errors::hal_error;

/// The context a thread uses, established lazily and replaced when pcscd went away.
///
/// After pcscd restarts an old context answers `SCARD_E_NO_SERVICE` forever although
/// `SCardIsValidContext` still accepts it (docs/reference/pcsc-lite.md §3): callers report such
/// errors through [`ContextSlot::invalidate`], and the next [`ContextSlot::get`] establishes a new
/// one. The slot registers with a [`Canceller`] so a cancel interrupts a blocked
/// `SCardGetStatusChange` on whichever context is current.
pub(crate) struct ContextSlot {
    current: Arc<Mutex<Option<pcsc::Context>>>,
    canceller: Canceller,
    backoff: Backoff,
}

impl ContextSlot {
    pub(crate) fn new(canceller: Canceller) -> Self {
        let current: Arc<Mutex<Option<pcsc::Context>>> = Arc::default();
        let hooked = Arc::clone(&current);
        canceller.on_cancel(Box::new(move || {
            if let Some(ctx) = hooked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                // Nothing useful to do if pcscd is gone: the blocked call fails on its own.
                let _ = ctx.cancel();
            }
        }));
        Self {
            current,
            canceller,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    /// The current context, establishing one if there is none.
    pub(crate) fn get(&mut self) -> Result<pcsc::Context, HalError> {
        if self.canceller.is_cancelled() {
            return Err(HalError::new(
                ErrorKind::Cancelled,
                "encoder is shutting down",
            ));
        }
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ctx) = current.as_ref() {
            return Ok(ctx.clone());
        }
        let ctx = pcsc::Context::establish(pcsc::Scope::User)
            .map_err(|e| hal_error("SCardEstablishContext", e))?;
        *current = Some(ctx.clone());
        drop(current);
        self.backoff.reset();
        Ok(ctx)
    }

    /// Like [`ContextSlot::get`], but while pcscd is unreachable keeps trying with backoff until
    /// `deadline` (or cancellation).
    pub(crate) fn get_until(&mut self, deadline: Instant) -> Result<pcsc::Context, HalError> {
        loop {
            match self.get() {
                Err(e) if e.kind() == ErrorKind::NoService => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "pcscd unreachable, retrying");
                    if !self.canceller.sleep(self.backoff.next_delay().min(left)) {
                        return Err(HalError::new(
                            ErrorKind::Cancelled,
                            "encoder is shutting down",
                        ));
                    }
                }
                other => return other,
            }
        }
    }

    /// Drops the current context when `error` says pcscd went away, so the next
    /// [`ContextSlot::get`] establishes a fresh one.
    pub(crate) fn invalidate_on(&mut self, error: &HalError) {
        if error.kind() == ErrorKind::NoService {
            let dropped = self
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if dropped.is_some() {
                tracing::info!("pcscd went away; a new context will be established");
            }
        }
    }

    /// The next backoff delay, for callers that retry on their own.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.backoff.next_delay()
    }

    /// The canceller this slot answers to.
    pub(crate) fn canceller(&self) -> &Canceller {
        &self.canceller
    }
}
