//! Each view the positional arguments ask for: read from the cluster, then printed for
//! people ([`human`]) or as a document (`-o json|yaml`, [`document`]).

use std::io::Write;

use anyhow::{Context, Result};
use gitops::kubeconfig::Connection;
use gitops::live::LiveCluster;
use gitops::release::history::{self, Release, Source};
use gitops::release::store::Read;
use gitops_cli::{diff_view, tree_view};

use crate::{Args, Format, document, human};

/// The formats that print a document (`-o json|yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Json,
    Yaml,
}

/// How a view is printed, as `-o` asks.
enum Shown {
    /// Text for people (no `-o`).
    Human,
    Document(Document),
    Tree,
    /// One self-contained page (one app's history only).
    Html,
}

/// What every view reads with: the flags, the client and the namespace.
pub struct View<'a> {
    pub args: &'a Args,
    /// For what needs discovery (the resource tree).
    pub connection: &'a Connection,
    pub client: kube::Client,
    pub namespace: &'a str,
    /// `--source`: one tool's releases only.
    pub only: Option<Source>,
}

impl View<'_> {
    fn color(&self) -> bool {
        self.args.output.color.enabled()
    }

    fn shown(&self) -> Shown {
        match self.args.output.format {
            None => Shown::Human,
            Some(Format::Json) => Shown::Document(Document::Json),
            Some(Format::Yaml) => Shown::Document(Document::Yaml),
            Some(Format::Tree) => Shown::Tree,
            Some(Format::Html) => Shown::Html,
        }
    }

    /// Every app of the namespace (`-A`: of every namespace) with its newest release.
    pub async fn apps(&self) -> Result<()> {
        let scope = (!self.args.namespaces.all).then_some(self.namespace);
        let apps = history::apps(&self.client, scope, self.only, Read::Head).await?;
        match self.shown() {
            Shown::Document(format) => document::apps(&apps, format)?,
            // Refused with the arguments: a tree is one app's.
            Shown::Human | Shown::Tree | Shown::Html => human::apps(&apps, scope, self.color())?,
        }
        Ok(())
    }

    /// One app's releases, newest first, at most `--max`.
    /// With `-o tree`, the tree of its last deployed release.
    pub async fn history(&self, app: &str) -> Result<()> {
        if let Shown::Tree = self.shown() {
            let release =
                history::last_deployed(&self.client, self.namespace, app, self.only).await?;
            return self.tree(&release).await;
        }
        let max = self.args.max.map(|m| m as usize);
        let found = history::history(&self.client, self.namespace, app, self.only, max).await?;
        match self.shown() {
            Shown::Document(format) => document::history(&found, format)?,
            Shown::Html => {
                let page = gitops::dashboard::report::report(&found, jiff::Timestamp::now());
                let mut out = std::io::stdout().lock();
                out.write_all(page.as_bytes())?;
                out.flush()?;
            }
            Shown::Human | Shown::Tree => human::history(&found, self.color())?,
        }
        Ok(())
    }

    /// The resource tree of `release`: its objects as the cluster has them now and what
    /// they own, then a line of counts.
    async fn tree(&self, release: &Release) -> Result<()> {
        let cluster = LiveCluster::connect(self.connection).await?;
        let tree = gitops::tree::for_release(&cluster, release)
            .await
            .with_context(|| {
                format!(
                    "cannot show the resource tree of release {} of app {}",
                    release.revision, release.app
                )
            })?;
        for warning in &tree.warnings {
            eprintln!("warning: {warning}");
        }
        let text = format!(
            "{}\nrelease {} of app {} ({}, {}): {}\n",
            tree_view::text(&tree, false, self.color()),
            release.revision,
            release.app,
            release.source,
            release.status,
            tree_view::summary(&tree)
        );
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// One release: its fields and objects, or with `--manifest` what it applied.
    /// With `-o tree`, that release's objects as they are now.
    pub async fn one(&self, app: &str, revision: u32) -> Result<()> {
        let release =
            history::release(&self.client, self.namespace, app, self.only, revision).await?;
        if let Shown::Tree = self.shown() {
            return self.tree(&release).await;
        }
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
        match (self.shown(), manifest) {
            (Shown::Document(format), manifest) => document::release(
                &release,
                &objects,
                manifest.as_deref(),
                show_secrets,
                format,
            )?,
            (Shown::Human | Shown::Tree | Shown::Html, Some(manifest)) => {
                human::manifest(&manifest)?
            }
            (Shown::Human | Shown::Tree | Shown::Html, None) => {
                human::release(&release, &objects, show_secrets, self.color())?
            }
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
        match self.shown() {
            Shown::Document(format) => {
                document::diff(&old, &changes, &before_label, &after_label, format)?
            }
            Shown::Human | Shown::Tree | Shown::Html => diff_view::unified(
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
