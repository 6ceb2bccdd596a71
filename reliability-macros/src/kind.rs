//! The attributes and their options: ONE table per attribute (in `attrs/<attribute>.rs`), read by
//! the parser, the did-you-mean suggestions, the value hints of messages, and a test that checks the
//! options tables of the docs against it.

use std::fmt;

use crate::attrs;

/// One of our attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Retry,
    Timeout,
    CircuitBreaker,
    Cache,
    Fallback,
    RateLimit,
    Bulkhead,
    Hedge,
}

/// One option of an attribute.
pub(crate) struct Opt {
    /// The option's name: `max`.
    pub(crate) name: &'static str,
    /// A complete example, for messages: `max = 3`.
    pub(crate) example: &'static str,
    /// The default as the docs' options table states it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) default: &'static str,
    /// Names other libraries (resilience4j, Polly, tower, backon, cached, the seeds) use for it.
    pub(crate) aliases: &'static [&'static str],
    /// Written alone, without a value (`shared`).
    pub(crate) flag: bool,
}

impl Opt {
    /// An option written alone, without a value.
    pub(crate) const fn flag(
        name: &'static str,
        default: &'static str,
        aliases: &'static [&'static str],
    ) -> Self {
        Opt {
            name,
            example: name,
            default,
            aliases,
            flag: true,
        }
    }

    /// An option with a value.
    pub(crate) const fn new(
        name: &'static str,
        example: &'static str,
        default: &'static str,
        aliases: &'static [&'static str],
    ) -> Self {
        Opt {
            name,
            example,
            default,
            aliases,
            flag: false,
        }
    }
}

/// What a stack needs to know about an attribute.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) options: &'static [Opt],
    /// It acts on `Err`: the function must return a `Result`.
    pub(crate) needs_result: bool,
    /// It calls the layer below more than once per call, so the arguments are handed out afresh.
    pub(crate) reuses_args: bool,
    /// Its options table, for the docs check.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) docs: &'static str,
}

