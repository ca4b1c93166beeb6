//! The blog's database, a stand-in for the Postgres every process of a real
//! service shares: a directory, one JSON file per edited post. Posts 1 to
//! 20 exist from the start with sample text, so there is nothing to seed.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Posts with ids up to this exist before anyone writes one.
const SAMPLE_POSTS: u64 = 20;

#[derive(Serialize, Deserialize)]
pub struct Post {
    pub title: String,
    pub body: String,
}

pub struct Db {
    dir: PathBuf,
}

impl Db {
    /// The database in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Db> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Db { dir })
    }

    fn file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("post-{id}.json"))
    }

    /// Post `id`, or `None` when there is no such post. A file that cannot
    /// be read or parsed is an error, never a missing post.
    pub async fn post(&self, id: u64) -> io::Result<Option<Post>> {
        match tokio::fs::read(self.file(id)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok((1..=SAMPLE_POSTS).contains(&id).then(|| Post {
                    title: format!("Post {id}"),
                    body: format!("The text of post {id}."),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// Give post `id` a new title; `false` when there is no such post.
    pub async fn set_title(&self, id: u64, title: &str) -> io::Result<bool> {
        let Some(mut post) = self.post(id).await? else {
            return Ok(false);
        };
        post.title = title.to_owned();
        // Written aside, then renamed over the post: a reader in any
        // process sees the old file or the new one, never half of one.
        // The temporary name is unique per process and write.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!(".post-{id}.{}.{n}.tmp", std::process::id()));
        tokio::fs::write(&temp, serde_json::to_vec(&post)?).await?;
        tokio::fs::rename(&temp, self.file(id)).await?;
        Ok(true)
    }
}
