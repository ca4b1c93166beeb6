//! The Redis Cluster shared tier (feature `redis-cluster`).

use std::sync::Arc;
use std::time::Duration;

use super::conn::{CallFail, Conn};
use super::resp::{self, Value};
use super::{
    bytes, counter_error, glob_prefix, int, ms, redact, scan_reply, set_args, under_prefix,
    unexpected, Redis, SCAN_BATCH,
};
use crate::net::Limits;
use crate::Offloaded;
use crate::{Backend, Error};
use feed::ClusterFeed;
use route::{redirect, Node, NodeOptions, Router, NAME};
use slots::key_slot;

mod feed;
mod lease;
mod route;
mod slots;

const DEFAULT_IO_THREADS: usize = 4;

/// A Redis (or Valkey) Cluster as a shared tier: keys are routed to the
/// master of their hash slot, with every guarantee of [`Redis`].
///
/// - **Lazy.** Building it connects to nothing, so an application starts
///   with the cluster down. The first call reads the slot map (`CLUSTER
///   NODES`) from the first node that answers; while none does, calls fail
///   at once (the map is asked for again at most every 200 ms), and the
///   cache computes.
/// - **Bounded.** Each node has its own bounded pool of blocking
///   connections ([`max_connections`](RedisClusterBuilder::max_connections)
///   per node), and every round trip ends within its deadline (the response
///   timeout, plus the connect timeout when it opens a connection),
///   whatever a node sends; a reply larger than
///   [`max_reply_size`](RedisClusterBuilder::max_reply_size) fails its call
///   before it is read into memory. A call that a node redirects (`MOVED`,
///   `ASK`) makes one more round trip, so one key's call ends within twice
///   its deadline; the first call of a process, which also discovers the
///   cluster, within four times.
/// - **Batches.** [`get_many`](Backend::get_many),
///   [`set_many`](Backend::set_many) and
///   [`delete_many`](Backend::delete_many) (and so `Cache::preload`) make
///   one pipelined round trip per master, never one per key (`MGET` and
///   `UNLINK` per hash slot, as a cluster refuses multi-key commands across
///   slots).
/// - **Clears.** [`clear_prefix`](Backend::clear_prefix) runs `SCAN MATCH
///   prefix*` and `UNLINK` on every master: never `KEYS` or `FLUSHALL`, and
///   never a key outside the prefix. Keys whose `UNLINK` is redirected (a
///   slot moved or moving) are unlinked where they live now, and masters
///   that gained slots while it ran (a failover) are scanned too.
/// - **Failover.** `MOVED` updates the map and is followed; `ASK` is
///   followed with `ASKING`. When a master fails (a refused, reset or
///   timed-out connection, or `CLUSTERDOWN`), the map is read again in the
///   background, at most every 200 ms, so once a replica is promoted its
///   slots are served by it without restarting the application. Calls to
///   the failed master's slots fail (fast, once the connection is refused)
///   until then, and the cache computes.
/// - **Coherence.** The local tiers of the caches built on it follow the
///   cluster ([`Backend::invalidations`]): each cache is tracked (`CLIENT
///   TRACKING BCAST` on its prefix) on every master, through one
///   connection per process and master with the same ping watchdog as for
///   a single server. A cache keeps local copies only while every master
///   vouches for it: a lost or silent master connection empties its local
///   tier until the connection is back, and a new master (a promoted
///   replica, slots moved to another node) is tracked before anything is
///   sent to it. While a master's connection is down, the slot map is read
///   again every 500 ms, so a promotion is found even when no call goes to
///   that master's slots.
/// - **Errors** are classified for the circuit breaker as for [`Redis`]: an
///   unreachable node is an outage, an error reply a refusal; messages name
///   the node.
/// - **Async.** The `_async` methods run the same bounded blocking calls on
///   a few I/O threads of the tier's own
///   ([`io_threads`](RedisClusterBuilder::io_threads), 4 by default), so no
///   executor thread ever waits on the network, under any runtime.
///
/// URLs: `redis://[[user]:password@]host:port` for each seed node (a few
/// are enough: the others are discovered), and with the feature
/// `redis-tls` `rediss://` (every node then speaks TLS, with the same
/// options as [`RedisBuilder::tls_root_cert`](super::RedisBuilder)). The
/// password and TLS settings of the first URL apply to every node.
///
/// ```no_run
/// use cachefn::backends::{Backend, RedisCluster};
///
/// let cluster = RedisCluster::open(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])?;
/// cluster.set("k", b"v", std::time::Duration::from_secs(60))?;
/// assert_eq!(cluster.get("k")?, Some(b"v".to_vec()));
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
pub struct RedisCluster {
    /// The blocking client; its `_async` twins on I/O threads.
    inner: Offloaded<Cluster>,
}

