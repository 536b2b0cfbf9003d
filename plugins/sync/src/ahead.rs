//! What a sync reads under its lock before it plans, read while its revision renders: the
//! lock itself, the last deployed release, the records' metadata, the ApplySet parent and
//! the member LISTs of the parent's kinds. These need the app's name and the cluster, not
//! the rendered objects, and reading them waits mostly on the API server (a consistent
//! LIST waits for the server's cache to catch up), so that wait overlaps the rendering.

use std::time::Duration;

use anyhow::Result;
use gitops::apply::applyset::{self, ApplySet, ApplySetError};
use gitops::kubeconfig::Connection;
use gitops::live::{LiveCluster, MemberLists};
use gitops::lock;
use gitops::release::record::ReleaseRecord;
use gitops::release::store::{RecordMeta, ReleaseStore, StoreError, validate_app_name};
use gitops::sync;
use gitops_cli::Discovering;

/// The reads a plan starts from (see [`crate::sync_once`]).
pub struct Reads {
    pub previous: Option<ReleaseRecord>,
    pub listed: Result<Vec<RecordMeta>, StoreError>,
    pub existing: Result<Option<ApplySet>, ApplySetError>,
    /// Adopted into the plan's shared reads; empty without a parent.
    pub members: MemberLists,
}

/// The app's lock, held, and the reads made under it.
pub struct ReadAhead {
    pub lock: lock::KeepAlive,
    pub reads: Reads,
}

/// Waits for `discovering`, then locks `app` and reads ahead. The outer error is the
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
    validate_app_name(app)?;
    let lock = take_lock(connection, cluster, app, lock_duration).await?;
    let namespace = &connection.namespace;
    let store = ReleaseStore::new(cluster.client().clone(), namespace);
    // The member LISTs need the parent's kinds, so they follow its GET.
    let parent_and_members = async {
        let existing = applyset::read(cluster, namespace, app).await;
        let members = match &existing {
            Ok(Some(set)) => {
                cluster
                    .list_members_ahead(set.id.as_str(), set.kinds())
                    .await
            }
            _ => MemberLists::default(),
        };
        (existing, members)
    };
    let (previous, listed, (existing, members)) = futures::join!(
        sync::last_deployed(&store, app),
        store.metadata(app),
        parent_and_members
    );
    Ok(ReadAhead {
        lock,
        reads: Reads {
            previous,
            listed,
            existing,
            members,
        },
    })
}

/// Takes `app`'s lock, renewed in the background: waiting for health can outlast one
/// lease term.
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
