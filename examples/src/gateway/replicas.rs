//! Replicas that share what they learn: `cargo run --example llm_gateway -- --replicas 3`.
//!
//! N gateway replicas run in this process against one embedded service, which has an outage
//! window for the primary model and a quota per API key (so its 429s are real). Each replica has
//! what a separate process would have: its own HTTP client, its own circuit breaker, answer cache
//! and rate limiter (built with the programmatic types, since an attribute's policy is one per
//! process), and, when shared, its own connection to Redis. The same request stream runs twice:
//! "alone", each replica learning by itself, and "shared", every replica's breaker, cache and
//! limiter linked in Redis under one name. The figures come from the service's own counters, the
//! registry's and the replicas' own tallies, and are checked against each other.
//!
//! Redis: `--redis URL`, or a `redis-server` found on the `PATH`, started on a free port of
//! 127.0.0.1 without persistence and killed at the end ([`Redis`]).

use std::ops::Range;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reliability::shared::{RedisStore, SharedBreaker, SharedCache, SharedRateLimiter};
use reliability::{Cache, CircuitBreaker, CircuitState, PolicyStats, RateLimiter, registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Backend, Call, Endpoint, LlmError, Model};
use super::faults::{FaultPlan, SplitMix, mix};
use super::load::{QueryPool, stream};
use super::quota::API_KEY;
use super::server::{Quota, Server, ServiceConfig};

/// The comparison's load, service and stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicasConfig {
    /// Gateway replicas (2 to 16).
    pub replicas: usize,
    /// Requests of the stream, for the whole fleet; each mode runs all of them.
    pub requests: usize,
    /// Requests a second, for the whole fleet, evenly spaced.
    pub rate: f64,
    /// When the primary model is down (HTTP 503), from the start of each mode's run.
    pub outage: Range<Duration>,
    /// The service's quota per API key; every replica sends the same key.
    pub quota: Quota,
    /// Distinct questions in the pool the requests are drawn from.
    pub pool_size: usize,
    /// Exponent of the Zipf distribution of questions.
    pub zipf_exponent: f64,
    /// Seeds the request stream and the service's latencies.
    pub seed: u64,
}

impl Default for ReplicasConfig {
    /// The documented run: 3 replicas, 1,800 requests at 300 a second (6 s), `gpt-4` down from
    /// 1.5 s to 4.5 s, a quota of 100 requests a second (20 at once).
    fn default() -> Self {
        ReplicasConfig {
            replicas: 3,
            requests: 1_800,
            rate: 300.0,
            outage: Duration::from_millis(1_500)..Duration::from_millis(4_500),
            quota: Quota {
                per_second: 100,
                burst: 20,
            },
            pool_size: 2_000,
            zipf_exponent: 1.0,
            seed: 42,
        }
    }
}

/// The breaker of each replica: it opens when half of its last 20 calls failed (10 calls at
/// least) and stays open 600 ms (the recommended 60 s divided by 100, as in the ladder).
pub const COOLDOWN: Duration = Duration::from_millis(600);
/// How often a shared breaker reads the store: the default 1 s divided by 100, like every other
/// duration of the embedded timeline.
pub const SYNC: Duration = Duration::from_millis(10);
/// How long a replica holds the right to send half-open trials: the default 5 s divided by 100.
pub const TRIAL_LEASE: Duration = Duration::from_millis(50);
/// How long a request waits for a permit of its replica's rate limiter before it is shed.
pub const LIMIT_WAIT: Duration = Duration::from_millis(100);

/// Alone or shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No store: each replica learns by itself.
    Alone,
    /// Every replica's breaker, cache and limiter linked in Redis.
    Shared,
}

impl Mode {
    /// Its column label.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Alone => "alone",
            Mode::Shared => "shared",
        }
    }
}

