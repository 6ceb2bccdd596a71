//! Runs one request stream through each rung and measures it: figures from the registry's counters,
//! cross-checked against the example's own tally of every request.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reliability::{CircuitState, PolicyKind, PolicyStats, Snapshot, registry};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Answer, Backend, Call, LlmError, Source};
use super::load::{QueryPool, Request, stream};
use super::server::Server;
use super::stack::{Profile, Rung};

/// How much load, in what shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderConfig {
    /// Requests per rung.
    pub requests: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests started per second (`None`: as fast as `concurrency` allows). A fixed rate gives
    /// every rung the same timeline, so the outage window meets the same part of the stream.
    pub rate: Option<f64>,
    /// Seeds the request stream (the service's faults have their own seed).
    pub seed: u64,
    /// Distinct questions in the pool.
    pub pool_size: usize,
    /// Exponent of the Zipf distribution over the pool.
    pub zipf_exponent: f64,
    /// The rungs to run, in order.
    pub rungs: Vec<Rung>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            requests: 2_000,
            concurrency: 64,
            rate: Some(400.0),
            seed: 42,
            pool_size: 2_000,
            zipf_exponent: 1.0,
            rungs: Rung::ALL.to_vec(),
            progress: false,
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered by the primary model.
    Primary,
    /// Answered by the fallback model.
    Fallback,
    /// Answered by the canned answer.
    Canned,
    /// Answered without running anything: a cache hit, or a concurrent call of the same question.
    Cache,
    /// Answered by an expired cache entry (`stale_if_error`), because the primary failed and only
    /// the fallback answered.
    Stale,
    /// No answer.
    Failed,
}

/// One request as the load driver saw it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The request.
    pub request: Request,
    /// When it started, from the start of the rung.
    pub start: Duration,
    /// When it ended, from the start of the rung.
    pub end: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP requests it sent to the primary model.
    pub primary_attempts: u32,
    /// Whether the canned answer ran for it (the fallback model had failed too).
    pub canned_ran: bool,
    /// HTTP 429s it received.
    pub rate_limited: u32,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// Where a rung's answers came from, and what it cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests made.
    pub requests: u64,
    /// Answered by the primary model.
    pub primary: u64,
    /// Answered by the fallback model (at the fallback layer: a stale entry may have replaced it).
    pub fallback: u64,
    /// Answered by the canned answer (at the fallback layer, as `fallback`).
    pub canned: u64,
    /// Answered by the cache (hits, and calls that joined a concurrent call of the same question).
    pub cache: u64,
    /// Of the fallback layer's answers, those replaced by a stale cache entry for the user.
    pub stale: u64,
    /// Not answered.
    pub failed: u64,
    /// HTTP requests sent to the primary model: its cost.
    pub primary_calls: u64,
}

impl Figures {
    /// Requests that got an answer.
    pub fn answered(&self) -> u64 {
        self.primary + self.fallback + self.canned + self.cache
    }

    /// `answered / requests`, in percent.
    pub fn success_percent(&self) -> f64 {
        percent(self.answered(), self.requests)
    }
}

/// `part / whole` in percent (0 for an empty whole).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// One rung's run.
#[derive(Debug, Clone)]
pub struct RungRun {
    /// The rung.
    pub rung: Rung,
    /// Figures read from the registry's counters (the change over this run).
    pub figures: Figures,
    /// The same figures counted by the example itself, request by request.
    pub tally: Figures,
    /// Retries made by the primary's retry layer.
    pub retries: u64,
    /// Attempts ended by the primary's timeout layer.
    pub timeouts: u64,
    /// Circuit breaker openings.
    pub openings: u64,
    /// Calls the circuit breaker rejected.
    pub rejections: u64,
    /// Cache hits proper (a subset of `figures.cache`).
    pub hits: u64,
    /// Extra attempts the hedge layer started.
    pub hedges: u64,
    /// Requests an extra attempt answered.
    pub hedges_won: u64,
    /// Every request, in stream order.
    pub records: Vec<Record>,
    /// When the circuit was open, from the start of the rung (sampled every 2 ms).
    pub breaker_open: Vec<Range<Duration>>,
    /// Wall time of the rung.
    pub elapsed: Duration,
}

