//! Flag combinations that make no sense, refused before anything connects.

use anyhow::{Result, bail};
use gitops::app_identity::validate_app_name;

use crate::Args;

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
    if args.repeat.interval.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    Ok(())
}
