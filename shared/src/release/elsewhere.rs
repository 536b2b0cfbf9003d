//! Where an app's releases are, when they are not where the user looked: `kubectl drift
//! web` without `-n` looks in the context's namespace (often `default`), and the app's
//! releases are in `shop`. One cluster-wide LIST of record metadata per source, made only
//! after the namespace asked about turned out to have none.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::app_identity::APP_LABEL;
use crate::release::{helm, store};

/// Which records to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    Ours,
    Helm,
    Both,
}

/// The namespaces other than `except` holding release records of `app`, sorted. Empty
/// when there are none, or when records may not be listed across namespaces (the hint is
/// then left out, not the error it comes with).
pub async fn namespaces_of(
    client: &Client,
    app: &str,
    records: Records,
    except: &str,
) -> Vec<String> {
    let api: Api<Secret> = Api::all(client.clone());
    let ours = ListParams::default()
        .labels(&format!("{APP_LABEL}={app}"))
        .fields(&format!("type={}", store::RELEASE_TYPE));
    let helms = ListParams::default()
        .labels(&format!(
            "{}={},{}={app}",
            helm::OWNER_LABEL,
            helm::OWNER,
            helm::NAME_LABEL
        ))
        .fields(&format!("type={}", helm::RELEASE_TYPE));
    let wanted = |which: Records| records == which || records == Records::Both;
    let list = |params: ListParams, wanted: bool| {
        let api = api.clone();
        async move {
            match wanted {
                true => api
                    .list_metadata(&params)
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default(),
                false => Vec::new(),
            }
        }
    };
    let (ours, helms) = futures::join!(
        list(ours, wanted(Records::Ours)),
        list(helms, wanted(Records::Helm))
    );
    let namespaces: BTreeSet<String> = ours
        .iter()
        .chain(&helms)
        .filter_map(|meta| meta.namespace())
        .filter(|ns| ns != except)
        .collect();
    namespaces.into_iter().collect()
}

/// ` ; its releases are in namespace shop: add -n shop`, or nothing when none are known.
pub fn hint(app: &str, namespaces: &[String]) -> String {
    match namespaces {
        [] => String::new(),
        [one] => format!("; app {app} has releases in namespace {one}: add -n {one}"),
        several => format!(
            "; app {app} has releases in namespaces {}: add -n with one of them",
            several.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_the_namespaces_and_the_flag() {
        assert_eq!(hint("web", &[]), "");
        assert_eq!(
            hint("web", &["shop".into()]),
            "; app web has releases in namespace shop: add -n shop"
        );
        assert_eq!(
            hint("web", &["a".into(), "b".into()]),
            "; app web has releases in namespaces a, b: add -n with one of them"
        );
    }
}
