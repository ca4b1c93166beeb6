//! The nodes of a cluster and the routing of commands to them: one
//! [`Redis`] (a bounded connection pool with per-call deadlines) per node
//! address, the slot map discovered with `CLUSTER NODES`, `MOVED` and `ASK`
//! redirections followed, and the map refreshed (rate-limited, off the
//! calling thread) when a node fails, so a promoted replica is used without
//! restarting the application.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::sync::{Mutex, RwLock};

use super::super::conn::CallFail;
use super::super::resp::Value;
use super::super::Redis;
use super::feed::ClusterFeed;
use super::slots::{key_slot, parse_nodes, SlotMap};
use crate::{clock, Error};

/// The tier's name, in errors.
pub(super) const NAME: &str = "redis-cluster";

/// The slot map is read again at most this often (after a failed node, a
/// `MOVED`, a `CLUSTERDOWN`).
pub(super) const REFRESH_EVERY: Duration = Duration::from_millis(200);

/// How to reach any node of the cluster: everything but its address.
pub(super) struct NodeOptions {
    /// `redis` or `rediss`.
    pub scheme: &'static str,
    /// `user:password@`, percent-encoded, or empty.
    pub userinfo: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle: usize,
    pub max_connections: usize,
    pub max_reply_size: usize,
    #[cfg(feature = "redis-tls")]
    pub tls_root_cert: Option<Vec<u8>>,
    #[cfg(feature = "redis-tls")]
    pub tls_client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

impl NodeOptions {
    /// A [`Redis`] for the node at `addr` (`host:port`). Nothing connects.
    fn build(&self, addr: &str) -> Result<Redis, Error> {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let url = format!("{}://{}{host}:{port}", self.scheme, self.userinfo);
        self.configure(Redis::builder(&url))
            .build()
            .map_err(|e| on_node(e, addr))
    }

    /// `builder` with these timeouts, bounds and TLS settings (the URL's
    /// own scheme and credentials are the builder's).
    pub(super) fn configure(
        &self,
        builder: super::super::RedisBuilder,
    ) -> super::super::RedisBuilder {
        let builder = builder
            .connect_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            .max_connections(self.max_connections)
            .max_idle(self.max_idle)
            .max_reply_size(self.max_reply_size);
        #[cfg(feature = "redis-tls")]
        let builder = match &self.tls_root_cert {
            Some(pem) => builder.tls_root_cert(pem.clone()),
            None => builder,
        };
        #[cfg(feature = "redis-tls")]
        let builder = match &self.tls_client_cert {
            Some((cert, key)) => builder.tls_client_cert(cert.clone(), key.clone()),
            None => builder,
        };
        builder
    }
}

/// One node: its address and its connections.
pub(super) struct Node {
    /// `host:port`.
    pub addr: String,
    pub redis: Redis,
}

/// The masters and the slots they serve, as of one `CLUSTER NODES` (and the
/// `MOVED` replies since). Replaced whole, never changed in place: a call
/// works on the snapshot it took.
///
/// This is where per-master state attaches: [`Router::install`] is the one
/// place a new set of masters takes effect, so a client-tracking
/// (invalidation) connection per master can be opened or re-established
/// there when the masters change.
pub(super) struct Topology {
    pub map: SlotMap,
    /// `map.masters`' nodes, in the same order.
    pub masters: Vec<Arc<Node>>,
}

impl Topology {
    /// The master serving `slot`.
    pub fn master(&self, slot: u16) -> Result<&Arc<Node>, Error> {
        self.map
            .owner(slot)
            .and_then(|i| self.masters.get(i))
            .ok_or_else(|| {
                Error::backend(
                    NAME,
                    format!(
                        "no master serves hash slot {slot} (the cluster is not fully \
                         configured, or is failing over): check `CLUSTER INFO`"
                    ),
                )
            })
    }

    /// The masters that serve at least one slot.
    pub fn serving(&self) -> Vec<Arc<Node>> {
        self.map
            .serving()
            .into_iter()
            .filter_map(|i| self.masters.get(i).cloned())
            .collect()
    }
}

/// Where a node sent a command instead of answering it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redirect {
    /// `MOVED slot addr`: the slot lives there now.
    Moved { slot: u16, addr: String },
    /// `ASK slot addr`: this key is being migrated there; ask it once, after
    /// `ASKING`.
    Ask { addr: String },
}

