//! Other clusters for a reconciler in a pod, where there is no kubeconfig: each is a
//! kubeconfig kept in a Secret of the reconciler's namespace labelled
//! `kubectl-gitops.io/secret-type=cluster`, under the key `kubeconfig` (Argo CD keeps its
//! clusters in labelled Secrets the same way). An app list entry's `contexts:` name the
//! contexts those kubeconfigs define. They are read again every round, so a Secret added,
//! rotated or removed counts from the next one; each is written to a file only this user
//! may read, which the app's connection reads as it reads `--kubeconfig`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

use crate::api_error::ApiError;
use crate::live::LiveCluster;
use crate::source::credentials::write_private;

/// The label that makes a Secret a cluster's, and its value.
pub const LABEL: &str = "kubectl-gitops.io/secret-type";
pub const LABEL_VALUE: &str = "cluster";
/// The key of the Secret's data that holds the kubeconfig.
pub const KEY: &str = "kubeconfig";

#[derive(Debug, thiserror::Error)]
pub enum ClustersError {
    #[error("cannot list the cluster Secrets in namespace {namespace}: {source}")]
    List {
        namespace: String,
        #[source]
        source: ApiError,
    },
    #[error("cannot write the cluster kubeconfigs in {}: {message}", .dir.display())]
    Write { dir: PathBuf, message: String },
}

/// The contexts the cluster Secrets define, each with the file that defines it, or why it
/// cannot be used.
#[derive(Debug, Default)]
pub struct Clusters {
    contexts: BTreeMap<String, Result<PathBuf, String>>,
    /// Secrets that define nothing usable, and why (no key, not a kubeconfig...).
    pub problems: Vec<String>,
}

/// One Secret as read: its name and its kubeconfig's bytes, if it has the key.
pub struct ClusterSecret {
    pub name: String,
    pub kubeconfig: Option<Vec<u8>>,
}

