use std::path::PathBuf;

use clap::Args;
use gitops::kubeconfig::{ConnectOptions, Connection, Environment, KubeconfigError, connect};
use gitops::live::{LiveCluster, LiveError};
use gitops::retry::RequestLog;

/// kubectl's connection flags, with kubectl's names and meanings.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cluster connection")]
pub struct ConnectionArgs {
    /// Path to the kubeconfig file to use (otherwise KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use. Repeat it to act on several clusters at
    /// once (diff-git, sync and drift).
    #[arg(long = "context", global = true, value_name = "NAME")]
    pub contexts: Vec<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace, then "default").
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// How long to wait for a single server request (0 = no limit), e.g. 30s, 1m.
    #[arg(long, global = true, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Username to impersonate for the operation.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub impersonate: Option<String>,
    /// Group to impersonate for the operation (repeatable).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub impersonate_groups: Vec<String>,
    /// Log level, as kubectl's: 6 or more prints every request (method, URL, status,
    /// duration) on stderr. Credentials are never printed.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "N",
        default_value_t = 0
    )]
    pub verbosity: u8,
}

impl ConnectionArgs {
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.contexts.first().cloned(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            request_timeout: self.request_timeout.clone(),
            impersonate: self.impersonate.clone(),
            impersonate_groups: self.impersonate_groups.clone(),
            service_account: None,
        }
    }

    /// The options for one of several destinations: `context` (None: the kubeconfig's
    /// current one) and a namespace when -n did not give one.
    pub fn options_for(&self, context: Option<&str>, namespace: Option<&str>) -> ConnectOptions {
        let mut options = self.options();
        options.context = context.map(str::to_string);
        if options.namespace.is_none() {
            options.namespace = namespace.map(str::to_string);
        }
        options
    }

    /// Resolves the connection from these flags and the process environment. Retries
    /// are reported on stderr, one line each; with `-v=6` or more, every request too.
    pub async fn connect(&self) -> Result<Connection, KubeconfigError> {
        self.connect_to(&self.options()).await
    }

    /// [`ConnectionArgs::connect`] for one destination's `options` (see
    /// [`ConnectionArgs::options_for`]).
    pub async fn connect_to(
        &self,
        options: &ConnectOptions,
    ) -> Result<Connection, KubeconfigError> {
        let mut connection = connect(options, &Environment::from_process()).await?;
        connection.request_log = Some(request_log(self.verbosity));
        Ok(connection)
    }
}

/// Prints retries always and every request at level 6 (kubectl's "request URLs" level).
fn request_log(verbosity: u8) -> RequestLog {
    RequestLog::new(move |event| {
        if event.is_retry() || verbosity >= 6 {
            eprintln!("{event}");
        }
    })
}

/// The cluster the flags name, connected and being discovered while a plugin reads the
/// revision, which may still send the app elsewhere (an app list's context, namespace or
/// timeout): [`EarlyDiscovery::discover_while`] uses it only for the very same
/// connection, and starts afresh otherwise.
pub struct EarlyDiscovery {
    options: ConnectOptions,
    retry_budget: Option<std::time::Duration>,
    discovering: Discovering,
}

impl EarlyDiscovery {
    /// Connects as the flags say (requests retried for at most `retry_budget`) and starts
    /// the discovery, if the command will talk to one cluster (`single`, and not several
    /// `--context`s). None otherwise, or if connecting fails: the connection made for real
    /// reports why.
    pub async fn start(
        args: &ConnectionArgs,
        single: bool,
        retry_budget: Option<std::time::Duration>,
    ) -> Option<EarlyDiscovery> {
        if !single || args.contexts.len() > 1 {
            return None;
        }
        let options = args.options();
        let discovering = Discovering::start(args, &options, retry_budget)
            .await
            .ok()?;
        Some(EarlyDiscovery {
            options,
            retry_budget,
            discovering,
        })
    }

    /// Stops the discovery: the plugin goes elsewhere.
    pub fn cancel(self) {
        self.discovering.task.abort();
    }

    /// Connects as `options` say and discovers the cluster on another task while
    /// `meanwhile` runs here with the connection's namespace: rendering a revision needs
    /// no cluster, and discovery no revision, so neither waits for the other. A failed
    /// discovery is the error, whatever `meanwhile` gave. The discovery `early` started
    /// serves if it was made for the same options and retry budget.
    pub async fn discover_while<T>(
        early: Option<EarlyDiscovery>,
        args: &ConnectionArgs,
        options: &ConnectOptions,
        retry_budget: Option<std::time::Duration>,
        meanwhile: impl FnOnce(&str) -> T,
    ) -> anyhow::Result<(Connection, LiveCluster, T)> {
        let discovering = EarlyDiscovery::begin(early, args, options, retry_budget).await?;
        let value = meanwhile(&discovering.connection.namespace);
        let (connection, cluster) = discovering.discovered().await?;
        Ok((connection, cluster, value))
    }

    /// The connection `options` name with its discovery under way: `early`'s, if it was
    /// started for the same options and retry budget, a new one otherwise. Lets a plugin
    /// chain reads onto the discovery (on another task) while it renders.
    pub async fn begin(
        early: Option<EarlyDiscovery>,
        args: &ConnectionArgs,
        options: &ConnectOptions,
        retry_budget: Option<std::time::Duration>,
    ) -> anyhow::Result<Discovering> {
        match early {
            Some(early) if early.options == *options && early.retry_budget == retry_budget => {
                Ok(early.discovering)
            }
            other => {
                if let Some(unused) = other {
                    unused.cancel();
                }
                Discovering::start(args, options, retry_budget).await
            }
        }
    }
}

/// A connection whose cluster is being discovered on another task.
pub struct Discovering {
    pub connection: Connection,
    task: tokio::task::JoinHandle<Result<LiveCluster, LiveError>>,
}

impl Discovering {
    /// Connects as `options` say (requests retried for at most `retry_budget`) and starts
    /// discovering the cluster.
    async fn start(
        args: &ConnectionArgs,
        options: &ConnectOptions,
        retry_budget: Option<std::time::Duration>,
    ) -> anyhow::Result<Discovering> {
        let mut connection = args.connect_to(options).await?;
        if let Some(budget) = retry_budget {
            connection.retry_budget = budget;
        }
        let task = tokio::spawn({
            let connection = connection.clone();
            async move { LiveCluster::connect(&connection).await }
        });
        Ok(Discovering { connection, task })
    }

    /// The connection and its discovered cluster, once discovery ends.
    pub async fn discovered(self) -> anyhow::Result<(Connection, LiveCluster)> {
        let cluster = self
            .task
            .await
            .map_err(|stopped| anyhow::anyhow!("API discovery stopped: {stopped}"))??;
        Ok((self.connection, cluster))
    }
}
