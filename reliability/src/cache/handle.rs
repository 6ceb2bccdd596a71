//! A handle on a cache found by name, whatever its key and value types: what operators and tests
//! need to look at it and empty it.

use std::any::Any;
use std::sync::Arc;

use crate::registry::{Named, Registry};
use crate::stats::PolicyKind;

/// A cache found by name with [`registry().cache(name)`](Registry::cache).
///
/// ```
/// use reliability::{cached, registry};
///
/// #[cached(name = "answers")]
/// async fn answer(question: String) -> String {
///     format!("an answer to {question}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// answer("why".to_owned()).await;
/// let cache = registry().cache("answers").unwrap();
/// assert_eq!(cache.entry_count(), 1);
/// // The key as `#[cached]` computes it: a tuple of the arguments (here one `String`).
/// assert!(cache.invalidate(&("why".to_owned(),)));
/// assert!(!cache.invalidate(&("why".to_owned(),)), "gone already");
/// assert!(!cache.invalidate(&"why"), "not the cache's key type");
/// # }
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    name: Arc<str>,
    named: Arc<dyn Named>,
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("name", &self.name)
            .field("entry_count", &self.entry_count())
            .finish()
    }
}

impl CacheHandle {
    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of entries, after applying pending insertions, evictions and expirations.
    pub fn entry_count(&self) -> u64 {
        self.named.as_cache().map_or(0, |c| c.entry_count())
    }

    /// Removes every entry, at once for every thread.
    pub fn invalidate_all(&self) {
        if let Some(cache) = self.named.as_cache() {
            cache.invalidate_all();
        }
    }

    /// Removes the entry for `key` (the key as the `key` expression of `#[cached]` computes it, by
    /// default the tuple of the arguments but `self`), at once for every thread. `false` when it was
    /// absent, or `key` is not of the cache's key type.
    pub fn invalidate<Q: Any>(&self, key: &Q) -> bool {
        self.named.as_cache().is_some_and(|c| c.invalidate(key))
    }
}

impl Registry {
    /// The cache registered under `name`, or `None` until one of that name has been used (or after
    /// every handle to one built at run time was dropped). With several caches of one name and
    /// different key types, the one made last.
    pub fn cache(&self, name: &str) -> Option<CacheHandle> {
        let named = self.find_named(PolicyKind::Cache, name)?;
        named.as_cache()?;
        Some(CacheHandle {
            name: name.into(),
            named,
        })
    }
}