impl RungRun {
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

    /// `(answered, requests)` among the requests whose lifetime did not meet `window`.
    pub fn answered_outside(&self, window: &Range<Duration>) -> (u64, u64) {
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
        (answered, total)
    }

    /// How the requests ended for the user, counted request by request.
    pub fn outcomes(&self) -> Outcomes {
        let mut o = Outcomes::default();
        for r in &self.records {
            *match r.outcome {
                Outcome::Primary => &mut o.primary,
                Outcome::Fallback => &mut o.fallback,
                Outcome::Canned => &mut o.canned,
                Outcome::Cache => &mut o.cache,
                Outcome::Stale => &mut o.stale,
                Outcome::Failed => &mut o.failed,
            } += 1;
        }
        o
    }

    /// Where the registry and the example's own tally disagree, one line each.
    pub fn disagreements(&self) -> Vec<String> {
        let (r, t) = (&self.figures, &self.tally);
        let pairs = [
            ("requests", r.requests, t.requests),
            ("primary", r.primary, t.primary),
            ("fallback", r.fallback, t.fallback),
            ("canned", r.canned, t.canned),
            ("cache", r.cache, t.cache),
            ("stale", r.stale, t.stale),
            ("failed", r.failed, t.failed),
            ("primary calls", r.primary_calls, t.primary_calls),
        ];
        pairs
            .iter()
            .filter(|(_, a, b)| a != b)
            .map(|(what, a, b)| {
                format!(
                    "{}: {what}: registry says {a}, the example counted {b}",
                    self.rung.label()
                )
            })
            .collect()
    }
}

/// How a rung's requests ended for the user: each request counted once, by the answer it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Answered by the primary model.
    pub primary: u64,
    /// Answered by the fallback model.
    pub fallback: u64,
    /// Answered by the canned answer.
    pub canned: u64,
    /// Answered by the cache without running anything.
    pub cache: u64,
    /// Answered by a stale cache entry while the primary failed.
    pub stale: u64,
    /// Not answered.
    pub failed: u64,
}

/// Every rung's run.
#[derive(Debug, Clone)]
pub struct Ladder {
    /// The load.
    pub config: LadderConfig,
    /// Distinct questions in the stream.
    pub distinct_questions: usize,
    /// One run per rung, in order.
    pub runs: Vec<RungRun>,
    /// The outage window of the embedded service, if any.
    pub outage: Option<Range<Duration>>,
}

impl Ladder {
    /// The run of `rung`, if it ran.
    pub fn run(&self, rung: Rung) -> Option<&RungRun> {
        self.runs.iter().find(|r| r.rung == rung)
    }
}

