//! Properties of the argument parser and of duration parsing, over generated input: the macros never
//! panic, whatever tokens they are given, and answer every invalid input with a `compile_error!`;
//! every documented duration form parses to its value, and the rest is rejected.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use proptest::prelude::*;
use quote::quote;

use crate::duration::{parse_duration_str, parse_seconds};
use crate::entry;
use crate::kind::Kind;

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// Identifiers: every option name and alias, keywords, and made-up names.
fn ident() -> impl Strategy<Value = Ident> {
    let mut known: Vec<&'static str> = vec![
        "self",
        "Self",
        "fn",
        "async",
        "move",
        "crate",
        "super",
        "await",
        "r",
        "_",
        "x",
        "key",
        "query",
        "retry",
        "timeout",
        "circuit_breaker",
        "cached",
        "fallback",
        "reliability",
    ];
    for kind in Kind::ALL {
        known.extend(kind.options());
        known.extend(kind.aliases().iter().map(|(alias, _)| *alias));
    }
    prop_oneof![
        prop::sample::select(known).prop_map(str::to_owned),
        "[a-z][a-z0-9_]{0,8}",
    ]
    .prop_map(|name| Ident::new(&name, Span::call_site()))
}

fn punct() -> impl Strategy<Value = Punct> {
    (
        prop::sample::select(vec![
            ',', '=', ';', ':', '-', '.', '#', '!', '&', '|', '<', '>', '\'', '*', '+', '/', '?',
            '@', '^', '%', '~', '$',
        ]),
        any::<bool>(),
    )
        .prop_map(|(ch, joint)| {
            Punct::new(
                ch,
                if joint {
                    Spacing::Joint
                } else {
                    Spacing::Alone
                },
            )
        })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<u64>().prop_map(Literal::u64_unsuffixed),
        any::<u32>().prop_map(Literal::u32_suffixed),
        any::<i64>().prop_map(Literal::i64_unsuffixed),
        (0u8..4).prop_map(Literal::u8_unsuffixed),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Literal::f64_unsuffixed),
        (0.0f32..100.0).prop_map(Literal::f32_suffixed),
        any::<String>().prop_map(|s| Literal::string(&s)),
        "[0-9 .a-zµ_-]{0,12}".prop_map(|s| Literal::string(&s)),
        prop::sample::select(vec![
            "250ms",
            "1m30s",
            "1h 30m",
            "0.5s",
            "10us",
            "2d",
            "",
            "ms",
            "-1s",
            "1e3s",
            "fixed",
            "linear",
            "exponential",
            "none",
            "full",
            "equal",
            "decorrelated",
            "gpt4",
        ])
        .prop_map(Literal::string),
        any::<char>().prop_map(Literal::character),
        any::<Vec<u8>>().prop_map(|b| Literal::byte_string(&b)),
    ]
}

/// Arbitrary token trees, nested in groups of every delimiter.
fn tokens() -> impl Strategy<Value = TokenStream> {
    let leaf = prop_oneof![
        3 => ident().prop_map(TokenTree::Ident),
        3 => punct().prop_map(TokenTree::Punct),
        2 => literal().prop_map(TokenTree::Literal),
    ];
    let tree = leaf.prop_recursive(3, 48, 6, |inner| {
        (
            prop::sample::select(vec![
                Delimiter::Parenthesis,
                Delimiter::Brace,
                Delimiter::Bracket,
                Delimiter::None,
            ]),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(delimiter, trees)| {
                TokenTree::Group(Group::new(delimiter, trees.into_iter().collect()))
            })
    });
    prop::collection::vec(tree, 0..12).prop_map(|trees| trees.into_iter().collect())
}

