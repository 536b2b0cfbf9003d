//! `KUBECTL_EXTERNAL_DIFF`, as kubectl honours it: both sides are written as YAML files
//! into two directories, and the named program is run on them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use gitops::diff::to_yaml;
use gitops::objects::ObjectKey;

use gitops_cli::diff_view::View;

/// Runs the external diff program on two directories holding the objects that differ.
/// Its output goes straight to the terminal; its exit status 1 means "differences" as
/// with diff(1), anything above is an error.
pub fn run(command: &str, view: &View) -> Result<()> {
    // kubectl splits the variable on spaces: a program and its flags.
    let mut words = command.split_whitespace();
    let program = words.next().context("KUBECTL_EXTERNAL_DIFF is empty")?;
    let before = tempfile::Builder::new().prefix("LIVE-").tempdir()?;
    let after = tempfile::Builder::new().prefix("MERGED-").tempdir()?;
    for change in view.changes.differences() {
        let name = file_name(&change.key);
        if let Some(object) = &change.before {
            write(before.path(), &name, &to_yaml(object))?;
        }
        if let Some(object) = &change.after {
            write(after.path(), &name, &to_yaml(object))?;
        }
    }
    let status = Command::new(program)
        .args(words)
        .arg(before.path())
        .arg(after.path())
        .status()
        .with_context(|| format!("cannot run KUBECTL_EXTERNAL_DIFF program \"{program}\""))?;
    match status.code() {
        Some(0 | 1) => Ok(()),
        _ => bail!("KUBECTL_EXTERNAL_DIFF program \"{program}\" failed ({status})"),
    }
}

/// `group.Kind.namespace.name`, as kubectl names the files.
fn file_name(key: &ObjectKey) -> String {
    let group = if key.group.is_empty() {
        "core"
    } else {
        key.group.as_str()
    };
    match &key.namespace {
        Some(ns) => format!("{group}.{}.{ns}.{}", key.kind, key.name),
        None => format!("{group}.{}.{}", key.kind, key.name),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(dir.join(name), text)
        .with_context(|| format!("cannot write {}", dir.join(name).display()))
}