impl Kind {
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Retry,
        Kind::Timeout,
        Kind::CircuitBreaker,
        Kind::Cache,
        Kind::Fallback,
        Kind::RateLimit,
        Kind::Bulkhead,
        Kind::Hedge,
    ];

    /// The attribute's row of the table.
    pub(crate) fn spec(self) -> &'static Spec {
        match self {
            Kind::Retry => &attrs::retry::SPEC,
            Kind::Timeout => &attrs::timeout::SPEC,
            Kind::CircuitBreaker => &attrs::circuit_breaker::SPEC,
            Kind::Cache => &attrs::cached::SPEC,
            Kind::Fallback => &attrs::fallback::SPEC,
            Kind::RateLimit => &attrs::rate_limit::SPEC,
            Kind::Bulkhead => &attrs::bulkhead::SPEC,
            Kind::Hedge => &attrs::hedge::SPEC,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        self.spec().name
    }

    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The option names.
    pub(crate) fn options(self) -> Vec<&'static str> {
        self.spec().options.iter().map(|o| o.name).collect()
    }

    /// The option named `name`.
    pub(crate) fn option(self, name: &str) -> Option<&'static Opt> {
        self.spec().options.iter().find(|o| o.name == name)
    }

    /// `(alias, option)` for every name another library uses.
    pub(crate) fn aliases(self) -> Vec<(&'static str, &'static str)> {
        self.spec()
            .options
            .iter()
            .flat_map(|o| o.aliases.iter().map(move |alias| (*alias, o.name)))
            .collect()
    }

    /// ` (options: a, b)` for messages.
    pub(crate) fn options_hint(self) -> String {
        format!(" (options: {})", crate::suggest::list(&self.options()))
    }

    /// An example value for `key`, for messages.
    pub(crate) fn value_hint(self, key: &str) -> String {
        self.option(key)
            .map_or_else(String::new, |o| format!(", e.g. `{}`", o.example))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the first options table of an attribute's docs: `(option form, default)`.
    fn docs_rows(docs: &str) -> Vec<(String, String)> {
        docs.lines()
            .skip_while(|l| !l.starts_with("| option"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
                (
                    cells[0].trim().to_owned(),
                    cells[cells.len() - 1].trim().to_owned(),
                )
            })
            .collect()
    }

    /// Every option of the table is in the docs' options table with the same default, and the docs
    /// list no option the macro does not accept.
    #[test]
    fn the_docs_tables_match_the_option_tables() {
        for kind in Kind::ALL {
            let spec = kind.spec();
            let rows = docs_rows(spec.docs);
            let documented: Vec<String> = rows
                .iter()
                .filter_map(|(form, _)| {
                    let name = form.trim_matches('`').split([' ', '=']).next()?;
                    name.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_')
                        .then(|| name.to_owned())
                })
                .filter(|name| !name.is_empty())
                .collect();
            let ours: Vec<String> = spec.options.iter().map(|o| o.name.to_owned()).collect();
            assert_eq!(
                documented, ours,
                "#[{kind}]: the options, in the docs' order"
            );
            for option in spec.options {
                let (_, default) = rows
                    .iter()
                    .find(|(form, _)| {
                        form.trim_matches('`').split([' ', '=']).next() == Some(option.name)
                    })
                    .unwrap();
                assert_eq!(
                    default, option.default,
                    "#[{kind}({})]: the default",
                    option.name
                );
            }
        }
    }

    /// Aliases never shadow an option, and no alias maps to two options.
    #[test]
    fn aliases_are_unambiguous() {
        for kind in Kind::ALL {
            let options = kind.options();
            let aliases = kind.aliases();
            for (alias, _) in &aliases {
                assert!(
                    !options.contains(alias),
                    "#[{kind}]: `{alias}` is an option"
                );
                assert_eq!(
                    aliases.iter().filter(|(a, _)| a == alias).count(),
                    1,
                    "{alias}"
                );
            }
        }
    }

    /// The macro's defaults are the runtime's.
    #[test]
    fn the_defaults_are_the_runtimes() {
        use crate::attrs::{cached, circuit_breaker, retry};
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap();
        let policy = reliability::RetryPolicy::DEFAULT;
        assert_eq!(retry::DEFAULT_MAX, policy.max_attempts());
        assert_eq!(
            retry::DEFAULT_DELAY,
            nanos(policy.schedule().initial_delay())
        );
        assert_eq!(
            retry::DEFAULT_MAX_DELAY,
            nanos(policy.schedule().max_delay())
        );
        assert_eq!(
            reliability::Backoff::Exponential {
                multiplier: retry::DEFAULT_MULTIPLIER
            },
            policy.schedule().backoff()
        );
        let breaker = reliability::BreakerConfig::DEFAULT;
        assert_eq!(
            Some(circuit_breaker::DEFAULT_FAILURE_THRESHOLD),
            breaker.failure_threshold()
        );
        assert_eq!(
            circuit_breaker::DEFAULT_SUCCESS_THRESHOLD,
            breaker.success_threshold()
        );
        assert_eq!(circuit_breaker::DEFAULT_COOLDOWN, nanos(breaker.cooldown()));
        assert_eq!(
            cached::DEFAULT_MAX_SIZE,
            reliability::CacheConfig::DEFAULT.max_size()
        );
    }

    /// Every message a `compile_fail` example of the docs quotes (`// error: ...`) is the one the
    /// macro produces for that example.
    #[test]
    fn the_docs_quote_the_messages_the_macros_produce() {
        let mut checked = 0;
        for kind in Kind::ALL {
            let docs = kind.spec().docs;
            for block in docs.split("```compile_fail\n").skip(1) {
                let code = block.split("```").next().unwrap_or_default();
                let Some(quoted) = code
                    .lines()
                    .find_map(|l| l.split_once("// error: ").map(|(_, m)| m))
                else {
                    continue;
                };
                let quoted = quoted.trim_end_matches('…').trim();
                let code: String = code
                    .lines()
                    .map(|l| l.split_once("// ").map_or(l, |(code, _)| code))
                    .collect::<Vec<_>>()
                    .join("\n");
                let file: syn::File = syn::parse_str(&code).unwrap();
                let mut found = false;
                for item in file.items {
                    let syn::Item::Fn(mut function) = item else {
                        continue;
                    };
                    let Some(at) = function.attrs.iter().position(|a| {
                        a.path()
                            .segments
                            .last()
                            .is_some_and(|s| s.ident == kind.name())
                    }) else {
                        continue;
                    };
                    let attr = function.attrs.remove(at);
                    let args = match &attr.meta {
                        syn::Meta::List(list) => list.tokens.clone(),
                        _ => proc_macro2::TokenStream::new(),
                    };
                    let out = crate::entry::attribute(kind, args, quote::quote!(#function));
                    let shown = out.to_string().replace("\\\"", "\"");
                    assert!(
                        shown.contains(quoted),
                        "#[{kind}]: the docs quote {quoted:?}; the macro says {shown}"
                    );
                    found = true;
                }
                assert!(
                    found,
                    "#[{kind}]: no annotated fn in a compile_fail example"
                );
                checked += 1;
            }
        }
        assert!(checked >= 3, "{checked} quoted messages");
    }
}
