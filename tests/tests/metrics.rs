//! `reliability::metrics`: a stack with retries, a timeout, an opening breaker, a fallback, cache
//! hits, the load layers and a hedge runs under a Prometheus recorder; the text it renders is parsed, and
//! every exported value must equal the registry's snapshot, every counter the snapshot holds must
//! be exported, and the duration histograms must hold exactly the calls that ended.
//!
//! One test in this binary: the recorder is global, and the registry's rows must not move between
//! the export and the snapshot.

use std::collections::BTreeMap;
use std::future::pending;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use reliability::tower::{BulkheadLayer, HedgeLayer, RateLimitLayer};
use reliability::{
    Bulkhead, CircuitState, Hedge, PolicyKind, PolicyStats, RateLimiter, cached, circuit_breaker,
    fallback, registry, retry, timeout,
};
use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};

#[derive(Debug, Clone, thiserror::Error)]
enum LlmError {
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

#[cached(ttl = 3600, name = "metrics.answer")]
#[fallback(canned)]
#[retry(max = 3, backoff = "fixed", delay = "100ms", jitter = "none")]
#[circuit_breaker(name = "metrics.answer", failure_threshold = 3, cooldown = 60)]
#[timeout(ms = 500)]
async fn answer(query: String) -> Result<String, LlmError> {
    if query.starts_with("hang") {
        pending::<()>().await;
    }
    Ok(format!("answer to {query}"))
}

async fn canned(query: String) -> String {
    format!("no answer to {query} now")
}

/// One sample of the Prometheus text: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format's samples (comments skipped); panics on a line it cannot read.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (key, after) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    let end = after
                        .find('"')
                        .unwrap_or_else(|| panic!("unclosed label value in {line:?}"));
                    labels.insert(key.to_owned(), after[..end].to_owned());
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// What the snapshot says each exported series must be, written here apart from the library's
/// own table: (metric, policy, layer, target) -> value.
type Key = (String, String, String, Option<String>);

fn expected(policies: &[PolicyStats]) -> BTreeMap<Key, f64> {
    let mut expected = BTreeMap::new();
    for p in policies {
        let layer = p.kind.to_string();
        let mut put = |metric: &str, value: u64| {
            let key = (metric.to_owned(), p.name.clone(), layer.clone(), None);
            expected.insert(key, value as f64);
        };
        put("reliability_calls_total", p.calls);
        let ends = matches!(
            p.kind,
            PolicyKind::Retry
                | PolicyKind::Timeout
                | PolicyKind::CircuitBreaker
                | PolicyKind::Fallback
                | PolicyKind::Cache
                | PolicyKind::Hedge
        );
        // The shared store's errors (feature `redis`, on in this crate): every layer that can
        // share its state exports them, zero while it has no store.
        if matches!(
            p.kind,
            PolicyKind::CircuitBreaker | PolicyKind::Cache | PolicyKind::RateLimit
        ) {
            put("reliability_store_errors_total", p.store_errors);
        }
        if ends {
            put("reliability_successes_total", p.successes);
            put("reliability_failures_total", p.failures);
        }
        match p.kind {
            PolicyKind::Retry => {
                put("reliability_retries_total", p.retries);
                put("reliability_rejections_total", p.rejections);
                put(
                    "reliability_retry_budget_exhausted_total",
                    p.budget_exhausted,
                );
                put(
                    "reliability_retry_deadline_exceeded_total",
                    p.deadline_exceeded,
                );
            }
            PolicyKind::Timeout => put("reliability_timeouts_total", p.timeouts),
            PolicyKind::CircuitBreaker => {
                put("reliability_rejections_total", p.rejections);
                put("reliability_circuit_openings_total", p.openings);
                put("reliability_circuit_slow_calls_total", p.slow_calls);
                put("reliability_circuit_isolations_total", p.isolations);
                put("reliability_circuit_resets_total", p.resets);
                let state = match p.state.expect("a breaker has a state") {
                    CircuitState::Closed => 0,
                    CircuitState::Open => 1,
                    CircuitState::HalfOpen => 2,
                    CircuitState::Isolated => 3,
                    other => panic!("a state this test does not know: {other:?}"),
                };
                put("reliability_circuit_state", state);
            }
            PolicyKind::Cache => {
                put("reliability_cache_hits_total", p.hits);
                put("reliability_cache_misses_total", p.misses);
                put("reliability_cache_coalesced_total", p.coalesced);
                put("reliability_cache_stale_served_total", p.stale_served);
            }
            PolicyKind::RateLimit | PolicyKind::Bulkhead => {
                put("reliability_rejections_total", p.rejections);
                put("reliability_waited_total", p.waited);
            }
            PolicyKind::Hedge => {
                put("reliability_rejections_total", p.rejections);
                put("reliability_hedges_total", p.hedges);
                put("reliability_hedges_won_total", p.hedges_won);
            }
            PolicyKind::Fallback => {}
            other => panic!("a kind this test does not know: {other:?}"),
        }
        for (target, served) in &p.fallbacks {
            let key = (
                "reliability_fallback_served_total".to_owned(),
                p.name.clone(),
                layer.clone(),
                Some(target.clone()),
            );
            expected.insert(key, *served as f64);
        }
    }
    expected
}

#[tokio::test(start_paused = true)]
async fn every_exported_value_equals_the_registrys_snapshot() {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("reliability_call_duration_seconds".into()),
            &[0.1, 0.5, 1.0, 5.0],
        )
        .unwrap()
        .install_recorder()
        .expect("the only recorder of this test binary");
    // Turns on duration recording before any call.
    reliability::metrics::export();

