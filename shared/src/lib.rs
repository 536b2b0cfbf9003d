//! The library behind the kubectl-gitops plugins.
//!
//! Each module has one job; the plugins are thin command lines over them. Nothing here
//! parses command-line flags, and nothing prints: the plugins print what it returns.

pub mod api_error;
pub mod app_file;
pub mod app_identity;
pub mod apply;
pub mod cancel;
pub mod charts;
pub mod compare;
pub mod dashboard;
pub mod desired;
pub mod diff;
pub mod drift;
mod error_text;
pub mod fingerprint;
pub mod hooks;
mod http_stack;
pub mod kubeconfig;
pub mod live;
pub mod lock;
pub mod objects;
pub mod reconcile;
pub mod release;
pub mod render;
pub mod retry;
pub mod source;
pub mod sync;
pub mod tree;
