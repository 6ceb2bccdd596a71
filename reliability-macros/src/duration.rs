//! Duration values: a number of seconds (`30`, `0.25`) or a string with units (`"250ms"`, `"1m30s"`).

/// Nanoseconds in one of each unit a duration string may use.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// The longest duration accepted: about 584 years, what `u64` nanoseconds hold.
const MAX_NANOS: u128 = u64::MAX as u128;

/// Parses a decimal number of seconds such as `30`, `0.25` or `1e3` into nanoseconds.
pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    let text = text.replace('_', "");
    let nanos = parse_decimal(&text, 1_000_000_000)
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))?;
    u64::try_from(nanos).map_err(|_| "is too long (at most about 584 years)".to_owned())
}

/// `value × scale` for a plain decimal `value` (digits, an optional fraction, an optional exponent),
/// rounded down to an integer; `None` for anything else or on overflow.
fn parse_decimal(value: &str, scale: u128) -> Option<u128> {
    let (mantissa, exponent) = match value.find(['e', 'E']) {
        Some(at) => (&value[..at], value[at + 1..].parse::<i32>().ok()?),
        None => (value, 0),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, f),
        None => (mantissa, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // digits × 10^(exponent - fraction digits) × scale
    let digits: String = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let mut value: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    value = value.checked_mul(scale)?;
    let shift = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    if shift >= 0 {
        for _ in 0..shift {
            value = value.checked_mul(10)?;
            if value > MAX_NANOS * 10 {
                return None;
            }
        }
    } else {
        for _ in 0..shift.unsigned_abs().min(60) {
            value /= 10;
        }
    }
    Some(value)
}

/// Parses a duration string such as `"250ms"`, `"1.5s"`, `"1m30s"` or `"1h 30m"` into nanoseconds.
pub(crate) fn parse_duration_str(text: &str) -> Result<u64, String> {
    const HELP: &str = "write a number followed by a unit (ns, us, ms, s, m, h, d), e.g. \"250ms\", \"1.5s\" or \"1m30s\"";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration; {HELP}"));
    }
    let mut rest = trimmed;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!(
                "`{text}` is not a duration: expected a number at `{rest}`; {HELP}"
            ));
        }
        let number = rest[..number_len].replace('_', "");
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!(
                "`{text}` is missing a unit after `{number}`; {HELP}"
            ));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("`{unit}` is not a unit in `{text}`; {HELP}"));
        };
        let nanos = parse_decimal(&number, scale)
            .ok_or_else(|| format!("`{number}` is not a number in `{text}`; {HELP}"))?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or("is too long (at most about 584 years)")?;
        rest = &rest[unit_len..];
    }
    u64::try_from(total).map_err(|_| "is too long (at most about 584 years)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("30"), Ok(30 * S));
        assert_eq!(parse_seconds("0.25"), Ok(S / 4));
        assert_eq!(parse_seconds("1_000"), Ok(1000 * S));
        assert_eq!(parse_seconds("1e-3"), Ok(S / 1000));
        assert!(parse_seconds("1e30").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(parse_duration_str("250ms"), Ok(S / 4));
        assert_eq!(parse_duration_str("1m30s"), Ok(90 * S));
        assert_eq!(parse_duration_str("1h 30m"), Ok(5400 * S));
        assert_eq!(parse_duration_str("1.5s"), Ok(3 * S / 2));
        assert_eq!(parse_duration_str("10us"), Ok(10_000));
        assert_eq!(parse_duration_str("2d"), Ok(2 * 86_400 * S));
        for bad in [
            "",
            "ms",
            "10",
            "10 parsecs",
            "1.2.3s",
            "-1s",
            "s10",
            "1m30",
            "99999999999999999999999d",
        ] {
            assert!(
                parse_duration_str(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
