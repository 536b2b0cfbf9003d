//! The in-cluster reconciler (`kubectl sync --reconcile`): its HTTP side.
//!
//! - [`metrics`]: the registry the loop fills, in the Prometheus text format;
//! - [`webhook`]: a forge's push webhook, checked against its secret and read.

pub mod metrics;
pub mod webhook;
