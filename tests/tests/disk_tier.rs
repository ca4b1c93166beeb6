//! The `Disk` tier: persistence, bounds, expiry, bad input, and several
//! processes at once, including writers killed with SIGKILL mid-write.
//!
//! Tests that need other processes run this test binary again as a child
//! (`--exact <test name>`, with `CACHEFN_DISK_CHILD` naming what to do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use cachefn::backends::{Backend, Disk, Memory};
use cachefn::{quickcache, Cache, Error};
use cachefn_tests::Runs;

const MIN: Duration = Duration::from_secs(60);

// --- helpers -------------------------------------------------------------

/// Entry files (`*.cfn` in the shard directories) and their total size.
fn entry_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(root).unwrap() {
        let shard = shard.unwrap().path();
        let name = shard.file_name().unwrap().to_str().unwrap().to_owned();
        if !shard.is_dir() || name.len() != 2 {
            continue;
        }
        for f in std::fs::read_dir(&shard).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_str().unwrap().ends_with(".cfn") {
                out.push((f.path(), f.metadata().unwrap().len()));
            }
        }
    }
    out
}

/// Temporary files left in the shard directories.
fn temp_files(root: &Path) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(root).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() && shard.file_name().unwrap().len() == 2 {
            n += std::fs::read_dir(&shard)
                .unwrap()
                .filter(|f| {
                    f.as_ref()
                        .unwrap()
                        .file_name()
                        .to_str()
                        .unwrap()
                        .ends_with(".tmp")
                })
                .count();
        }
    }
    n
}

/// The single entry file of a directory holding one entry.
fn only_file(root: &Path) -> PathBuf {
    let files = entry_files(root);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].0.clone()
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// A small xorshift generator: the tests need no `rand`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A value that names its key and variant and whose every byte follows from
/// them, so any read can be checked exactly.
fn value_for(key: &str, variant: u64, len: usize) -> Vec<u8> {
    let seed = key
        .bytes()
        .fold(variant, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut v = format!("{key}|{variant}|{len}|").into_bytes();
    v.extend((0..len).map(|i| ((i as u64).wrapping_mul(131).wrapping_add(seed) % 251) as u8));
    v
}

/// `true` when `bytes` is exactly some `value_for(key, _, _)`.
fn is_right(key: &str, bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    let mut parts = text.splitn(4, '|');
    let (Some(k), Some(variant), Some(len)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(variant), Ok(len)) = (variant.parse::<u64>(), len.parse::<usize>()) else {
        return false;
    };
    k == key && bytes == value_for(key, variant, len).as_slice()
}

/// The mode this process runs in when it is a child.
fn child_mode() -> Option<(String, PathBuf)> {
    let mode = std::env::var("CACHEFN_DISK_CHILD").ok()?;
    let dir = std::env::var("CACHEFN_DISK_DIR").expect("CACHEFN_DISK_DIR");
    Some((mode, PathBuf::from(dir)))
}

/// Start this test binary again as a child running `test` in `mode`.
fn spawn_child(test: &str, mode: &str, dir: &Path, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("CACHEFN_DISK_CHILD", mode)
        .env("CACHEFN_DISK_DIR", dir)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run a child process")
}

/// Wait for a child and return what it printed after `CHILD `.
fn child_output(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, r)| r.to_owned()))
        .unwrap_or_default()
}

fn run_child(test: &str, mode: &str, dir: &Path) -> String {
    child_output(spawn_child(test, mode, dir, Stdio::piped()))
}

// --- one process ---------------------------------------------------------

