//! The ladder and the quota table as text.

use std::fmt::Write as _;
use std::time::Duration;

use super::ladder::{Ladder, percent};
use super::quota::{QuotaRung, QuotaTable};
use super::replicas::{Comparison, Mode, ModeRun};
use super::stack::Rung;

/// `0.04 ms`, `2.1 ms`, `312 ms`, `1.25 s`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else if d < Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn share(part: u64, whole: u64) -> String {
    if part == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", percent(part, whole))
    }
}

/// The ladder table: one row per rung, the seeds' claim beside our figure, then what each layer
/// did, then any disagreement between the registry and the example's own tally.
pub fn table(ladder: &Ladder) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6}  seeds claim",
        "rung",
        "success",
        "primary",
        "fallback",
        "canned",
        "cache",
        "stale",
        "p50",
        "p95",
        "p99",
        "primary",
        "breaker",
    );
    let _ = writeln!(
        out,
        "{:<18} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "", "", "", "", "", "", "", "", "", "", "calls", "opened"
    );
    for run in &ladder.runs {
        let f = &run.figures;
        let o = run.outcomes();
        let openings = if run.rung.has_breaker() {
            run.openings.to_string()
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<18} {:>7.1}% {:>8} {:>8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6}  {}",
            run.rung.label(),
            f.success_percent(),
            share(o.primary, f.requests),
            share(o.fallback, f.requests),
            share(o.canned, f.requests),
            share(o.cache, f.requests),
            share(o.stale, f.requests),
            format_duration(run.latency(50.0)),
            format_duration(run.latency(95.0)),
            format_duration(run.latency(99.0)),
            f.primary_calls,
            openings,
            run.rung.claimed(),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "what the layers did: {:<18} {:>8} {:>9} {:>11} {:>10} {:>6}",
        "", "retries", "timeouts", "rejections", "cache hits", "time"
    );
    for run in &ladder.runs {
        let _ = writeln!(
            out,
            "{:<20} {:<18} {:>8} {:>9} {:>11} {:>10} {:>6}",
            "",
            run.rung.label(),
            run.retries,
            run.timeouts,
            run.rejections,
            run.hits,
            format!("{:.1} s", run.elapsed.as_secs_f64()),
        );
    }
    let _ = writeln!(out);
    if let (Some(window), Some(bare)) = (&ladder.outage, ladder.run(Rung::Bare)) {
        let (answered, total) = bare.answered_outside(window);
        let _ = writeln!(
            out,
            "The bare call answered {:.1}% of the {total} requests that did not meet the outage \
             (the seeds' ~90% is API uptime, without an outage).",
            percent(answered, total)
        );
    }
    if let (Some(window), Some(breaker)) = (&ladder.outage, ladder.run(Rung::Breaker)) {
        let first = breaker.breaker_open.first().map(|open| open.start);
        let _ = match first {
            Some(first) => writeln!(
                out,
                "The circuit was first open {:.2} s into the rung (the outage began at {:.2} s); it \
                 opened {} times.",
                first.as_secs_f64(),
                window.start.as_secs_f64(),
                breaker.openings
            ),
            None => writeln!(out, "The circuit never opened."),
        };
    }
    if let (Some(window), Some(breaker)) = (&ladder.outage, ladder.run(Rung::Breaker))
        && breaker.figures.stale > 0
    {
        let during = breaker
            .records
            .iter()
            .filter(|r| r.outcome == super::ladder::Outcome::Stale)
            .filter(|r| r.end >= window.start && r.start < window.end)
            .count();
        let _ = writeln!(
            out,
            "While the primary failed, {} requests of the breaker rung got a real answer that had \
             expired (stale_if_error) instead of the fallback's; {during} of them met the outage.",
            breaker.figures.stale
        );
    }
    if let (Some(with), Some(without)) = (ladder.run(Rung::Hedge), ladder.run(Rung::Breaker)) {
        let (p99, p99_without) = (with.latency(99.0), without.latency(99.0));
        let calls = with.figures.primary_calls;
        let _ = writeln!(
            out,
            "Hedging at the p95 took p99 from {} to {} (p95 from {} to {}); it cost {} extra \
             primary attempts, {:.1}% of the rung's {calls} primary calls, and {} of them answered \
             first.",
            format_duration(p99_without),
            format_duration(p99),
            format_duration(without.latency(95.0)),
            format_duration(with.latency(95.0)),
            with.hedges,
            percent(with.hedges, calls),
            with.hedges_won,
        );
    }
    if let Some(cached) = ladder.run(Rung::Cache).or(ladder.run(Rung::Breaker)) {
        let requests = cached.figures.requests;
        let _ = writeln!(
            out,
            "The stream asks {} distinct questions in {requests} requests, so at most {:.1}% can \
             come from the cache; it served {:.1}%.",
            ladder.distinct_questions,
            percent(
                requests.saturating_sub(ladder.distinct_questions as u64),
                requests
            ),
            percent(cached.figures.cache, requests)
        );
    }
    let disagreements: Vec<String> = ladder.runs.iter().flat_map(|r| r.disagreements()).collect();
    if disagreements.is_empty() {
        let _ = writeln!(
            out,
            "Figures read from reliability::registry() counters; they agree with the example's own \
             count of every request."
        );
    } else {
        for line in disagreements {
            let _ = writeln!(out, "warning: {line}");
        }
    }
    out
}

