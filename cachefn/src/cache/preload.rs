//! Preload scopes: fetch every key a page needs in one round trip, then
//! serve the reads inside the scope from what was fetched.
//!
//! A scope is per thread (sync, [`Cache::preload`]) or per task (async,
//! [`Cache::preload_async`]). It holds, for one cache, the bytes found for
//! each preloaded key, or the fact that the key was absent (a known miss:
//! no second lookup). Writes and deletes made through the cache inside the
//! scope update it, so later reads in the scope see them.
//!
//! A scope is a snapshot: reads inside it are served what the `MGET` found,
//! even if another process changes a key meanwhile. What leaves the scope
//! is coherent: with each key's bytes, the scope records the local tier's
//! write generation from *before* the `MGET` (or, for a key written in the
//! scope, from before that write), and a read that back-fills the local
//! tier from the scope uses that generation, so a change the feed reported
//! after the `MGET` makes the back-fill lose: a value deleted or replaced
//! during the scope never outlives it in the local tier.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cachefn_backends::sync::Mutex;

use super::Cache;
use crate::io::{block_on, Io};
use crate::key::Key;

/// What one scope knows: key fingerprint -> bytes, or `None` for a miss,
/// with the local tier's write generation from before they were read.
pub(crate) struct Scope {
    cache: usize,
    known: HashMap<u128, Entry>,
}

/// A key's bytes (`None`: absent), and the local tier's write generation
/// from before they were read or written.
type Entry = (Option<Arc<[u8]>>, Option<u64>);

type Stack = Vec<Arc<Mutex<Scope>>>;

thread_local! {
    static THREAD_SCOPES: RefCell<Stack> = const { RefCell::new(Vec::new()) };
}

#[cfg(feature = "tokio")]
tokio::task_local! {
    static TASK_SCOPES: Stack;
}

/// What the scopes say about a key of a cache.
pub(crate) enum Known {
    /// No scope preloaded it: ask the shared tier.
    Unknown,
    /// Preloaded and absent.
    Miss,
    /// Preloaded (or written inside the scope) with these bytes; a
    /// back-fill of them uses this write generation of the local tier
    /// (taken before they were read, or written).
    Bytes(Arc<[u8]>, Option<u64>),
}

/// Run `f` on the scopes that apply here: the task's (async), else the thread's.
fn with_stack<R>(f: impl FnOnce(&Stack) -> R) -> Option<R> {
    #[cfg(feature = "tokio")]
    let f = {
        let mut f = Some(f);
        if let Ok(r) = TASK_SCOPES.try_with(|s| (f.take().expect("called once"))(s)) {
            return Some(r);
        }
        f.take().expect("not called")
    };
    THREAD_SCOPES
        .try_with(|s| s.try_borrow().ok().map(|s| f(&s)))
        .ok()
        .flatten()
}

impl Cache {
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// What the innermost scope of this cache knows about `fp`.
    pub(crate) fn preloaded(&self, fp: u128) -> Known {
        let id = self.id();
        with_stack(|stack| {
            for scope in stack.iter().rev() {
                let scope = scope.lock();
                if scope.cache != id {
                    continue;
                }
                match scope.known.get(&fp) {
                    Some((Some(bytes), seen)) => return Known::Bytes(bytes.clone(), *seen),
                    Some((None, _)) => return Known::Miss,
                    None => {}
                }
            }
            Known::Unknown
        })
        .unwrap_or(Known::Unknown)
    }

    /// A write (`Some(bytes)`) or delete (`None`) of `fp` through this
    /// cache, begun at the local tier's write generation `seen`: every
    /// scope of the cache that knows the key learns it.
    pub(crate) fn note_preloaded(&self, fp: u128, bytes: Option<&[u8]>, seen: Option<u64>) {
        let id = self.id();
        with_stack(|stack| {
            for scope in stack {
                let mut scope = scope.lock();
                if scope.cache == id {
                    if let Some(entry) = scope.known.get_mut(&fp) {
                        *entry = (bytes.map(Arc::from), seen);
                    }
                }
            }
        });
    }

    /// A clear, or a write whose bytes are unknown: forget what the scopes
    /// of this cache know (`fp: None`: every key), so reads ask again.
    pub(crate) fn forget_preloaded(&self, fp: Option<u128>) {
        let id = self.id();
        with_stack(|stack| {
            for scope in stack {
                let mut scope = scope.lock();
                if scope.cache == id {
                    match fp {
                        Some(fp) => {
                            scope.known.remove(&fp);
                        }
                        None => scope.known.clear(),
                    }
                }
            }
        });
    }

