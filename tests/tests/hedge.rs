//! `Hedge`: when extra attempts start, which answer wins, which attempts are dropped and when, the
//! percentile delay, the counters, and the expansion support under a circuit breaker. Time is
//! paused: every instant is exact.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use reliability::{CircuitBreaker, Error, Hedge, HedgeAfter, PolicyStats, registry};
use tokio::time::{Instant, sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn stats(name: &str) -> PolicyStats {
    registry()
        .snapshot()
        .hedge(name)
        .cloned()
        .expect("registered")
}

/// What an attempt does: wait, then answer.
#[derive(Debug, Clone, Copy)]
struct Step {
    latency: Duration,
    out: Result<u32, u32>,
}

fn ok_after(latency: Duration, value: u32) -> Step {
    Step {
        latency,
        out: Ok(value),
    }
}

fn err_after(latency: Duration, error: u32) -> Step {
    Step {
        latency,
        out: Err(error),
    }
}

/// What happened to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trace {
    started: Duration,
    /// When it answered, if it did.
    answered: Option<Duration>,
    /// When its future was dropped.
    dropped: Option<Duration>,
}

/// Attempts that follow a script (attempt k does `steps[k]`, the last step repeats) and record
/// when they started, answered and were dropped.
struct Script {
    start: Instant,
    steps: Vec<Step>,
    traces: Mutex<Vec<Trace>>,
}

/// Records the drop of an attempt's future.
struct Guard<'a> {
    script: &'a Script,
    index: usize,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let at = self.script.start.elapsed();
        self.script.traces.lock().unwrap()[self.index].dropped = Some(at);
    }
}

impl Script {
    fn new(steps: &[Step]) -> Self {
        Script {
            start: Instant::now(),
            steps: steps.to_vec(),
            traces: Mutex::new(Vec::new()),
        }
    }

    /// The next attempt's future.
    fn attempt(&self) -> impl Future<Output = Result<u32, u32>> + '_ {
        let index = {
            let mut traces = self.traces.lock().unwrap();
            traces.push(Trace {
                started: self.start.elapsed(),
                answered: None,
                dropped: None,
            });
            traces.len() - 1
        };
        let step = self.steps[index.min(self.steps.len() - 1)];
        async move {
            let _guard = Guard {
                script: self,
                index,
            };
            sleep(step.latency).await;
            self.traces.lock().unwrap()[index].answered = Some(self.start.elapsed());
            step.out
        }
    }

    fn traces(&self) -> Vec<Trace> {
        self.traces.lock().unwrap().clone()
    }

    fn starts(&self) -> Vec<Duration> {
        self.traces().iter().map(|t| t.started).collect()
    }
}

