//! The ladder's breaker rung through an outage that begins after its first answers expired: the
//! questions asked before the outage get their real, expired answer (`stale_if_error`) instead of
//! the fallback's, and the registry's `stale_served` agrees with the example's own count. A test
//! binary of its own: the rung's cache and breaker live for the process.

use std::sync::Arc;
use std::time::Duration;

use examples::gateway::client::{Backend, Endpoint};
use examples::gateway::faults::FaultPlan;
use examples::gateway::ladder::{LadderConfig, Outcome, run_ladder};
use examples::gateway::server::{Server, ServiceConfig};
use examples::gateway::stack::{Profile, Rung};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_serves_expired_real_answers_to_questions_asked_before_it() {
    // The embedded stack keeps answers 2 s; the outage starts 2.5 s in, after the first answers
    // expired, and lasts until the end of the 3.5 s run.
    let outage = Duration::from_millis(2_500)..Duration::from_millis(3_500);
    let server = Server::start(ServiceConfig {
        plan: FaultPlan {
            seed: 11,
            failure_rate: 0.0,
            hang_rate: 0.0,
            median_latency: Duration::from_millis(5),
            outage: Some(outage.clone()),
            ..FaultPlan::default()
        },
        primary_model: "gpt-4".into(),
        api_key: None,
        quota: None,
    })
    .await
    .expect("binds a port on 127.0.0.1");
    let backend = Arc::new(
        Backend::new(Endpoint {
            url: server.base_url(),
            primary_model: "gpt-4".into(),
            fallback_model: "gpt-3.5-turbo".into(),
            api_key: None,
            client_deadline: Duration::from_millis(500),
        })
        .expect("builds the client"),
    );
    let config = LadderConfig {
        requests: 700,
        concurrency: 16,
        rate: Some(200.0),
        seed: 11,
        pool_size: 100,
        zipf_exponent: 1.0,
        rungs: vec![Rung::Breaker],
        progress: false,
    };
    let ladder = run_ladder(backend, Profile::Embedded, Some(&server), &config).await;
    let run = ladder.run(Rung::Breaker).expect("the rung ran");
    eprintln!("{}", examples::gateway::report::table(&ladder));

    assert_eq!(run.disagreements(), Vec::<String>::new());
    assert_eq!(run.figures.failed, 0);
    let stale: Vec<_> = run
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Stale)
        .collect();
    assert!(!stale.is_empty(), "no stale answer during the outage");
    assert_eq!(run.figures.stale, stale.len() as u64);
    // Only the outage makes the primary fail here: every stale answer met it.
    for r in &stale {
        assert!(r.end >= outage.start, "a stale answer at {:?}", r.end);
    }
    // A question first answered in the outage has no real answer to serve: the fallback answers.
    assert!(run.outcomes().fallback > 0);

    // The chart has a series for every outcome, stale answers included.
    let path = std::env::temp_dir().join(format!("stale-{}.svg", std::process::id()));
    examples::gateway::plot::write_svg(&ladder, &path).expect("writes the chart");
    let svg = std::fs::read_to_string(&path).expect("reads the chart back");
    let _ = std::fs::remove_file(&path);
    assert!(
        svg.lines().any(|l| l.trim() == "stale"),
        "no stale series in the chart"
    );
}