/// The quota table: one row per rung, then what each layer did, then how the 429s compare and any
/// disagreement between the counts.
pub fn quota_table(table: &QuotaTable) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "under a quota       {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6}",
        "success", "outside", "429s", "attempts", "p50", "p95", "p99", "time"
    );
    let _ = writeln!(
        out,
        "{:<19} {:>8} {:>8} {:>9} {:>9}",
        "", "", "outage", "received", "/request"
    );
    for run in &table.runs {
        let f = &run.figures;
        let outside = match &table.outage {
            Some(window) => format!("{:.1}%", run.success_outside(window)),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<19} {:>7.1}% {:>8} {:>9} {:>9.2} {:>8} {:>8} {:>8} {:>6}",
            run.rung.label(),
            f.success_percent(),
            outside,
            f.rate_limited,
            f.attempts_per_request(),
            format_duration(run.latency(50.0)),
            format_duration(run.latency(95.0)),
            format_duration(run.latency(99.0)),
            format!("{:.1} s", run.elapsed.as_secs_f64()),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "what the layers did: {:<19} {:>8} {:>9} {:>14} {:>16} {:>14}",
        "", "retries", "timeouts", "permit waits", "limit rejections", "budget spent"
    );
    for run in &table.runs {
        let _ = writeln!(
            out,
            "{:<20} {:<19} {:>8} {:>9} {:>14} {:>16} {:>14}",
            "",
            run.rung.label(),
            run.retries,
            run.timeouts,
            run.waited,
            run.limiter_rejections,
            run.budget_exhausted,
        );
    }
    let _ = writeln!(out);
    if let (Some(backoff), Some(limited)) =
        (table.run(QuotaRung::Backoff), table.run(QuotaRung::Limiter))
    {
        let (before, after) = (backoff.figures.rate_limited, limited.figures.rate_limited);
        let factor = if after == 0 {
            "all of them".to_owned()
        } else {
            format!("{:.0}×", before as f64 / after as f64)
        };
        let _ = writeln!(
            out,
            "Honouring Retry-After and limiting the client cut the 429s from {before} to {after} ({factor}), \
             answering {:.1}% of requests against {:.1}% with backoff alone.",
            limited.figures.success_percent(),
            backoff.figures.success_percent(),
        );
    }
    let disagreements: Vec<String> = table.runs.iter().flat_map(|r| r.disagreements()).collect();
    if disagreements.is_empty() {
        let _ = writeln!(
            out,
            "Requests, answers and HTTP requests read from reliability::registry() counters, 429s from \
             the service's count; they agree with the example's own count of every request."
        );
    } else {
        for line in disagreements {
            let _ = writeln!(out, "warning: {line}");
        }
    }
    out
}

/// The replicas table: alone and shared side by side, when each mode's breakers stopped calling
/// the primary, and any disagreement between the counts.
pub fn replicas_table(comparison: &Comparison) -> String {
    let (alone, shared) = (&comparison.alone, &comparison.shared);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<52} {:>8} {:>8}",
        format!(
            "{} replicas, {} requests",
            comparison.config.replicas, alone.requests
        ),
        Mode::Alone.label(),
        Mode::Shared.label()
    );
    let mut row = |label: &str, f: fn(&ModeRun) -> u64| {
        let _ = writeln!(out, "{label:<52} {:>8} {:>8}", f(alone), f(shared));
    };
    row("primary calls during the outage (HTTP 503)", |r| {
        r.outage_calls
    });
    row(
        "  failures paid before every replica stopped calling",
        |r| r.paid_before_stopped,
    );
    row("model calls for questions already answered", |r| {
        r.repeated_model_calls
    });
    row("HTTP 429s under the API key's quota", |r| r.over_quota);
    row("requests answered (model or cache)", |r| r.answered);
    row("  from a cache", |r| r.cache_hits);
    row("requests shed by a replica's own rate limiter", |r| r.shed);
    let _ = writeln!(out);
    for run in [alone, shared] {
        let times: Vec<String> = run
            .stopped_at
            .iter()
            .map(|t| match t {
                Some(t) => format_duration(*t),
                None => "never".to_owned(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<7} the replicas' breakers opened {} into the outage",
            format!("{}:", run.mode.label()),
            times.join(", ")
        );
    }
    let disagreements: Vec<&String> = alone
        .disagreements
        .iter()
        .chain(&shared.disagreements)
        .collect();
    let store_errors = alone.store_errors + shared.store_errors;
    if store_errors > 0 {
        let _ = writeln!(
            out,
            "warning: {store_errors} store operations failed or timed out; those calls used local state"
        );
    }
    if disagreements.is_empty() {
        let _ = writeln!(
            out,
            "503s, 429s and answers counted by the service agree with the registry's counters \
             (breaker failures, cache hits) and the replicas' own tallies."
        );
    } else {
        for line in disagreements {
            let _ = writeln!(out, "warning: {line}");
        }
    }
    out
}
