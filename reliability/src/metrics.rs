//! The registry's counters, the breakers' states and the call durations, through the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`), so that any exporter serves
//! them: Prometheus, StatsD, OpenTelemetry...
//!
//! Counters and gauges are read from the [`registry`](crate::registry()) when you call
//! [`export`], not pushed on every call: run it before each scrape (in the `/metrics` handler, or
//! in the exporter's upkeep). A call pays nothing for them. Call durations cannot be read back
//! from counters, so they are recorded as they happen, but only once `export` has run at least once
//! (a call then reads the clock when it starts and when it ends, and records one sample in a
//! histogram handle registered once per policy with the global recorder; [`record_durations`]
//! turns this off or on); before that, a timed call costs one relaxed atomic load. Without the
//! feature, nothing is recorded and nothing is compiled in.
//!
//! What it costs, measured on the stack of `#[retry]`, `#[circuit_breaker]` and `#[timeout]` (three
//! timed layers, about 90 ns a call without the feature; `cargo bench -p benches --bench overhead
//! --features metrics -- metrics/`): exported with durations off, or not exported yet, the same
//! within the noise; recording durations into the Prometheus exporter, about +220 ns a call (into
//! a recorder that only counts samples, +175 ns). Most of it is the six clock reads; on a busy
//! virtual machine, where a clock read cost 0.12 µs, recording cost about +1 µs.
//!
//! Every metric is labelled by `policy` (the registry name) and `layer` (the [`PolicyKind`]:
//! `retry`, `timeout`, `circuit_breaker`, `fallback`, `cached`, `rate_limit`, `bulkhead`, `hedge`). Each
//! layer exports the counters it moves (see [`PolicyStats`]), and each value
//! is the one a [`Registry::snapshot`](crate::Registry::snapshot) taken at the same moment holds.
//!
//! | metric | type | layers | value |
//! |---|---|---|---|
//! | `reliability_calls_total` | counter | all | `calls`: calls that reached the layer |
//! | `reliability_successes_total` | counter | retry, timeout, circuit_breaker, fallback, cached, hedge | `successes` |
//! | `reliability_failures_total` | counter | retry, timeout, circuit_breaker, fallback, cached, hedge | `failures` |
//! | `reliability_retries_total` | counter | retry | `retries`: attempts after the first |
//! | `reliability_timeouts_total` | counter | timeout | `timeouts`: deadlines that expired |
//! | `reliability_rejections_total` | counter | retry, circuit_breaker, rate_limit, bulkhead, hedge | `rejections`: calls rejected without running (retry, hedge: ended by an open breaker below) |
//! | `reliability_waited_total` | counter | rate_limit, bulkhead | `waited`: calls that waited for a permit or a slot |
//! | `reliability_retry_budget_exhausted_total` | counter | retry | `budget_exhausted`: give-ups because the retry budget was spent |
//! | `reliability_retry_deadline_exceeded_total` | counter | retry | `deadline_exceeded`: give-ups because the next attempt would start past the deadline |
//! | `reliability_circuit_openings_total` | counter | circuit_breaker | `openings`: transitions to open |
//! | `reliability_circuit_slow_calls_total` | counter | circuit_breaker | `slow_calls`: calls slower than `slow_call` |
//! | `reliability_circuit_isolations_total` | counter | circuit_breaker | `isolations`: `isolate()` calls that isolated it |
//! | `reliability_circuit_resets_total` | counter | circuit_breaker | `resets`: `reset()` calls |
//! | `reliability_circuit_state` | gauge | circuit_breaker | `state`: 0 closed, 1 open, 2 half-open, 3 isolated |
//! | `reliability_cache_hits_total` | counter | cached | `hits`: answered from a stored entry |
//! | `reliability_cache_misses_total` | counter | cached | `misses`: ran the layer below |
//! | `reliability_cache_coalesced_total` | counter | cached | `coalesced`: received a concurrent run's value |
//! | `reliability_cache_stale_served_total` | counter | cached | `stale_served`: misses answered with an expired entry (`stale_if_error`) |
//! | `reliability_hedges_total` | counter | hedge | `hedges`: extra attempts started |
//! | `reliability_hedges_won_total` | counter | hedge | `hedges_won`: calls answered by an extra attempt |
//! | `reliability_store_errors_total` | counter (feature `redis`) | circuit_breaker, cached, rate_limit | `store_errors`: shared-store operations that failed, timed out or were skipped |
//! | `reliability_fallback_served_total` | counter, also labelled `target` | fallback | `fallbacks`: calls served by each target |
//! | `reliability_call_duration_seconds` | histogram | retry, timeout, circuit_breaker | seconds from a call's start at the layer to its outcome (retry: all attempts and waits; timeout: one attempt; circuit_breaker: an admitted call), on the tokio clock; calls dropped before their outcome are not recorded |
//!
//! ```
//! use reliability::{Timeout, registry};
//! use metrics_util::debugging::DebuggingRecorder;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let timeout = Timeout::new("doc.metrics", Duration::from_secs(1)).unwrap();
//! timeout.run(async { Ok::<_, reliability::Error>(()) }).await.unwrap();
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, reliability::metrics::export);
//! let calls = snapshotter
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .find(|(key, ..)| {
//!         let key = key.key();
//!         key.name() == "reliability_calls_total"
//!             && key.labels().any(|l| l.key() == "policy" && l.value() == "doc.metrics")
//!     })
//!     .map(|(.., value)| value);
//! assert_eq!(calls, Some(metrics_util::debugging::DebugValue::Counter(1)));
//! # }
//! ```
//!
//! With Prometheus (`metrics-exporter-prometheus`), a `/metrics` handler is
//! `reliability::metrics::export(); handle.render()`; the `axum_service` example serves one.
//! Give `reliability_call_duration_seconds` buckets
//! (`PrometheusBuilder::set_buckets_for_metric`) to have it rendered as a histogram rather than a
//! summary.
//!
//! Durations go to the global recorder (installed with `metrics::set_global_recorder`, or by the
//! exporter), whose handles a policy registers the first time it records one: install the
//! recorder before the first `export`.

use std::sync::atomic::{AtomicU8, Ordering};

use ::metrics::{Label, Unit};

use crate::registry::registry;
use crate::snapshot::PolicyStats;
use crate::stats::PolicyKind;

/// Whether call durations are recorded: [`UNSET`] until the first [`export`] turns it [`ON`], or
/// [`record_durations`] decides.
static DURATIONS: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

/// Whether timed calls read the clock for the duration histogram.
#[inline]
pub(crate) fn recording() -> bool {
    DURATIONS.load(Ordering::Relaxed) == ON
}

/// Turns the recording of call durations on or off, from now on (the first [`export`] turns it
/// on unless this was called before).
///
/// Recording costs each call of a retry, timeout or circuit breaker layer two clock reads and one
/// sample given to the recorder; counters and gauges cost calls nothing either way. Turn it off
/// to export counters only.
pub fn record_durations(enabled: bool) {
    DURATIONS.store(if enabled { ON } else { OFF }, Ordering::Relaxed);
}

/// The name of the duration histogram.
const DURATION: &str = "reliability_call_duration_seconds";
/// The name of the breaker state gauge.
const STATE: &str = "reliability_circuit_state";
/// The name of the fallback targets' counter.
const SERVED: &str = "reliability_fallback_served_total";

/// Layers whose calls end with an outcome of their own.
const ENDING: &[PolicyKind] = &[
    PolicyKind::Retry,
    PolicyKind::Timeout,
    PolicyKind::CircuitBreaker,
    PolicyKind::Fallback,
    PolicyKind::Cache,
    PolicyKind::Hedge,
];

/// One exported counter: its name, its description, the layers that move it, and its value.
struct Exported {
    name: &'static str,
    help: &'static str,
    layers: &'static [PolicyKind],
    value: fn(&PolicyStats) -> u64,
}

/// Every counter [`export`] sets, but the fallback targets'.
const COUNTERS: &[Exported] = &[
    Exported {
        name: "reliability_calls_total",
        help: "Calls that reached the layer.",
        layers: &[
            PolicyKind::Retry,
            PolicyKind::Timeout,
            PolicyKind::CircuitBreaker,
            PolicyKind::Fallback,
            PolicyKind::Cache,
            PolicyKind::RateLimit,
            PolicyKind::Bulkhead,
            PolicyKind::Hedge,
        ],
        value: |p| p.calls,
    },
    Exported {
        name: "reliability_successes_total",
        help: "Calls that ended in success at the layer.",
        layers: ENDING,
        value: |p| p.successes,
    },
    Exported {
        name: "reliability_failures_total",
        help: "Calls that ended in failure at the layer.",
        layers: ENDING,
        value: |p| p.failures,
    },
    Exported {
        name: "reliability_retries_total",
        help: "Attempts after the first.",
        layers: &[PolicyKind::Retry],
        value: |p| p.retries,
    },
    Exported {
        name: "reliability_timeouts_total",
        help: "Deadlines that expired.",
        layers: &[PolicyKind::Timeout],
        value: |p| p.timeouts,
    },
    Exported {
        name: "reliability_rejections_total",
        help: "Calls rejected without running (retry, hedge: calls ended by an open circuit breaker below).",
        layers: &[
            PolicyKind::Retry,
            PolicyKind::CircuitBreaker,
            PolicyKind::RateLimit,
            PolicyKind::Bulkhead,
            PolicyKind::Hedge,
        ],
        value: |p| p.rejections,
    },
    Exported {
        name: "reliability_waited_total",
        help: "Calls that waited for a permit (rate limit) or queued for a slot (bulkhead).",
        layers: &[PolicyKind::RateLimit, PolicyKind::Bulkhead],
        value: |p| p.waited,
    },
    Exported {
        name: "reliability_retry_budget_exhausted_total",
        help: "Calls that gave up because the retry budget was spent.",
        layers: &[PolicyKind::Retry],
        value: |p| p.budget_exhausted,
    },
    Exported {
        name: "reliability_retry_deadline_exceeded_total",
        help: "Calls that gave up because the next attempt would start past the deadline.",
        layers: &[PolicyKind::Retry],
        value: |p| p.deadline_exceeded,
    },
    Exported {
        name: "reliability_circuit_openings_total",
        help: "Transitions of the circuit breaker to open.",
        layers: &[PolicyKind::CircuitBreaker],
        value: |p| p.openings,
    },
    Exported {
        name: "reliability_circuit_slow_calls_total",
        help: "Calls slower than the circuit breaker's slow_call.",
        layers: &[PolicyKind::CircuitBreaker],
        value: |p| p.slow_calls,
    },
    Exported {
        name: "reliability_circuit_isolations_total",
        help: "isolate() calls that isolated the circuit breaker.",
        layers: &[PolicyKind::CircuitBreaker],
        value: |p| p.isolations,
    },
    Exported {
        name: "reliability_circuit_resets_total",
        help: "reset() calls of the circuit breaker.",
        layers: &[PolicyKind::CircuitBreaker],
        value: |p| p.resets,
    },
    Exported {
        name: "reliability_cache_hits_total",
        help: "Calls answered from a stored entry.",
        layers: &[PolicyKind::Cache],
        value: |p| p.hits,
    },
    Exported {
        name: "reliability_cache_misses_total",
        help: "Calls that ran the layer below the cache.",
        layers: &[PolicyKind::Cache],
        value: |p| p.misses,
    },
    Exported {
        name: "reliability_cache_coalesced_total",
        help: "Calls that received the value of a concurrent run of the same key.",
        layers: &[PolicyKind::Cache],
        value: |p| p.coalesced,
    },
    Exported {
        name: "reliability_cache_stale_served_total",
        help: "Misses answered with an expired entry because the layer below failed or only a fallback answered.",
        layers: &[PolicyKind::Cache],
        value: |p| p.stale_served,
    },
    Exported {
        name: "reliability_hedges_total",
        help: "Extra attempts a hedge started, after its delay or after a failed attempt.",
        layers: &[PolicyKind::Hedge],
        value: |p| p.hedges,
    },
    Exported {
        name: "reliability_hedges_won_total",
        help: "Hedged calls answered by an extra attempt (not the first).",
        layers: &[PolicyKind::Hedge],
        value: |p| p.hedges_won,
    },
    #[cfg(feature = "redis")]
    Exported {
        name: "reliability_store_errors_total",
        help: "Operations on the shared store that failed, timed out or were skipped; the call used local state.",
        layers: &[
            PolicyKind::CircuitBreaker,
            PolicyKind::Cache,
            PolicyKind::RateLimit,
        ],
        value: |p| p.store_errors,
    },
];

/// Sets every metric of the table above to the registry's value now, and describes them; the
/// first call also starts recording call durations (unless [`record_durations`]`(false)` was
/// called before).
///
/// Run it before each scrape: counters and gauges are read from the registry here, not pushed
/// by calls. It goes to the recorder in scope (the global one, or one set with
/// `metrics::with_local_recorder`). It allocates the labels of every metric, once per scrape.
pub fn export() {
    let _ = DURATIONS.compare_exchange(UNSET, ON, Ordering::Relaxed, Ordering::Relaxed);
    describe();
    let snapshot = registry().snapshot();
    for policy in snapshot.policies() {
        export_policy(policy);
    }
}

/// The `policy` and `layer` labels of `policy`.
fn labels(kind: PolicyKind, name: &str) -> Vec<Label> {
    vec![
        Label::new("policy", name.to_owned()),
        Label::new("layer", kind.to_string()),
    ]
}

fn export_policy(policy: &PolicyStats) {
    let labels = labels(policy.kind, &policy.name);
    for counter in COUNTERS {
        if counter.layers.contains(&policy.kind) {
            ::metrics::counter!(counter.name, labels.clone()).absolute((counter.value)(policy));
        }
    }
    if policy.kind == PolicyKind::CircuitBreaker
        && let Some(state) = policy.state
    {
        ::metrics::gauge!(STATE, labels.clone()).set(f64::from(state.as_u8()));
    }
    for (target, served) in &policy.fallbacks {
        let mut labels = labels.clone();
        labels.push(Label::new("target", target.clone()));
        ::metrics::counter!(SERVED, labels).absolute(*served);
    }
}

fn describe() {
    for counter in COUNTERS {
        ::metrics::describe_counter!(counter.name, Unit::Count, counter.help);
    }
    ::metrics::describe_counter!(SERVED, Unit::Count, "Calls served by each fallback target.");
    ::metrics::describe_gauge!(
        STATE,
        "State of the circuit breaker: 0 closed, 1 open, 2 half-open, 3 isolated."
    );
    ::metrics::describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time from a call's start at the layer to its outcome."
    );
}

/// The duration histogram of a policy, registered with the global recorder.
pub(crate) fn duration_histogram(kind: PolicyKind, name: &str) -> ::metrics::Histogram {
    ::metrics::histogram!(DURATION, labels(kind, name))
}
