//! The reconciler (`kubectl sync --reconcile`): the CLI's own sync, run for every app of a
//! repository's list whenever what the app is made of changes, by the one replica that
//! holds a Lease. The loop itself is the sync plugin's; these are the parts it is made of:
//!
//! - [`inputs`]: what an app is made of at a revision, as one id;
//! - [`clusters`]: other clusters' kubeconfigs, from labelled Secrets;
//! - [`leader`]: the Lease the replicas elect their leader with;
//! - [`backoff`]: how long a failing app waits;
//! - [`events`]: Kubernetes Events on an app's ApplySet parent;
//! - [`metrics`]: the registry the loop fills, in the Prometheus text format;
//! - [`webhook`]: a forge's push webhook, checked against its secret and read;
//! - [`endpoints`]: the probes, the metrics and the webhook served over HTTP/1.1.

pub mod backoff;
pub mod clusters;
pub mod endpoints;
pub mod events;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod webhook;
