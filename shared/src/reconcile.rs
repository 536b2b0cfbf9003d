//! The in-cluster reconciler (`kubectl sync --reconcile`): its HTTP side.
//!
//! - [`metrics`]: the registry the loop fills, in the Prometheus text format;
//! - [`webhook`]: a forge's push webhook, checked against its secret and read;
//! - [`endpoints`]: the probes, the metrics and the webhook served over HTTP/1.1.

pub mod endpoints;
pub mod metrics;
pub mod webhook;
