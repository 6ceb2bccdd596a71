//! The quota table: the embedded service with a requests-per-second quota per API key, and four
//! ways for the client to live under it, each one `async fn` with one more option than the last.
//!
//! Like [`embedded`](super::stack::embedded), the stacks use the recommended durations divided by
//! 100 (300 ms per attempt, 10 ms first backoff).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use reliability::{PolicyKind, registry};
use tokio::time::Instant;

use super::client::{Backend, Call};
use super::ladder::{Arrivals, Counters, Outcome, Record, drive, new_bar, percent};
use super::load::{QueryPool, Request, stream};
use super::server::{Quota, Server};

/// The quota the embedded service enforces in the quota table: 200 requests a second per API key,
/// at most 20 at once.
pub const QUOTA: Quota = Quota {
    per_second: 200,
    burst: 20,
};

/// The API key the quota table's client sends (a bearer token): the service counts its quota.
pub const API_KEY: &str = "sk-llm-gateway-demo";

/// One rung of the quota table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum QuotaRung {
    /// Retry with exponential backoff and jitter, as in the ladder: a 429 is one more transient
    /// error.
    Backoff,
    /// + wait exactly what the 429 asks for (`retry_after = LlmError::retry_after`).
    RetryAfter,
    /// + a client-side `#[rate_limit]` just under the quota, waiting for a permit.
    Limiter,
    /// + a retry budget, so that retries cannot multiply the load while the service is down.
    Budget,
}

impl QuotaRung {
    /// Every rung, bottom to top.
    pub const ALL: [QuotaRung; 4] = [
        QuotaRung::Backoff,
        QuotaRung::RetryAfter,
        QuotaRung::Limiter,
        QuotaRung::Budget,
    ];

    /// Its row label.
    pub fn label(self) -> &'static str {
        match self {
            QuotaRung::Backoff => "retry with backoff",
            QuotaRung::RetryAfter => "+ Retry-After",
            QuotaRung::Limiter => "+ client rate limit",
            QuotaRung::Budget => "+ retry budget",
        }
    }

    /// The registry name of its function (its retry and timeout layers).
    pub fn function(self) -> &'static str {
        match self {
            QuotaRung::Backoff => concat!(module_path!(), "::stacks::backoff"),
            QuotaRung::RetryAfter => concat!(module_path!(), "::stacks::retry_after"),
            QuotaRung::Limiter => concat!(module_path!(), "::stacks::limited"),
            QuotaRung::Budget => concat!(module_path!(), "::stacks::budgeted"),
        }
    }

    /// The registry name of its client-side rate limiter, if it has one.
    pub fn limiter(self) -> Option<&'static str> {
        match self {
            QuotaRung::Backoff | QuotaRung::RetryAfter => None,
            QuotaRung::Limiter => Some(stacks::LIMITER),
            QuotaRung::Budget => Some(stacks::BUDGETED_LIMITER),
        }
    }
}

/// The four stacks.
pub mod stacks {
    use reliability::{rate_limit, retry, timeout};

    use crate::gateway::client::{Answer, Call, LlmError, Model};
    use crate::gateway::quota::QuotaRung;

    /// The registry name of the limiter of [`limited`].
    pub const LIMITER: &str = "quota-client";
    /// The registry name of the limiter of [`budgeted`].
    pub const BUDGETED_LIMITER: &str = "quota-client-budgeted";

