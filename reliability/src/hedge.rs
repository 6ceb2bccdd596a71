//! Hedge: when an attempt is slow, start another beside it and take the first answer.

pub(crate) mod expand;
mod latency;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::__private::StackCtx;
use crate::error::ConfigError;
use crate::registry::registry;
use crate::stats::{Call, Field, PolicyKind, Stats};
use latency::Latencies;

/// When a [`Hedge`] starts another attempt beside the ones running.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeAfter {
    /// After this long (zero starts every attempt at once).
    Fixed(Duration),
    /// After this percentile (50..=99.9, kept to a tenth) of the hedge's recent latencies; no
    /// attempt starts by time before the hedge has seen 20 of them.
    Percentile(f64),
}

impl From<Duration> for HedgeAfter {
    fn from(after: Duration) -> Self {
        HedgeAfter::Fixed(after)
    }
}

/// The settings of a [`Hedge`]; see [`HedgeBuilder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeConfig {
    after: HedgeAfter,
    max: u32,
}

impl HedgeConfig {
    /// Settings already validated (by the attribute macro): `1 <= max <= Hedge::MAX`, a percentile
    /// in 50..=99.9.
    pub(crate) const fn checked(after: HedgeAfter, max: u32) -> Self {
        HedgeConfig { after, max }
    }

    /// When another attempt starts.
    pub fn after(&self) -> HedgeAfter {
        self.after
    }

    /// Extra attempts, beside the first.
    pub fn max(&self) -> u32 {
        self.max
    }
}

/// Builds a [`Hedge`]; [`build`](Self::build) validates every setting.
#[derive(Debug, Clone)]
#[must_use]
pub struct HedgeBuilder {
    name: String,
    config: HedgeConfig,
}

impl HedgeBuilder {
    /// Extra attempts beside the first (1..=[`Hedge::MAX`]; default 1).
    pub fn max(mut self, max: u32) -> Self {
        self.config.max = max;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<Hedge, ConfigError> {
        let c = self.config;
        if !(1..=Hedge::MAX).contains(&c.max) {
            return Err(ConfigError::new(
                "max",
                format!(
                    "must be between 1 and {} (extra attempts beside the first), not {}",
                    Hedge::MAX,
                    c.max
                ),
            ));
        }
        if let HedgeAfter::Percentile(p) = c.after
            && !(50.0..=99.9).contains(&p)
        {
            return Err(ConfigError::new(
                "after",
                format!("a percentile must be between 50 and 99.9, not {p}"),
            ));
        }
        Ok(Hedge::checked(&self.name, c))
    }
}

/// A named hedge: when an attempt has not answered after a delay, start another beside it and take
/// the first answer. It cuts the tail of a service's latency at the cost of some extra load. Its
/// counters are in the [`registry`](crate::registry()).
///
/// | setting | meaning | default |
/// |---|---|---|
/// | `after` ([`builder`](Self::builder)) | [`HedgeAfter::Fixed`]`(DUR)`: start another attempt when none has answered after DUR; [`HedgeAfter::Percentile`]`(P)`: after the P-th percentile (50..=99.9) of this hedge's recent latencies, no hedging before 20 of them | required |
/// | [`max`](HedgeBuilder::max) | extra attempts beside the first (1..=5) | 1 |
/// | `when` ([`run_when`](Self::run_when)) | `Fn(&E) -> bool`: an attempt failing with such an error starts the next one at once | every error |
///
/// Attempt k+1 starts `after` after attempt k started (so a zero delay starts them all at once),
/// or at once when an attempt fails with an error `when` accepts. The first `Ok` wins and every
/// other attempt is dropped at once, without waiting for it; an error `when` rejects is returned at
/// once, and the others are dropped; if every attempt fails, the error of the attempt that failed
/// last is returned. Under `#[hedge]`, an attempt rejected by an open circuit breaker below starts
/// no other attempt: the rejection is returned when no other attempt is running.
///
/// Every attempt is polled by the caller's task, in place: nothing is spawned, and a call whose
/// first attempt answers before the delay allocates nothing. The delay is a `tokio::time` timer, so
/// an attempt starts on the first millisecond tick at or after it. The future holds room for six
/// attempts. Only hedge calls that are safe to make twice (idempotent reads, retriable requests).
///
/// A percentile hedge records the latency of each attempt that answers `Ok`, and for an attempt
/// dropped because another answered first, the time it ran (its latency was at least that), so the
/// hedges themselves do not drag the percentile down. The latencies live with the `Hedge` (and its
/// clones): build it once. The percentile is estimated within 3.1% of the recorded latency it
/// stands for, over the last 2048 to 4096 latencies (or 10 to 20 seconds of them), and computed
/// again every 64 new ones.
///
/// ```
/// use std::time::Duration;
/// use reliability::{Hedge, registry};
/// use tokio::time::{Instant, sleep};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let hedge = Hedge::builder("doc.hedge", Duration::from_millis(100)).build().unwrap();
/// let start = Instant::now();
/// let mut attempt = 0;
/// let out: Result<&str, ()> = hedge
///     .run(|| {
///         attempt += 1;
///         // The first replica is stuck; the second answers in 20 ms.
///         let latency = if attempt == 1 { Duration::from_secs(10) } else { Duration::from_millis(20) };
///         async move {
///             sleep(latency).await;
///             Ok(if latency.as_secs() == 10 { "stuck" } else { "fast" })
///         }
///     })
///     .await;
/// assert_eq!(out, Ok("fast"));
/// assert_eq!(start.elapsed(), Duration::from_millis(120));
/// let stats = registry().snapshot();
/// let stats = stats.hedge("doc.hedge").unwrap();
/// assert_eq!((stats.hedges, stats.hedges_won), (1, 1));
/// # }
/// ```
#[derive(Clone)]
pub struct Hedge {
    name: Arc<str>,
    config: HedgeConfig,
    stats: Arc<Stats>,
    /// The recent latencies, for a percentile hedge.
    latencies: Option<Arc<Latencies>>,
}

impl std::fmt::Debug for Hedge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("latencies", &self.latencies)
            .finish()
    }
}