/// Runs the stream through each rung of `config`, in order, on `backend` with `profile`'s
/// durations. With `server` (the embedded service), its timeline restarts at each rung.
///
/// The rung functions keep their caches and circuit breakers for the life of the process, so a
/// ladder is meant to run once per process.
pub async fn run_ladder(
    backend: Arc<Backend>,
    profile: Profile,
    server: Option<&Server>,
    config: &LadderConfig,
) -> Ladder {
    let pool = QueryPool::new(config.pool_size, config.zipf_exponent);
    let requests = stream(&pool, config.requests, config.seed);
    let distinct_questions = {
        let mut seen: Vec<usize> = requests.iter().map(|r| r.question_index).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    let mut runs = Vec::new();
    for (i, &rung) in config.rungs.iter().enumerate() {
        let bar = progress_bar(config, rung, i);
        if let Some(server) = server {
            server.restart();
        }
        runs.push(run_rung(&backend, profile, rung, &requests, config, &bar).await);
    }
    Ladder {
        config: config.clone(),
        distinct_questions,
        runs,
        outage: server.and_then(|s| s.plan().outage.clone()),
    }
}

fn progress_bar(config: &LadderConfig, rung: Rung, index: usize) -> ProgressBar {
    let prefix = format!("{}/{} {}", index + 1, config.rungs.len(), rung.label());
    new_bar(config.progress, config.requests, prefix)
}

/// A progress bar of `len` requests labelled `prefix`, or a hidden one.
pub(crate) fn new_bar(shown: bool, len: usize, prefix: String) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template(
        "{prefix:>24} [{bar:30.cyan/blue}] {pos:>6}/{len:6} {elapsed:>3} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

async fn run_rung(
    backend: &Arc<Backend>,
    profile: Profile,
    rung: Rung,
    requests: &[Request],
    config: &LadderConfig,
    bar: &ProgressBar,
) -> RungRun {
    let names = profile.names(rung);
    let before = registry().snapshot();
    let start = Instant::now();
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample_breaker(names.breaker, start, stopped));

    let arrivals = match config.rate {
        Some(rate) => Arrivals::Steady(rate),
        None => Arrivals::FullSpeed,
    };
    let records = drive(
        backend,
        requests,
        &arrivals,
        config.concurrency,
        start,
        bar,
        move |question, call| profile.run(rung, question, call),
    )
    .await;
    let elapsed = start.elapsed();
    let _ = stop.send(());
    let breaker_open = sampler.await.unwrap_or_default();
    bar.finish_with_message(format!("{:.1} s", elapsed.as_secs_f64()));

    let after = registry().snapshot();
    let delta = |kind| Counters::delta(&before, &after, kind, names.function);
    let (retry, timeout, fallback, cache, hedge) = (
        delta(PolicyKind::Retry),
        delta(PolicyKind::Timeout),
        delta(PolicyKind::Fallback),
        delta(PolicyKind::Cache),
        delta(PolicyKind::Hedge),
    );
    let breaker = names
        .breaker
        .map(|name| Counters::delta(&before, &after, PolicyKind::CircuitBreaker, name))
        .unwrap_or_default();
    let figures = from_registry(rung, &retry, &timeout, &fallback, &cache);

    RungRun {
        rung,
        figures,
        tally: tally(&records),
        retries: retry.retries,
        timeouts: timeout.timeouts,
        openings: breaker.openings,
        rejections: breaker.rejections,
        hits: cache.hits,
        hedges: hedge.hedges,
        hedges_won: hedge.hedges_won,
        records,
        breaker_open,
        elapsed,
    }
}

/// When the requests of a stream start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// As fast as the concurrency allows.
    FullSpeed,
    /// This many a second, evenly spaced.
    Steady(f64),
    /// In waves: the rate swings between `mean × (1 - swing)` and `mean × (1 + swing)` once every
    /// `period` (a sine), so for part of each period it is above the mean.
    Waves {
        /// Requests a second on average.
        mean: f64,
        /// The swing, 0 (steady) to 1.
        swing: f64,
        /// The length of one wave.
        period: Duration,
    },
}

