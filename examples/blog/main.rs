//! A small blog on axum whose handlers call memoized async functions.
//!
//! ```text
//! cargo run --example blog --features server                                      # in-memory cache
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example blog --features server   # tiered, shared by every process
//! ```
//!
//! Then: `curl localhost:3000/`, `curl 'localhost:3000/posts/1?user=7'`,
//! `curl -d 'A new title' localhost:3000/posts/1`, and `curl localhost:3000/stats`
//! to see how many times each body really ran. `BLOG_ADDR` sets the address.

mod app;

use cachefn::backends::{Memory, Redis};
use cachefn::Cache;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        let cache = Cache::builder()
            .local(Memory::with_capacity(10_000))
            .shared(Redis::open(&url)?)
            .prefix("blog")
            .build();
        cachefn::set_default(cache);
        println!("cache: local tier in front of Redis at {url}");
    } else {
        println!("cache: in-memory (set REDIS_URL to share it through Redis)");
    }
    let addr = std::env::var("BLOG_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app::router(app::Blog::with_posts(20))).await?;
    Ok(())
}
