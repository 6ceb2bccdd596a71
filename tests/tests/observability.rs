//! Every retry, timeout, breaker transition, rejection, fallback and cache hit or miss is a
//! `tracing` event with target `reliability` that names the function (and, for retries, the attempt).

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::pending;
use std::sync::{Arc, Mutex};

use common::{AppError, secs};
use reliability::{cached, circuit_breaker, fallback, retry, timeout};
use tokio::time::advance;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One recorded event.
#[derive(Debug, Clone)]
struct Event {
    target: String,
    level: tracing::Level,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Event {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether any field names `name` (the function, breaker or cache).
    fn names(&self, name: &str) -> bool {
        self.fields.values().any(|v| v == name)
    }
}

struct Fields<'a>(&'a mut Event);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let value = format!("{value:?}");
        if field.name() == "message" {
            self.0.message = value;
        } else {
            self.0.fields.insert(field.name().to_owned(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.message = value.to_owned();
        } else {
            self.0
                .fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }
}

/// A layer that keeps every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut recorded = Event {
            target: meta.target().to_owned(),
            level: *meta.level(),
            message: String::new(),
            fields: BTreeMap::new(),
        };
        event.record(&mut Fields(&mut recorded));
        self.0.lock().unwrap().push(recorded);
    }
}

impl Recorder {
    /// Installs the recorder for this thread (the current-thread runtime of the test).
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry().with(recorder.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (recorder, guard)
    }

    /// The events with target `reliability` that name `name`, drained.
    fn take(&self, name: &str) -> Vec<Event> {
        let mut all = self.0.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|e| e.names(name));
        *all = rest;
        for event in &mine {
            assert_eq!(event.target, "reliability", "{event:?}");
        }
        mine
    }
}

fn messages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

#[retry(max = 3, backoff = "fixed", delay = "1s", jitter = "none")]
async fn flaky() -> Result<(), AppError> {
    Err(AppError::Status(503))
}

#[tokio::test(start_paused = true)]
async fn retries_are_events_with_the_function_and_the_attempt() {
    let (recorder, _guard) = Recorder::install();
    flaky().await.unwrap_err();
    let events = recorder.take("observability::flaky");
    assert_eq!(events.len(), 3, "{events:#?}");
    for (i, event) in events[..2].iter().enumerate() {
        assert!(event.message.contains("retrying"), "{event:?}");
        assert_eq!(event.field("function"), Some("observability::flaky"));
        assert_eq!(event.field("attempt"), Some((i + 1).to_string().as_str()));
        assert_eq!(event.field("delay"), Some("1s"));
        assert_eq!(
            event.field("error"),
            Some("service answered 503"),
            "the error's Display"
        );
        assert_eq!(event.level, tracing::Level::WARN);
    }
    assert!(events[2].message.contains("exhausted"), "{:?}", events[2]);
    assert_eq!(events[2].field("attempt"), Some("3"));
}

