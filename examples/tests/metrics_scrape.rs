//! `llm_gateway --metrics ADDR` on a short run against its embedded service: `/metrics` answers
//! over HTTP while the ladder runs, and once it has run, every figure scraped equals the registry's
//! snapshot, for every policy of the run.
//!
//! One test in this binary: the Prometheus recorder is global.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use examples::gateway::cli::{Args, run};
use examples::gateway::stack::{Profile, Rung};
use reliability::{CircuitState, PolicyKind, PolicyStats};

/// (metric, policy, layer, fallback target) -> value.
type Series = BTreeMap<(String, String, String, Option<String>), f64>;

/// The `reliability_` counters and gauges of a Prometheus text (comments, other metrics and the
/// duration histogram skipped); panics on a line it cannot read.
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines().map(str::trim) {
        if !line.starts_with("reliability_") || line.starts_with("reliability_call_duration") {
            continue;
        }
        let (name_labels, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, body) = name_labels
            .split_once('{')
            .unwrap_or_else(|| panic!("no labels: {line}"));
        let body = body
            .strip_suffix('}')
            .unwrap_or_else(|| panic!("unclosed labels: {line}"));
        let mut labels = BTreeMap::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
            let end = after.find('"').expect("a closing quote");
            labels.insert(key, &after[..end]);
            rest = after[end + 1..].trim_start_matches(',');
        }
        let label = |key| labels.get(key).map(|v| (*v).to_owned());
        let key = (
            name.to_owned(),
            label("policy").unwrap_or_else(|| panic!("no policy label: {line}")),
            label("layer").unwrap_or_else(|| panic!("no layer label: {line}")),
            label("target"),
        );
        assert!(series.insert(key, value).is_none(), "twice: {line}");
    }
    series
}

/// The series the snapshot says `/metrics` must hold, written from the snapshot's fields.
fn expected(policies: &[PolicyStats]) -> Series {
    let mut expected = Series::new();
    for p in policies {
        let layer = p.kind.to_string();
        let mut put = |metric: &str, value: u64| {
            let key = (metric.to_owned(), p.name.clone(), layer.clone(), None);
            expected.insert(key, value as f64);
        };
        put("reliability_calls_total", p.calls);
        if !matches!(p.kind, PolicyKind::RateLimit | PolicyKind::Bulkhead) {
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
            PolicyKind::Hedge => {
                put("reliability_rejections_total", p.rejections);
                put("reliability_hedges_total", p.hedges);
                put("reliability_hedges_won_total", p.hedges_won);
            }
            PolicyKind::Fallback => {}
            other => panic!("the gateway's ladder has no {other} layer"),
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

async fn scrape(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    http.get(url).send().await?.error_for_status()?.text().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scraped_figures_equal_the_registrys() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A free port: bound, read, and let go for the gateway to bind.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1");
    let args = Args::try_parse_from([
        "llm_gateway",
        "--metrics",
        &addr.to_string(),
        "--requests",
        "150",
        "--rate",
        "500",
        "--concurrency",
        "32",
        "--outage",
        "0.05..0.2",
        "--latency-ms",
        "5",
        "--quota-requests",
        "0",
        "--quiet",
    ])
    .expect("valid flags");
    let gateway = tokio::spawn(async move { run(&args).await });

    // Scraped over HTTP while the ladder runs.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let mut during = Vec::new();
    while !gateway.is_finished() {
        if let Ok(text) = scrape(&http, &url).await {
            during.push(parse(&text));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ladder = gateway.await.unwrap().expect("the run ends well");
    assert_eq!(ladder.runs.len(), Rung::ALL.len());
    assert!(
        during.iter().any(|s| !s.is_empty()),
        "/metrics served figures while the gateway ran"
    );

    // After the run nothing moves: the scrape and the snapshot see the same registry.
    let text = scrape(&http, &url).await.expect("/metrics after the run");
    let snapshot = reliability::registry().snapshot();
    let scraped = parse(&text);
    for rung in Rung::ALL {
        let names = Profile::Embedded.names(rung);
        assert!(
            snapshot.retry(names.function).is_some_and(|r| r.calls > 0),
            "{rung:?} ran through its retry"
        );
        if let Some(breaker) = names.breaker {
            let breaker = snapshot.circuit_breaker(breaker).expect("the breaker");
            assert!(breaker.openings > 0, "the outage opened the breaker");
        }
    }
    let mut expected = expected(snapshot.policies());
    // With the feature `redis` on (it is when the whole workspace is built together), the layers
    // that can share state export their store errors too: zero here, there is no store.
    for p in snapshot.policies() {
        let key = (
            "reliability_store_errors_total".to_owned(),
            p.name.clone(),
            p.kind.to_string(),
            None,
        );
        if scraped.contains_key(&key) {
            expected.insert(key, p.store_errors as f64);
        }
    }
    assert!(expected.len() > 50, "{} series", expected.len());
    for (key, value) in &expected {
        assert_eq!(
            scraped.get(key),
            Some(value),
            "{key:?} in the scraped text:\n{text}"
        );
    }
    for key in scraped.keys() {
        assert!(expected.contains_key(key), "{key:?} is not in the snapshot");
    }

    // Counters only grow: every figure scraped during the run is at most the final one.
    for earlier in &during {
        for (key, value) in earlier {
            if key.0 != "reliability_circuit_state" {
                assert!(value <= &scraped[key], "{key:?} went down");
            }
        }
    }
}