/// The attempts one call may run: the first and [`Hedge::MAX`] more.
const SLOTS: usize = Hedge::MAX as usize + 1;

impl Hedge {
    /// The largest `max`: extra attempts beside the first.
    pub const MAX: u32 = 5;

    /// Starts the settings of a hedge registered as `name`, starting another attempt `after`
    /// (a [`Duration`] or a [`HedgeAfter`]).
    pub fn builder(name: impl Into<String>, after: impl Into<HedgeAfter>) -> HedgeBuilder {
        HedgeBuilder {
            name: name.into(),
            config: HedgeConfig {
                after: after.into(),
                max: 1,
            },
        }
    }

    /// A hedge with settings already validated.
    pub(crate) fn checked(name: &str, config: HedgeConfig) -> Self {
        Hedge {
            name: name.into(),
            config,
            stats: registry().stats(PolicyKind::Hedge, name),
            latencies: match config.after {
                HedgeAfter::Fixed(_) => None,
                HedgeAfter::Percentile(p) => Some(Arc::new(Latencies::new(p))),
            },
        }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings.
    pub fn config(&self) -> HedgeConfig {
        self.config
    }

    /// How long a call started now would wait before starting another attempt: the fixed delay,
    /// or the percentile of the recent latencies (`None` before 20 of them: no hedging yet).
    pub fn delay(&self) -> Option<Duration> {
        match (&self.latencies, self.config.after) {
            (Some(latencies), _) => latencies.percentile(),
            (None, HedgeAfter::Fixed(after)) => Some(after),
            (None, HedgeAfter::Percentile(_)) => None,
        }
    }

    /// Runs `attempt()`, and again beside it as the settings say; returns the first `Ok`, or the
    /// error of the attempt that failed last.
    pub fn run<T, E, F, Fut>(
        &self,
        attempt: F,
    ) -> impl Future<Output = Result<T, E>> + use<'_, T, E, F, Fut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call(None, any_error::<E> as fn(&E) -> bool, attempt)
    }

    /// Like [`run`](Self::run); an attempt failing with an error for which `when` is true starts
    /// the next at once, any other error is returned at once (the other attempts dropped).
    pub fn run_when<T, E, F, Fut, W>(
        &self,
        when: W,
        attempt: F,
    ) -> impl Future<Output = Result<T, E>> + use<'_, T, E, F, Fut, W>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        W: Fn(&E) -> bool,
    {
        self.call(None, when, attempt)
    }

    /// The future of one call; `ctx` is the stack's, under `#[hedge]`.
    pub(crate) fn call<'a, T, E, F, Fut, W>(
        &'a self,
        ctx: Option<&'a StackCtx>,
        when: W,
        make: F,
    ) -> HedgeCall<'a, F, Fut, W, T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        W: Fn(&E) -> bool,
    {
        HedgeCall {
            attempts: Attempts {
                a0: None,
                a1: None,
                a2: None,
                a3: None,
                a4: None,
                a5: None,
            },
            timer: None,
            state: State {
                make,
                when,
                hedge: self,
                ctx,
                // Counted from its first poll, like a timeout's.
                call: Call::idle(&self.stats),
                total: (self.config.max.min(Hedge::MAX) + 1) as u8,
                launched: 0,
                running: 0,
                owed: 0,
                stopped: false,
                done: false,
                delay: Delay::Unknown,
                armed_for: 0,
                starts: [None; SLOTS],
                last: None,
                out: PhantomData,
            },
        }
    }
}

