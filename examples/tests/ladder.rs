//! The `llm_gateway` example's ladder on a small run against its embedded service: every request
//! accounted for, each layer doing its job, and the registry agreeing with the example's own tally.

use std::sync::Arc;
use std::time::Duration;

use examples::gateway::cli::{RunError, preflight};
use examples::gateway::client::{Backend, Endpoint, LlmError};
use examples::gateway::faults::FaultPlan;
use examples::gateway::ladder::{LadderConfig, Outcome, run_ladder};
use examples::gateway::server::{FAULT_RETRY_AFTER, Server, ServiceConfig};
use examples::gateway::stack::{Profile, Rung};

const DEADLINE: Duration = Duration::from_millis(500);

async fn service(plan: FaultPlan, api_key: Option<&str>) -> Server {
    Server::start(ServiceConfig {
        plan,
        primary_model: "gpt-4".into(),
        api_key: api_key.map(str::to_owned),
        quota: None,
    })
    .await
    .expect("binds a port on 127.0.0.1")
}

fn backend(url: String, api_key: Option<&str>) -> Backend {
    Backend::new(Endpoint {
        url,
        primary_model: "gpt-4".into(),
        fallback_model: "gpt-3.5-turbo".into(),
        api_key: api_key.map(str::to_owned),
        client_deadline: DEADLINE,
    })
    .expect("builds the client")
}

