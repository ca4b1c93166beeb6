//! The [`Backend`] methods of the blocking client, each as one round trip
//! (or a few, for a compare-and-swap), with the generations checked.

use std::time::{Duration, Instant};

use super::conn::Client;
use super::gens::{clear_scope, gen_key, gen_keys, live, push_ensure_gens, push_read_gens};
use super::protocol::{
    check_key, exptime, keep_ttl, now_secs, push_md, push_mg, push_ms, unexpected, Code, Fail,
    Mode, Res,
};
use super::NAME;
use crate::{clock, Backend, Error};

/// How long `add` and `incr` retry a compare-and-swap that lost a race.
const CAS_PATIENCE: Duration = Duration::from_secs(2);

/// Retries of a compare-and-swap, bounded in time.
struct Patience(Instant);

impl Patience {
    fn new() -> Self {
        Patience(Instant::now() + CAS_PATIENCE)
    }
    fn again(&self, op: &str, key: &str) -> Res<()> {
        if Instant::now() > self.0 {
            return Err(Fail::Reply(format!(
                "{op} of `{key}` kept losing compare-and-swap races for {CAS_PATIENCE:?}"
            )));
        }
        std::thread::yield_now();
        Ok(())
    }
}

/// A counter's value, as decimal text.
fn parse_counter(data: &[u8]) -> Option<i64> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}

