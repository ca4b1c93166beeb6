// The guide is the README, with every feature set: examples that need a
// feature say so and compile only with it.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod codec;
mod coherence;
mod entry;
mod flight;
mod freshness;
mod io;
mod keeper;
mod key;
mod log;
mod memo;
mod registry;
mod shared_flight;
mod stats;
mod weigh;

pub use cache::{
    Cache, CacheBuilder, DEFAULT_CAPACITY, DEFAULT_LOCAL_TTL, DEFAULT_PREFIX, MAX_TTL,
};
pub use cachefn_backends::Error;
pub use key::{Key, MAX_KEY_LEN};
pub use registry::{cache, default_cache, register, set_default};
pub use stats::Stats;

/// Memoize a function: its result is cached under a key built from the
/// arguments that `vary_on` names, and typed helpers are generated next to it.
///
/// ```
/// use cachefn::quickcache;
///
/// #[quickcache(timeout = 60)]
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> Result<(), cachefn::Error> {
/// assert_eq!(square(4), 16);            // runs the body
/// assert_eq!(square(4), 16);            // served from the cache
/// assert_eq!(square::get_cached(4), Some(16));
/// square::clear(4)?;
/// # Ok(()) }
/// ```
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `vary_on = "user.id"`, `vary_on = ["user.id", "page"]` | the paths the key is built from: a parameter, then fields and zero-argument method calls (`"post.slug()"`, `"self.tenant"`); omitted: every parameter but `skip_arg`; `[]`: one entry |
/// | `timeout = 60` | seconds an entry lives (at least 1) |
/// | `local_timeout = 10` | seconds an entry lives in the local tier of a cache with a shared tier; at most `timeout` |
/// | `skip_arg = "force"` | a `bool` parameter: `true` runs the body and replaces the entry |
/// | `cache = "sessions"` | the cache registered under that name instead of the default one |
/// | `name = "blog.sidebar"` | the function's name inside keys |
/// | `version = 2` | part of every key: bump it when the value's meaning changes |
/// | `cache_none = false` | for `Option<T>`: do not cache `None` |
/// | `none_timeout = 10` | for `Option<T>`: seconds a `None` lives, at most `timeout` (a missing row is looked up again sooner than a found one is); `0` is `cache_none = false` |
/// | `stale_while_revalidate = 30` | seconds past `timeout` an entry is still served while one caller recomputes it |
/// | `stale_if_error = 600` | for `Result`: seconds past `timeout` an entry is served when recomputing returns `Err` |
/// | `early_refresh = 1.0` | XFetch's beta (0 to 1000; 0, the default, is off) |
/// | `single_flight = "process"` | one computation per key per process (the default); `"shared"`: one across every process using a Redis or Redis Cluster shared tier, through a lease in it (see the README) |
///
/// Unset options come from [`config::quickcache!`](crate::config::quickcache),
/// then from the library defaults. A mistake is a compile error at its token.
///
/// # Generated helpers
///
/// For a free function `f`, a module `f` with `f::clear(args..)`,
/// `f::clear_all()`, `f::key(args..)`, `f::get_cached(args..)`,
/// `f::set_cached(args.., value)` and `f::stats()`; their arguments are the
/// parameters the key reads, in declaration order. A method `m` gets
/// associated functions `m_clear`, `m_key`, ... instead (an `impl` cannot hold
/// a module); an associated function without `self` cannot be memoized.
///
/// When `vary_on` reads a field or a method call, `f::clear_by`, `f::key_by`,
/// `f::get_cached_by` and `f::set_cached_by` take the key's values
/// themselves, in `vary_on` order, so that a handler with only an id can
/// clear the entry. Any `Serialize` value is written as the call writes it
/// (integer widths and references do not matter); a value of another kind
/// than a field's type (a string for a number) is a key error:
///
/// ```
/// use cachefn::quickcache;
///
/// pub struct Query { pub user_id: u64, pub tab: String }
///
/// #[quickcache(vary_on = "q.user_id")]
/// fn profile(q: &Query) -> String { format!("user {}", q.user_id) }
///
/// # fn main() -> Result<(), cachefn::Error> {
/// let q = Query { user_id: 7, tab: "posts".into() };
/// profile(&q);
/// assert_eq!(profile::key_by(7), profile::key(&q));
/// profile::clear_by(7)?;                       // no `Query` needed
/// assert!(profile::get_cached_by(7).is_none());
/// assert!(profile::clear_by("7").is_err());    // a string for a u64
/// # Ok(()) }
/// ```
///
/// See the [crate docs](crate#the-attribute) for the guide.
pub use cachefn_macros::quickcache;

/// Storage backends: the [`Memory`](backends::Memory) local tier and the
/// byte-level [`Backend`](backends::Backend) stores.
pub mod backends {
    pub use cachefn_backends::*;
}

/// Crate-wide defaults for `#[quickcache]`.
pub mod config {
    /// Set `#[quickcache]` defaults for every function of this crate.
    ///
    /// Write it once, anywhere in the crate (usually the crate root). Each
    /// option applies to every `#[quickcache]` in the same crate that does
    /// not set it; without this macro the library defaults apply
    /// (`timeout = 300`, `local_timeout = 10`, `version = 1`,
    /// `cache_none = true`, the default cache). Precedence: attribute, then
    /// crate defaults, then library defaults.
    ///
    /// Options: `timeout`, `local_timeout`, `version`, `cache`,
    /// `cache_none` and `none_timeout` (apply to the functions that return
    /// `Option`; a function that sets either one takes neither from here),
    /// `stale_while_revalidate`, `stale_if_error` (applies to the functions
    /// that return `Result`), `early_refresh`, `single_flight`. Any other
    /// word is a compile error.
    ///
    /// ```
    /// cachefn::config::quickcache! {
    ///     timeout = 600,
    ///     local_timeout = 5,
    ///     version = 3,
    /// }
    ///
    /// #[cachefn::quickcache]
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// # fn main() {
    /// assert_eq!(square(4), 16);
    /// assert!(square::key(4).to_string().ends_with(":v3:4"));
    /// # }
    /// ```
    pub use cachefn_macros::config_quickcache as quickcache;
}

/// What `#[quickcache]` expands to; not a public API, may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::key::collide_all_fingerprints;
    pub use crate::key::KeyBuilder;
    pub use crate::memo::*;

    /// A value that can be part of a key.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be part of a cache key",
        label = "this is part of the cache key",
        note = "every argument in the key must implement serde::Serialize: derive it, or name a field that does with `vary_on` (e.g. `vary_on = \"user.id\"`)"
    )]
    pub trait KeyPart: serde::Serialize {}
    impl<T: serde::Serialize + ?Sized> KeyPart for T {}
}

