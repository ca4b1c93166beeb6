//! The operations on the cache directory, shared by every thread and
//! process that opens it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::format::{self, Found, Head, Header, Location};
use super::lock::{Locks, STRIPES};
use super::private;
use super::DiskUsage;
use crate::clock::unix_ms;
use crate::Error;

/// Sweeps evict down to this share of each limit, so that they are rare.
const LOW_WATER_PERCENT: u64 = 90;
/// A read refreshes an entry's modification time (its recency for
/// eviction) when it is older than this: at most one metadata write per
/// entry per period, however hot the entry.
const TOUCH_AFTER: Duration = Duration::from_secs(1);
/// A temporary file this old is debris of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(300);
/// A temporary file of a process that no longer exists, this old, is debris.
const DEAD_TEMP: Duration = Duration::from_secs(10);

pub(super) struct Store {
    root: PathBuf,
    locks: Locks,
    max_bytes: u64,
    max_entries: u64,
    sync: bool,
    /// This process's running estimate of the directory's size: the totals
    /// of its last sweep plus its own writes since.
    est_bytes: AtomicU64,
    est_entries: AtomicU64,
    /// `false` until this process has swept once (its estimate is unknown).
    counted: AtomicBool,
    temp_counter: AtomicU64,
    /// Whether `renameat2(RENAME_EXCHANGE)` may work here (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    exchange: AtomicBool,
}

/// An I/O failure, kept as the source. A full, read-only or forbidden
/// directory is a refusal (reads of what is stored still work, so the
/// circuit breaker must not skip them); anything else is an outage.
pub(super) fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    let message = format!("{what} `{}`: {e}", path.display());
    let refused = matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::FileTooLarge
    );
    let error = if refused {
        Error::refused("disk", message)
    } else {
        Error::backend("disk", message)
    };
    error.with_source(e)
}

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > u16::MAX as usize {
        return Err(Error::backend(
            "disk",
            format!(
                "a key of {} bytes is too long: the disk tier takes keys up to {} bytes",
                key.len(),
                u16::MAX
            ),
        ));
    }
    Ok(())
}

fn expiry(ttl: Duration) -> u64 {
    if ttl.is_zero() {
        0
    } else {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        unix_ms().saturating_add(ms)
    }
}

/// Identity of a file version, to remove only the file a scan judged: the
/// inode (on unix) or length, and the modification time (so an entry read
/// since the scan, which refreshed its time, is not evicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64, Option<SystemTime>);

fn file_id(meta: &fs::Metadata) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        FileId(meta.dev(), meta.ino(), meta.modified().ok())
    }
    #[cfg(not(unix))]
    {
        FileId(meta.len(), 0, meta.modified().ok())
    }
}

/// One entry file seen by a scan.
struct Seen {
    path: PathBuf,
    stripe: usize,
    id: FileId,
    len: u64,
    modified: SystemTime,
}