    // A miss, then a hit.
    assert_eq!(answer("rust".into()).await.unwrap(), "answer to rust");
    assert_eq!(answer("rust".into()).await.unwrap(), "answer to rust");
    // Three attempts time out (500 ms each, 100 ms between): the third opens the breaker, and
    // the fallback answers.
    assert_eq!(
        answer("hang 1".into()).await.unwrap(),
        "no answer to hang 1 now"
    );
    // Rejected by the open breaker: not retried, the fallback answers.
    assert_eq!(
        answer("hang 2".into()).await.unwrap(),
        "no answer to hang 2 now"
    );
    // The hit again, and a fallback answer is not stored: asked again, it runs again.
    assert_eq!(answer("rust".into()).await.unwrap(), "answer to rust");

    // The load layers, through tower: one permit a minute, one slot.
    let limiter = RateLimiter::builder("metrics.load", 1)
        .per(Duration::from_secs(60))
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("metrics.load", 1).build().unwrap();
    let load = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    load.clone().oneshot(1).await.unwrap();
    load.clone().oneshot(2).await.unwrap_err();

    // A hedge, through tower: the first attempt of the second call hangs, and the hedge started
    // after 50 ms answers.
    let hedge = Hedge::builder("metrics.hedge", Duration::from_millis(50))
        .build()
        .unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let hedged = ServiceBuilder::new()
        .layer(HedgeLayer::new(hedge.clone()))
        .service(service_fn({
            let sent = sent.clone();
            move |n: u32| {
                let attempt = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if attempt == 1 {
                        pending::<()>().await;
                    }
                    Ok::<_, BoxError>(n)
                }
            }
        }));
    assert_eq!(hedged.clone().oneshot(1).await.unwrap(), 1);
    assert_eq!(hedged.clone().oneshot(2).await.unwrap(), 2);

    reliability::metrics::export();
    let snapshot = registry().snapshot();
    let text = prometheus.render();
    let samples = parse(&text);

    // The scenario did what it says, so the comparison below covers every kind of counter.
    let breaker = snapshot.circuit_breaker("metrics.answer").unwrap();
    assert_eq!((breaker.openings, breaker.rejections), (1, 1));
    assert_eq!(breaker.state, Some(CircuitState::Open));
    let cache = snapshot.cache("metrics.answer").unwrap();
    assert_eq!((cache.hits, cache.misses), (2, 3));
    let of_kind = |kind: PolicyKind| {
        let mut found = snapshot.policies().iter().filter(|p| p.kind == kind);
        let policy = found.next().unwrap_or_else(|| panic!("no {kind} policy"));
        assert!(found.next().is_none(), "one {kind} policy");
        policy
    };
    let retry = of_kind(PolicyKind::Retry);
    assert_eq!((retry.calls, retry.retries, retry.rejections), (3, 2, 1));
    let fallback = of_kind(PolicyKind::Fallback);
    assert_eq!(fallback.fallbacks_served(), 2);
    let timeout = of_kind(PolicyKind::Timeout);
    assert_eq!((timeout.calls, timeout.timeouts), (4, 3));
    assert_eq!(snapshot.rate_limit("metrics.load").unwrap().rejections, 1);
    let hedge_stats = snapshot.hedge("metrics.hedge").unwrap();
    assert_eq!(
        (
            hedge_stats.calls,
            hedge_stats.hedges,
            hedge_stats.hedges_won
        ),
        (2, 1, 1)
    );

    // Every counter and gauge sample equals the snapshot, and every snapshot value is exported.
    let mut exported = BTreeMap::new();
    for sample in samples.iter().filter(|s| {
        s.name.starts_with("reliability_") && !s.name.starts_with("reliability_call_duration")
    }) {
        let label = |key: &str| {
            sample
                .labels
                .get(key)
                .unwrap_or_else(|| panic!("{} has no `{key}` label", sample.name))
                .clone()
        };
        let key = (
            sample.name.clone(),
            label("policy"),
            label("layer"),
            sample.labels.get("target").cloned(),
        );
        assert!(
            exported.insert(key, sample.value).is_none(),
            "{} is exported twice",
            sample.name
        );
    }
    let expected = expected(snapshot.policies());
    // retry 7, timeout 4, circuit_breaker 10, fallback 3 and 1 target, cached 8, rate_limit 4,
    // bulkhead 3, hedge 6.
    assert_eq!(expected.len(), 46);
    for (key, value) in &expected {
        assert_eq!(
            exported.get(key),
            Some(value),
            "{key:?} in the Prometheus text:\n{text}"
        );
    }
    for key in exported.keys() {
        assert!(expected.contains_key(key), "{key:?} is not in the snapshot");
    }

    // The durations: one sample per call that ended at the layer, on the paused clock.
    let histogram = |policy: &PolicyStats, series: &str| -> f64 {
        let layer = policy.kind.to_string();
        samples
            .iter()
            .find(|s| {
                s.name == format!("reliability_call_duration_seconds_{series}")
                    && s.labels.get("policy") == Some(&policy.name)
                    && s.labels.get("layer") == Some(&layer)
                    && (series != "bucket"
                        || s.labels.get("le").map(String::as_str) == Some("+Inf"))
            })
            .unwrap_or_else(|| panic!("no {series} of {} {}:\n{text}", layer, policy.name))
            .value
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Timeout: 2 misses that answered at once, 3 attempts that timed out at 500 ms.
    assert_eq!(histogram(timeout, "count"), 4.0);
    assert_eq!(histogram(timeout, "bucket"), 4.0);
    assert!(close(histogram(timeout, "sum"), 1.5));
    // Breaker: the admitted calls (the rejection has no duration).
    assert_eq!(
        histogram(breaker, "count"),
        (breaker.successes + breaker.failures) as f64
    );
    assert!(close(histogram(breaker, "sum"), 1.5));
    // Retry: whole calls, waits included: 3 × 500 ms + 2 × 100 ms.
    assert_eq!(histogram(retry, "count"), 3.0);
    assert!(close(histogram(retry, "sum"), 1.7));

    // Kept alive to here: a policy built at run time leaves the registry with its last handle.
    drop((limiter, bulkhead, load, hedge, hedged));
}
