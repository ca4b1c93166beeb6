//! `single_flight = "shared"` on a Redis Cluster: a cold key is computed
//! once across processes, and a killed holder is replaced once its lease
//! lapses.
//!
//! One cluster (six `redis-server` processes) for the whole file, its steps
//! run in turn; the processes are child processes of this test binary
//! (running [`child_entry`]), with a local tier over the cluster. Bodies
//! count their runs in the cluster (`INCR`), so the count covers every
//! process.
//!
//! A lease key is the value's stored key and `#lease`, with no hash tag: it
//! has its own slot, most often on another master than the value. The
//! steps use keys whose values live on every master and at least one whose
//! lease lives on another master than its value (read, then leased, step by
//! step), and a prefix with a hash tag (both in one slot: one script).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachefn::backends::{Backend, Memory, RedisCluster};
use cachefn::{quickcache, Cache};
use cachefn_tests::child::Runner;
use cachefn_tests::redis_cluster::RedisClusterServers;
use cachefn_tests::server_process::signal_process;
use cachefn_tests::started;

const CHILD_TEST: &str = "child_entry";
const MIN: Duration = Duration::from_secs(60);
/// How long a child may take to answer before the test fails (not hangs).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The cluster of this process's test (children: from the environment),
/// for counting runs and for the start signal.
static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();

fn cluster() -> &'static RedisCluster {
    CLUSTER.get().expect("the test's cluster")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for a child"))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a step's children and the test keep in the cluster, by step.
fn step_key(what: &str) -> String {
    format!("csf-{}:{what}", env("CSF_STEP"))
}

fn read_num(c: &RedisCluster, key: &str) -> i64 {
    c.get(key)
        .unwrap()
        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// A body run of `x`, counted in the cluster; its number (1 for the first
/// anywhere).
fn count_run(x: u64) -> i64 {
    let run = cluster().incr(&step_key(&format!("runs:{x}")), 1).unwrap();
    // The first run of a "kill" step says which process runs it, then
    // waits to be killed.
    if run == 1 && env("CSF_MODE") == "kill" {
        let pid = std::process::id().to_string();
        cluster()
            .set(&step_key("holder"), pid.as_bytes(), MIN)
            .unwrap();
        std::thread::sleep(Duration::from_secs(120));
    }
    std::thread::sleep(Duration::from_millis(env_num("CSF_BODY_MS", 1_500)));
    run
}

#[quickcache(cache = "csf", timeout = 600, single_flight = "shared")]
fn square(x: u64) -> u64 {
    count_run(x);
    x * x
}

#[quickcache(cache = "csf", timeout = 600, single_flight = "shared")]
async fn square_async(x: u64) -> u64 {
    let runs = step_key(&format!("runs:{x}"));
    cluster().incr_async(&runs, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(env_num("CSF_BODY_MS", 1_500))).await;
    x * x
}

/// The control: the same body, computed once per process.
#[quickcache(cache = "csf", timeout = 600, single_flight = "process")]
fn square_per_process(x: u64) -> u64 {
    count_run(x);
    x * x
}

/// A tiered cache over the cluster (the local tier gives waiters the
/// cluster's invalidation feed), its leases lasting `lease`.
fn tiered(urls: &[String], prefix: &str, lease: Duration) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(RedisCluster::open(urls).unwrap())
        .prefix(prefix)
        .lease_timeout(lease)
        .build()
}

fn ids_from(text: &str) -> Vec<u64> {
    text.split(',').map(|i| i.parse().unwrap()).collect()
}

/// What a caller answers: its values, in the order of the ids.
fn joined(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(":")
}

/// What a caller answers: the squares of `ids`, in their order.
fn expected(ids: &[u64]) -> String {
    joined(&ids.iter().map(|x| x * x).collect::<Vec<_>>())
}