/// The blocking side of a [`RedisCluster`].
struct Cluster {
    router: Arc<Router>,
    /// The caches that follow the cluster's changes.
    feed: Arc<ClusterFeed>,
}

/// Options of a [`RedisCluster`] tier; from [`RedisCluster::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
#[must_use]
pub struct RedisClusterBuilder {
    urls: Vec<String>,
    limits: Limits,
    io_threads: usize,
    #[cfg(feature = "redis-tls")]
    tls_root_cert: Option<Vec<u8>>,
    #[cfg(feature = "redis-tls")]
    tls_client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisClusterBuilder {
    /// How long opening a connection to a node may take (default 250 ms; at least 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.set_connect_timeout(timeout);
        self
    }

    /// How long one round trip to a node may take (default 250 ms; at least 1 ms):
    /// waiting for a pooled connection, writing the commands and reading
    /// the whole reply, however the node sends it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cachefn::backends::RedisCluster;
    ///
    /// let nodes = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"];
    /// let cluster = RedisCluster::builder(&nodes)
    ///     .response_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.limits.set_response_timeout(timeout);
        self
    }

    /// Idle connections kept for reuse, per node (default 16).
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.limits.set_max_idle(connections);
        self
    }

    /// The most connections open at once to one node (default 32; at least
    /// 1). A call that finds them all busy waits for one within its
    /// response timeout, then fails with an error naming this setting.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.limits.set_max_connections(connections);
        self
    }

    /// The most bytes one reply may carry (default 32 MiB; at least 1 KiB),
    /// as [`RedisBuilder::max_reply_size`](super::RedisBuilder::max_reply_size).
    pub fn max_reply_size(mut self, bytes: usize) -> Self {
        self.limits.set_max_reply_size(bytes);
        self
    }

    /// Threads that run the blocking calls of the `_async` methods (default
    /// 4; started on the first async call). 0 runs them on the calling
    /// (executor) thread.
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Trust the CA certificate(s) in `pem` for every node of a `rediss://`
    /// cluster, as [`RedisBuilder::tls_root_cert`](super::RedisBuilder::tls_root_cert).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Present a client certificate to every node (mutual TLS), as
    /// [`RedisBuilder::tls_client_cert`](super::RedisBuilder::tls_client_cert).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The tier. Nothing connects yet.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when no URL is given; when a URL is not a Redis
    /// URL, names a database other than 0 or a Unix socket, or mixes
    /// `redis://` and `rediss://` with the others; when a TLS certificate
    /// or key is not usable.
    pub fn build(self) -> Result<RedisCluster, Error> {
        let bad = |url: &str, why: &str| Error::backend(NAME, format!("`{}`: {why}", redact(url)));
        if self.urls.is_empty() {
            return Err(Error::backend(
                NAME,
                "no node URL given: pass one or more, e.g. RedisCluster::open(&[\"redis://10.0.0.1:6379\"])",
            ));
        }
        // Scheme and credentials are the first URL's, set after the loop.
        let mut options = NodeOptions {
            scheme: "redis",
            userinfo: String::new(),
            connect_timeout: self.limits.connect_timeout,
            response_timeout: self.limits.response_timeout,
            max_idle: self.limits.max_idle,
            max_connections: self.limits.max_connections,
            max_reply_size: self.limits.max_reply_size,
            #[cfg(feature = "redis-tls")]
            tls_root_cert: self.tls_root_cert,
            #[cfg(feature = "redis-tls")]
            tls_client_cert: self.tls_client_cert,
        };
        let mut seeds = Vec::new();
        let mut template: Option<(bool, String)> = None;
        for url in &self.urls {
            let tls = super::is_tls_url(url);
            let redis = options.configure(Redis::builder(url)).build()?;
            let t = &redis.target;
            let (host, port) = match &t.addr {
                redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
                #[cfg(feature = "redis-tls")]
                redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
                _ => {
                    return Err(bad(
                        url,
                        "a cluster node is reached over TCP: write redis://host:port",
                    ))
                }
            };
            if t.db != 0 {
                return Err(bad(
                    url,
                    "a Redis Cluster has only database 0: drop the /db from the URL",
                ));
            }
            let userinfo = match (&t.username, &t.password) {
                (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
                (None, Some(p)) => format!(":{}@", encode(p)),
                (Some(u), None) => format!("{}@", encode(u)),
                (None, None) => String::new(),
            };
            match &template {
                None => template = Some((tls, userinfo)),
                Some((first_tls, _)) if *first_tls != tls => {
                    return Err(bad(
                        url,
                        "every node URL must use the same scheme (all redis:// or all rediss://)",
                    ))
                }
                Some(_) => {}
            }
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            seeds.push((addr, redis));
        }
        let (tls, userinfo) = template.unwrap_or_default();
        options.scheme = if tls { "rediss" } else { "redis" };
        options.userinfo = userinfo;
        let router = Router::new(seeds, options);
        let feed = ClusterFeed::new(&router);
        router.watch(&feed);
        Ok(RedisCluster {
            inner: Offloaded::new(Cluster { router, feed }, self.io_threads),
        })
    }
}