    /// Rung 1: retry with backoff, a 429 being one more transient error.
    #[retry(max = 3, backoff = "exponential", delay = "10ms", max_delay = "300ms",
            when = LlmError::is_transient)]
    #[timeout(secs = "300ms")]
    pub async fn backoff(question: String, call: Call) -> Result<Answer, LlmError> {
        call.complete(Model::Primary, &question).await
    }

    /// Rung 2: + wait what the 429 asks for (`retry-after-ms`, else `Retry-After`), exactly.
    #[retry(max = 3, backoff = "exponential", delay = "10ms", max_delay = "300ms",
            when = LlmError::is_transient, retry_after = LlmError::retry_after)]
    #[timeout(secs = "300ms")]
    pub async fn retry_after(question: String, call: Call) -> Result<Answer, LlmError> {
        call.complete(Model::Primary, &question).await
    }

    /// Rung 3: + a client-side limit just under the quota (190 of 200 a second, 10 of 20 at
    /// once): each attempt waits for a permit, so the service is not asked more than it allows.
    #[retry(max = 3, backoff = "exponential", delay = "10ms", max_delay = "300ms",
            when = LlmError::is_transient, retry_after = LlmError::retry_after)]
    #[rate_limit(rate = 190, burst = 10, wait = "1s", name = "quota-client")]
    #[timeout(secs = "300ms")]
    pub async fn limited(question: String, call: Call) -> Result<Answer, LlmError> {
        call.complete(Model::Primary, &question).await
    }

    /// Rung 4: + a retry budget: retries may add at most 10% of the calls (plus 10 a second), so
    /// an outage, when every attempt fails, does not triple the load and fill the limiter's queue.
    #[retry(max = 3, backoff = "exponential", delay = "10ms", max_delay = "300ms",
            when = LlmError::is_transient, retry_after = LlmError::retry_after, budget = 0.1)]
    #[rate_limit(rate = 190, burst = 10, wait = "1s", name = "quota-client-budgeted")]
    #[timeout(secs = "300ms")]
    pub async fn budgeted(question: String, call: Call) -> Result<Answer, LlmError> {
        call.complete(Model::Primary, &question).await
    }

    /// Runs `rung` for one question.
    pub async fn run(rung: QuotaRung, question: String, call: Call) -> Result<Answer, LlmError> {
        match rung {
            QuotaRung::Backoff => backoff(question, call).await,
            QuotaRung::RetryAfter => retry_after(question, call).await,
            QuotaRung::Limiter => limited(question, call).await,
            QuotaRung::Budget => budgeted(question, call).await,
        }
    }
}

/// How much load, in what shape.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaConfig {
    /// Requests per rung.
    pub requests: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// When requests start: in waves, so that the peaks go over the quota.
    pub arrivals: Arrivals,
    /// Seeds the request stream.
    pub seed: u64,
    /// The rungs to run, in order.
    pub rungs: Vec<QuotaRung>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            requests: 800,
            concurrency: 64,
            arrivals: Arrivals::Waves {
                mean: 150.0,
                swing: 0.8,
                period: Duration::from_secs(1),
            },
            seed: 42,
            rungs: QuotaRung::ALL.to_vec(),
            progress: false,
        }
    }
}

/// What one rung did, counted one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaFigures {
    /// Requests made.
    pub requests: u64,
    /// Requests answered.
    pub answered: u64,
    /// Requests not answered.
    pub failed: u64,
    /// HTTP requests sent.
    pub attempts: u64,
    /// HTTP 429s received.
    pub rate_limited: u64,
}

impl QuotaFigures {
    /// `answered / requests`, in percent.
    pub fn success_percent(&self) -> f64 {
        percent(self.answered, self.requests)
    }

    /// HTTP requests sent per request made.
    pub fn attempts_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.attempts as f64 / self.requests as f64
        }
    }
}

/// One rung's run.
#[derive(Debug, Clone)]
pub struct QuotaRun {
    /// The rung.
    pub rung: QuotaRung,
    /// Requests, answers and HTTP requests from the registry's counters; 429s from the service's
    /// own count of the 429s it sent.
    pub figures: QuotaFigures,
    /// The same figures counted by the example itself, request by request.
    pub tally: QuotaFigures,
    /// Retries made.
    pub retries: u64,
    /// Attempts ended by the timeout.
    pub timeouts: u64,
    /// Calls that gave up because the retry budget was spent.
    pub budget_exhausted: u64,
    /// Attempts that waited for a permit of the client-side limiter.
    pub waited: u64,
    /// Attempts the client-side limiter refused (no permit within its `wait`).
    pub limiter_rejections: u64,
    /// Every request, in stream order.
    pub records: Vec<Record>,
    /// Wall time of the rung.
    pub elapsed: Duration,
}

impl QuotaRun {
    /// The latency percentile `p` (0–100) over every request, nearest rank.
    pub fn latency(&self, p: f64) -> Duration {
        let mut all: Vec<Duration> = self.records.iter().map(|r| r.end - r.start).collect();
        if all.is_empty() {
            return Duration::ZERO;
        }
        all.sort_unstable();
        let rank = ((p / 100.0) * all.len() as f64).ceil() as usize;
        all[rank.clamp(1, all.len()) - 1]
    }

    /// `answered / requests` in percent, among the requests whose lifetime did not meet `window`.
    pub fn success_outside(&self, window: &Range<Duration>) -> f64 {
        let outside = self
            .records
            .iter()
            .filter(|r| r.end < window.start || r.start >= window.end);
        let (mut answered, mut total) = (0, 0);
        for r in outside {
            total += 1;
            if r.outcome != Outcome::Failed {
                answered += 1;
            }
        }
        percent(answered, total)
    }

