//! Locks that hold across threads and processes.
//!
//! Writes to entries are serialised per *stripe* (a fixed share of the key
//! space): a thread first takes the stripe's in-process mutex, then an
//! exclusive `flock(2)` on the stripe's lock file, `<root>/locks/NN.lock`.
//! The mutex orders the threads of one process (they share one open lock
//! file, and `flock` does not exclude holders of the same open file); the
//! `flock` orders processes. The kernel drops an `flock` when its holder
//! dies, so a writer killed with SIGKILL never leaves a lock behind.
//!
//! Sweeps (expiry and eviction scans) take `<root>/locks/sweep.lock` the same
//! way, usually without waiting: when another thread or process is already
//! sweeping, there is nothing to add.
//!
//! Off unix there is no `flock` here: the mutexes still order the threads of
//! one process, but `add` and `incr` are not atomic across processes.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::sync::{Mutex, MutexGuard};

/// How many lock stripes share the key space.
pub(super) const STRIPES: usize = 32;

pub(super) struct Locks {
    dir: PathBuf,
    stripes: Vec<Stripe>,
    sweeping: Mutex<()>,
}

#[derive(Default)]
struct Stripe {
    local: Mutex<()>,
    file: OnceLock<File>,
}

/// An exclusive hold on one stripe; released on drop.
pub(super) struct StripeGuard<'a> {
    #[cfg_attr(not(unix), allow(dead_code))]
    file: &'a File,
    _local: MutexGuard<'a, ()>,
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        // Runs before `_local` is released: the process lock goes first.
        let _ = unlock(self.file);
    }
}

/// An exclusive hold on the sweep lock; released on drop.
pub(super) struct SweepGuard<'a> {
    #[cfg_attr(not(unix), allow(dead_code))]
    file: File,
    _local: MutexGuard<'a, ()>,
}

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        // Unlocked explicitly, not by closing the file: a child that another
        // thread is forking shares the open file until it execs, and the
        // `flock` would live on in it until then.
        let _ = unlock(&self.file);
    }
}

impl Locks {
    /// The locks of the cache rooted at `root` (creates `<root>/locks`).
    pub fn open(root: &Path) -> io::Result<Locks> {
        let dir = root.join("locks");
        super::private::create_dir_all(&dir)?;
        super::private::restrict_dir(&dir)?;
        // Proves the lock directory is usable now rather than at the first write.
        open_lock_file(&dir.join("sweep.lock"))?;
        Ok(Locks {
            dir,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            sweeping: Mutex::new(()),
        })
    }

    /// Wait for, then hold, stripe `i`.
    pub fn stripe(&self, i: usize) -> io::Result<StripeGuard<'_>> {
        let stripe = &self.stripes[i];
        let local = stripe.local.lock();
        let file = match stripe.file.get() {
            Some(f) => f,
            None => {
                let f = open_lock_file(&self.dir.join(format!("{i:02}.lock")))?;
                // Another thread cannot race us here: we hold `local`.
                let _ = stripe.file.set(f);
                stripe.file.get().expect("just set")
            }
        };
        lock(file, true)?;
        Ok(StripeGuard {
            file,
            _local: local,
        })
    }

    /// Hold the sweep lock; with `wait` false, `None` when someone holds it.
    pub fn sweep(&self, wait: bool) -> io::Result<Option<SweepGuard<'_>>> {
        let local = if wait {
            self.sweeping.lock()
        } else {
            match self.sweeping.try_lock() {
                Some(g) => g,
                None => return Ok(None),
            }
        };
        let file = open_lock_file(&self.dir.join("sweep.lock"))?;
        Ok(lock(&file, wait)?.then_some(SweepGuard {
            file,
            _local: local,
        }))
    }
}

/// Open (creating, private to this user) a lock file. `flock` needs no
/// write access, so a lock file this user may only read still works.
fn open_lock_file(path: &Path) -> io::Result<File> {
    match super::private::file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path),
        Err(e) => Err(e),
    }
}

/// Take an exclusive `flock`; `Ok(false)` when `wait` is false and it is held.
#[cfg(unix)]
fn lock(file: &File, wait: bool) -> io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: the descriptor belongs to `file`, which outlives the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(unix)]
fn unlock(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: as in `lock`.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn lock(_file: &File, _wait: bool) -> io::Result<bool> {
    Ok(true)
}

#[cfg(not(unix))]
fn unlock(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_excluded() {
        let root = std::env::temp_dir().join(format!("cachefn-locks-{}", std::process::id()));
        let a = Locks::open(&root).unwrap();
        let b = Locks::open(&root).unwrap();
        {
            let _held = a.sweep(false).unwrap().expect("free");
            // Another open file of the same lock, as another process has.
            assert!(b.sweep(false).unwrap().is_none());
        }
        assert!(b.sweep(false).unwrap().is_some());

        let held = a.stripe(3).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _g = b.stripe(3).unwrap();
                tx.send(()).unwrap();
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(rx.try_recv().is_err(), "stripe 3 is held by `a`");
            drop(held);
            rx.recv().unwrap();
        });
        std::fs::remove_dir_all(&root).unwrap();
    }
}
