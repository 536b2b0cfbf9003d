//! Connection settings, found the way kubectl finds them.
//!
//! `--kubeconfig` names one file; otherwise `KUBECONFIG` lists several, merged by
//! kubectl's rules (the first file to define a name or `current-context` wins, missing
//! files are skipped); otherwise `~/.kube/config`; otherwise the in-cluster service
//! account. Each file is read on its own so an error can name the file that defines the
//! broken entry.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error_text::{chain as error_chain, one_line};
use crate::retry::RequestLog;

/// The User-Agent of every request the plugins make.
pub const USER_AGENT: &str = concat!("kubectl-gitops/v", env!("CARGO_PKG_VERSION"));

/// What the user asked for on the command line (kubectl's connection flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectOptions {
    /// `--kubeconfig`: one file, used alone.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`
    pub context: Option<String>,
    /// `--cluster`: overrides the context's cluster.
    pub cluster: Option<String>,
    /// `--user`: overrides the context's user.
    pub user: Option<String>,
    /// `-n/--namespace`
    pub namespace: Option<String>,
    /// `--request-timeout`, in kubectl's syntax (`0` = none, `30`, `30s`, `1m30s`, `500ms`).
    pub request_timeout: Option<String>,
    /// `--as`
    pub impersonate: Option<String>,
    /// `--as-group`, repeatable.
    pub impersonate_groups: Vec<String>,
    /// A ServiceAccount of the namespace in use to act as (the app list's
    /// `service_account:`, a tenant's account), found once that namespace is known.
    pub service_account: Option<String>,
}

/// The parts of the process environment that decide where configuration comes from.
/// Tests build one by hand so they never see the developer's own kubeconfig.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The value of `KUBECONFIG`, if set.
    pub kubeconfig_var: Option<OsString>,
    /// The home directory, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// Whether `KUBERNETES_SERVICE_HOST` says we run inside a pod.
    pub in_cluster: bool,
}

impl Environment {
    /// The environment of this process.
    pub fn from_process() -> Environment {
        Environment {
            kubeconfig_var: std::env::var_os("KUBECONFIG"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        }
    }
}

/// Where the namespace in use came from, for messages such as "namespace x (from context y)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSource {
    Flag,
    Context,
    ServiceAccount,
    Default,
}

/// A resolved connection: a client configuration and the names it was built from.
#[derive(Debug, Clone)]
pub struct Connection {
    pub config: kube::Config,
    /// The namespace to use for namespaced objects without one.
    pub namespace: String,
    pub namespace_source: NamespaceSource,
    /// The context in use (None in-cluster).
    pub context: Option<String>,
    /// The kubeconfig user name (or `--as`), used to record who acted.
    pub user: Option<String>,
    /// The kubeconfig files that were read, in merge order.
    pub files: Vec<PathBuf>,
    /// The request timeout, if any, for callers that bound whole operations.
    pub request_timeout: Option<Duration>,
    /// How long one request may keep being retried (see [`crate::retry`]); a sync sets
    /// its `--timeout`.
    pub retry_budget: Duration,
    /// Where retries (and, with `-v`, every request) are reported.
    pub request_log: Option<RequestLog>,
}

impl Connection {
    /// The API server's address, for error messages.
    pub fn server(&self) -> String {
        self.config.cluster_url.to_string()
    }

    /// A client for this connection, retrying as [`crate::retry`] says.
    pub fn client(&self) -> Result<kube::Client, KubeconfigError> {
        let mut config = self.config.clone();
        // kube's own retry is silent and unbounded by our budget; ours replaces it.
        config.default_retry = false;
        let builder = match crate::http_stack::builder(&config) {
            Some(ours) => ours,
            None => kube::client::ClientBuilder::try_from(config),
        }
        .map_err(|source| KubeconfigError::Client {
            context: self.context.clone().unwrap_or_else(|| "in-cluster".into()),
            message: source.to_string(),
        })?;
        let layer = crate::retry::layer(self.retry_budget, self.server(), self.request_log.clone());
        Ok(builder.with_layer(&layer).build())
    }

