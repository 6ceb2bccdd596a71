//! The check of `ui/fail_annotated`: every case is compiled once, as one binary each of a small
//! crate that depends on `reliability`, by `cargo check --message-format=json`; the diagnostics
//! are then matched against the `//~` comments in the case.
//!
//! A comment `//~^ ERROR: text` expects an error whose primary span starts one line above it (each
//! further `^` is one more line up; `//~ ERROR` with no `^` is its own line) and whose message
//! contains `text`. `ERROR[E0277]` also requires that error code, and the text may then be left
//! out. The comments `//~|` after it add to the same expectation, on the same error:
//!
//! - `//~| LABEL: text`: a label of the primary span contains `text`;
//! - `//~| NOTE: text`: a note of the error contains `text`;
//! - `//~| SPAN: text`: the primary span covers exactly `text`;
//! - `//~| ALONE`: no other error starts on that line (the mistake is reported once).
//!
//! A case passes when every expectation is met by one of its errors, every error it has starts on
//! a line that an `ERROR` names (rustc may say more there, in any words), and it has no warning.
//! The crate lives in the target directory (`tmp/ui_annotated`, with its own `target/`): its
//! first build checks `reliability` and its dependencies once, later runs only the cases.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use serde_json::Value;

/// The crate the cases are compiled in, and its target directory (kept between runs).
const PROJECT: &str = "ui_annotated";

/// What one `//~^ ERROR` comment, and the `//~|` comments after it, expect of one error.
#[derive(Debug)]
struct Expected {
    /// The line of the comment, for the report.
    at: usize,
    /// The line the error's primary span starts on.
    line: usize,
    code: Option<String>,
    message: Option<String>,
    labels: Vec<String>,
    notes: Vec<String>,
    span: Option<String>,
    /// No other error may start on `line`.
    alone: bool,
}

impl Expected {
    fn is_met_by(&self, d: &Diagnostic) -> bool {
        d.level == "error"
            && d.line == Some(self.line)
            && self
                .code
                .as_ref()
                .is_none_or(|c| d.code.as_ref() == Some(c))
            && self.message.as_ref().is_none_or(|m| d.message.contains(m))
            && self
                .labels
                .iter()
                .all(|l| d.labels.iter().any(|x| x.contains(l)))
            && self
                .notes
                .iter()
                .all(|n| d.notes.iter().any(|x| x.contains(n)))
            && self
                .span
                .as_ref()
                .is_none_or(|s| d.span.as_ref() == Some(s))
    }
}

/// One error or warning rustc reported for a case.
#[derive(Debug)]
struct Diagnostic {
    level: String,
    code: Option<String>,
    message: String,
    /// The line of the primary span, if that span is in the case's file.
    line: Option<usize>,
    /// The source text the primary span covers.
    span: Option<String>,
    labels: Vec<String>,
    notes: Vec<String>,
}

impl Diagnostic {
    fn from_json(message: &Value, file_name: &str) -> Self {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let primary = message["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["is_primary"] == true)
            .collect::<Vec<_>>();
        let first = primary.iter().copied().find(|s| {
            let file = s["file_name"].as_str().unwrap_or_default();
            Path::new(file).file_name() == Some(OsStr::new(file_name))
        });
        Diagnostic {
            level: text(&message["level"]).unwrap_or_default(),
            code: text(&message["code"]["code"]),
            message: text(&message["message"]).unwrap_or_default(),
            line: first
                .and_then(|s| s["line_start"].as_u64())
                .map(|l| l as usize),
            span: first.map(covered),
            labels: primary.iter().filter_map(|s| text(&s["label"])).collect(),
            notes: message["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["level"] == "note")
                .filter_map(|c| text(&c["message"]))
                .collect(),
        }
    }
}

/// The source text a JSON span covers, its lines joined by `\n`.
fn covered(span: &Value) -> String {
    let lines = span["text"].as_array().into_iter().flatten();
    let parts = lines.map(|l| {
        let start = l["highlight_start"].as_u64().unwrap_or(1).saturating_sub(1) as usize;
        let end = l["highlight_end"].as_u64().unwrap_or(1).saturating_sub(1) as usize;
        let line = l["text"].as_str().unwrap_or_default();
        line.chars()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect::<String>()
    });
    parts.collect::<Vec<_>>().join("\n")
}

/// The expectations written in a case's `//~` comments.
fn expectations(case: &Path) -> Vec<Expected> {
    let source = fs::read_to_string(case).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let mut expected: Vec<Expected> = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let at = index + 1;
        let Some((_, comment)) = line.split_once("//~") else {
            continue;
        };
        let bad = |why: &str| -> ! { panic!("{}:{at}: {why}: `{line}`", case.display()) };
        let (continues, rest) = match comment.strip_prefix('|') {
            Some(rest) => (true, rest),
            None => (false, comment.trim_start_matches('^')),
        };
        let up = comment.len() - comment.trim_start_matches('^').len();
        let (kind, text) = match rest.trim().split_once(':') {
            Some((kind, text)) => (kind.trim(), Some(text.trim().to_owned())),
            None => (rest.trim(), None),
        };
        if continues {
            let Some(last) = expected.last_mut() else {
                bad("`//~|` must follow a `//~ ERROR` comment")
            };
            if kind == "ALONE" && text.is_none() {
                last.alone = true;
                continue;
            }
            let Some(text) = text else {
                bad("expected `KIND: text`")
            };
            match kind {
                "LABEL" => last.labels.push(text),
                "NOTE" => last.notes.push(text),
                "SPAN" => last.span = Some(text),
                _ => bad("`//~|` takes LABEL, NOTE, SPAN or ALONE"),
            }
            continue;
        }
        let code = match kind.strip_prefix("ERROR") {
            Some("") => None,
            Some(code) => match code.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
                Some(code) => Some(code.to_owned()),
                None => bad("write the code as `ERROR[E0277]`"),
            },
            None => bad("a `//~` comment starts with ERROR; LABEL, NOTE and SPAN follow `//~|`"),
        };
        if code.is_none() && text.is_none() {
            bad("an ERROR needs a code or a text");
        }
        let Some(line) = at.checked_sub(up).filter(|&l| l > 0) else {
            bad("points above the first line")
        };
        expected.push(Expected {
            at,
            line,
            code,
            message: text,
            labels: Vec::new(),
            notes: Vec::new(),
            span: None,
            alone: false,
        });
    }
    expected
}