fn any_error<E>(_: &E) -> bool {
    true
}

pin_project_lite::pin_project! {
    /// The attempts of one call, each pinned in place: the first, and up to five more.
    struct Attempts<Fut> {
        #[pin]
        a0: Option<Fut>,
        #[pin]
        a1: Option<Fut>,
        #[pin]
        a2: Option<Fut>,
        #[pin]
        a3: Option<Fut>,
        #[pin]
        a4: Option<Fut>,
        #[pin]
        a5: Option<Fut>,
    }
}

impl<Fut> Attempts<Fut> {
    fn slots(self: Pin<&mut Self>) -> [Pin<&mut Option<Fut>>; SLOTS] {
        let a = self.project();
        [a.a0, a.a1, a.a2, a.a3, a.a4, a.a5]
    }
}

/// The delay before another attempt, as far as one call knows it.
#[derive(Debug, Clone, Copy)]
enum Delay {
    /// Not looked up yet: looked up when the first attempt does not answer at once.
    Unknown,
    Known(Duration),
    /// A percentile hedge with too few latencies yet: no attempt starts by time.
    Never,
}

/// What one call keeps besides its attempts and its timer.
struct State<'a, F, W, T, E> {
    make: F,
    when: W,
    hedge: &'a Hedge,
    ctx: Option<&'a StackCtx>,
    call: Call<'a>,
    /// Attempts this call may start.
    total: u8,
    /// Attempts started.
    launched: u8,
    /// Attempts started and not finished.
    running: u8,
    /// Attempts to start at once, one for each that failed.
    owed: u8,
    /// A breaker below rejected an attempt: no more start.
    stopped: bool,
    /// The call returned.
    done: bool,
    delay: Delay,
    /// The number of attempts started when the timer was set: it is set for the next one.
    armed_for: u8,
    /// When each attempt started (the first: only for a percentile hedge, or once it is slow).
    starts: [Option<Instant>; SLOTS],
    /// The error of the attempt that failed last, and whether a breaker below rejected it.
    last: Option<(E, bool)>,
    out: PhantomData<fn() -> T>,
}

pin_project_lite::pin_project! {
    /// The future of one hedged call.
    pub(crate) struct HedgeCall<'a, F, Fut, W, T, E> {
        #[pin]
        attempts: Attempts<Fut>,
        // Inline: a call that waits for a hedge allocates nothing for its timer either.
        #[pin]
        timer: Option<Sleep>,
        state: State<'a, F, W, T, E>,
    }
}

impl<F, W, T, E> State<'_, F, W, T, E> {
    /// Starts the next attempt in its slot.
    fn start<Fut>(&mut self, slots: &mut [Pin<&mut Option<Fut>>; SLOTS], reason: &'static str)
    where
        F: FnMut() -> Fut,
    {
        let i = usize::from(self.launched);
        if let Some(ctx) = self.ctx {
            ctx.set_attempt(u32::from(self.launched) + 1);
        }
        // The first attempt of a fixed delay reads the clock only if it does not answer at once.
        if i > 0 || self.hedge.latencies.is_some() {
            self.starts[i] = Some(Instant::now());
        }
        slots[i].set(Some((self.make)()));
        self.launched += 1;
        self.running += 1;
        if i > 0 {
            self.hedge.stats.add(Field::Hedges);
            tracing::debug!(target: "reliability", function = %self.hedge.name, attempt = i + 1, reason, "hedging: started another attempt");
        }
    }

    /// The delay before another attempt, looked up once per call.
    fn delay(&mut self) -> Option<Duration> {
        if let Delay::Unknown = self.delay {
            self.delay = self.hedge.delay().map_or(Delay::Never, Delay::Known);
        }
        match self.delay {
            Delay::Known(d) => Some(d),
            Delay::Unknown | Delay::Never => None,
        }
    }

    /// Attempt `winner` answered: records the latencies, drops the others, counts the success.
    fn won<Fut>(&mut self, winner: usize, slots: &mut [Pin<&mut Option<Fut>>; SLOTS]) {
        if let Some(latencies) = &self.hedge.latencies {
            let now = Instant::now();
            for (i, slot) in slots.iter().enumerate() {
                if let Some(start) = self.starts[i]
                    && (i == winner || slot.is_some())
                {
                    latencies.record(now.saturating_duration_since(start), now);
                }
            }
        }
        self.drop_all(slots);
        if winner > 0 {
            self.hedge.stats.add(Field::HedgesWon);
            tracing::debug!(target: "reliability", function = %self.hedge.name, attempt = winner + 1, "hedging: another attempt answered first");
        }
        self.call.end(Field::Successes);
    }

    fn drop_all<Fut>(&mut self, slots: &mut [Pin<&mut Option<Fut>>; SLOTS]) {
        for slot in slots.iter_mut().take(usize::from(self.launched)) {
            slot.set(None);
        }
        self.running = 0;
        self.done = true;
    }

    /// The call ends with `error`.
    #[cold]
    fn failed(&mut self, error: E, rejected: bool) -> E {
        self.done = true;
        if rejected {
            self.hedge.stats.add(Field::Rejections);
        }
        self.call.end(Field::Failures);
        error
    }
}

