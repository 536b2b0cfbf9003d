//! The flags two or more plugins take, each defined once: one type, one default and one
//! help text, whatever plugin shows it. A plugin flattens the groups it needs
//! (`#[command(flatten)]`), so `kubectl sync --interval` and `kubectl drift --interval`
//! cannot drift apart.

use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use gitops::app_file::AppSpec;
use gitops::apply::health::WaitOptions;

use crate::ColorWhen;

/// How long a sync or a heal waits for health (and retries its requests) unless the flags
/// or the app list say otherwise.
pub const DEFAULT_TIMEOUT: Duration = gitops::sync::DEFAULT_TIMEOUT;

/// `-o`, `--color` and `--show-secrets`: how a plugin shows what it found. The formats `F`
/// are the plugin's own; without `-o` it prints text for people.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs<F: ValueEnum + Clone + Send + Sync + 'static> {
    /// Output format for scripts and other tools (default: text for people).
    #[arg(
        id = "output",
        short = 'o',
        long = "output",
        value_enum,
        value_name = "FORMAT"
    )]
    pub format: Option<F>,
    /// When to color the output.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// Show the values of Secrets (and a release's chart values) instead of masking them.
    #[arg(long)]
    pub show_secrets: bool,
}

/// `-o json`, the one format of the plugins whose scripts' output is one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JsonFormat {
    Json,
}

/// `-U/--unified`, for the plugins that print unified diffs.
#[derive(Debug, Clone, Copy, Args)]
pub struct UnifiedArgs {
    /// Lines of context around each change in a diff.
    #[arg(
        id = "unified",
        short = 'U',
        long = "unified",
        default_value_t = 3,
        value_name = "N"
    )]
    pub lines: usize,
}

/// `-A/--all-namespaces`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct AllNamespacesArgs {
    /// The apps of every namespace, instead of those of -n's namespace.
    #[arg(id = "all_namespaces", short = 'A', long = "all-namespaces")]
    pub all: bool,
}

/// `--app NAME`, for the plugins that take the app as a flag beside a PATH.
#[derive(Debug, Clone, Default, Args)]
pub struct AppNameArgs {
    /// The app's name (default: derived from the path): its ApplySet, its release records
    /// in -n's namespace and a Helm chart's release are named after it.
    #[arg(id = "app", long = "app", value_name = "NAME")]
    pub name: Option<String>,
}

/// `--adopt`: sync takes it, and diff-git, so its preview is the sync's.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct AdoptArgs {
    /// Take over existing objects that another app's ApplySet or a Helm release owns
    /// (without it they are refused, before anything is written). Objects nobody owns
    /// are adopted anyway.
    #[arg(id = "adopt", long = "adopt")]
    pub adopt: bool,
}

/// `--repo DIR|URL`.
#[derive(Debug, Clone, Default, Args)]
pub struct RepoArgs {
    /// The repository: a directory or a URL (cloned into a cache with your git
    /// credentials). Default: the checkout you stand in (drift: first the repository the
    /// release was synced from).
    #[arg(id = "repo", long = "repo", value_name = "DIR|URL")]
    pub location: Option<String>,
}

/// `--prune-crds`: what sync prunes, and so what diff-git shows as removed.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct PruneCrdsArgs {
    /// Prune CustomResourceDefinitions the revision no longer has, and with them every
    /// custom resource of their kinds (default: the app list's `prune_crds:`, else false:
    /// CRDs are kept, as Helm keeps them).
    #[arg(id = "prune_crds", long = "prune-crds")]
    pub enabled: bool,
}

impl PruneCrdsArgs {
    /// `--prune-crds`, else the app list's `prune_crds:`.
    pub fn for_app(&self, spec: Option<&AppSpec>) -> bool {
        self.enabled || spec.and_then(|s| s.prune_crds).unwrap_or(false)
    }
}

/// `--create-namespace`: the app's namespace (-n's) made when missing, as Helm's flag.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct CreateNamespaceArgs {
    /// Create -n's namespace (where the app's lock and records live) when it does not
    /// exist and the revision does not create it; it is not one of the app's objects,
    /// so nothing prunes it (default: the app list's `create_namespace:`, else false).
    #[arg(id = "create_namespace", long = "create-namespace")]
    pub enabled: bool,
}

