//! Property tests: arbitrary and hostile input into every parser that reads what a
//! repository, a kubeconfig or a release Secret holds. Nothing may panic, every error is
//! one non-empty line, and each input is answered within a bounded time.
//!
//! `corpus/` holds hand-made nasty inputs, one directory per parser, run on every test
//! run; add a file there for each new kind of trouble. Cases proptest finds failing are
//! written to `shared/tests/proptest-regressions/<module>.txt` (proptest's default place
//! for a test crate rooted at this `main.rs`) and replayed first on later runs: commit
//! them with the fix.
//!
//! `import_graph` checks the library's shape rather than its input: no module imports
//! back into one that imports it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod import_graph;
mod kubeconfig;
mod manifests;
mod releases;
mod support;