/// What one mode's run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeRun {
    /// Alone or shared.
    pub mode: Mode,
    /// Requests sent through the fleet.
    pub requests: u64,
    /// Primary calls during the outage: the service's count of its HTTP 503s.
    pub outage_calls: u64,
    /// Failed primary calls from the start of the outage until every replica's breaker was open:
    /// for each replica, its breaker's counted failures (registry) from the outage's start until
    /// it first opened (or the outage ended), summed.
    pub paid_before_stopped: u64,
    /// For each replica, when its breaker first opened, from the outage's start (`None`: it never
    /// did during the outage).
    pub stopped_at: Vec<Option<Duration>>,
    /// Model calls for a question already answered: the service's count of answers to a question
    /// it had answered before.
    pub repeated_model_calls: u64,
    /// HTTP 429s: the service's count of requests over the API key's quota.
    pub over_quota: u64,
    /// Requests answered (by the model or a cache).
    pub answered: u64,
    /// Requests answered from a cache (local tier or Redis): the registry's cache hits.
    pub cache_hits: u64,
    /// Requests a replica's own rate limiter shed (no permit within [`LIMIT_WAIT`]): the
    /// registry's limiter rejections.
    pub shed: u64,
    /// Store operations that failed or timed out (the policies then worked locally).
    pub store_errors: u64,
    /// Where the service's counters, the registry's and the replicas' tallies disagree (none).
    pub disagreements: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// Both runs, and what they ran against.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The load and service.
    pub config: ReplicasConfig,
    /// The share of the requests each replica received.
    pub shares: Vec<f64>,
    /// No store.
    pub alone: ModeRun,
    /// Every replica on Redis.
    pub shared: ModeRun,
}

