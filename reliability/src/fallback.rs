//! Fallback: when the layer below fails, serve the answer of the next target in a list.

use std::future::Future;
use std::sync::Arc;

use crate::registry::registry;
use crate::stats::{Field, Kept, PolicyKind, Stats};

pub(crate) mod expand;

/// A named fallback chain whose counters (calls served by each target) are in the
/// [`registry`](crate::registry()).
///
/// With the attribute, targets are functions; here the chain is any code you like, and
/// [`run`](Self::run) covers the common one-target case:
///
/// ```
/// use reliability::Fallback;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fallback = Fallback::new("answer", &["canned"]);
/// let out: Result<String, &str> = fallback
///     .run(async { Err("primary down") }, |_error| async { Ok("a canned answer".to_owned()) })
///     .await;
/// assert_eq!(out.unwrap(), "a canned answer");
/// let stats = reliability::registry().snapshot();
/// assert_eq!(stats.fallback("answer").unwrap().fallbacks, [("canned".to_owned(), 1)]);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Fallback {
    name: Arc<str>,
    targets: Arc<[String]>,
    stats: Arc<Stats>,
}

impl Fallback {
    /// A fallback chain registered as `name`, with the names of its targets in order.
    pub fn new(name: &str, targets: &[&str]) -> Self {
        let stats = registry().stats(PolicyKind::Fallback, name);
        stats.declare_targets(targets);
        Fallback {
            name: name.into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            stats,
        }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target names, in order.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// Runs `primary`; if it fails, runs `alternative` with its error, counted as served by the
    /// first target.
    pub async fn run<T, E, F, A, AF>(&self, primary: F, alternative: A) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        A: FnOnce(E) -> AF,
        AF: Future<Output = Result<T, E>>,
    {
        let entered = self.enter();
        let error = match primary.await {
            Ok(value) => return Ok(self.primary_ok(entered, value)),
            Err(error) => error,
        };
        self.primary_failed(true);
        match alternative(error).await {
            Ok(value) => Ok(self.served(0, value)),
            Err(error) => Err(self.all_failed(error)),
        }
    }

    /// Counts a call of the chain; what it gives counts the call's success
    /// ([`primary_ok`](Self::primary_ok)) without finding this thread's counters again.
    #[inline]
    pub(crate) fn enter(&self) -> Kept<'_> {
        self.stats.add_keep(Field::Calls)
    }

    /// Counts a success of the layer below, for the call `entered`.
    #[inline]
    pub(crate) fn primary_ok<T>(&self, entered: Kept<'_>, value: T) -> T {
        self.stats.add_kept(entered, Field::Successes);
        value
    }

    /// Reports a failure of the layer below; `applies` says whether the chain takes over.
    pub(crate) fn primary_failed(&self, applies: bool) -> bool {
        if applies {
            tracing::info!(target: "reliability", function = %self.name, "primary failed; trying fallbacks");
        } else {
            self.stats.add(Field::Failures);
            tracing::debug!(target: "reliability", function = %self.name, "primary failed; `when` keeps the error");
        }
        applies
    }

    /// Counts a call served by target `index`.
    pub(crate) fn served<T>(&self, index: usize, value: T) -> T {
        let target = self.targets.get(index).map_or("?", String::as_str);
        self.stats.served_by(target);
        tracing::info!(target: "reliability", function = %self.name, fallback = target, "served by fallback");
        value
    }

    /// Reports that target `index` failed too.
    pub(crate) fn target_failed(&self, index: usize) {
        let target = self.targets.get(index).map_or("?", String::as_str);
        tracing::warn!(target: "reliability", function = %self.name, fallback = target, "fallback failed");
    }

    /// Counts a call for which every target failed.
    pub(crate) fn all_failed<E>(&self, error: E) -> E {
        self.stats.add(Field::Failures);
        tracing::warn!(target: "reliability", function = %self.name, "every fallback failed");
        error
    }
}
