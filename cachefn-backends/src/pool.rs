//! A few threads that run blocking calls (file I/O, memcached round trips)
//! for the `_async` methods, so that no executor thread waits on them. Runtime-agnostic: the future
//! it returns is woken by the I/O thread through the task's `Waker`, so it
//! works under tokio, async-std, smol or a hand-written executor.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use crate::sync::{Condvar, Mutex};
use crate::{Backend, BoxFuture, Error};

type Job = Box<dyn FnOnce() + Send>;

/// The I/O threads of one backend (a `Disk` or a `Memcached`). Threads
/// start on the first async call and stop when the pool is dropped, once
/// the queued jobs are done.
pub(crate) struct Pool {
    queue: Arc<Queue>,
    threads: usize,
    /// The backend's name: in errors, and in the threads' names.
    backend: &'static str,
    started: Mutex<usize>,
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn work(&self) {
        loop {
            let job = {
                let mut jobs = self.jobs.lock();
                loop {
                    if let Some(job) = jobs.0.pop_front() {
                        break job;
                    }
                    if jobs.1 {
                        return;
                    }
                    self.ready.wait(&mut jobs);
                }
            };
            job();
        }
    }
}

impl Pool {
    /// A pool of up to `threads` threads; 0 runs every job inline, on the
    /// caller's (executor's) thread.
    pub fn new(threads: usize, backend: &'static str) -> Pool {
        Pool {
            queue: Arc::default(),
            threads,
            backend,
            started: Mutex::new(0),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A future of `f`'s result, `f` running on an I/O thread. The job is
    /// queued at once: dropping the future does not cancel it (a write whose
    /// future was dropped still happens, as with `spawn_blocking`).
    pub fn run<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        let slot = Arc::new(Slot::default());
        let job_slot = slot.clone();
        let backend = self.backend;
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
                Err(Error::backend(
                    backend,
                    "an I/O thread panicked running this call",
                ))
            });
            job_slot.fill(result);
        });
        if self.threads == 0 || !self.ensure_started() {
            job();
        } else {
            let mut jobs = self.queue.jobs.lock();
            jobs.0.push_back(job);
            drop(jobs);
            self.queue.ready.notify_one();
        }
        Pending(slot)
    }

    /// Start the threads once; `false` if not one could be started (then
    /// jobs run inline).
    fn ensure_started(&self) -> bool {
        let mut started = self.started.lock();
        while *started < self.threads {
            let queue = self.queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cachefn-{}-io", self.backend))
                .spawn(move || queue.work());
            if spawned.is_err() {
                break;
            }
            *started += 1;
        }
        *started > 0
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.jobs.lock().1 = true;
        self.queue.ready.notify_all();
    }
}

type SlotState<T> = (Option<Result<T, Error>>, Option<Waker>);

struct Slot<T>(Mutex<SlotState<T>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(Mutex::new((None, None)))
    }
}