    /// Fetch `keys` for a scope: one round trip for those the local tier
    /// does not hold.
    async fn fetch_scope<K: AsRef<str>>(&self, io: Io, keys: impl IntoIterator<Item = K>) -> Scope {
        let mut scope = Scope {
            cache: self.id(),
            known: HashMap::new(),
        };
        let Some(shared) = self.inner.shared.as_deref() else {
            return scope;
        };
        let keys: Vec<Key> = keys
            .into_iter()
            .map(Key::new)
            .filter(|k| {
                let local = self.inner.local.as_ref();
                local.is_none_or(|l| l.get(k.fingerprint(), k.stored()).is_none())
            })
            .collect();
        if keys.is_empty() {
            return scope;
        }
        let stored: Vec<String> = keys.iter().map(|k| self.stored(k.stored())).collect();
        let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
        // Before the read: a change reported after it moves these.
        let local = self.inner.local.as_ref();
        let seen: Vec<Option<u64>> = keys
            .iter()
            .map(|k| local.map(|l| l.generation(k.fingerprint())))
            .collect();
        match io.get_many(shared, &refs).await {
            Ok(found) => {
                for ((k, bytes), seen) in keys.iter().zip(found).zip(seen) {
                    let bytes = bytes.map(Arc::<[u8]>::from);
                    scope.known.insert(k.fingerprint(), (bytes, seen));
                }
            }
            // Reads inside the scope then ask the tier one by one (and the
            // circuit breaker keeps that cheap while it is down).
            Err(e) => self.shared_failed("preload", &e),
        }
        scope
    }

    /// Run `body` with every key in `keys` fetched from the shared tier in
    /// one round trip (one `MGET` on Redis): inside it, memoized calls and
    /// [`get`](Cache::get)s of those keys on this thread are served without
    /// a round trip, including keys that were absent. Values written inside
    /// the scope are written through as usual, and later reads in the scope
    /// see them. Scopes nest; this one ends when `body` returns.
    ///
    /// Keys are those of the generated `f::key(args)` helpers of functions
    /// that use this cache, or the plain keys of the low-level API.
    ///
    /// ```
    /// use cachefn::{quickcache, Cache};
    ///
    /// #[quickcache]
    /// fn fragment(id: u32) -> String { format!("<li>{id}</li>") }
    ///
    /// # fn main() {
    /// let cache = cachefn::default_cache();
    /// let ids = [1, 2, 3];
    /// let page: String = cache.preload(ids.map(fragment::key), || {
    ///     ids.iter().map(|&id| fragment(id)).collect()
    /// });
    /// assert_eq!(page, "<li>1</li><li>2</li><li>3</li>");
    /// # }
    /// ```
    pub fn preload<K: AsRef<str>, R>(
        &self,
        keys: impl IntoIterator<Item = K>,
        body: impl FnOnce() -> R,
    ) -> R {
        let scope = Arc::new(Mutex::new(block_on(self.fetch_scope(Io::Blocking, keys))));
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                let _ = THREAD_SCOPES.try_with(|s| s.borrow_mut().pop());
            }
        }
        let pushed = THREAD_SCOPES
            .try_with(|s| s.try_borrow_mut().map(|mut s| s.push(scope)).is_ok())
            .unwrap_or(false);
        let _pop = pushed.then_some(Pop);
        body()
    }

    /// [`preload`](Cache::preload) for async code: fetches the keys without
    /// blocking, then runs `body` with the scope attached to its task (the
    /// scope follows the future across threads, and ends with it).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use cachefn::quickcache;
    ///
    /// #[quickcache]
    /// async fn fragment(id: u32) -> String { format!("<li>{id}</li>") }
    ///
    /// let cache = cachefn::default_cache();
    /// let page = cache
    ///     .preload_async([1, 2].map(fragment::key), async {
    ///         format!("{}{}", fragment(1).await, fragment(2).await)
    ///     })
    ///     .await;
    /// assert_eq!(page, "<li>1</li><li>2</li>");
    /// # });
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn preload_async<K: AsRef<str>, F: std::future::Future>(
        &self,
        keys: impl IntoIterator<Item = K>,
        body: F,
    ) -> F::Output {
        let scope = Arc::new(Mutex::new(self.fetch_scope(Io::Async, keys).await));
        // The task's scopes: the enclosing ones (of this task, or of this
        // thread when the first async scope opens), then this one.
        let mut stack = with_stack(Stack::clone).unwrap_or_default();
        stack.push(scope);
        TASK_SCOPES.scope(stack, body).await
    }
}