/// `s` percent-encoded for the user-info part of a URL.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RedisCluster {
    /// A tier for the cluster that the nodes at `urls` belong to (one is
    /// enough; give a few, in case one is down), with the default timeouts.
    /// Nothing connects yet, so an application starts even when the
    /// cluster is down.
    ///
    /// ```no_run
    /// use cachefn::backends::RedisCluster;
    ///
    /// let shared = RedisCluster::open(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])?;
    /// # Ok::<(), cachefn::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RedisClusterBuilder::build`].
    pub fn open<S: AsRef<str>>(urls: &[S]) -> Result<RedisCluster, Error> {
        RedisCluster::builder(urls).build()
    }

    /// A builder, to set timeouts, pool sizes and TLS.
    pub fn builder<S: AsRef<str>>(urls: &[S]) -> RedisClusterBuilder {
        RedisClusterBuilder {
            urls: urls.iter().map(|u| u.as_ref().to_owned()).collect(),
            limits: Limits::DEFAULT,
            io_threads: DEFAULT_IO_THREADS,
            #[cfg(feature = "redis-tls")]
            tls_root_cert: None,
            #[cfg(feature = "redis-tls")]
            tls_client_cert: None,
        }
    }
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let router = &self.inner.get_ref().router;
        let masters: Vec<String> = router
            .current()
            .map(|t| t.serving().iter().map(|n| n.addr.clone()).collect())
            .unwrap_or_default();
        f.debug_struct("RedisCluster")
            .field("seeds", &router.seeds())
            .field("masters", &masters)
            .field("connect_timeout", &router.options().connect_timeout)
            .field("response_timeout", &router.options().response_timeout)
            .field("io_threads", &self.inner.threads())
            .finish()
    }
}

/// Keys (by their index in a batch) grouped by the master of their slot,
/// and within a master by slot.
type Groups = Vec<(Arc<Node>, Vec<(u16, Vec<usize>)>)>;