impl<F, Fut, W, T, E> Future for HedgeCall<'_, F, Fut, W, T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: Fn(&E) -> bool,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut slots = this.attempts.slots();
        let mut timer = this.timer;
        let s = this.state;
        if s.done {
            return Poll::Pending;
        }
        if s.launched == 0 {
            s.call.run();
            s.start(&mut slots, "first");
        }
        // Attempts from this one on are polled in the next round: all at first, then only those
        // just started (the others were polled already, and their wakers are registered).
        let mut from = 0;
        loop {
            for i in from..usize::from(s.launched) {
                let Some(attempt) = slots[i].as_mut().as_pin_mut() else {
                    continue;
                };
                if let Some(ctx) = s.ctx {
                    ctx.set_attempt(i as u32 + 1);
                }
                let Poll::Ready(out) = attempt.poll(cx) else {
                    continue;
                };
                slots[i].set(None);
                s.running -= 1;
                // A breaker below sets the flag in the poll in which it rejects, which is the poll
                // in which the attempt completes: it belongs to this attempt.
                let rejected = s
                    .ctx
                    .is_some_and(|ctx| ctx.rejected.swap(false, Ordering::Relaxed));
                match out {
                    Ok(value) => {
                        s.won(i, &mut slots);
                        return Poll::Ready(Ok(value));
                    }
                    Err(error) if rejected => {
                        tracing::debug!(target: "reliability", function = %s.hedge.name, attempt = i + 1, "hedging: not starting another attempt, the circuit breaker is open");
                        s.stopped = true;
                        s.last = Some((error, true));
                    }
                    Err(error) if !(s.when)(&error) => {
                        s.drop_all(&mut slots);
                        return Poll::Ready(Err(s.failed(error, false)));
                    }
                    Err(error) => {
                        s.last = Some((error, false));
                        s.owed += 1;
                    }
                }
            }
            let before = s.launched;
            while s.owed > 0 && !s.stopped && s.launched < s.total {
                s.owed -= 1;
                s.start(&mut slots, "an attempt failed");
            }
            if !s.stopped
                && s.launched < s.total
                && s.running > 0
                && let Some(delay) = s.delay()
            {
                while s.launched < s.total {
                    if s.armed_for != s.launched {
                        let now = Instant::now();
                        let last = usize::from(s.launched) - 1;
                        let at =
                            crate::time::instant_after(*s.starts[last].get_or_insert(now), delay);
                        if at <= now {
                            s.start(&mut slots, "delay");
                            continue;
                        }
                        match timer.as_mut().as_pin_mut() {
                            Some(sleep) => sleep.reset(at),
                            None => timer.set(Some(tokio::time::sleep_until(at))),
                        }
                        s.armed_for = s.launched;
                    }
                    let fired = timer
                        .as_mut()
                        .as_pin_mut()
                        .is_some_and(|sleep| sleep.poll(cx).is_ready());
                    if !fired {
                        break;
                    }
                    s.start(&mut slots, "delay");
                }
            }
            if s.launched > before {
                from = usize::from(before);
                continue;
            }
            if s.running == 0 {
                // Every attempt failed, and no other may start.
                return match s.last.take() {
                    Some((error, rejected)) => Poll::Ready(Err(s.failed(error, rejected))),
                    None => Poll::Pending,
                };
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Hedge, HedgeAfter};

    #[test]
    fn settings_are_checked() {
        let after = Duration::from_millis(10);
        assert!(
            Hedge::builder("hedge.unit.max0", after)
                .max(0)
                .build()
                .is_err()
        );
        assert!(
            Hedge::builder("hedge.unit.max6", after)
                .max(6)
                .build()
                .is_err()
        );
        assert!(
            Hedge::builder("hedge.unit.max5", after)
                .max(5)
                .build()
                .is_ok()
        );
        for bad in [49.9, 99.95, f64::NAN, f64::INFINITY] {
            let built = Hedge::builder("hedge.unit.pct", HedgeAfter::Percentile(bad)).build();
            assert_eq!(built.unwrap_err().setting(), "after", "{bad}");
        }
        for good in [50.0, 95.0, 99.9] {
            assert!(
                Hedge::builder("hedge.unit.pct", HedgeAfter::Percentile(good))
                    .build()
                    .is_ok()
            );
        }
    }
}