#[test]
fn entries_survive_dropping_and_reopening_and_a_new_process() {
    if let Some((mode, dir)) = child_mode() {
        assert_eq!(mode, "read");
        let disk = Disk::open(&dir).unwrap();
        let v = disk.get("persist:big").unwrap().unwrap();
        println!("\nCHILD right={}", is_right("persist:big", &v));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let big = value_for("persist:big", 1, 300_000);
    {
        let disk = Disk::open(tmp.path()).unwrap();
        disk.set("persist:a", b"alpha", MIN).unwrap();
        disk.set("persist:big", &big, Duration::ZERO).unwrap();
        assert_eq!(disk.incr("persist:n", 41).unwrap(), 41);
    }
    let disk = Disk::open(tmp.path()).unwrap();
    assert_eq!(disk.get("persist:a").unwrap(), Some(b"alpha".to_vec()));
    assert_eq!(disk.get("persist:big").unwrap(), Some(big));
    assert_eq!(disk.incr("persist:n", 1).unwrap(), 42);
    assert_eq!(
        run_child(
            "entries_survive_dropping_and_reopening_and_a_new_process",
            "read",
            tmp.path()
        ),
        "right=true"
    );
}

#[test]
fn ttl_is_honoured_and_expired_entries_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::open(tmp.path()).unwrap();
    let ttl = Duration::from_secs(1);
    let past_it = || std::thread::sleep(Duration::from_millis(1300));
    disk.set("ttl:short", b"s", ttl).unwrap();
    disk.set("ttl:unread", b"u", ttl).unwrap();
    disk.set("ttl:forever", b"f", Duration::ZERO).unwrap();
    disk.set("ttl:long", b"l", MIN).unwrap();
    disk.set("ttl:count", b"1", ttl).unwrap();
    assert_eq!(disk.get("ttl:short").unwrap(), Some(b"s".to_vec()));
    // A counter keeps its expiry.
    assert_eq!(disk.incr("ttl:count", 1).unwrap(), 2);
    assert_eq!(entry_files(tmp.path()).len(), 5);
    past_it();

    assert_eq!(disk.get("ttl:short").unwrap(), None);
    assert!(!disk.has("ttl:short").unwrap());
    assert_eq!(disk.get("ttl:count").unwrap(), None);
    assert_eq!(entry_files(tmp.path()).len(), 3, "the reads removed them");
    // An expired entry is not "deleted", and can be added again.
    assert!(!disk.delete("ttl:unread").unwrap());
    disk.set("ttl:unread", b"u", ttl).unwrap();
    past_it();
    assert!(disk.add("ttl:unread", b"again", ttl).unwrap());
    past_it();

    // A sweep removes expired entries that nobody reads.
    assert_eq!(entry_files(tmp.path()).len(), 3);
    let usage = disk.sweep().unwrap();
    assert_eq!((usage.entries, usage.evicted), (2, 0));
    assert_eq!(entry_files(tmp.path()).len(), 2);
    assert_eq!(disk.get("ttl:forever").unwrap(), Some(b"f".to_vec()));
    assert_eq!(disk.get("ttl:long").unwrap(), Some(b"l".to_vec()));
}

#[test]
fn entries_stay_bounded_and_the_least_recently_used_go_first() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::builder(tmp.path()).max_entries(20).build().unwrap();
    for i in 0..20 {
        disk.set(&format!("lru:{i}"), b"v", Duration::ZERO).unwrap();
    }
    assert_eq!(entry_files(tmp.path()).len(), 20);
    // Make 0..10 an hour old and 10..20 half an hour old, then read 0..5.
    let now = SystemTime::now();
    for i in 0..20 {
        let age = if i < 10 { 3600 } else { 1800 };
        let path = Location::of(&disk, &format!("lru:{i}"));
        set_mtime(&path, now - Duration::from_secs(age));
    }
    for i in 0..5 {
        assert!(disk.get(&format!("lru:{i}")).unwrap().is_some());
    }
    // One more entry: over the limit, so a sweep evicts down to 90% (18),
    // oldest first: three of 5..10, which nobody read.
    disk.set("lru:new", b"v", Duration::ZERO).unwrap();
    assert_eq!(entry_files(tmp.path()).len(), 18);
    let gone: Vec<usize> = (0..20)
        .filter(|i| disk.get(&format!("lru:{i}")).unwrap().is_none())
        .collect();
    assert_eq!(gone.len(), 3, "{gone:?}");
    assert!(gone.iter().all(|i| (5..10).contains(i)), "{gone:?}");
    assert!(disk.has("lru:new").unwrap());

    // However much is written, the directory stays within the limit.
    for i in 0..400 {
        disk.set(&format!("more:{i}"), b"v", Duration::ZERO)
            .unwrap();
        let n = entry_files(tmp.path()).len();
        assert!(n <= 20, "{n} entries after write {i}");
    }
    let usage = disk.sweep().unwrap();
    assert!(usage.entries <= 20 && usage.entries >= 18, "{usage:?}");
}

/// Where the entry of `key` lives, found by writing nothing: the one file
/// whose contents name the key.
struct Location;

