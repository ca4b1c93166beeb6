//! A cluster's invalidation feed: the followers (caches) of one
//! [`RedisCluster`](super::RedisCluster), each followed on every master
//! through that master's own server feed (`tracking.rs`: one `CLIENT
//! TRACKING` connection per process and node, with its ping watchdog).
//!
//! A follower is live only while every master of the current topology
//! vouches for it. When the masters change (a replica promoted, slots moved
//! to a new node: [`Router::install`](super::route::Router) calls
//! [`ClusterFeed::sync`]), a new master is tracked before the follower is
//! live again, and a master that left is dropped. A lost node channel
//! suspends the follower, and the feed's thread reads the slot map again
//! (at most every [`REFRESH_WHILE_DOWN`]) so that a promoted replica is
//! found even when no call goes to the failed master's slots.

use std::sync::{Arc, Condvar, Weak};
use std::time::Duration;

use super::route::{Node, Router};
use crate::invalidation::Source;
use crate::redis::tracking::ServerFeed;
use crate::sync::Mutex;
use crate::{Current, InvalidationFeed, InvalidationSink, Verdict};

/// How often the feed's thread looks at its followers and the topology.
const TICK: Duration = Duration::from_millis(100);
/// While a node's channel is down, the slot map is read again this often.
const REFRESH_WHILE_DOWN: Duration = Duration::from_millis(500);

/// The followers of one cluster.
pub(super) struct ClusterFeed {
    me: Weak<ClusterFeed>,
    router: Weak<Router>,
    state: Mutex<State>,
    /// Set (and notified) to wake the thread before its tick.
    wake: std::sync::Mutex<bool>,
    woken: Condvar,
}

#[derive(Default)]
struct State {
    followers: Vec<Arc<Follower>>,
    /// The feed's thread runs.
    running: bool,
}

/// One cache, followed on every master.
struct Follower {
    /// The cache's prefix, without the colon.
    prefix: String,
    sink: Weak<dyn InvalidationSink>,
    links: Mutex<Links>,
}

#[derive(Default)]
struct Links {
    /// A topology has been seen: `nodes` are its masters.
    known: bool,
    nodes: Vec<Link>,
    /// The follower's sink was told `resume` last (else `suspend`).
    resumed: bool,
    /// `unsupported` was passed on.
    told_unsupported: bool,
}

/// The follower's subscription to one master's server feed.
struct Link {
    addr: String,
    sink: Arc<NodeSink>,
    state: LinkState,
}

#[derive(Clone, PartialEq, Eq)]
enum LinkState {
    /// Not confirmed yet, or lost.
    Down,
    Live,
    /// The node cannot track keys.
    Unsupported(String),
}

/// What a master's server feed calls: passes changes on, and tells the
/// follower whether this master vouches for it.
struct NodeSink {
    follower: Weak<Follower>,
    feed: Weak<ClusterFeed>,
}

impl ClusterFeed {
    pub(super) fn new(router: &Arc<Router>) -> Arc<ClusterFeed> {
        Arc::new_cyclic(|me| ClusterFeed {
            me: me.clone(),
            router: Arc::downgrade(router),
            state: Mutex::new(State::default()),
            wake: std::sync::Mutex::new(false),
            woken: Condvar::new(),
        })
    }

    /// The handle a cache subscribes to.
    pub(super) fn handle(self: &Arc<Self>) -> InvalidationFeed {
        InvalidationFeed::new(self.clone())
    }

    /// Whether any cache follows the cluster (cheap: no subscription work
    /// when none does).
    pub(super) fn followed(&self) -> bool {
        !self.state.lock().followers.is_empty()
    }

