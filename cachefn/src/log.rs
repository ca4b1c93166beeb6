//! Rate-limited logging, so that a dead server does not flood the logs.

use std::sync::atomic::{AtomicU64, Ordering};

use cachefn_backends::clock;

const EVERY_MS: u64 = 5_000;

/// Allows one message per five seconds.
pub(crate) struct RateLimited {
    last: AtomicU64,
}

impl RateLimited {
    pub(crate) const fn new() -> Self {
        RateLimited {
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn allow(&self) -> bool {
        let now = clock::now_ms().max(1);
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= EVERY_MS)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