impl Location {
    fn of(disk: &Disk, key: &str) -> PathBuf {
        entry_files(disk.dir())
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| {
                let bytes = std::fs::read(p).unwrap();
                let key_len = u16::from_le_bytes([bytes[24], bytes[25]]) as usize;
                &bytes[36..36 + key_len] == key.as_bytes()
            })
            .unwrap_or_else(|| panic!("no file for {key}"))
    }
}

#[test]
fn bytes_stay_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 64 * 1024;
    let disk = Disk::builder(tmp.path()).max_bytes(limit).build().unwrap();
    let value = vec![7u8; 4096];
    for i in 0..300 {
        disk.set(&format!("bytes:{i}"), &value, Duration::ZERO)
            .unwrap();
        let total: u64 = entry_files(tmp.path()).iter().map(|(_, n)| n).sum();
        assert!(total <= limit, "{total} bytes after write {i}");
    }
    assert_eq!(
        disk.get("bytes:299").unwrap(),
        Some(value),
        "the newest entry stays"
    );
    // A value larger than the whole limit is stored, and evicted by the
    // sweep its own write starts; it never breaks the tier.
    disk.set("bytes:huge", &vec![1u8; 100_000], Duration::ZERO)
        .unwrap();
    let usage = disk.sweep().unwrap();
    assert!(usage.bytes <= limit, "{usage:?}");
}

#[test]
fn a_directory_that_cannot_be_used_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for bad in [
        file.join("cache"),
        file.clone(),
        PathBuf::from("/proc/cachefn-disk"),
    ] {
        let err = Disk::open(&bad).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Error::Backend {
                    backend: "disk",
                    ..
                }
            ) && text.contains("cannot use")
                && text.contains(&bad.display().to_string()),
            "{text}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = tmp.path().join("read-only");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root may write anywhere: the case only exists for other users.
        if std::fs::write(ro.join("probe"), b"").is_err() {
            assert!(Disk::open(&ro).is_err());
            assert!(Disk::open(ro.join("cache")).is_err());
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A key too long for the format is an error, not a panic.
    let disk = Disk::open(tmp.path().join("ok")).unwrap();
    assert!(disk.set(&"k".repeat(70_000), b"v", MIN).is_err());
}

#[test]
fn torn_and_foreign_files_read_as_misses_and_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let disk = Disk::open(root).unwrap();
    let value = value_for("torn", 0, 5000);

    // Truncated (a torn write after a power cut).
    disk.set("torn", &value, MIN).unwrap();
    let path = only_file(root);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(disk.get("torn").unwrap(), None);
    assert!(!path.exists(), "a torn file is removed");

    // Same length, different bytes.
    disk.set("torn", &value, MIN).unwrap();
    let mut garbage = bytes.clone();
    let last = garbage.len() - 1;
    garbage[last] ^= 1;
    std::fs::write(&path, &garbage).unwrap();
    assert_eq!(disk.get("torn").unwrap(), None);
    assert!(!path.exists());
    std::fs::write(&path, vec![0u8; 50]).unwrap();
    assert_eq!(disk.get("torn").unwrap(), None);
    assert!(!path.exists());

    // Another key's file in this key's place (a hash collision, or a file
    // copied in): a miss, and left alone for its own key.
    disk.set("mine", b"m", MIN).unwrap();
    let mine = only_file(root);
    disk.set("theirs", b"t", MIN).unwrap();
    let theirs = Location::of(&disk, "theirs");
    std::fs::copy(&mine, &theirs).unwrap();
    assert_eq!(disk.get("theirs").unwrap(), None);
    assert!(!disk.delete("theirs").unwrap());
    assert!(theirs.exists());
    assert_eq!(disk.get("mine").unwrap(), Some(b"m".to_vec()));
    disk.set("theirs", b"t2", MIN).unwrap();
    assert_eq!(disk.get("theirs").unwrap(), Some(b"t2".to_vec()));

    // A sweep removes garbage with an entry's name, and nothing that is not ours.
    let shard = root.join("00");
    std::fs::create_dir_all(&shard).unwrap();
    let fake = shard.join(format!("{}.cfn", "0".repeat(30)));
    std::fs::write(&fake, b"garbage").unwrap();
    std::fs::write(shard.join("README"), b"keep me").unwrap();
    std::fs::write(root.join("notes.txt"), b"keep me").unwrap();
    assert_eq!(disk.sweep().unwrap().entries, 2);
    assert!(!fake.exists());
    assert!(shard.join("README").exists() && root.join("notes.txt").exists());
    disk.clear_prefix("").unwrap();
    assert!(shard.join("README").exists() && root.join("notes.txt").exists());
    assert!(entry_files(root).is_empty());
}

