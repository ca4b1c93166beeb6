//! The blog example (`examples/blog`), started on a loopback port and driven
//! over HTTP: repeated requests are served by the cache (counted through the
//! app's `/stats`), and the write endpoint's `clear` shows fresh data next.

#[path = "../../examples/blog/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;

use cachefn::backends::{Memory, Redis};
use cachefn::Cache;
use cachefn_tests::redis_server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request on a fresh connection: (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http(addr, "GET", path, "").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn stats(addr: SocketAddr) -> String {
    get(addr, "/stats").await
}

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app::router(app::Blog::with_posts(5)))
            .await
            .unwrap()
    });
    addr
}

/// The whole scenario against whatever the default cache is now.
async fn scenario() {
    let addr = serve().await;
    let front = get(addr, "/").await;
    assert!(front.contains("Post 3"), "{front}");
    for _ in 0..5 {
        assert_eq!(get(addr, "/").await, front);
    }
    let page = get(addr, "/posts/3?user=7").await;
    assert!(
        page.contains("<h1>Post 3</h1>") && page.contains("reader 7"),
        "{page}"
    );
    for _ in 0..5 {
        assert_eq!(get(addr, "/posts/3?user=7").await, page);
    }
    // Another reader: the post page is shared, the sidebar is per user.
    assert!(get(addr, "/posts/3?user=8").await.contains("reader 8"));
    assert_eq!(stats(addr).await, "list=1 page=1 sidebar=2");
    // A missing post is a 404, and that answer is cached too.
    assert_eq!(http(addr, "GET", "/posts/99", "").await.0, 404);
    assert_eq!(http(addr, "GET", "/posts/99", "").await.0, 404);
    assert_eq!(stats(addr).await, "list=1 page=2 sidebar=2");

    // The write endpoint clears what it changed: fresh data next request.
    let (status, body) = http(addr, "POST", "/posts/3", "Retitled").await;
    assert_eq!(status, 204, "{body}");
    let page = get(addr, "/posts/3?user=7").await;
    assert!(page.contains("<h1>Retitled</h1>"), "{page}");
    assert!(get(addr, "/").await.contains("Retitled"));
    assert_eq!(
        stats(addr).await,
        "list=2 page=3 sidebar=2",
        "sidebars untouched"
    );
}

#[test]
fn the_blog_serves_from_the_cache_and_shows_fresh_data_after_a_write() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The default: in memory, no server.
    rt.block_on(scenario());

    // With Redis behind the local tier, as `REDIS_URL=... cargo run --example blog`.
    let Some(server) = RedisServer::start() else {
        return;
    };
    cachefn::set_default(
        Cache::builder()
            .local(Memory::with_capacity(1_000))
            .shared(Redis::open(&server.url()).unwrap())
            .prefix("blog")
            .build(),
    );
    rt.block_on(scenario());
    let mut raw = server.raw();
    let keys: Vec<String> = redis::cmd("KEYS").arg("blog:*").query(&mut raw).unwrap();
    assert!(keys.len() >= 4, "entries live in Redis: {keys:?}");
    drop(rt);
}
