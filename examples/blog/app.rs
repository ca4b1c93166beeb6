//! The blog app: routes and memoized async functions. `main.rs` serves it;
//! the integration test `tests/tests/blog_http.rs` drives it over HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use cachefn::quickcache;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// A slow database: every query takes 20 ms.
#[derive(Default)]
pub struct Db {
    posts: RwLock<BTreeMap<u64, Post>>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Post {
    pub id: u64,
    pub title: String,
    pub body: String,
}

#[derive(Serialize, Deserialize)]
pub struct User {
    pub id: u64,
}

/// How many times each memoized body really ran (served at `/stats`).
#[derive(Default)]
pub struct Renders {
    pub list: AtomicUsize,
    pub page: AtomicUsize,
    pub sidebar: AtomicUsize,
}

pub struct Blog {
    db: Db,
    pub renders: Renders,
}

const QUERY_TIME: Duration = Duration::from_millis(20);

impl Blog {
    pub fn with_posts(n: u64) -> Arc<Blog> {
        let posts = (1..=n)
            .map(|id| {
                let title = format!("Post {id}");
                let body = format!("The text of post {id}.");
                (id, Post { id, title, body })
            })
            .collect();
        Arc::new(Blog {
            db: Db {
                posts: RwLock::new(posts),
            },
            renders: Renders::default(),
        })
    }

    /// The front page: every title. One entry for the whole function.
    #[quickcache(vary_on = [], timeout = 60)]
    async fn post_list(&self) -> String {
        self.renders.list.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(QUERY_TIME).await;
        let posts = self.db.posts.read().await;
        let items: String = posts
            .values()
            .map(|p| format!("<li><a href=\"/posts/{}\">{}</a></li>", p.id, p.title))
            .collect();
        format!("<ul>{items}</ul>")
    }

    /// One post, rendered; `None` when there is no such post (cached too).
    #[quickcache(timeout = 300)]
    async fn post_page(&self, id: u64) -> Option<String> {
        self.renders.page.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(QUERY_TIME).await;
        let posts = self.db.posts.read().await;
        let post = posts.get(&id)?;
        Some(format!("<h1>{}</h1><p>{}</p>", post.title, post.body))
    }

    /// A per-user sidebar: varies on the user's id only.
    #[quickcache(vary_on = "user.id", timeout = 300, local_timeout = 10)]
    async fn sidebar(&self, user: &User) -> String {
        self.renders.sidebar.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(QUERY_TIME).await;
        format!("<aside>Hello, reader {}</aside>", user.id)
    }
}

#[derive(Deserialize)]
struct Reader {
    user: Option<u64>,
}

async fn index(State(blog): State<Arc<Blog>>) -> Html<String> {
    Html(blog.post_list().await)
}

async fn post(
    State(blog): State<Arc<Blog>>,
    Path(id): Path<u64>,
    Query(reader): Query<Reader>,
) -> Result<Html<String>, StatusCode> {
    let page = blog.post_page(id).await.ok_or(StatusCode::NOT_FOUND)?;
    let user = User {
        id: reader.user.unwrap_or(0),
    };
    Ok(Html(format!("{page}{}", blog.sidebar(&user).await)))
}

/// The write endpoint: the request body is the new title. The post's page
/// and the front page are cleared, so the next request shows it.
async fn retitle(
    State(blog): State<Arc<Blog>>,
    Path(id): Path<u64>,
    title: String,
) -> Result<StatusCode, (StatusCode, String)> {
    {
        let mut posts = blog.db.posts.write().await;
        let post = posts
            .get_mut(&id)
            .ok_or((StatusCode::NOT_FOUND, "no such post".into()))?;
        post.title = title;
    }
    let failed = |e: cachefn::Error| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    Blog::post_page_clear(id).await.map_err(failed)?;
    Blog::post_list_clear_all().await.map_err(failed)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(State(blog): State<Arc<Blog>>) -> String {
    let r = &blog.renders;
    format!(
        "list={} page={} sidebar={}",
        r.list.load(Ordering::SeqCst),
        r.page.load(Ordering::SeqCst),
        r.sidebar.load(Ordering::SeqCst)
    )
}

/// The routes: `GET /`, `GET /posts/{id}?user=N`, `POST /posts/{id}` (new
/// title as the body), `GET /stats`.
pub fn router(blog: Arc<Blog>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/posts/{id}", get(post).post(retitle))
        .route("/stats", get(stats))
        .with_state(blog)
}
