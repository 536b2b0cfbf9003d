//! The reconciler's manifests (`deploy/`), an app themselves: the API server takes them,
//! `kubectl sync deploy --app kubectl-gitops` installs them and changes nothing the second
//! time, the ServiceAccount may do what sync and drift need everywhere, and Secrets
//! filled in by hand survive later syncs.
//!
//! Each test installs a copy of `deploy/` moved to a namespace of its own (the namespace,
//! the leader-election namespace and the names of the cluster-wide RBAC objects are
//! rewritten, nothing else), so the tests run beside each other and beside a real install.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe, record, workspace_root};
use serde::Deserialize as _;
use serde_json::Value;

/// The namespace `deploy/` installs into.
const NAMESPACE: &str = "kubectl-gitops";
/// The name of the ClusterRole and ClusterRoleBinding in `deploy/`.
const CLUSTER_RBAC: &str = "kubectl-gitops-reconciler";
/// The objects in `deploy/`.
const OBJECTS: usize = 11;

/// `deploy/`'s files (name, text), sorted by name.
pub(crate) fn deploy_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(workspace_root().join("deploy"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(
        files.iter().all(|(name, _)| name.ends_with(".yaml")),
        "deploy/ holds only manifests: {:?}",
        files.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    files
}

/// A manifest of `deploy/` moved to `namespace`: its objects' namespace, the Namespace
/// itself, the leader-election namespace and the cluster-wide RBAC names.
fn relocate(text: &str, namespace: &str) -> String {
    let mut text = text
        .replace(
            &format!("namespace: {NAMESPACE}\n"),
            &format!("namespace: {namespace}\n"),
        )
        .replace(
            &format!("--leader-namespace={NAMESPACE}\n"),
            &format!("--leader-namespace={namespace}\n"),
        )
        .replace(
            &format!("name: {CLUSTER_RBAC}\n"),
            &format!("name: {namespace}-reconciler\n"),
        );
    if text.contains("\nkind: Namespace\n") {
        text = text.replace(
            &format!("  name: {NAMESPACE}\n"),
            &format!("  name: {namespace}\n"),
        );
    }
    assert!(
        !text.contains(&format!("namespace: {NAMESPACE}\n")),
        "left unmoved:\n{text}"
    );
    text
}

/// A git repository holding `deploy/` moved to `namespace`, committed.
pub(crate) fn relocated_deploy(namespace: &str) -> GitFixture {
    let repo = GitFixture::new();
    for (name, text) in deploy_files() {
        repo.write(&format!("deploy/{name}"), &relocate(&text, namespace));
    }
    repo.commit("The reconciler");
    repo
}

/// A namespace name of its own for one install, which the sync creates (the revision
/// holds the Namespace); the guard deletes it and the install's cluster-wide objects.
pub(crate) struct Install {
    pub namespace: String,
}

impl Install {
    pub(crate) fn new(prefix: &str) -> Install {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        Install {
            namespace: format!(
                "{prefix}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let cluster = TestCluster::get();
        let rbac = format!("{}-reconciler", self.namespace);
        let _ = cluster
            .kubectl()
            .args([
                "delete",
                "clusterrolebinding,clusterrole",
                &rbac,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
        let _ = cluster
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.namespace,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

/// `kubectl sync deploy --app kubectl-gitops -n NAMESPACE -o json` in `repo`.
pub(crate) fn sync_deploy(cluster: &TestCluster, repo: &GitFixture, namespace: &str) -> Value {
    let out = cluster
        .kubectl()
        .args([
            "sync",
            "deploy",
            "--app",
            "kubectl-gitops",
            "-n",
            namespace,
            "-o",
            "json",
            "--timeout",
            "120s",
        ])
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)))
}

fn get(cluster: &TestCluster, namespace: &str, what: &str, jsonpath: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        what,
        "-n",
        namespace,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
}

/// Runs kubectl with `input` on stdin.
fn kubectl_with_input(cluster: &TestCluster, args: &[&str], input: &str) -> Output {
    let mut child = cluster
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Fills a Secret of `deploy/` as docs/in-cluster.md says:
/// `kubectl create secret generic ... --dry-run=client -o yaml | kubectl apply -f -`.
fn fill_secret(cluster: &TestCluster, namespace: &str, name: &str, literals: &[(&str, &str)]) {
    let mut args = vec![
        "create".to_string(),
        "secret".into(),
        "generic".into(),
        name.into(),
        "-n".into(),
        namespace.into(),
        "--dry-run=client".into(),
        "-o".into(),
        "yaml".into(),
    ];
    args.extend(
        literals
            .iter()
            .map(|(key, value)| format!("--from-literal={key}={value}")),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let yaml = cluster.kubectl_ok(&args);
    let out = kubectl_with_input(cluster, &["apply", "-f", "-"], &yaml);
    assert!(out.status.success(), "kubectl apply: {}", describe(&out));
}

/// A Secret's value under `key`, decoded.
fn secret_value(cluster: &TestCluster, namespace: &str, name: &str, key: &str) -> String {
    let encoded = get(
        cluster,
        namespace,
        &format!("secret/{name}"),
        &format!("{{.data.{key}}}"),
    );
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(encoded.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The committed manifests reference the image by digest, and a server-side dry-run
/// apply of all of them (kubectl's, as a user without our plugins would run it) is
/// accepted: schemas, RBAC objects, Pod Security admission of the restricted namespace.
#[test]
fn deploy_passes_a_server_side_dry_run_apply() {
    let files = deploy_files();
    let (_, deployment) = files
        .iter()
        .find(|(name, _)| name == "deployment.yaml")
        .unwrap();
    let images: Vec<&str> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(images.len(), 1, "{images:?}");
    let (name, digest) = images[0].split_once("@sha256:").unwrap_or_else(|| {
        panic!(
            "deploy/deployment.yaml names its image by tag, not digest: {}",
            images[0]
        )
    });
    assert!(!name.is_empty() && !name.rsplit('/').next().unwrap().contains(':'));
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );

    let cluster = TestCluster::get();
    let ns = cluster.namespace("ic-dry");
    // The dry run checks the Deployment against the namespace as it is: labelled as
    // deploy/ labels it, so Pod Security admission warns on pods it would refuse.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), relocate(text, &ns.name)).unwrap();
    }
    let out = cluster
        .kubectl()
        .args(["apply", "--server-side", "--dry-run=server", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let applied = stdout
        .lines()
        .filter(|l| l.ends_with("serverside-applied (server dry run)"))
        .count();
    assert_eq!(applied, OBJECTS, "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("violate PodSecurity"),
        "{}",
        describe(&out)
    );
    // Nothing was written.
    assert_eq!(cluster.count(&ns.name, "deployments"), 0);
}

/// `kubectl sync deploy --app kubectl-gitops` installs the reconciler (the sync creates
/// its namespace from the revision and waits for both replicas), a second sync changes
/// nothing, drift finds nothing, and the ServiceAccount may do everywhere what sync and
/// drift need (docs/rbac/), impersonate ServiceAccounts, record Events, and hold its
/// leader Lease.
#[test]
fn sync_installs_deploy_and_a_second_sync_changes_nothing() {
    let cluster = TestCluster::get();
    let install = Install::new("ic-sync");
    let ns = install.namespace.as_str();
    let repo = relocated_deploy(ns);

    let doc = sync_deploy(cluster, &repo, ns);
    assert_eq!(doc["status"], "deployed", "{doc}");
    assert_eq!(doc["release"], 1, "{doc}");
    let counts = &doc["counts"];
    // The Namespace is applied first and then found unchanged by the plan.
    assert_eq!(
        counts["created"].as_u64().unwrap() + counts["unchanged"].as_u64().unwrap(),
        OBJECTS as u64,
        "{doc}"
    );
    assert_eq!(counts["failed"], 0, "{doc}");
    let mut objects: Vec<String> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{} {}", o["key"]["kind"], o["key"]["name"]))
        .collect();
    objects.sort();
    assert_eq!(objects.len(), OBJECTS, "{objects:?}");
    assert_eq!(
        get(
            cluster,
            ns,
            "deployment/kubectl-gitops",
            "{.status.readyReplicas}"
        ),
        "2"
    );
    let pod_spec: Value = serde_json::from_str(&get(
        cluster,
        ns,
        "deployment/kubectl-gitops",
        "{.spec.template.spec}",
    ))
    .unwrap();
    let container = &pod_spec["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(pod_spec["securityContext"]["runAsUser"], 65532);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["--reconcile", "main"]);
    assert!(args.contains(&format!("--leader-namespace={ns}").as_str()));
    // A second sync: nothing applied, no release recorded.
    let doc = sync_deploy(cluster, &repo, ns);
    assert_eq!(doc["recorded"], false, "{doc}");
    assert_eq!(doc["counts"]["unchanged"], OBJECTS as u64, "{doc}");
    for action in ["created", "configured", "pruned"] {
        assert_eq!(doc["counts"][action], 0, "{action}: {doc}");
    }
    let out = cluster
        .kubectl()
        .args(["drift", "kubectl-gitops", "-n", ns])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // What the ServiceAccount may do, asked of the API server.
    let account = format!("system:serviceaccount:{ns}:kubectl-gitops");
    let can = |verb: &str, resource: &str, namespace: &str| -> bool {
        let out = cluster
            .kubectl()
            .args(["auth", "can-i", verb, resource, "-n", namespace, "--as"])
            .arg(&account)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let elsewhere = cluster.namespace("ic-tenant");
    for plugin in ["sync", "drift"] {
        let path = workspace_root().join(format!("docs/rbac/{plugin}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        for role in serde_yaml_ng::Deserializer::from_str(&text) {
            let role = serde_yaml_ng::Value::deserialize(role).unwrap();
            for rule in role["rules"].as_sequence().unwrap() {
                for group in rule["apiGroups"].as_sequence().unwrap() {
                    for resource in rule["resources"].as_sequence().unwrap() {
                        let group = group.as_str().unwrap();
                        let resource = resource.as_str().unwrap();
                        let resource = if group.is_empty() {
                            resource.to_string()
                        } else {
                            format!("{resource}.{group}")
                        };
                        for verb in rule["verbs"].as_sequence().unwrap() {
                            let verb = verb.as_str().unwrap();
                            assert!(
                                can(verb, &resource, &elsewhere.name),
                                "the reconciler may not {verb} {resource} in another namespace, \
                                 which docs/rbac/{plugin}.yaml grants"
                            );
                        }
                    }
                }
            }
        }
    }
    for (verb, resource) in [
        ("impersonate", "serviceaccounts"),
        ("create", "events"),
        ("patch", "events.events.k8s.io"),
    ] {
        assert!(can(verb, resource, &elsewhere.name), "{verb} {resource}");
    }
    for verb in ["get", "create", "update", "watch"] {
        assert!(can(verb, "leases.coordination.k8s.io", ns), "{verb} leases");
    }
    assert!(!can("watch", "leases.coordination.k8s.io", &elsewhere.name));
    assert!(!can("create", "clusterroles.rbac.authorization.k8s.io", ns));
}

/// A git token and a webhook secret filled in by hand, as docs/in-cluster.md says, are
/// kept by a resync, by a sync that applies a changed Secret manifest again, and are
/// not drift.
#[test]
fn secrets_filled_in_by_hand_survive_later_syncs() {
    let cluster = TestCluster::get();
    let install = Install::new("ic-secrets");
    let ns = install.namespace.as_str();
    let repo = relocated_deploy(ns);
    sync_deploy(cluster, &repo, ns);
    assert_eq!(
        get(cluster, ns, "secret/kubectl-gitops-git", "{.data}"),
        "",
        "deploy/ holds no credential"
    );

    let token = "kgo-git-token-7d1e5a90c3b2";
    record::remember_credential(
        &cluster.state,
        &format!("git-token-{}", std::process::id()),
        token,
    );
    fill_secret(
        cluster,
        ns,
        "kubectl-gitops-git",
        &[("token", token), ("username", "x-access-token")],
    );
    fill_secret(
        cluster,
        ns,
        "kubectl-gitops-webhook",
        &[("secret", "webhook-shared-secret")],
    );
    let kept = |when: &str| {
        assert_eq!(
            secret_value(cluster, ns, "kubectl-gitops-git", "token"),
            token,
            "{when}"
        );
        assert_eq!(
            secret_value(cluster, ns, "kubectl-gitops-git", "username"),
            "x-access-token",
            "{when}"
        );
        assert_eq!(
            secret_value(cluster, ns, "kubectl-gitops-webhook", "secret"),
            "webhook-shared-secret",
            "{when}"
        );
    };

    // The filled-in values are not drift: the release sets no data.
    let out = cluster
        .kubectl()
        .args(["drift", "kubectl-gitops", "-n", ns])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let doc = sync_deploy(cluster, &repo, ns);
    assert_eq!(doc["counts"]["configured"], 0, "{doc}");
    kept("after a resync");

    // A new revision that changes the Secrets' manifests: both are applied again.
    for file in ["deploy/secret-git.yaml", "deploy/secret-webhook.yaml"] {
        let text = std::fs::read_to_string(repo.path().join(file)).unwrap();
        repo.write(
            file,
            &text.replace(
                "    app.kubernetes.io/name: kubectl-gitops\n",
                "    app.kubernetes.io/name: kubectl-gitops\n    example.com/rotated: \"2\"\n",
            ),
        );
    }
    repo.commit("Label the credentials");
    let doc = sync_deploy(cluster, &repo, ns);
    assert_eq!(doc["counts"]["configured"], 2, "{doc}");
    assert_eq!(
        get(
            cluster,
            ns,
            "secret/kubectl-gitops-git",
            "{.metadata.labels.example\\.com/rotated}"
        ),
        "2"
    );
    kept("after a sync that applied the Secrets again");
}
