//! Counters kept by every policy, sharded so that threads do not write one shared cache line.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::registry::PolicyKind;

const SHARDS: usize = 8;

/// One cache line per shard.
#[repr(align(64))]
#[derive(Default)]
struct Shard([AtomicU64; FIELDS]);

const FIELDS: usize = 9;

/// The counters a policy can move. Not every policy moves every counter.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub(crate) enum Field {
    Calls = 0,
    Successes,
    Failures,
    Retries,
    Timeouts,
    Rejections,
    Hits,
    Misses,
    Openings,
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}

/// The live counters of one named policy.
pub(crate) struct Stats {
    pub(crate) kind: PolicyKind,
    pub(crate) name: Arc<str>,
    shards: [Shard; SHARDS],
    /// Calls served by each fallback target, in declaration order.
    targets: Mutex<Vec<(String, u64)>>,
}

impl Stats {
    pub(crate) fn new(kind: PolicyKind, name: Arc<str>) -> Self {
        Self {
            kind,
            name,
            shards: Default::default(),
            targets: Mutex::new(Vec::new()),
        }
    }

    #[inline]
    pub(crate) fn add(&self, field: Field) {
        self.shards[shard_index()].0[field as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, field: Field) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[field as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Makes sure every target has a row, so a snapshot lists targets that never served.
    pub(crate) fn declare_targets(&self, names: &[&str]) {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            if !targets.iter().any(|(n, _)| n == name) {
                targets.push(((*name).to_owned(), 0));
            }
        }
    }

    pub(crate) fn served_by(&self, target: &str) {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        match targets.iter_mut().find(|(n, _)| n == target) {
            Some((_, count)) => *count += 1,
            None => targets.push((target.to_owned(), 1)),
        }
    }

    pub(crate) fn targets(&self) -> Vec<(String, u64)> {
        self.targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
