//! Flag combinations that make no sense, refused before anything connects.

use anyhow::{Result, bail};
use gitops::app_identity::validate_app_name;

use crate::{Args, Format};

pub fn check(args: &Args) -> Result<()> {
    if let Some(app) = &args.app {
        validate_app_name(app)?;
        if args.namespaces.all {
            bail!("give an app or --all-namespaces, not both");
        }
        if args.apps.all {
            bail!("give an app or --all, not both");
        }
    }
    if args.apps.all && args.namespaces.all {
        bail!(
            "--all checks the apps of the app list, each in its namespace; leave out --all-namespaces"
        );
    }
    if args.heal && args.against.is_some() {
        bail!(
            "--heal puts the deployed release back, so it cannot be combined with --against (kubectl sync applies a revision)"
        );
    }
    if args.prune_strays && !args.heal {
        bail!("--prune-strays deletes strays while healing; add --heal");
    }
    if args.against.is_some() && args.git.is_some() {
        bail!("--against already compares with git; leave out --git");
    }
    if args.output.format == Some(Format::Tree) {
        tree_usage(args)?;
    }
    if args.repeat.interval.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    Ok(())
}

/// `-o tree` shows one app's objects as one check found them.
fn tree_usage(args: &Args) -> Result<()> {
    if args.app.is_none() {
        bail!("-o tree shows one app's resource tree: kubectl drift APP -o tree");
    }
    if args.heal {
        bail!("-o tree shows what a check found; heal first, then look at the tree");
    }
    if args.repeat.watch {
        bail!("-o tree shows one check; leave out --watch");
    }
    if args.against.is_some() {
        bail!(
            "-o tree shows the deployed release's objects, marked as they compare with it; leave out --against"
        );
    }
    Ok(())
}