    /// Where the registry (and the service) and the example's own tally disagree, one line each.
    pub fn disagreements(&self) -> Vec<String> {
        let (r, t) = (&self.figures, &self.tally);
        let pairs = [
            ("requests", r.requests, t.requests),
            ("answered", r.answered, t.answered),
            ("failed", r.failed, t.failed),
            ("HTTP requests", r.attempts, t.attempts),
            ("429s", r.rate_limited, t.rate_limited),
        ];
        pairs
            .iter()
            .filter(|(_, a, b)| a != b)
            .map(|(what, a, b)| {
                format!(
                    "{}: {what}: registry or service says {a}, the example counted {b}",
                    self.rung.label()
                )
            })
            .collect()
    }
}

/// Every rung's run.
#[derive(Debug, Clone)]
pub struct QuotaTable {
    /// The load.
    pub config: QuotaConfig,
    /// The quota the service enforced.
    pub quota: Quota,
    /// The service's outage window, if any.
    pub outage: Option<Range<Duration>>,
    /// One run per rung, in order.
    pub runs: Vec<QuotaRun>,
}

impl QuotaTable {
    /// The run of `rung`, if it ran.
    pub fn run(&self, rung: QuotaRung) -> Option<&QuotaRun> {
        self.runs.iter().find(|r| r.rung == rung)
    }
}

/// Runs the stream through each rung of `config` against `server` (which must enforce a quota),
/// restarting its timeline at each rung. `backend` must send [`API_KEY`].
pub async fn run_quota(backend: Arc<Backend>, server: &Server, config: &QuotaConfig) -> QuotaTable {
    // No cache in these stacks: every question is a request, so the pool only sets the texts.
    let pool = QueryPool::new(config.requests.max(1), 1.0);
    let requests = stream(&pool, config.requests, config.seed);
    let mut runs = Vec::new();
    for (i, &rung) in config.rungs.iter().enumerate() {
        let prefix = format!("{}/{} {}", i + 1, config.rungs.len(), rung.label());
        let bar = new_bar(config.progress, config.requests, prefix);
        server.restart();
        runs.push(run_rung(&backend, server, rung, &requests, config, &bar).await);
    }
    QuotaTable {
        config: config.clone(),
        quota: server.quota().unwrap_or(QUOTA),
        outage: server.plan().outage.clone(),
        runs,
    }
}

async fn run_rung(
    backend: &Arc<Backend>,
    server: &Server,
    rung: QuotaRung,
    requests: &[Request],
    config: &QuotaConfig,
    bar: &indicatif::ProgressBar,
) -> QuotaRun {
    let before = registry().snapshot();
    let start = Instant::now();
    let records = drive(
        backend,
        requests,
        &config.arrivals,
        config.concurrency,
        start,
        bar,
        move |question, call: Call| stacks::run(rung, question, call),
    )
    .await;
    let elapsed = start.elapsed();
    bar.finish_with_message(format!("{:.1} s", elapsed.as_secs_f64()));
    let after = registry().snapshot();
    let function = rung.function();
    let retry = Counters::delta(&before, &after, PolicyKind::Retry, function);
    let timeout = Counters::delta(&before, &after, PolicyKind::Timeout, function);
    let limiter = rung
        .limiter()
        .map(|name| Counters::delta(&before, &after, PolicyKind::RateLimit, name))
        .unwrap_or_default();
    let figures = QuotaFigures {
        requests: retry.calls,
        answered: retry.successes,
        failed: retry.failures,
        attempts: timeout.calls,
        rate_limited: server.rate_limited(),
    };
    QuotaRun {
        rung,
        figures,
        tally: tally(&records),
        retries: retry.retries,
        timeouts: timeout.timeouts,
        budget_exhausted: retry.budget_exhausted,
        waited: limiter.waited,
        limiter_rejections: limiter.rejections,
        records,
        elapsed,
    }
}

fn tally(records: &[Record]) -> QuotaFigures {
    let mut f = QuotaFigures {
        requests: records.len() as u64,
        ..QuotaFigures::default()
    };
    for r in records {
        f.attempts += u64::from(r.primary_attempts);
        f.rate_limited += u64::from(r.rate_limited);
        if r.outcome == Outcome::Failed {
            f.failed += 1;
        } else {
            f.answered += 1;
        }
    }
    f
}
