//! A cheap monotonic clock in milliseconds, for entry expiry.
//!
//! Expiry is checked on every local hit, so the clock must cost a few
//! nanoseconds. On Linux this reads `CLOCK_MONOTONIC_COARSE` (a vDSO read of
//! the last tick, about 1-4 ms resolution, plenty for timeouts in seconds);
//! elsewhere it uses [`std::time::Instant`].

/// Milliseconds on a monotonic clock with an arbitrary origin. Only
/// differences between two readings of one process mean anything.
#[inline]
pub fn now_ms() -> u64 {
    imp::now_ms()
}

/// Milliseconds since the Unix epoch (wall clock), for expiry times that
/// other processes read. A clock before 1970 reads as 0.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::ffi::{c_int, c_long};

    /// `struct timespec` on 64-bit Linux (both fields are `long` there).
    #[repr(C)]
    struct Timespec {
        tv_sec: c_long,
        tv_nsec: c_long,
    }

    /// `CLOCK_MONOTONIC_COARSE`, the same on every Linux architecture.
    const CLOCK_MONOTONIC_COARSE: c_int = 6;

    extern "C" {
        // In the C library std links already (no `libc` crate needed).
        fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
    }

    #[inline]
    pub fn now_ms() -> u64 {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec of the platform's
        // layout; CLOCK_MONOTONIC_COARSE exists on every Linux since 2.6.32
        // and cannot fail with these arguments.
        unsafe { clock_gettime(CLOCK_MONOTONIC_COARSE, &mut ts) };
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    static ORIGIN: OnceLock<Instant> = OnceLock::new();

    #[inline]
    pub fn now_ms() -> u64 {
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_and_advancing() {
        let a = super::now_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = super::now_ms();
        assert!(b >= a + 20, "{a} -> {b}");
        assert!(super::unix_ms() > 1_600_000_000_000);
    }
}
