//! The reconciler (`kubectl sync --reconcile`): the CLI's own sync, run for every app of a
//! repository's list whenever what the app is made of changes, by the one replica that
//! holds a Lease. The loop itself is the sync plugin's; these are the parts it is made of.

pub mod backoff;
pub mod endpoints;
pub mod events;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod webhook;
