//! The overview's rows: every app of every cluster with its health and drift now, as
//! [`super::states`] keep them.

use futures::{StreamExt, stream};

use super::data::{AppHealth, AppRef, Cluster, ClusterOverview, DriftState, OverviewRow};
use super::states::States;
use crate::release::history::AppSummary;

/// Every app of every cluster, each with its health and drift now (as `states` keep them).
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
    let rows = stream::iter(apps)
        .map(|summary| row(index, cluster, summary, states))
        .buffered(cluster.live.concurrency())
        .collect()
        .await;
    ClusterOverview {
        context: cluster.context.clone(),
        rows,
        error: None,
    }
}

async fn row(index: usize, cluster: &Cluster, summary: AppSummary, states: &States) -> OverviewRow {
    let app = AppRef {
        cluster: index,
        namespace: summary.namespace.clone(),
        app: summary.app.clone(),
        source: summary.source,
    };
    let (health, drift) = match states.get(cluster, &app).await {
        Ok(state) => (AppHealth::of(&state.tree), state.drift_state()),
        Err(reason) => (AppHealth::Unknown, DriftState::Unknown(reason)),
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
