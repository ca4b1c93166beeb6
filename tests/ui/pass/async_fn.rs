// `#[quickcache]` on `async fn`: the wrapper and its helpers are async, and
// their futures are `Send` (so they can run on a multi-threaded executor).
use cachefn::quickcache;
use serde::Serialize;

#[derive(Serialize)]
struct User {
    id: u64,
}

#[quickcache(vary_on = "user.id", timeout = 60, skip_arg = "force")]
async fn sidebar(user: &User, force: bool) -> String {
    let _ = force;
    format!("sidebar of {}", user.id)
}

#[quickcache]
async fn post(id: u64) -> Result<String, std::io::Error> {
    if id == 0 {
        return Err(std::io::Error::other("no post 0"));
    }
    Ok(format!("post {id}"))
}

struct Repo {
    db: String,
}

impl Repo {
    #[quickcache(vary_on = ["self.db", "id"])]
    async fn title(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.db))
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let user = User { id: 1 };
    let repo = Repo { db: "main".into() };
    assert_send(sidebar(&user, false));
    assert_send(sidebar::clear(&user));
    assert_send(sidebar::clear_all());
    assert_send(sidebar::get_cached(&user));
    assert_send(sidebar::set_cached(&user, String::new()));
    let _key: cachefn::Key = sidebar::key(&user);
    assert_send(post(3));
    assert_send(repo.title(3));
    assert_send(repo.title_clear(3));
    assert_send(repo.title_get_cached(3));
    let _key: cachefn::Key = repo.title_key(3);
}
