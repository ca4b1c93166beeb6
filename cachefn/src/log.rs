//! Rate-limited logging, so that a dead server does not flood the logs.

use std::sync::atomic::{AtomicU64, Ordering};

use cachefn_backends::clock;

const EVERY_MS: u64 = 5_000;

/// A key in a log line: a short digest of it, never its text (which holds
/// arguments: users' queries, names, ids). The same key always has the
/// same digest, so log lines about one key can be told apart and matched.
pub(crate) struct KeyDigest<'a>(pub(crate) &'a str);

impl std::fmt::Display for KeyDigest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = blake3::hash(self.0.as_bytes());
        for b in &digest.as_bytes()[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

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
