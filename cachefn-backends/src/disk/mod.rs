//! The persistent disk tier (feature `disk`).
//!
//! - `format`: an entry's file name and bytes (header, checksum);
//! - `lock`: stripe and sweep locks across threads and processes (`flock`);
//! - `store`: the operations, bounds and expiry on one directory;
//! - `private`: the modes files and directories are created with.

mod format;
mod lock;
mod private;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Offloaded;
use crate::{Backend, Error};
use store::Store;

/// Default size limit of a [`Disk`] tier: 1 GiB of entry files.
const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Default entry limit of a [`Disk`] tier.
const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// Default number of I/O threads behind a [`Disk`] tier's `_async` methods.
const DEFAULT_IO_THREADS: usize = 4;

/// A persistent cache in a local directory: for large values, for results
/// that should survive a restart, and for several processes of one machine
/// sharing their results without a server.
///
/// It can be the shared tier behind the local one
/// (`Cache::builder().local(..).shared(Disk::open(dir)?)`) or the only tier.
///
/// # Guarantees
///
/// - **Persistent**: entries survive the process and a restart of it.
/// - **Never a wrong value**: a read returns exactly the bytes some `set`,
///   `add` or `incr` stored under that key, or `None`, even when writers
///   are killed (SIGKILL) at any instant, and even after a power cut (the
///   checksum, a 64-bit xxh3, turns a torn file into a miss).
/// - **Several processes at once**: any number of processes (and threads)
///   may open the same directory; `add` and `incr` are atomic across all of
///   them (on unix; see below).
/// - **Bounded**: by total bytes of entry files and by number of entries
///   ([`DiskBuilder::max_bytes`], [`DiskBuilder::max_entries`]); least
///   recently used entries are evicted first.
/// - **TTL**: an expired entry reads as `None` and is removed, by the read
///   that finds it or by the next sweep. `ttl == Duration::ZERO` never expires.
/// - **Private** (on unix): the cache directory, every directory the tier
///   creates (missing parents of the directory included) and its shard and
///   lock directories are `0700`, and every file it writes is `0600`, given
///   at creation whatever the process's umask: other local users can read
///   neither the values nor the keys (which name users' queries). A cache
///   directory that already exists with wider modes (made by hand, or by an
///   older version) is restricted when the tier opens it; one this process
///   cannot restrict (another user's) is an error. Off unix, files get
///   the permissions the platform gives new files there (on Windows, the
///   ACLs inherited from the parent directory).
/// - **No change feed**: behind a local tier, another process's write is
///   not reported to this one, so a local copy lives up to its local
///   lifetime (`local_timeout`). Only a Redis shared tier keeps local tiers
///   coherent (`CacheBuilder::invalidation`).
///
/// # How it works, and why not an embedded database
///
/// Every entry is one file, `<dir>/<2 hex>/<30 hex>.cfn`, named by a 128-bit
/// hash of the key (short, ASCII and case-safe names for any key). The file
/// holds a header (format magic, expiry, lengths), the full key and the
/// value, and a checksum of all three.
///
/// - **Writes** go to a temporary file in the same directory, which then
///   takes the entry's name in one atomic step (`rename`; on Linux, when an
///   entry is replaced, `renameat2(RENAME_EXCHANGE)` and removal of the old
///   file, which spares ext4 a forced write-back). A reader, or a process
///   that dies at any instant, sees the old file or the new one, never half
///   of one, and an entry file is never modified once in place. A writer
///   killed mid-write leaves only a temporary file, which no read ever
///   opens and sweeps remove.
/// - **Reads** take no lock: they open the file and check its length, magic,
///   key and checksum. Anything that does not check out (a file torn by a
///   power cut, truncated, or not ours) reads as `None` and is removed; a
///   file of another key (a hash collision) reads as `None`.
/// - **Writers of one entry are ordered** by a lock per share of the key
///   space: an in-process mutex plus an exclusive `flock(2)` on
///   `<dir>/locks/NN.lock`, so `add` (check, then store) and `incr` (read,
///   add, store) are atomic across threads and processes. The kernel
///   releases an `flock` when its holder dies, so a killed process never
///   leaves a lock behind.
///
/// Embedded stores were the other option, but [redb](https://docs.rs/redb)
/// and sled (which the `cached` crate's disk store uses) take an exclusive
/// lock on their database: a second process cannot open it at all, so one
/// database cannot be shared by the workers of a web server. Files renamed
/// into place need no owner process and no recovery step.
///
/// # Bounds and eviction
///
/// Each process keeps an estimate of the directory's size: the totals of its
/// last scan plus its own writes since. A write that takes the estimate over
/// a limit (and the first write of a process) runs a *sweep* in that call: a
/// scan of the directory that removes expired entries and crashed writers'
/// temporary files, then, if still over a limit, removes the least recently
/// used entries until both totals are at most 90% of their limits. Only one
/// thread or process sweeps at a time; the others skip it. Recency is the
/// file's modification time, which a read refreshes (at most once a second
/// per entry). With one writer the directory is within the limits whenever
/// a write returns; with several threads or processes writing at once it can
/// exceed them by what the others wrote since their last sweep (about a
/// tenth of the limits each) until the next sweep. A sweep reads every entry's header, so it costs
/// time in proportion to the number of entries; [`Disk::sweep`] runs one on
/// demand, for example from a maintenance thread.
///
/// # Durability
///
/// Without [`DiskBuilder::sync_writes`] (the default) writes are not
/// `fsync`ed: a killed process loses nothing it stored (the data is in the
/// kernel's page cache once a write returns), but a power cut or kernel
/// crash may lose the last few seconds of writes, or bring back the value an
/// entry had before them (a `clear` or refresh just before the cut). What is
/// read is still never a torn or mixed value. `sync_writes(true)` syncs every entry and
/// its directory before a write returns, at the cost of a disk flush per
/// write.
///
/// # Async
///
/// The `_async` methods run the same calls on a few I/O threads of this
/// tier ([`DiskBuilder::io_threads`], started on first use), so an executor
/// thread never waits on the disk; they work with any executor. A future
/// that is dropped does not cancel its call: a write still completes.
///
/// # Limits
///
/// - Keys of up to 65,535 bytes, any UTF-8 (the cache's keys are at most 250).
/// - Use a local filesystem: `flock` and `rename` are not reliable on every
///   network filesystem (NFS).
/// - On non-unix systems there is no `flock` here: one process at a time.
/// - Another process's *local* tier is not told about a change; it keeps its
///   copy until its `local_timeout`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Disk};
///
/// let dir = std::env::temp_dir().join(format!("cachefn-doc-disk-{}", std::process::id()));
/// let disk = Disk::open(&dir)?;
/// disk.set("page:1", b"<p>1</p>", Duration::from_secs(60))?;
/// assert_eq!(disk.get("page:1")?, Some(b"<p>1</p>".to_vec()));
///
/// // Another handle on the same directory (another process, or this one
/// // after a restart) sees the same entries.
/// drop(disk);
/// let again = Disk::open(&dir)?;
/// assert_eq!(again.get("page:1")?, Some(b"<p>1</p>".to_vec()));
/// assert!(!again.add("page:1", b"other", Duration::ZERO)?);
/// assert_eq!(again.incr("hits", 2)?, 2);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
#[derive(Clone)]
pub struct Disk {
    /// The directory's operations; their `_async` twins on I/O threads.
    store: Offloaded<Store>,
}

