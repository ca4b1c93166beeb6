//! One implementation for the sync and the async API: the tier logic is
//! written once as `async fn`s that reach the shared tier through [`Io`].
//! The sync API runs them with [`block_on`], where every shared-tier call is
//! a plain blocking call, so nothing ever waits on a waker.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use cachefn_backends::Backend;

use crate::Error;

/// How the shared tier is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    /// The backend's blocking methods (the sync API).
    Blocking,
    /// The backend's `_async` twins (the async API).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Async,
}

macro_rules! io_methods {
    ($( $name:ident / $twin:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        impl Io {
            $(
                pub(crate) async fn $name(self, b: &dyn Backend, $($arg: $ty),*) -> Result<$ret, Error> {
                    match self {
                        Io::Blocking => b.$name($($arg),*),
                        Io::Async => b.$twin($($arg),*).await,
                    }
                }
            )*
        }
    };
}

io_methods! {
    get / get_async (key: &str) -> Option<Vec<u8>>;
    set / set_async (key: &str, value: &[u8], ttl: Duration) -> ();
    add / add_async (key: &str, value: &[u8], ttl: Duration) -> bool;
    delete / delete_async (key: &str) -> bool;
    incr / incr_async (key: &str, delta: i64) -> i64;
    clear_prefix / clear_prefix_async (prefix: &str) -> ();
    has / has_async (key: &str) -> bool;
    get_many / get_many_async (keys: &[&str]) -> Vec<Option<Vec<u8>>>;
    set_many / set_many_async (items: &[(&str, &[u8])], ttl: Duration) -> ();
    delete_many / delete_many_async (keys: &[&str]) -> ();
    lease_acquire / lease_acquire_async (key: &str, token: &[u8], ttl: Duration) -> bool;
    lease_release / lease_release_async (key: &str, token: &[u8]) -> bool;
    get_or_lease / get_or_lease_async (key: &str, lease: &str, token: &[u8], ttl: Duration) -> cachefn_backends::GetOrLease;
    store_leased / store_leased_async (key: &str, value: &[u8], ttl: Duration, lease: &str, token: &[u8]) -> bool;
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Run a future of the [`Io::Blocking`] kind to completion on this thread.
/// Such a future is ready at its first poll; parking covers any other.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
        return v;
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
