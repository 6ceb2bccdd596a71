//! Values given as constants (`#[retry(max = MAX)]`, `#[cached(ttl = TTL)]`): the macro cannot read
//! them, so the expansion passes them through these `const fn`s, which convert them and check the
//! option's range while the `static` of the layer is evaluated. A value out of range is a compile
//! error (a panic during constant evaluation) with the option's message, at the value.

use core::time::Duration;

use crate::circuit_breaker::SlidingWindow;

/// The longest duration an option accepts: what `u64` nanoseconds hold (about 584 years).
const MAX_NANOS: u128 = u64::MAX as u128;

/// A duration given as a constant: a [`Duration`], or a number of seconds (`u64`, or `f64` for
/// fractions). Each type has its own `get`, so the constant's type picks the conversion (an
/// integer expression such as `2 * 60` is seconds as `u64`).
#[derive(Debug, Clone, Copy)]
pub struct DurationValue<T>(T);

/// The types a duration given as a constant may have.
#[diagnostic::on_unimplemented(
    message = "a duration given as a constant is a `std::time::Duration`, or a number of seconds as `u64` (or `f64` for fractions), not `{Self}`",
    label = "not a duration",
    note = "e.g. `const TTL: Duration = Duration::from_secs(3600);` or `const TTL_SECS: u64 = 3600;`"
)]
pub trait DurationType {}

impl DurationType for Duration {}
impl DurationType for u64 {}
impl DurationType for f64 {}

impl<T: DurationType> DurationValue<T> {
    /// The value, whose type picks the conversion.
    pub const fn new(value: T) -> Self {
        DurationValue(value)
    }
}

impl DurationValue<Duration> {
    /// The duration, at most about 584 years.
    pub const fn get(self) -> Duration {
        not_too_long(self.0)
    }
}

impl DurationValue<u64> {
    /// `self.0` seconds, at most about 584 years.
    pub const fn get(self) -> Duration {
        not_too_long(Duration::from_secs(self.0))
    }
}

impl DurationValue<f64> {
    /// `self.0` seconds (rounded down to a nanosecond), not negative, at most about 584 years.
    pub const fn get(self) -> Duration {
        let nanos = self.0 * 1e9;
        if nanos.is_nan() || nanos < 0.0 {
            panic!("a duration in seconds must not be negative");
        }
        if nanos >= MAX_NANOS as f64 {
            panic!("a duration must be at most about 584 years");
        }
        Duration::from_nanos(nanos as u64)
    }
}

/// The `get` method resolution falls back to when the constant's type is none of the
/// [`DurationType`]s: [`DurationValue::new`] has then already reported the one error, and this
/// keeps rustc from adding "no method named `get`" to it. A `DurationValue` of another type
/// cannot be made, so this is never called.
pub trait NotADuration {
    /// Never called (see the trait).
    fn get(self) -> Duration;
}

impl<T> NotADuration for DurationValue<T> {
    fn get(self) -> Duration {
        Duration::MAX
    }
}

const fn not_too_long(duration: Duration) -> Duration {
    if duration.as_nanos() > MAX_NANOS {
        panic!("a duration must be at most about 584 years");
    }
    duration
}

/// `duration`, if it is at least `min_nanos` long; else a compile error saying `message`.
pub const fn at_least(duration: Duration, min_nanos: u64, message: &'static str) -> Duration {
    if duration.as_nanos() < min_nanos as u128 {
        panic!("{}", message);
    }
    duration
}

/// `long`, if `short` is not longer than it (`strict`: shorter than it); else `message`.
pub const fn not_shorter(
    short: Duration,
    long: Duration,
    strict: bool,
    message: &'static str,
) -> Duration {
    let (a, b) = (short.as_nanos(), long.as_nanos());
    if a > b || (strict && a == b) {
        panic!("{}", message);
    }
    long
}

/// `b`, if `a + b` is at most `max_nanos`; else `message`.
pub const fn sum_at_most(
    a: Duration,
    b: Duration,
    max_nanos: u128,
    message: &'static str,
) -> Duration {
    if a.as_nanos() + b.as_nanos() > max_nanos {
        panic!("{}", message);
    }
    b
}

