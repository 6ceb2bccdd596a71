//! The `axum_service` example's main logic: every question gets the answer its path through the
//! stack gives, and `/metrics` serves the registry's counters, breaker state and durations.

use examples::axum_service::{CACHE, QUESTIONS, UPSTREAM, run};
use reliability::{CircuitState, registry};

/// The value of the sample `name{labels}` in Prometheus text, where `labels` are the sample's
/// labels in the order the exporter writes them (as `reliability::metrics` gives them).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.parse().expect("a number"))
}

#[tokio::test]
async fn the_service_answers_degrades_and_exports_its_metrics() {
    let report = run().await.expect("the example runs");
    let answers: Vec<(&str, u16, &str)> = report
        .answers
        .iter()
        .map(|(q, s, a)| (q.as_str(), *s, a.as_str()))
        .collect();
    let busy = |q: &str| format!("The assistant is busy; please ask \"{q}\" again later.");
    assert_eq!(answers.len(), QUESTIONS.len());
    assert_eq!(
        answers[0],
        ("What is Rust?", 200, "An answer to \"What is Rust?\".")
    );
    assert_eq!(answers[1].2, answers[0].2, "a cache hit");
    assert_eq!(answers[2], ("flaky", 200, "An answer to \"flaky\"."));
    assert_eq!((answers[3].1, answers[3].2), (200, busy("slow").as_str()));
    assert_eq!((answers[4].1, answers[4].2), (200, busy("down").as_str()));
    assert_eq!(
        (answers[5].1, answers[5].2),
        (200, busy("What is tower?").as_str())
    );
    assert_eq!(
        answers[6].2, answers[0].2,
        "a cache hit while the breaker is open"
    );

    let breaker = registry().circuit_breaker(UPSTREAM).unwrap();
    assert_eq!(breaker.state(), CircuitState::Open);
    let snapshot = registry().snapshot();
    let text = &report.metrics;
    let labels = |layer: &str, policy: &str| format!("policy=\"{policy}\",layer=\"{layer}\"");

    let breaker_stats = snapshot.circuit_breaker(UPSTREAM).unwrap();
    assert_eq!(
        sample(
            text,
            "reliability_circuit_state",
            &labels("circuit_breaker", UPSTREAM)
        ),
        Some(1.0)
    );
    // flaky 1, slow 3, down 2 (the third attempt is rejected), and one more rejection.
    assert_eq!((breaker_stats.failures, breaker_stats.rejections), (6, 2));
    for (metric, value) in [
        ("reliability_calls_total", breaker_stats.calls),
        ("reliability_failures_total", breaker_stats.failures),
        ("reliability_rejections_total", breaker_stats.rejections),
        ("reliability_circuit_openings_total", breaker_stats.openings),
    ] {
        assert_eq!(
            sample(text, metric, &labels("circuit_breaker", UPSTREAM)),
            Some(value as f64),
            "{metric}"
        );
    }
    let retry = snapshot.retry(UPSTREAM).unwrap();
    assert_eq!(
        retry.retries, 5,
        "flaky 1, slow 2, down 2 (the second rejected)"
    );
    assert_eq!(
        sample(
            text,
            "reliability_retries_total",
            &labels("retry", UPSTREAM)
        ),
        Some(5.0)
    );
    let cache = snapshot.cache(CACHE).unwrap();
    assert_eq!((cache.hits, cache.misses), (2, 5));
    assert_eq!(
        sample(
            text,
            "reliability_cache_hits_total",
            &labels("cached", CACHE)
        ),
        Some(2.0)
    );
    let timeout = snapshot.timeout(UPSTREAM).unwrap();
    assert_eq!(timeout.timeouts, 3);
    // Every ended attempt of the timeout layer is in its duration histogram.
    assert_eq!(
        sample(
            text,
            "reliability_call_duration_seconds_count",
            &labels("timeout", UPSTREAM)
        ),
        Some((timeout.successes + timeout.failures + timeout.timeouts) as f64)
    );
}
