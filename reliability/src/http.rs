//! Classifying HTTP failures for a retry, with no HTTP client dependency: which statuses are worth
//! another attempt, and how long the service asked the caller to wait.
//!
//! ```
//! use std::time::Duration;
//! use reliability::http;
//!
//! // What a client saw: a 429 with the headers OpenAI and Anthropic send.
//! let status = 429;
//! let retry_after_ms = Some("1500");
//! let retry_after = Some("2");
//! assert!(http::is_transient(status, Some("rate_limit_exceeded")));
//! assert_eq!(http::parse_retry_after(retry_after_ms, retry_after), Some(Duration::from_millis(1500)));
//!
//! // Out of credits is a 429 too, but no retry will fix it.
//! assert!(!http::is_transient(429, Some("insufficient_quota")));
//! ```
//!
//! With a [`Retry`](crate::Retry), `is_transient` goes in [`RetryOn::errors`](crate::RetryOn::errors)
//! and `parse_retry_after` in [`RetryOn::retry_after`](crate::RetryOn::retry_after) (with the
//! attributes: `#[retry(when = ..., retry_after = ...)]`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `true` for the statuses a retry may fix, as the OpenAI and Anthropic SDKs retry them: 408
/// (request timeout), 409 (conflict, e.g. a lock), 429 (too many requests) and every 5xx.
///
/// ```
/// use reliability::http::is_transient_status;
/// assert!(is_transient_status(503));
/// assert!(is_transient_status(429));
/// assert!(!is_transient_status(400));
/// assert!(!is_transient_status(404));
/// ```
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500..=599)
}

/// The error code OpenAI sends with a 429 when the account is out of credits: waiting does not
/// help, so it is not transient.
pub const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// Like [`is_transient_status`], with what the service said about the error: `detail` is the
/// error code (OpenAI's `error.code` or `error.type`) or the raw response body. A 429 whose
/// detail mentions [`INSUFFICIENT_QUOTA`] is permanent: the quota is used up, not just busy.
///
/// ```
/// use reliability::http::is_transient;
/// assert!(is_transient(429, None));
/// assert!(is_transient(429, Some(r#"{"error":{"code":"rate_limit_exceeded"}}"#)));
/// assert!(!is_transient(429, Some(r#"{"error":{"type":"insufficient_quota"}}"#)));
/// assert!(is_transient(500, Some("insufficient_quota")), "only a 429 is read this way");
/// ```
pub fn is_transient(status: u16, detail: Option<&str>) -> bool {
    if status == 429 && detail.is_some_and(|detail| detail.contains(INSUFFICIENT_QUOTA)) {
        return false;
    }
    is_transient_status(status)
}

