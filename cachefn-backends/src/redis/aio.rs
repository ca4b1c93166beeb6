//! The async side of [`Redis`]: one multiplexed connection, shared by every
//! task, replaced when it fails. The `redis` crate multiplexes it, over a
//! socket of ours that holds each reply to `max_reply_size` (`aio_stream`).

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, ProtocolVersion};

use super::{aio_stream, answered, conn, connect_err, err, Redis};
use crate::Error;

/// A handle on the shared connection. Its driver task (which writes the
/// requests and reads the replies) runs until the last handle is dropped,
/// then is aborted, as the `redis` crate does with the drivers it spawns:
/// a server that never answers cannot keep it alive.
#[derive(Clone)]
struct Shared {
    conn: MultiplexedConnection,
    _driver: Arc<Driver>,
}

struct Driver(tokio::task::AbortHandle);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The shared connection, opened on first use.
pub(super) struct Multiplexed {
    /// Names this tier in the threads' copies of its connection.
    id: u64,
    /// `(generation, connection)`: the generation grows whenever the
    /// connection is replaced, so threads know their copy is stale.
    current: crate::sync::Mutex<(u64, Option<Shared>)>,
    /// Read without the lock by every call.
    generation: AtomicU64,
    /// Held while one task opens a connection; the others wait for it (at
    /// most the connect timeout) instead of each opening their own.
    opening: tokio::sync::Mutex<()>,
}

impl Default for Multiplexed {
    fn default() -> Self {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Multiplexed {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            current: crate::sync::Mutex::new((0, None)),
            generation: AtomicU64::new(0),
            opening: tokio::sync::Mutex::new(()),
        }
    }
}

/// Tiers whose connection each thread keeps a copy of.
const NEAR_TIERS: usize = 4;

thread_local! {
    /// Each thread's copy of the connections it used: `(tier id,
    /// generation, connection)`. A call clones the copy (as a raw redis-rs
    /// user clones their connection), so the tier's lock is taken only when
    /// the connection changes, not on every call.
    static NEAR: RefCell<Vec<(u64, u64, Shared)>> = const { RefCell::new(Vec::new()) };
}

impl Multiplexed {
    fn near(&self) -> Option<Shared> {
        let generation = self.generation.load(Ordering::Acquire);
        NEAR.try_with(|near| {
            let near = near.try_borrow().ok()?;
            near.iter()
                .find(|(id, g, _)| *id == self.id && *g == generation)
                .map(|(_, _, c)| c.clone())
        })
        .ok()
        .flatten()
    }

    /// The current connection, remembered by this thread.
    fn shared(&self) -> Option<Shared> {
        let (generation, conn) = {
            let current = self.current.lock();
            (current.0, current.1.clone()?)
        };
        let _ = NEAR.try_with(|near| {
            if let Ok(mut near) = near.try_borrow_mut() {
                near.retain(|(id, _, _)| *id != self.id);
                // Bounded: a copy of a tier this thread no longer uses (or
                // that was dropped) goes when newer tiers push it out.
                if near.len() >= NEAR_TIERS {
                    near.remove(0);
                }
                near.push((self.id, generation, conn.clone()));
            }
        });
        Some(conn)
    }

    fn set(&self, conn: Option<Shared>) {
        let mut current = self.current.lock();
        current.0 += 1;
        current.1 = conn;
        self.generation.store(current.0, Ordering::Release);
    }
}

fn timed_out(what: &str, after: Duration) -> Error {
    Error::backend("redis", format!("no {what} within {after:?}"))
}

impl Redis {
    async fn connection(&self) -> Result<Shared, Error> {
        let m = &self.multiplexed;
        match m.near().or_else(|| m.shared()) {
            Some(c) => Ok(c),
            // Boxed: opening a connection is a large future, and every
            // call's future would otherwise carry (and copy) its space.
            None => Box::pin(self.open_connection()).await,
        }
    }

    async fn open_connection(&self) -> Result<Shared, Error> {
        let m = &self.multiplexed;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::backend(
                "redis",
                "the async Redis tier runs on tokio: call it inside a tokio runtime",
            ));
        }
        let _opening = tokio::time::timeout(self.connect_timeout, m.opening.lock())
            .await
            .map_err(|_| timed_out("connection", self.connect_timeout))?;
        if let Some(c) = m.shared() {
            return Ok(c);
        }
        // RESP2, the protocol the meter follows (and the blocking
        // connections speak), whatever the URL asks.
        let info = self
            .client
            .get_connection_info()
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP2);
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(self.response_timeout));
        // As for a blocking call that opens its connection: the socket, the
        // TLS handshake and the setup commands (AUTH, SELECT) to a frozen
        // server end by one deadline.
        let budget = self.connect_timeout + self.response_timeout;
        let opened = tokio::time::timeout(budget, async {
            let socket = aio_stream::connect(&self.target).await?;
            MultiplexedConnection::new_with_config(&info, socket, config).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {budget:?}"),
            )
            .into())
        });
        let (conn, driver) = opened.map_err(|e| connect_err(e, self.tls))?;
        let shared = Shared {
            conn,
            _driver: Arc::new(Driver(tokio::spawn(driver).abort_handle())),
        };
        m.set(Some(shared.clone()));
        Ok(shared)
    }

    /// Forget the shared connection after it failed: the next call opens a
    /// fresh one (the server may have restarted, or the runtime that drove
    /// the old one may be gone).
    fn drop_connection(&self) {
        self.multiplexed.set(None);
    }

    /// A failed or timed-out request drops the connection: the next call
    /// opens a fresh one. A reply past `max_reply_size` fails as the
    /// blocking client's does.
    fn finish<T>(&self, reply: redis::RedisResult<T>) -> Result<T, Error> {
        reply.map_err(|e| {
            if !answered(&e) {
                self.drop_connection();
            }
            match aio_stream::too_large(&e) {
                Some(t) => conn::too_large(t.declared, t.budget),
                None => err(e),
            }
        })
    }

    /// Send one command on the shared connection. The connection bounds
    /// every reply by the response timeout itself (one timer per request).
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, Error> {
        let mut shared = self.connection().await?;
        let reply = cmd.query_async(&mut shared.conn).await;
        self.finish(reply)
    }

    /// Send a pipeline on the shared connection: one round trip.
    pub(super) async fn run_pipe(&self, pipe: Pipeline) -> Result<(), Error> {
        let mut shared = self.connection().await?;
        let reply = pipe.query_async::<()>(&mut shared.conn).await;
        self.finish(reply)
    }
}