/// Rounds of a prefix clear over a changing slot map.
const CLEAR_ROUNDS: usize = 3;

/// The masters of `after` that serve a slot that `before` gave to another
/// node (or to none).
fn gained(before: &route::Topology, after: &route::Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for slot in 0..slots::SLOTS as u16 {
        let Ok(now) = after.master(slot) else {
            continue;
        };
        let then = before.master(slot).ok().map(|n| n.addr.as_str());
        if then != Some(now.addr.as_str()) && !out.contains(&now.addr) {
            out.push(now.addr.clone());
        }
    }
    out
}

impl Cluster {
    /// Unlink every key under `prefix` that `SCAN` finds on `node`; a
    /// batch that the node redirects (the slot moved, or is moving) is
    /// unlinked key by key where each key lives now.
    fn clear_node(&self, node: &Node, prefix: &str) -> Result<(), Error> {
        let pattern = glob_prefix(prefix);
        let count = SCAN_BATCH.to_string();
        let mut cursor = String::from("0");
        loop {
            let (next, keys) = self.router.on(node, |c| {
                scan_reply(c.call(&[
                    b"SCAN",
                    cursor.as_bytes(),
                    b"MATCH",
                    pattern.as_bytes(),
                    b"COUNT",
                    count.as_bytes(),
                ])?)
            })?;
            let keys = under_prefix(&keys, prefix);
            if !keys.is_empty() {
                let mut by_slot: Vec<(u16, Vec<&[u8]>)> = Vec::new();
                for k in &keys {
                    let slot = key_slot(k.as_bytes());
                    match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, args)) => args.push(k.as_bytes()),
                        None => by_slot.push((slot, vec![b"UNLINK", k.as_bytes()])),
                    }
                }
                let cmds: Vec<Vec<&[u8]>> = by_slot.into_iter().map(|(_, a)| a).collect();
                if self.batch(node, &cmds)?.is_none() {
                    for k in keys {
                        self.delete(k)?;
                    }
                }
            }
            if next == "0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn group<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Result<Groups, Error> {
        let topology = self.router.topology()?;
        let mut groups: Groups = Vec::new();
        for (i, key) in keys.enumerate() {
            let slot = key_slot(key.as_bytes());
            let node = self.router.master(&topology, slot)?;
            let at = match groups.iter().position(|(n, _)| Arc::ptr_eq(n, &node)) {
                Some(at) => at,
                None => {
                    groups.push((node, Vec::new()));
                    groups.len() - 1
                }
            };
            let slots = &mut groups[at].1;
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, indexes)) => indexes.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        Ok(groups)
    }

    /// One pipelined round trip to `node`; `Ok(None)` when a key was
    /// redirected (a slot moved or is migrating): the caller then routes
    /// that node's keys one by one.
    fn batch(&self, node: &Node, cmds: &[Vec<&[u8]>]) -> Result<Option<Vec<Value>>, Error> {
        let from = node.addr.as_str();
        self.router
            .on(node, |c: &mut Conn| match c.pipeline(cmds) {
                Ok(replies) => Ok(Some(replies)),
                Err(CallFail::Server(m))
                    if redirect(&m, from).is_some() || m.starts_with("TRYAGAIN") =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            })
            .inspect(|r| {
                if r.is_none() {
                    self.router.refresh_soon();
                }
            })
    }
}