fn healthy() -> FaultPlan {
    FaultPlan {
        failure_rate: 0.0,
        hang_rate: 0.0,
        outage: None,
        median_latency: Duration::from_millis(2),
        ..FaultPlan::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rung_lifts_the_one_below() {
    let plan = FaultPlan {
        seed: 7,
        failure_rate: 0.10,
        rate_limited_share: 0.5,
        hang_rate: 0.04,
        median_latency: Duration::from_millis(10),
        latency_sigma: 0.5,
        outage: Some(Duration::from_millis(250)..Duration::from_millis(450)),
    };
    let server = service(plan, None).await;
    let config = LadderConfig {
        requests: 300,
        concurrency: 32,
        rate: Some(500.0),
        seed: 7,
        pool_size: 300,
        zipf_exponent: 1.0,
        rungs: Rung::ALL.to_vec(),
        progress: false,
    };
    let backend = Arc::new(backend(server.base_url(), None));
    let ladder = run_ladder(backend, Profile::Embedded, Some(&server), &config).await;
    eprintln!("{}", examples::gateway::report::table(&ladder));
    let rung = |r| ladder.run(r).expect("every rung ran");

    // Every request accounted for, and the registry agrees with the example's own count.
    for run in &ladder.runs {
        let f = run.figures;
        assert_eq!(f.requests, 300, "{:?}", run.rung);
        assert_eq!(f.answered() + f.failed, 300, "{:?}", run.rung);
        assert_eq!(run.disagreements(), Vec::<String>::new());
    }

    // Retries recover the transient errors outside the outage; nothing recovers the outage itself
    // until the fallback; from the fallback up, every request gets an answer. The timeout's gain is
    // the tail (below), not the success rate: without it a hung attempt is still retried, later.
    // Compared outside the outage: how many requests meet it depends on how fast a loaded machine
    // sends them, which differs from rung to rung.
    let outage = ladder.outage.clone().expect("an outage");
    let outside = |r| {
        let (answered, total) = rung(r).answered_outside(&outage);
        100.0 * answered as f64 / total as f64
    };
    assert!(outside(Rung::Bare) + 5.0 < outside(Rung::Retry));
    assert!((outside(Rung::Retry) - outside(Rung::Timeout)).abs() <= 5.0);
    // A request that began and ended inside the outage had every attempt refused: no retry saves it.
    for r in [Rung::Bare, Rung::Retry, Rung::Timeout] {
        let inside: Vec<_> = rung(r)
            .records
            .iter()
            .filter(|rec| rec.start >= outage.start && rec.end < outage.end)
            .collect();
        assert!(!inside.is_empty(), "{r:?}: no request inside the outage");
        assert!(
            inside.iter().all(|rec| rec.outcome == Outcome::Failed),
            "{r:?}"
        );
    }
    for r in [Rung::Fallback, Rung::Cache, Rung::Breaker, Rung::Hedge] {
        assert_eq!(rung(r).figures.failed, 0, "{r:?}");
        assert!(rung(r).figures.fallback > 0, "{r:?}");
    }

    // Without a timeout a hung attempt lasts until the HTTP client's deadline; with one, it is cut
    // at 300 ms and retried.
    assert!(rung(Rung::Retry).latency(99.0) >= DEADLINE);
    assert!(rung(Rung::Timeout).latency(99.0) < DEADLINE);
    assert!(rung(Rung::Timeout).timeouts > 0);

    // Repeated questions come from the cache, and only repeats can.
    let cache = rung(Rung::Cache);
    assert!(cache.hits > 0);
    assert!(cache.figures.cache <= 300 - ladder.distinct_questions as u64);
    assert!(cache.figures.primary_calls < rung(Rung::Fallback).figures.primary_calls);

    // During the outage the breaker opens and sends requests straight to the fallback; the burst
    // of cold calls at the start of the rung does not open it (the rate rule waits for 20 calls).
    let breaker = rung(Rung::Breaker);
    assert!(breaker.openings >= 1);
    let outage_start = ladder.outage.as_ref().expect("an outage").start;
    for open in &breaker.breaker_open {
        assert!(
            open.start >= outage_start,
            "open at {open:?}, before the outage"
        );
    }
    assert!(breaker.rejections > 0);
    assert!(!breaker.breaker_open.is_empty());
    assert!(breaker.figures.primary_calls < cache.figures.primary_calls);

    // The hedge rung starts a second attempt when the first is slower than the p95 of the rung's
    // attempts so far: with hung attempts in the stream, some are hedged, and the registry's count
    // of hedged attempts is among the primary calls the example counted.
    let hedged = rung(Rung::Hedge);
    assert!(hedged.hedges > 0, "nothing was hedged");
    assert!(hedged.hedges_won <= hedged.hedges);
    assert!(hedged.openings >= 1, "the hedged stack has its own breaker");
    assert!(hedged.hedges < hedged.figures.primary_calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_stack_on_a_healthy_service_answers_everything_from_the_primary() {
    let server = service(healthy(), None).await;
    let config = LadderConfig {
        requests: 40,
        concurrency: 8,
        rate: None,
        pool_size: 40,
        rungs: Rung::ALL.to_vec(),
        ..LadderConfig::default()
    };
    let backend = Arc::new(backend(server.base_url(), None));
    preflight(&backend, "UNUSED").await.expect("reachable");
    let ladder = run_ladder(backend, Profile::Remote, Some(&server), &config).await;
    for run in &ladder.runs {
        let f = run.figures;
        assert_eq!(f.primary + f.cache, 40, "{:?}", run.rung);
        assert_eq!(f.primary_calls, f.primary, "{:?}", run.rung);
        assert_eq!(run.disagreements(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn refusals_are_not_transient_but_429_and_500_are() {
    let server = service(healthy(), Some("secret")).await;
    let without_key = backend(server.base_url(), None);
    let err = without_key.complete("gpt-4", "hi", "a").await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_transient());

    let with_key = backend(server.base_url(), Some("secret"));
    let err = with_key.complete("gpt-4", "  ", "b").await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 400, .. }),
        "{err}"
    );
    assert!(!err.is_transient());
    let answer = with_key.complete("gpt-4", "hi", "c").await.unwrap();
    assert!(answer.contains("hi"), "{answer}");

    let failing = service(
        FaultPlan {
            failure_rate: 1.0,
            ..healthy()
        },
        None,
    )
    .await;
    let client = backend(failing.base_url(), None);
    let mut seen = (false, false);
    for id in 0..50 {
        match client.complete("gpt-4", "hi", &id.to_string()).await {
            Err(e @ LlmError::RateLimited { retry_after }) => {
                assert_eq!(
                    retry_after,
                    Some(FAULT_RETRY_AFTER),
                    "retry-after-ms read first"
                );
                assert!(e.is_transient());
                seen.0 = true;
            }
            Err(e @ LlmError::Server { status: 500 }) => {
                assert!(e.is_transient());
                seen.1 = true;
            }
            other => panic!("expected 429 or 500, got {other:?}"),
        }
    }
    assert_eq!(seen, (true, true));
}

#[tokio::test]
async fn an_unreachable_target_is_a_one_line_error() {
    // Port 9 (discard) has no listener here: the connection is refused.
    let client = backend("http://127.0.0.1:9".into(), None);
    let err = preflight(&client, "OPENAI_API_KEY").await.unwrap_err();
    assert!(matches!(err, RunError::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("cannot reach http://127.0.0.1:9/v1/chat/completions: "));
    assert!(!message.contains('\n'));
}

#[tokio::test]
async fn a_missing_api_key_is_named_in_the_error() {
    let server = service(healthy(), Some("secret")).await;
    let client = backend(server.base_url(), None);
    let err = preflight(&client, "MY_KEY_VAR").await.unwrap_err();
    assert!(matches!(err, RunError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("$MY_KEY_VAR is not set"), "{err}");
}