fn fixed(name: &str, after: Duration, max: u32) -> Hedge {
    Hedge::builder(name, after).max(max).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_loses_to_the_hedge_and_is_dropped_at_once() {
    let hedge = fixed("hedge.slow_first", ms(100), 1);
    let script = Script::new(&[ok_after(ms(10_000), 1), ok_after(ms(30), 2)]);
    let out = hedge.run(|| script.attempt()).await;
    assert_eq!(out, Ok(2), "the second attempt's answer");
    assert_eq!(script.start.elapsed(), ms(130), "100 ms + its latency");
    let traces = script.traces();
    assert_eq!(
        traces,
        [
            Trace {
                started: ms(0),
                answered: None,
                dropped: Some(ms(130)),
            },
            Trace {
                started: ms(100),
                answered: Some(ms(130)),
                dropped: Some(ms(130)),
            },
        ],
        "the first attempt is dropped when the second answers, not awaited"
    );
    let s = stats("hedge.slow_first");
    assert_eq!(
        (s.calls, s.successes, s.failures, s.hedges, s.hedges_won),
        (1, 1, 0, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_that_answers_in_time_starts_no_hedge() {
    let hedge = fixed("hedge.in_time", ms(100), 1);
    let script = Script::new(&[ok_after(ms(99), 1)]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(1));
    assert_eq!(script.starts(), [ms(0)]);
    // Ready at once: no timer, no clock.
    assert_eq!(hedge.run(|| async { Ok::<_, ()>(7) }).await, Ok(7));
    let s = stats("hedge.in_time");
    assert_eq!((s.calls, s.successes, s.hedges, s.hedges_won), (2, 2, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn max_bounds_the_extra_attempts_each_after_the_one_before() {
    let hedge = fixed("hedge.max", ms(100), 2);
    let script = Script::new(&[ok_after(ms(1000), 1), ok_after(ms(1000), 2)]);
    let out = hedge.run(|| script.attempt()).await;
    assert_eq!(out, Ok(1), "the first attempt answers first, at 1 s");
    assert_eq!(script.start.elapsed(), ms(1000));
    assert_eq!(
        script.starts(),
        [ms(0), ms(100), ms(200)],
        "3 attempts at most"
    );
    let s = stats("hedge.max");
    assert_eq!((s.calls, s.successes, s.hedges, s.hedges_won), (1, 1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_zero_delay_starts_every_attempt_at_once() {
    let hedge = fixed("hedge.zero", Duration::ZERO, 3);
    let script = Script::new(&[
        ok_after(ms(40), 1),
        ok_after(ms(30), 2),
        ok_after(ms(10), 3),
        ok_after(ms(20), 4),
    ]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(3));
    assert_eq!(script.starts(), [ms(0); 4]);
    assert_eq!(script.start.elapsed(), ms(10));
    let s = stats("hedge.zero");
    assert_eq!((s.hedges, s.hedges_won), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_starts_the_next_at_once() {
    let hedge = fixed("hedge.fail_fast", ms(1000), 1);
    let script = Script::new(&[err_after(Duration::ZERO, 503), ok_after(ms(50), 2)]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(2));
    assert_eq!(script.starts(), [ms(0), ms(0)]);
    assert_eq!(script.start.elapsed(), ms(50));

    // A failure after a while: the next starts then, and the one after it `after` later.
    let hedge = fixed("hedge.fail_later", ms(100), 2);
    let script = Script::new(&[
        err_after(ms(30), 503),
        ok_after(ms(1000), 2),
        ok_after(ms(10), 3),
    ]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(3));
    assert_eq!(script.starts(), [ms(0), ms(30), ms(130)]);
    assert_eq!(script.start.elapsed(), ms(140));
    let s = stats("hedge.fail_later");
    assert_eq!((s.hedges, s.hedges_won), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn an_error_when_rejects_is_returned_at_once_and_the_others_dropped() {
    let hedge = fixed("hedge.when", ms(100), 2);
    let script = Script::new(&[ok_after(ms(10_000), 1), err_after(ms(10), 400)]);
    let out = hedge
        .run_when(|status: &u32| *status >= 500, || script.attempt())
        .await;
    assert_eq!(out, Err(400));
    assert_eq!(script.start.elapsed(), ms(110));
    let traces = script.traces();
    assert_eq!(traces.len(), 2, "no third attempt");
    assert_eq!(traces[0].dropped, Some(ms(110)));
    assert_eq!(traces[0].answered, None);
    let s = stats("hedge.when");
    assert_eq!(
        (s.calls, s.successes, s.failures, s.hedges, s.hedges_won),
        (1, 0, 1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_failure_is_returned() {
    let hedge = fixed("hedge.all_fail", ms(100), 1);
    // The second attempt fails first; the first fails last.
    let script = Script::new(&[err_after(ms(300), 1), err_after(ms(50), 2)]);
    assert_eq!(hedge.run(|| script.attempt()).await, Err(1));
    assert_eq!(script.start.elapsed(), ms(300));
    assert_eq!(script.starts(), [ms(0), ms(100)]);
    let s = stats("hedge.all_fail");
    assert_eq!((s.calls, s.failures, s.hedges, s.hedges_won), (1, 1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_percentile_hedge_waits_for_twenty_latencies_then_hedges_at_the_percentile() {
    let hedge = Hedge::builder("hedge.p95", HedgeAfter::Percentile(95.0))
        .build()
        .unwrap();
    assert_eq!(hedge.delay(), None);
    // 19 calls of 10 ms.
    for _ in 0..19 {
        let script = Script::new(&[ok_after(ms(10), 1)]);
        assert_eq!(hedge.run(|| script.attempt()).await, Ok(1));
    }
    assert_eq!(hedge.delay(), None, "19 latencies: not yet");
    // The 20th call is slow, and nothing hedges it.
    let script = Script::new(&[ok_after(ms(1000), 1), ok_after(ms(5), 2)]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(1));
    assert_eq!(script.starts(), [ms(0)]);
    assert_eq!(script.start.elapsed(), ms(1000));
    assert_eq!(stats("hedge.p95").hedges, 0);

    // 19 latencies of 10 ms and one of 1 s: the 95th percentile is the 19th, 10 ms, within 3.1%.
    let delay = hedge.delay().expect("20 latencies");
    assert!(
        delay.abs_diff(ms(10)).as_secs_f64() <= 0.010 / 32.0,
        "{delay:?}"
    );
    // tokio's timers fire on whole milliseconds: the hedge starts at the first at or after it.
    let tick = ms(delay.as_micros().div_ceil(1000) as u64);
    let script = Script::new(&[ok_after(ms(1000), 1), ok_after(ms(5), 2)]);
    assert_eq!(hedge.run(|| script.attempt()).await, Ok(2));
    assert_eq!(script.starts(), [ms(0), tick]);
    assert_eq!(script.start.elapsed(), tick + ms(5));
    let s = stats("hedge.p95");
    assert_eq!(
        (s.calls, s.successes, s.hedges, s.hedges_won),
        (21, 21, 1, 1)
    );
}

/// The expansion support under an open circuit breaker: a rejected attempt starts no other, and the
/// rejection is returned once no other attempt is running.
#[tokio::test(start_paused = true)]
async fn a_rejection_by_a_breaker_below_is_not_hedged_again() {
    use reliability::__private::{Site, StackCtx, circuit_breaker, hedge};

    let breaker = CircuitBreaker::builder("hedge.breaker").build().unwrap();
    let site = Site::function("hedge.breaker.fn", "");
    let counts = |_: &Error| true;
    let when = |_: &Error| true;
    let runs = Mutex::new(Vec::new());
    let start = Instant::now();
    // Each attempt goes through the breaker; a run takes 1 s.
    let attempt = |ctx: &'static StackCtx| {
        let (breaker, site, counts, runs) = (&breaker, &site, &counts, &runs);
        move || {
            circuit_breaker(
                breaker,
                site,
                ctx,
                counts,
                std::convert::identity,
                async move {
                    runs.lock().unwrap().push(start.elapsed());
                    sleep(ms(1000)).await;
                    Ok::<_, Error>(start.elapsed())
                },
            )
        }
    };

    // Open before the call: the first attempt is rejected, and no other starts.
    breaker.isolate();
    let policy = fixed("hedge.under_breaker", ms(100), 2);
    let ctx: &'static StackCtx = Box::leak(Box::new(StackCtx::new()));
    let out = hedge(&policy, ctx, &when, attempt(ctx)).await;
    assert!(out.unwrap_err().is_circuit_open());
    assert_eq!(start.elapsed(), Duration::ZERO, "returned at once");
    let s = stats("hedge.under_breaker");
    assert_eq!((s.hedges, s.rejections, s.failures), (0, 1, 1));

    // Opened while the first attempt runs: the hedge at 100 ms is rejected, no third starts, and
    // the first attempt still answers.
    breaker.reset();
    let ctx: &'static StackCtx = Box::leak(Box::new(StackCtx::new()));
    let call = hedge(&policy, ctx, &when, attempt(ctx));
    let isolate = async {
        sleep(ms(50)).await;
        breaker.isolate();
    };
    let (out, ()) = tokio::join!(call, isolate);
    assert_eq!(out.unwrap(), ms(1000), "the first attempt's answer");
    assert_eq!(*runs.lock().unwrap(), [Duration::ZERO], "one run");
    let s = stats("hedge.under_breaker");
    assert_eq!((s.hedges, s.hedges_won, s.successes), (1, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_drops_every_attempt_and_counts_no_outcome() {
    let hedge = fixed("hedge.cancelled", ms(10), 2);
    let script = Script::new(&[ok_after(ms(1000), 1)]);
    let call = hedge.run(|| script.attempt());
    fn send<T: Send>(t: T) -> T {
        t
    }
    let out = tokio::time::timeout(ms(50), send(call)).await;
    assert!(out.is_err(), "cut at 50 ms");
    let traces = script.traces();
    assert_eq!(script.starts(), [ms(0), ms(10), ms(20)]);
    assert!(
        traces.iter().all(|t| t.dropped == Some(ms(50))),
        "{traces:?}"
    );
    let s = stats("hedge.cancelled");
    assert_eq!(
        (s.calls, s.successes, s.failures, s.hedges, s.hedges_won),
        (1, 0, 0, 2, 0)
    );
}

/// What `#[hedge(after = "100ms")]` over `#[timeout(secs = 1)]` expands into, written by hand: the
/// slot is a `static`, each attempt borrows the arguments and clones the owned ones, and the
/// function keeps its signature (and stays `Send`).
mod expansion {
    use std::time::Duration;

    use reliability::__private::{
        HedgeAfter, HedgeSlot, IsResult, Site, StackCtx, TimeoutSlot, always, clone_arg, hedge,
        layer, predicate, timeout,
    };
    use tokio::time::{Instant, sleep};

    use super::{ms, stats};

    type Out = Result<String, reliability::Error>;

    pub(super) async fn ask(query: String, slow_first: bool) -> Out {
        static HEDGE: HedgeSlot = HedgeSlot::new(HedgeAfter::Fixed(Duration::from_millis(100)), 1);
        static TIMEOUT: TimeoutSlot = TimeoutSlot::new(Duration::from_secs(1));
        fn __reliability_site() {}
        let site = Site::function(std::any::type_name_of_val(&__reliability_site), "");
        let ctx = StackCtx::new();
        let when = predicate::<<Out as IsResult>::Err, _>(always);
        let when = |e: &<Out as IsResult>::Err| when.call(e);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        hedge(HEDGE.get(site), &ctx, &when, || {
            timeout(
                TIMEOUT.get(site),
                &ctx,
                <<Out as IsResult>::Err as From<reliability::Error>>::from,
                layer::<Out, _>(async {
                    let query = clone_arg(&query);
                    let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // The first attempt hangs: the timeout below would end it at 1 s.
                    if slow_first && n == 0 {
                        sleep(Duration::from_secs(10)).await;
                    }
                    sleep(ms(20)).await;
                    Ok(format!("{query} #{n}"))
                }),
            )
        })
        .await
    }

    /// The attempt numbers of the `tracing` events of the timeout below ("call timed out").
    #[derive(Clone, Default)]
    struct TimedOut(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    /// An event's message and `attempt` field.
    #[derive(Default)]
    struct Fields {
        message: String,
        attempt: Option<String>,
    }

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.message = format!("{value:?}"),
                "attempt" => self.attempt = Some(format!("{value:?}")),
                _ => {}
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TimedOut {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            if event.metadata().target() == "reliability" && fields.message == "call timed out" {
                self.0.lock().unwrap().extend(fields.attempt);
            }
        }
    }

    /// Attempts running at once each see their own number in the layers below: the timeout of
    /// attempt k reports attempt k.
    #[tokio::test(start_paused = true)]
    async fn each_attempt_has_its_number_in_the_layers_below() {
        use tracing_subscriber::layer::SubscriberExt;

        static HEDGE: HedgeSlot = HedgeSlot::new(HedgeAfter::Fixed(Duration::from_millis(10)), 2);
        static TIMEOUT: TimeoutSlot = TimeoutSlot::new(Duration::from_millis(50));
        let site = Site::function("hedge.numbers", "");
        let recorder = TimedOut::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
        let ctx = StackCtx::new();
        let when = predicate::<reliability::Error, _>(always);
        let when = |e: &reliability::Error| when.call(e);
        let out: Out = hedge(HEDGE.get(site), &ctx, &when, || {
            timeout(
                TIMEOUT.get(site),
                &ctx,
                std::convert::identity,
                std::future::pending(),
            )
        })
        .await;
        assert!(out.unwrap_err().is_timeout());
        // Attempts start at 0, 10 and 20 ms and time out at 50, 60 and 70 ms: the last is returned.
        assert_eq!(*recorder.0.lock().unwrap(), ["1", "2", "3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_annotated_function_hedges_through_the_layers_below() {
        fn send<T: Send>(t: T) -> T {
            t
        }
        let start = Instant::now();
        let answer = send(ask("rust".into(), true)).await.unwrap();
        assert_eq!(answer, "rust #1");
        assert_eq!(start.elapsed(), ms(120));
        assert_eq!(ask("fast".into(), false).await.unwrap(), "fast #0");
        let name = "hedge::expansion::ask";
        let s = stats(name);
        assert_eq!((s.calls, s.successes, s.hedges, s.hedges_won), (2, 2, 1, 1));
        // The timeout below saw three attempts: two answered, one dropped by the hedge.
        let t = reliability::registry()
            .snapshot()
            .timeout(name)
            .cloned()
            .unwrap();
        assert_eq!((t.calls, t.successes, t.timeouts), (3, 2, 0));
    }
}

mod attribute {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use reliability::{hedge, registry, timeout};
    use tokio::time::Instant;

    static STARTED: AtomicU32 = AtomicU32::new(0);

    /// The first attempt hangs; the hedge started after 100 ms answers after 20 ms more.
    #[hedge(after = "100ms", max = 2)]
    #[timeout(secs = 5)]
    async fn answer(question: String) -> Result<String, reliability::Error> {
        let attempt = STARTED.fetch_add(1, Ordering::SeqCst);
        let took = if attempt == 0 {
            Duration::from_secs(10)
        } else {
            Duration::from_millis(20)
        };
        tokio::time::sleep(took).await;
        Ok(format!("{question}: attempt {}", attempt + 1))
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_over_a_timeout_answers_with_the_second_attempt() {
        let start = Instant::now();
        assert_eq!(answer("q".to_owned()).await.unwrap(), "q: attempt 2");
        assert_eq!(start.elapsed(), Duration::from_millis(120));
        assert_eq!(
            STARTED.load(Ordering::SeqCst),
            2,
            "no third attempt: the second answered first"
        );
        let stats = registry().snapshot();
        let h = stats.hedge("hedge::attribute::answer").unwrap();
        assert_eq!((h.hedges, h.hedges_won), (1, 1));
    }
}