impl<T> Slot<T> {
    fn fill(&self, result: Result<T, Error>) {
        let waker = {
            let mut state = self.0.lock();
            state.0 = Some(result);
            state.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The result of a job, once an I/O thread has produced it.
pub(crate) struct Pending<T>(Arc<Slot<T>>);

impl<T> Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0 .0.lock();
        match state.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                match &state.1 {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.1 = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// A backend that blocks (on files, on a network client of its own) made
/// fit for async code: its `_async` methods run the blocking ones on a few
/// I/O threads of their own, so that no executor thread waits on them.
///
/// A new blocking backend implements the six required [`Backend`] methods
/// (and the batch ones, if it can do better than a loop) and is wrapped in
/// `Offloaded`; this is how `Disk` and
/// `Memcached` are written. The threads start on the
/// first async call and stop when the last clone is dropped; the futures
/// work under any executor (they are woken through the task's `Waker`).
/// A job is queued at once: dropping its future does not cancel it (a write
/// whose future was dropped still happens, as with `spawn_blocking`).
///
/// ```
/// use std::time::Duration;
/// use cachefn::backends::{Backend, Error, Offloaded};
///
/// /// A store whose calls block (here it only sleeps).
/// struct Slow;
///
/// impl Backend for Slow {
///     fn name(&self) -> &'static str { "slow" }
///     fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, Error> {
///         std::thread::sleep(Duration::from_millis(1));
///         Ok(None)
///     }
///     fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), Error> { Ok(()) }
///     fn add(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, Error> { Ok(true) }
///     fn delete(&self, _: &str) -> Result<bool, Error> { Ok(false) }
///     fn incr(&self, _: &str, delta: i64) -> Result<i64, Error> { Ok(delta) }
///     fn clear_prefix(&self, _: &str) -> Result<(), Error> { Ok(()) }
/// }
///
/// let shared = Offloaded::new(Slow, 2);
/// assert_eq!(shared.get("k")?, None); // blocking calls run on the caller's thread
/// // `shared.get_async("k").await` runs on one of the 2 I/O threads.
/// # Ok::<(), Error>(())
/// ```
pub struct Offloaded<B> {
    inner: Arc<B>,
    pool: Arc<Pool>,
}

impl<B: Backend> Offloaded<B> {
    /// `inner`, with up to `threads` I/O threads for its `_async` methods
    /// (`0` runs them on the caller's thread, blocking the executor).
    pub fn new(inner: B, threads: usize) -> Self {
        let pool = Pool::new(threads, inner.name());
        Offloaded {
            inner: Arc::new(inner),
            pool: Arc::new(pool),
        }
    }

    /// The wrapped backend.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The number of I/O threads (at most; they start when first needed).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Run `f` on an I/O thread.
    fn offload<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, Error>>
    where
        T: Send + 'static,
        F: FnOnce(&B) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        Box::pin(self.pool.run(move || f(&inner)))
    }
}

impl<B> Clone for Offloaded<B> {
    fn clone(&self) -> Self {
        Offloaded {
            inner: self.inner.clone(),
            pool: self.pool.clone(),
        }
    }
}

impl<B: Backend + std::fmt::Debug> std::fmt::Debug for Offloaded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offloaded")
            .field("inner", &self.inner)
            .field("io_threads", &self.pool.threads())
            .finish()
    }
}

/// The blocking methods are the inner backend's; the `_async` twins run
/// them on the I/O threads.
impl<B: Backend> Backend for Offloaded<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.inner.set(key, value, ttl)
    }
    fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.inner.add(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<bool, Error> {
        self.inner.delete(key)
    }
    fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.inner.incr(key, delta)
    }
    fn clear_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.inner.clear_prefix(prefix)
    }
    fn has(&self, key: &str) -> Result<bool, Error> {
        self.inner.has(key)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.inner.get_many(keys)
    }
    fn set_many(&self, items: &[(&str, &[u8])], ttl: Duration) -> Result<(), Error> {
        self.inner.set_many(items, ttl)
    }
    fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        self.inner.delete_many(keys)
    }
    fn invalidations(&self) -> Option<crate::InvalidationFeed> {
        self.inner.invalidations()
    }
    fn lease_acquire(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.inner.lease_acquire(key, token, ttl)
    }
    fn lease_renew(&self, key: &str, token: &[u8], ttl: Duration) -> Result<bool, Error> {
        self.inner.lease_renew(key, token, ttl)
    }
    fn get_or_lease(
        &self,
        key: &str,
        lease: &str,
        token: &[u8],
        ttl: Duration,
    ) -> Result<crate::GetOrLease, Error> {
        self.inner.get_or_lease(key, lease, token, ttl)
    }
    fn lease_release(&self, key: &str, token: &[u8]) -> Result<bool, Error> {
        self.inner.lease_release(key, token)
    }
    fn store_leased(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        lease: &str,
        token: &[u8],
    ) -> Result<bool, Error> {
        self.inner.store_leased(key, value, ttl, lease, token)
    }

    // The `_async` twins: arguments are copied into the job, which runs
    // even if its future is dropped.
    fn get_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        let key = key.to_owned();
        self.offload(move |b| b.get(&key))
    }
    fn set_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.offload(move |b| b.set(&key, &value, ttl))
    }
    fn add_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.offload(move |b| b.add(&key, &value, ttl))
    }
    fn delete_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        let key = key.to_owned();
        self.offload(move |b| b.delete(&key))
    }
    fn incr_async<'a>(&'a self, key: &'a str, delta: i64) -> BoxFuture<'a, Result<i64, Error>> {
        let key = key.to_owned();
        self.offload(move |b| b.incr(&key, delta))
    }
    fn clear_prefix_async<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let prefix = prefix.to_owned();
        self.offload(move |b| b.clear_prefix(&prefix))
    }
    fn has_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        let key = key.to_owned();
        self.offload(move |b| b.has(&key))
    }
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, Error>> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.offload(move |b| b.get_many(&keys.iter().map(String::as_str).collect::<Vec<_>>()))
    }
    fn set_many_async<'a>(
        &'a self,
        items: &'a [(&'a str, &'a [u8])],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let items: Vec<(String, Vec<u8>)> = items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        self.offload(move |b| {
            let items: Vec<(&str, &[u8])> = items
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            b.set_many(&items, ttl)
        })
    }
    fn delete_many_async<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<(), Error>> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.offload(move |b| b.delete_many(&keys.iter().map(String::as_str).collect::<Vec<_>>()))
    }
    fn lease_acquire_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |b| b.lease_acquire(&key, &token, ttl))
    }
    fn get_or_lease_async<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<crate::GetOrLease, Error>> {
        let (key, lease, token) = (key.to_owned(), lease.to_owned(), token.to_vec());
        self.offload(move |b| b.get_or_lease(&key, &lease, &token, ttl))
    }
    fn lease_renew_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |b| b.lease_renew(&key, &token, ttl))
    }
    fn lease_release_async<'a>(
        &'a self,
        key: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.offload(move |b| b.lease_release(&key, &token))
    }
    fn store_leased_async<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        lease: &'a str,
        token: &'a [u8],
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (key, value) = (key.to_owned(), value.to_vec());
        let (lease, token) = (lease.to_owned(), token.to_vec());
        self.offload(move |b| b.store_leased(&key, &value, ttl, &lease, &token))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Wake;
    use std::thread::Thread;

    /// A minimal executor: poll, park until woken, repeat.
    pub fn block_on<F: Future>(fut: F) -> F::Output {
        struct Unpark(Thread, AtomicBool);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.1.store(true, Ordering::SeqCst);
                self.0.unpark();
            }
        }
        let unpark = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
        let waker = Waker::from(unpark.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            while !unpark.1.swap(false, Ordering::SeqCst) {
                std::thread::park();
            }
        }
    }

    fn thread_name() -> Result<String, Error> {
        Ok(std::thread::current().name().unwrap_or("").to_owned())
    }

    #[test]
    fn jobs_run_on_io_threads_and_wake_the_task() {
        let pool = Pool::new(2, "disk");
        assert_eq!(block_on(pool.run(thread_name)).unwrap(), "cachefn-disk-io");
        let many: Vec<_> = (0..50).map(|i| pool.run(move || Ok(i * 2))).collect();
        let sum: i32 = many.into_iter().map(|p| block_on(p).unwrap()).sum();
        assert_eq!(sum, (0..50).map(|i| i * 2).sum());
        // A panicking job is an error, not a future that never completes.
        let err = block_on(pool.run(|| -> Result<(), Error> { panic!("boom") })).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn zero_threads_runs_inline() {
        let pool = Pool::new(0, "disk");
        let me = std::thread::current().name().unwrap_or("").to_owned();
        assert_eq!(block_on(pool.run(thread_name)).unwrap(), me);
    }

    /// A blocking backend that records which thread ran each call.
    struct Recorder(Mutex<Vec<String>>);

    impl Backend for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            self.0.lock().push(thread_name()?);
            Ok(Some(key.as_bytes().to_vec()))
        }
        fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), Error> {
            Ok(())
        }
        fn add(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, Error> {
            Ok(true)
        }
        fn delete(&self, _: &str) -> Result<bool, Error> {
            Ok(false)
        }
        fn incr(&self, _: &str, delta: i64) -> Result<i64, Error> {
            Ok(delta)
        }
        fn clear_prefix(&self, _: &str) -> Result<(), Error> {
            Ok(())
        }
    }

    #[test]
    fn offloaded_runs_blocking_calls_inline_and_async_twins_on_io_threads() {
        let b = Offloaded::new(Recorder(Mutex::new(Vec::new())), 1);
        assert_eq!(b.get("k").unwrap(), Some(b"k".to_vec()));
        assert_eq!(block_on(b.get_async("a")).unwrap(), Some(b"a".to_vec()));
        // The loop of a default batch method runs on the I/O thread too.
        let many = block_on(b.get_many_async(&["x", "y"])).unwrap();
        assert_eq!(many, vec![Some(b"x".to_vec()), Some(b"y".to_vec())]);
        let me = std::thread::current().name().unwrap_or("").to_owned();
        let io = "cachefn-recorder-io".to_owned();
        assert_eq!(*b.get_ref().0.lock(), vec![me, io.clone(), io.clone(), io]);
    }
}
