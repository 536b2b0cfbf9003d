//! Charts from chart repositories and OCI registries: what `helm dependency build` does,
//! done by us, so helm itself stays offline in its private environment.
//!
//! Two uses:
//! - a chart's `dependencies:` not vendored under `charts/` ([`dependencies::resolve`]),
//!   which the Helm renderer writes into the chart's `charts/` before `helm template`;
//! - a chart that is not in git at all (an Argo CD multi-source app):
//!
//! ```no_run
//! use gitops::charts::{ChartRef, ChartSources, fetch};
//! let sources = ChartSources::from_env()?;
//! let chart = fetch(
//!     &ChartRef {
//!         repository: "oci://ghcr.io/example/charts".into(),
//!         name: "web".into(),
//!         version: "^1.2".into(),
//!     },
//!     &sources,
//! )?;
//! std::fs::write(chart.file_name(), &chart.archive)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sources: `https://` (and `http://`) chart repositories with an `index.yaml`;
//! `oci://host/path` registries (the distribution API; plain HTTP only for a registry on
//! 127.0.0.1 / localhost / ::1 and only with `KUBECTL_GITOPS_PLAIN_HTTP=1`); `@name` and
//! `alias:name` of a repository in the Helm repositories file.
//!
//! Cache (`$XDG_CACHE_HOME/kubectl-gitops/charts`, else `~/.cache/kubectl-gitops/charts`):
//! archives by repository, name, version and digest, verified before they are stored and
//! when read; an exact version (a `Chart.lock`'s, or a pinned `1.2.3`) found there makes no
//! request at all. For a range, a cached index (or OCI tag list) is used while it is
//! younger than an hour and has a matching version; else it is fetched again.
//! `KUBECTL_GITOPS_CHART_REFRESH=1` always fetches indexes and tag lists anew.
//!
//! Credentials as Helm keeps them: the repositories file (`$HELM_REPOSITORY_CONFIG`, else
//! `$HELM_CONFIG_HOME/repositories.yaml`, else `$XDG_CONFIG_HOME/helm/…` or
//! `~/.config/helm/…`), sent only to the repository's own host unless
//! `pass_credentials_all`; for registries the registry config (`$HELM_REGISTRY_CONFIG`,
//! else `…/helm/registry/config.json`) then Docker's (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), with `docker-credential-*` helpers. Extra CAs: the
//! repository's `caFile`, or `SSL_CERT_FILE`. No credential is ever in an error or a log.

mod cache;
mod credentials;
pub mod dependencies;
mod error;
mod fetch;
mod http;
mod index;
pub mod lock;
mod oci;
mod repo;
pub mod semver;
mod sources;

pub use cache::Cache;
pub use credentials::{Credentials, Repository};
pub use error::ChartSourceError;
pub use fetch::fetch;
pub use http::display_url;
pub use sources::{ChartRef, ChartSources, FetchedChart, INDEX_MAX_AGE};
