//! The overview's rows: every app of every cluster with its health and drift as
//! [`super::states`] know them now.

use super::data::{AppHealth, AppRef, Cluster, ClusterOverview, DriftState, OverviewRow};
use super::states::{Known, States};
use crate::release::history::AppSummary;

/// Every app of every cluster from its release records, each with its health and drift
/// as `states` know them now; an app whose state is not known yet is shown as being
/// checked, never waited for (see [`States::check`]).
pub async fn overview(clusters: &[Cluster], states: &States) -> Vec<ClusterOverview> {
    let mut out = Vec::new();
    for (index, cluster) in clusters.iter().enumerate() {
        out.push(cluster_overview(index, cluster, states).await);
    }
    out
}

async fn cluster_overview(index: usize, cluster: &Cluster, states: &States) -> ClusterOverview {
    let apps = match states.apps(index, cluster).await {
        Ok(apps) => apps,
        Err(error) => {
            return ClusterOverview {
                context: cluster.context.clone(),
                rows: Vec::new(),
                error: Some(error),
            };
        }
    };
    let rows = apps
        .into_iter()
        .map(|summary| row(index, cluster, summary, states))
        .collect();
    ClusterOverview {
        context: cluster.context.clone(),
        rows,
        error: None,
    }
}

fn row(index: usize, cluster: &Cluster, summary: AppSummary, states: &States) -> OverviewRow {
    let app = AppRef {
        cluster: index,
        namespace: summary.namespace.clone(),
        app: summary.app.clone(),
        source: summary.source,
    };
    let (health, drift) = match states.known(&app) {
        Known::State(state) => (AppHealth::of(&state.tree), state.drift_state()),
        Known::Failed(reason) => (AppHealth::Unknown, DriftState::Unknown(reason)),
        Known::Checking => (AppHealth::Checking, DriftState::Checking),
    };
    OverviewRow {
        context: cluster.context.clone(),
        latest: summary
            .latest
            .map_err(|u| format!("record {} cannot be read: {}", u.secret, u.reason)),
        app,
        health,
        drift,
    }
}
