//! The service people build with cachefn: an axum app whose pages are
//! memoized `async fn`s, kept in a local tier in front of Redis that every
//! process shares, cleared on writes, with a stats endpoint.
//!
//! ```text
//! redis-server --port 6379 --save ""          # if none runs
//! cargo run -p cachefn-examples --example blog --features server
//! curl 'localhost:3000/post?id=1'             # computed, then served from the cache
//! curl -d 'id=1&title=Hello' localhost:3000/post
//! curl localhost:3000/stats
//! ```
//!
//! A second process (`BLOG_ADDR=127.0.0.1:3001`) serves what the first one
//! computed, and the first one's writes within milliseconds.
//! Environment: `REDIS_URL` (default `redis://127.0.0.1:6379/0`),
//! `BLOG_ADDR` (default `127.0.0.1:3000`), `BLOG_DATA` (the posts, shared
//! by every process; default `cachefn-blog` in the temp directory).
//!
//! `docs/guide.md` quotes this file; `tests/tests/blog_http.rs` runs two
//! processes of it against one Redis.

mod db;

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use cachefn::backends::{Memory, Redis};
use cachefn::{quickcache, Cache};
use db::{Db, Post};
use serde::Deserialize;

/// `GET /post?id=3`
#[derive(Deserialize)]
struct PostQuery {
    id: u64,
}

/// The key is `q.id` (not `db`). Local copies may live as long as Redis's:
/// every process drops its copy within milliseconds of a change in Redis.
#[quickcache(vary_on = "q.id", timeout = 600, local_timeout = 600)]
async fn post_page(db: &Db, q: &PostQuery) -> std::io::Result<Option<String>> {
    Ok(db.post(q.id).await?.map(|post| render(&post)))
}

async fn show(State(db): State<Arc<Db>>, Query(q): Query<PostQuery>) -> Result<Html<String>, Fail> {
    let page = post_page(&db, &q).await.map_err(internal)?;
    page.map(Html).ok_or_else(not_found)
}

/// `POST /post` with the form `id=3&title=...`
#[derive(Deserialize)]
struct Edit {
    id: u64,
    title: String,
}

async fn edit(State(db): State<Arc<Db>>, Form(edit): Form<Edit>) -> Result<StatusCode, Fail> {
    if !db.set_title(edit.id, &edit.title).await.map_err(internal)? {
        return Err(not_found());
    }
    // The page goes from Redis and from every process's local tier. This
    // handler has an id, not a `PostQuery`: `clear_by` takes the key's values.
    post_page::clear_by(edit.id).await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /stats`: this process's counters, as JSON.
async fn stats() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "post_page": post_page::stats(),
        "cache": cachefn::default_cache().stats(),
    }))
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let cache = Cache::builder()
        .local(Memory::with_capacity(10_000)) // this process's copies
        .shared(Redis::open(&env("REDIS_URL", "redis://127.0.0.1:6379/0"))?)
        .prefix("blog")
        .build();
    // cache.check_async().await?;  (Cache::check_async, coming)
    cachefn::set_default(cache);

    let data = std::env::temp_dir().join("cachefn-blog");
    let db = Arc::new(Db::open(env("BLOG_DATA", &data.to_string_lossy()))?);
    let app = Router::new()
        .route("/post", get(show).post(edit))
        .route("/stats", get(stats))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind(env("BLOG_ADDR", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// An error response: its status and a message.
type Fail = (StatusCode, String);

/// A failure of the database or of the cache: the details go to the log,
/// not to whoever sent the request.
fn internal(e: impl std::fmt::Display) -> Fail {
    eprintln!("error: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

fn not_found() -> Fail {
    (StatusCode::NOT_FOUND, "no such post".into())
}

/// The page of a post (a template, in real life). Titles are written by
/// whoever posts the form: escaped.
fn render(post: &Post) -> String {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<h1>{}</h1><p>{}</p>",
        escape(&post.title),
        escape(&post.body)
    )
}