impl Arrivals {
    /// When request `index` (0-based) is due, from the start of the run; `None` at full speed.
    pub fn due(&self, index: usize) -> Option<Duration> {
        let n = index as f64;
        let secs = match *self {
            Arrivals::FullSpeed => return None,
            Arrivals::Steady(rate) if rate > 0.0 => n / rate,
            Arrivals::Steady(_) => return None,
            Arrivals::Waves {
                mean,
                swing,
                period,
            } => {
                if mean <= 0.0 {
                    return None;
                }
                // Requests due by `t`: the integral of `mean × (1 + swing × sin(2πt / T))`, which
                // never decreases for a swing up to 1. Solved for `t` by bisection.
                let swing = swing.clamp(0.0, 1.0);
                let t_period = period.as_secs_f64().max(1e-6);
                let w = std::f64::consts::TAU / t_period;
                let count = |t: f64| mean * (t + swing * (1.0 - (w * t).cos()) / w);
                let (mut lo, mut hi) = (0.0, n / mean + t_period);
                while count(hi) < n {
                    hi *= 2.0;
                }
                for _ in 0..60 {
                    let mid = (lo + hi) / 2.0;
                    if count(mid) < n { lo = mid } else { hi = mid }
                }
                hi
            }
        };
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// Sends `requests` through `run`, each as [`Arrivals`] says, at most `concurrency` in flight, and
/// records how each ended. Times are measured from `start`.
pub async fn drive<F, Fut>(
    backend: &Arc<Backend>,
    requests: &[Request],
    arrivals: &Arrivals,
    concurrency: usize,
    start: Instant,
    bar: &ProgressBar,
    run: F,
) -> Vec<Record>
where
    F: Fn(String, Call) -> Fut,
    Fut: Future<Output = Result<Answer, LlmError>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(concurrency.clamp(1, Semaphore::MAX_PERMITS)));
    let mut tasks = JoinSet::new();
    for request in requests {
        if let Some(due) = arrivals
            .due(request.index)
            .and_then(|offset| start.checked_add(offset))
        {
            tokio::time::sleep_until(due).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break; // never closed
        };
        let call = Call::new(backend.clone(), format!("req-{}", request.index));
        let request = request.clone();
        let bar = bar.clone();
        let answer = run(request.text.clone(), call.clone());
        tasks.spawn(async move {
            let begun = start.elapsed();
            let result = answer.await;
            let end = start.elapsed();
            drop(slot);
            bar.inc(1);
            let trace = call.trace();
            let (outcome, error) = match result {
                Err(e) => (Outcome::Failed, Some(e.to_string())),
                Ok(_) if !trace.ran_anything() => (Outcome::Cache, None),
                // Something ran, but the answer is another request's: a stale entry.
                Ok(answer) if *answer.request != *call.id() => (Outcome::Stale, None),
                Ok(answer) => match answer.source {
                    Source::Primary => (Outcome::Primary, None),
                    Source::Fallback => (Outcome::Fallback, None),
                    Source::Canned => (Outcome::Canned, None),
                },
            };
            Record {
                request,
                start: begun,
                end,
                outcome,
                primary_attempts: trace.primary_attempts(),
                canned_ran: trace.canned_calls() > 0,
                rate_limited: trace.rate_limited(),
                error,
            }
        });
    }
    let mut records = Vec::with_capacity(requests.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(record) => records.push(record),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {} // cancelled: never happens, the set is not aborted
        }
    }
    records.sort_by_key(|r| r.request.index);
    records
}

/// The figures as the registry's counters tell them: each rung reads the layers it has.
fn from_registry(
    rung: Rung,
    retry: &Counters,
    timeout: &Counters,
    fallback: &Counters,
    cache: &Counters,
) -> Figures {
    let served = |i: usize| fallback.served.get(i).copied().unwrap_or(0);
    match rung {
        Rung::Bare | Rung::Retry => Figures {
            requests: retry.calls,
            primary: retry.successes,
            failed: retry.failures,
            primary_calls: retry.calls + retry.retries,
            ..Figures::default()
        },
        Rung::Timeout => Figures {
            requests: retry.calls,
            primary: retry.successes,
            failed: retry.failures,
            primary_calls: timeout.calls,
            ..Figures::default()
        },
        Rung::Fallback => Figures {
            requests: fallback.calls,
            primary: fallback.successes,
            fallback: served(0),
            canned: served(1),
            failed: fallback.failures,
            primary_calls: timeout.calls,
            cache: 0,
            stale: 0,
        },
        Rung::Cache | Rung::Breaker | Rung::Hedge => Figures {
            requests: cache.calls,
            // Calls the cache answered without running the layers below.
            cache: cache.calls.saturating_sub(fallback.calls),
            primary: fallback.successes,
            fallback: served(0),
            canned: served(1),
            stale: cache.stale_served,
            failed: fallback.failures,
            primary_calls: timeout.calls,
        },
    }
}

/// The figures as the example counted them, request by request.
fn tally(records: &[Record]) -> Figures {
    let mut f = Figures {
        requests: records.len() as u64,
        ..Figures::default()
    };
    for r in records {
        f.primary_calls += u64::from(r.primary_attempts);
        match r.outcome {
            Outcome::Primary => f.primary += 1,
            Outcome::Fallback => f.fallback += 1,
            Outcome::Canned => f.canned += 1,
            Outcome::Cache => f.cache += 1,
            // The fallback layer answered (the model, else the canned answer), and the cache
            // replaced that answer with a stale one.
            Outcome::Stale if r.canned_ran => {
                f.stale += 1;
                f.canned += 1;
            }
            Outcome::Stale => {
                f.stale += 1;
                f.fallback += 1;
            }
            Outcome::Failed => f.failed += 1,
        }
    }
    f
}