impl Store {
    pub fn open(
        root: PathBuf,
        max_bytes: u64,
        max_entries: u64,
        sync: bool,
    ) -> Result<Store, Error> {
        let fail = |e: io::Error| {
            Error::backend(
                "disk",
                format!(
                    "cannot use `{}` as a cache directory: {e} (pass a directory this process can create and write to)",
                    root.display()
                ),
            )
        };
        private::create_dir_all(&root).map_err(fail)?;
        // Absolute, so that a later change of the working directory does
        // not move the cache.
        let root = std::path::absolute(&root).map_err(fail)?;
        // A directory that existed already (made with the umask's modes, by
        // an older version or by hand) becomes private too, and so do its
        // shard directories; one this process cannot change (another user's)
        // is refused rather than used open.
        private::restrict_dir(&root).map_err(|e| {
            Error::backend(
                "disk",
                format!(
                    "cannot make `{}` private to this user (mode 0700): {e} (pass a directory \
                     this process owns, or a path it can create)",
                    root.display()
                ),
            )
        })?;
        restrict_shards(&root).map_err(fail)?;
        let locks = Locks::open(&root).map_err(fail)?;
        // Prove the directory takes new files now, not at the first write.
        let probe = root.join(format::temp_name(
            &"0".repeat(30),
            std::process::id(),
            u64::MAX,
        ));
        private::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)
            .map_err(fail)?;
        let _ = fs::remove_file(&probe);
        // Tell backup tools this is a cache (https://bford.info/cachedir/).
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = write_atomically(
                &root,
                &tag,
                b"Signature: 8a477f597d28d172789f06886806bc55\n# A cachefn disk cache: safe to delete.\n",
            );
        }
        Ok(Store {
            root,
            locks,
            max_bytes: max_bytes.max(1),
            max_entries: max_entries.max(1),
            sync,
            est_bytes: AtomicU64::new(0),
            est_entries: AtomicU64::new(0),
            counted: AtomicBool::new(false),
            temp_counter: AtomicU64::new(0),
            exchange: AtomicBool::new(true),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn limits(&self) -> (u64, u64) {
        (self.max_bytes, self.max_entries)
    }

    pub fn sync(&self) -> bool {
        self.sync
    }

    fn locate(&self, key: &str) -> Location {
        Location::of(&self.root, key, STRIPES)
    }

    // --- reads -----------------------------------------------------------

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let loc = self.locate(key);
        let found = format::read_entry(&loc.path, key, unix_ms(), true, touch)
            .map_err(|e| io_error("cannot read", &loc.path, e))?;
        match found {
            Found::Live { value, .. } => Ok(Some(value)),
            Found::Missing | Found::OtherKey => Ok(None),
            Found::Expired | Found::Bad => {
                // Best effort: the read is a miss either way.
                let _ = self.remove_dead(&loc, key);
                Ok(None)
            }
        }
    }

    /// Remove the entry of `key` if, under its lock, it is still expired or
    /// not a well-formed entry.
    fn remove_dead(&self, loc: &Location, key: &str) -> Result<(), Error> {
        let _guard = self.lock(loc.stripe)?;
        let found = format::read_entry(&loc.path, key, unix_ms(), true, |_, _| {})
            .map_err(|e| io_error("cannot read", &loc.path, e))?;
        if matches!(found, Found::Expired | Found::Bad) {
            self.unlink(&loc.path)?;
        }
        Ok(())
    }

    // --- writes ----------------------------------------------------------

    fn lock(&self, stripe: usize) -> Result<super::lock::StripeGuard<'_>, Error> {
        self.locks
            .stripe(stripe)
            .map_err(|e| io_error("cannot lock", &self.root.join("locks"), e))
    }

    /// Write a complete entry to a new temporary file next to its final
    /// place; returns the temporary path and the entry's length.
    fn write_temp(
        &self,
        loc: &Location,
        key: &str,
        value: &[u8],
        expires_ms: u64,
    ) -> Result<(PathBuf, u64), Error> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = loc
            .dir
            .join(format::temp_name(&loc.stem, std::process::id(), n));
        let mut file = match create_new(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                private::create_dir_all(&loc.dir)
                    .map_err(|e| io_error("cannot create", &loc.dir, e))?;
                create_new(&tmp)
            }
            other => other,
        }
        .map_err(|e| io_error("cannot create", &tmp, e))?;
        let header = Header::encode(expires_ms, key.as_bytes(), value);
        let mut head = Vec::with_capacity(header.len() + key.len());
        head.extend_from_slice(&header);
        head.extend_from_slice(key.as_bytes());
        let written = file
            .write_all(&head)
            .and_then(|()| file.write_all(value))
            // The filesystem stamps files with a coarse clock (a few ms), so
            // many writes share one time; a precise one orders eviction.
            .and_then(|()| file.set_modified(SystemTime::now()))
            .and_then(|()| if self.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(io_error("cannot write", &tmp, e));
        }
        Ok((tmp, (head.len() + value.len()) as u64))
    }

    /// Move a finished temporary file to its final place (atomically
    /// replacing any entry there). Call with the stripe lock held.
    fn publish(&self, tmp: &Path, loc: &Location) -> Result<(), Error> {
        if let Err(e) = self.replace(tmp, &loc.path) {
            let _ = fs::remove_file(tmp);
            return Err(io_error("cannot write", &loc.path, e));
        }
        if self.sync {
            sync_dir(&loc.dir).map_err(|e| io_error("cannot sync", &loc.dir, e))?;
        }
        Ok(())
    }

    /// Put `from` in the place of `to`, atomically: a reader of `to` sees
    /// the old file or the new one, never neither.
    ///
    /// On Linux, when `to` exists, the two names are swapped
    /// (`renameat2(RENAME_EXCHANGE)`) and the old entry, now under the
    /// temporary name, is removed. ext4 forces block allocation and
    /// write-back of a file that `rename` puts over another
    /// (`auto_da_alloc`), which costs a set about a quarter of its time there
    /// and buys nothing here: the checksum already turns a file torn by a
    /// power cut into a miss. Elsewhere, and with nothing to replace, a
    /// plain `rename`.
    fn replace(&self, from: &Path, to: &Path) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.exchange.load(Ordering::Relaxed) {
            match exchange(from, to) {
                Ok(()) => {
                    let _ = fs::remove_file(from);
                    return Ok(());
                }
                // Nothing to replace.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                // A filesystem or kernel without exchange: stop trying.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                    ) =>
                {
                    self.exchange.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        fs::rename(from, to)
    }

    fn unlink(&self, path: &Path) -> Result<bool, Error> {
        match fs::remove_file(path) {
            Ok(()) => {
                if self.sync {
                    if let Some(dir) = path.parent() {
                        let _ = sync_dir(dir);
                    }
                }
                saturating_sub(&self.est_entries, 1);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("cannot remove", path, e)),
        }
    }

    pub fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        check_key(key)?;
        let loc = self.locate(key);
        let (tmp, len) = self.write_temp(&loc, key, value, expiry(ttl))?;
        {
            let _guard = match self.lock(loc.stripe) {
                Ok(g) => g,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            self.publish(&tmp, &loc)?;
        }
        self.wrote(len);
        Ok(())
    }

    pub fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        check_key(key)?;
        let loc = self.locate(key);
        let live = || -> Result<bool, Error> {
            let found = format::read_entry(&loc.path, key, unix_ms(), true, |_, _| {})
                .map_err(|e| io_error("cannot read", &loc.path, e))?;
            Ok(matches!(found, Found::Live { .. }))
        };
        // A cheap answer without writing anything when the key is plainly there.
        if live()? {
            return Ok(false);
        }
        let (tmp, len) = self.write_temp(&loc, key, value, expiry(ttl))?;
        {
            let guard = self.lock(loc.stripe);
            let stored = guard.and_then(|_guard| {
                // Decided under the lock: every writer of this entry holds it.
                if live()? {
                    return Ok(false);
                }
                self.publish(&tmp, &loc)?;
                Ok(true)
            });
            match stored {
                Ok(true) => {}
                other => {
                    let _ = fs::remove_file(&tmp);
                    return other;
                }
            }
        }
        self.wrote(len);
        Ok(true)
    }

    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        let loc = self.locate(key);
        let removed = {
            let _guard = self.lock(loc.stripe)?;
            let found = format::read_entry(&loc.path, key, unix_ms(), false, |_, _| {})
                .map_err(|e| io_error("cannot read", &loc.path, e))?;
            match found {
                Found::Missing | Found::OtherKey => false,
                Found::Live { .. } => self.unlink(&loc.path)?,
                Found::Expired | Found::Bad => {
                    self.unlink(&loc.path)?;
                    false
                }
            }
        };
        Ok(removed)
    }

    pub fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        check_key(key)?;
        let loc = self.locate(key);
        let (n, len) = {
            let _guard = self.lock(loc.stripe)?;
            let found = format::read_entry(&loc.path, key, unix_ms(), true, |_, _| {})
                .map_err(|e| io_error("cannot read", &loc.path, e))?;
            let (current, expires_ms) = match found {
                Found::Live { value, expires_ms } => (
                    std::str::from_utf8(&value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| Error::NotACounter(key.to_owned()))?,
                    expires_ms,
                ),
                _ => (0, 0),
            };
            let n = current.checked_add(delta).ok_or_else(|| {
                Error::backend(
                    "disk",
                    format!("incrementing `{key}` ({current}) by {delta} would overflow an i64"),
                )
            })?;
            let (tmp, len) = self.write_temp(&loc, key, n.to_string().as_bytes(), expires_ms)?;
            self.publish(&tmp, &loc)?;
            (n, len)
        };
        self.wrote(len);
        Ok(n)
    }

    pub fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        let prefix = prefix.as_bytes();
        self.scan(|path, stripe, _meta| {
            let matches = |p: &Path| -> io::Result<bool> {
                Ok(matches!(format::read_head(p)?, Head::Entry(_, key) if key.starts_with(prefix)))
            };
            if matches(path).map_err(|e| io_error("cannot read", path, e))? {
                // Checked again under the lock: the file may have been replaced.
                let _guard = self.lock(stripe)?;
                if matches(path).map_err(|e| io_error("cannot read", path, e))? {
                    self.unlink(path)?;
                }
            }
            Ok(())
        })
    }

    // --- bounds and expiry -----------------------------------------------

    /// Count a new entry file of `len` bytes, and sweep when this process's
    /// estimate passes a limit (or it has never counted).
    fn wrote(&self, len: u64) {
        let bytes = self.est_bytes.fetch_add(len, Ordering::Relaxed) + len;
        let entries = self.est_entries.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.counted.load(Ordering::Relaxed)
            || bytes > self.max_bytes
            || entries > self.max_entries
        {
            // The write is done; a sweep that fails leaves it done.
            let _ = self.sweep(false);
        }
    }

    /// Remove expired entries, debris and (when over a limit) the least
    /// recently used entries down to 90% of the limits. `None` when `wait`
    /// is false and another thread or process is sweeping.
    pub fn sweep(&self, wait: bool) -> Result<Option<DiskUsage>, Error> {
        let Some(_sweeping) = self
            .locks
            .sweep(wait)
            .map_err(|e| io_error("cannot lock", &self.root.join("locks"), e))?
        else {
            return Ok(None);
        };
        let now_ms = unix_ms();
        let mut live = Vec::new();
        let mut usage = DiskUsage::default();
        self.scan(|path, stripe, meta| {
            let head = format::read_head(path).map_err(|e| io_error("cannot read", path, e))?;
            let id = file_id(meta);
            match head {
                Head::Missing => {}
                Head::Entry(h, _) if !h.expired(now_ms) => {
                    usage.entries += 1;
                    usage.bytes += meta.len();
                    live.push(Seen {
                        path: path.to_owned(),
                        stripe,
                        id,
                        len: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
                // Expired, or not an entry at all.
                _ => {
                    self.remove_if_same(stripe, path, id)?;
                }
            }
            Ok(())
        })?;
        let target_bytes = low_water(self.max_bytes);
        let target_entries = low_water(self.max_entries);
        if usage.bytes > self.max_bytes || usage.entries > self.max_entries {
            // Least recently written or read first.
            live.sort_by_key(|s| s.modified);
            for seen in &live {
                if usage.bytes <= target_bytes && usage.entries <= target_entries {
                    break;
                }
                if self.remove_if_same(seen.stripe, &seen.path, seen.id)? {
                    usage.bytes -= seen.len;
                    usage.entries -= 1;
                    usage.evicted += 1;
                }
            }
        }
        self.est_bytes.store(usage.bytes, Ordering::Relaxed);
        self.est_entries.store(usage.entries, Ordering::Relaxed);
        self.counted.store(true, Ordering::Relaxed);
        Ok(Some(usage))
    }

    /// Remove `path` if, under its stripe lock, it is still the file a scan
    /// saw (not a newer entry written since).
    fn remove_if_same(&self, stripe: usize, path: &Path, id: FileId) -> Result<bool, Error> {
        let _guard = self.lock(stripe)?;
        match fs::symlink_metadata(path) {
            Ok(meta) if file_id(&meta) == id => self.unlink(path),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("cannot read", path, e)),
        }
    }

    /// Call `each(path, stripe, metadata)` for every entry file, and
    /// remove stale temporary files on the way.
    fn scan(
        &self,
        mut each: impl FnMut(&Path, usize, &fs::Metadata) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shards =
            fs::read_dir(&self.root).map_err(|e| io_error("cannot list", &self.root, e))?;
        let mut shard_names: Vec<String> = Vec::new();
        for shard in shards {
            let shard = shard.map_err(|e| io_error("cannot list", &self.root, e))?;
            if let Some(name) = shard.file_name().to_str() {
                if format::is_shard_name(name) {
                    shard_names.push(name.to_owned());
                }
            }
        }
        shard_names.sort();
        let now = SystemTime::now();
        for shard in shard_names {
            let stripe = usize::from_str_radix(&shard, 16).expect("hex") % STRIPES;
            let dir = self.root.join(&shard);
            let files = match fs::read_dir(&dir) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("cannot list", &dir, e)),
            };
            for file in files {
                let file = file.map_err(|e| io_error("cannot list", &dir, e))?;
                let name = file.file_name();
                let Some(name) = name.to_str() else { continue };
                let path = file.path();
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("cannot read", &path, e)),
                };
                if format::is_entry_name(name) {
                    each(&path, stripe, &meta)?;
                } else if let Some(pid) = format::temp_name_pid(name) {
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .unwrap_or_default();
                    if age > STALE_TEMP || (age > DEAD_TEMP && !process_alive(pid)) {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        Ok(())
    }
}

fn low_water(limit: u64) -> u64 {
    (u128::from(limit) * u128::from(LOW_WATER_PERCENT) / 100) as u64
}

fn saturating_sub(n: &AtomicU64, by: u64) {
    let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(by))
    });
}

