//! The in-cluster reconciler (`kubectl sync --reconcile`): its HTTP side.
//!
//! - [`metrics`]: the registry the loop fills, in the Prometheus text format.

pub mod metrics;
