//! The seven rungs of the reliability ladder, each one `async fn` written with the attributes.
//!
//! Each rung adds one layer to the rung before it; [`embedded::gpt4`] is the recommended stack, and
//! [`embedded::hedged`] adds hedging of the primary at its p95 on top. `stack!` writes the same functions twice, with two sets of durations:
//! [`remote`] has the recommended values for a real model API (30 s per attempt, 1 s first
//! backoff, a breaker window of 30 s, 60 s cooldown, answers cached for an hour and served stale
//! for an hour more while the model fails), and [`embedded`] the same values divided by 100,
//! because the embedded service runs on a millisecond timeline so that the whole ladder finishes in
//! seconds. One exception: the embedded cache keeps answers 2 s (not 36 s), so that within a rung of
//! a few seconds answers do expire, and the outage meets expired answers it can serve stale.

use clap::ValueEnum;

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Rung {
    /// One attempt, no protection.
    Bare,
    /// + retry of transient errors (3 attempts, exponential backoff with jitter).
    Retry,
    /// + a timeout on each attempt.
    Timeout,
    /// + fallback to the cheaper model, then to a canned answer.
    Fallback,
    /// + a cache in front, keyed by the normalised question.
    Cache,
    /// + a circuit breaker under the retries: the full recommended stack.
    Breaker,
    /// + hedging: a second attempt at the primary when the first has not answered by its p95.
    Hedge,
}

impl Rung {
    /// Every rung, bottom to top.
    pub const ALL: [Rung; 7] = [
        Rung::Bare,
        Rung::Retry,
        Rung::Timeout,
        Rung::Fallback,
        Rung::Cache,
        Rung::Breaker,
        Rung::Hedge,
    ];

    /// Its row label.
    pub fn label(self) -> &'static str {
        match self {
            Rung::Bare => "bare call",
            Rung::Retry => "+ retry",
            Rung::Timeout => "+ timeout",
            Rung::Fallback => "+ fallback",
            Rung::Cache => "+ cache",
            Rung::Breaker => "+ circuit breaker",
            Rung::Hedge => "+ hedge",
        }
    }

    /// The seeds' claimed success rate for this rung, as they state it.
    pub fn claimed(self) -> &'static str {
        match self {
            Rung::Bare => "~90%",
            Rung::Retry => "~95%",
            Rung::Timeout => "-",
            Rung::Fallback => "~99.9%",
            Rung::Cache => "99.9%+, 70% cache",
            Rung::Breaker => ">99.9%",
            Rung::Hedge => "-",
        }
    }

    /// Whether the rung has a circuit breaker.
    pub fn has_breaker(self) -> bool {
        matches!(self, Rung::Breaker | Rung::Hedge)
    }
}

/// The registry names of one rung's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RungNames {
    /// The rung function's path: the name of its retry, timeout, fallback and cache layers.
    pub function: &'static str,
    /// The circuit breaker's name, for the rung that has one.
    pub breaker: Option<&'static str>,
}

/// Which set of durations the stack uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// [`embedded`]: milliseconds, for the embedded service.
    Embedded,
    /// [`remote`]: seconds, for a real model API.
    Remote,
}

impl Profile {
    /// Runs `rung` for one question.
    pub async fn run(
        self,
        rung: Rung,
        question: String,
        call: crate::gateway::client::Call,
    ) -> Result<crate::gateway::client::Answer, crate::gateway::client::LlmError> {
        match self {
            Profile::Embedded => embedded::run(rung, question, call).await,
            Profile::Remote => remote::run(rung, question, call).await,
        }
    }

    /// The registry names of `rung`'s policies.
    pub fn names(self, rung: Rung) -> RungNames {
        match self {
            Profile::Embedded => embedded::names(rung),
            Profile::Remote => remote::names(rung),
        }
    }
}