impl Backend for Cluster {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.router.call(key, &[b"GET", key.as_bytes()], bytes)
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        let px = resp::itoa_buf(ms(ttl));
        self.router
            .call(key, &set_args(key, value, ttl, false, &px), |_| Ok(()))
    }

    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        let px = resp::itoa_buf(ms(ttl));
        self.router
            .call(key, &set_args(key, value, ttl, true, &px), |v| match v {
                Value::Nil => Ok(false),
                Value::Status(_) => Ok(true),
                other => Err(unexpected(&other)),
            })
    }

    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.router
            .call(key, &[b"UNLINK", key.as_bytes()], int)
            .map(|n| n > 0)
    }

    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let delta = delta.to_string();
        self.router
            .call(key, &[b"INCRBY", key.as_bytes(), delta.as_bytes()], int)
            .map_err(|e| counter_error(key, e))
    }

    /// `SCAN MATCH prefix*` and `UNLINK` (per hash slot) on every master,
    /// in batches, each one round trip with its own deadline; never a key
    /// outside the prefix. Every master is cleared even when one fails.
    ///
    /// The slot map may change while it runs (a failover, a resharding):
    /// keys whose `UNLINK` is redirected are unlinked where they live now,
    /// one by one (following `MOVED` and `ASK`); a master that gained slots
    /// during a round is scanned (again) in the next, and one that failed
    /// is tried again once the map has been read again. After
    /// [`CLEAR_ROUNDS`] rounds, the last failure is returned.
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let mut topology = self.router.topology()?;
        let mut pending: Vec<String> = topology.serving().iter().map(|n| n.addr.clone()).collect();
        let mut failure = None;
        for _ in 0..CLEAR_ROUNDS {
            failure = None;
            for node in topology.serving() {
                if !pending.contains(&node.addr) {
                    continue;
                }
                match self.clear_node(&node, prefix) {
                    Ok(()) => pending.retain(|a| *a != node.addr),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if failure.is_some() {
                // Give a failover a moment, then read the map again.
                std::thread::sleep(route::REFRESH_EVERY);
                self.router.refresh_now();
            }
            let now = self.router.topology()?;
            for addr in gained(&topology, &now) {
                if !pending.contains(&addr) {
                    pending.push(addr);
                }
            }
            let serving = now.serving();
            pending.retain(|a| serving.iter().any(|n| n.addr == *a));
            topology = now;
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(failure.unwrap_or_else(|| {
            Error::refused(
                NAME,
                format!(
                    "clearing `{prefix}`: the cluster's slot map kept changing over \
                     {CLEAR_ROUNDS} rounds (resharding?); try again"
                ),
            )
        }))
    }

    fn has(&self, key: &str) -> Result<bool, Error> {
        self.router
            .call(key, &[b"EXISTS", key.as_bytes()], int)
            .map(|n| n > 0)
    }

    /// One pipelined round trip per master: an `MGET` per hash slot.
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (node, slots) in self.group(keys.iter().copied())? {
            let cmds: Vec<Vec<&[u8]>> = slots
                .iter()
                .map(|(_, indexes)| {
                    let mut args: Vec<&[u8]> = Vec::with_capacity(indexes.len() + 1);
                    args.push(b"MGET");
                    args.extend(indexes.iter().map(|&i| keys[i].as_bytes()));
                    args
                })
                .collect();
            match self.batch(&node, &cmds)? {
                Some(replies) => {
                    for ((_, indexes), reply) in slots.iter().zip(replies) {
                        let values = match reply {
                            Value::Array(items) if items.len() == indexes.len() => items,
                            other => {
                                return Err(route::on_node(
                                    Error::backend(NAME, unexpected_text(&other)),
                                    &node.addr,
                                ))
                            }
                        };
                        for (&i, v) in indexes.iter().zip(values) {
                            out[i] = match v {
                                Value::Bulk(b) => Some(b),
                                Value::Nil => None,
                                other => {
                                    return Err(route::on_node(
                                        Error::backend(NAME, unexpected_text(&other)),
                                        &node.addr,
                                    ))
                                }
                            };
                        }
                    }
                }
                None => {
                    for &i in slots.iter().flat_map(|(_, indexes)| indexes) {
                        out[i] = self.get(keys[i])?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// One pipelined round trip of `SET .. PX` per master.
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        let px = resp::itoa_buf(ms(ttl));
        for (node, slots) in self.group(items.iter().map(|(k, _)| *k))? {
            let cmds: Vec<Vec<&[u8]>> = slots
                .iter()
                .flat_map(|(_, indexes)| indexes)
                .map(|&i| set_args(items[i].0, items[i].1, ttl, false, &px))
                .collect();
            if self.batch(&node, &cmds)?.is_none() {
                for &i in slots.iter().flat_map(|(_, indexes)| indexes) {
                    self.set(items[i].0, items[i].1, ttl)?;
                }
            }
        }
        Ok(())
    }

    /// One pipelined round trip per master: an `UNLINK` per hash slot.
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        for (node, slots) in self.group(keys.iter().copied())? {
            let cmds: Vec<Vec<&[u8]>> = slots
                .iter()
                .map(|(_, indexes)| {
                    let mut args: Vec<&[u8]> = Vec::with_capacity(indexes.len() + 1);
                    args.push(b"UNLINK");
                    args.extend(indexes.iter().map(|&i| keys[i].as_bytes()));
                    args
                })
                .collect();
            if self.batch(&node, &cmds)?.is_none() {
                for &i in slots.iter().flat_map(|(_, indexes)| indexes) {
                    self.delete(keys[i])?;
                }
            }
        }
        Ok(())
    }

    /// `CLIENT TRACKING` on every master, followed through failovers.
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        Some(self.feed.handle())
    }

    // Leases (single_flight = "shared"): see lease.rs.
    fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.acquire_lease(key, token, ttl)
    }
    fn lease_renew(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.renew_lease(key, token, ttl)
    }
    fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.release_lease(key, token)
    }
    fn get_or_lease(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<crate::GetOrLease, Error> {
        self.get_or_lease_in_slot(key, lease, token, ttl)
    }
    fn store_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        self.store_leased_in_slot(key, value, ttl, lease, token)
    }
}

