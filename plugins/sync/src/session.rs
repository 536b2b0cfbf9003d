//! The connection, the cluster and the record store one sync works with.

use std::time::Duration;

use anyhow::Result;
use gitops::app_file::AppSpec;
use gitops::cancel::Cancel;
use gitops::kubeconfig::{ConnectOptions, Connection};
use gitops::live::LiveCluster;
use gitops::release::store::ReleaseStore;
use gitops_cli::EarlyDiscovery;

use crate::Args;

/// How long requests are retried: the sync's timeout (`--timeout`, else the app list's).
pub fn retry_budget(args: &Args, spec: Option<&AppSpec>) -> Duration {
    args.change.timeout_for(spec)
}

/// The connection, the cluster and the record store one run works with.
pub struct Session {
    pub connection: Connection,
    pub cluster: LiveCluster,
    pub store: ReleaseStore,
    /// Set by Ctrl-C or SIGTERM: stops the sync between writes.
    pub cancel: Cancel,
}

impl Session {
    /// Connects as `options` say; requests are retried for at most the sync's timeout.
    pub async fn connect(
        args: &Args,
        options: &ConnectOptions,
        spec: Option<&AppSpec>,
    ) -> Result<Session> {
        Ok(Session::connect_while(args, options, spec, None, |_| ())
            .await?
            .0)
    }

    /// [`Session::connect`], running `meanwhile` with the namespace while the cluster is
    /// discovered (see [`EarlyDiscovery::discover_while`]); `early`'s discovery serves if it
    /// was started for the same connection.
    async fn connect_while<T>(
        args: &Args,
        options: &ConnectOptions,
        spec: Option<&AppSpec>,
        early: Option<EarlyDiscovery>,
        meanwhile: impl FnOnce(&str) -> T,
    ) -> Result<(Session, T)> {
        let (connection, cluster, value) = EarlyDiscovery::discover_while(
            early,
            &args.connection,
            options,
            Some(retry_budget(args, spec)),
            meanwhile,
        )
        .await?;
        Ok((Session::new(connection, cluster), value))
    }

    pub fn new(connection: Connection, cluster: LiveCluster) -> Session {
        let store = ReleaseStore::new(cluster.client().clone(), &connection.namespace);
        Session {
            connection,
            cluster,
            store,
            cancel: gitops_cli::interrupt::install(),
        }
    }
}