/// A child's side: build the cache, say it is ready, wait for `go`, run
/// its callers (each over every id, starting at a different one, so that
/// the keys are cold at once), print `CHILD <each caller's answer>`.
#[test]
fn child_entry() {
    let Ok(urls) = std::env::var("CSF_URLS") else {
        return;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let c = CLUSTER.get_or_init(|| RedisCluster::open(&urls).unwrap());
    let mode = env("CSF_MODE");
    let ids = ids_from(&env("CSF_IDS"));
    let threads = env_num("CSF_THREADS", 8) as usize;
    let lease = Duration::from_millis(env_num("CSF_LEASE_MS", 1_000));
    cachefn::register("csf", tiered(&urls, &env("CSF_PREFIX"), lease));
    c.incr(&step_key("ready"), 1).unwrap();
    while !c.has(&step_key("go")).unwrap() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let answers: Vec<String> = if mode == "async" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..threads)
                .map(|t| {
                    let ids = ids.clone();
                    tokio::spawn(async move {
                        let mut values = vec![0; ids.len()];
                        for j in 0..ids.len() {
                            let at = (t + j) % ids.len();
                            values[at] = square_async(ids[at]).await;
                        }
                        joined(&values)
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for t in tasks {
                answers.push(t.await.unwrap());
            }
            answers
        })
    } else {
        std::thread::scope(|s| {
            let callers: Vec<_> = (0..threads)
                .map(|t| {
                    let (ids, mode) = (&ids, &mode);
                    s.spawn(move || {
                        let mut values = vec![0; ids.len()];
                        for j in 0..ids.len() {
                            let at = (t + j) % ids.len();
                            values[at] = match mode.as_str() {
                                "process" => square_per_process(ids[at]),
                                _ => square(ids[at]),
                            };
                        }
                        joined(&values)
                    })
                })
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).collect()
        })
    };
    println!("CHILD {}", answers.join(","));
}

/// One step: `n` children over `ids`, started at once.
struct Step {
    name: String,
    ids: Vec<u64>,
    children: Vec<Runner>,
}

impl Step {
    fn start(
        servers: &RedisClusterServers,
        name: &str,
        n: usize,
        ids: &[u64],
        env: &[(&str, &str)],
    ) -> Step {
        let c = cluster();
        let urls = servers.urls().join(",");
        let ids_text = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut all: Vec<(&str, &str)> = vec![
            ("CSF_URLS", &urls),
            ("CSF_STEP", name),
            ("CSF_PREFIX", name),
            ("CSF_IDS", &ids_text),
        ];
        all.extend_from_slice(env);
        let children: Vec<Runner> = (0..n).map(|_| Runner::spawn(CHILD_TEST, &all)).collect();
        let step = Step {
            name: name.to_owned(),
            ids: ids.to_vec(),
            children,
        };
        let start = Instant::now();
        while read_num(c, &step.key("ready")) < n as i64 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the children never got ready"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        c.set(&step.key("go"), b"1", MIN).unwrap();
        step
    }

    fn key(&self, what: &str) -> String {
        format!("csf-{}:{what}", self.name)
    }

    /// Body runs of `x` in every process.
    fn runs(&self, x: u64) -> i64 {
        read_num(cluster(), &self.key(&format!("runs:{x}")))
    }

    /// A child's answer: each of its `threads` callers got every square.
    fn expect_all(&self, answer: Option<String>, threads: usize) {
        let answer = answer.expect("a child ended without answering");
        let parts: Vec<&str> = answer.split(',').collect();
        assert_eq!(parts.len(), threads, "{answer}");
        let want = expected(&self.ids);
        assert!(parts.iter().all(|p| *p == want), "{answer}, not {want}");
    }
}

