//! The program both `shapes_old` and `shapes_new` run: they differ only in
//! the types (module `types`, defined in each binary), so a value one build
//! writes is read back by a separately compiled build of "the same" type.
//!
//! `shapes_<build> write|read <case> disk:<dir>|redis:<url>`: `write`
//! stores the case's sample value under the key `<case>`; `read` prints
//! `CHILD <value as Debug>` or `CHILD MISS`.

use std::fmt::Debug;
use std::time::Duration;

use cachefn::backends::{Disk, Redis};
use cachefn::Cache;
use serde::{de::DeserializeOwned, Serialize};

/// A value each case writes.
pub trait Sample: Serialize + DeserializeOwned + Debug + 'static {
    fn sample() -> Self;
}

pub fn cache(tier: &str) -> Cache {
    let builder = Cache::builder().prefix("shapes");
    if let Some(dir) = tier.strip_prefix("disk:") {
        builder
            .shared(Disk::open(dir).expect("open the disk tier"))
            .build()
    } else if let Some(url) = tier.strip_prefix("redis:") {
        builder
            .shared(Redis::open(url).expect("open redis"))
            .build()
    } else {
        panic!("tier {tier:?}: expected disk:<dir> or redis:<url>")
    }
}

pub fn act<T: Sample>(action: &str, case: &str, cache: &Cache) {
    match action {
        "write" => cache
            .set(case, &T::sample(), Duration::from_secs(600))
            .expect("write the sample"),
        "read" => match cache.get::<T>(case) {
            Some(v) => println!("CHILD {v:?}"),
            None => println!("CHILD MISS"),
        },
        _ => panic!("action {action:?}: expected write or read"),
    }
}

/// Parse the arguments and run `dispatch(action, case, cache)`.
pub fn main(dispatch: fn(&str, &str, &Cache)) {
    let args: Vec<String> = std::env::args().collect();
    let [_, action, case, tier] = &args[..] else {
        panic!(
            "usage: {} write|read <case> disk:<dir>|redis:<url>",
            args[0]
        );
    };
    dispatch(action, case, &cache(tier));
}