pub(crate) use __private::KeyPart;

/// A value the low-level API ([`Cache::set`], [`Cache::add`],
/// [`Cache::set_many`] and their async twins) can store: owned serde data.
///
/// The value's header records the serde shape of the type it will be read
/// back as (traced through its `Deserialize` impl), so that a reader whose
/// type has another shape (a later deploy that reordered a struct's fields,
/// say) gets a miss instead of a wrong value. That needs an owned type:
/// store a `String`, not a `&str`; a `Vec<String>`, not a `Vec<&str>`.
///
/// ```
/// # use std::time::Duration;
/// let cache = cachefn::Cache::memory();
/// cache.set("title", &"Hello".to_string(), Duration::from_secs(60))?;
/// assert_eq!(cache.get::<String>("title").as_deref(), Some("Hello"));
/// # Ok::<(), cachefn::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a cache",
    label = "this value is stored",
    note = "a stored value must be owned serde data (Serialize + DeserializeOwned + 'static), so that it can be read back as the same type: store a String, not a &str (`&text.to_string()`), derive Serialize and Deserialize on your own types"
)]
pub trait Storable: serde::Serialize + serde::de::DeserializeOwned + 'static {}
impl<T: serde::Serialize + serde::de::DeserializeOwned + 'static> Storable for T {}