/// Ids of a function (its `key`) whose values (stored under `prefix`) live on every
/// master, and at least one of them with its lease on another master than
/// its value; with (value master, lease master) of each.
fn ids_over_every_master(
    servers: &RedisClusterServers,
    prefix: &str,
    masters: &[u16],
    key: fn(u64) -> cachefn::Key,
) -> Vec<(u64, u16, u16)> {
    let cache = Cache::builder()
        .shared(RedisCluster::open(&servers.urls()).unwrap())
        .prefix(prefix)
        .build();
    let mut picked: Vec<(u64, u16, u16)> = Vec::new();
    for x in 1..1_000u64 {
        let stored = cache.storage_key(key(x));
        let value = servers.master_of(&stored);
        let lease = servers.master_of(&format!("{stored}#lease"));
        let split = picked.iter().any(|p| p.1 != p.2);
        let new_master = !picked.iter().any(|p| p.1 == value);
        // The last master's id is taken only if it gives a split lease
        // when none is picked yet.
        if new_master && (picked.len() + 1 < masters.len() || split || value != lease) {
            picked.push((x, value, lease));
        }
        if picked.len() == masters.len() {
            return picked;
        }
    }
    panic!("no ids over every master: {picked:?}");
}

fn ids_of(picked: &[(u64, u16, u16)]) -> Vec<u64> {
    picked.iter().map(|p| p.0).collect()
}

