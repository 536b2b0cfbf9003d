//! Changing the cluster: ApplySet membership, who owns what, apply order, pruning, and health.

pub mod applyset;
pub mod health;
pub mod object_options;
pub mod order;
pub mod ownership;
pub mod prune;
pub mod replace;
