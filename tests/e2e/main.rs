//! End-to-end tests against the real control plane (start them with `bash tests/run.sh`).
//! One test binary, so the suite shares one control plane; every test has its own namespace.
#![allow(clippy::unwrap_used)] // test code: a failed step should stop the test loudly

mod applyset;
mod apps;
mod cluster;
mod diff_git;
mod drift;
mod health;
mod helm;
mod hostile;
mod release_history;
mod release_store;
mod shipping;
mod sync;
