//! A cancellation handle: the caller's way to ask a sync to stop (the plugins set it on
//! Ctrl-C or SIGTERM). The library never handles signals itself; it checks the handle
//! between writes, so a request already sent finishes and no new one starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Set once, seen by every clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    wake: Notify,
}

impl Cancel {
    /// A handle nobody has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks everything holding a clone to stop; wakes those waiting in [`Cancel::cancelled`].
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Returns once the handle is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            // Registered before the check, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Cancel;

    #[tokio::test]
    async fn every_clone_sees_the_cancel_and_waiters_wake() {
        let cancel = Cancel::new();
        let clone = cancel.clone();
        assert!(!clone.is_cancelled());
        let waiter = tokio::spawn(async move { clone.cancelled().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .expect("the waiter ran");
        // Already cancelled: returns at once.
        cancel.cancelled().await;
        assert!(cancel.is_cancelled());
    }
}
