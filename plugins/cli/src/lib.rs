//! What every kubectl-gitops plugin's command line shares: kubectl's connection flags,
//! the output and colour flags, and `main`'s error printing and exit codes. The library
//! (`gitops`) stays free of clap; this crate is the one place flags are defined.

mod color;
pub mod completion;
mod connection;
pub mod depends;
pub mod destinations;
pub mod diff_view;
mod exit;
pub mod flags;
pub mod interrupt;
mod source_args;
pub mod table;
pub mod targets;
pub mod tree_view;
pub mod watch;

pub use color::ColorWhen;
pub use connection::{ConnectionArgs, Discovering, EarlyDiscovery};
pub use exit::{Outcome, main, run};
pub use flags::{
    AdoptArgs, AllNamespacesArgs, AppNameArgs, ChangeArgs, CreateNamespaceArgs, DEFAULT_TIMEOUT,
    JsonFormat, OutputArgs, PruneCrdsArgs, RepoArgs, UnifiedArgs, WatchArgs, WebArgs,
};
pub use source_args::{ResolvedSource, Selection, SourceArgs};
pub use targets::{AppListArgs, Target};

/// Every plugin allocates through mimalloc: a plan builds and drops many small JSON
/// values (thousands of objects, each a tree of strings and maps), where the system
/// allocator spends about a quarter of the client's CPU time. Its 2.x series (the
/// workspace's `v2` feature) returns freed pages to the system after 10 ms where 3.x waits
/// a second: pages freed between a command's phases are given back before the next one
/// peaks (20-30 MiB less at 10,000 objects, for the same CPU time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--version`: the version and the git commit the plugin was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBECTL_GITOPS_COMMIT"),
    ")"
);