/// What an unexpected reply was, for an error message.
fn unexpected_text(v: &Value) -> String {
    match unexpected(v) {
        CallFail::Broken(super::resp::Fail::Protocol(why)) => why,
        _ => "unexpected reply".into(),
    }
}

// Every call is the blocking client's (`Cluster`: slot routing, redirects,
// leases, the feed); the `_async` twins run it on an I/O thread.
crate::backend::delegate_backend!(impl[] for RedisCluster, |c| &c.inner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_redacted() {
        assert!(RedisCluster::open(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]).is_ok());
        let none: [&str; 0] = [];
        let e = RedisCluster::open(&none).unwrap_err().to_string();
        assert!(e.contains("no node URL"), "{e}");
        let e = RedisCluster::open(&["redis://:secret@127.0.0.1:7000/2"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only database 0") && !e.contains("secret"),
            "{e}"
        );
        let e = RedisCluster::open(&["http://:secret@x/"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a Redis URL") && !e.contains("secret"),
            "{e}"
        );
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }

    #[test]
    fn a_cluster_that_is_down_fails_calls_fast_and_builds() {
        // Nothing listens on port 1: building succeeds, calls fail at once.
        let c = RedisCluster::open(&["redis://127.0.0.1:1"]).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..50 {
            let e = c.get("k").unwrap_err();
            assert!(e.is_outage(), "{e}");
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        let e = c.get("k").unwrap_err().to_string();
        assert!(
            e.contains("CLUSTER NODES") && e.contains("127.0.0.1:1"),
            "{e}"
        );
        let e = crate::pool::tests::block_on(c.get_async("k")).unwrap_err();
        assert!(e.is_outage(), "{e}");
    }

    /// As a single Redis's: a zero timeout is raised to 1 ms.
    #[test]
    fn zero_timeouts_are_raised_to_one_millisecond() {
        let b = RedisCluster::builder(&["redis://127.0.0.1:1"])
            .connect_timeout(Duration::ZERO)
            .response_timeout(Duration::ZERO);
        let ms = Duration::from_millis(1);
        assert_eq!(
            (b.limits.connect_timeout, b.limits.response_timeout),
            (ms, ms)
        );
    }
}
