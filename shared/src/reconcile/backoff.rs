//! Waiting longer after each failure of one app, so a broken app is retried less and less
//! often without holding up the others.

use std::time::{Duration, Instant};

/// One app's backoff: none until it fails, then `base`, doubled per failure in a row up
/// to `cap`; a success forgets the failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
            until: None,
        }
    }

    /// Notes a failure at `now` and returns how long the app now waits.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doubled = self
            .base
            .checked_mul(2u32.saturating_pow(self.failures - 1))
            .unwrap_or(self.cap);
        let delay = doubled.min(self.cap);
        self.until = Some(now + delay);
        delay
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }

    /// Whether the app may be tried at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now >= until)
    }

    /// When the app may be tried next, if it waits.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_cap_and_a_success_forgets_them() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        let now = Instant::now();
        assert!(backoff.ready(now));
        let waits: Vec<u64> = (0..5).map(|_| backoff.failed(now).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
        assert_eq!(backoff.failures(), 5);
        assert!(!backoff.ready(now + Duration::from_secs(59)));
        assert!(backoff.ready(now + Duration::from_secs(60)));
        backoff.succeeded();
        assert!(backoff.ready(now));
        assert_eq!(backoff.failed(now), Duration::from_secs(10));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        for _ in 0..100 {
            backoff.failed(now);
        }
        assert_eq!(backoff.failed(now), Duration::from_secs(300));
    }
}
