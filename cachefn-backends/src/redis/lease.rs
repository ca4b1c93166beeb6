//! Leases on a Redis server: what `single_flight = "shared"` needs. A lease
//! is a plain key holding its holder's token, with a lifetime:
//!
//! - acquire: `SET key token NX PX ms`;
//! - renew: `PEXPIRE` only while the key still holds our token;
//! - release: `DEL` only while the key still holds our token;
//! - get or lease: the value key's value if it has one, else `SET lease
//!   token NX PX ms`, in one script (a cold miss in one round trip);
//! - store leased (the holder's store, fenced): `SET` the value key and
//!   `DEL` the lease only while the lease still holds our token, in one
//!   script. A holder whose lease lapsed (it was paused past it), was taken
//!   over, or was removed by a clear, writes nothing: its successor may
//!   have stored a value computed from newer data. The cold miss stays
//!   three round trips (`GET`, get-or-lease, store-leased), and the
//!   release costs none of its own.
//!
//! The compare-and-act steps run as one Lua script each (`EVAL`), so a
//! holder whose lease lapsed and was taken by another never extends or
//! removes its successor's lease. The same commands serve a Redis Cluster
//! (one key per script, routed by that key's slot).

use std::time::Duration;

use super::conn::CallFail;
use super::resp::{self, Value};
use super::{int, ms, set_args, unexpected, Redis};
use crate::{Error, GetOrLease};

/// `PEXPIRE` the key only while it holds our token: 1 if renewed, else 0.
pub(super) const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/// `DEL` the key only while it holds our token: 1 if removed, else 0.
pub(super) const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('del', KEYS[1]) else return 0 end";

/// `GET` the value key; if it has none, `SET` the lease key `NX PX`:
/// the value, or 1 if the lease was taken, or 0 if another holder has it.
pub(super) const GET_OR_LEASE: &str = "local v = redis.call('get', KEYS[1]) \
     if v then return v end \
     if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end \
     return 0";

/// `SET` the value key (`KEYS[1]`) to `ARGV[2]`, for `ARGV[3]` ms (`0`: no
/// expiry), and `DEL` the lease (`KEYS[2]`), only while the lease holds
/// our token (`ARGV[1]`): 1 if stored, else 0 (nothing written).
pub(super) const STORE_LEASED: &str = "if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end \
     if ARGV[3] == '0' then redis.call('set', KEYS[1], ARGV[2]) \
     else redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end \
     redis.call('del', KEYS[2]) \
     return 1";

/// A value's lifetime in ms for [`STORE_LEASED`], as text (`0`: no expiry).
pub(super) fn store_ms(ttl: Duration) -> resp::Digits {
    resp::itoa_buf(if ttl.is_zero() { 0 } else { ms(ttl) })
}

/// `EVAL STORE_LEASED 2 key lease token value ms`.
pub(super) fn store_leased_args<'a>(
    key: &'a str,
    lease: &'a str,
    token: &'a [u8],
    value: &'a [u8],
    px: &'a resp::Digits,
) -> Vec<&'a [u8]> {
    vec![
        b"EVAL",
        STORE_LEASED.as_bytes(),
        b"2",
        key.as_bytes(),
        lease.as_bytes(),
        token,
        value,
        px.as_bytes(),
    ]
}

/// The reply of [`GET_OR_LEASE`].
pub(super) fn got_or_leased(v: Value) -> Result<GetOrLease, CallFail> {
    match v {
        Value::Bulk(b) => Ok(GetOrLease::Value(b)),
        Value::Int(1) => Ok(GetOrLease::Taken),
        Value::Int(0) => Ok(GetOrLease::Held),
        other => Err(unexpected(&other)),
    }
}

/// `EVAL GET_OR_LEASE 2 key lease token ms`.
pub(super) fn get_or_lease_args<'a>(
    key: &'a str,
    lease: &'a str,
    token: &'a [u8],
    px: &'a resp::Digits,
) -> Vec<&'a [u8]> {
    vec![
        b"EVAL",
        GET_OR_LEASE.as_bytes(),
        b"2",
        key.as_bytes(),
        lease.as_bytes(),
        token,
        px.as_bytes(),
    ]
}

/// The reply to `SET .. NX`: `OK` if taken, nil if held by another.
pub(super) fn taken(v: Value) -> Result<bool, CallFail> {
    match v {
        Value::Nil => Ok(false),
        Value::Status(_) => Ok(true),
        other => Err(unexpected(&other)),
    }
}

/// The reply of [`RENEW`] or [`RELEASE`].
pub(super) fn done(v: Value) -> Result<bool, CallFail> {
    int(v).map(|n| n > 0)
}

/// A lease's lifetime in ms, as text (at least 1 ms: a zero would make the
/// lease last forever).
pub(super) fn lease_ms(ttl: Duration) -> resp::Digits {
    resp::itoa_buf(ms(ttl.max(Duration::from_millis(1))))
}