/// The blocking protocol.
impl Backend for Client {
    fn name(&self) -> &'static str {
        NAME
    }

    /// One round trip: the entry and its generation items.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::with_capacity(64 + 2 * key.len());
        push_mg(&mut req, key, "v c");
        push_read_gens(&mut req, &gens);
        self.with("get", |c| {
            let mut r = c.exchange(&req, 1 + gens.len())?;
            let live = r[0].code == Code::Value && live(r[0].cas, &r[1..]);
            Ok(live.then(|| std::mem::take(&mut r[0].data)))
        })
    }

    /// One round trip: the generation items (created when missing), then the store.
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.set_many(&[(key, value)], ttl)
    }

    /// Atomic: a plain `add` when the key is absent (one round trip), a
    /// compare-and-swap over an entry that a clear invalidated.
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let exp = exptime(ttl, now_secs());
        self.with("add", |c| {
            let patience = Patience::new();
            loop {
                let mut req = Vec::new();
                push_ensure_gens(&mut req, &gens);
                push_ms(&mut req, key, value, exp, Mode::Add);
                let r = c.exchange(&req, gens.len() + 1)?;
                match r[gens.len()].code {
                    Code::Done => return Ok(true),
                    Code::NotStored => {}
                    _ => return Err(unexpected("an add", &r[gens.len()])),
                }
                // Present: live, or left over from before a clear?
                let mut req = Vec::new();
                push_read_gens(&mut req, &gens);
                push_mg(&mut req, key, "c");
                let r = c.exchange(&req, gens.len() + 1)?;
                let entry = &r[gens.len()];
                if entry.found() {
                    if live(entry.cas, &r[..gens.len()]) {
                        return Ok(false);
                    }
                    let mut req = Vec::new();
                    push_ms(&mut req, key, value, exp, Mode::Cas(entry.cas));
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(true),
                        Code::Exists | Code::NotFound => {}
                        _ => return Err(unexpected("a compare-and-swap", &r[0])),
                    }
                }
                patience.again("add", key)?;
                c.renew();
            }
        })
    }

    /// One round trip; `true` when a live entry was removed.
    fn delete(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::new();
        push_mg(&mut req, key, "c");
        push_read_gens(&mut req, &gens);
        push_md(&mut req, key);
        self.with("delete", |c| {
            let r = c.exchange(&req, gens.len() + 2)?;
            let was_live = r[0].found() && live(r[0].cas, &r[1..=gens.len()]);
            match r[gens.len() + 1].code {
                Code::Done => Ok(was_live),
                Code::NotFound => Ok(false),
                _ => Err(unexpected("a delete", &r[gens.len() + 1])),
            }
        })
    }

    /// A compare-and-swap on the decimal text: two round trips, more when
    /// other clients update the same counter at the same time.
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let outcome = self.with("incr", |c| {
            let patience = Patience::new();
            loop {
                let mut req = Vec::new();
                push_ensure_gens(&mut req, &gens);
                push_read_gens(&mut req, &gens);
                push_mg(&mut req, key, "v c t");
                let r = c.exchange(&req, 2 * gens.len() + 1)?;
                let entry = &r[2 * gens.len()];
                let mut req = Vec::new();
                if entry.code != Code::Value {
                    push_ms(&mut req, key, delta.to_string().as_bytes(), 0, Mode::Add);
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(Ok(delta)),
                        Code::NotStored => {}
                        _ => return Err(unexpected("an add", &r[0])),
                    }
                } else {
                    let (next, exp) = if live(entry.cas, &r[gens.len()..2 * gens.len()]) {
                        let Some(n) = parse_counter(&entry.data) else {
                            return Ok(Err(Error::NotACounter(key.to_owned())));
                        };
                        let Some(next) = n.checked_add(delta) else {
                            return Ok(Err(Error::NotACounter(format!("{key} (overflow)"))));
                        };
                        (next, keep_ttl(entry.ttl))
                    } else {
                        // Left over from before a clear: a fresh counter.
                        (delta, 0)
                    };
                    push_ms(
                        &mut req,
                        key,
                        next.to_string().as_bytes(),
                        exp,
                        Mode::Cas(entry.cas),
                    );
                    let r = c.exchange(&req, 1)?;
                    match r[0].code {
                        Code::Done => return Ok(Ok(next)),
                        Code::Exists | Code::NotFound => {}
                        _ => return Err(unexpected("a compare-and-swap", &r[0])),
                    }
                }
                patience.again("incr", key)?;
                c.renew();
            }
        });
        outcome?
    }

    /// One round trip that overwrites the scope's generation item: every
    /// entry stored before it becomes a miss. See the type's docs for which
    /// prefixes clear exactly and which clear a superset.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let Some(scope) = clear_scope(prefix) else {
            return Err(Error::backend(
                NAME,
                format!(
                    "cannot clear the prefix `{}`: memcached cannot list keys, so the Memcached tier clears by scope, and a prefix needs a `:` (as `app:`)",
                    prefix.escape_debug()
                ),
            ));
        };
        let gen = gen_key(scope);
        check_key(&gen)?;
        let mut req = Vec::new();
        push_ms(
            &mut req,
            &gen,
            clock::unix_ms().to_string().as_bytes(),
            0,
            Mode::Set,
        );
        self.with("clear_prefix", |c| {
            let r = c.exchange(&req, 1)?;
            match r[0].code {
                Code::Done => Ok(()),
                _ => Err(unexpected("a set", &r[0])),
            }
        })
    }

    /// One round trip, without the value.
    fn has(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let gens = gen_keys(key);
        let mut req = Vec::new();
        push_mg(&mut req, key, "c");
        push_read_gens(&mut req, &gens);
        self.with("has", |c| {
            let r = c.exchange(&req, 1 + gens.len())?;
            Ok(r[0].found() && live(r[0].cas, &r[1..]))
        })
    }

    /// One round trip for the whole batch: every entry, then each distinct
    /// generation item once.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut gens: Vec<String> = Vec::new();
        let mut scopes_of: Vec<Vec<usize>> = Vec::with_capacity(keys.len());
        let mut req = Vec::with_capacity(keys.len() * 64);
        for key in keys {
            check_key(key)?;
            push_mg(&mut req, key, "v c");
            let mut mine = Vec::with_capacity(2);
            for g in gen_keys(key) {
                let i = match gens.iter().position(|x| *x == g) {
                    Some(i) => i,
                    None => {
                        gens.push(g);
                        gens.len() - 1
                    }
                };
                mine.push(i);
            }
            scopes_of.push(mine);
        }
        push_read_gens(&mut req, &gens);
        self.with("get_many", |c| {
            let mut r = c.exchange(&req, keys.len() + gens.len())?;
            let (entries, gen_replies) = r.split_at_mut(keys.len());
            Ok(entries
                .iter_mut()
                .zip(&scopes_of)
                .map(|(e, mine)| {
                    let live = e.code == Code::Value
                        && mine
                            .iter()
                            .all(|&i| gen_replies[i].found() && e.cas > gen_replies[i].cas);
                    live.then(|| std::mem::take(&mut e.data))
                })
                .collect())
        })
    }

    /// One round trip: the missing generation items, then every store.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let mut gens: Vec<String> = Vec::new();
        for (key, _) in items {
            check_key(key)?;
            for g in gen_keys(key) {
                if !gens.contains(&g) {
                    gens.push(g);
                }
            }
        }
        let exp = exptime(ttl, now_secs());
        let size: usize = items.iter().map(|(k, v)| k.len() + v.len() + 40).sum();
        let mut req = Vec::with_capacity(size + 64 * gens.len());
        push_ensure_gens(&mut req, &gens);
        for (key, value) in items {
            push_ms(&mut req, key, value, exp, Mode::Set);
        }
        self.with("set", |c| {
            let r = c.exchange(&req, gens.len() + items.len())?;
            match r[gens.len()..].iter().find(|r| r.code != Code::Done) {
                None => Ok(()),
                Some(bad) => Err(unexpected("a set", bad)),
            }
        })
    }

    /// One round trip.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut req = Vec::with_capacity(keys.len() * 64);
        for key in keys {
            check_key(key)?;
            push_md(&mut req, key);
        }
        self.with("delete_many", |c| {
            let r = c.exchange(&req, keys.len())?;
            match r
                .iter()
                .find(|r| !matches!(r.code, Code::Done | Code::NotFound))
            {
                None => Ok(()),
                Some(bad) => Err(unexpected("a delete", bad)),
            }
        })
    }
}