    /// Who is acting, for release records: `--as` if given, else the kubeconfig user.
    pub fn actor(&self) -> String {
        self.config
            .auth_info
            .impersonate
            .clone()
            .or_else(|| self.user.clone())
            .unwrap_or_else(|| "unknown".into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "--as {given} cannot be used for an app the app list gives a service_account ({account}): its syncs act as that account"
    )]
    TwoIdentities { given: String, account: String },
    #[error("kubeconfig file {path} does not exist (given by {given_by})")]
    FileNotFound {
        path: PathBuf,
        given_by: &'static str,
    },
    #[error("cannot read kubeconfig {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "no configuration found: looked for {} and not running inside a cluster; pass --kubeconfig or set KUBECONFIG",
        looked_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoConfiguration { looked_at: Vec<PathBuf> },
    #[error(
        "current-context is not set in {}; choose one with --context ({})",
        files_list(files),
        available_list(available)
    )]
    NoCurrentContext {
        files: Vec<PathBuf>,
        available: Vec<String>,
    },
    #[error(
        "context \"{}\" does not exist in {}; {}",
        one_line(name),
        files_list(files),
        available_list(available)
    )]
    ContextNotFound {
        name: String,
        files: Vec<PathBuf>,
        available: Vec<String>,
    },
    #[error(
        "context \"{}\" is not defined here: in a pod there is no kubeconfig, only the pod's own cluster (the reconciler finds other clusters' contexts in Secrets labelled kubectl-gitops.io/secret-type=cluster in its namespace)",
        one_line(name)
    )]
    ContextInCluster { name: String },
    #[error(
        "context \"{}\" (in {file}) refers to cluster \"{}\", which is not defined in {}",
        one_line(context),
        one_line(name),
        files_list(files)
    )]
    ClusterNotFound {
        name: String,
        context: String,
        file: String,
        files: Vec<PathBuf>,
    },
    #[error(
        "context \"{}\" (in {file}) refers to user \"{}\", which is not defined in {}",
        one_line(context),
        one_line(name),
        files_list(files)
    )]
    UserNotFound {
        name: String,
        context: String,
        file: String,
        files: Vec<PathBuf>,
    },
    #[error(
        "invalid --request-timeout \"{value}\": use a number with a unit, such as 30s, 1m or 500ms (0 means no timeout)"
    )]
    InvalidTimeout { value: String },
    #[error(
        "cannot use context \"{}\" from {file}: {}",
        one_line(context),
        one_line(message)
    )]
    Build {
        context: String,
        file: String,
        message: String,
    },
    #[error("cannot load the in-cluster configuration: {message}")]
    InCluster { message: String },
    #[error(
        "cannot create a client for context \"{}\": {}",
        one_line(context),
        one_line(message)
    )]
    Client { context: String, message: String },
}

