//! From a source tree to the objects it wants: rendered, then keyed into a desired set.
//! Above both `render` and `objects` (which builds on render's manifests), so neither
//! has to know the other's half.

use crate::objects::{DesiredSet, ObjectsError, ScopeResolver};
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
}

/// The first half of [`desired_set`].
pub fn rendered(snapshot: &Snapshot, options: &RenderOptions) -> Result<Rendered, DesiredError> {
    Ok(Rendered {
        renderer: render::detect(snapshot),
        manifests: render::render(snapshot, options)?,
    })
}

impl Rendered {
    /// The second half of [`desired_set`]: the objects keyed, with `namespace` for those
    /// without one.
    pub fn keyed(
        self,
        namespace: &str,
        scopes: &dyn ScopeResolver,
    ) -> Result<(Renderer, DesiredSet), DesiredError> {
        Ok((
            self.renderer,
            DesiredSet::build(self.manifests, namespace, scopes)?,
        ))
    }
}