/// Options of a [`Disk`] tier; from [`Disk::builder`].
///
/// ```
/// use cachefn::backends::Disk;
///
/// let dir = std::env::temp_dir().join(format!("cachefn-doc-builder-{}", std::process::id()));
/// let disk = Disk::builder(&dir)
///     .max_bytes(64 << 20)     // 64 MiB of entry files
///     .max_entries(10_000)
///     .sync_writes(false)      // the default: no fsync per write
///     .io_threads(2)
///     .build()?;
/// assert_eq!(disk.max_entries(), 10_000);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
#[must_use]
#[derive(Debug, Clone)]
pub struct DiskBuilder {
    dir: PathBuf,
    max_bytes: u64,
    max_entries: u64,
    sync_writes: bool,
    io_threads: usize,
}

impl DiskBuilder {
    /// Total bytes of entry files (header, key and value; not rounded up to
    /// filesystem blocks) above which sweeps evict. Default 1 GiB; at least 1.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// Number of entries above which sweeps evict. Default 100,000; at least 1.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries.max(1);
        self
    }

    /// `fsync` each entry and its directory before a write returns, so that
    /// writes also survive a power cut (default `false`; see
    /// [Durability](Disk#durability)).
    pub fn sync_writes(mut self, sync: bool) -> Self {
        self.sync_writes = sync;
        self
    }

    /// Threads that run the `_async` methods (default 4). `0` runs them on
    /// the caller's thread, blocking the executor for the file I/O.
    pub fn io_threads(mut self, threads: usize) -> Self {
        self.io_threads = threads;
        self
    }

    /// Open the tier, creating the directory if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the directory cannot be created, or files
    /// cannot be created in it (a path through a regular file, a read-only
    /// filesystem, no permission), or when it exists with permissions for
    /// other users that this process cannot take away (see
    /// [Private](Disk#guarantees)).
    pub fn build(self) -> Result<Disk, Error> {
        let store = Store::open(self.dir, self.max_bytes, self.max_entries, self.sync_writes)?;
        Ok(Disk {
            store: Offloaded::new(store, self.io_threads),
        })
    }
}

