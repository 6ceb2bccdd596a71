//! The command line of `cargo run --example llm_gateway`, and the run it drives.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::client::{Backend, Endpoint, LlmError};
use super::faults::FaultPlan;
use super::ladder::{Arrivals, Ladder, LadderConfig, run_ladder};
use super::quota::{API_KEY, QUOTA, QuotaConfig, QuotaRung, QuotaTable, run_quota};
use super::replicas::{self, Comparison, ReplicasConfig, ReplicasError};
use super::server::{Server, ServiceConfig};
use super::stack::{Profile, Rung};
use super::{plot, report};

/// Measures the reliability ladder (a bare call, then retry, timeout, fallback, cache and circuit
/// breaker added one by one) against a flaky OpenAI-compatible service embedded in the example, or
/// against a real one with `--target`; then, against the embedded service with a quota per API key,
/// the client under the quota (retry with backoff, + Retry-After, + a client-side rate limit, + a
/// retry budget). With --replicas N, instead: N gateway replicas, alone and then sharing their
/// breaker, cache and quota through Redis.
#[derive(Debug, Clone, Parser)]
#[command(name = "llm_gateway", version)]
pub struct Args {
    /// Requests per rung [default: 2000; 60 with --target].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub requests: Option<u64>,

    /// Requests in flight at most.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,

    /// Requests started per second (0: as fast as --concurrency allows) [default: 400; 4 with
    /// --target]. A fixed rate gives every rung the same timeline, so the outage meets the same
    /// part of the stream.
    #[arg(long, value_parser = non_negative)]
    pub rate: Option<f64>,

    /// Share of attempts the embedded service answers with HTTP 500 or 429 (half each).
    #[arg(long, default_value_t = 0.08, value_parser = probability, conflicts_with = "target")]
    pub failure_rate: f64,

    /// Share of attempts the embedded service never answers.
    #[arg(long, default_value_t = 0.02, value_parser = probability, conflicts_with = "target")]
    pub hang_rate: f64,

    /// Seconds START..END into each rung during which the primary model is down (HTTP 503), or
    /// `none`.
    #[arg(long, default_value = "2..3", value_name = "START..END", value_parser = outage,
          conflicts_with = "target")]
    pub outage: Outage,

    /// Median latency of the embedded primary model, in milliseconds (the fallback model is twice
    /// as fast).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000),
          conflicts_with = "target")]
    pub latency_ms: u64,

    /// Seeds the fault pattern and the request stream: the same seed, the same faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// The rungs to run, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub rung: Vec<Rung>,

    /// Write a chart of outcomes per second over time to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Distinct questions in the pool the requests are drawn from.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub pool: u64,

    /// Exponent of the Zipf distribution of questions (higher: more repeats).
    #[arg(long, default_value_t = 1.0, value_parser = zipf_exponent)]
    pub zipf: f64,

    /// Send the stack to this OpenAI-compatible API instead of the embedded service, e.g.
    /// `http://127.0.0.1:8000/v1`. The stack then uses the recommended durations (30 s per attempt).
    #[arg(long, value_name = "URL", value_parser = target_url)]
    pub target: Option<String>,

    /// The primary model.
    #[arg(long, default_value = "gpt-4")]
    pub model: String,

    /// The fallback model.
    #[arg(long, default_value = "gpt-3.5-turbo")]
    pub fallback_model: String,

    /// Environment variable holding the API key for --target (sent as a bearer token if set).
    #[arg(long, default_value = "OPENAI_API_KEY", value_name = "VAR")]
    pub api_key_env: String,

    /// Requests per rung of the quota table (0: no quota table). The quota table runs against the
    /// embedded service only.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub quota_requests: u64,

    /// Requests a second, on average, in the quota table; the quota is 200 a second.
    #[arg(long, default_value_t = 150.0, value_parser = positive)]
    pub quota_rate: f64,

    /// How far the quota table's load swings around its mean, once a second (0: steady, 1: from
    /// 0 to twice the mean).
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
    pub quota_swing: f64,

    /// The rungs of the quota table to run, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub quota_rung: Vec<QuotaRung>,

    /// Instead of the ladder: N gateway replicas (2 to 16) against the same flaky service, first
    /// each alone, then sharing their breaker, cache and quota through Redis. Needs `redis-server`
    /// on the PATH (started on a free port, stopped at the end) or --redis.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=16),
          conflicts_with = "target")]
    pub replicas: Option<u64>,

    /// The Redis server of --replicas, e.g. `redis://127.0.0.1:6379` [default: a `redis-server`
    /// from the PATH, started for the run].
    #[arg(long, value_name = "URL", requires = "replicas")]
    pub redis: Option<String>,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// Serve the registry's counters in the Prometheus text format at `http://ADDR/metrics` while
    /// the run lasts, e.g. `127.0.0.1:9000`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// An optional outage window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage(pub Option<Range<Duration>>);

