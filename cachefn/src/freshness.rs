//! Freshness: when a kept value stops being fresh, and what a caller does
//! with a value it finds, decided in one place ([`state`]).
//!
//! Every value carries its logical expiry and the body's run time
//! ([`Meta`]; in the codec header for bytes). Tiers keep an entry past
//! that expiry for the stale windows (`stale_while_revalidate`,
//! `stale_if_error`); a value found past it but inside the
//! `stale_while_revalidate` window is [`State::Stale`], one found live when
//! XFetch draws an early refresh is [`State::Early`]. A function without
//! freshness options keeps [`Meta::fresh_until`] at `u64::MAX`, and its
//! hits read no clock.

use std::time::Duration;

use cachefn_backends::clock;

use crate::codec;

/// How a memoized function serves entries past their `timeout` (all zero:
/// it does not).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Freshness {
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    /// XFetch's `beta`; 0: no early refresh.
    pub(crate) early_refresh: f64,
}

impl Freshness {
    #[inline]
    pub(crate) fn is_off(&self) -> bool {
        self.stale_while_revalidate.is_zero()
            && self.stale_if_error.is_zero()
            && self.early_refresh <= 0.0
    }

    /// How long past its logical expiry an entry is kept.
    pub(crate) fn window(&self) -> Duration {
        self.stale_while_revalidate.max(self.stale_if_error)
    }
}

/// When a kept value stops being fresh, and how long its body took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// [`clock::now_ms`] at which the value expires logically. `u64::MAX`:
    /// fresh for as long as the tier keeps it (no freshness option is on,
    /// so the hit reads no clock).
    pub(crate) fresh_until: u64,
    /// The same instant in Unix ms, 0 = never: what the codec header says.
    pub(crate) fresh_until_unix: u64,
    /// The body's run time, in ms: XFetch's `delta`.
    pub(crate) run_ms: u32,
}

impl Meta {
    /// A value with no logical expiry of its own.
    pub(crate) const ALWAYS: Meta = Meta {
        fresh_until: u64::MAX,
        fresh_until_unix: 0,
        run_ms: 0,
    };

    /// The meta of encoded bytes, on this process's monotonic clock.
    pub(crate) fn of_bytes(bytes: &[u8]) -> Meta {
        let unix = codec::expiry(bytes).unwrap_or(0);
        let run_ms = codec::run_time_ms(bytes).unwrap_or(0);
        Meta {
            fresh_until: mono_of_unix(unix),
            fresh_until_unix: unix,
            run_ms,
        }
    }

    /// The meta kept in the local tier of a function with `freshness`: a
    /// function without freshness options never checks it.
    pub(crate) fn for_local(self, freshness: &Freshness) -> Meta {
        if freshness.is_off() {
            Meta {
                fresh_until: u64::MAX,
                ..self
            }
        } else {
            self
        }
    }
}

/// A Unix-ms instant on the monotonic clock (`u64::MAX` for 0, "never").
fn mono_of_unix(unix: u64) -> u64 {
    if unix == 0 {
        return u64::MAX;
    }
    let (now_unix, now) = (clock::unix_ms(), clock::now_ms());
    if unix >= now_unix {
        now.saturating_add(unix - now_unix)
    } else {
        now.saturating_sub(now_unix - unix)
    }
}

/// Where a found value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Fresh,
    /// Live, but XFetch drew an early refresh.
    Early,
    /// Past its expiry, inside the `stale_while_revalidate` window.
    Stale,
    /// Past its expiry and that window (kept for `stale_if_error`).
    Expired,
}

/// A uniform draw in (0, 1] from a per-thread xorshift.
fn unit_draw() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static SEED: Cell<u64> = const { Cell::new(0) };
    }
    SEED.try_with(|s| {
        let mut x = s.get();
        if x == 0 {
            let here = &x as *const u64 as u64;
            x = (clock::unix_ms() ^ here.rotate_left(32)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    })
    .unwrap_or(0.5)
}

pub(crate) fn state(meta: &Meta, freshness: &Freshness, now: u64) -> State {
    if meta.fresh_until == u64::MAX {
        return State::Fresh;
    }
    if now < meta.fresh_until {
        // XFetch: recompute when now - delta * beta * ln(rand) >= expiry.
        let beta = freshness.early_refresh;
        if beta > 0.0 && meta.run_ms > 0 {
            let gap = f64::from(meta.run_ms) * beta * -unit_draw().ln();
            if now as f64 + gap >= meta.fresh_until as f64 {
                return State::Early;
            }
        }
        return State::Fresh;
    }
    let swr = ttl_ms(freshness.stale_while_revalidate);
    if now < meta.fresh_until.saturating_add(swr) {
        State::Stale
    } else {
        State::Expired
    }
}

/// Whether a value past its expiry may still stand in for a failed body.
pub(crate) fn error_servable(meta: &Meta, freshness: &Freshness, now: u64) -> bool {
    !freshness.stale_if_error.is_zero()
        && now
            < meta
                .fresh_until
                .saturating_add(ttl_ms(freshness.stale_if_error))
}

// ----- lifetimes ---------------------------------------------------------

pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_millis().min(u64::MAX as u128) as u64
}

/// The Unix-ms expiry to record for a value stored now for `ttl`.
pub(crate) fn expiry_for(ttl: Duration) -> u64 {
    if ttl.is_zero() {
        0
    } else {
        clock::unix_ms().saturating_add(ttl_ms(ttl))
    }
}

/// The smaller of two lifetimes, where zero means "no expiry".
pub(crate) fn min_ttl(a: Duration, b: Duration) -> Duration {
    match (a.is_zero(), b.is_zero()) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
}
