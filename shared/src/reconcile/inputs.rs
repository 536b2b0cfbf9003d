//! What an app is made of at a revision, as one id. The reconciler syncs an app when the
//! id at the branch's head differs from the id at the commit its deployed release came
//! from: a commit that touches one app of a thousand syncs that one.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::app_file::AppSpec;
use crate::objects::hash::short_hex;
use crate::render::RemoteChart;

/// File names that make a directory a kustomization (kustomize may read files anywhere in
/// the repository from there: `../base`).
const KUSTOMIZATIONS: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One app as a destination names it.
#[derive(Debug, Clone, Copy)]
pub struct AppInputs<'a> {
    /// The app list's entry (its values, set, options and chart version are inputs too).
    pub spec: Option<&'a AppSpec>,
    /// The app's repo-relative path.
    pub root: &'a str,
    /// A chart that is not in git.
    pub chart: Option<&'a RemoteChart>,
}

/// An app's inputs in `files` (a revision's whole tree), as an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputsId {
    pub id: String,
    /// The inputs can change without a commit (a chart version range, or the newest
    /// version): such an app is synced every round, which changes nothing when they did
    /// not.
    pub moves_without_commits: bool,
}

/// The id of `app`'s inputs in `files`: its entry of the app list, every file under its
/// path, its values files and Jsonnet library directories. A kustomization or a chart with
/// `file://` dependencies may read anything in the repository, so for those the whole
/// tree counts.
pub fn inputs_id(files: &BTreeMap<String, Vec<u8>>, app: AppInputs<'_>) -> InputsId {
    let mut hash = Sha256::new();
    // The entry as parsed, so formatting and comments in the list change nothing.
    hash.update(format!("{:?}\0{:?}\0{}\0", app.spec, app.chart, app.root).as_bytes());
    let under_root: Vec<(&String, &Vec<u8>)> = under(files, app.root).collect();
    let reaches_out = under_root.iter().any(|(path, bytes)| {
        let name = path.rsplit('/').next().unwrap_or(path);
        KUSTOMIZATIONS.contains(&name)
            || name == "Chart.yaml" && bytes.windows(7).any(|w| w == b"file://")
    });
    let mut add = |path: &str, bytes: &[u8]| {
        hash.update(path.as_bytes());
        hash.update(b"\0");
        hash.update(bytes.len().to_le_bytes());
        hash.update(bytes);
    };
    if reaches_out {
        for (path, bytes) in files {
            add(path, bytes);
        }
    } else {
        for (path, bytes) in under_root {
            add(path, bytes);
        }
        let extra = app
            .spec
            .map(|spec| spec.values.iter().chain(&spec.jsonnet.libs))
            .into_iter()
            .flatten();
        for path in extra {
            for (path, bytes) in under(files, path) {
                add(path, bytes);
            }
        }
    }
    let moves_without_commits = app
        .chart
        .is_some_and(|chart| !exact_version(&chart.version));
    InputsId {
        id: short_hex(&hash.finalize()),
        moves_without_commits,
    }
}

/// The files at `path` or below it ("" is the whole tree).
fn under<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    path: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Vec<u8>)> + 'a {
    let path = path.trim_matches('/');
    files.iter().filter(move |(file, _)| {
        path.is_empty()
            || file.as_str() == path
            || file
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Whether a chart version names one version (`1.2.3`, `v1.2.3-rc.1`), not a range or the
/// newest.
fn exact_version(version: &str) -> bool {
    let version = version.trim().trim_start_matches('v');
    !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        && version.split(['-', '+']).next().is_some_and(|core| {
            core.split('.').count() == 3 && core.split('.').all(|n| n.parse::<u64>().is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    fn at(root: &str) -> AppInputs<'_> {
        AppInputs {
            spec: None,
            root,
            chart: None,
        }
    }

    #[test]
    fn only_a_change_under_the_apps_path_changes_its_id() {
        let before = tree(&[
            ("apps/a/cm.yaml", "a: 1"),
            ("apps/ab/cm.yaml", "x: 1"),
            ("apps/b/cm.yaml", "b: 1"),
            ("README.md", "hi"),
        ]);
        let mut after = before.clone();
        after.insert("apps/b/cm.yaml".into(), b"b: 2".to_vec());
        after.insert("apps/ab/cm.yaml".into(), b"x: 2".to_vec());
        after.insert("README.md".into(), b"hello".to_vec());
        assert_eq!(
            inputs_id(&before, at("apps/a")),
            inputs_id(&after, at("apps/a"))
        );
        assert_ne!(
            inputs_id(&before, at("apps/b")),
            inputs_id(&after, at("apps/b"))
        );
        // A file added or removed counts, as does a file moved between two paths.
        let mut added = before.clone();
        added.insert("apps/a/more.yaml".into(), b"m: 1".to_vec());
        assert_ne!(
            inputs_id(&before, at("apps/a")),
            inputs_id(&added, at("apps/a"))
        );
    }

    #[test]
    fn a_kustomization_depends_on_the_whole_tree() {
        let before = tree(&[
            ("base/cm.yaml", "a: 1"),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]",
            ),
        ]);
        let mut after = before.clone();
        after.insert("base/cm.yaml".into(), b"a: 2".to_vec());
        assert_ne!(
            inputs_id(&before, at("overlays/prod")),
            inputs_id(&after, at("overlays/prod"))
        );
    }

    #[test]
    fn chart_versions_that_name_one_version_are_exact() {
        for exact in ["1.2.3", "v1.2.3", "6.5.4-rc.1", "1.0.0+build.5"] {
            assert!(exact_version(exact), "{exact}");
        }
        for range in ["", "^1.2.3", "~1.2", "1.x", ">=1.0.0 <2.0.0", "1.2", "*"] {
            assert!(!exact_version(range), "{range}");
        }
        let files = tree(&[("values.yaml", "a: 1")]);
        let chart = RemoteChart {
            repository: "https://charts.example.com".into(),
            name: "podinfo".into(),
            version: "^6.0.0".into(),
        };
        let app = AppInputs {
            spec: None,
            root: "",
            chart: Some(&chart),
        };
        assert!(inputs_id(&files, app).moves_without_commits);
    }
}
