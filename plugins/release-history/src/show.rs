//! Each view the positional arguments ask for: read from the cluster, then printed for
//! people ([`human`]) or as a document (`-o json|yaml`, [`document`]).

use anyhow::{Context, Result};
use gitops::release::history::{self, Source};
use gitops_cli::diff_view;

use crate::{Args, document, human};

/// What every view reads with: the flags, the client and the namespace.
pub struct View<'a> {
    pub args: &'a Args,
    pub client: kube::Client,
    pub namespace: &'a str,
    /// `--source`: one tool's releases only.
    pub only: Option<Source>,
}

impl View<'_> {
    fn color(&self) -> bool {
        self.args.output.color.enabled()
    }

    /// Every app of the namespace (`-A`: of every namespace) with its newest release.
    pub async fn apps(&self) -> Result<()> {
        let scope = (!self.args.namespaces.all).then_some(self.namespace);
        let apps = history::apps(&self.client, scope, self.only).await?;
        match self.args.output.format {
            Some(format) => document::apps(&apps, format)?,
            None => human::apps(&apps, scope, self.color())?,
        }
        Ok(())
    }

    /// One app's releases, newest first, at most `--max`.
    pub async fn history(&self, app: &str) -> Result<()> {
        let max = self.args.max.map(|m| m as usize);
        let found = history::history(&self.client, self.namespace, app, self.only, max).await?;
        match self.args.output.format {
            Some(format) => document::history(&found, format)?,
            None => human::history(&found, self.color())?,
        }
        Ok(())
    }

    /// One release: its fields and objects, or with `--manifest` what it applied.
    pub async fn one(&self, app: &str, revision: u32) -> Result<()> {
        let release =
            history::release(&self.client, self.namespace, app, self.only, revision).await?;
        let show_secrets = self.args.output.show_secrets;
        let manifest = self.args.manifest.then(|| {
            if show_secrets {
                release.manifest.clone()
            } else {
                history::masked_manifest(&release.manifest)
            }
        });
        let objects = history::objects(&release).unwrap_or_else(|err| {
            eprintln!("warning: {err}; its objects are not listed");
            Vec::new()
        });
        match (self.args.output.format, manifest) {
            (Some(format), manifest) => document::release(
                &release,
                &objects,
                manifest.as_deref(),
                show_secrets,
                format,
            )?,
            (None, Some(manifest)) => human::manifest(&manifest)?,
            (None, None) => human::release(&release, &objects, show_secrets, self.color())?,
        }
        Ok(())
    }

    /// What changed between two releases of an app, object by object.
    pub async fn diff(&self, app: &str, before: u32, after: u32) -> Result<()> {
        // One after the other: the second lookup knows the source the first found.
        let old = history::release(&self.client, self.namespace, app, self.only, before).await?;
        let new = history::release(&self.client, self.namespace, app, Some(old.source), after)
            .await
            .with_context(|| format!("comparing release {before} with release {after}"))?;
        let mut changes = history::diff(&old, &new)?;
        if !self.args.output.show_secrets {
            changes.mask_secrets();
        }
        let (before_label, after_label) = (label(before), label(after));
        match self.args.output.format {
            Some(format) => document::diff(&old, &changes, &before_label, &after_label, format)?,
            None => diff_view::unified(
                &mut std::io::stdout(),
                &diff_view::View {
                    changes: &changes,
                    before: &before_label,
                    after: &after_label,
                    conflicts: &[],
                    owners: &[],
                    hooks: &[],
                    context: self.args.unified.lines,
                    color: self.color(),
                },
            )?,
        }
        Ok(())
    }
}

/// How a release is named in a diff's headers: `--- release-2/apps/Deployment/shop/web`.
fn label(revision: u32) -> String {
    format!("release-{revision}")
}