/// Refresh the modification time of an entry that was just read, when it
/// is older than [`TOUCH_AFTER`]: the recency that eviction orders by.
/// Best effort (a read-only or foreign-owned file keeps its time).
fn touch(file: &File, meta: &fs::Metadata) {
    let now = SystemTime::now();
    let stale = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_none_or(|age| age > TOUCH_AFTER);
    if stale {
        let _ = file.set_modified(now);
    }
}

/// A new file, private to this user (see `private`), that must not exist yet.
fn create_new(path: &Path) -> io::Result<File> {
    private::file_options()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Make every shard directory under `root` private (see
/// `private::restrict_dir`); symbolic links and other files are left alone.
fn restrict_shards(root: &Path) -> io::Result<()> {
    for item in fs::read_dir(root)? {
        let item = item?;
        let is_shard = item.file_name().to_str().is_some_and(format::is_shard_name);
        if is_shard && item.file_type()?.is_dir() {
            private::restrict_dir(&item.path())?;
        }
    }
    Ok(())
}

/// Write a small file atomically (temporary file, then rename).
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format::temp_name(&"f".repeat(30), std::process::id(), 0));
    let mut f = create_new(&tmp)?;
    let done = f.write_all(bytes).and_then(|()| fs::rename(&tmp, path));
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

/// Swap the names `a` and `b` atomically (both must exist).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call;
    // the raw syscall avoids depending on glibc's wrapper (glibc >= 2.28).
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_or_read_only_disk_is_a_refusal_with_its_source() {
        use std::error::Error as _;
        let path = Path::new("/var/cache/app");
        for kind in [
            io::ErrorKind::StorageFull,
            io::ErrorKind::ReadOnlyFilesystem,
            io::ErrorKind::PermissionDenied,
        ] {
            let e = io_error("cannot create", path, io::Error::from(kind));
            assert!(!e.is_outage(), "{e}");
            let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
            assert_eq!(source.map(io::Error::kind), Some(kind));
        }
        let e = io_error("cannot read", path, io::Error::other("EIO"));
        assert!(e.is_outage(), "{e}");
    }
}
