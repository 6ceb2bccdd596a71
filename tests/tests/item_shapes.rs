//! Every item shape the attributes accept — free fn, `&self`, `&mut self`, `self: Arc<Self>`,
//! trait-impl method, generic fn, `&str` and `&mut Vec<_>` arguments, pattern and `mut` arguments,
//! `?` and early `return` with `anyhow` — under each of the eight attributes alone and under three
//! full stacks (the recommended one, with the load layers, and with `#[hedge]` in place of
//! `#[retry]`). `#[hedge]` is not applied where an argument is `&mut` (two attempts cannot share
//! it: a compile error, checked in the UI suite).
//!
//! Every body fails on its first run only. Three equal calls then give, per stack:
//!
//! | stack | outcomes | body runs |
//! |---|---|---|
//! | `#[retry]`, `#[hedge]` (a failed attempt starts the next at once) | primary, primary, primary | 4 |
//! | `#[timeout]`, `#[circuit_breaker]`, `#[rate_limit]`, `#[bulkhead]` | error, primary, primary | 3 |
//! | `#[fallback]` | backup, primary, primary | 3 |
//! | `#[cached]` | error, primary, primary (a hit) | 2 |
//! | full stacks | primary, primary (a hit), primary (a hit) | 2 |

mod common;

use std::fmt::{Debug, Display};
use std::sync::Arc;

use common::{AppError, Runs};
use reliability::{bulkhead, cached, circuit_breaker, fallback, hedge, rate_limit, retry, timeout};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Retry,
    Timeout,
    Breaker,
    Fallback,
    Cached,
    Stack,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Failed,
    Primary,
    Backup,
}

const BACKUP: &str = "backup";

fn classify<E: Debug>(out: Result<String, E>, primary: &str) -> Outcome {
    match out {
        Ok(s) if s == primary => Outcome::Primary,
        Ok(s) if s == BACKUP => Outcome::Backup,
        Ok(s) => panic!("unexpected answer {s:?}"),
        Err(_) => Outcome::Failed,
    }
}

impl Kind {
    fn expected(self) -> ([Outcome; 3], u32) {
        use Outcome::*;
        match self {
            Kind::Retry => ([Primary; 3], 4),
            Kind::Timeout | Kind::Breaker => ([Failed, Primary, Primary], 3),
            Kind::Fallback => ([Backup, Primary, Primary], 3),
            Kind::Cached => ([Failed, Primary, Primary], 2),
            Kind::Stack => ([Primary; 3], 2),
        }
    }

    fn has_fallback(self) -> bool {
        matches!(self, Kind::Fallback | Kind::Stack)
    }
}

/// Asserts the outcomes of three equal calls and the number of body runs.
fn check(kind: Kind, outcomes: Vec<Outcome>, runs: u32) {
    let (expected, expected_runs) = kind.expected();
    assert_eq!(outcomes, expected, "{kind:?}: outcomes");
    assert_eq!(runs, expected_runs, "{kind:?}: body runs");
}

/// Fails the first run only.
fn first_fails(run: u32, answer: String) -> Result<String, AppError> {
    if run == 1 {
        Err(AppError::Status(503))
    } else {
        Ok(answer)
    }
}

