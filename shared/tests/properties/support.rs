//! What every property checks, and the seed corpus.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Cases per property: enough to shake out a parser, few enough that the suite stays a
/// matter of seconds in a debug build.
pub const CASES: u32 = 256;

/// Generous for a debug build on a busy machine; real answers take milliseconds.
const BOUND: Duration = Duration::from_secs(10);

pub fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// An error a user can read: one non-empty line.
pub fn assert_one_line(error: &dyn Display) {
    let text = error.to_string();
    assert!(!text.trim().is_empty(), "an empty error message");
    assert!(
        !text.contains(['\n', '\r']),
        "an error message of several lines: {text:?}"
    );
}

/// Runs `check` and fails if it took longer than the bound.
pub fn bounded<T>(what: &str, check: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = check();
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

/// The files of `corpus/<dir>`, sorted, with their names.
pub fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/properties/corpus")
        .join(dir);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

/// Strings that YAML readers and writers treat specially, mixed with arbitrary ones.
pub fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(TRICKY).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
        1 => "\\PC{0,8}",
        1 => any::<String>(),
    ]
}

const TRICKY: &[&str] = &[
    "",
    "yes",
    "no",
    "on",
    "off",
    "Y",
    "n",
    "NO",
    "True",
    "true",
    "false",
    "null",
    "Null",
    "~",
    "1_000",
    "+1_0",
    "1__0",
    "0b101",
    "0o17",
    "0x1F",
    "0x_1F",
    "0644",
    "08",
    "09",
    "-010",
    "1e3",
    "1.",
    ".5",
    "+.5",
    "1_0.5",
    "1.20",
    "0.1.2",
    ".inf",
    "-.Inf",
    ".nan",
    "9223372036854775808",
    "18446744073709551616",
    "2024-01-01",
    "1:20",
    "<<",
    "=",
    "-",
    "- x",
    ": x",
    "a: b",
    "#x",
    "x #y",
    "'q'",
    "\"dq\"",
    "multi\nline",
    "trailing\n",
    "two\n\n",
    "\n",
    "\ttab",
    " lead",
    "trail ",
    "!tag",
    "!!str",
    "&anchor",
    "*alias",
    "%pct",
    "@at",
    "`tick",
    "[1]",
    "{a: 1}",
    "---",
    "...",
    "|",
    ">",
    "?",
    "? x",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "\u{1b}[31m",
    "\r\n",
    "ünïcödé",
    "日本語",
];
