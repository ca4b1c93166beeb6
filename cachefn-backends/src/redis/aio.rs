//! The async side of [`Redis`]: one multiplexed connection, shared by every
//! task, replaced when it fails.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError};

use super::{connect_err, err, Redis};
use crate::Error;

/// The shared connection, opened on first use.
#[derive(Default)]
pub(super) struct Multiplexed {
    current: parking_lot::Mutex<Option<MultiplexedConnection>>,
    /// Held while one task opens a connection; the others wait for it (at
    /// most the connect timeout) instead of each opening their own.
    opening: tokio::sync::Mutex<()>,
}

fn timed_out(what: &str, after: Duration) -> Error {
    Error::backend("redis", format!("no {what} within {after:?}"))
}

/// A server's refusal (wrong type, say) leaves the connection healthy.
fn connection_is_fine(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
}

impl Redis {
    async fn connection(&self) -> Result<MultiplexedConnection, Error> {
        let m = &self.multiplexed;
        if let Some(c) = m.current.lock().clone() {
            return Ok(c);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::backend(
                "redis",
                "the async Redis tier runs on tokio: call it inside a tokio runtime",
            ));
        }
        let _opening = tokio::time::timeout(self.connect_timeout, m.opening.lock())
            .await
            .map_err(|_| timed_out("connection", self.connect_timeout))?;
        if let Some(c) = m.current.lock().clone() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        // The connection timeout covers the socket; the setup commands (AUTH,
        // SELECT) to a frozen server are bounded here.
        let budget = self.connect_timeout + self.response_timeout;
        let conn = tokio::time::timeout(
            budget,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| timed_out("connection", budget))?
        .map_err(|e| connect_err(e, self.tls))?;
        *m.current.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Forget the shared connection after it failed: the next call opens a
    /// fresh one (the server may have restarted, or the runtime that drove
    /// the old one may be gone).
    fn drop_connection(&self) {
        self.multiplexed.current.lock().take();
    }

    /// A failed or timed-out request drops the connection: the next call
    /// opens a fresh one.
    fn finish<T>(&self, reply: redis::RedisResult<T>) -> Result<T, Error> {
        reply.map_err(|e| {
            if !connection_is_fine(&e) {
                self.drop_connection();
            }
            err(e)
        })
    }

    /// Send one command on the shared connection. The connection bounds
    /// every reply by the response timeout itself (one timer per request).
    pub(super) async fn run<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T, Error> {
        let mut conn = self.connection().await?;
        let reply = cmd.query_async(&mut conn).await;
        self.finish(reply)
    }

    /// Send a pipeline on the shared connection: one round trip.
    pub(super) async fn run_pipe(&self, pipe: Pipeline) -> Result<(), Error> {
        let mut conn = self.connection().await?;
        let reply = pipe.query_async::<()>(&mut conn).await;
        self.finish(reply)
    }
}