/// Instantiates `$shape` once per stack, with `$backup` as the fallback target. `#[cached]` comes
/// as a bare name for the shape to write with its own key, if it needs one: a key expression names
/// the arguments, so it must be written where they are (macro hygiene).
macro_rules! every_stack {
    ($shape:ident, [$($backup:tt)+]) => {
        mod $shape {
            use super::*;
            every_stack!(@common $shape, [$($backup)+]);
            $shape!(hedge_alone, Kind::Retry, [], [#[hedge(after = "1s")]]);
            $shape!(full_stack_hedged, Kind::Stack, [cached], [
                #[fallback($($backup)+)]
                #[hedge(after = "50ms", max = 2)]
                #[circuit_breaker]
                #[rate_limit(rate = 100)]
                #[bulkhead(max = 8)]
                #[timeout(secs = 5)]
            ]);
        }
    };
    ($shape:ident, [$($backup:tt)+], without_hedge) => {
        mod $shape {
            use super::*;
            every_stack!(@common $shape, [$($backup)+]);
        }
    };
    (@common $shape:ident, [$($backup:tt)+]) => {
        $shape!(retry_alone, Kind::Retry, [], [#[retry(max = 3)]]);
        $shape!(timeout_alone, Kind::Timeout, [], [#[timeout(secs = 5)]]);
        $shape!(circuit_breaker_alone, Kind::Breaker, [], [#[circuit_breaker]]);
        $shape!(fallback_alone, Kind::Fallback, [], [#[fallback($($backup)+)]]);
        $shape!(cached_alone, Kind::Cached, [cached], []);
        $shape!(rate_limit_alone, Kind::Timeout, [], [#[rate_limit(rate = 100)]]);
        $shape!(bulkhead_alone, Kind::Timeout, [], [#[bulkhead(max = 4)]]);
        $shape!(full_stack, Kind::Stack, [cached], [
            #[fallback($($backup)+)]
            #[retry(max = 3)]
            #[circuit_breaker]
            #[timeout(secs = 5)]
        ]);
        $shape!(full_stack_with_load, Kind::Stack, [cached], [
            #[fallback($($backup)+)]
            #[retry(max = 3, backoff = "exponential")]
            #[circuit_breaker(failure_rate = 0.5, window = 20)]
            #[rate_limit(rate = 100, wait = "1s")]
            #[bulkhead(max = 8, queue = 8)]
            #[timeout(secs = 5)]
        ]);
    };
}

macro_rules! free_fn {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            static RUNS: Runs = Runs::new();

            $(#[$cached])?
            $($attrs)*
            async fn call(x: u32) -> Result<String, AppError> {
                first_fails(RUNS.bump(), format!("free {x}"))
            }

            #[allow(dead_code)] // only the stacks with a fallback call it

            async fn backup(_x: u32) -> Result<String, AppError> {
                Ok(BACKUP.to_owned())
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(call(7).await, "free 7"));
                }
                check($kind, outcomes, RUNS.get());
            }
        }
    };
}
every_stack!(free_fn, [backup]);

macro_rules! by_ref {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            struct Service {
                name: &'static str,
                runs: Runs,
            }

            impl Service {
                $(#[$cached])?
            $($attrs)*
                async fn call(&self, x: u32) -> Result<String, AppError> {
                    first_fails(self.runs.bump(), format!("{} {x}", self.name))
                }

                #[allow(dead_code)] // only the stacks with a fallback call it

                async fn backup(&self, _x: u32) -> Result<String, AppError> {
                    Ok(BACKUP.to_owned())
                }
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let service = Service { name: "ref", runs: Runs::new() };
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(service.call(7).await, "ref 7"));
                }
                check($kind, outcomes, service.runs.get());
            }
        }
    };
}
every_stack!(by_ref, [Self::backup]);

macro_rules! by_mut {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            /// The state the body mutates: each attempt sees the previous attempt's changes.
            struct Counter {
                attempts: u32,
                seen: Vec<u32>,
            }

            impl Counter {
                $(#[$cached])?
            $($attrs)*
                async fn call(&mut self, x: u32) -> Result<String, AppError> {
                    self.attempts += 1;
                    self.seen.push(self.attempts);
                    first_fails(self.attempts, format!("mut {x}"))
                }

                #[allow(dead_code)] // only the stacks with a fallback call it

                async fn backup(&mut self, _x: u32) -> Result<String, AppError> {
                    self.seen.push(0);
                    Ok(BACKUP.to_owned())
                }
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut counter = Counter { attempts: 0, seen: Vec::new() };
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(counter.call(7).await, "mut 7"));
                }
                check($kind, outcomes, counter.attempts);
                let mut expected: Vec<u32> = (1..=counter.attempts).collect();
                if $kind == Kind::Fallback {
                    expected.insert(1, 0);
                }
                assert_eq!(counter.seen, expected, "every run and the fallback saw one receiver");
            }
        }
    };
}
every_stack!(by_mut, [Self::backup], without_hedge);

macro_rules! by_arc {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            struct Shared {
                runs: Runs,
            }

            impl Shared {
                $(#[$cached])?
            $($attrs)*
                async fn call(self: Arc<Self>, x: u32) -> Result<String, AppError> {
                    first_fails(self.runs.bump(), format!("arc {x}"))
                }

                #[allow(dead_code)] // only the stacks with a fallback call it

                async fn backup(self: Arc<Self>, _x: u32) -> Result<String, AppError> {
                    Ok(BACKUP.to_owned())
                }
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let shared = Arc::new(Shared { runs: Runs::new() });
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(shared.clone().call(7).await, "arc 7"));
                }
                check($kind, outcomes, shared.runs.get());
                assert_eq!(Arc::strong_count(&shared), 1, "no clone of the receiver outlives the call");
            }
        }
    };
}
every_stack!(by_arc, [Self::backup]);

macro_rules! trait_impl {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            trait Lookup {
                async fn lookup(&self, x: u32) -> Result<String, AppError>;
            }

            struct Directory {
                runs: Runs,
            }

            impl Directory {
                #[allow(dead_code)] // only the stacks with a fallback call it
                async fn backup(&self, _x: u32) -> Result<String, AppError> {
                    Ok(BACKUP.to_owned())
                }
            }

            impl Lookup for Directory {
                $(#[$cached])?
            $($attrs)*
                async fn lookup(&self, x: u32) -> Result<String, AppError> {
                    first_fails(self.runs.bump(), format!("trait {x}"))
                }
            }

            /// Called through the trait, generically.
            async fn through_trait<L: Lookup>(l: &L) -> Result<String, AppError> {
                l.lookup(7).await
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let directory = Directory { runs: Runs::new() };
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(through_trait(&directory).await, "trait 7"));
                }
                check($kind, outcomes, directory.runs.get());
            }
        }
    };
}
every_stack!(trait_impl, [Self::backup]);