/// Writes the crate that holds every case as a binary.
fn write_project(project: &Path, cases: &[(String, PathBuf)]) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace");
    let mut manifest = format!(
        "[package]\nname = \"{PROJECT}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\
         autobins = false\n\n[workspace]\n\n[dependencies]\nreliability = {{ path = '{}' }}\n",
        workspace.join("reliability").display()
    );
    for (name, path) in cases {
        manifest += &format!(
            "\n[[bin]]\nname = \"{name}\"\npath = '{}'\n",
            path.display()
        );
    }
    fs::create_dir_all(project).expect("create the case crate's directory");
    fs::write(project.join("Cargo.toml"), manifest).expect("write the case crate's manifest");
    // The workspace's lock file, so that the cases build against the versions the tests use.
    fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock"))
        .expect("copy the workspace's Cargo.lock");
}

/// Compiles every case in the directory `relative` (to the tests crate) and checks its `//~`
/// comments. Prints a report and returns how many cases failed.
pub(crate) fn check(relative: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut cases = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read a case").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| {
            let name = path.file_stem().expect("a file name").to_string_lossy();
            (name.into_owned(), path)
        })
        .collect::<Vec<_>>();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());

    let project = Path::new(env!("CARGO_TARGET_TMPDIR")).join(PROJECT);
    write_project(&project, &cases);
    let output = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["check", "--bins", "--keep-going", "--offline", "--quiet"])
        .args(["--color=never", "--message-format=json"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", project.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");

    let messages = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-message")
        .collect::<Vec<_>>();

    let mut failed = 0;
    for (name, path) in &cases {
        let file_name = format!("{name}.rs");
        let found = messages
            .iter()
            .filter(|m| m["target"]["name"] == name.as_str())
            .map(|m| &m["message"])
            // Not the summaries ("aborting due to ..."), which point nowhere.
            .filter(|m| m["spans"].as_array().is_some_and(|s| !s.is_empty()))
            .map(|m| Diagnostic::from_json(m, &file_name))
            .collect::<Vec<_>>();
        let expected = expectations(path);
        let mut problems = Vec::new();
        if expected.is_empty() {
            problems.push("it has no `//~ ERROR` comment".to_owned());
        }
        for e in &expected {
            if !found.iter().any(|d| e.is_met_by(d)) {
                problems.push(format!("line {}: no error meets {e:?}", e.at));
            }
        }
        for e in expected.iter().filter(|e| e.alone) {
            let on_line = found.iter().filter(|d| d.line == Some(e.line)).count();
            if on_line != 1 {
                problems.push(format!(
                    "line {}: expected one error on line {}, got {on_line}",
                    e.at, e.line
                ));
            }
        }
        for d in &found {
            let named = d.line.is_some_and(|l| expected.iter().any(|e| e.line == l));
            if d.level != "error" || !named {
                problems.push(format!("unexpected {}: {d:?}", d.level));
            }
        }
        let shown = Path::new(relative).join(&file_name);
        if problems.is_empty() {
            println!("test {} [annotated] ... ok", shown.display());
        } else {
            failed += 1;
            println!("test {} [annotated] ... FAILED", shown.display());
            for problem in &problems {
                println!("    {problem}");
            }
            if found.is_empty() {
                println!("    it reported nothing; cargo said:");
                for m in messages.iter().filter(|m| m["message"]["level"] == "error") {
                    println!("{}", m["message"]["rendered"].as_str().unwrap_or_default());
                }
                println!("{}", String::from_utf8_lossy(&output.stderr));
            } else {
                println!("    its diagnostics:");
                for d in &found {
                    println!("      {d:?}");
                }
            }
        }
    }
    failed
}
