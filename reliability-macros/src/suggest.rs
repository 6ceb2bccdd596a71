//! "Did you mean" suggestions for misspelt or renamed option names and values.

/// Edit distance between two short strings.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// The candidate closest to `input`, if close enough to be a typo; `aliases` maps names used by other
/// libraries to ours and is consulted first.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: &[&'a str],
    aliases: &[(&str, &'a str)],
) -> Option<&'a str> {
    let lower = input.to_lowercase();
    if let Some((_, ours)) = aliases.iter().find(|(alias, _)| *alias == lower) {
        return Some(ours);
    }
    if lower.len() >= 3
        && let Some(prefixed) = candidates.iter().find(|c| c.starts_with(&lower))
    {
        return Some(prefixed);
    }
    candidates
        .iter()
        .map(|c| (levenshtein(&lower, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(lower.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a`, `b` and `c`, each in backticks.
pub(crate) fn list(candidates: &[&str]) -> String {
    let quoted: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_aliases() {
        let options = ["max", "backoff", "delay", "max_delay"];
        assert_eq!(did_you_mean("bakoff", &options, &[]), Some("backoff"));
        assert_eq!(did_you_mean("max_dealy", &options, &[]), Some("max_delay"));
        assert_eq!(
            did_you_mean("attempts", &options, &[("attempts", "max")]),
            Some("max")
        );
        assert_eq!(did_you_mean("colour", &options, &[]), None);
        assert_eq!(list(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