/// What a sweep found: the live entries left, and how many it evicted.
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Disk};
///
/// let dir = std::env::temp_dir().join(format!("cachefn-doc-usage-{}", std::process::id()));
/// let disk = Disk::builder(&dir).max_entries(10).build()?;
/// for i in 0..10 {
///     disk.set(&format!("k{i}"), b"v", Duration::ZERO)?;
/// }
/// let usage = disk.sweep()?;
/// assert_eq!((usage.entries, usage.evicted), (10, 0));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), cachefn::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Live (unexpired) entries after the sweep.
    pub entries: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Entries the sweep evicted to get under the limits (not counting
    /// expired ones it removed).
    pub evicted: u64,
}

impl Disk {
    /// The tier in `dir` with the default limits (1 GiB, 100,000 entries),
    /// creating the directory if needed. Every process that opens the same
    /// directory shares its entries.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the directory cannot be created or written.
    ///
    /// ```
    /// let bad = std::env::temp_dir().join(format!("cachefn-doc-file-{}", std::process::id()));
    /// std::fs::write(&bad, b"a file, not a directory").unwrap();
    /// let err = cachefn::backends::Disk::open(bad.join("cache")).unwrap_err();
    /// assert!(err.to_string().contains("cannot use"), "{err}");
    /// # std::fs::remove_file(&bad).unwrap();
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Disk, Error> {
        Disk::builder(dir).build()
    }

    /// A builder, to set limits, durability and I/O threads.
    pub fn builder(dir: impl AsRef<Path>) -> DiskBuilder {
        DiskBuilder {
            dir: dir.as_ref().to_owned(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            sync_writes: false,
            io_threads: DEFAULT_IO_THREADS,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        self.store.get_ref().root()
    }

    /// The size limit in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.store.get_ref().limits().0
    }

    /// The entry limit.
    pub fn max_entries(&self) -> u64 {
        self.store.get_ref().limits().1
    }

    /// Sweep now: remove expired entries and crashed writers' temporary
    /// files, evict down to 90% of the limits if over one, and report what
    /// is left. Waits for a sweep running in another thread or process.
    ///
    /// Writes sweep by themselves when needed; call this to reclaim expired
    /// entries' space sooner, or to measure the directory.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the directory cannot be listed or a file
    /// cannot be removed.
    pub fn sweep(&self) -> Result<DiskUsage, Error> {
        Ok(self.store.get_ref().sweep(true)?.unwrap_or_default())
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("dir", &self.dir())
            .field("max_bytes", &self.max_bytes())
            .field("max_entries", &self.max_entries())
            .field("sync_writes", &self.store.get_ref().sync())
            .field("io_threads", &self.store.threads())
            .finish()
    }
}

/// The store's blocking calls, for the I/O threads of the `_async` methods.
impl Backend for Store {
    fn name(&self) -> &'static str {
        "disk"
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Store::get(self, key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        Store::set(self, key, value, ttl)
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        Store::add(self, key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        Store::delete(self, key)
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        Store::incr(self, key, delta)
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        Store::clear_prefix(self, prefix)
    }
}

// Every call is the store's (see `Store` for `clear_prefix`: a scan of the
// directory that removes only the entries under the prefix); the `_async`
// twins run it on an I/O thread.
crate::backend::delegate_backend!(impl[] for Disk, |d| &d.store);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::tests::block_on;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachefn-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn entry_files(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(root).unwrap() {
            let shard = shard.unwrap().path();
            if shard.is_dir() && shard.file_name().unwrap() != "locks" {
                for f in std::fs::read_dir(&shard).unwrap() {
                    out.push(f.unwrap().path());
                }
            }
        }
        out
    }