/// What a Secret's kubeconfig may hold: a program it would run (an `exec` credential
/// plugin, an `auth-provider`) is refused, as anyone who may write a Secret there would
/// choose what the reconciler runs.
fn check(name: &str, text: &str) -> Result<Vec<String>, String> {
    let config = kube::config::Kubeconfig::from_yaml(text).map_err(|e| {
        format!(
            "Secret {name}: {KEY} is not a kubeconfig: {}",
            first_line(&e.to_string())
        )
    })?;
    for user in &config.auth_infos {
        let Some(auth) = &user.auth_info else {
            continue;
        };
        if auth.exec.is_some() || auth.auth_provider.is_some() {
            return Err(format!(
                "Secret {name}: user {} runs a credential program (exec or auth-provider), which the reconciler does not run: give a token or a client certificate",
                user.name
            ));
        }
    }
    if config.contexts.is_empty() {
        return Err(format!("Secret {name}: its kubeconfig defines no context"));
    }
    Ok(config.contexts.into_iter().map(|c| c.name).collect())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

impl Clusters {
    /// Which Secret defines each context: a context two Secrets define is refused (which
    /// cluster an app goes to is never a guess), as is a Secret that is no kubeconfig.
    /// Files are named in `dir` after their Secrets.
    pub fn plan(secrets: &[ClusterSecret], dir: &Path) -> (Clusters, Vec<(PathBuf, Vec<u8>)>) {
        let mut clusters = Clusters::default();
        let mut defined_by: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut files = Vec::new();
        for secret in secrets {
            let Some(bytes) = &secret.kubeconfig else {
                clusters
                    .problems
                    .push(format!("Secret {}: it has no {KEY} key", secret.name));
                continue;
            };
            let text = String::from_utf8_lossy(bytes);
            match check(&secret.name, &text) {
                Ok(contexts) => {
                    let path = dir.join(format!("{}.kubeconfig", secret.name));
                    for context in contexts {
                        defined_by
                            .entry(context.clone())
                            .or_default()
                            .push(&secret.name);
                        clusters.contexts.insert(context, Ok(path.clone()));
                    }
                    files.push((path, bytes.clone()));
                }
                Err(problem) => clusters.problems.push(problem),
            }
        }
        for (context, secrets) in defined_by {
            if secrets.len() > 1 {
                clusters.contexts.insert(
                    context.clone(),
                    Err(format!(
                        "context {context} is defined by several cluster Secrets ({}): keep it in one",
                        secrets.join(", ")
                    )),
                );
            }
        }
        (clusters, files)
    }

    /// Reads the cluster Secrets of `namespace` and writes their kubeconfigs into `dir`
    /// (emptied first: a removed Secret's file goes with it).
    pub async fn read(
        cluster: &LiveCluster,
        namespace: &str,
        dir: &Path,
    ) -> Result<Clusters, ClustersError> {
        let api: Api<Secret> = Api::namespaced(cluster.client().clone(), namespace);
        let params = ListParams::default().labels(&format!("{LABEL}={LABEL_VALUE}"));
        let listed = api.list(&params).await.map_err(|e| ClustersError::List {
            namespace: namespace.to_string(),
            source: ApiError::answered(e),
        })?;
        let secrets: Vec<ClusterSecret> = listed
            .items
            .into_iter()
            .map(|secret| ClusterSecret {
                name: secret.metadata.name.unwrap_or_default(),
                kubeconfig: secret
                    .data
                    .and_then(|mut data| data.remove(KEY))
                    .map(|bytes| bytes.0),
            })
            .collect();
        let (clusters, files) = Clusters::plan(&secrets, dir);
        let write_err = |e: std::io::Error| ClustersError::Write {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(write_err)?;
        }
        std::fs::create_dir_all(dir).map_err(write_err)?;
        for (path, bytes) in files {
            write_private(&path, &bytes).map_err(write_err)?;
        }
        Ok(clusters)
    }

    /// The file that defines `context`; None when no Secret does.
    pub fn file_for(&self, context: &str) -> Option<Result<&Path, &str>> {
        self.contexts
            .get(context)
            .map(|found| found.as_ref().map(PathBuf::as_path).map_err(String::as_str))
    }

    /// How many contexts are usable.
    pub fn len(&self) -> usize {
        self.contexts.values().filter(|c| c.is_ok()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn kubeconfig(contexts: &[&str], user: &str) -> Vec<u8> {
        let mut text = String::from(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://203.0.113.1:6443'}\n",
        );
        text.push_str(&format!("users:\n- name: u\n  user:\n{user}\ncontexts:\n"));
        for context in contexts {
            text.push_str(&format!(
                "- name: {context}\n  context: {{cluster: c, user: u}}\n"
            ));
        }
        text.into_bytes()
    }

    fn secret(name: &str, kubeconfig: Option<Vec<u8>>) -> ClusterSecret {
        ClusterSecret {
            name: name.into(),
            kubeconfig,
        }
    }

    #[test]
    fn each_context_is_found_in_the_file_of_the_secret_that_defines_it() {
        let dir = Path::new("/private");
        let (clusters, files) = Clusters::plan(
            &[
                secret(
                    "eu",
                    Some(kubeconfig(&["prod-eu", "staging-eu"], "    token: t")),
                ),
                secret("us", Some(kubeconfig(&["prod-us"], "    token: t"))),
            ],
            dir,
        );
        assert_eq!(
            clusters.file_for("staging-eu"),
            Some(Ok(Path::new("/private/eu.kubeconfig")))
        );
        assert_eq!(
            clusters.file_for("prod-us"),
            Some(Ok(Path::new("/private/us.kubeconfig")))
        );
        assert_eq!(clusters.file_for("prod-ap"), None);
        assert_eq!(clusters.len(), 3);
        assert_eq!(files.len(), 2);
        assert!(clusters.problems.is_empty());
    }

    #[test]
    fn a_context_two_secrets_define_and_unusable_secrets_are_refused_with_reasons() {
        let (clusters, _) = Clusters::plan(
            &[
                secret("a", Some(kubeconfig(&["prod"], "    token: t"))),
                secret("b", Some(kubeconfig(&["prod", "dev"], "    token: t"))),
                secret("empty", None),
                secret("junk", Some(b"apiVersion: [".to_vec())),
                secret(
                    "runs",
                    Some(kubeconfig(
                        &["cloud"],
                        "    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}",
                    )),
                ),
            ],
            Path::new("/p"),
        );
        assert_eq!(
            clusters.file_for("prod"),
            Some(Err(
                "context prod is defined by several cluster Secrets (a, b): keep it in one"
            ))
        );
        assert_eq!(
            clusters.file_for("dev"),
            Some(Ok(Path::new("/p/b.kubeconfig")))
        );
        assert_eq!(clusters.file_for("cloud"), None);
        let problems = clusters.problems.join("\n");
        assert!(
            problems.contains("Secret empty: it has no kubeconfig key"),
            "{problems}"
        );
        assert!(
            problems.contains("Secret junk: kubeconfig is not a kubeconfig"),
            "{problems}"
        );
        assert!(
            problems.contains("Secret runs: user u runs a credential program"),
            "{problems}"
        );
    }
}