/// The delay a service asked for, from the values of its `retry-after-ms` and `Retry-After`
/// headers (pass `None` for a header that is absent).
///
/// `retry-after-ms` (milliseconds, possibly fractional, as OpenAI and Anthropic send it) is read
/// first; then `Retry-After`, as a number of seconds or an HTTP-date (IMF-fixdate, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`), which is compared to the system clock: a date in the past
/// asks for no wait. A value that cannot be read is ignored (`None`, or the other header).
///
/// ```
/// use std::time::Duration;
/// use reliability::http::parse_retry_after;
///
/// assert_eq!(parse_retry_after(Some("250.5"), Some("9")), Some(Duration::from_micros(250_500)));
/// assert_eq!(parse_retry_after(None, Some("2")), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after(None, Some("Sun, 06 Nov 1994 08:49:37 GMT")), Some(Duration::ZERO));
/// assert_eq!(parse_retry_after(Some("soon"), None), None);
/// ```
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(parse_millis) {
        return Some(ms);
    }
    let value = retry_after?.trim();
    if let Some(secs) = parse_seconds(value) {
        return Some(secs);
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A non-negative, finite number of milliseconds.
fn parse_millis(value: &str) -> Option<Duration> {
    let ms: f64 = value.trim().parse().ok()?;
    duration_from_secs(ms / 1000.0)
}

/// A non-negative, finite number of seconds (`Retry-After` says an integer; fractions are read
/// too, as the SDKs do).
fn parse_seconds(value: &str) -> Option<Duration> {
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    duration_from_secs(value.parse().ok()?)
}

fn duration_from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

/// An IMF-fixdate (RFC 9110, section 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let b = value.trim().as_bytes();
    // "Www, DD Mmm YYYY HH:MM:SS GMT" is exactly 29 bytes.
    if b.len() != 29
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..] != b" GMT"
    {
        return None;
    }
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let weekday = DAYS.iter().position(|d| &b[..3] == *d)?;
    let day = digits(&b[5..7])?;
    let month = MONTHS.iter().position(|m| &b[8..11] == *m)? as u64 + 1;
    let year = digits(&b[12..16])?;
    let (hour, minute, second) = (
        digits(&b[17..19])?,
        digits(&b[20..22])?,
        digits(&b[23..25])?,
    );
    // Second 60 is a leap second, which the date form allows.
    if year < 1970
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3 from Monday); a wrong weekday is a malformed date.
    if (days + 3) % 7 != weekday as u64 {
        return None;
    }
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn digits(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (year >= 1970), by Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{is_transient, is_transient_status, parse_http_date, parse_retry_after};

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn statuses_the_sdks_retry() {
        for status in [408, 409, 429, 500, 502, 503, 504, 529, 599] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [200, 301, 400, 401, 403, 404, 422, 600] {
            assert!(!is_transient_status(status), "{status}");
        }
        assert!(!is_transient(429, Some("insufficient_quota")));
        assert!(is_transient(429, Some("rate_limit_exceeded")));
        assert!(!is_transient(400, None));
    }

    #[test]
    fn imf_fixdates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), at(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            at(784_111_777)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            at(951_825_600)
        );
        assert_eq!(
            parse_http_date("Wed, 01 Jan 2025 00:00:00 GMT"),
            at(1_735_689_600)
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 2100 23:59:59 GMT"),
            at(4_133_980_799)
        );
        assert_eq!(
            parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT "),
            at(784_111_777)
        );
    }

    #[test]
    fn malformed_dates_are_none() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Mon, 29 Feb 1900 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Xyz 1994 08:49:37 GMT",
            "Sun, 0a Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Wed, 31 Dec 1969 23:59:59 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn headers_in_order() {
        let ms = Duration::from_millis;
        assert_eq!(parse_retry_after(Some("1500"), Some("9")), Some(ms(1500)));
        assert_eq!(
            parse_retry_after(Some(" 0.5 "), None),
            Some(Duration::from_micros(500))
        );
        assert_eq!(
            parse_retry_after(Some("-1"), Some("3")),
            Some(ms(3000)),
            "a bad ms header falls back"
        );
        assert_eq!(parse_retry_after(Some("NaN"), None), None);
        assert_eq!(parse_retry_after(Some("inf"), None), None);
        assert_eq!(parse_retry_after(None, Some("0")), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(None, Some("1.5")), Some(ms(1500)));
        assert_eq!(parse_retry_after(None, Some("-5")), None);
        assert_eq!(parse_retry_after(None, Some("")), None);
        assert_eq!(parse_retry_after(None, None), None);
    }

    #[test]
    fn a_date_is_a_wait_from_now() {
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let secs = in_a_minute.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let header = format_http_date(secs);
        assert_eq!(parse_http_date(&header), at(secs));
        let wait = parse_retry_after(None, Some(&header)).unwrap();
        // Whole seconds in the header, and the clock moves on between the two reads.
        assert!(
            wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after(None, Some("Thu, 01 Jan 1970 00:00:00 GMT")),
            Some(Duration::ZERO)
        );
    }

    /// The inverse of the parser, for the tests: a date by Hinnant's `civil_from_days`.
    fn format_http_date(secs: u64) -> String {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
            months[(month - 1) as usize],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}
