//! End-to-end tests against the real control plane (start them with `bash tests/run.sh`).
//! One test binary, so the suite shares one control plane; every test has its own namespace.
#![allow(clippy::unwrap_used)] // test code: a failed step should stop the test loudly

mod applyset;
mod apps;
mod canary;
mod capabilities;
mod cascade;
mod chart_fetch;
mod chart_sources;
mod cluster;
mod completion;
mod concurrency;
mod dashboard;
mod diff_git;
mod drift;
mod dry_run;
mod empty_render;
mod faults;
mod health;
mod helm;
mod help;
mod hooks;
mod hostile;
mod image;
mod in_cluster;
mod interrupts;
mod jsonnet;
mod lifecycle_apps;
mod ownership;
mod progress;
mod prune;
mod rbac;
mod release_archives;
mod release_history;
mod release_store;
mod remote_charts;
mod requests;
mod rollback;
mod schemas;
mod shipping;
mod sops;
mod sops_pgp;
mod sync;
mod sync_options;
mod tree;
mod uninstall;
