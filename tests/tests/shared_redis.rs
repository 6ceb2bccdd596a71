//! Shared state across replicas, against a real `redis-server`.
//!
//! Each test starts its own server (on a free port, without persistence) and kills it when it
//! ends: tests stop and restart their server, so they cannot share one. Replicas are modelled in
//! one process by separate local policies, each with its own `RedisStore` (its own connection and
//! identity), linked under one shared name.
//!
//! Without `redis-server` on the PATH these tests print one line saying so and pass, unless
//! `RELIABILITY_REQUIRE_REDIS` is set (as CI does), which makes them fail.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reliability::shared::{
    RedisStore, SharedBreaker, SharedCache, SharedRateLimiter, StoreErrorKind,
};
use reliability::{Cache, CircuitBreaker, CircuitState, Error, RateLimiter, registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const TESTS: &str = "an_opening_spreads_within_sync_and_one_replica_probes, an_isolation_spreads_and_a_reset_clears_it, \
    a_cached_answer_of_one_replica_is_served_by_another, three_replicas_share_one_quota_and_fail_open, \
    a_store_stopped_and_restarted_fails_no_call, chaos_10000_calls_while_the_store_stops_twice, \
    a_slow_store_never_stalls_a_call, connecting_to_no_server_is_an_error_without_the_password";

/// The per-operation bound of the stores in these tests.
const BOUND: Duration = Duration::from_millis(50);
/// What a call may take beyond its store operations on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(150);

/// A `redis-server` of this test, killed when dropped.
struct Server {
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// A server on a free port; `None` (after saying why, once) when `redis-server` is not
    /// installed and `RELIABILITY_REQUIRE_REDIS` is not set.
    fn start() -> Option<Server> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(
                std::env::var_os("RELIABILITY_REQUIRE_REDIS").is_none(),
                "RELIABILITY_REQUIRE_REDIS is set but `redis-server` is not on the PATH"
            );
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                // Not captured by the test harness, so it shows in `cargo test`'s output.
                let _ = writeln!(
                    std::io::stderr(),
                    "shared_redis: `redis-server` not on the PATH, so these tests did not run: {TESTS}. \
                     Install it (Debian: apt-get install redis-server) to run them; set RELIABILITY_REQUIRE_REDIS=1 to make its absence a failure."
                );
            });
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Server { port, child: None };
        server.restart();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port, empty, and waits until it answers.
    fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while command(self.port, &["PING"]).as_deref() != Some("+PONG") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    async fn store(&self) -> RedisStore {
        store_at(&self.url()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn store_at(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .op_timeout(BOUND)
        .sync(SYNC)
        .trial_lease(Duration::from_secs(2))
        .connect()
        .await
        .expect("the server answers")
}

/// How often the breakers of these tests read the store.
const SYNC: Duration = Duration::from_millis(200);

/// One command over a fresh connection (RESP), its first reply line; `None` when the server
/// cannot be reached.
fn command(port: u16, args: &[&str]) -> Option<String> {
    command_lines(port, args, 1)?.pop()
}

/// One command over a fresh connection (RESP), the first `lines` lines of its reply.
fn command_lines(port: u16, args: &[&str], lines: usize) -> Option<Vec<String>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut read = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        read.push(line.trim_end().to_owned());
    }
    Some(read)
}

fn store_errors(stats: Option<&reliability::PolicyStats>) -> u64 {
    stats.map_or(0, |s| s.store_errors)
}

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("service down")]
    Down,
    #[error(transparent)]
    Reliability(#[from] Error),
}

