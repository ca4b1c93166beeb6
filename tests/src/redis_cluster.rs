//! A real Redis Cluster for tests: six `redis-server` processes on free
//! loopback ports (three masters, three replicas) joined with `redis-cli
//! --cluster create`; every process is killed and the directory of their
//! `nodes.conf` files removed on drop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server_process::{missing, skip, ServerProcess};

/// Six nodes of one cluster.
pub struct RedisClusterServers {
    nodes: Vec<ServerProcess>,
    dir: PathBuf,
}

/// A fresh directory under the system temp dir.
fn temp_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cachefn-cluster-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

impl RedisClusterServers {
    /// Start six nodes and join them into a cluster (three masters, one
    /// replica each) whose state is `ok` on every node; `None` (with a
    /// printed reason) when `redis-server` or `redis-cli` is not
    /// installed, except in CI, where that fails.
    pub fn start() -> Option<RedisClusterServers> {
        let cluster = Self::start_unformed()?;
        cluster.form();
        Some(cluster)
    }

    /// Start six cluster-enabled nodes that do not form a cluster yet
    /// (they serve no slot until [`form`](Self::form)).
    pub fn start_unformed() -> Option<RedisClusterServers> {
        for (program, arg) in [("redis-server", "--version"), ("redis-cli", "--version")] {
            if let Some(why) = missing(program, arg) {
                return skip(&format!(
                    "{why} (apt-get install -y redis-server redis-tools)"
                ));
            }
        }
        let dir = temp_dir();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let node_dir = dir.clone();
            let node = ServerProcess::start("redis-server (cluster)", move |port| {
                let dir = &node_dir;
                let conf = dir.join(format!("nodes-{port}.conf"));
                let mut cmd = Command::new("redis-server");
                cmd.args(["--port", &port.to_string()])
                    .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .args(["--protected-mode", "no"])
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", &conf.to_string_lossy()])
                    .args(["--cluster-node-timeout", "1000"])
                    .current_dir(dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                cmd
            });
            match node {
                Ok(node) => nodes.push(node),
                Err(why) => {
                    drop(nodes);
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("{why}");
                }
            }
        }
        Some(RedisClusterServers { nodes, dir })
    }

