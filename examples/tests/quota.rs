//! The `llm_gateway` example's quota table on a short run: the embedded service enforces a quota
//! per API key, and the client's options change how many 429s it receives. Every comparison is
//! between rungs of the same run, so a loaded machine moves all of them together.

use std::sync::Arc;
use std::time::Duration;

use examples::gateway::client::{Backend, Call, Endpoint};
use examples::gateway::faults::FaultPlan;
use examples::gateway::ladder::Arrivals;
use examples::gateway::quota::{API_KEY, QUOTA, QuotaConfig, QuotaRung, run_quota, stacks};
use examples::gateway::server::{Quota, Server, ServiceConfig};

async fn service(plan: FaultPlan, quota: Quota) -> Server {
    Server::start(ServiceConfig {
        plan,
        primary_model: "gpt-4".into(),
        api_key: Some(API_KEY.into()),
        quota: Some(quota),
    })
    .await
    .expect("binds a port on 127.0.0.1")
}

fn backend(server: &Server, api_key: &str) -> Backend {
    Backend::new(Endpoint {
        url: server.base_url(),
        primary_model: "gpt-4".into(),
        fallback_model: "gpt-3.5-turbo".into(),
        api_key: Some(api_key.into()),
        client_deadline: Duration::from_millis(500),
    })
    .expect("builds the client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_and_a_client_limit_cut_the_429s_tenfold_at_no_loss() {
    let plan = FaultPlan {
        seed: 3,
        failure_rate: 0.08,
        rate_limited_share: 0.0,
        hang_rate: 0.02,
        median_latency: Duration::from_millis(10),
        latency_sigma: 0.5,
        outage: Some(Duration::from_millis(600)..Duration::from_millis(1_400)),
    };
    let server = service(plan, QUOTA).await;
    let config = QuotaConfig {
        requests: 300,
        concurrency: 64,
        arrivals: Arrivals::Waves {
            mean: 150.0,
            swing: 0.8,
            period: Duration::from_secs(1),
        },
        seed: 3,
        rungs: QuotaRung::ALL.to_vec(),
        progress: false,
    };
    let table = run_quota(Arc::new(backend(&server, API_KEY)), &server, &config).await;
    eprintln!("{}", examples::gateway::report::quota_table(&table));
    let run = |r| table.run(r).expect("every rung ran");

    // Every request accounted for; the registry and the service agree with the example's count.
    for run in &table.runs {
        let f = run.figures;
        assert_eq!(f.requests, 300, "{:?}", run.rung);
        assert_eq!(f.answered + f.failed, 300, "{:?}", run.rung);
        assert_eq!(run.disagreements(), Vec::<String>::new());
    }

    // The waves go over the quota: backoff alone runs into it.
    let backoff = run(QuotaRung::Backoff);
    assert!(backoff.figures.rate_limited >= 30, "{:?}", backoff.figures);

    // Retry-After honoured and a client-side limit under the quota: a tenth of the 429s at most,
    // and no request fewer answered.
    let limited = run(QuotaRung::Limiter);
    assert!(
        limited.figures.rate_limited * 10 <= backoff.figures.rate_limited,
        "{} 429s with the limit, {} without",
        limited.figures.rate_limited,
        backoff.figures.rate_limited
    );
    assert!(limited.figures.answered >= backoff.figures.answered);
    assert!(limited.waited > 0, "the limit made attempts wait");
    assert!(limited.figures.attempts < backoff.figures.attempts);

    // The budget stops the retries of the outage: the whole rung fits in the budget's 10 s window,
    // so its retries are at most the floor (10 a second over 10 s) plus 10% of the calls.
    let budget = run(QuotaRung::Budget);
    assert!(budget.budget_exhausted > 0);
    assert!(
        budget.retries <= 100 + budget.figures.requests / 10,
        "{}",
        budget.retries
    );

    // Then, once the table's counts are read (the registry is shared by the tests of this file):
    // a 429 honoured, by the rung's own function.
    retry_after_waits_what_the_429_asked_for().await;
}

#[tokio::test]
async fn a_429_over_the_quota_says_when_to_come_back_and_is_counted_per_key() {
    let healthy = FaultPlan {
        failure_rate: 0.0,
        hang_rate: 0.0,
        outage: None,
        median_latency: Duration::from_millis(1),
        ..FaultPlan::default()
    };
    let quota = Quota {
        per_second: 10,
        burst: 2,
    };
    let server = service(healthy, quota).await;
    let client = backend(&server, API_KEY);
    assert!(client.complete("gpt-4", "hi", "a").await.is_ok());
    assert!(client.complete("gpt-4", "hi", "b").await.is_ok());
    // The burst is spent: the next token is due in 100 ms at most, and the 429 after it is
    // promised the token after that, not the same one.
    let first = client.complete("gpt-4", "hi", "c").await.unwrap_err();
    let second = client.complete("gpt-4", "hi", "d").await.unwrap_err();
    let (Some(first_wait), Some(second_wait)) = (first.retry_after(), second.retry_after()) else {
        panic!("429s with a wait: {first:?}, {second:?}");
    };
    assert!(first.is_transient() && second.is_transient());
    assert!(first_wait <= Duration::from_millis(100), "{first_wait:?}");
    assert!(
        second_wait > first_wait,
        "{second_wait:?} after {first_wait:?}"
    );
    assert_eq!(server.over_quota(), 2);

    // Waiting what it asked for gets an answer.
    tokio::time::sleep(first_wait).await;
    assert!(client.complete("gpt-4", "hi", "c").await.is_ok());
}

async fn retry_after_waits_what_the_429_asked_for() {
    let healthy = FaultPlan {
        failure_rate: 0.0,
        hang_rate: 0.0,
        outage: None,
        median_latency: Duration::from_millis(1),
        ..FaultPlan::default()
    };
    let quota = Quota {
        per_second: 5,
        burst: 1,
    };
    let server = service(healthy, quota).await;
    let client = Arc::new(backend(&server, API_KEY));
    let call = |id: &str| Call::new(client.clone(), id.into());
    // The first call takes the only token; the second is told to come back in about 200 ms and
    // does, so its second attempt is answered.
    assert!(stacks::retry_after("q".into(), call("a")).await.is_ok());
    let second = call("b");
    let answer = stacks::retry_after("q".into(), second.clone()).await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(second.trace().rate_limited(), 1);
    assert_eq!(second.trace().primary_attempts(), 2);
}