    #[test]
    fn the_backend_contract() {
        let d = dir("contract");
        let disk = Disk::open(&d).unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(disk.get("a").unwrap(), None);
        disk.set("a", b"1", ttl).unwrap();
        disk.set("a", b"22", ttl).unwrap();
        assert_eq!(disk.get("a").unwrap(), Some(b"22".to_vec()));
        // Replacing leaves one entry file and no temporary file behind.
        let files = entry_files(&d);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].extension().is_some_and(|e| e == "cfn"));
        assert!(disk.has("a").unwrap() && !disk.has("b").unwrap());
        assert!(!disk.add("a", b"x", ttl).unwrap());
        assert!(disk.add("b", b"x", ttl).unwrap());
        assert!(disk.delete("a").unwrap());
        assert!(!disk.delete("a").unwrap());
        assert_eq!(disk.incr("n", 5).unwrap(), 5);
        assert_eq!(disk.incr("n", -7).unwrap(), -2);
        assert_eq!(disk.get("n").unwrap(), Some(b"-2".to_vec()));
        assert_eq!(disk.incr("b", 1), Err(Error::NotACounter("b".into())));
        disk.set("max", i64::MAX.to_string().as_bytes(), ttl)
            .unwrap();
        assert!(disk
            .incr("max", 1)
            .unwrap_err()
            .to_string()
            .contains("overflow"));
        // The empty value and the empty key are values like others.
        disk.set("", b"", Duration::ZERO).unwrap();
        assert_eq!(disk.get("").unwrap(), Some(Vec::new()));
        let long = "k".repeat(70_000);
        assert!(disk.set(&long, b"v", ttl).is_err());
        assert_eq!(disk.get(&long).unwrap(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn batches_and_async_twins() {
        let d = dir("async");
        let disk = Disk::builder(&d).io_threads(2).build().unwrap();
        let ttl = Duration::ZERO;
        block_on(disk.set_many_async(&[("a", b"1"), ("b", b"2")], ttl)).unwrap();
        assert_eq!(
            block_on(disk.get_many_async(&["a", "x", "b"])).unwrap(),
            vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]
        );
        assert!(block_on(disk.has_async("a")).unwrap());
        assert!(block_on(disk.add_async("c", b"3", ttl)).unwrap());
        assert!(!block_on(disk.add_async("c", b"4", ttl)).unwrap());
        assert_eq!(block_on(disk.incr_async("n", 3)).unwrap(), 3);
        assert!(block_on(disk.delete_async("c")).unwrap());
        block_on(disk.delete_many_async(&["a", "n"])).unwrap();
        assert_eq!(
            disk.get_many(&["a", "b", "n"]).unwrap(),
            vec![None, Some(b"2".to_vec()), None]
        );
        block_on(disk.clear_prefix_async("")).unwrap();
        assert_eq!(block_on(disk.get_async("b")).unwrap(), None);
        assert!(format!("{disk:?}").contains("io_threads: 2"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_temporary_files_are_swept_and_foreign_files_kept() {
        let d = dir("debris");
        let disk = Disk::open(&d).unwrap();
        disk.set("k", b"v", Duration::ZERO).unwrap();
        let shard = entry_files(&d)[0].parent().unwrap().to_owned();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        let stale = shard.join(format::temp_name(&"1".repeat(30), std::process::id(), 1));
        let fresh = shard.join(format::temp_name(&"2".repeat(30), std::process::id(), 2));
        let foreign = shard.join("notes.txt");
        // A minute old: kept while its writer lives, removed once it is dead.
        let minute = std::time::SystemTime::now() - Duration::from_secs(60);
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let dead = shard.join(format::temp_name(&"3".repeat(30), exited.id(), 3));
        let alive = shard.join(format::temp_name(&"4".repeat(30), std::process::id(), 4));
        for p in [&stale, &fresh, &foreign, &dead, &alive] {
            std::fs::write(p, b"x").unwrap();
        }
        let set_mtime = |p: &Path, t| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap()
        };
        set_mtime(&stale, old);
        set_mtime(&dead, minute);
        set_mtime(&alive, minute);
        assert_eq!(disk.sweep().unwrap().entries, 1);
        assert!(!stale.exists() && fresh.exists() && foreign.exists());
        #[cfg(unix)]
        assert!(!dead.exists() && alive.exists());
        disk.clear_prefix("").unwrap();
        assert!(
            foreign.exists(),
            "clear never removes a file that is not an entry"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