    fn wake(&self) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.woken.notify_one();
    }

    /// Align every follower with the current topology's masters: track the
    /// new ones (the follower is suspended until they confirm), drop the
    /// ones that left. Called when a topology is installed, and by the
    /// feed's thread.
    pub(super) fn sync(&self) {
        let Some(router) = self.router.upgrade() else {
            return;
        };
        let masters: Option<Vec<Arc<Node>>> = router.current().map(|t| t.serving());
        let followers: Vec<Arc<Follower>> = {
            let mut state = self.state.lock();
            state.followers.retain(|f| f.sink.strong_count() > 0);
            state.followers.clone()
        };
        for f in followers {
            for (node, sink) in f.align(masters.as_deref(), &self.me) {
                ServerFeed::feed(&node.redis.target).follow(&f.prefix, sink);
            }
        }
    }

    /// The feed's thread: prunes followers whose cache is gone, discovers
    /// the cluster when no topology is known yet, reads the slot map again
    /// while a node's channel is down, and aligns the followers. It ends
    /// when no follower is left.
    fn run(self: Arc<Self>) {
        let now = std::time::Instant::now();
        let mut last_refresh = now.checked_sub(REFRESH_WHILE_DOWN).unwrap_or(now);
        loop {
            {
                let guard = self.wake.lock().unwrap_or_else(|e| e.into_inner());
                let (mut woken, _) = self
                    .woken
                    .wait_timeout_while(guard, TICK, |w| !*w)
                    .unwrap_or_else(|e| e.into_inner());
                *woken = false;
            }
            let router = {
                let mut state = self.state.lock();
                state.followers.retain(|f| f.sink.strong_count() > 0);
                let router = self.router.upgrade();
                if state.followers.is_empty() || router.is_none() {
                    state.running = false;
                    // Dropping the links ends the node feeds' subscriptions.
                    state.followers.clear();
                    return;
                }
                router
            };
            let Some(router) = router else { return };
            if self.any_down() && last_refresh.elapsed() >= REFRESH_WHILE_DOWN {
                last_refresh = std::time::Instant::now();
                if router.current().is_none() {
                    // The first map (rate-limited inside, shared with the
                    // calls): once found it is installed, which syncs.
                    let _ = router.topology();
                } else {
                    router.refresh_now();
                }
            }
            self.sync();
        }
    }

    /// Whether some follower waits for a node's channel.
    fn any_down(&self) -> bool {
        let followers = self.state.lock().followers.clone();
        followers.iter().any(|f| {
            let links = f.links.lock();
            !links.known || links.nodes.iter().any(|l| l.state == LinkState::Down)
        })
    }
}

impl Source for ClusterFeed {
    fn describe(&self) -> String {
        match self.router.upgrade() {
            Some(r) => format!("the masters of the cluster of {:?}", r.seeds()),
            None => "a cluster that is gone".into(),
        }
    }

    /// The sink is suspended at once, and resumed once every master of the
    /// cluster confirms tracking.
    fn follow(&self, prefix: &str, sink: Weak<dyn InvalidationSink>) {
        let Some(live) = sink.upgrade() else {
            return;
        };
        live.suspend();
        let follower = Arc::new(Follower {
            prefix: prefix.to_owned(),
            sink,
            links: Mutex::new(Links::default()),
        });
        let start = {
            let mut state = self.state.lock();
            state.followers.push(follower);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let Some(me) = self.me.upgrade() else { return };
            let spawned = std::thread::Builder::new()
                .name("cachefn-cluster-invalidations".into())
                .spawn(move || me.run());
            if spawned.is_err() {
                self.state.lock().running = false;
                live.resume();
                live.unsupported("no thread could be started");
                return;
            }
        }
        self.sync();
        self.wake();
    }
}