macro_rules! generic {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            static RUNS: Runs = Runs::new();

            $(#[$cached(key = value.to_string())])?
            $($attrs)*
            async fn call<T: Display + Clone + Send + Sync>(value: T) -> Result<String, AppError> {
                first_fails(RUNS.bump(), format!("generic {value}"))
            }

            #[allow(dead_code)] // only the stacks with a fallback call it

            async fn backup<T: Display + Clone + Send + Sync>(_value: T) -> Result<String, AppError> {
                Ok(BACKUP.to_owned())
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut outcomes = Vec::new();
                outcomes.push(classify(call(7_u32).await, "generic 7"));
                outcomes.push(classify(call("7").await, "generic 7"));
                outcomes.push(classify(call(String::from("7")).await, "generic 7"));
                // Each instantiation (`u32`, `&str`, `String`) has a cache of its own, so the
                // second and third calls are misses, not hits of the first one's entry.
                let (expected, runs) = match $kind {
                    Kind::Cached => ([Outcome::Failed, Outcome::Primary, Outcome::Primary], 3),
                    Kind::Stack => ([Outcome::Primary; 3], 4),
                    kind => kind.expected(),
                };
                assert_eq!(outcomes, expected, "{:?}: outcomes", $kind);
                assert_eq!(RUNS.get(), runs, "{:?}: body runs", $kind);
            }
        }
    };
}
every_stack!(generic, [backup]);

macro_rules! refs {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            $(#[$cached(key = q.to_owned())])?
            $($attrs)*
            async fn call(q: &str, out: &mut Vec<String>) -> Result<String, AppError> {
                out.push(q.to_owned());
                first_fails(out.len() as u32, format!("refs {q}"))
            }

            #[allow(dead_code)] // only the stacks with a fallback call it

            async fn backup(_q: &str, out: &mut Vec<String>) -> Result<String, AppError> {
                out.push(BACKUP.to_owned());
                Ok(BACKUP.to_owned())
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut out = Vec::new();
                let query = String::from("q");
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(call(&query, &mut out).await, "refs q"));
                }
                let runs = out.iter().filter(|s| *s == "q").count() as u32;
                check($kind, outcomes, runs);
                if $kind.has_fallback() && $kind != Kind::Stack {
                    assert_eq!(out, ["q", BACKUP, "q", "q"], "the fallback wrote to the same Vec");
                }
            }
        }
    };
}
every_stack!(refs, [backup], without_hedge);

macro_rules! patterns {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            static RUNS: Runs = Runs::new();

            $(#[$cached])?
            $($attrs)*
            async fn call((a, b): (u32, u32), mut c: u32) -> Result<String, AppError> {
                c += a * b;
                first_fails(RUNS.bump(), format!("patterns {c}"))
            }

            #[allow(dead_code)] // only the stacks with a fallback call it

            async fn backup((_a, _b): (u32, u32), _c: u32) -> Result<String, AppError> {
                Ok(BACKUP.to_owned())
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    // Each attempt starts from the caller's `c`, not the previous attempt's.
                    outcomes.push(classify(call((2, 3), 1).await, "patterns 7"));
                }
                check($kind, outcomes, RUNS.get());
            }
        }
    };
}
every_stack!(patterns, [backup]);

macro_rules! question_mark {
    ($module:ident, $kind:expr, [$($cached:ident)?], [$($attrs:tt)*]) => {
        mod $module {
            use super::*;

            static RUNS: Runs = Runs::new();

            $(#[$cached])?
            $($attrs)*
            async fn call(input: &str) -> anyhow::Result<String> {
                if input.is_empty() {
                    return Ok("empty".to_owned());
                }
                let n: u32 = input.parse()?;
                if RUNS.bump() == 1 {
                    anyhow::bail!("the first run fails");
                }
                Ok(format!("parsed {n}"))
            }

            #[allow(dead_code)] // only the stacks with a fallback call it

            async fn backup(_input: &str) -> anyhow::Result<String> {
                Ok(BACKUP.to_owned())
            }

            #[tokio::test(start_paused = true)]
            async fn works() {
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(classify(call("42").await, "parsed 42"));
                }
                check($kind, outcomes, RUNS.get());
                assert_eq!(call("").await.unwrap(), "empty", "early return");
                let parse_error = call("x").await;
                if $kind.has_fallback() {
                    assert_eq!(parse_error.unwrap(), BACKUP);
                } else {
                    let err = parse_error.unwrap_err();
                    assert!(err.downcast_ref::<std::num::ParseIntError>().is_some(), "`?` converted {err:?}");
                }
            }
        }
    };
}
every_stack!(question_mark, [backup]);