/// Why the comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplicasError {
    /// No `--redis` and no `redis-server` on the `PATH`.
    #[error(
        "--replicas needs Redis: install the `redis-server` package (Debian and Ubuntu: \
         apt-get install redis-server; macOS: brew install redis) so that it is on the PATH, \
         or pass --redis redis://HOST:PORT"
    )]
    NoRedis,
    /// `redis-server` was found but did not start.
    #[error("redis-server did not start: {0}")]
    RedisStart(String),
    /// A replica could not connect to Redis (the message never holds the URL).
    #[error("Redis: {0}")]
    Store(#[source] reliability::shared::StoreError),
    /// The embedded service could not bind a port.
    #[error("cannot start the embedded service: {0}")]
    Service(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] LlmError),
    /// A policy's settings were refused.
    #[error("{0}")]
    Config(#[from] reliability::ConfigError),
    /// The comparison was asked for no replica, or not given one store per replica.
    #[error("{0}")]
    Invalid(String),
    /// Interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

/// A Redis server: the one `--redis` names, or a `redis-server` this process started on a free
/// port of 127.0.0.1, without persistence, and kills when dropped.
#[derive(Debug)]
pub struct Redis {
    url: String,
    child: Option<std::process::Child>,
}

impl Redis {
    /// `url` if given; else a `redis-server` from the `PATH`, started; else
    /// [`ReplicasError::NoRedis`].
    pub async fn find(url: Option<&str>) -> Result<Redis, ReplicasError> {
        match url {
            Some(url) => Ok(Redis {
                url: url.to_owned(),
                child: None,
            }),
            None if redis_server_installed() => Redis::start().await,
            None => Err(ReplicasError::NoRedis),
        }
    }

    /// Starts `redis-server` on a free port of 127.0.0.1 (no snapshots, no append-only file) and
    /// waits until it answers `PING`.
    pub async fn start() -> Result<Redis, ReplicasError> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| ReplicasError::RedisStart(format!("no free port: {e}")))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ReplicasError::RedisStart(e.to_string()))?;
        // From here on, dropping `redis` kills the child, on every path.
        let mut redis = Redis {
            url: format!("redis://127.0.0.1:{port}"),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(port).await {
                return Ok(redis);
            }
            if let Some(Ok(Some(status))) = redis.child.as_mut().map(|c| c.try_wait()) {
                return Err(ReplicasError::RedisStart(format!(
                    "it exited ({status}) before answering on port {port}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(ReplicasError::RedisStart(format!(
                    "no answer on port {port} within 10 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its URL (it may hold a password: not for printing).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where it is, for printing: `redis-server started on 127.0.0.1:PORT`, or `the server of
    /// --redis` (whose URL may hold a password).
    pub fn describe(&self) -> String {
        match self.child {
            Some(_) => format!(
                "redis-server started on {} (no persistence; stopped at the end)",
                self.url.trim_start_matches("redis://")
            ),
            None => "the server given with --redis".to_owned(),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `redis-server` is on the `PATH`.
pub fn redis_server_installed() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a Redis server on `127.0.0.1:port` answers `PING`.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Ok(true))
    )
}

/// A replica's circuit breaker.
enum Breaker {
    Alone(CircuitBreaker),
    Shared(SharedBreaker),
}

/// A replica's answer cache.
enum Answers {
    Alone(Cache<String, String>),
    Shared(SharedCache<String, String>),
}

/// A replica's rate limiter, sized to the API key's quota.
enum Limiter {
    Alone(RateLimiter),
    Shared(SharedRateLimiter),
}

/// The errors the breaker counts: the service failing, not the quota (a 429 says the key is
/// busy, not that the model is down) and not the replica's own limiter.
fn counts(e: &LlmError) -> bool {
    matches!(e, LlmError::Server { .. } | LlmError::Transport(_))
}

/// The registry names of one replica's policies.
#[derive(Debug, Clone)]
struct Names {
    breaker: String,
    cache: String,
    limiter: String,
}

/// One gateway replica: what a separate process would have.
struct Replica {
    backend: Arc<Backend>,
    breaker: Breaker,
    answers: Answers,
    limiter: Limiter,
    names: Names,
    /// HTTP 503s it received.
    unavailable: AtomicU64,
    /// HTTP 429s it received.
    too_many: AtomicU64,
    /// Answers it got from the model.
    model_answers: AtomicU64,
    /// Requests it answered from its cache.
    cached: AtomicU64,
}

impl Replica {
    /// One request: cache (by the normalised question), then breaker, then the quota, then the
    /// primary model. `Ok` when answered.
    async fn ask(&self, question: &str, id: String) -> Result<String, LlmError> {
        let call = Call::new(self.backend.clone(), id);
        let key = question.trim().to_lowercase();
        let model = async {
            let attempt = async {
                match &self.limiter {
                    Limiter::Alone(l) => l.acquire(1).await?,
                    Limiter::Shared(l) => l.acquire(1).await?,
                }
                call.complete(Model::Primary, question)
                    .await
                    .map(|a| a.text)
            };
            match &self.breaker {
                Breaker::Alone(b) => b.call_when(counts, attempt).await,
                Breaker::Shared(b) => b.call_when(counts, attempt).await,
            }
        };
        let answer = match &self.answers {
            Answers::Alone(c) => c.get_or_try_insert(key, model).await,
            Answers::Shared(c) => c.get_or_try_insert(key, model).await,
        };
        let trace = call.trace();
        self.too_many
            .fetch_add(u64::from(trace.rate_limited()), Ordering::Relaxed);
        match &answer {
            Ok(_) if trace.primary_attempts() == 0 => {
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                self.model_answers.fetch_add(1, Ordering::Relaxed);
            }
            Err(LlmError::Server { status: 503 }) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        answer
    }

    fn local_breaker(&self) -> &CircuitBreaker {
        match &self.breaker {
            Breaker::Alone(b) => b,
            Breaker::Shared(b) => b.breaker(),
        }
    }
}

/// A name no earlier run used, so that a `--redis` server's keys of another run do not count.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "llm-gateway-{:x}",
        mix(nanos as u64 ^ u64::from(std::process::id()))
    )
}

/// The shares of the requests the replicas receive: `1 / (i + 1)`, normalised (3 replicas: 55%,
/// 27%, 18%). Load balancers rarely split evenly, and a quieter replica collects the failures
/// that open its breaker more slowly.
pub fn shares(replicas: usize) -> Vec<f64> {
    let weights: Vec<f64> = (1..=replicas).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}

/// Builds the replicas of one mode; `stores` holds one store per replica when shared.
fn replicas(
    config: &ReplicasConfig,
    server: &Server,
    run: &str,
    mode: Mode,
    stores: &[RedisStore],
) -> Result<Vec<Replica>, ReplicasError> {
    let mut out = Vec::with_capacity(config.replicas);
    for r in 0..config.replicas {
        let prefix = format!("{run}.{}.replica-{}", mode.label(), r + 1);
        let names = Names {
            breaker: format!("{prefix}.gpt4"),
            cache: format!("{prefix}.answers"),
            limiter: format!("{prefix}.openai"),
        };
        let breaker = CircuitBreaker::builder(names.breaker.as_str())
            .failure_rate(0.5)
            .window_calls(20)
            .min_calls(10)
            .success_threshold(2)
            .cooldown(COOLDOWN)
            .build()?;
        let cache: Cache<String, String> = Cache::builder(names.cache.as_str())
            .ttl(Duration::from_secs(3_600))
            .build()?;
        let limiter = RateLimiter::builder(names.limiter.as_str(), config.quota.per_second)
            .burst((config.quota.burst / 2).max(1))
            .wait(LIMIT_WAIT)
            .build()?;
        let (breaker, answers, limiter) = match (mode, stores.get(r)) {
            (Mode::Shared, Some(store)) => (
                Breaker::Shared(SharedBreaker::with_name(
                    &breaker,
                    store,
                    &format!("{run}.gpt4"),
                )),
                Answers::Shared(SharedCache::with_name(
                    &cache,
                    store,
                    &format!("{run}.answers"),
                )),
                Limiter::Shared(SharedRateLimiter::with_name(
                    &limiter,
                    store,
                    &format!("{run}.openai"),
                )),
            ),
            _ => (
                Breaker::Alone(breaker),
                Answers::Alone(cache),
                Limiter::Alone(limiter),
            ),
        };
        let backend = Backend::new(Endpoint {
            url: server.base_url(),
            primary_model: "gpt-4".to_owned(),
            fallback_model: "gpt-3.5-turbo".to_owned(),
            api_key: Some(API_KEY.to_owned()),
            client_deadline: Duration::from_secs(2),
        })
        .map_err(ReplicasError::Client)?;
        out.push(Replica {
            backend: Arc::new(backend),
            breaker,
            answers,
            limiter,
            names,
            unavailable: AtomicU64::new(0),
            too_many: AtomicU64::new(0),
            model_answers: AtomicU64::new(0),
            cached: AtomicU64::new(0),
        });
    }
    Ok(out)
}

/// The registry's count of counted failures of each breaker.
fn breaker_failures(replicas: &[Arc<Replica>]) -> Vec<u64> {
    let snapshot = registry().snapshot();
    replicas
        .iter()
        .map(|r| {
            snapshot
                .circuit_breaker(&r.names.breaker)
                .map_or(0, |s| s.failures)
        })
        .collect()
}

/// Watches the breakers through the outage: for each replica, when its breaker first opened (from
/// the outage's start) and the failures it counted from the outage's start until then (until the
/// outage's end if it never opened).
async fn watch(
    replicas: Vec<Arc<Replica>>,
    start: Instant,
    outage: Range<Duration>,
) -> Vec<(Option<Duration>, u64)> {
    let begin = start + outage.start;
    let end = start + outage.end;
    tokio::time::sleep_until(begin).await;
    let baseline = breaker_failures(&replicas);
    let mut stopped: Vec<Option<(Duration, u64)>> = vec![None; replicas.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < end && stopped.iter().any(Option::is_none) {
        tick.tick().await;
        let opened: Vec<usize> = (0..replicas.len())
            .filter(|&i| {
                stopped[i].is_none() && replicas[i].local_breaker().state() != CircuitState::Closed
            })
            .collect();
        if opened.is_empty() {
            continue;
        }
        let at = begin.elapsed();
        let failures = breaker_failures(&replicas);
        for i in opened {
            stopped[i] = Some((at, failures[i] - baseline[i]));
        }
    }
    let failures = breaker_failures(&replicas);
    stopped
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Some((at, paid)) => (Some(*at), *paid),
            None => (None, failures[i] - baseline[i]),
        })
        .collect()
}

/// Runs the stream through the replicas of `mode`, from a fresh timeline of the service.
async fn run_mode(
    config: &ReplicasConfig,
    server: &Server,
    run: &str,
    mode: Mode,
    stores: &[RedisStore],
) -> Result<ModeRun, ReplicasError> {
    let fleet: Vec<Arc<Replica>> = replicas(config, server, run, mode, stores)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let pool = QueryPool::new(config.pool_size, config.zipf_exponent);
    let requests = stream(&pool, config.requests, config.seed);
    let shares = shares(config.replicas);
    let mut route = SplitMix::new(mix(config.seed) ^ 0x7e91_1ca5);
    let answered = Arc::new(AtomicU64::new(0));

    server.restart();
    let start = Instant::now();
    let watcher = tokio::spawn(watch(fleet.clone(), start, config.outage.clone()));
    let mut tasks = JoinSet::new();
    for request in &requests {
        let due = Duration::from_secs_f64(request.index as f64 / config.rate.max(1e-3));
        tokio::time::sleep_until(start + due).await;
        let u = route.next_f64();
        let mut acc = 0.0;
        let r = shares
            .iter()
            .position(|s| {
                acc += s;
                u < acc
            })
            .unwrap_or(config.replicas - 1);
        let replica = fleet[r].clone();
        let text = request.text.clone();
        let id = format!("{}-req-{}", mode.label(), request.index);
        let answered = answered.clone();
        tasks.spawn(async move {
            if replica.ask(&text, id).await.is_ok() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let elapsed = start.elapsed();
    let stopped = watcher.await.unwrap_or_default();

    let snapshot = registry().snapshot();
    let sum = |f: &dyn Fn(&Replica) -> u64| fleet.iter().map(|r| f(r)).sum::<u64>();
    let total = |stats: &[Option<&PolicyStats>], field: fn(&PolicyStats) -> u64| {
        stats.iter().flatten().map(|s| field(s)).sum::<u64>()
    };
    let breakers: Vec<_> = fleet
        .iter()
        .map(|r| snapshot.circuit_breaker(&r.names.breaker))
        .collect();
    let caches: Vec<_> = fleet
        .iter()
        .map(|r| snapshot.cache(&r.names.cache))
        .collect();
    let limiters: Vec<_> = fleet
        .iter()
        .map(|r| snapshot.rate_limit(&r.names.limiter))
        .collect();
    // A request that waited for its replica's call of the same question is answered by the cache
    // too (`coalesced`).
    let cache_hits = total(&caches, |s| s.hits + s.coalesced);
    let shed = total(&limiters, |s| s.rejections);
    let breaker_failed = total(&breakers, |s| s.failures);
    let store_errors = total(&breakers, |s| s.store_errors)
        + total(&caches, |s| s.store_errors)
        + total(&limiters, |s| s.store_errors);

    let outage_calls = server.outage_failures();
    let over_quota = server.over_quota();
    let mut disagreements = Vec::new();
    let mut agree = |what: &str, figures: &[(&str, u64)]| {
        if figures.windows(2).any(|w| w[0].1 != w[1].1) {
            let list: Vec<String> = figures.iter().map(|(k, v)| format!("{k} {v}")).collect();
            disagreements.push(format!("{}: {what}: {}", mode.label(), list.join(", ")));
        }
    };
    agree(
        "HTTP 503s",
        &[
            ("service", outage_calls),
            ("breakers' counted failures", breaker_failed),
            ("replicas", sum(&|r| r.unavailable.load(Ordering::Relaxed))),
        ],
    );
    agree(
        "HTTP 429s",
        &[
            ("service", over_quota),
            ("service (all 429s)", server.rate_limited()),
            ("replicas", sum(&|r| r.too_many.load(Ordering::Relaxed))),
        ],
    );
    agree(
        "model answers",
        &[
            ("service", server.answers()),
            (
                "replicas",
                sum(&|r| r.model_answers.load(Ordering::Relaxed)),
            ),
        ],
    );
    agree(
        "answers from a cache",
        &[
            ("caches' hits", cache_hits),
            ("replicas", sum(&|r| r.cached.load(Ordering::Relaxed))),
        ],
    );
    Ok(ModeRun {
        mode,
        requests: requests.len() as u64,
        outage_calls,
        paid_before_stopped: stopped.iter().map(|s| s.1).sum(),
        stopped_at: stopped.iter().map(|s| s.0).collect(),
        repeated_model_calls: server.repeated_answers(),
        over_quota,
        answered: answered.load(Ordering::Relaxed),
        cache_hits,
        shed,
        store_errors,
        disagreements,
        elapsed,
    })
}

/// The embedded service of the comparison: `gpt-4` down in `config.outage`, a quota per API key,
/// no other faults (so that the outage, the repeats and the quota are measured alone).
pub fn service_config(config: &ReplicasConfig) -> ServiceConfig {
    ServiceConfig {
        plan: FaultPlan {
            seed: config.seed,
            failure_rate: 0.0,
            rate_limited_share: 0.0,
            hang_rate: 0.0,
            median_latency: Duration::from_millis(20),
            latency_sigma: 0.5,
            outage: Some(config.outage.clone()),
        },
        primary_model: "gpt-4".to_owned(),
        api_key: Some(API_KEY.to_owned()),
        quota: Some(config.quota),
    }
}

/// One store per replica, each its own connection to the Redis server at `redis_url` (as separate
/// processes would have), reading breaker state every [`SYNC`].
pub async fn connect(
    config: &ReplicasConfig,
    redis_url: &str,
) -> Result<Vec<RedisStore>, ReplicasError> {
    let mut stores = Vec::with_capacity(config.replicas);
    for _ in 0..config.replicas {
        let store = RedisStore::builder(redis_url)
            .sync(SYNC)
            .trial_lease(TRIAL_LEASE)
            .connect()
            .await
            .map_err(ReplicasError::Store)?;
        stores.push(store);
    }
    Ok(stores)
}

/// Runs the stream through the replicas alone, then shared through `stores` (one per replica).
pub async fn compare(
    config: &ReplicasConfig,
    stores: &[RedisStore],
) -> Result<Comparison, ReplicasError> {
    if config.replicas == 0 || stores.len() != config.replicas {
        return Err(ReplicasError::Invalid(format!(
            "{} replicas need as many stores; {} given",
            config.replicas,
            stores.len()
        )));
    }
    let server = Server::start(service_config(config))
        .await
        .map_err(ReplicasError::Service)?;
    let run = run_id();
    let alone = run_mode(config, &server, &run, Mode::Alone, &[]).await?;
    let shared = run_mode(config, &server, &run, Mode::Shared, stores).await?;
    Ok(Comparison {
        config: config.clone(),
        shares: shares(config.replicas),
        alone,
        shared,
    })
}

/// [`connect`]s to the Redis server at `redis_url`, then [`compare`]s.
pub async fn run_replicas(
    config: &ReplicasConfig,
    redis_url: &str,
) -> Result<Comparison, ReplicasError> {
    let stores = connect(config, redis_url).await?;
    compare(config, &stores).await
}

/// What the run is, before it runs.
pub fn settings(config: &ReplicasConfig, redis: &Redis) -> String {
    let shares: Vec<String> = shares(config.replicas)
        .iter()
        .map(|s| format!("{:.0}%", s * 100.0))
        .collect();
    format!(
        "replicas: {} gateway replicas in this process, each with its own HTTP client, breaker, cache, \
         rate limiter and (shared) Redis connection; they receive {} of the requests\n\
         load:     {} requests at {}/s, the same stream alone and shared; questions from a pool of {} \
         (Zipf, exponent {}), seed {}\n\
         service:  embedded; gpt-4 down {:.1}..{:.1} s into each run (HTTP 503); a quota of {} requests \
         a second per API key ({} at once), HTTP 429 beyond it; no other faults\n\
         replica:  cache → breaker (opens when half of its last 20 calls failed, 10 at least, for {} ms) \
         → rate limit ({}/s, {} at once, waits up to {} ms) → gpt-4\n\
         shared:   {}; breakers read it every {} ms, a trial lease lasts {} ms",
        config.replicas,
        shares.join(", "),
        config.requests,
        config.rate,
        config.pool_size,
        config.zipf_exponent,
        config.seed,
        config.outage.start.as_secs_f64(),
        config.outage.end.as_secs_f64(),
        config.quota.per_second,
        config.quota.burst,
        COOLDOWN.as_millis(),
        config.quota.per_second,
        (config.quota.burst / 2).max(1),
        LIMIT_WAIT.as_millis(),
        redis.describe(),
        SYNC.as_millis(),
        TRIAL_LEASE.as_millis(),
    )
}

/// Finds Redis, runs the comparison and prints it; ends early (killing a `redis-server` it
/// started) on Ctrl-C.
pub async fn run_and_print(
    config: &ReplicasConfig,
    redis_url: Option<&str>,
) -> Result<Comparison, ReplicasError> {
    let redis = Redis::find(redis_url).await?;
    let run = async {
        let stores = connect(config, redis.url()).await?;
        println!("{}", settings(config, &redis));
        compare(config, &stores).await
    };
    let comparison = tokio::select! {
        comparison = run => comparison?,
        _ = tokio::signal::ctrl_c() => return Err(ReplicasError::Interrupted),
    };
    println!();
    print!("{}", super::report::replicas_table(&comparison));
    drop(redis);
    Ok(comparison)
}