impl Follower {
    /// Make the links those of `masters` (`None`: no topology yet); the
    /// new links, to subscribe (outside the lock: a server feed calls its
    /// new follower at once).
    fn align(
        self: &Arc<Self>,
        masters: Option<&[Arc<Node>]>,
        feed: &Weak<ClusterFeed>,
    ) -> Vec<(Arc<Node>, Weak<dyn InvalidationSink>)> {
        let mut subscribe = Vec::new();
        let mut links = self.links.lock();
        if let Some(masters) = masters {
            links.known = true;
            links
                .nodes
                .retain(|l| masters.iter().any(|m| m.addr == l.addr));
            for m in masters {
                if links.nodes.iter().any(|l| l.addr == m.addr) {
                    continue;
                }
                let sink = Arc::new(NodeSink {
                    follower: Arc::downgrade(self),
                    feed: feed.clone(),
                });
                let weak: Weak<dyn InvalidationSink> = Arc::downgrade(&sink) as _;
                subscribe.push((m.clone(), weak));
                links.nodes.push(Link {
                    addr: m.addr.clone(),
                    sink,
                    state: LinkState::Down,
                });
            }
        }
        self.settle(&mut links);
        subscribe
    }

    /// Tell the sink whether it is live: every master's channel confirmed
    /// (or unable to track), under the lock, so that two nodes' threads
    /// cannot reorder a suspend and a resume.
    fn settle(&self, links: &mut Links) {
        let Some(sink) = self.sink.upgrade() else {
            return;
        };
        let live = links.known
            && !links.nodes.is_empty()
            && links.nodes.iter().all(|l| l.state != LinkState::Down);
        if live && !links.resumed {
            links.resumed = true;
            sink.resume();
        } else if !live && links.resumed {
            links.resumed = false;
            sink.suspend();
        }
        if live && !links.told_unsupported {
            let why = links.nodes.iter().find_map(|l| match &l.state {
                LinkState::Unsupported(why) => Some(why.clone()),
                _ => None,
            });
            if let Some(why) = why {
                links.told_unsupported = true;
                sink.unsupported(&why);
            }
        }
    }

    /// The link `sink` belongs to is now in `state`.
    fn set(&self, sink: &NodeSink, state: LinkState) {
        let mut links = self.links.lock();
        let Some(link) = links
            .nodes
            .iter_mut()
            .find(|l| std::ptr::eq(Arc::as_ptr(&l.sink), sink))
        else {
            // A link that was dropped (its master left): nothing to say.
            return;
        };
        if let (LinkState::Unsupported(_), LinkState::Live) = (&link.state, &state) {
            // A server feed resumes, then reports unsupported: keep the reason.
            return;
        }
        link.state = state;
        self.settle(&mut links);
    }
}

impl InvalidationSink for NodeSink {
    fn invalidate(&self, key: &str) {
        if let Some(s) = self.follower.upgrade().and_then(|f| f.sink.upgrade()) {
            s.invalidate(key);
        }
    }

    /// A check is read on this master's own feed connection: the master
    /// that reported the change holds the key (a key whose slot moved
    /// meanwhile answers `MOVED`: unknown, so the copy is dropped).
    fn changed(&self, key: &str) -> Verdict {
        match self.follower.upgrade().and_then(|f| f.sink.upgrade()) {
            Some(s) => s.changed(key),
            None => Verdict::Done,
        }
    }

    fn current(&self, key: &str, value: Current<'_>) -> Verdict {
        match self.follower.upgrade().and_then(|f| f.sink.upgrade()) {
            Some(s) => s.current(key, value),
            None => Verdict::Done,
        }
    }

    fn flush(&self) {
        if let Some(s) = self.follower.upgrade().and_then(|f| f.sink.upgrade()) {
            s.flush();
        }
    }

    fn suspend(&self) {
        if let Some(f) = self.follower.upgrade() {
            f.set(self, LinkState::Down);
        }
        // Find a promoted replica soon.
        if let Some(feed) = self.feed.upgrade() {
            feed.wake();
        }
    }

    fn resume(&self) {
        if let Some(f) = self.follower.upgrade() {
            f.set(self, LinkState::Live);
        }
    }