fn outage(text: &str) -> Result<Outage, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Outage(None));
    }
    let (start, end) = text
        .split_once("..")
        .ok_or("expected START..END in seconds, e.g. 2..3 or 1.5..2.5, or `none`")?;
    let seconds = |s: &str| -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a number of seconds", s.trim()))?;
        if v.is_finite() && (0.0..=86_400.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "`{}` is out of range (0 to 86400 seconds)",
                s.trim()
            ))
        }
    };
    let (start, end) = (seconds(start)?, seconds(end)?);
    if start >= end {
        return Err(format!("the window is empty: {start} is not before {end}"));
    }
    Ok(Outage(Some(
        Duration::from_secs_f64(start)..Duration::from_secs_f64(end),
    )))
}

fn number(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{text}` is not a finite number"))
    }
}

fn probability(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is negative"))
    }
}

fn positive(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not above 0"))
    }
}

fn zipf_exponent(text: &str) -> Result<f64, String> {
    let v = number(text)?;
    if (0.0..=10.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 10"))
    }
}

fn target_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(text.to_owned()),
        "http" | "https" => Err("the URL has no host".to_owned()),
        other => Err(format!("`{other}` is not http or https")),
    }
}

impl Args {
    /// Checks what one flag alone cannot: the fault rates together.
    pub fn validate(&self) -> Result<(), clap::Error> {
        if self.failure_rate + self.hang_rate > 1.0 {
            return Err(Args::command().error(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "--failure-rate {} and --hang-rate {} add up to more than 1",
                    self.failure_rate, self.hang_rate
                ),
            ));
        }
        Ok(())
    }

    /// The load these flags ask for.
    pub fn ladder_config(&self) -> LadderConfig {
        let remote = self.target.is_some();
        let requests = self.requests.unwrap_or(if remote { 60 } else { 2_000 });
        let rate = self.rate.unwrap_or(if remote { 4.0 } else { 400.0 });
        LadderConfig {
            requests: usize::try_from(requests).unwrap_or(usize::MAX),
            concurrency: usize::try_from(self.concurrency).unwrap_or(usize::MAX),
            rate: (rate > 0.0).then_some(rate),
            seed: self.seed,
            pool_size: usize::try_from(self.pool).unwrap_or(usize::MAX),
            zipf_exponent: self.zipf,
            rungs: if self.rung.is_empty() {
                Rung::ALL.to_vec()
            } else {
                self.rung.clone()
            },
            progress: !self.quiet,
        }
    }

    /// The quota table's load, or `None` for no quota table (`--quota-requests 0`, or `--target`).
    pub fn quota_config(&self) -> Option<QuotaConfig> {
        if self.quota_requests == 0 || self.target.is_some() {
            return None;
        }
        Some(QuotaConfig {
            requests: usize::try_from(self.quota_requests).unwrap_or(usize::MAX),
            concurrency: usize::try_from(self.concurrency).unwrap_or(usize::MAX),
            arrivals: Arrivals::Waves {
                mean: self.quota_rate,
                swing: self.quota_swing,
                period: Duration::from_secs(1),
            },
            seed: self.seed,
            rungs: if self.quota_rung.is_empty() {
                QuotaRung::ALL.to_vec()
            } else {
                self.quota_rung.clone()
            },
            progress: !self.quiet,
        })
    }

    /// The replicas comparison these flags ask for, if any (`--replicas N`): the documented load,
    /// with `--seed`.
    pub fn replicas_config(&self) -> Option<ReplicasConfig> {
        let replicas = usize::try_from(self.replicas?).ok()?;
        Some(ReplicasConfig {
            replicas,
            seed: self.seed,
            ..ReplicasConfig::default()
        })
    }

    /// The faults these flags ask of the embedded service.
    pub fn fault_plan(&self) -> FaultPlan {
        FaultPlan {
            seed: self.seed,
            failure_rate: self.failure_rate,
            rate_limited_share: 0.5,
            hang_rate: self.hang_rate,
            median_latency: Duration::from_millis(self.latency_ms),
            latency_sigma: 0.5,
            outage: self.outage.0.clone(),
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The embedded service could not bind a port.
    #[error("cannot start the embedded service: {0}")]
    Start(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] LlmError),
    /// `--target` did not answer.
    #[error("cannot reach {url}: {cause}")]
    Unreachable {
        /// The chat-completions URL.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// `--target` answered, but refused the request or did not speak the API.
    #[error("{url}: {cause}")]
    Refused {
        /// The chat-completions URL.
        url: String,
        /// What it answered.
        cause: String,
    },
    /// The chart could not be written.
    #[error("{0}")]
    Plot(String),
    /// `--metrics` could not bind its address (or a recorder was installed already).
    #[error("cannot serve /metrics: {0}")]
    Metrics(#[source] std::io::Error),
    /// The replicas comparison could not run (no Redis, among others).
    #[error(transparent)]
    Replicas(#[from] ReplicasError),
}

/// The HTTP client's own deadline with the embedded service: ends hung requests in rungs without
/// a `#[timeout]` (the recommended durations are divided by 100 there; 2 s stands for 200 s).
pub const EMBEDDED_CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// The HTTP client's own deadline with `--target`.
pub const REMOTE_CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the ladder as `args` say, printing the settings, the progress and the table; returns it.
pub async fn run(args: &Args) -> Result<Ladder, RunError> {
    serve_metrics(args).await?;
    let config = args.ladder_config();
    let server;
    let (backend, profile) = match &args.target {
        None => {
            server = Some(
                Server::start(ServiceConfig {
                    plan: args.fault_plan(),
                    primary_model: args.model.clone(),
                    api_key: None,
                    quota: None,
                })
                .await
                .map_err(RunError::Start)?,
            );
            let endpoint = Endpoint {
                url: server.as_ref().map(Server::base_url).unwrap_or_default(),
                primary_model: args.model.clone(),
                fallback_model: args.fallback_model.clone(),
                api_key: None,
                client_deadline: EMBEDDED_CLIENT_DEADLINE,
            };
            let backend = Backend::new(endpoint).map_err(RunError::Client)?;
            (backend, Profile::Embedded)
        }
        Some(url) => {
            server = None;
            let endpoint = Endpoint {
                url: url.clone(),
                primary_model: args.model.clone(),
                fallback_model: args.fallback_model.clone(),
                api_key: std::env::var(&args.api_key_env)
                    .ok()
                    .filter(|k| !k.is_empty()),
                client_deadline: REMOTE_CLIENT_DEADLINE,
            };
            let backend = Backend::new(endpoint).map_err(RunError::Client)?;
            preflight(&backend, &args.api_key_env).await?;
            (backend, Profile::Remote)
        }
    };
    println!("{}", settings(args, &config, &backend, server.as_ref()));
    let ladder = run_ladder(Arc::new(backend), profile, server.as_ref(), &config).await;
    println!();
    print!("{}", report::table(&ladder));
    if let Some(path) = &args.plot {
        plot::write_svg(&ladder, path).map_err(RunError::Plot)?;
        println!("Chart written to {}.", path.display());
    }
    if let Some(config) = args.quota_config() {
        run_quota_table(args, &config).await?;
    }
    Ok(ladder)
}

/// Runs the replicas comparison (`--replicas N`), printing the settings and the table; returns it,
/// or `None` without `--replicas`.
pub async fn run_replicas(args: &Args) -> Result<Option<Comparison>, RunError> {
    let Some(config) = args.replicas_config() else {
        return Ok(None);
    };
    serve_metrics(args).await?;
    Ok(Some(
        replicas::run_and_print(&config, args.redis.as_deref()).await?,
    ))
}

/// Serves `/metrics` at `--metrics ADDR`, if given, for the rest of the process.
async fn serve_metrics(args: &Args) -> Result<(), RunError> {
    if let Some(addr) = args.metrics {
        super::metrics::serve(addr)
            .await
            .map_err(RunError::Metrics)?;
    }
    Ok(())
}

/// Starts the embedded service again, now with [`QUOTA`] per API key, and prints the quota table.
pub async fn run_quota_table(args: &Args, config: &QuotaConfig) -> Result<QuotaTable, RunError> {
    // With a real quota, the service's 429s are real: its random failures are all 500s.
    let plan = FaultPlan {
        rate_limited_share: 0.0,
        ..args.fault_plan()
    };
    let server = Server::start(ServiceConfig {
        plan,
        primary_model: args.model.clone(),
        api_key: Some(API_KEY.to_owned()),
        quota: Some(QUOTA),
    })
    .await
    .map_err(RunError::Start)?;
    let backend = Backend::new(Endpoint {
        url: server.base_url(),
        primary_model: args.model.clone(),
        fallback_model: args.fallback_model.clone(),
        api_key: Some(API_KEY.to_owned()),
        client_deadline: EMBEDDED_CLIENT_DEADLINE,
    })
    .map_err(RunError::Client)?;
    println!();
    println!("{}", quota_settings(config, &server));
    let table = run_quota(Arc::new(backend), &server, config).await;
    println!();
    print!("{}", report::quota_table(&table));
    Ok(table)
}

fn quota_settings(config: &QuotaConfig, server: &Server) -> String {
    let quota = server.quota().unwrap_or(QUOTA);
    let load = match config.arrivals {
        Arrivals::Waves {
            mean,
            swing,
            period,
        } => format!(
            "in waves of {:.0} s from {:.0}/s to {:.0}/s (mean {mean:.0}/s)",
            period.as_secs_f64(),
            mean * (1.0 - swing),
            mean * (1.0 + swing)
        ),
        Arrivals::Steady(rate) => format!("at {rate}/s"),
        Arrivals::FullSpeed => "at full speed".to_owned(),
    };
    let plan = server.plan();
    let outage = match &plan.outage {
        Some(w) => format!(
            "down {:.1}..{:.1} s into each rung",
            w.start.as_secs_f64(),
            w.end.as_secs_f64()
        ),
        None => "no outage".to_owned(),
    };
    format!(
        "quota:   the same service with a quota of {} requests a second per API key ({} at once), \
         HTTP 429 with Retry-After beyond it; its own faults are {:.0}% HTTP 500, {:.0}% hangs, {outage}\n\
         load:    {} requests per rung {load}, at most {} in flight; no cache, no fallback: every \
         request goes to the primary",
        quota.per_second,
        quota.burst,
        plan.failure_rate * 100.0,
        plan.hang_rate * 100.0,
        config.requests,
        config.concurrency,
    )
}

/// One question to `--target` before the run, so that a wrong URL or key ends at once, in one line.
pub async fn preflight(backend: &Backend, api_key_env: &str) -> Result<(), RunError> {
    let model = backend.endpoint().primary_model.clone();
    let url = backend.url().to_owned();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        backend.complete(&model, "Say OK.", "llm-gateway-preflight"),
    )
    .await;
    match answer {
        Err(_) => Err(RunError::Unreachable {
            url,
            cause: "no answer within 10 s".to_owned(),
        }),
        Ok(Ok(_)) => Ok(()),
        // Reachable and speaking the API, just flaky: the run will show how flaky.
        Ok(Err(LlmError::RateLimited { .. } | LlmError::Server { .. })) => Ok(()),
        Ok(Err(LlmError::Transport(e))) => Err(RunError::Unreachable {
            url,
            cause: causes(&e),
        }),
        Ok(Err(
            e @ LlmError::Refused {
                status: 401 | 403, ..
            },
        )) => {
            let key = if backend.endpoint().api_key.is_some() {
                format!("the key in ${api_key_env} was sent")
            } else {
                format!("${api_key_env} is not set")
            };
            Err(RunError::Refused {
                url,
                cause: format!("{e} ({key})"),
            })
        }
        Ok(Err(e)) => Err(RunError::Refused {
            url,
            cause: e.to_string(),
        }),
    }
}

