//! Changing the cluster: ApplySet membership, apply order, pruning, and health.

pub mod applyset;
pub mod health;
pub mod order;
pub mod prune;