/// `value`, if it is in `min..=max`; else `message`.
pub const fn count_u32(value: u32, min: u32, max: u32, message: &'static str) -> u32 {
    if value < min || value > max {
        panic!("{}", message);
    }
    value
}

/// `value`, if it is in `min..=max`; else `message`.
pub const fn count_u64(value: u64, min: u64, max: u64, message: &'static str) -> u64 {
    if value < min || value > max {
        panic!("{}", message);
    }
    value
}

/// `value`, if it is above 0 and at most 1 (a share); else `message`.
pub const fn share(value: f64, message: &'static str) -> f64 {
    if !(value > 0.0 && value <= 1.0) {
        panic!("{}", message);
    }
    value
}

/// `value`, if it is finite and above 1; else `message`.
pub const fn above_one(value: f64, message: &'static str) -> f64 {
    if !(value > 1.0 && value < f64::INFINITY) {
        panic!("{}", message);
    }
    value
}

/// A breaker's window given as a constant: a number of calls (`u32`) or a [`Duration`].
#[derive(Debug, Clone, Copy)]
pub struct WindowValue<T>(T);

/// The types a breaker's window given as a constant may have.
#[diagnostic::on_unimplemented(
    message = "a window given as a constant is a number of calls as `u32`, or a `std::time::Duration`, not `{Self}`",
    label = "not a window"
)]
pub trait WindowType {}

impl WindowType for u32 {}
impl WindowType for Duration {}

impl<T: WindowType> WindowValue<T> {
    /// The value, whose type picks the kind of window.
    pub const fn new(value: T) -> Self {
        WindowValue(value)
    }
}

impl WindowValue<u32> {
    /// A window of the last `self.0` calls (1 to `max_calls`); else `calls`.
    pub const fn get(
        self,
        max_calls: u32,
        calls: &'static str,
        _time: &'static str,
    ) -> SlidingWindow {
        SlidingWindow::Calls(count_u32(self.0, 1, max_calls, calls))
    }
}

impl WindowValue<Duration> {
    /// A window of time, at least 10 ns long; else `time`.
    pub const fn get(
        self,
        _max_calls: u32,
        _calls: &'static str,
        time: &'static str,
    ) -> SlidingWindow {
        SlidingWindow::Duration(at_least(not_too_long(self.0), 10, time))
    }
}

/// The `get` method resolution falls back to when the constant's type is none of the
/// [`WindowType`]s, as [`NotADuration`] does for durations: never called.
pub trait NotAWindow {
    /// Never called (see the trait).
    fn get(self, max_calls: u32, calls: &'static str, time: &'static str) -> SlidingWindow;
}

impl<T> NotAWindow for WindowValue<T> {
    fn get(self, max_calls: u32, _calls: &'static str, _time: &'static str) -> SlidingWindow {
        SlidingWindow::Calls(max_calls)
    }
}

/// `min_calls`, if a count window can hold that many calls; else `message`.
pub const fn min_calls_within(min_calls: u32, window: SlidingWindow, message: &'static str) -> u32 {
    if let SlidingWindow::Calls(size) = window
        && min_calls > size
    {
        panic!("{}", message);
    }
    min_calls
}

/// `per`, if one permit of `rate` per `per` takes at least a nanosecond; else `message`.
pub const fn per_for_rate(rate: u32, per: Duration, message: &'static str) -> Duration {
    if per.as_nanos() < rate as u128 {
        panic!("{}", message);
    }
    per
}

/// `burst`, if `per / rate × burst` is at most `max_nanos`; else `message`.
pub const fn refill_at_most(
    rate: u32,
    per: Duration,
    burst: u32,
    max_nanos: u128,
    message: &'static str,
) -> u32 {
    let rate = if rate == 0 { 1 } else { rate };
    if per.as_nanos() / rate as u128 * burst as u128 > max_nanos {
        panic!("{}", message);
    }
    burst
}
