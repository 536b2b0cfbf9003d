//! From a source tree to the objects it wants: rendered, then keyed into a desired set.
//! Above both `render` and `objects` (which builds on render's manifests), so neither
//! has to know the other's half.

use std::collections::BTreeMap;

use crate::objects::{DesiredSet, ObjectsError, ScopeResolver, SourceTexts};
use crate::render::{self, Manifest, RenderError, RenderOptions, Renderer};
use crate::source::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Objects(#[from] ObjectsError),
}

/// Renders a tree and keys its objects.
pub fn desired_set(
    snapshot: &Snapshot,
    options: &RenderOptions,
    namespace: &str,
    scopes: &dyn ScopeResolver,
) -> Result<(Renderer, DesiredSet), DesiredError> {
    rendered(snapshot, options)?.keyed(namespace, scopes)
}

/// A tree rendered, its objects not yet keyed: rendering needs no cluster, so it can run
/// while the client connects; keying needs the cluster's scopes.
pub struct Rendered {
    pub renderer: Renderer,
    manifests: Vec<Manifest>,
    /// When no object was rendered: what the path holds ([`describe_empty`]).
    empty: Option<String>,
    /// The texts of the files the objects were read from, when the objects are as written
    /// in them (plain YAML and JSON, not rendered): a refused field is found there again.
    /// Kept rather than a position per value: these texts take a fraction of the objects.
    sources: Option<SourceTexts>,
}

/// The first half of [`desired_set`].
pub fn rendered(snapshot: &Snapshot, options: &RenderOptions) -> Result<Rendered, DesiredError> {
    let renderer = render::renderer_for(snapshot, options);
    let manifests = render::render(snapshot, options)?;
    let empty = manifests
        .is_empty()
        .then(|| describe_empty(snapshot, renderer));
    // The revision's own files, shared: a refused field is found again in them.
    let sources = (renderer == Renderer::Plain).then(|| SourceTexts::new(snapshot.files.clone()));
    Ok(Rendered {
        renderer,
        manifests,
        empty,
        sources,
    })
}

/// What a path that rendered no objects holds, for the refusal that stops a sync from
/// pruning everything: `path apps/web renders no objects: 3 files, none of them a
/// manifest: *.cue`. Files are grouped by extension (`*.cue`), or by name when
/// they have none, and counted per group when there are several groups.
pub fn describe_empty(snapshot: &Snapshot, renderer: Renderer) -> String {
    let root = if snapshot.root.is_empty() {
        "."
    } else {
        snapshot.root.as_str()
    };
    let head = format!("path {root} renders no objects");
    if renderer != Renderer::Plain {
        return format!("{head} ({renderer})");
    }
    let mut patterns: BTreeMap<String, usize> = BTreeMap::new();
    let mut files = 0;
    for (path, _) in snapshot.files_under_root() {
        files += 1;
        let name = path.rsplit('/').next().unwrap_or(path);
        let pattern = match name.rsplit_once('.') {
            Some((stem, extension)) if !stem.is_empty() => format!("*.{extension}"),
            _ => name.to_string(),
        };
        *patterns.entry(pattern).or_default() += 1;
    }
    if files == 0 {
        return format!("{head}: it holds no files");
    }
    let listed: Vec<String> = if patterns.len() == 1 {
        patterns.into_keys().collect()
    } else {
        patterns
            .into_iter()
            .map(|(pattern, n)| format!("{pattern} ({n})"))
            .collect()
    };
    format!(
        "{head}: {files} file{}, none of them a manifest: {}",
        if files == 1 { "" } else { "s" },
        listed.join(", ")
    )
}

impl Rendered {
    /// What the path holds, if it rendered no objects.
    pub fn nothing_rendered(&self) -> Option<&str> {
        self.empty.as_deref()
    }

    /// The second half of [`desired_set`]: the objects keyed, with `namespace` for those
    /// without one.
    pub fn keyed(
        self,
        namespace: &str,
        scopes: &dyn ScopeResolver,
    ) -> Result<(Renderer, DesiredSet), DesiredError> {
        let set = DesiredSet::build(self.manifests, namespace, scopes)?;
        let set = match self.sources {
            Some(sources) => set.with_sources(sources),
            None => set,
        };
        Ok((self.renderer, set))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn snapshot(root: &str, files: &[&str]) -> Snapshot {
        Snapshot {
            files: files
                .iter()
                .map(|path| (path.to_string(), Vec::new()))
                .collect::<BTreeMap<_, _>>()
                .into(),
            root: root.to_string(),
            commit: None,
        }
    }

    #[test]
    fn an_empty_render_says_what_the_path_holds() {
        let cue = snapshot(
            "apps/web",
            &[
                "apps/web/a.cue",
                "apps/web/lib/b.cue",
                "apps/web/c.cue",
                "apps/db/x.yaml",
            ],
        );
        assert_eq!(
            describe_empty(&cue, Renderer::Plain),
            "path apps/web renders no objects: 3 files, none of them a manifest: *.cue"
        );
        let mixed = snapshot("", &["README", "empty.yaml", "main.cue", ".env"]);
        assert_eq!(
            describe_empty(&mixed, Renderer::Plain),
            "path . renders no objects: 4 files, none of them a manifest: \
             *.cue (1), *.yaml (1), .env (1), README (1)"
        );
        assert_eq!(
            describe_empty(&snapshot("chart", &["chart/Chart.yaml"]), Renderer::Helm),
            "path chart renders no objects (helm)"
        );
    }

    #[test]
    fn only_an_empty_render_is_described() {
        let tree = snapshot("web", &["web/a.cue"]);
        let empty = rendered(&tree, &RenderOptions::default()).unwrap();
        assert!(empty.nothing_rendered().unwrap().ends_with("*.cue"));
        let mut tree = tree;
        std::sync::Arc::make_mut(&mut tree.files).insert(
            "web/cm.yaml".into(),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n".to_vec(),
        );
        assert_eq!(
            rendered(&tree, &RenderOptions::default())
                .unwrap()
                .nothing_rendered(),
            None
        );
    }
}