#[test]
fn clear_prefix_removes_only_keys_with_that_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::open(tmp.path()).unwrap();
    let keys = [
        "app:a:1", "app:a:2", "app:ab:1", "app:b:1", "APP:a:1", "xapp:a:1",
    ];
    for k in keys {
        disk.set(k, k.as_bytes(), MIN).unwrap();
    }
    disk.clear_prefix("app:a:").unwrap();
    let left: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| disk.get(k).unwrap().is_some())
        .collect();
    assert_eq!(left, ["app:ab:1", "app:b:1", "APP:a:1", "xapp:a:1"]);
    disk.clear_prefix("app:").unwrap();
    assert_eq!(entry_files(tmp.path()).len(), 2);
}

#[test]
fn add_is_atomic_across_threads_and_incr_counts_every_call() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::open(tmp.path()).unwrap();
    let threads = 8;
    let keys = 100;
    let barrier = Barrier::new(threads);
    let wins: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (disk, barrier) = (&disk, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut won = Vec::new();
                    for k in 0..keys {
                        if disk
                            .add(&format!("add:{k}"), t.to_string().as_bytes(), MIN)
                            .unwrap()
                        {
                            won.push(k);
                        }
                        disk.incr("add:counter", 1).unwrap();
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for k in 0..keys {
        let winners: Vec<usize> = (0..threads).filter(|t| wins[*t].contains(&k)).collect();
        assert_eq!(winners.len(), 1, "key {k}: {winners:?}");
        assert_eq!(
            disk.get(&format!("add:{k}")).unwrap(),
            Some(winners[0].to_string().into_bytes())
        );
    }
    assert_eq!(
        disk.incr("add:counter", 0).unwrap(),
        (threads * keys) as i64
    );
}

// --- several processes ---------------------------------------------------

const RACE_KEYS: usize = 60;
const INCRS: i64 = 150;

#[test]
fn processes_share_one_directory_with_atomic_add_and_incr() {
    const TEST: &str = "processes_share_one_directory_with_atomic_add_and_incr";
    if let Some((mode, dir)) = child_mode() {
        assert_eq!(mode, "share");
        let disk = Disk::builder(&dir).max_entries(1000).build().unwrap();
        // Start together: wait for the parent's go file.
        while !dir.join("go").exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let me = std::process::id();
        let mut won = Vec::new();
        let mut rng = Rng::seeded();
        for i in 0..INCRS {
            disk.incr("share:counter", 1).unwrap();
            let k = i as usize % RACE_KEYS;
            if disk
                .add(&format!("share:race:{k}"), me.to_string().as_bytes(), MIN)
                .unwrap()
            {
                won.push(k);
            }
            let key = format!("share:v:{}", rng.below(10));
            disk.set(
                &key,
                &value_for(&key, me as u64, rng.below(20_000) as usize),
                MIN,
            )
            .unwrap();
            let key = format!("share:v:{}", rng.below(10));
            if let Some(v) = disk.get(&key).unwrap() {
                assert!(is_right(&key, &v), "a wrong value under {key}");
            }
        }
        let won: Vec<String> = won.iter().map(|k| k.to_string()).collect();
        println!("\nCHILD {me} {}", won.join(","));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::open(tmp.path()).unwrap();
    let children: Vec<Child> = (0..4)
        .map(|_| spawn_child(TEST, "share", tmp.path(), Stdio::piped()))
        .collect();
    std::fs::write(tmp.path().join("go"), b"").unwrap();
    let mut owner: BTreeMap<usize, String> = BTreeMap::new();
    for child in children {
        let out = child_output(child);
        let (pid, won) = out.split_once(' ').unwrap();
        for k in won.split(',').filter(|s| !s.is_empty()) {
            let k: usize = k.parse().unwrap();
            assert!(
                owner.insert(k, pid.to_owned()).is_none(),
                "key {k} added twice"
            );
        }
    }
    assert_eq!(
        owner.keys().copied().collect::<Vec<_>>(),
        (0..RACE_KEYS).collect::<Vec<_>>(),
        "every key added exactly once"
    );
    for (k, pid) in &owner {
        assert_eq!(
            disk.get(&format!("share:race:{k}")).unwrap(),
            Some(pid.clone().into_bytes())
        );
    }
    assert_eq!(disk.incr("share:counter", 0).unwrap(), 4 * INCRS);
}

/// Keys the crash test's writers use.
const CRASH_KEYS: u64 = 48;

/// The crash test's limits: small, so that sweeps and evictions run (and
/// get killed) too.
const CRASH_MAX_ENTRIES: u64 = 30;
const CRASH_MAX_BYTES: u64 = 3 << 20;

fn crash_disk(dir: &Path) -> Disk {
    Disk::builder(dir)
        .max_entries(CRASH_MAX_ENTRIES)
        .max_bytes(CRASH_MAX_BYTES)
        .build()
        .unwrap()
}

fn crash_writer(dir: &Path) -> ! {
    let disk = crash_disk(dir);
    let mut rng = Rng::seeded();
    loop {
        let key = format!("crash:{}", rng.below(CRASH_KEYS));
        let len = match rng.below(4) {
            0 => rng.below(100),
            1 => rng.below(10_000),
            _ => rng.below(300_000),
        } as usize;
        let ttl = match rng.below(4) {
            0 => Duration::from_millis(30),
            1 => Duration::ZERO,
            _ => MIN,
        };
        let value = value_for(&key, rng.next() % 1000, len);
        let _ = match rng.below(10) {
            0..=5 => disk.set(&key, &value, ttl).map(drop),
            6 => disk.add(&key, &value, ttl).map(drop),
            7 => disk.delete(&key).map(drop),
            8 => disk
                .incr(&format!("crash:counter:{}", rng.below(3)), 1)
                .map(drop),
            _ => disk.clear_prefix(&format!("crash:{}", rng.below(5))),
        };
    }
}

/// Read every key while the writers run; print how many reads were wrong.
fn crash_reader(dir: &Path) {
    let disk = Disk::open(dir).unwrap();
    let mut rng = Rng::seeded();
    let (mut reads, mut hits, mut wrong) = (0u64, 0u64, 0u64);
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        let key = format!("crash:{}", rng.below(CRASH_KEYS));
        reads += 1;
        if let Some(v) = disk.get(&key).unwrap() {
            hits += 1;
            if !is_right(&key, &v) {
                wrong += 1;
            }
        }
    }
    println!("\nCHILD reads={reads} hits={hits} wrong={wrong}");
}

#[test]
fn writers_killed_with_sigkill_never_leave_a_wrong_entry() {
    const TEST: &str = "writers_killed_with_sigkill_never_leave_a_wrong_entry";
    if let Some((mode, dir)) = child_mode() {
        match mode.as_str() {
            "write" => crash_writer(&dir),
            "read" => crash_reader(&dir),
            _ => unreachable!(),
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = Rng::seeded();
    let (mut checked, mut present, mut debris) = (0u64, 0u64, 0usize);
    // Reads during the writes that found a value: "no wrong value" means
    // something only if values were read.
    let mut hits_during_writes = 0u64;
    for round in 0..20 {
        let writers: Vec<Child> = (0..3)
            .map(|_| spawn_child(TEST, "write", dir, Stdio::null()))
            .collect();
        let reader = spawn_child(TEST, "read", dir, Stdio::piped());
        for mut w in writers {
            // Kill each writer at a random moment, in the middle of whatever it does.
            std::thread::sleep(Duration::from_millis(30 + rng.below(150)));
            w.kill().unwrap(); // SIGKILL
            let status = w.wait().unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.signal(),
                    Some(9),
                    "round {round}: a writer stopped by itself: {status}"
                );
            }
        }
        let out = child_output(reader);
        let count = |what: &str| -> u64 {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(what)?.strip_prefix('='))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("round {round}: no {what} in the reader's {out:?}"))
        };
        assert_eq!(
            count("wrong"),
            0,
            "round {round}: reads during the writes: {out}"
        );
        hits_during_writes += count("hits");

        // Several writers keep the directory near its bounds (each sweeps
        // when its own estimate passes them).
        let files = entry_files(dir);
        assert!(
            files.len() as u64 <= 2 * CRASH_MAX_ENTRIES,
            "round {round}: {} entries",
            files.len()
        );
        // Every entry left behind is exactly right, or absent.
        let disk = crash_disk(dir);
        debris = temp_files(dir);
        for k in 0..CRASH_KEYS {
            let key = format!("crash:{k}");
            checked += 1;
            if let Some(v) = disk.get(&key).unwrap() {
                present += 1;
                assert!(
                    is_right(&key, &v),
                    "round {round}: a wrong value under {key}"
                );
            }
        }
        for c in 0..3 {
            if let Some(v) = disk.get(&format!("crash:counter:{c}")).unwrap() {
                let n: i64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                assert!(n > 0, "round {round}: counter {c} = {n}");
            }
        }
        // A sweep reads every file on disk, whatever its key, and brings
        // the directory back within its limits.
        let usage = disk.sweep().unwrap();
        assert!(
            usage.entries <= CRASH_MAX_ENTRIES && usage.bytes <= CRASH_MAX_BYTES,
            "round {round}: {usage:?}"
        );
    }
    eprintln!(
        "crash test: {hits_during_writes} values read during the writes, all right; \
         {checked} reads after kills, {present} present and right; \
         {debris} temporary files of killed writers left (swept 10 s after their death)"
    );
    assert!(
        present > 0,
        "the writers never stored anything: the test proves nothing"
    );
    // A few hundred a round on an idle machine; a reader that never found
    // a value while the writers ran proved nothing about those reads.
    assert!(
        hits_during_writes >= 20,
        "{hits_during_writes} values read during the writes in 20 rounds: the test proves nothing"
    );
}