    /// Join the six nodes (`redis-cli --cluster create .. --cluster-replicas
    /// 1`) and wait until the cluster is `ok` and every replica in sync.
    pub fn form(&self) {
        let addrs: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            self.wait_ok(Duration::from_secs(30)),
            "the cluster did not reach cluster_state:ok"
        );
    }

    /// The ports of the nodes that run.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(ServerProcess::port).collect()
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// A plain redis-rs connection to one node, for checks behind the
    /// cache's back.
    pub fn raw(&self, port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("connect to node {port}: {e}"))
    }

    fn query(&self, port: u16, args: &[&str]) -> Option<String> {
        self.ask(port, args).ok()
    }

    /// One command to the node at `port` (a new connection), its reply or
    /// the error.
    pub fn ask<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut c = client.get_connection_with_timeout(Duration::from_millis(500))?;
        // Generous: a loaded machine (a CI run on two cores) can hold a
        // node's reply to an admin command for a few seconds.
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
    }

    /// The port of the master that serves `key`'s hash slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = self
            .ask(self.masters()[0], &["CLUSTER", "KEYSLOT", key])
            .expect("CLUSTER KEYSLOT");
        self.slot_owner(slot).expect("a master serves every slot")
    }

    /// The port of the master serving `slot`, as the first node that
    /// answers sees it.
    pub fn slot_owner(&self, slot: u16) -> Option<u16> {
        for port in self.ports() {
            let Some(text) = self.query(port, &["CLUSTER", "NODES"]) else {
                continue;
            };
            return text.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                    return None;
                }
                let serves = f[8..].iter().any(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                });
                serves.then(|| f[1].split('@').next()?.rsplit(':').next()?.parse().ok())?
            });
        }
        None
    }

    /// The ids of the clients of the node at `port` that track keys for
    /// the process `pid` (its invalidation connections, named
    /// `cachefn-invalidations-<pid>`).
    pub fn tracking_clients(&self, port: u16, pid: u32) -> Vec<String> {
        let list = self.query(port, &["CLIENT", "LIST"]).unwrap_or_default();
        crate::redis_server::tracking_client_ids(
            &list,
            Some(&format!("cachefn-invalidations-{pid}")),
        )
    }

    /// Start moving `slot` from the master at `from` to the master at `to`
    /// and move `keys` (all in that slot) there, leaving the slot half
    /// migrated: `from` answers `ASK` for the keys it no longer has, `to`
    /// answers `MOVED` to anyone who does not say `ASKING` first.
    pub fn migrate_partly(&self, slot: u16, from: u16, to: u16, keys: &[&str]) {
        let id = |port| -> String { self.ask(port, &["CLUSTER", "MYID"]).expect("CLUSTER MYID") };
        let (from_id, to_id) = (id(from), id(to));
        let slot = slot.to_string();
        let _: () = self
            .ask(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])
            .expect("SETSLOT IMPORTING");
        let _: () = self
            .ask(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])
            .expect("SETSLOT MIGRATING");
        let to_port = to.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
        args.extend_from_slice(keys);
        let _: () = self.ask(from, &args).expect("MIGRATE");
    }

    /// End a migration that [`migrate_partly`](Self::migrate_partly)
    /// began: every key left in `slot` moves to `to`, which then serves it
    /// (on every master).
    pub fn finish_migration(&self, slot: u16, from: u16, to: u16) {
        let slot_text = slot.to_string();
        let to_port = to.to_string();
        loop {
            let keys: Vec<String> = self
                .ask(from, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"])
                .expect("CLUSTER GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            let _: () = self.ask(from, &args).expect("MIGRATE");
        }
        let id: String = self.ask(to, &["CLUSTER", "MYID"]).expect("CLUSTER MYID");
        let slot = slot_text;
        for port in self.masters() {
            let _: () = self
                .ask(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &id])
                .expect("SETSLOT NODE");
        }
    }

    /// Ports of the masters that serve slots, as the first node that
    /// answers sees them, with their slot ranges.
    pub fn masters(&self) -> Vec<u16> {
        for port in self.ports() {
            if let Some(text) = self.query(port, &["CLUSTER", "NODES"]) {
                let mut masters: Vec<u16> = text
                    .lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let serving =
                            f.len() > 8 && f[2].contains("master") && !f[2].contains("fail");
                        let port = f
                            .get(1)?
                            .split('@')
                            .next()?
                            .rsplit(':')
                            .next()?
                            .parse()
                            .ok()?;
                        serving.then_some(port)
                    })
                    .collect();
                masters.sort_unstable();
                return masters;
            }
        }
        Vec::new()
    }

    /// The replica ports of each master port.
    pub fn replicas(&self) -> HashMap<u16, Vec<u16>> {
        let mut out: HashMap<u16, Vec<u16>> = HashMap::new();
        for port in self.ports() {
            if let Some(info) = self.query(port, &["INFO", "replication"]) {
                if info.contains("role:slave") {
                    if let Some(master) = info
                        .lines()
                        .find_map(|l| l.strip_prefix("master_port:"))
                        .and_then(|p| p.trim().parse().ok())
                    {
                        out.entry(master).or_default().push(port);
                    }
                }
            }
        }
        out
    }

    /// Wait until every running node says `cluster_state:ok`, three
    /// healthy masters serve every slot, and every replica is in sync.
    pub fn wait_ok(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let ok = self.ports().iter().all(|&port| {
                let state = self
                    .query(port, &["CLUSTER", "INFO"])
                    .is_some_and(|i| i.contains("cluster_state:ok"));
                let synced = self.query(port, &["INFO", "replication"]).is_some_and(|i| {
                    !i.contains("role:slave") || i.contains("master_link_status:up")
                });
                state && synced
            }) && self.masters().len() == 3;
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// SIGKILL the node on `port` (its data is gone); it stays down.
    pub fn kill(&mut self, port: u16) {
        let at = self
            .nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a node of this cluster");
        let mut node = self.nodes.remove(at);
        node.stop();
    }

    /// SIGSTOP the node on `port`: its port accepts connections, nothing
    /// answers (and the other nodes fail it over after the node timeout).
    pub fn freeze(&self, port: u16) {
        self.node(port).freeze();
    }

    /// SIGCONT the node on `port`.
    pub fn thaw(&self, port: u16) {
        self.node(port).thaw();
    }

    fn node(&self, port: u16) -> &ServerProcess {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("a node of this cluster")
    }

    /// Kill every node (they keep their ports for [`restart_all`](Self::restart_all)).
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Start every node again on its port (empty, not yet in a cluster).
    pub fn restart_all(&mut self) {
        for node in &mut self.nodes {
            // A node forgets nothing of its cluster in its nodes.conf: remove it.
            let _ = std::fs::remove_file(self.dir.join(format!("nodes-{}.conf", node.port())));
            node.restart();
        }
    }

    /// Calls per command on the node at `port` since its last
    /// `CONFIG RESETSTAT`, e.g. `{"mget": 2}`.
    pub fn command_calls(&self, port: u16) -> HashMap<String, u64> {
        let info = self
            .query(port, &["INFO", "commandstats"])
            .unwrap_or_default();
        crate::redis_server::parse_commandstats(&info)
    }

    /// Reads of client requests the node at `port` made since its last
    /// `CONFIG RESETSTAT` (`total_reads_processed`): one per round trip of
    /// a pipelined batch that arrives at once. The `INFO` that asks counts
    /// one.
    pub fn reads(&self, port: u16) -> u64 {
        self.query(port, &["INFO", "stats"])
            .and_then(|i| {
                i.lines()
                    .find_map(|l| l.strip_prefix("total_reads_processed:"))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(u64::MAX)
    }

    /// `CONFIG RESETSTAT` on every running node.
    pub fn reset_stats(&self) {
        for port in self.ports() {
            let _ = self.query(port, &["CONFIG", "RESETSTAT"]);
        }
    }

    /// Keys on the node at `port` (a test's handful: `KEYS` is fine here).
    pub fn keys(&self, port: u16, pattern: &str) -> Vec<String> {
        let mut c = self.raw(port);
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut c)
            .unwrap_or_default()
    }
}

impl Drop for RedisClusterServers {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
