//! What a sync does before it plans that needs the app's name and the cluster but not the
//! rendered objects, done while its revision renders: take the app's lock and read the
//! ApplySet parent. The plan's LISTs are not made here: they go out together once the
//! revision's kinds are known, since the API server answers a consistent LIST only after
//! its cache has caught up with the newest write, and LISTs sent at once share that wait
//! while LISTs sent one after another can each wait for it.

use std::time::Duration;

use anyhow::Result;
use gitops::apply::applyset::{self, ApplySet, ApplySetError};
use gitops::kubeconfig::Connection;
use gitops::live::LiveCluster;
use gitops::lock;
use gitops_cli::Discovering;

/// The app's lock, held, and its ApplySet parent as read under it.
pub struct ReadAhead {
    pub lock: lock::KeepAlive,
    pub existing: Result<Option<ApplySet>, ApplySetError>,
}

/// Waits for `discovering`, then locks `app` and reads its parent. The outer error is the
/// discovery's; the inner one (a held lock, an invalid app name) comes after rendering,
/// whose errors come first.
pub async fn start(
    discovering: Discovering,
    app: String,
    lock_duration: Duration,
) -> Result<(Connection, LiveCluster, Result<ReadAhead>)> {
    let (connection, cluster) = discovering.discovered().await?;
    let ahead = read_ahead(&connection, &cluster, &app, lock_duration).await;
    Ok((connection, cluster, ahead))
}

async fn read_ahead(
    connection: &Connection,
    cluster: &LiveCluster,
    app: &str,
    lock_duration: Duration,
) -> Result<ReadAhead> {
    let lock = take_lock(connection, cluster, app, lock_duration).await?;
    let existing = applyset::read(cluster, &connection.namespace, app).await;
    Ok(ReadAhead { lock, existing })
}

/// Takes `app`'s lock (an invalid app name is refused before any request), renewed in the
/// background: waiting for health can outlast one lease term.
pub async fn take_lock(
    connection: &Connection,
    cluster: &LiveCluster,
    app: &str,
    lock_duration: Duration,
) -> Result<lock::KeepAlive> {
    let holder = lock::holder_identity(&connection.actor());
    Ok(lock::acquire(
        cluster.client().clone(),
        &connection.namespace,
        app,
        &holder,
        lock_duration,
    )
    .await?
    .keep_alive()?)
}
