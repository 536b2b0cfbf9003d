//! What a chart's `.Capabilities` says about the cluster it is rendered for: the
//! Kubernetes version and the API versions the cluster serves, in the form `helm install`
//! gives them, passed to `helm template` as `--kube-version` and `--api-versions`.
//!
//! Helm builds `.Capabilities.APIVersions` from discovery: every served `group/version`,
//! and `group/version/Kind` for every resource listed under it, subresources included (so
//! `apps/v1/Scale` is there, from `deployments/scale`). The core group's versions have no
//! group: `v1` and `v1/Pod`.

use std::collections::BTreeSet;

use super::HelmOptions;

/// A cluster as a chart sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The server's version (`/version`'s `gitVersion`, e.g. `v1.37.0`); `None` leaves
    /// helm's built-in default.
    pub kube_version: Option<String>,
    /// `group/version` and `group/version/Kind` entries, sorted, each once.
    pub api_versions: Vec<String>,
}

/// One group version a server serves, and the kinds of its resources and subresources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedVersion {
    /// `apps`, or `""` for the core group.
    pub group: String,
    pub version: String,
    /// The kinds listed under it, in any order, repeats allowed.
    pub kinds: Vec<String>,
}

/// Helm's `.Capabilities.APIVersions` for what discovery found: each `group/version`, and
/// `group/version/Kind` for each kind served there, sorted and without repeats.
pub fn helm_api_versions<'a>(served: impl IntoIterator<Item = &'a ServedVersion>) -> Vec<String> {
    let mut set = BTreeSet::new();
    for served in served {
        let group_version = if served.group.is_empty() {
            served.version.clone()
        } else {
            format!("{}/{}", served.group, served.version)
        };
        for kind in served.kinds.iter().filter(|k| !k.is_empty()) {
            set.insert(format!("{group_version}/{kind}"));
        }
        set.insert(group_version);
    }
    set.into_iter().collect()
}

/// Whether `text` is a Kubernetes version as `helm template --kube-version` takes it: a
/// semantic version with an optional `v` and optional minor and patch (`v1.31.2`, `1.31`,
/// `v1.32.0-rc.1+k3s1`). The error says what was expected.
pub fn check_kube_version(text: &str) -> Result<String, String> {
    let expected = || {
        format!(
            "`{text}` is not a Kubernetes version: expected MAJOR.MINOR[.PATCH], with an \
             optional leading v, e.g. v1.31.0 or 1.31"
        )
    };
    let bare = text.strip_prefix('v').unwrap_or(text);
    let (core, _build) = bare.split_once('+').unwrap_or((bare, ""));
    let (core, pre) = match core.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (core, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let pre_ok = pre.is_none_or(|pre| {
        !pre.is_empty()
            && pre
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    if (1..=3).contains(&numbers.len()) && numbers.iter().all(numeric) && pre_ok {
        Ok(text.to_string())
    } else {
        Err(expected())
    }
}

impl HelmOptions {
    /// Renders for `cluster`: its API versions are added to those given on the command
    /// line (as `helm template --api-versions` adds to helm's defaults), and its version
    /// is used unless one was given (`--kube-version` overrides, as in helm).
    pub fn add_cluster(&mut self, cluster: &Capabilities) {
        if self.kube_version.is_none() {
            self.kube_version = cluster.kube_version.clone();
        }
        let given = std::mem::take(&mut self.api_versions);
        let mut all: BTreeSet<String> = cluster.api_versions.iter().cloned().collect();
        all.extend(given);
        self.api_versions = all.into_iter().collect();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn served(group: &str, version: &str, kinds: &[&str]) -> ServedVersion {
        ServedVersion {
            group: group.into(),
            version: version.into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn discovery_becomes_helms_api_versions() {
        let discovered = [
            served("", "v1", &["Pod", "Binding", "Pod", "Eviction", ""]),
            served("apps", "v1", &["Deployment", "Scale", "Deployment"]),
            served("monitoring.coreos.com", "v1", &["ServiceMonitor"]),
            served("batch", "v1", &[]),
        ];
        assert_eq!(
            helm_api_versions(&discovered),
            [
                "apps/v1",
                "apps/v1/Deployment",
                "apps/v1/Scale",
                "batch/v1",
                "monitoring.coreos.com/v1",
                "monitoring.coreos.com/v1/ServiceMonitor",
                "v1",
                "v1/Binding",
                "v1/Eviction",
                "v1/Pod",
            ]
        );
        assert!(helm_api_versions(&[]).is_empty());
    }

    #[test]
    fn flags_add_api_versions_and_override_the_version() {
        let cluster = Capabilities {
            kube_version: Some("v1.37.0".into()),
            api_versions: vec!["apps/v1".into(), "v1".into()],
        };
        let mut options = HelmOptions::default();
        options.add_cluster(&cluster);
        assert_eq!(options.kube_version.as_deref(), Some("v1.37.0"));
        assert_eq!(options.api_versions, ["apps/v1", "v1"]);

        let mut options = HelmOptions {
            kube_version: Some("1.29".into()),
            api_versions: vec!["monitoring.coreos.com/v1".into(), "v1".into()],
            ..HelmOptions::default()
        };
        options.add_cluster(&cluster);
        assert_eq!(options.kube_version.as_deref(), Some("1.29"));
        assert_eq!(
            options.api_versions,
            ["apps/v1", "monitoring.coreos.com/v1", "v1"]
        );
    }

    #[test]
    fn kubernetes_versions_are_checked() {
        for good in [
            "v1.31.0",
            "1.31",
            "1",
            "v1.32.0-rc.1",
            "v1.30.4+k3s1",
            "1.29.3-eks-1-29",
        ] {
            assert_eq!(check_kube_version(good).unwrap(), good);
        }
        for bad in [
            "", "v", "latest", "1.x", "1.2.3.4", "1..2", "v1.31-", "1.31 ",
        ] {
            let err = check_kube_version(bad).unwrap_err();
            assert!(err.contains("is not a Kubernetes version"), "{bad}: {err}");
        }
    }
}