impl CreateNamespaceArgs {
    /// `--create-namespace`, else the app list's `create_namespace:`.
    pub fn for_app(&self, spec: Option<&AppSpec>) -> bool {
        self.enabled || spec.and_then(|s| s.create_namespace).unwrap_or(false)
    }
}

/// `--watch` and `--interval`: the loops of sync (auto-sync) and drift (self-heal).
#[derive(Debug, Clone, Copy, Args)]
pub struct WatchArgs {
    /// Repeat every --interval until Ctrl-C, acting on and printing only what is new since
    /// the round before (sync: a new commit; drift: drift not seen before).
    #[arg(long)]
    pub watch: bool,
    /// How often --watch checks, fetching a checkout's remotes first when git is read.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub interval: Duration,
}

/// `--wait`, `--timeout`, `--history-max`, `--lock-duration`: how a change to the cluster
/// (a sync, a heal) is waited for, recorded and locked.
#[derive(Debug, Clone, Copy, Args)]
pub struct ChangeArgs {
    /// After changing the cluster, wait until every object is healthy (--wait=false skips
    /// it; default: the app list's `wait:`, else true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub wait: Option<bool>,
    /// How long to wait for health, and to retry requests while changing the cluster
    /// (default: the app list's `timeout:`, else 5m).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Release records to keep (a sync that changes nothing records none).
    #[arg(long, default_value_t = gitops::sync::DEFAULT_HISTORY_MAX, value_name = "N")]
    pub history_max: usize,
    /// How long the app's lock lasts without renewal: how soon a crashed sync or heal
    /// stops keeping others out.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lock_duration: Duration,
}

impl ChangeArgs {
    /// `--timeout`, else the app list's `timeout:` for the app, else 5m.
    pub fn timeout_for(&self, spec: Option<&AppSpec>) -> Duration {
        self.timeout
            .or(spec.and_then(|s| s.timeout))
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Health waiting as the flags ask, else as the app list says (default: wait 5m).
    pub fn wait_for(&self, spec: Option<&AppSpec>) -> Option<WaitOptions> {
        let wait = self.wait.or(spec.and_then(|s| s.wait)).unwrap_or(true);
        wait.then(|| WaitOptions {
            timeout: self.timeout_for(spec),
            poll_interval: Duration::from_secs(1),
        })
    }
}

/// `--web`, `--open`, `--address` and `--allow-actions`: the dashboard, served on loopback with the user's own
/// kubeconfig.
#[derive(Debug, Clone, Copy, Default, Args)]
#[command(next_help_heading = "Dashboard")]
pub struct WebArgs {
    /// Serve a dashboard of every app (health, drift, resource tree, history) in the
    /// browser, on 127.0.0.1 at a free port, until Ctrl-C; the URL printed carries its token.
    #[arg(long)]
    pub web: bool,
    /// With --web: open the dashboard in the browser.
    #[arg(long, requires = "web")]
    pub open: bool,
    /// With --web: listen on IP or IP:PORT instead (default 127.0.0.1, a free port). An
    /// address other than loopback lets anyone who gets the token in from the network.
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_address, requires = "web")]
    pub address: Option<std::net::SocketAddr>,
    /// With --web: offer to roll an app back to one of its releases, to sync its deployed
    /// release again and to heal its drift (shown first, then confirmed, and recorded as
    /// kubectl sync --rollback and kubectl drift --heal record them).
    #[arg(long, requires = "web")]
    pub allow_actions: bool,
}

impl WebArgs {
    /// Where to listen: `--address`, else 127.0.0.1 at a free port.
    pub fn listen(&self) -> std::net::SocketAddr {
        self.address
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// `IP` (a free port) or `IP:PORT`; IPv6 as `[::1]:PORT` or `::1`.
fn parse_address(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(address) = text.parse::<std::net::SocketAddr>() {
        return Ok(address);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 0))
        .map_err(|_| format!("\"{text}\" is not an IP address or IP:PORT"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_is_an_ip_with_or_without_a_port() {
        assert_eq!(parse_address("0.0.0.0").unwrap().to_string(), "0.0.0.0:0");
        assert_eq!(
            parse_address("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse_address("::1").unwrap().to_string(), "[::1]:0");
        assert!(
            parse_address("localhost")
                .unwrap_err()
                .contains("not an IP")
        );
    }
}