// --- the disk as a tier of a cache -----------------------------------------

static TIER_RUNS: Runs = Runs::new();

#[quickcache(cache = "disk-tiered", timeout = 60)]
fn rendered(id: u32) -> String {
    TIER_RUNS.hit();
    format!("page {id}")
}

fn tiered(dir: &Path) -> Cache {
    Cache::builder()
        .local(Memory::with_capacity(100))
        .shared(Disk::open(dir).unwrap())
        .prefix("dtier")
        .build()
}

#[test]
fn a_memoized_function_behind_a_local_tier_is_computed_once_across_processes() {
    const TEST: &str = "a_memoized_function_behind_a_local_tier_is_computed_once_across_processes";
    if let Some((mode, dir)) = child_mode() {
        cachefn::register("disk-tiered", tiered(&dir));
        match mode.as_str() {
            "read" => {
                let v = rendered(7);
                println!("\nCHILD runs={} value={v}", TIER_RUNS.get());
            }
            "clear" => {
                rendered::clear(7).unwrap();
                println!("\nCHILD cleared");
            }
            _ => unreachable!(),
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    cachefn::register("disk-tiered", tiered(tmp.path()));
    assert_eq!(rendered(7), "page 7");
    assert_eq!(rendered(7), "page 7");
    assert_eq!(TIER_RUNS.get(), 1);
    // Another process: served from the disk, its body never runs.
    assert_eq!(run_child(TEST, "read", tmp.path()), "runs=0 value=page 7");
    // A third clears it; the next process computes it again.
    assert_eq!(run_child(TEST, "clear", tmp.path()), "cleared");
    assert!(entry_files(tmp.path()).is_empty());
    assert_eq!(run_child(TEST, "read", tmp.path()), "runs=1 value=page 7");
    // That process stored it again for everyone.
    assert_eq!(run_child(TEST, "read", tmp.path()), "runs=0 value=page 7");
}

#[test]
fn the_disk_as_the_only_tier_with_the_typed_and_async_api() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::builder()
        .shared(Disk::open(tmp.path()).unwrap())
        .prefix("only")
        .build();
    cache
        .set("user:1", &("ada".to_string(), 36u32), MIN)
        .unwrap();
    assert_eq!(
        cache.get::<(String, u32)>("user:1"),
        Some(("ada".to_string(), 36))
    );
    assert_eq!(cache.get::<u64>("user:1"), None, "another type is a miss");
    assert!(!cache.add("user:1", &0u8, MIN).unwrap());
    assert_eq!(cache.incr("visits", 3).unwrap(), 3);
    assert_eq!(cache.decr("visits", 1).unwrap(), 2);
    assert_eq!(cache.get::<i64>("visits"), Some(2));
    let computed: u32 = cache.get_or_set("answer", MIN, || 42);
    assert_eq!(computed, 42);
    let stored: BTreeSet<String> = entry_files(tmp.path())
        .iter()
        .map(|(p, _)| {
            let bytes = std::fs::read(p).unwrap();
            let key_len = u16::from_le_bytes([bytes[24], bytes[25]]) as usize;
            String::from_utf8(bytes[36..36 + key_len].to_vec()).unwrap()
        })
        .collect();
    assert!(stored.iter().all(|k| k.starts_with("only:")), "{stored:?}");
    assert_eq!(stored.len(), 3);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        cache.set_async("a", &"x".to_string(), MIN).await.unwrap();
        assert_eq!(cache.get_async::<String>("a").await.as_deref(), Some("x"));
        assert_eq!(cache.incr_async("visits", 1).await.unwrap(), 3);
        assert!(cache.delete_async("a").await.unwrap());
        assert!(!cache.has_async("a").await);
    });
    cache.clear().unwrap();
    assert!(entry_files(tmp.path()).is_empty());
}