/// `SET key token NX PX ms`.
pub(super) fn acquire_args<'a>(
    key: &'a str,
    token: &'a [u8],
    ttl: Duration,
    px: &'a resp::Digits,
) -> Vec<&'a [u8]> {
    set_args(key, token, ttl.max(Duration::from_millis(1)), true, px)
}

/// `EVAL RENEW 1 key token ms`.
pub(super) fn renew_args<'a>(key: &'a str, token: &'a [u8], px: &'a resp::Digits) -> Vec<&'a [u8]> {
    vec![
        b"EVAL",
        RENEW.as_bytes(),
        b"1",
        key.as_bytes(),
        token,
        px.as_bytes(),
    ]
}

/// `EVAL RELEASE 1 key token`.
pub(super) fn release_args<'a>(key: &'a str, token: &'a [u8]) -> Vec<&'a [u8]> {
    vec![b"EVAL", RELEASE.as_bytes(), b"1", key.as_bytes(), token]
}

impl Redis {
    pub(super) fn acquire_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.with(|c| taken(c.call(&acquire_args(key, token, ttl, &px))?))
    }

    pub(super) fn renew_lease(
        &self,
        key: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let px = lease_ms(ttl);
        self.with(|c| done(c.call(&renew_args(key, token, &px))?))
    }

    pub(super) fn release_lease(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.with(|c| done(c.call(&release_args(key, token))?))
    }

    pub(super) fn store_leased_script(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        let px = store_ms(ttl);
        self.with(|c| done(c.call(&store_leased_args(key, lease, token, value, &px))?))
    }

    pub(super) fn get_or_lease_script(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<GetOrLease, Error> {
        let px = lease_ms(ttl);
        self.with(|c| got_or_leased(c.call(&get_or_lease_args(key, lease, token, &px))?))
    }
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::time::Duration;

    use redis::Cmd;

    use super::{GET_OR_LEASE, RELEASE, RENEW, STORE_LEASED};
    use crate::redis::{ms, set_cmd, Redis};
    use crate::{Error, GetOrLease};

    fn eval(script: &str, key: &str, token: &[u8]) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(1).arg(key).arg(token);
        cmd
    }

    impl Redis {
        pub(in crate::redis) async fn acquire_lease_async(
            &self,
            key: &str,
            token: &[u8],
            ttl: Duration,
        ) -> Result<bool, Error> {
            let ttl = ttl.max(Duration::from_millis(1));
            let reply: Option<String> = self.run(set_cmd(key, token, ttl, true)).await?;
            Ok(reply.is_some())
        }

        pub(in crate::redis) async fn renew_lease_async(
            &self,
            key: &str,
            token: &[u8],
            ttl: Duration,
        ) -> Result<bool, Error> {
            let mut cmd = eval(RENEW, key, token);
            cmd.arg(ms(ttl.max(Duration::from_millis(1))));
            Ok(self.run::<i64>(cmd).await? > 0)
        }

        pub(in crate::redis) async fn get_or_lease_script_async(
            &self,
            key: &str,
            lease: &str,
            token: &[u8],
            ttl: Duration,
        ) -> Result<GetOrLease, Error> {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(GET_OR_LEASE)
                .arg(2)
                .arg(key)
                .arg(lease)
                .arg(token)
                .arg(ms(ttl.max(Duration::from_millis(1))));
            match self.run::<redis::Value>(cmd).await? {
                redis::Value::BulkString(b) => Ok(GetOrLease::Value(b)),
                redis::Value::Int(1) => Ok(GetOrLease::Taken),
                redis::Value::Int(0) => Ok(GetOrLease::Held),
                other => Err(Error::backend(
                    "redis",
                    format!("unexpected reply to the get-or-lease script: {other:?}"),
                )),
            }
        }

        pub(in crate::redis) async fn store_leased_script_async(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
            lease: &str,
            token: &[u8],
        ) -> Result<bool, Error> {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(STORE_LEASED)
                .arg(2)
                .arg(key)
                .arg(lease)
                .arg(token)
                .arg(value)
                .arg(if ttl.is_zero() { 0 } else { ms(ttl) });
            Ok(self.run::<i64>(cmd).await? > 0)
        }

        pub(in crate::redis) async fn release_lease_async(
            &self,
            key: &str,
            token: &[u8],
        ) -> Result<bool, Error> {
            Ok(self.run::<i64>(eval(RELEASE, key, token)).await? > 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_get_or_lease_reply_is_read_strictly() {
        let got = |v| got_or_leased(v).ok();
        assert_eq!(
            got(Value::Bulk(b"v".to_vec())),
            Some(GetOrLease::Value(b"v".to_vec()))
        );
        assert_eq!(got(Value::Int(1)), Some(GetOrLease::Taken));
        assert_eq!(got(Value::Int(0)), Some(GetOrLease::Held));
        assert_eq!(got(Value::Int(2)), None);
        assert_eq!(got(Value::Nil), None);
        assert_eq!(got(Value::Status("OK".into())), None);
    }
}