fn files_list(files: &[PathBuf]) -> String {
    match files {
        [] => "the kubeconfig".into(),
        [one] => one.display().to_string(),
        many => many
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn available_list(available: &[String]) -> String {
    if available.is_empty() {
        "no contexts are defined".into()
    } else {
        // Names come from the kubeconfig: keep the message one line.
        format!("available contexts: {}", one_line(&available.join(", ")))
    }
}

/// The merged kubeconfig and, for each named entry, the file that defined it.
#[derive(Debug, Default)]
pub struct LoadedKubeconfig {
    pub merged: Kubeconfig,
    pub files: Vec<PathBuf>,
    context_origin: BTreeMap<String, PathBuf>,
}

impl LoadedKubeconfig {
    /// Context names, in the order they were defined.
    pub fn context_names(&self) -> Vec<String> {
        self.merged
            .contexts
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The file that defined a context.
    pub fn context_file(&self, name: &str) -> Option<&Path> {
        self.context_origin.get(name).map(PathBuf::as_path)
    }
}

/// The kubeconfig files in effect, in merge order, and whether they were named explicitly.
fn kubeconfig_files(
    opts: &ConnectOptions,
    env: &Environment,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), KubeconfigError> {
    if let Some(path) = &opts.kubeconfig {
        if !path.is_file() {
            return Err(KubeconfigError::FileNotFound {
                path: path.clone(),
                given_by: "--kubeconfig",
            });
        }
        return Ok((vec![path.clone()], vec![path.clone()]));
    }
    if let Some(value) = env.kubeconfig_var.as_ref().filter(|v| !v.is_empty()) {
        let listed: Vec<PathBuf> = std::env::split_paths(value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !listed.is_empty() {
            // kubectl skips files in KUBECONFIG that do not exist.
            let existing = listed.iter().filter(|p| p.is_file()).cloned().collect();
            return Ok((existing, listed));
        }
    }
    let default = env.home.as_ref().map(|h| h.join(".kube").join("config"));
    let looked_at: Vec<PathBuf> = default.iter().cloned().collect();
    Ok((
        looked_at.iter().filter(|p| p.is_file()).cloned().collect(),
        looked_at,
    ))
}

/// Reads and merges the kubeconfig files that `opts` and `env` point at.
/// Returns None when there are none (the caller may then try in-cluster).
pub fn load(
    opts: &ConnectOptions,
    env: &Environment,
) -> Result<Option<LoadedKubeconfig>, KubeconfigError> {
    let (files, _) = kubeconfig_files(opts, env)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut loaded = LoadedKubeconfig::default();
    for path in files {
        refuse_odd_utf16(&path)?;
        let config = Kubeconfig::read_from(&path).map_err(|e| KubeconfigError::Read {
            path: path.clone(),
            message: parse_message(&e),
        })?;
        for context in &config.contexts {
            loaded
                .context_origin
                .entry(context.name.clone())
                .or_insert_with(|| path.clone());
        }
        loaded.merged = std::mem::take(&mut loaded.merged)
            .merge(config)
            .map_err(|e| KubeconfigError::Read {
                path: path.clone(),
                message: parse_message(&e),
            })?;
        loaded.files.push(path);
    }
    Ok(Some(loaded))
}

/// The YAML parser's message in one line: its first line holds the position and the
/// problem; the source snippet drawn below it would quote the file (secrets included)
/// into the terminal.
fn parse_message(error: &kube::config::KubeconfigError) -> String {
    let text = error_chain(error);
    one_line(text.lines().next().unwrap_or_default())
}

/// kube's reader decodes a file with a UTF-16 byte order mark two bytes at a time and
/// panics on an odd byte count (kube-client 5.0, `read_path`); such a file cannot be
/// UTF-16 text, so it is refused before kube sees it.
fn refuse_odd_utf16(path: &Path) -> Result<(), KubeconfigError> {
    use std::io::Read as _;
    let read_error = |e: std::io::Error| KubeconfigError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    let mut bom = [0u8; 2];
    if size % 2 == 1
        && file.read_exact(&mut bom).is_ok()
        && matches!(bom, [0xFF, 0xFE] | [0xFE, 0xFF])
    {
        return Err(KubeconfigError::Read {
            path: path.to_path_buf(),
            message: "it starts with a UTF-16 byte order mark but has an odd number of bytes"
                .into(),
        });
    }
    Ok(())
}

/// Resolves the connection the user asked for.
pub async fn connect(
    opts: &ConnectOptions,
    env: &Environment,
) -> Result<Connection, KubeconfigError> {
    let request_timeout = opts
        .request_timeout
        .as_deref()
        .map(parse_request_timeout)
        .transpose()?
        .flatten();
    let mut connection = match load(opts, env)? {
        Some(loaded) => from_kubeconfig(opts, loaded).await?,
        None if env.in_cluster => match &opts.context {
            // Never the pod's own cluster in place of the one a context names.
            Some(name) => {
                return Err(KubeconfigError::ContextInCluster { name: name.clone() });
            }
            None => in_cluster(opts)?,
        },
        None => {
            let (_, looked_at) = kubeconfig_files(opts, env)?;
            return Err(KubeconfigError::NoConfiguration { looked_at });
        }
    };
    if let Some(timeout) = request_timeout {
        connection.config.connect_timeout = Some(timeout);
        connection.config.read_timeout = Some(timeout);
        connection.config.write_timeout = Some(timeout);
        // Otherwise a pooled connection's idle time counts against the read timeout.
        connection.config.reset_reader_on_write = true;
    }
    connection.request_timeout = request_timeout;
    // Audit logs and API priority rules can then tell our requests apart.
    connection.config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    if let Some(user) = &opts.impersonate {
        connection.config.auth_info.impersonate = Some(user.clone());
    }
    if !opts.impersonate_groups.is_empty() {
        connection.config.auth_info.impersonate_groups = Some(opts.impersonate_groups.clone());
    }
    if let Some(account) = &opts.service_account {
        // One identity per request: a person's --as cannot widen or narrow a tenant's.
        if let Some(given) = &opts.impersonate {
            return Err(KubeconfigError::TwoIdentities {
                given: given.clone(),
                account: account.clone(),
            });
        }
        // The API server adds the account's groups itself.
        connection.config.auth_info.impersonate = Some(format!(
            "system:serviceaccount:{}:{account}",
            connection.namespace
        ));
    }
    Ok(connection)
}

async fn from_kubeconfig(
    opts: &ConnectOptions,
    loaded: LoadedKubeconfig,
) -> Result<Connection, KubeconfigError> {
    let available = loaded.context_names();
    let context_name = match opts
        .context
        .clone()
        .or_else(|| loaded.merged.current_context.clone())
    {
        Some(name) if !name.is_empty() => name,
        _ => {
            return Err(KubeconfigError::NoCurrentContext {
                files: loaded.files.clone(),
                available,
            });
        }
    };
    let Some(context) = loaded
        .merged
        .contexts
        .iter()
        .find(|c| c.name == context_name)
    else {
        return Err(KubeconfigError::ContextNotFound {
            name: context_name,
            files: loaded.files.clone(),
            available,
        });
    };
    let context_file = loaded
        .context_file(&context_name)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let body = context.context.clone().unwrap_or_default();

    let cluster_name = opts.cluster.clone().unwrap_or_else(|| body.cluster.clone());
    if !loaded
        .merged
        .clusters
        .iter()
        .any(|c| c.name == cluster_name)
    {
        return Err(KubeconfigError::ClusterNotFound {
            name: cluster_name,
            context: context_name,
            file: context_file,
            files: loaded.files.clone(),
        });
    }
    let user_name = opts
        .user
        .clone()
        .or_else(|| body.user.clone())
        .filter(|u| !u.is_empty());
    if let Some(user) = &user_name
        && !loaded.merged.auth_infos.iter().any(|u| &u.name == user)
    {
        return Err(KubeconfigError::UserNotFound {
            name: user.clone(),
            context: context_name,
            file: context_file,
            files: loaded.files.clone(),
        });
    }

    let kube_opts = KubeConfigOptions {
        context: Some(context_name.clone()),
        cluster: Some(cluster_name),
        user: user_name.clone(),
    };
    let mut config = kube::Config::from_custom_kubeconfig(loaded.merged, &kube_opts)
        .await
        .map_err(|e| KubeconfigError::Build {
            context: context_name.clone(),
            file: context_file.clone(),
            message: error_chain(&e),
        })?;
    let (namespace, namespace_source) = match (&opts.namespace, &body.namespace) {
        (Some(ns), _) => (ns.clone(), NamespaceSource::Flag),
        (None, Some(ns)) if !ns.is_empty() => (ns.clone(), NamespaceSource::Context),
        _ => ("default".to_string(), NamespaceSource::Default),
    };
    config.default_namespace = namespace.clone();
    Ok(Connection {
        config,
        namespace,
        namespace_source,
        context: Some(context_name),
        user: user_name,
        files: loaded.files,
        request_timeout: None,
        retry_budget: crate::retry::DEFAULT_BUDGET,
        request_log: None,
    })
}

fn in_cluster(opts: &ConnectOptions) -> Result<Connection, KubeconfigError> {
    let mut config = kube::Config::incluster().map_err(|e| KubeconfigError::InCluster {
        message: error_chain(&e),
    })?;
    let (namespace, namespace_source) = match &opts.namespace {
        Some(ns) => (ns.clone(), NamespaceSource::Flag),
        None => (
            config.default_namespace.clone(),
            NamespaceSource::ServiceAccount,
        ),
    };
    config.default_namespace = namespace.clone();
    // Records name the account (`system:serviceaccount:NS:NAME`), as the API server knows it.
    let user = config
        .auth_info
        .token_file
        .as_ref()
        .and_then(|file| std::fs::read_to_string(file).ok())
        .and_then(|token| token_subject(&token))
        .unwrap_or_else(|| "serviceaccount".into());
    Ok(Connection {
        config,
        namespace,
        namespace_source,
        context: None,
        user: Some(user),
        files: Vec::new(),
        request_timeout: None,
        retry_budget: crate::retry::DEFAULT_BUDGET,
        request_log: None,
    })
}

/// The subject (`sub`) a ServiceAccount token names, read without checking its signature:
/// it only names who acts in records; the API server checks the token itself.
fn token_subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("sub")?
        .as_str()
        .filter(|sub| sub.starts_with("system:serviceaccount:"))
        .map(str::to_string)
}

/// Parses kubectl's `--request-timeout`: a bare number is seconds, `0` means no timeout.
pub fn parse_request_timeout(value: &str) -> Result<Option<Duration>, KubeconfigError> {
    let invalid = || KubeconfigError::InvalidTimeout {
        value: value.to_string(),
    };
    let trimmed = value.trim();
    let duration = if let Ok(seconds) = trimmed.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        humantime::parse_duration(trimmed).map_err(|_| invalid())?
    };
    Ok((!duration.is_zero()).then_some(duration))
}

#[cfg(test)]
mod tests;
