//! Where an attribute stands: the annotated function and its instantiation, which name the policies
//! its attributes make and key their state (each instantiation of a generic function, and each
//! implementation of a trait's default method, has policies of its own).

use std::fmt;

/// The annotated function, as the expansion describes it: the path of an item declared in its body
/// (`app::llm::ask::{{closure}}::__reliability_site`, or
/// `<app::Client as app::Ask>::ask::{{closure}}::__reliability_site` in a trait impl), and for a
/// method or a generic function the instantiation, `type_name::<fn(&Self, &T, ...)>()`.
///
/// Its name, the default registry name of the function's policies:
///
/// | function | name |
/// |---|---|
/// | `fn ask` in `app::llm` | `app::llm::ask` |
/// | `fn ask<T>`, `T = u8` | `app::llm::ask::<u8>` |
/// | method of `impl Client` | `app::Client::ask` |
/// | method of `impl Ask for Client` | `<app::Client as app::Ask>::ask` |
/// | method of `impl<T> Pool<T>`, `T = u8` | `app::Pool<u8>::ask` |
/// | default method of `trait Ask`, for `Client` | `<app::Client as app::Ask>::ask` |
#[derive(Debug, Clone, Copy)]
pub struct Site {
    path: &'static str,
    instance: &'static str,
    method: bool,
}

impl Site {
    /// A free function; `instance` is `""` unless it is generic.
    #[inline(always)]
    pub const fn function(path: &'static str, instance: &'static str) -> Self {
        Site {
            path,
            instance,
            method: false,
        }
    }

    /// A method: `instance` starts with `Self`.
    #[inline(always)]
    pub const fn method(path: &'static str, instance: &'static str) -> Self {
        Site {
            path,
            instance,
            method: true,
        }
    }

    /// The fields, to pass to a cold path in registers rather than through memory.
    #[inline(always)]
    pub(crate) fn parts(self) -> (&'static str, &'static str, bool) {
        (self.path, self.instance, self.method)
    }

    /// The site of [`parts`](Self::parts).
    pub(crate) fn from_parts(path: &'static str, instance: &'static str, method: bool) -> Self {
        Site {
            path,
            instance,
            method,
        }
    }

    /// The key of the instantiation.
    #[inline(always)]
    pub(crate) fn instance(&self) -> &'static str {
        self.instance
    }

    /// The default registry name of the function's policies (see the type's table).
    pub(crate) fn name(&self) -> String {
        let mut path = self
            .path
            .strip_suffix("::__reliability_site")
            .unwrap_or(self.path);
        // The body of an `async fn` is a coroutine: its items are nested in it.
        while let Some(outer) = path.strip_suffix("::{{closure}}") {
            path = outer;
        }
        let mut types = instance_types(self.instance);
        let self_ty = if self.method && !types.is_empty() {
            Some(types.remove(0))
        } else {
            None
        };
        let (prefix, function) = path.rsplit_once("::").unwrap_or(("", path));
        let mut name = match self_ty {
            // A free function, or a method whose path names its type already.
            None => path.to_owned(),
            Some(ty) if prefix == ty || prefix.starts_with(&format!("<{ty} as ")) => {
                path.to_owned()
            }
            // A trait impl for a generic type: `<Pool<_> as Ask>`.
            Some(ty) if prefix.starts_with('<') => match prefix.find(" as ") {
                Some(at) => format!("<{ty}{}::{function}", &prefix[at..]),
                None => format!("{ty}::{function}"),
            },
            // A generic type's inherent method: `Pool<_>`.
            Some(ty) if prefix.contains('<') => format!("{ty}::{function}"),
            // A trait's default method: the path is the trait's.
            Some(ty) => format!("<{ty} as {prefix}>::{function}"),
        };
        if !types.is_empty() {
            name.push_str("::<");
            name.push_str(&types.join(", "));
            name.push('>');
        }
        name
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The types of `fn(&'_ A, &'_ B<C, D>)`: `["A", "B<C, D>"]`.
fn instance_types(instance: &str) -> Vec<&str> {
    let Some(inner) = instance
        .strip_prefix("fn(")
        .and_then(|s| s.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut types = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                types.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    types.push(&inner[start..]);
    types
        .into_iter()
        .map(|t| {
            let t = t.trim();
            t.strip_prefix("&'_ ")
                .or_else(|| t.strip_prefix('&'))
                .unwrap_or(t)
                .trim()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Site;

    #[test]
    fn names_follow_the_table() {
        let cases = [
            (
                Site::function("app::llm::ask::{{closure}}::__reliability_site", ""),
                "app::llm::ask",
            ),
            (
                Site::function(
                    "app::llm::ask::{{closure}}::__reliability_site",
                    "fn(&'_ u8)",
                ),
                "app::llm::ask::<u8>",
            ),
            (
                Site::method(
                    "app::Client::ask::{{closure}}::__reliability_site",
                    "fn(&'_ app::Client)",
                ),
                "app::Client::ask",
            ),
            (
                Site::method(
                    "<app::Client as app::Ask>::ask::{{closure}}::__reliability_site",
                    "fn(&'_ app::Client)",
                ),
                "<app::Client as app::Ask>::ask",
            ),
            (
                Site::method(
                    "app::Pool<_>::ask::{{closure}}::__reliability_site",
                    "fn(&'_ app::Pool<u8>)",
                ),
                "app::Pool<u8>::ask",
            ),
            (
                Site::method(
                    "app::Ask::ask::{{closure}}::__reliability_site",
                    "fn(&'_ app::Client)",
                ),
                "<app::Client as app::Ask>::ask",
            ),
            (
                Site::method(
                    "app::Client::get::{{closure}}::__reliability_site",
                    "fn(&'_ app::Client, &'_ std::collections::HashMap<u8, (u8, u16)>)",
                ),
                "app::Client::get::<std::collections::HashMap<u8, (u8, u16)>>",
            ),
        ];
        for (site, name) in cases {
            assert_eq!(site.name(), name);
        }
    }
}