macro_rules! stack {
    (
        $(#[$doc:meta])*
        pub mod $module:ident {
            attempt_timeout: $attempt:literal,
            first_backoff: $delay:literal,
            max_backoff: $max_delay:literal,
            fallback_timeout: $fallback_timeout:literal,
            breaker: $breaker:literal,
            hedged_breaker: $hedged_breaker:literal,
            breaker_window: $window:literal,
            cooldown: $cooldown:literal,
            cache_ttl: $ttl:literal,
            stale_if_error: $stale:literal,
        }
    ) => {
        $(#[$doc])*
        pub mod $module {
            use reliability::{cached, circuit_breaker, fallback, hedge, retry, timeout};

            use crate::gateway::client::{Answer, Call, LlmError, Model};
            use crate::gateway::stack::{Rung, RungNames};

            /// Rung 1, no protection: one attempt. (`max = 1` retries nothing; it is there so that
            /// the registry counts this rung's calls like every other rung's.)
            #[retry(max = 1)]
            pub async fn bare(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 2: + retry of transient errors (429, 5xx, no answer).
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            pub async fn with_retry(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 3: + a timeout on each attempt.
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            #[timeout(secs = $attempt)]
            pub async fn with_timeout(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 4: + fallback to the cheaper model, then to a canned answer.
            #[fallback(gpt35, canned)]
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            #[timeout(secs = $attempt)]
            pub async fn with_fallback(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 5: + a cache in front, keyed by the normalised question. While the model fails
            /// (the fallback answers), a real answer expired no longer than `stale_if_error` ago is
            /// served instead of the fallback's.
            #[cached(ttl = $ttl, stale_if_error = $stale, key = question.trim().to_lowercase())]
            #[fallback(gpt35, canned)]
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            #[timeout(secs = $attempt)]
            pub async fn with_cache(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 6, the full recommended stack: + a circuit breaker between the retries and the
            /// per-attempt timeout, so that hung attempts count as failures and an open circuit
            /// sends requests straight to the fallback.
            ///
            /// The breaker uses the rate rule: it opens when half the calls of its window failed,
            /// once the window holds 20 calls. Under concurrent traffic failures come in bursts
            /// (cold connections at the start, a few hung attempts timing out together) and
            /// successes interleave them: "5 in a row" then opens on a blip and can miss a partial
            /// outage, while a share of enough calls does neither.
            #[cached(ttl = $ttl, stale_if_error = $stale, key = question.trim().to_lowercase())]
            #[fallback(gpt35, canned)]
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            #[circuit_breaker(name = $breaker, failure_rate = 0.5, window = $window,
                              min_calls = 20, success_threshold = 2, cooldown = $cooldown,
                              when = LlmError::is_transient)]
            #[timeout(secs = $attempt)]
            pub async fn gpt4(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// Rung 7: the recommended stack, + hedging of the primary: when an attempt has not
            /// answered by the p95 of this function's recent attempts (after 20 of them), a second
            /// one starts, and the first answer wins. Only slowness is hedged (`when` accepts no
            /// error): a failed attempt ends the call at once, and the retry above decides, so a
            /// failing service is not sent twice the attempts. Each hedged attempt is a call of the
            /// breaker, which has its own name here. The cost is the extra primary calls, printed
            /// beside the gain.
            #[cached(ttl = $ttl, stale_if_error = $stale, key = question.trim().to_lowercase())]
            #[fallback(gpt35, canned)]
            #[retry(max = 3, backoff = "exponential", delay = $delay, max_delay = $max_delay,
                    when = LlmError::is_transient)]
            #[hedge(after = "p95", max = 1, when = |_| false)]
            #[circuit_breaker(name = $hedged_breaker, failure_rate = 0.5, window = $window,
                              min_calls = 20, success_threshold = 2, cooldown = $cooldown,
                              when = LlmError::is_transient)]
            #[timeout(secs = $attempt)]
            pub async fn hedged(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Primary, &question).await
            }

            /// The fallback model, with its own retry and timeout.
            #[retry(max = 2, backoff = "fixed", delay = $delay, when = LlmError::is_transient)]
            #[timeout(secs = $fallback_timeout)]
            pub async fn gpt35(question: String, call: Call) -> Result<Answer, LlmError> {
                call.complete(Model::Fallback, &question).await
            }

            /// The last answer: a template, no service, never fails.
            pub async fn canned(question: String, call: Call) -> Answer {
                call.canned(&question)
            }

            /// Runs `rung` for one question.
            pub async fn run(rung: Rung, question: String, call: Call) -> Result<Answer, LlmError> {
                match rung {
                    Rung::Bare => bare(question, call).await,
                    Rung::Retry => with_retry(question, call).await,
                    Rung::Timeout => with_timeout(question, call).await,
                    Rung::Fallback => with_fallback(question, call).await,
                    Rung::Cache => with_cache(question, call).await,
                    Rung::Breaker => gpt4(question, call).await,
                    Rung::Hedge => hedged(question, call).await,
                }
            }

            /// The registry names of `rung`'s policies.
            pub fn names(rung: Rung) -> RungNames {
                let function = match rung {
                    Rung::Bare => concat!(module_path!(), "::bare"),
                    Rung::Retry => concat!(module_path!(), "::with_retry"),
                    Rung::Timeout => concat!(module_path!(), "::with_timeout"),
                    Rung::Fallback => concat!(module_path!(), "::with_fallback"),
                    Rung::Cache => concat!(module_path!(), "::with_cache"),
                    Rung::Breaker => concat!(module_path!(), "::gpt4"),
                    Rung::Hedge => concat!(module_path!(), "::hedged"),
                };
                let breaker = match rung {
                    Rung::Breaker => Some($breaker),
                    Rung::Hedge => Some($hedged_breaker),
                    _ => None,
                };
                RungNames { function, breaker }
            }
        }
    };
}

stack! {
    /// The stack with durations for the embedded service: the recommended values divided by 100
    /// (300 ms per attempt, 10 ms first backoff, a breaker window of 300 ms, 600 ms cooldown, answers
    /// served stale for 36 s), but answers cached for 2 s, so that they expire within a rung.
    pub mod embedded {
        attempt_timeout: "300ms",
        first_backoff: "10ms",
        max_backoff: "300ms",
        fallback_timeout: "100ms",
        breaker: "gpt4",
        hedged_breaker: "gpt4-hedged",
        breaker_window: "300ms",
        cooldown: "600ms",
        cache_ttl: "2s",
        stale_if_error: "36s",
    }
}

stack! {
    /// The stack with durations for a real model API: the recommended values.
    pub mod remote {
        attempt_timeout: "30s",
        first_backoff: "1s",
        max_backoff: "30s",
        fallback_timeout: "10s",
        breaker: "gpt4-remote",
        hedged_breaker: "gpt4-remote-hedged",
        breaker_window: "30s",
        cooldown: "60s",
        cache_ttl: "1h",
        stale_if_error: "1h",
    }
}
