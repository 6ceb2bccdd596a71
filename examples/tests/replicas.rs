//! The `llm_gateway` example's replicas comparison on a short run, against a real `redis-server`
//! started on a free port (and killed at the end): three replicas, the same stream alone and then
//! sharing their breaker, cache and quota through Redis. Every comparison is between the two modes
//! of one run, so a loaded machine moves both together.
//!
//! Without `redis-server` on the PATH the test prints one line saying so and passes, unless
//! `RELIABILITY_REQUIRE_REDIS` is set (as CI does), which makes it fail.

use std::io::Write;
use std::time::Duration;

use examples::gateway::replicas::{Redis, ReplicasConfig, redis_server_installed, run_replicas};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_pays_fewer_outage_failures_repeats_and_429s() {
    if !redis_server_installed() {
        assert!(
            std::env::var_os("RELIABILITY_REQUIRE_REDIS").is_none(),
            "RELIABILITY_REQUIRE_REDIS is set but `redis-server` is not on the PATH"
        );
        // Not captured by the test harness, so it shows in `cargo test`'s output.
        let _ = writeln!(
            std::io::stderr(),
            "replicas: `redis-server` not on the PATH, so sharing_pays_fewer_outage_failures_repeats_and_429s \
             did not run. Install it (Debian: apt-get install redis-server) to run it; set \
             RELIABILITY_REQUIRE_REDIS=1 to make its absence a failure."
        );
        return;
    }
    let redis = Redis::start().await.expect("redis-server starts");
    let config = ReplicasConfig {
        replicas: 3,
        requests: 900,
        rate: 300.0,
        outage: Duration::from_millis(1_000)..Duration::from_millis(2_500),
        seed: 5,
        ..ReplicasConfig::default()
    };
    let comparison = run_replicas(&config, redis.url())
        .await
        .expect("the comparison runs");
    let (alone, shared) = (&comparison.alone, &comparison.shared);
    let table = examples::gateway::report::replicas_table(&comparison);
    println!("{table}");

    assert!(
        alone.disagreements.is_empty() && shared.disagreements.is_empty(),
        "the service's counts, the registry's and the replicas' disagree:\n{table}"
    );
    assert_eq!(shared.store_errors, 0, "{table}");
    assert!(
        alone.outage_calls > 0 && alone.over_quota > 0 && alone.repeated_model_calls > 0,
        "alone, the replicas meet the outage, the quota and repeated questions:\n{table}"
    );
    assert!(
        shared.outage_calls < alone.outage_calls,
        "shared, fewer primary calls during the outage:\n{table}"
    );
    assert!(
        shared.paid_before_stopped < alone.paid_before_stopped,
        "shared, fewer failures before every replica stopped calling:\n{table}"
    );
    assert!(
        shared.stopped_at.iter().all(Option::is_some),
        "shared, every replica's breaker opened during the outage:\n{table}"
    );
    assert!(
        shared.repeated_model_calls * 4 < alone.repeated_model_calls,
        "shared, a repeated question rarely reaches the model:\n{table}"
    );
    assert!(
        shared.over_quota * 4 < alone.over_quota,
        "shared, the fleet keeps to the quota:\n{table}"
    );
}