/// One cluster: 4 processes x 8 threads (then x 8 async tasks) compute
/// cold keys on every master once (and, the control, once per process with
/// per-process single-flight), then a holder SIGKILLed mid-body is
/// replaced once its lease lapses.
#[test]
fn shared_single_flight_on_a_cluster_computes_once_and_survives_a_killed_holder() {
    let servers = started!(RedisClusterServers::start());
    let masters = servers.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    CLUSTER.get_or_init(|| RedisCluster::open(&servers.urls()).unwrap());

    // 4 x 8 callers on three cold keys, one per master. The body (1.5 s)
    // outlives the lease (1 s): the holders renew their leases on the
    // cluster.
    let picked = ids_over_every_master(&servers, "shared", &masters, square::key);
    eprintln!("(id, value's master, lease's master): {picked:?}");
    let ids = ids_of(&picked);
    let mut step = Step::start(&servers, "shared", 4, &ids, &[("CSF_MODE", "shared")]);
    for mut child in std::mem::take(&mut step.children) {
        step.expect_all(child.answer_within(ANSWER_WITHIN), 8);
    }
    for &(x, value, lease) in &picked {
        assert_eq!(
            step.runs(x),
            1,
            "{x} (value on {value}, lease on {lease}): one run across 4 processes"
        );
    }

    // A prefix with a hash tag: each value and its lease share a slot, so
    // the read and the lease are one script on the cluster.
    let mut step = Step::start(&servers, "{tagged}", 4, &[4, 5], &[("CSF_MODE", "shared")]);
    for mut child in std::mem::take(&mut step.children) {
        step.expect_all(child.answer_within(ANSWER_WITHIN), 8);
    }
    for x in [4, 5] {
        assert_eq!(step.runs(x), 1, "{x} under a tagged prefix");
    }

    // The same with async callers (8 tasks in each process).
    let picked = ids_over_every_master(&servers, "async", &masters, square_async::key);
    eprintln!("async (id, value's master, lease's master): {picked:?}");
    let mut step = Step::start(
        &servers,
        "async",
        4,
        &ids_of(&picked),
        &[("CSF_MODE", "async")],
    );
    for mut child in std::mem::take(&mut step.children) {
        step.expect_all(child.answer_within(ANSWER_WITHIN), 8);
    }
    for &(x, value, lease) in &picked {
        assert_eq!(
            step.runs(x),
            1,
            "async {x} (value on {value}, lease on {lease})"
        );
    }

    // The control: per-process single-flight computes once per process
    // (what the step above would see without the lease). The processes
    // start together, far less than the 1.5 s body apart: none finds
    // another's value stored.
    let mut step = Step::start(
        &servers,
        "process",
        4,
        &ids[..1],
        &[("CSF_MODE", "process")],
    );
    for mut child in std::mem::take(&mut step.children) {
        step.expect_all(child.answer_within(ANSWER_WITHIN), 8);
    }
    assert_eq!(step.runs(ids[0]), 4, "one run per process");

    // The holder SIGKILLed mid-body: its lease lapses (1 s), another
    // process takes it and computes; everyone else gets the value. A key
    // whose lease lives on another master than its value.
    let (x, value, lease) = *ids_over_every_master(&servers, "kill", &masters, square::key)
        .iter()
        .find(|p| p.1 != p.2)
        .unwrap();
    eprintln!("kill: id {x}, value on {value}, lease on {lease}");
    let start = Instant::now();
    let mut step = Step::start(
        &servers,
        "kill",
        4,
        &[x],
        &[("CSF_MODE", "kill"), ("CSF_BODY_MS", "300")],
    );
    let holder_key = step.key("holder");
    let holder: u32 = loop {
        if let Some(pid) = cluster().get(&holder_key).unwrap() {
            break String::from_utf8(pid).unwrap().parse().unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no holder");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(200));
    let killed_at = Instant::now();
    signal_process(holder, "-KILL");
    let mut answered = 0;
    for mut child in std::mem::take(&mut step.children) {
        if child.pid() == holder {
            assert_eq!(
                child.answer_within(ANSWER_WITHIN),
                None,
                "the killed process answered"
            );
            continue;
        }
        step.expect_all(child.answer_within(ANSWER_WITHIN), 8);
        answered += 1;
    }
    assert_eq!(answered, 3);
    assert_eq!(step.runs(x), 2, "the killed run and one more");
    // A 1 s lease, a 0.3 s body: generous slack for a loaded machine.
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "the others waited {:?}",
        killed_at.elapsed()
    );
}

// ----- fencing on a cluster: a holder that lost its lease does not store ----

/// The cluster of the fencing test (its own: the steps above have theirs).
static FENCED_CLUSTER: OnceLock<RedisCluster> = OnceLock::new();

/// The fencing test's cluster client: generous deadlines, as the machine
/// may run other clusters' tests at the same time.
fn patient(urls: &[String]) -> RedisCluster {
    RedisCluster::builder(urls)
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A tiered cache over the fencing test's cluster, leases of 300 ms.
fn fenced_tiered(urls: &[String]) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(patient(urls))
        .prefix("csff")
        .lease_timeout(Duration::from_millis(300))
        .build()
}

/// The first run anywhere says who runs it, then waits for `go`.
#[quickcache(cache = "csf-fenced", timeout = 600, single_flight = "shared")]
fn cfenced(x: u64) -> String {
    let c = FENCED_CLUSTER.get().expect("the fencing test's cluster");
    let run = c.incr("csf-fenced:runs", 1).unwrap();
    if run == 1 {
        let pid = std::process::id().to_string();
        c.set("csf-fenced:holder", pid.as_bytes(), MIN).unwrap();
        let start = Instant::now();
        while !c.has("csf-fenced:go").unwrap() {
            assert!(start.elapsed() < MIN, "never let go");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    format!("run{run} of {x}")
}

/// The holder's process: `cfenced(CSF_X)` once, then its answer.
#[test]
fn fenced_child_entry() {
    let Ok(urls) = std::env::var("CSF_FENCED_URLS") else {
        return;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    FENCED_CLUSTER.get_or_init(|| patient(&urls));
    cachefn::register("csf-fenced", fenced_tiered(&urls));
    println!("CHILD {}", cfenced(env("CSF_X").parse().unwrap()));
}

/// Where a cluster keeps the lease of the value stored under `stored`:
/// `stored#lease` when that shares its slot, else `stored{stored}#lease`.
fn lease_key(servers: &RedisClusterServers, stored: &str) -> String {
    let slot = |k: &str| -> u16 {
        servers
            .ask(servers.masters()[0], &["CLUSTER", "KEYSLOT", k])
            .expect("CLUSTER KEYSLOT")
    };
    let plain = format!("{stored}#lease");
    if slot(&plain) == slot(stored) {
        plain
    } else {
        format!("{stored}{{{stored}}}#lease")
    }
}

#[test]
fn a_cluster_holder_that_lost_its_lease_never_overwrites_a_newer_value() {
    let servers = started!(RedisClusterServers::start());
    let urls = servers.urls();
    let c = FENCED_CLUSTER.get_or_init(|| patient(&urls));
    let ttl = Duration::from_secs(60);

    // The primitives, on keys of every master, with and without a tag:
    // a lease shares its value's slot, so the fenced store is one script.
    for key in ["fp:a", "fp:b", "fp:c", "fp:d", "fp:e", "{fp}:f", "fp:{g=1}"] {
        let lease = format!("{key}#lease");
        assert!(c
            .lease_acquire(&lease, b"A", Duration::from_millis(100))
            .unwrap());
        let kept = lease_key(&servers, key);
        assert_eq!(servers.master_of(&kept), servers.master_of(key), "{key}");
        assert!(
            servers.keys(servers.master_of(key), &kept).contains(&kept),
            "{kept}"
        );
        // A's lease lapses; B takes over and stores; A's store is refused.
        std::thread::sleep(Duration::from_millis(150));
        assert!(c.lease_acquire(&lease, b"B", ttl).unwrap(), "{key}");
        assert!(
            c.store_leased(key, b"new", ttl, &lease, b"B").unwrap(),
            "{key}"
        );
        assert!(
            !c.store_leased(key, b"old", ttl, &lease, b"A").unwrap(),
            "{key}"
        );
        assert_eq!(c.get(key).unwrap().as_deref(), Some(&b"new"[..]), "{key}");
        assert!(!c.has(&kept).unwrap(), "{key}: the store gave the lease up");
    }

    // End to end: a holder process frozen past its lease (SIGSTOP) or whose
    // lease a clear removed; another process computes and stores; the
    // holder resumes and must not overwrite.
    let shared_view = Cache::builder()
        .shared(patient(&urls))
        .prefix("csff")
        .build();
    cachefn::register("csf-fenced", fenced_tiered(&urls));
    let joined_urls = urls.join(",");
    let mut overwritten = Vec::new();
    for (round, paused) in [(1u64, true), (2, false), (3, true), (4, false)] {
        for k in ["csf-fenced:runs", "csf-fenced:holder", "csf-fenced:go"] {
            c.delete(k).unwrap();
        }
        let stored = shared_view.storage_key(cfenced::key(round));
        let lease = lease_key(&servers, &stored);
        let x = round.to_string();
        let mut holder = Runner::spawn(
            "fenced_child_entry",
            &[
                ("CSF_FENCED_URLS", joined_urls.as_str()),
                ("CSF_X", x.as_str()),
            ],
        );
        let start = Instant::now();
        while !c.has("csf-fenced:holder").unwrap() {
            assert!(start.elapsed() < ANSWER_WITHIN, "no holder");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(c.has(&lease).unwrap(), "the holder's lease is {lease}");
        if paused {
            signal_process(holder.pid(), "-STOP");
            let start = Instant::now();
            while c.has(&lease).unwrap() {
                assert!(start.elapsed() < Duration::from_secs(10), "never lapsed");
                std::thread::sleep(Duration::from_millis(5));
            }
        } else {
            cfenced::clear_all().unwrap();
            assert!(!c.has(&lease).unwrap(), "clear_all removes the lease");
        }
        assert_eq!(cfenced(round), format!("run2 of {round}"));
        c.set("csf-fenced:go", b"1", MIN).unwrap();
        if paused {
            signal_process(holder.pid(), "-CONT");
        }
        let answer = holder.answer_within(ANSWER_WITHIN);
        assert_eq!(answer, Some(format!("run1 of {round}")));
        let now = shared_view.get::<String>(cfenced::key(round));
        if now != Some(format!("run2 of {round}")) {
            overwritten.push(format!("round {round} (paused: {paused}): {now:?}"));
        }
    }
    assert!(
        overwritten.is_empty(),
        "a holder that lost its lease overwrote the newer value: {overwritten:?}"
    );
}