// --- privacy ---------------------------------------------------------------

/// Every directory and file under `root` (and `root`) with a mode other
/// than the private one (`0700` for a directory, `0600` for a file), and
/// how many files it checked.
#[cfg(unix)]
fn not_private(root: &Path) -> (Vec<String>, usize) {
    use std::os::unix::fs::PermissionsExt;
    let mut wrong = Vec::new();
    let mut files = 0;
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        files += usize::from(meta.is_file());
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            wrong.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            for item in std::fs::read_dir(&path).unwrap() {
                todo.push(item.unwrap().path());
            }
        }
    }
    (wrong, files)
}

/// The mode of `path`, as octal digits.
#[cfg(unix)]
fn mode_of(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    format!(
        "{:o}",
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    )
}

/// Under the usual umask (022, which leaves new files readable by every
/// local user), the tier still creates its directories `0700` and its files
/// `0600`, and takes other users' permissions off a directory that an
/// older version left open. Runs in a child process whose umask the shell
/// sets: the umask is process-wide, so this process's own stays untouched.
#[cfg(unix)]
#[test]
fn directories_and_files_are_private_whatever_the_umask() {
    const TEST: &str = "directories_and_files_are_private_whatever_the_umask";
    if let Some((mode, dir)) = child_mode() {
        assert_eq!(mode, "umask");
        // The umask is really 022: a plain file comes out readable by all.
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        assert_eq!(mode_of(&plain), "644");
        std::fs::remove_file(&plain).unwrap();

        // A new directory, with parents the tier creates too.
        let fresh = dir.join("new").join("parents").join("cache");
        let disk = Disk::builder(&fresh).max_entries(20).build().unwrap();
        for i in 0..40 {
            disk.set(&format!("page:{i}"), b"<p>secret</p>", MIN)
                .unwrap();
        }
        assert!(disk.add("added", b"a", MIN).unwrap());
        assert_eq!(disk.incr("counter", 2).unwrap(), 2);
        disk.set_many(&[("m:1", b"1"), ("m:2", b"2")], Duration::ZERO)
            .unwrap();
        disk.set("expiring", b"e", Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(disk.get("expiring").unwrap(), None);
        disk.sweep().unwrap();
        disk.clear_prefix("m:").unwrap();
        assert!(entry_files(&fresh).len() >= 10);

        // A directory an older version made with the umask's modes.
        let old = dir.join("old");
        std::fs::create_dir_all(old.join("ab")).unwrap();
        std::fs::create_dir_all(old.join("locks")).unwrap();
        assert_eq!(mode_of(&old.join("ab")), "755");
        let disk = Disk::open(&old).unwrap();
        for i in 0..40 {
            disk.set(&format!("page:{i}"), b"<p>secret</p>", MIN)
                .unwrap();
        }

        let (mut wrong, new_files) = not_private(&dir.join("new"));
        let (old_wrong, old_files) = not_private(&old);
        wrong.extend(old_wrong);
        // Entries, lock files and the CACHEDIR.TAG of both directories.
        assert!(new_files > 20 && old_files > 20, "{new_files} {old_files}");
        let shown = wrong.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        println!("\nCHILD {} not private: [{shown}]", wrong.len());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let child = Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env("CACHEFN_DISK_CHILD", "umask")
        .env("CACHEFN_DISK_DIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(child_output(child), "0 not private: []");
}