/// The counters of one policy that the ladder and the quota table read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) calls: u64,
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) retries: u64,
    pub(crate) timeouts: u64,
    pub(crate) rejections: u64,
    pub(crate) hits: u64,
    pub(crate) stale_served: u64,
    pub(crate) hedges: u64,
    pub(crate) hedges_won: u64,
    pub(crate) openings: u64,
    pub(crate) waited: u64,
    pub(crate) budget_exhausted: u64,
    pub(crate) deadline_exceeded: u64,
    pub(crate) served: Vec<u64>,
}

impl Counters {
    fn read(stats: Option<&PolicyStats>) -> Counters {
        stats.map_or_else(Counters::default, |s| Counters {
            calls: s.calls,
            successes: s.successes,
            failures: s.failures,
            retries: s.retries,
            timeouts: s.timeouts,
            rejections: s.rejections,
            hits: s.hits,
            stale_served: s.stale_served,
            hedges: s.hedges,
            hedges_won: s.hedges_won,
            openings: s.openings,
            waited: s.waited,
            budget_exhausted: s.budget_exhausted,
            deadline_exceeded: s.deadline_exceeded,
            served: s.fallbacks.iter().map(|(_, n)| *n).collect(),
        })
    }

    /// The change of `(kind, name)`'s counters from `before` to `after`.
    pub(crate) fn delta(
        before: &Snapshot,
        after: &Snapshot,
        kind: PolicyKind,
        name: &str,
    ) -> Counters {
        let (b, a) = (
            Counters::read(before.get(kind, name)),
            Counters::read(after.get(kind, name)),
        );
        Counters {
            calls: a.calls - b.calls.min(a.calls),
            successes: a.successes - b.successes.min(a.successes),
            failures: a.failures - b.failures.min(a.failures),
            retries: a.retries - b.retries.min(a.retries),
            timeouts: a.timeouts - b.timeouts.min(a.timeouts),
            rejections: a.rejections - b.rejections.min(a.rejections),
            hits: a.hits - b.hits.min(a.hits),
            stale_served: a.stale_served - b.stale_served.min(a.stale_served),
            hedges: a.hedges - b.hedges.min(a.hedges),
            hedges_won: a.hedges_won - b.hedges_won.min(a.hedges_won),
            openings: a.openings - b.openings.min(a.openings),
            waited: a.waited - b.waited.min(a.waited),
            budget_exhausted: a.budget_exhausted - b.budget_exhausted.min(a.budget_exhausted),
            deadline_exceeded: a.deadline_exceeded - b.deadline_exceeded.min(a.deadline_exceeded),
            served: a
                .served
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(b.served.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }
}

/// Polls the breaker's state every 2 ms until told to stop; returns the periods it was open.
async fn sample_breaker(
    name: Option<&'static str>,
    start: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Vec<Range<Duration>> {
    let Some(name) = name else {
        return Vec::new();
    };
    let mut open: Vec<Range<Duration>> = Vec::new();
    let mut since: Option<Duration> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let now = start.elapsed();
        let state = registry().circuit_breaker(name).map(|b| b.state());
        match (state == Some(CircuitState::Open), since) {
            (true, None) => since = Some(now),
            (false, Some(from)) => {
                open.push(from..now);
                since = None;
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        open.push(from..start.elapsed());
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_keep_the_mean_and_swing_around_it() {
        let waves = Arrivals::Waves {
            mean: 100.0,
            swing: 0.8,
            period: Duration::from_secs(1),
        };
        let due = |i| waves.due(i).expect("a time").as_secs_f64();
        // 100 a second on average: request 100 × k starts k seconds in.
        for k in 1..5 {
            assert!((due(100 * k) - k as f64).abs() < 1e-6, "{}", due(100 * k));
        }
        // The first quarter of each wave is its peak: more requests start then than in the last.
        let in_window =
            |from: f64, to: f64| (0..500).filter(|&i| (from..to).contains(&due(i))).count();
        assert!(in_window(1.0, 1.25) > 2 * in_window(1.5, 1.75));
        assert_eq!(
            Arrivals::Steady(4.0).due(2),
            Some(Duration::from_millis(500))
        );
        assert_eq!(Arrivals::FullSpeed.due(7), None);
    }
}