/// Token streams shaped like options, `key = value, ...`, so that the parser gets past the first
/// comma often.
fn option_like() -> impl Strategy<Value = TokenStream> {
    let value = prop_oneof![
        literal().prop_map(|l| quote!(#l)),
        literal().prop_map(|l| quote!(-#l)),
        ident().prop_map(|i| quote!(#i)),
        tokens(),
    ];
    prop::collection::vec((ident(), value, any::<bool>()), 0..6).prop_map(|options| {
        options
            .into_iter()
            .map(|(key, value, with_value)| {
                if with_value {
                    quote!(#key = #value,)
                } else {
                    quote!(#key,)
                }
            })
            .collect()
    })
}

fn item() -> TokenStream {
    quote! {
        async fn f(query: String) -> Result<String, Error> {
            Ok(query)
        }
    }
}

/// Runs the macro, failing the test if it panics.
fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    match catch_unwind(AssertUnwindSafe(|| {
        entry::attribute(kind, args.clone(), item.clone())
    })) {
        Ok(out) => out,
        Err(_) => panic!("#[{kind}({args})] panicked on {item}"),
    }
}

fn has_error(out: &TokenStream) -> bool {
    out.to_string().contains("compile_error")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any arguments: no panic, and the output is items the compiler can read.
    #[test]
    fn any_arguments_never_panic(kind in kind(), args in prop_oneof![tokens(), option_like()]) {
        let out = expand(kind, args, item());
        prop_assert!(syn::parse2::<syn::File>(out.clone()).is_ok(), "unparsable output: {out}");
    }

    /// Any item: no panic, whatever the attribute is put on.
    #[test]
    fn any_item_never_panics(kind in kind(), item in tokens(), args in option_like()) {
        expand(kind, args, item);
    }

    /// An option the attribute does not have is an error.
    #[test]
    fn an_unknown_option_is_an_error(kind in kind(), key in ident(), value in literal()) {
        prop_assume!(!kind.options().contains(&key.to_string().as_str()));
        prop_assert!(has_error(&expand(kind, quote!(#key = #value), item())));
    }

    /// An option given twice is an error.
    #[test]
    fn a_repeated_option_is_an_error(kind in kind(), index in any::<prop::sample::Index>()) {
        let options = kind.options();
        let key = Ident::new(options[index.index(options.len())], Span::call_site());
        let value = match key.to_string().as_str() {
            "backoff" => quote!("fixed"),
            "jitter" => quote!("none"),
            "name" => quote!("n"),
            "when" => quote!(|_| true),
            "key" => quote!(query.clone()),
            _ => quote!(1),
        };
        prop_assert!(has_error(&expand(kind, quote!(#key = #value, #key = #value), item())));
    }

    /// A number where a duration, count or choice is expected must be in range; negative numbers,
    /// zero counts and unknown choices are errors.
    #[test]
    fn out_of_range_values_are_errors(kind in kind(), index in any::<prop::sample::Index>(), n in any::<u32>()) {
        let options = kind.options();
        let name = options[index.index(options.len())];
        let key = Ident::new(name, Span::call_site());
        let negative = Literal::u32_unsuffixed(n.max(1));
        match name {
            "max" | "failure_threshold" | "success_threshold" | "max_size" => {
                prop_assert!(has_error(&expand(kind, quote!(#key = 0), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = -#negative), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = "3"), item())));
            }
            "delay" | "max_delay" | "cooldown" | "secs" | "ttl" | "tti" => {
                prop_assert!(has_error(&expand(kind, quote!(#key = -#negative), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = "3 parsecs"), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = "1e999s"), item())));
            }
            "backoff" | "jitter" => {
                prop_assert!(has_error(&expand(kind, quote!(#key = "sometimes"), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = #negative), item())));
            }
            "multiplier" => {
                prop_assert!(has_error(&expand(kind, quote!(#key = 1.0), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = "2"), item())));
            }
            "name" => {
                prop_assert!(has_error(&expand(kind, quote!(#key = ""), item())));
                prop_assert!(has_error(&expand(kind, quote!(#key = #negative), item())));
            }
            _ => {}
        }
    }
}

// Durations.

const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// A decimal number as written (`12`, `1.5`, `.25`, `1_000`) and its value as `(digits, fraction
/// digits)`: the number is `digits / 10^fraction`.
fn decimal() -> impl Strategy<Value = (String, u128, u32)> {
    (
        0u64..100_000,
        prop::option::of("[0-9]{1,4}"),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(whole, fraction, underscore, bare_point)| {
            let whole_text = if underscore && whole >= 1000 {
                format!("{}_{:03}", whole / 1000, whole % 1000)
            } else {
                whole.to_string()
            };
            match fraction {
                Some(f) => {
                    let text = if bare_point && whole == 0 {
                        format!(".{f}")
                    } else {
                        format!("{whole_text}.{f}")
                    };
                    let digits: u128 = format!("{whole}{f}").parse().unwrap();
                    (text, digits, f.len() as u32)
                }
                None => (whole_text, u128::from(whole), 0),
            }
        })
}

/// The value in nanoseconds, rounded down as documented.
fn nanos(digits: u128, fraction: u32, scale: u128) -> u128 {
    digits * scale / 10u128.pow(fraction)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// `"<number><unit>"` pieces, with or without spaces between them, add up.
    #[test]
    fn every_documented_duration_string_parses(
        pieces in prop::collection::vec((decimal(), 0usize..UNITS.len(), any::<bool>()), 1..5),
        padding in any::<bool>(),
    ) {
        let mut text = String::new();
        let mut expected = 0u128;
        for ((number, digits, fraction), unit, space) in pieces {
            let (unit, scale) = UNITS[unit];
            text.push_str(&number);
            if space {
                text.push(' ');
            }
            text.push_str(unit);
            if space {
                text.push(' ');
            }
            expected += nanos(digits, fraction, scale);
        }
        if padding {
            text = format!("  {text} ");
        }
        match u64::try_from(expected) {
            Ok(expected) => prop_assert_eq!(parse_duration_str(&text), Ok(expected), "{:?}", text),
            Err(_) => prop_assert!(parse_duration_str(&text).is_err(), "too long: {:?}", text),
        }
    }

    /// A number of seconds parses to its value, with an exponent too.
    #[test]
    fn every_number_of_seconds_parses((number, digits, fraction) in decimal(), exponent in -9i32..=6) {
        let expected = nanos(digits, fraction, 1_000_000_000);
        prop_assert_eq!(parse_seconds(&number), Ok(expected as u64));
        let scaled = if exponent >= 0 {
            expected * 10u128.pow(exponent as u32)
        } else {
            digits * 1_000_000_000 / 10u128.pow(fraction + exponent.unsigned_abs())
        };
        let text = format!("{number}e{exponent}");
        match u64::try_from(scaled) {
            Ok(scaled) => prop_assert_eq!(parse_seconds(&text), Ok(scaled), "{}", text),
            Err(_) => prop_assert!(parse_seconds(&text).is_err(), "too long: {}", text),
        }
    }

    /// Strings that break the grammar are errors: no unit, an unknown unit, a sign, a unit with no
    /// number, a stray character, or too long to hold.
    #[test]
    fn everything_else_is_rejected(
        (number, _, _) in decimal(),
        unit in 0usize..UNITS.len(),
        bad_unit in "[a-zA-Z]{1,6}",
        stray in prop::sample::select(vec!['!', ',', '/', '+', '-', '(', '#', ':', '\'', '"', '%']),
        at in any::<prop::sample::Index>(),
    ) {
        let (unit, _) = UNITS[unit];
        let good = format!("{number}{unit}");
        prop_assert!(parse_duration_str(&good).is_ok());
        let rejected = |text: String| parse_duration_str(&text).is_err();
        prop_assert!(rejected(number.clone()), "no unit");
        prop_assert!(rejected(unit.to_owned()), "no number");
        prop_assert!(rejected(format!("{good}{unit}")), "unit twice");
        prop_assert!(rejected(format!("-{good}")), "a sign");
        prop_assert!(rejected(format!("+{good}")), "a sign");
        prop_assert!(rejected("600000d".to_owned()), "too long");
        prop_assert!(rejected(format!("{}ns", u128::from(u64::MAX) + 1)), "too long");
        let chars: Vec<char> = good.chars().collect();
        let i = at.index(chars.len() + 1);
        let mut broken: String = chars[..i].iter().collect();
        broken.push(stray);
        broken.extend(&chars[i..]);
        prop_assert!(rejected(broken.clone()), "stray character: {:?}", broken);
        let seconds_with_stray = format!("{number}{stray}");
        prop_assert!(parse_seconds(&seconds_with_stray).is_err());
        prop_assert!(parse_seconds(&good).is_err());
        prop_assume!(!UNITS.iter().any(|(u, _)| *u == bad_unit));
        prop_assert!(rejected(format!("{number}{bad_unit}")), "unknown unit {:?}", bad_unit);
    }

    /// Any string at all: an answer, never a panic.
    #[test]
    fn any_string_never_panics(text in any::<String>(), structured in "[0-9._eE µsnumhd+-]{0,16}") {
        let _ = parse_duration_str(&text);
        let _ = parse_seconds(&text);
        let _ = parse_duration_str(&structured);
        let _ = parse_seconds(&structured);
    }
}