#[retry(max = 2, delay = "1s")]
#[timeout(secs = 2)]
async fn hangs() -> Result<(), AppError> {
    pending().await
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_events_with_the_attempt() {
    let (recorder, _guard) = Recorder::install();
    hangs().await.unwrap_err();
    let events = recorder.take("observability::hangs");
    let timeouts: Vec<_> = events
        .iter()
        .filter(|e| e.message.contains("timed out"))
        .collect();
    assert_eq!(timeouts.len(), 2, "{events:#?}");
    for (i, event) in timeouts.iter().enumerate() {
        assert_eq!(event.field("function"), Some("observability::hangs"));
        assert_eq!(event.field("attempt"), Some((i + 1).to_string().as_str()));
        assert_eq!(event.field("after"), Some("2s"));
    }
}

#[circuit_breaker(failure_threshold = 1, success_threshold = 1, cooldown = 10)]
async fn breaker(fail: bool) -> Result<(), AppError> {
    if fail {
        Err(AppError::Status(500))
    } else {
        Ok(())
    }
}

#[circuit_breaker(name = "observability.shared", failure_threshold = 1, cooldown = 10)]
async fn shared_breaker_user() -> Result<(), AppError> {
    Err(AppError::Status(500))
}

#[tokio::test(start_paused = true)]
async fn a_named_breaker_events_name_the_function_that_called() {
    let (recorder, _guard) = Recorder::install();
    shared_breaker_user().await.unwrap_err();
    shared_breaker_user().await.unwrap_err();
    let events = recorder.take("observability.shared");
    assert_eq!(
        messages(&events),
        ["circuit breaker opened", "circuit breaker rejected a call"]
    );
    for event in &events {
        assert_eq!(event.field("breaker"), Some("observability.shared"));
        assert_eq!(
            event.field("function"),
            Some("observability::shared_breaker_user")
        );
        assert_eq!(event.field("attempt"), Some("1"));
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_transitions_and_rejections_are_events() {
    let (recorder, _guard) = Recorder::install();
    let name = "observability::breaker";
    breaker(true).await.unwrap_err();
    let opened = recorder.take(name);
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert!(opened[0].message.contains("opened"), "{opened:?}");

    breaker(false).await.unwrap_err();
    let rejected = recorder.take(name);
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(rejected[0].message.contains("rejected"), "{rejected:?}");
    assert_eq!(rejected[0].field("attempt"), Some("1"));

    advance(secs(10)).await;
    breaker(false).await.unwrap();
    let recovered = recorder.take(name);
    assert_eq!(recovered.len(), 2, "{recovered:#?}");
    assert!(recovered[0].message.contains("half-open"), "{recovered:?}");
    assert!(recovered[1].message.contains("closed"), "{recovered:?}");
}

#[fallback(second_choice)]
async fn first_choice() -> Result<u32, AppError> {
    Err(AppError::Status(503))
}

async fn second_choice() -> Result<u32, AppError> {
    Ok(2)
}

#[tokio::test]
async fn fallbacks_are_events_naming_the_target() {
    let (recorder, _guard) = Recorder::install();
    assert_eq!(first_choice().await.unwrap(), 2);
    let events = recorder.take("observability::first_choice");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events[0].message.contains("trying fallbacks"), "{events:?}");
    assert!(
        events[1].message.contains("served by fallback"),
        "{events:?}"
    );
    assert_eq!(events[1].field("fallback"), Some("second_choice"));
}

#[cached]
async fn lookup(key: u32) -> Result<u32, AppError> {
    Ok(key)
}

#[tokio::test]
async fn cache_hits_and_misses_are_events() {
    let (recorder, _guard) = Recorder::install();
    lookup(1).await.unwrap();
    lookup(1).await.unwrap();
    lookup(2).await.unwrap();
    let events = recorder.take("observability::lookup");
    assert_eq!(messages(&events), ["cache miss", "cache hit", "cache miss"]);
    assert!(events.iter().all(|e| e.level == tracing::Level::DEBUG));
}

#[circuit_breaker(name = "observability.conflict", failure_threshold = 3)]
async fn shares_a_breaker() -> Result<(), AppError> {
    Ok(())
}

#[circuit_breaker(name = "observability.conflict", failure_threshold = 7)]
async fn shares_it_with_other_settings() -> Result<(), AppError> {
    Ok(())
}

#[tokio::test]
async fn two_functions_naming_one_breaker_with_other_settings_are_warned_about() {
    let (recorder, _guard) = Recorder::install();
    shares_a_breaker().await.unwrap();
    shares_it_with_other_settings().await.unwrap();
    let events = recorder.take("observability.conflict");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(events[0].message.contains("other settings"), "{events:?}");
    assert_eq!(events[0].level, tracing::Level::WARN);
    assert_eq!(
        events[0].field("function"),
        Some("observability::shares_it_with_other_settings")
    );
    let breaker = reliability::registry()
        .circuit_breaker("observability.conflict")
        .unwrap();
    assert_eq!(
        breaker.config().failure_threshold(),
        Some(3),
        "the first one's settings"
    );
}

/// The load layers and the retry's early give-ups are events too, naming the policy.
#[tokio::test(start_paused = true)]
async fn load_rejections_and_early_give_ups_are_events() {
    use reliability::{Bulkhead, RateLimiter, Retry, RetryPolicy};
    use std::time::Duration;

    let (recorder, _guard) = Recorder::install();
    let limiter = RateLimiter::builder("observability.limiter", 1)
        .wait(secs(5))
        .build()
        .unwrap();
    limiter.acquire(1).await.unwrap();
    limiter.acquire(1).await.unwrap();
    limiter.acquire(7).await.unwrap_err();
    let events = recorder.take("observability.limiter");
    assert_eq!(
        messages(&events),
        [
            "waiting for a permit",
            "rate limited: the call asks for more permits than the burst, so it can never be admitted"
        ]
    );
    assert_eq!(events[1].level, tracing::Level::WARN);
    assert_eq!(events[1].field("cost"), Some("7"));

    let bulkhead = Bulkhead::builder("observability.bulkhead", 1)
        .build()
        .unwrap();
    let _slot = bulkhead.acquire().await.unwrap();
    bulkhead.acquire().await.unwrap_err();
    let events = recorder.take("observability.bulkhead");
    assert_eq!(messages(&events), ["bulkhead full"], "{events:#?}");

    let budget = Retry::new(
        "observability.budget",
        RetryPolicy::builder()
            .max_attempts(2)
            .delay(Duration::ZERO)
            .budget(0.1)
            .build()
            .unwrap(),
    );
    for _ in 0..120 {
        let _ = budget.run(|| async { Err::<(), _>(503) }).await;
    }
    let events = recorder.take("observability.budget");
    let spent = messages(&events)
        .into_iter()
        .filter(|m| *m == "giving up: the retry budget is spent")
        .count() as u64;
    let stats = reliability::registry().snapshot();
    let exhausted = stats
        .retry("observability.budget")
        .unwrap()
        .budget_exhausted;
    assert!(spent > 0);
    assert_eq!(spent, exhausted, "one event per give-up");

    let deadline = Retry::new(
        "observability.deadline",
        RetryPolicy::builder()
            .jitter(reliability::Jitter::None)
            .deadline(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let _ = deadline.run(|| async { Err::<(), _>(503) }).await;
    let events = recorder.take("observability.deadline");
    assert_eq!(
        messages(&events),
        ["giving up: the next attempt would start past the deadline"]
    );
}

#[tokio::test(start_paused = true)]
async fn isolating_and_resetting_a_breaker_are_events() {
    let (recorder, _guard) = Recorder::install();
    let breaker = reliability::CircuitBreaker::builder("observability.manual")
        .build()
        .unwrap();
    breaker.isolate();
    breaker.isolate(); // already isolated: nothing happens
    breaker
        .call(async { Ok::<_, AppError>(()) })
        .await
        .unwrap_err();
    breaker.reset();
    let events = recorder.take("observability.manual");
    assert_eq!(
        messages(&events),
        [
            "circuit breaker isolated: rejecting every call until reset",
            "circuit breaker rejected a call",
            "circuit breaker reset: closed, counts cleared",
        ],
        "{events:#?}"
    );
    assert_eq!(events[0].level, tracing::Level::WARN);
    assert_eq!(events[0].field("from"), Some("Closed"));
    assert_eq!(events[2].level, tracing::Level::INFO);
    assert_eq!(events[2].field("from"), Some("Isolated"));
}

/// An error type without `Display` is shown with `Debug`; one with neither, as `-`.
#[derive(Debug)]
struct DebugOnly(#[allow(dead_code)] u16);

struct Opaque;

#[retry(max = 2, delay = 0)]
async fn fails_with_debug_only() -> Result<(), DebugOnly> {
    Err(DebugOnly(418))
}

#[retry(max = 2, delay = 0)]
async fn fails_opaquely() -> Result<(), Opaque> {
    Err(Opaque)
}

#[tokio::test]
async fn events_show_the_error_as_its_type_allows() {
    let (recorder, _guard) = Recorder::install();
    let _ = fails_with_debug_only().await;
    let _ = fails_opaquely().await;
    let debug = recorder.take("observability::fails_with_debug_only");
    assert_eq!(debug[0].field("error"), Some("DebugOnly(418)"), "{debug:?}");
    let opaque = recorder.take("observability::fails_opaquely");
    assert_eq!(opaque[0].field("error"), Some("-"), "{opaque:?}");
}
