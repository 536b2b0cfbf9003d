//! The stable documents `-o json` and `-o yaml` print. Field names are part of the
//! interface: add fields, never rename or remove them (docs/release-history.md lists them).

use std::io::{self, Write};

use gitops::diff::{ChangeSet, DiffReport};
use gitops::release::history::{
    AppHistory, AppSummary, Release, ReleaseObject, Source, Unreadable,
};
use serde::Serialize;

use crate::show::Document as Format;

/// `{"apps": [...]}`: every app with its newest release.
#[derive(Serialize)]
struct Apps<'a> {
    apps: Vec<AppEntry<'a>>,
}

#[derive(Serialize)]
struct AppEntry<'a> {
    app: &'a str,
    namespace: &'a str,
    source: Source,
    /// How many release records the app has.
    releases: usize,
    /// The newest release, `null` when its record cannot be read...
    latest: Option<&'a Release>,
    /// ...and then why.
    unreadable: Option<&'a Unreadable>,
}

/// One app's releases, newest first; records that cannot be read apart, with the reason.
#[derive(Serialize)]
struct History<'a> {
    app: &'a str,
    namespace: &'a str,
    source: Source,
    releases: Vec<&'a Release>,
    unreadable: Vec<&'a Unreadable>,
}

/// One release: every field, its objects, and its manifest when asked for.
#[derive(Serialize)]
struct One<'a> {
    #[serde(flatten)]
    release: &'a Release,
    objects: &'a [ReleaseObject],
    /// The hooks it ran, in the order they started (absent when none ran).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    hooks: &'a [gitops::release::record::HookRun],
    /// Masked unless --show-secrets; `null` without --manifest.
    manifest: Option<&'a str>,
    /// A chart's user-supplied values (Helm's `config`); `null` unless --show-secrets,
    /// as they can hold credentials.
    values: Option<&'a serde_json::Value>,
}

/// diff-git's document, with the app it is about.
#[derive(Serialize)]
struct Diff<'a> {
    app: &'a str,
    namespace: &'a str,
    source: Source,
    before: &'a str,
    after: &'a str,
    #[serde(flatten)]
    report: DiffReport,
    /// Always empty: kept so the document has diff-git's shape.
    conflicts: [(); 0],
}

pub fn apps(apps: &[AppSummary], format: Format) -> io::Result<()> {
    let document = Apps {
        apps: apps
            .iter()
            .map(|a| AppEntry {
                app: &a.app,
                namespace: &a.namespace,
                source: a.source,
                releases: a.releases,
                latest: a.latest.as_ref().ok(),
                unreadable: a.latest.as_ref().err(),
            })
            .collect(),
    };
    write(&document, format)
}

pub fn history(history: &AppHistory, format: Format) -> io::Result<()> {
    let document = History {
        app: &history.app,
        namespace: &history.namespace,
        source: history.source,
        releases: history
            .entries
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .collect(),
        unreadable: history
            .entries
            .iter()
            .filter_map(|e| e.as_ref().err())
            .collect(),
    };
    write(&document, format)
}

pub fn release(
    release: &Release,
    objects: &[ReleaseObject],
    manifest: Option<&str>,
    show_values: bool,
    format: Format,
) -> io::Result<()> {
    write(
        &One {
            release,
            objects,
            hooks: &release.hooks,
            manifest,
            values: release.values.as_ref().filter(|_| show_values),
        },
        format,
    )
}

pub fn diff(
    release: &Release,
    changes: &ChangeSet,
    before: &str,
    after: &str,
    format: Format,
) -> io::Result<()> {
    let document = Diff {
        app: &release.app,
        namespace: &release.namespace,
        source: release.source,
        before,
        after,
        report: changes.report(false),
        conflicts: [],
    };
    write(&document, format)
}

fn write(document: &impl Serialize, format: Format) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, document)?;
            writeln!(out)?;
        }
        Format::Yaml => {
            let text = serde_yaml_ng::to_string(document).map_err(io::Error::other)?;
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()
}