/// The causes of `e` without its first message, which only repeats the URL.
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn settings(
    args: &Args,
    config: &LadderConfig,
    backend: &Backend,
    server: Option<&Server>,
) -> String {
    let rate = match config.rate {
        Some(rate) => format!("{rate}/s"),
        None => "full speed".to_owned(),
    };
    let mut text = format!(
        "load:    {} requests per rung at {rate}, at most {} in flight; questions drawn from a pool of {} \
         (Zipf, exponent {}), seed {}\n",
        config.requests, config.concurrency, config.pool_size, config.zipf_exponent, config.seed
    );
    match server {
        Some(server) => {
            let plan = server.plan();
            let outage = match &plan.outage {
                Some(w) => format!(
                    "{} down {:.1}..{:.1} s into each rung",
                    args.model,
                    w.start.as_secs_f64(),
                    w.end.as_secs_f64()
                ),
                None => "no outage".to_owned(),
            };
            text.push_str(&format!(
                "service: embedded at {}: {:.0}% of attempts fail (HTTP 500 or 429), {:.0}% hang, \
                 {outage}; median latency {} ms\n",
                server.base_url(),
                plan.failure_rate * 100.0,
                plan.hang_rate * 100.0,
                plan.median_latency.as_millis(),
            ));
            text.push_str(&format!(
                "stack:   the recommended durations / 100: 300 ms per attempt, 3 attempts from 10 ms \
                 backoff, breaker opens when half of the last 300 ms of calls failed (20 calls at least) for \
                 600 ms; HTTP client deadline {} s",
                EMBEDDED_CLIENT_DEADLINE.as_secs()
            ));
        }
        None => {
            text.push_str(&format!(
                "service: {} ({} then {})\n",
                backend.url(),
                args.model,
                args.fallback_model
            ));
            text.push_str(&format!(
                "stack:   the recommended durations: 30 s per attempt, 3 attempts from 1 s backoff, \
                 breaker opens when half of the last 30 s of calls failed (20 calls at least) for 60 s; \
                 HTTP client deadline {} s",
                REMOTE_CLIENT_DEADLINE.as_secs()
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let args =
            Args::try_parse_from(std::iter::once("llm_gateway").chain(args.iter().copied()))?;
        args.validate().map(|()| args)
    }

    #[test]
    fn defaults_are_the_documented_run() {
        let args = parse(&[]).unwrap();
        let config = args.ladder_config();
        assert_eq!((config.requests, config.rate), (2_000, Some(400.0)));
        assert_eq!(config.rungs, Rung::ALL.to_vec());
        let plan = args.fault_plan();
        assert_eq!(
            plan.outage,
            Some(Duration::from_secs(2)..Duration::from_secs(3))
        );
        let quota = args.quota_config().expect("a quota table by default");
        let progress = QuotaConfig {
            progress: true,
            ..QuotaConfig::default()
        };
        assert_eq!(quota, progress);
        let remote = parse(&["--target", "http://127.0.0.1:8000/v1"]).unwrap();
        assert_eq!(remote.ladder_config().requests, 60);
        assert_eq!(
            remote.quota_config(),
            None,
            "the quota table needs the embedded service"
        );
        assert_eq!(
            parse(&["--quota-requests", "0"]).unwrap().quota_config(),
            None
        );
    }

    #[test]
    fn bad_values_are_clap_errors() {
        for bad in [
            &["--requests", "0"][..],
            &["--outage", "3..2"],
            &["--outage", "2-3"],
            &["--outage", "-1..2"],
            &["--failure-rate", "1.5"],
            &["--failure-rate", "0.9", "--hang-rate", "0.2"],
            &["--rate", "-1"],
            &["--rung", "everything"],
            &["--quota-rate", "0"],
            &["--quota-swing", "1.5"],
            &["--quota-rung", "nothing"],
            &["--target", "ftp://example"],
            &["--target", "http://127.0.0.1:9", "--failure-rate", "0.1"],
            &["--replicas", "1"],
            &["--replicas", "17"],
            &["--redis", "redis://127.0.0.1:6379"],
            &["--replicas", "3", "--target", "http://127.0.0.1:8000/v1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn replicas_take_their_count_and_the_seed() {
        assert_eq!(parse(&[]).unwrap().replicas_config(), None);
        let args = parse(&["--replicas", "4", "--seed", "7", "--redis", "redis://h:1"]).unwrap();
        let config = args
            .replicas_config()
            .expect("--replicas asks for the comparison");
        assert_eq!((config.replicas, config.seed), (4, 7));
        assert_eq!(args.redis.as_deref(), Some("redis://h:1"));
    }

    #[test]
    fn outage_windows_parse() {
        let window = parse(&["--outage", "1.5..2.25"]).unwrap().outage.0.unwrap();
        assert_eq!(
            window,
            Duration::from_millis(1_500)..Duration::from_millis(2_250)
        );
        assert_eq!(parse(&["--outage", "none"]).unwrap().outage.0, None);
        let rungs = parse(&["--rung", "bare,breaker"])
            .unwrap()
            .ladder_config()
            .rungs;
        assert_eq!(rungs, vec![Rung::Bare, Rung::Breaker]);
    }
}