fn breaker(local: &str) -> CircuitBreaker {
    CircuitBreaker::builder(local)
        .failure_threshold(2)
        .success_threshold(1)
        .cooldown(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_spreads_within_sync_and_one_replica_probes() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut replicas = Vec::new();
    for r in ["a", "b", "c"] {
        let local = breaker(&format!("spread.{r}"));
        replicas.push(SharedBreaker::with_name(
            &local,
            &server.store().await,
            "gpt4",
        ));
    }
    let ran = [
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    ];
    let failing = |i: usize| {
        let ran = ran[i].clone();
        async move {
            ran.fetch_add(1, Ordering::SeqCst);
            Err::<(), AppError>(AppError::Down)
        }
    };

    // A's breaker opens; it publishes at once.
    for _ in 0..2 {
        let _ = replicas[0].call(failing(0)).await;
    }
    assert_eq!(replicas[0].breaker().state(), CircuitState::Open);
    let opened = Instant::now();

    // Within `sync`, B and C reject without calling the service.
    tokio::time::sleep(SYNC + SLACK).await;
    for i in [1, 2] {
        let rejected = replicas[i].call(failing(i)).await;
        assert!(
            matches!(
                rejected,
                Err(AppError::Reliability(Error::CircuitOpen { .. }))
            ),
            "replica {i}: {rejected:?}"
        );
        assert_eq!(
            ran[i].load(Ordering::SeqCst),
            0,
            "replica {i} ran the service"
        );
        assert_eq!(replicas[i].breaker().state(), CircuitState::Open);
    }
    let b = registry().snapshot();
    assert_eq!(b.circuit_breaker("spread.b").unwrap().openings, 1);

    // After the cooldown, every replica tries at once: exactly one probes (and fails, re-opening
    // the circuit for all).
    tokio::time::sleep_until(opened + Duration::from_secs(2) + SLACK).await;
    let before: u64 = ran.iter().map(|r| r.load(Ordering::SeqCst)).sum();
    let mut calls = Vec::new();
    for round in 0..5 {
        for (i, replica) in replicas.iter().enumerate() {
            let replica = replica.clone();
            let fut = failing(i);
            calls.push(tokio::spawn(async move {
                let _ = round;
                replica.call(fut).await
            }));
        }
    }
    for call in calls {
        let _ = call.await.unwrap();
    }
    let probes: u64 = ran.iter().map(|r| r.load(Ordering::SeqCst)).sum::<u64>() - before;
    assert_eq!(probes, 1, "trial calls sent by all replicas together");

    // The failed trial re-opened the circuit for every replica.
    tokio::time::sleep(SYNC + SLACK).await;
    for replica in &replicas {
        assert_eq!(replica.breaker().state(), CircuitState::Open);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolation_spreads_and_a_reset_clears_it() {
    let Some(server) = Server::start() else {
        return;
    };
    let a = breaker("isolate.a");
    let b = breaker("isolate.b");
    let shared_a = SharedBreaker::with_name(&a, &server.store().await, "ledger");
    let shared_b = SharedBreaker::with_name(&b, &server.store().await, "ledger");

    a.isolate();
    tokio::time::sleep(SYNC + SLACK).await;
    assert_eq!(b.state(), CircuitState::Isolated);
    let rejected = shared_b.call(async { Ok::<_, AppError>(()) }).await;
    assert!(matches!(
        rejected,
        Err(AppError::Reliability(Error::CircuitOpen { .. }))
    ));

    a.reset();
    tokio::time::sleep(SYNC + SLACK).await;
    assert_eq!(b.state(), CircuitState::Closed);
    assert!(shared_b.call(async { Ok::<_, AppError>(()) }).await.is_ok());
    assert!(shared_a.call(async { Ok::<_, AppError>(()) }).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_of_one_replica_is_served_by_another() {
    let Some(server) = Server::start() else {
        return;
    };
    let cache = |local: &str| -> Cache<(String, u32), String> {
        Cache::builder(local)
            .ttl(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let (a, b, c) = (cache("answers.a"), cache("answers.b"), cache("answers.c"));
    let shared_a = SharedCache::with_name(&a, &server.store().await, "answers");
    let shared_b = SharedCache::with_name(&b, &server.store().await, "answers");
    let shared_c = SharedCache::with_name(&c, &server.store().await, "answers");
    let key = ("what is rust?".to_owned(), 7);

    let computed = shared_a
        .get_or_try_insert(key.clone(), async {
            Ok::<_, AppError>("a language".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(computed, "a language");

    let b_ran = AtomicBool::new(false);
    let served = shared_b
        .get_or_try_insert(key.clone(), async {
            b_ran.store(true, Ordering::SeqCst);
            Ok::<_, AppError>("B's own answer".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(served, "a language");
    assert!(!b_ran.load(Ordering::SeqCst), "B ran its body");
    // The store's hit filled B's local tier.
    assert_eq!(b.get(&key).as_deref(), Some("a language"));
    let snapshot = registry().snapshot();
    let stats_b = snapshot.cache("answers.b").unwrap();
    assert_eq!((stats_b.hits, stats_b.misses), (1, 0));

    // Prompts never appear in key names; an entry that does not decode is a miss, never an answer.
    let keys = command(server.port, &["KEYS", "reliability:answers:*"]).unwrap();
    assert_eq!(keys, "*1", "one entry");
    let name = command_lines(server.port, &["KEYS", "reliability:answers:*"], 3)
        .unwrap()
        .pop()
        .unwrap();
    assert!(name.starts_with("reliability:answers:"), "{name}");
    assert_eq!(
        name.len(),
        "reliability:answers:".len() + 32,
        "a 128-bit digest"
    );
    assert!(!name.contains("rust"));
    assert_eq!(
        command(server.port, &["SET", &name, "not an entry"]).as_deref(),
        Some("+OK")
    );
    let c_ran = AtomicBool::new(false);
    let own = shared_c
        .get_or_try_insert(key.clone(), async {
            c_ran.store(true, Ordering::SeqCst);
            Ok::<_, AppError>("C's own answer".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(own, "C's own answer");
    assert!(c_ran.load(Ordering::SeqCst));
}

/// Each replica asks every 10 ms (300 asks a second together) for `for_how_long`; the permits
/// admitted by all together.
async fn drive(limiters: &[SharedRateLimiter], for_how_long: Duration) -> (u64, Duration) {
    let admitted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for limiter in limiters {
        let limiter = limiter.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while started.elapsed() < for_how_long {
                tick.tick().await;
                let asked = Instant::now();
                if limiter.acquire(1).await.is_ok() {
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
                assert!(
                    asked.elapsed() < BOUND + SLACK,
                    "an ask waited {:?}",
                    asked.elapsed()
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (admitted.load(Ordering::SeqCst), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_quota_and_fail_open() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let mut limiters = Vec::new();
    for r in ["a", "b", "c"] {
        let local = RateLimiter::builder(format!("quota.{r}"), 30)
            .build()
            .unwrap();
        limiters.push(SharedRateLimiter::with_name(
            &local,
            &server.store().await,
            "quota",
        ));
    }

    // Together within 30 a second: at most the burst (30) plus 30 per second elapsed (GCRA on the
    // server's clock is exact; one permit of tolerance for the rounding of its microseconds).
    let (admitted, elapsed) = drive(&limiters, Duration::from_secs(5)).await;
    let most = 30.0 + 30.0 * elapsed.as_secs_f64() + 1.0;
    eprintln!("shared quota: {admitted} admitted in {elapsed:?} (at most {most:.0})");
    assert!(
        (admitted as f64) <= most,
        "{admitted} admitted, more than {most:.0}"
    );
    assert!(
        admitted >= 150,
        "{admitted} admitted: the quota was not used"
    );

    // The store down: each replica alone, 30 a second each: about 90 a second together.
    server.stop();
    let (admitted, elapsed) = drive(&limiters, Duration::from_secs(2)).await;
    let most = 3.0 * (30.0 + 30.0 * elapsed.as_secs_f64()) + 3.0;
    eprintln!("store down: {admitted} admitted in {elapsed:?} (at most {most:.0})");
    assert!(
        (admitted as f64) <= most,
        "{admitted} admitted, more than {most:.0}"
    );
    assert!(
        admitted >= 3 * 50,
        "{admitted} admitted: the replicas did not fail open"
    );
    let snapshot = registry().snapshot();
    for r in ["a", "b", "c"] {
        let errors = store_errors(snapshot.rate_limit(&format!("quota.{r}")));
        assert!(errors > 0, "replica {r} counted no store error");
    }
}

/// One replica's policies for the restart and chaos tests.
#[derive(Clone)]
struct Replica {
    quota: SharedRateLimiter,
    breaker: SharedBreaker,
    cache: SharedCache<u64, u64>,
}

impl Replica {
    async fn new(test: &str, r: &str, store: &RedisStore) -> Self {
        let limiter = RateLimiter::builder(format!("{test}.quota.{r}"), 1_000_000)
            .build()
            .unwrap();
        let breaker = CircuitBreaker::builder(format!("{test}.breaker.{r}"))
            .build()
            .unwrap();
        let cache: Cache<u64, u64> = Cache::builder(format!("{test}.cache.{r}"))
            .ttl(Duration::from_secs(60))
            .max_size(100)
            .build()
            .unwrap();
        Replica {
            quota: SharedRateLimiter::with_name(&limiter, store, &format!("{test}.quota")),
            breaker: SharedBreaker::with_name(&breaker, store, &format!("{test}.breaker")),
            cache: SharedCache::with_name(&cache, store, &format!("{test}.cache")),
        }
    }

    /// A call through the quota, the breaker and the cache, to a service that always answers.
    async fn call(&self, key: u64) -> Result<u64, AppError> {
        self.cache
            .get_or_try_insert(key, async {
                self.quota.acquire(1).await?;
                self.breaker
                    .call(async { Ok::<_, AppError>(key * 2) })
                    .await
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stopped_and_restarted_fails_no_call() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let a = Replica::new("restart", "a", &server.store().await).await;
    let b = Replica::new("restart", "b", &server.store().await).await;
    let slowest = Arc::new(AtomicU64::new(0));
    let run = |replica: Replica, keys: std::ops::Range<u64>| {
        let slowest = slowest.clone();
        async move {
            for key in keys {
                let started = Instant::now();
                assert_eq!(replica.call(key).await.unwrap(), key * 2);
                slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    run(a.clone(), 0..50).await;
    server.stop();
    run(a.clone(), 50..100).await;
    run(b.clone(), 100..150).await;
    server.restart();
    // Sharing resumes once the pause after the last failure is over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    run(a.clone(), 1000..1010).await;
    let b_ran = AtomicBool::new(false);
    let served = b
        .cache
        .get_or_try_insert(1005, async {
            b_ran.store(true, Ordering::SeqCst);
            Ok::<_, AppError>(0)
        })
        .await
        .unwrap();
    assert_eq!(
        served, 2010,
        "B served A's answer computed after the restart"
    );
    assert!(!b_ran.load(Ordering::SeqCst));

    // The quota's script is run again after the restart (the server lost it: `EVAL`).
    let tight = |r: &str| {
        RateLimiter::builder(format!("restart.tight.{r}"), 3)
            .build()
            .unwrap()
    };
    let tight_a = SharedRateLimiter::with_name(&tight("a"), &server.store().await, "tight");
    let tight_b = SharedRateLimiter::with_name(&tight("b"), &server.store().await, "tight");
    for _ in 0..3 {
        tight_a.acquire(1).await.unwrap();
    }
    assert!(tight_b.acquire(1).await.unwrap_err().is_rate_limited());

    let slowest = Duration::from_micros(slowest.load(Ordering::SeqCst));
    eprintln!("store stopped and restarted: slowest call {slowest:?}");
    // A miss reads and writes the cache tier and asks the quota: three bounded operations.
    assert!(slowest < 3 * BOUND + SLACK, "a call took {slowest:?}");
    let exported = [
        exported_store_errors("cached", "restart.cache.a"),
        exported_store_errors("rate_limit", "restart.quota.b"),
    ];
    let snapshot = registry().snapshot();
    assert!(store_errors(snapshot.cache("restart.cache.a")) > 0);
    assert!(store_errors(snapshot.rate_limit("restart.quota.b")) > 0);
    // The metrics export (feature `metrics`) carries the same counts.
    assert_eq!(
        exported,
        [
            Some(store_errors(snapshot.cache("restart.cache.a"))),
            Some(store_errors(snapshot.rate_limit("restart.quota.b"))),
        ]
    );
}

/// `reliability_store_errors_total` of one policy as `reliability::metrics::export` sets it, read
/// from a recorder local to this call.
fn exported_store_errors(layer: &str, policy: &str) -> Option<u64> {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, reliability::metrics::export);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, .., value)| {
            let key = key.key();
            let label =
                |name: &str, want: &str| key.labels().any(|l| l.key() == name && l.value() == want);
            match value {
                DebugValue::Counter(n)
                    if key.name() == "reliability_store_errors_total"
                        && label("policy", policy)
                        && label("layer", layer) =>
                {
                    Some(n)
                }
                _ => None,
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_10000_calls_while_the_store_stops_twice() {
    let Some(server) = Server::start() else {
        return;
    };
    let server = Arc::new(std::sync::Mutex::new(server));
    let store = |s: &Arc<std::sync::Mutex<Server>>| s.lock().unwrap().url();
    let mut replicas = Vec::new();
    for r in ["a", "b", "c"] {
        replicas.push(Replica::new("chaos", r, &store_at(&store(&server)).await).await);
    }
    const CALLS: u64 = 10_000;
    const TASKS: u64 = 30;
    let done = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(AtomicU64::new(0));
    let chaos = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..2 {
                std::thread::sleep(Duration::from_millis(600));
                server.lock().unwrap().stop();
                std::thread::sleep(Duration::from_millis(600));
                server.lock().unwrap().restart();
            }
        })
    };
    let work = async {
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let replica = replicas[(t % 3) as usize].clone();
            let done = done.clone();
            let slowest = slowest.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..CALLS / TASKS + u64::from(t < CALLS % TASKS) {
                    let key = (t * 7 + i) % 500;
                    let started = Instant::now();
                    let answer = replica.call(key).await;
                    slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                    assert_eq!(answer.unwrap(), key * 2);
                    done.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(8)).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("every call ended within 20 s");
    chaos.await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), CALLS, "calls lost");
    let slowest = Duration::from_micros(slowest.load(Ordering::SeqCst));
    eprintln!("chaos: {CALLS} calls, slowest {slowest:?}");
    assert!(slowest < 3 * BOUND + SLACK, "a call took {slowest:?}");
    let snapshot = registry().snapshot();
    let errors: u64 = ["a", "b", "c"]
        .iter()
        .map(|r| store_errors(snapshot.cache(&format!("chaos.cache.{r}"))))
        .sum();
    assert!(errors > 0, "the stops were not seen");
    eprintln!("chaos: {errors} store errors in the caches");
}

/// A TCP proxy to `port` that stops forwarding while `stalled` is set.
async fn stalling_proxy(port: u16, stalled: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(forward(client_read, server_write, stalled.clone()));
            tokio::spawn(forward(server_read, client_write, stalled.clone()));
        }
    });
    proxy_port
}

/// Copies `from` to `to`, holding the bytes while `stalled` is set.
async fn forward(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_never_stalls_a_call() {
    let Some(server) = Server::start() else {
        return;
    };
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(server.port, stalled.clone()).await;
    let store = store_at(&format!("redis://127.0.0.1:{proxy}")).await;
    let replica = Replica::new("slow", "a", &store).await;
    assert_eq!(replica.call(1).await.unwrap(), 2);

    stalled.store(true, Ordering::SeqCst);
    let mut slowest = Duration::ZERO;
    for key in 100..140 {
        let started = Instant::now();
        assert_eq!(replica.call(key).await.unwrap(), key * 2);
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("slow store: slowest call {slowest:?}");
    assert!(slowest < 3 * BOUND + SLACK, "a call took {slowest:?}");
    let snapshot = registry().snapshot();
    assert!(store_errors(snapshot.cache("slow.cache.a")) > 0);

    // Once the store answers again, it is used again.
    stalled.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = Replica::new("slow", "b", &server.store().await).await;
    assert_eq!(replica.call(7).await.unwrap(), 14);
    let b_ran = AtomicBool::new(false);
    let served = other
        .cache
        .get_or_try_insert(7, async {
            b_ran.store(true, Ordering::SeqCst);
            Ok::<_, AppError>(0)
        })
        .await
        .unwrap();
    assert_eq!(served, 14);
    assert!(!b_ran.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_server_is_an_error_without_the_password() {
    let Some(_server) = Server::start() else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://:s3cret-pw@127.0.0.1:{port}");
    let builder = RedisStore::builder(&url).connect_timeout(Duration::from_millis(500));
    assert!(!format!("{builder:?}").contains("s3cret"));
    let error = builder.connect().await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unreachable);
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(shown.contains("cannot reach"), "{shown}");
        assert!(!shown.contains("s3cret"), "the password leaked: {shown}");
    }
    let invalid = RedisStore::connect("http://:s3cret-pw@example")
        .await
        .unwrap_err();
    assert_eq!(invalid.kind(), StoreErrorKind::InvalidUrl);
    assert!(!invalid.to_string().contains("s3cret"), "{invalid}");

    let lazy = RedisStore::builder(&url).connect_lazy().unwrap();
    assert!(!format!("{lazy:?}").contains("s3cret"));
    reliability::shared::install(lazy.clone()).unwrap();
    let again = reliability::shared::install(lazy).unwrap_err();
    assert_eq!(again.kind(), StoreErrorKind::AlreadyInstalled);
}

/// The attributes marked `shared` work locally while no store is installed (this test binary never
/// installs one).
mod attributes_before_a_store {
    use reliability::{CircuitState, cached, circuit_breaker, rate_limit, registry};

    #[circuit_breaker(name = "shared.attr.breaker", failure_threshold = 1, shared)]
    async fn guarded(fail: bool) -> Result<(), reliability::Error> {
        if fail {
            Err(reliability::Error::Timeout {
                after: std::time::Duration::ZERO,
            })
        } else {
            Ok(())
        }
    }

    #[cached(shared)]
    async fn doubled(n: u32) -> u32 {
        n * 2
    }

    #[rate_limit(rate = 1, per = "1m", shared)]
    async fn limited() -> Result<(), reliability::Error> {
        Ok(())
    }

    #[tokio::test]
    async fn they_work_locally() {
        guarded(false).await.unwrap();
        guarded(true).await.unwrap_err();
        let breaker = registry().circuit_breaker("shared.attr.breaker").unwrap();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(doubled(2).await, 4);
        assert_eq!(doubled(2).await, 4);
        limited().await.unwrap();
        assert!(limited().await.unwrap_err().is_rate_limited());
    }
}