/// The redirection in an error reply, if it is one. An address without a
/// host (`:7001`) is on the host of the node that answered (`from`).
pub(super) fn redirect(message: &str, from: &str) -> Option<Redirect> {
    let mut parts = message.split_ascii_whitespace();
    let kind = parts.next()?;
    let slot: u16 = parts.next()?.parse().ok()?;
    let addr = parts.next()?;
    let addr = if let Some(port) = addr.strip_prefix(':') {
        let host = from.rsplit_once(':').map_or(from, |(h, _)| h);
        format!("{host}:{port}")
    } else {
        addr.to_owned()
    };
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { addr }),
        _ => None,
    }
}

/// `e`, said of the tier and of the node at `addr`.
pub(super) fn on_node(e: Error, addr: &str) -> Error {
    match e {
        Error::Backend {
            message,
            failure,
            source,
            ..
        } => Error::Backend {
            backend: NAME,
            message: format!("node {addr}: {message}"),
            failure,
            source,
        },
        other => other,
    }
}

/// Routes commands to the nodes of one cluster.
pub(super) struct Router {
    me: Weak<Router>,
    /// `host:port` of the URLs given.
    seeds: Vec<String>,
    options: NodeOptions,
    /// Every node met so far, by address: their pools outlive topologies.
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    topology: RwLock<Option<Arc<Topology>>>,
    /// `clock::now_ms()` of the last discovery started.
    last_discovery: AtomicU64,
    /// A background refresh is under way.
    refreshing: AtomicBool,
    /// Held by the caller that discovers the cluster for the first time;
    /// the error of the last failed discovery.
    first: Mutex<Option<Error>>,
    /// Told of every topology installed: the invalidation feed, which
    /// tracks keys on each master.
    on_install: OnceLock<Weak<ClusterFeed>>,
}

impl Router {
    pub fn new(seeds: Vec<(String, Redis)>, options: NodeOptions) -> Arc<Router> {
        Arc::new_cyclic(|me| Router {
            me: me.clone(),
            seeds: seeds.iter().map(|(addr, _)| addr.clone()).collect(),
            options,
            nodes: Mutex::new(
                seeds
                    .into_iter()
                    .map(|(addr, redis)| (addr.clone(), Arc::new(Node { addr, redis })))
                    .collect(),
            ),
            topology: RwLock::new(None),
            last_discovery: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            first: Mutex::new(None),
            on_install: OnceLock::new(),
        })
    }