    fn unsupported(&self, why: &str) {
        if let Some(f) = self.follower.upgrade() {
            f.set(self, LinkState::Unsupported(why.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Redis;

    /// A cache's sink that records what it was told.
    #[derive(Default)]
    struct Probe(Mutex<Vec<String>>);

    impl Probe {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock())
        }
    }

    impl InvalidationSink for Probe {
        fn invalidate(&self, key: &str) {
            self.0.lock().push(format!("invalidate {key}"));
        }
        fn flush(&self) {
            self.0.lock().push("flush".into());
        }
        fn suspend(&self) {
            self.0.lock().push("suspend".into());
        }
        fn resume(&self) {
            self.0.lock().push("resume".into());
        }
        fn unsupported(&self, why: &str) {
            self.0.lock().push(format!("unsupported: {why}"));
        }
    }

    fn node(port: u16) -> Arc<Node> {
        let addr = format!("127.0.0.1:{port}");
        let redis = Redis::open(&format!("redis://{addr}")).unwrap();
        Arc::new(Node { addr, redis })
    }

    type Subscriptions = Vec<(Arc<Node>, Weak<dyn InvalidationSink>)>;

    fn sink(subs: &Subscriptions, i: usize) -> Arc<dyn InvalidationSink> {
        subs[i].1.upgrade().expect("a live link")
    }

    #[test]
    fn a_follower_is_live_only_while_every_master_vouches_for_it() {
        let probe = Arc::new(Probe::default());
        let weak: Weak<dyn InvalidationSink> = Arc::downgrade(&probe) as _;
        let follower = Arc::new(Follower {
            prefix: "p".into(),
            sink: weak,
            links: Mutex::new(Links::default()),
        });
        let feed = Weak::new();
        let (a, b, c) = (node(1), node(2), node(3));

        // No topology yet: nothing to subscribe, not live.
        assert!(follower.align(None, &feed).is_empty());
        assert!(probe.take().is_empty());

        // Live once both masters confirm.
        let subs = follower.align(Some(&[a.clone(), b.clone()]), &feed);
        assert_eq!(subs.len(), 2);
        sink(&subs, 0).resume();
        assert!(probe.take().is_empty(), "one master is not enough");
        sink(&subs, 1).resume();
        assert_eq!(probe.take(), ["resume"]);
        sink(&subs, 0).invalidate("k");
        sink(&subs, 1).flush();
        assert_eq!(probe.take(), ["invalidate k", "flush"]);

        // One channel lost: suspended until it is back.
        sink(&subs, 1).suspend();
        sink(&subs, 1).suspend();
        assert_eq!(probe.take(), ["suspend"]);
        sink(&subs, 1).resume();
        assert_eq!(probe.take(), ["resume"]);

        // A failover: b's slots go to c, which is not tracked yet.
        let again = follower.align(Some(&[a.clone(), b.clone()]), &feed);
        assert!(again.is_empty(), "the same masters: nothing new");
        let subs2 = follower.align(Some(&[a.clone(), c.clone()]), &feed);
        assert_eq!(subs2.len(), 1);
        assert_eq!(subs2[0].0.addr, c.addr);
        assert_eq!(probe.take(), ["suspend"]);
        assert!(subs[1].1.upgrade().is_none(), "b's link is dropped");
        sink(&subs2, 0).resume();
        assert_eq!(probe.take(), ["resume"]);

        // A master that cannot track: resumed, told once.
        let subs3 = follower.align(Some(&[a.clone(), c.clone(), b.clone()]), &feed);
        assert_eq!(probe.take(), ["suspend"]);
        sink(&subs3, 0).resume();
        sink(&subs3, 0).unsupported("no RESP3");
        assert_eq!(probe.take(), ["resume", "unsupported: no RESP3"]);
        sink(&subs, 0).suspend();
        sink(&subs, 0).resume();
        assert_eq!(probe.take(), ["suspend", "resume"], "told once");
    }
}