    /// Tell `feed` of every topology installed from now on.
    pub fn watch(&self, feed: &Arc<ClusterFeed>) {
        let _ = self.on_install.set(Arc::downgrade(feed));
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The node at `addr`, created (not connected) on first use.
    pub fn node(&self, addr: &str) -> Result<Arc<Node>, Error> {
        if let Some(node) = self.nodes.lock().get(addr) {
            return Ok(node.clone());
        }
        let redis = self.options.build(addr)?;
        Ok(self
            .nodes
            .lock()
            .entry(addr.to_owned())
            .or_insert_with(|| {
                Arc::new(Node {
                    addr: addr.to_owned(),
                    redis,
                })
            })
            .clone())
    }

    /// The current topology, if one was discovered.
    pub fn current(&self) -> Option<Arc<Topology>> {
        self.topology.read().clone()
    }

    /// Make `map` the topology.
    fn install(&self, map: SlotMap) -> Result<Arc<Topology>, Error> {
        let masters = map
            .masters
            .iter()
            .map(|addr| self.node(addr))
            .collect::<Result<Vec<_>, _>>()?;
        let topology = Arc::new(Topology { map, masters });
        *self.topology.write() = Some(topology.clone());
        // New masters are tracked (and followers suspended until they
        // confirm) before the caller sends anything to them.
        if let Some(feed) = self.on_install.get().and_then(Weak::upgrade) {
            if feed.followed() {
                feed.sync();
            }
        }
        Ok(topology)
    }

    /// The topology, discovering the cluster on the first call. While no
    /// node answers, a call fails at once (with the last discovery's error)
    /// rather than trying again more often than every [`REFRESH_EVERY`].
    pub fn topology(&self) -> Result<Arc<Topology>, Error> {
        if let Some(t) = self.current() {
            return Ok(t);
        }
        let wait = self.options.connect_timeout + self.options.response_timeout;
        let Some(mut last_error) = self.first.try_lock_for(wait) else {
            return Err(Error::backend(
                NAME,
                format!(
                    "the cluster's slot map is still being discovered after {wait:?}: \
                     check that the nodes given to RedisCluster answer"
                ),
            ));
        };
        if let Some(t) = self.current() {
            return Ok(t);
        }
        let since = clock::now_ms().saturating_sub(self.last_discovery.load(Ordering::Acquire));
        if let Some(e) = &*last_error {
            if since < REFRESH_EVERY.as_millis() as u64 {
                return Err(e.clone());
            }
        }
        self.last_discovery
            .store(clock::now_ms(), Ordering::Release);
        match self.discover(Some(Instant::now() + wait)) {
            Ok(t) => {
                *last_error = None;
                Ok(t)
            }
            Err(e) => {
                *last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Read the slot map from the first node that answers: the known
    /// masters, then the seeds, then the other nodes met. With a deadline,
    /// no node is asked after it.
    fn discover(&self, deadline: Option<Instant>) -> Result<Arc<Topology>, Error> {
        let mut candidates: Vec<String> = Vec::new();
        if let Some(t) = self.current() {
            candidates.extend(t.serving().iter().map(|n| n.addr.clone()));
            candidates.extend(t.map.others.iter().cloned());
        }
        candidates.extend(self.seeds.iter().cloned());
        candidates.extend(self.nodes.lock().keys().cloned());
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.clone()));

        let mut errors: Vec<String> = Vec::new();
        for addr in candidates {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                errors.push("(no time left to ask the others)".into());
                break;
            }
            let node = self.node(&addr)?;
            let reply = node.redis.with(|c| match c.call(&[b"CLUSTER", b"NODES"])? {
                Value::Bulk(text) => Ok(String::from_utf8_lossy(&text).into_owned()),
                other => Err(super::super::unexpected(&other)),
            });
            match reply {
                Ok(text) => {
                    let map = SlotMap::new(&parse_nodes(&text, &addr));
                    if map.covered() == 0 {
                        errors.push(format!("{addr} knows no master serving any slot"));
                        continue;
                    }
                    return self.install(map);
                }
                Err(e) => {
                    let e = on_node(e, &addr);
                    let hint = if e.to_string().contains("cluster support disabled") {
                        " (a single server: use Redis::open, or start it with `cluster-enabled yes`)"
                    } else {
                        ""
                    };
                    errors.push(format!("{}{hint}", message(&e)));
                }
            }
        }
        Err(Error::backend(
            NAME,
            format!(
                "no node told the cluster's slot map (CLUSTER NODES): {}",
                errors.join("; ")
            ),
        ))
    }

    /// Whether this caller reads the slot map now: not if it was read (or
    /// is being read) less than [`REFRESH_EVERY`] ago. `true` marks it as
    /// being read; the caller clears `refreshing` when done.
    fn claim_refresh(&self) -> bool {
        let now = clock::now_ms();
        let last = self.last_discovery.load(Ordering::Acquire);
        if now.saturating_sub(last) < REFRESH_EVERY.as_millis() as u64
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        self.last_discovery.store(now, Ordering::Release);
        true
    }

    /// Read the slot map again now, on this thread, unless it was read (or
    /// is being read) less than [`REFRESH_EVERY`] ago. A failure leaves the
    /// old map.
    pub fn refresh_now(&self) {
        if !self.claim_refresh() {
            return;
        }
        let wait = self.options.connect_timeout + self.options.response_timeout;
        let _ = self.discover(Some(Instant::now() + 2 * wait));
        self.refreshing.store(false, Ordering::Release);
    }

    /// Read the slot map again soon, on another thread, at most every
    /// [`REFRESH_EVERY`]: after a node failed, a `MOVED`, a `CLUSTERDOWN`.
    pub fn refresh_soon(&self) {
        if !self.claim_refresh() {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("cachefn-redis-cluster-refresh".into())
            .spawn(move || {
                // A failure leaves the old map; the next failed call asks again.
                let _ = me.discover(None);
                me.refreshing.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.refreshing.store(false, Ordering::Release);
        }
    }

    /// `slot` is served by `addr` now (a `MOVED`): route it there at once,
    /// and read the whole map again soon (a failover moves many slots).
    fn moved(&self, slot: u16, addr: &str) -> Result<Arc<Node>, Error> {
        let node = self.node(addr)?;
        if let Some(t) = self.current() {
            if t.map
                .owner(slot)
                .and_then(|i| t.masters.get(i))
                .map(|n| n.addr.as_str())
                != Some(addr)
            {
                self.install(t.map.moved(slot, addr))?;
            }
        }
        self.refresh_soon();
        Ok(node)
    }

    /// The master of `slot`; when the map has none, it is read again soon.
    pub fn master(&self, topology: &Topology, slot: u16) -> Result<Arc<Node>, Error> {
        topology
            .master(slot)
            .cloned()
            .inspect_err(|_| self.refresh_soon())
    }

    /// Run `f` on a connection to `node` (one deadline, as for [`Redis`]);
    /// a failure that suggests the map is stale asks for a refresh.
    pub fn on<R>(
        &self,
        node: &Node,
        f: impl FnOnce(&mut super::super::conn::Conn) -> Result<R, CallFail>,
    ) -> Result<R, Error> {
        node.redis.with(f).map_err(|e| {
            if e.is_outage() || message(&e).contains("CLUSTERDOWN") {
                self.refresh_soon();
            }
            on_node(e, &node.addr)
        })
    }

    /// One command about `key`, on the master of its slot, following one
    /// `MOVED` or `ASK`: at most two round trips, each within its deadline.
    pub fn call<R>(
        &self,
        key: &str,
        args: &[&[u8]],
        parse: impl Fn(Value) -> Result<R, CallFail>,
    ) -> Result<R, Error> {
        let slot = key_slot(key.as_bytes());
        let topology = self.topology()?;
        let mut node = self.master(&topology, slot)?;
        let mut asking = false;
        for _ in 0..2 {
            let from = node.addr.as_str();
            let outcome = self.on(&node, |c| {
                let reply = if asking {
                    c.pipeline(&[vec![b"ASKING".as_slice()], args.to_vec()])
                        .map(|mut replies| replies.pop().unwrap_or(Value::Nil))
                } else {
                    c.call(args)
                };
                match reply {
                    Ok(v) => parse(v).map(Ok),
                    Err(CallFail::Server(m)) => match redirect(&m, from) {
                        Some(r) => Ok(Err(r)),
                        None => Err(CallFail::Server(m)),
                    },
                    Err(broken) => Err(broken),
                }
            })?;
            match outcome {
                Ok(r) => return Ok(r),
                Err(Redirect::Moved { slot, addr }) => {
                    node = self.moved(slot, &addr)?;
                    asking = false;
                }
                Err(Redirect::Ask { addr }) => {
                    node = self.node(&addr)?;
                    asking = true;
                }
            }
        }
        Err(Error::refused(
            NAME,
            format!(
                "`{key}` was redirected twice (hash slot {slot}): the cluster is \
                 resharding; try again"
            ),
        ))
    }
}

/// An error's message without the `cache backend .. failed:` head.
pub(super) fn message(e: &Error) -> &str {
    match e {
        Error::Backend { message, .. } => message,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirections_are_parsed() {
        assert_eq!(
            redirect("MOVED 3999 127.0.0.1:6381", "10.0.0.1:7000"),
            Some(Redirect::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            redirect("ASK 3999 :6381", "10.0.0.1:7000"),
            Some(Redirect::Ask {
                addr: "10.0.0.1:6381".into()
            })
        );
        assert_eq!(redirect("WRONGTYPE Operation against a key", "a:1"), None);
        assert_eq!(redirect("MOVED x y", "a:1"), None);
        assert_eq!(redirect("", "a:1"), None);
    }
}
