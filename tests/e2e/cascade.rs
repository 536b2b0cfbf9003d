//! Pruning a CRD or a Namespace deletes more than the member: every custom resource of
//! the CRD's kind, everything in the Namespace. `sync --prune` keeps CRDs unless asked
//! (`--prune-crds`), refuses, before writing anything, a prune that would take objects
//! that are not the app's (unless `--prune-cascade`) or objects the revision still has,
//! and counts what went with a deletion as deleted.

use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

use crate::faults::sync_cmd;

fn sync(cluster: &TestCluster, repo: &GitFixture, app: &str, ns: &str, extra: &[&str]) -> Output {
    let args = ["HEAD", "app", "--app", app, "-n", ns, "--wait=false"];
    sync_cmd(cluster, repo, &[&args[..], extra].concat())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The refusal's message, after checking it was one (exit 2, nothing applied).
fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn exists(cluster: &TestCluster, what: &str, ns: Option<&str>) -> bool {
    let mut cmd = cluster.kubectl();
    cmd.args(["get", what]);
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.output().unwrap().status.success()
}

/// Waits until `what` is gone (a Namespace's or CRD's deletion finishes in the background).
fn gone(cluster: &TestCluster, what: &str, ns: Option<&str>) -> bool {
    let mut cmd = cluster.kubectl();
    cmd.args(["wait", "--for=delete", what, "--timeout=120s"]);
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let _ = cmd.output().unwrap();
    !exists(cluster, what, ns)
}

fn cm(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ns}data:\n  k: v\n")
}

/// The actions of release `revision`'s objects, as `kubectl release-history` reads them:
/// `(Kind namespace/name, action)`.
fn recorded_actions(
    cluster: &TestCluster,
    app: &str,
    ns: &str,
    revision: u32,
) -> Vec<(String, String)> {
    let text = cluster.kubectl_ok(&[
        "release-history",
        app,
        &revision.to_string(),
        "-n",
        ns,
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut actions: Vec<(String, String)> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let key = &o["key"];
            let place = match key["namespace"].as_str() {
                Some(n) => format!("{n}/{}", key["name"].as_str().unwrap()),
                None => key["name"].as_str().unwrap().to_string(),
            };
            (
                format!("{} {place}", key["kind"].as_str().unwrap()),
                o["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    actions.sort();
    actions
}

fn action_of<'a>(actions: &'a [(String, String)], object: &str) -> Option<&'a str> {
    actions
        .iter()
        .find(|(o, _)| o == object)
        .map(|(_, a)| a.as_str())
}

#[test]
fn a_crd_is_kept_by_default_and_pruned_with_its_custom_resources_only_when_asked() {
    let cluster = TestCluster::get();
    let home = cluster.namespace("cc-crd");
    let other = cluster.namespace("cc-crd-other");
    let (h, o) = (home.name.as_str(), other.name.as_str());
    let group = format!("{h}.example.com");
    let crd_name = format!("widgets.{group}");
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {crd_name}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
    );
    let widget = |name: &str| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: 1\n"
        )
    };
    let repo = GitFixture::new();
    repo.write("app/crd.yaml", &crd);
    repo.write("app/widget.yaml", &widget("ours"));
    repo.write("app/keep.yaml", &cm("keep", None));
    repo.commit("a CRD, a custom resource, a ConfigMap");
    ok(&sync(cluster, &repo, "wid", h, &["--prune"]));
    // Someone else's custom resource of the same kind, in another namespace.
    cluster.apply_yaml(o, &widget("hand"));
    let (ours, hand) = (
        format!("widgets.{group}/ours"),
        format!("widgets.{group}/hand"),
    );
    let crd_object = format!("crd/{crd_name}");

    repo.remove("app/crd.yaml").remove("app/widget.yaml");
    repo.commit("drop the CRD and its custom resource");

    // With --prune-crds the CRD's deletion would take the hand-made Widget: refused, and
    // nothing is written.
    let records = cluster.release_statuses(h, "wid");
    let err = refused(&sync(
        cluster,
        &repo,
        "wid",
        h,
        &["--prune", "--prune-crds"],
    ));
    assert!(
        err.contains(&format!("Widget.{group} (1): {o}/hand")),
        "{err}"
    );
    assert!(
        err.contains("not members of app wid") && err.contains("--prune-cascade"),
        "{err}"
    );
    assert!(exists(cluster, &crd_object, None), "{err}");
    assert!(exists(cluster, &ours, Some(h)), "{err}");
    assert!(exists(cluster, &hand, Some(o)), "{err}");
    assert_eq!(
        cluster.release_statuses(h, "wid"),
        records,
        "a refusal records nothing"
    );

    // By default the CRD stays, and the sync says so; its own custom resource is pruned.
    let out = sync(cluster, &repo, "wid", h, &["--prune", "-o", "json"]);
    let doc = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kept: CRDs are pruned only with --prune-crds"),
        "{err}"
    );
    assert!(err.contains(&crd_name), "{err}");
    assert_eq!(doc["counts"]["pruned"], 1, "{doc}");
    assert!(exists(cluster, &crd_object, None));
    assert!(exists(cluster, &hand, Some(o)));
    assert!(!exists(cluster, &ours, Some(h)));

    // Asked for both: the CRD goes, and the hand-made Widget with it, counted as deleted.
    let out = sync(
        cluster,
        &repo,
        "wid",
        h,
        &["--prune", "--prune-crds", "--prune-cascade", "-o", "json"],
    );
    let doc = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("removed (cascade): 1 object(s)"), "{err}");
    assert_eq!(doc["counts"]["pruned"], 2, "{doc}");
    assert_eq!(doc["counts"]["cascaded"], 1, "{doc}");
    assert!(gone(cluster, &crd_object, None));
    assert!(!exists(cluster, &hand, Some(o)));
    let revision = doc["release"].as_u64().unwrap() as u32;
    let actions = recorded_actions(cluster, "wid", h, revision);
    assert_eq!(
        action_of(&actions, &format!("CustomResourceDefinition {crd_name}")),
        Some("pruned"),
        "{actions:?}"
    );
    assert_eq!(
        action_of(&actions, &format!("Widget {o}/hand")),
        Some("pruned (cascade)"),
        "{actions:?}"
    );
    assert_eq!(
        action_of(&actions, &format!("ConfigMap {h}/keep")),
        Some("unchanged")
    );
}

/// A Namespace the app owns, with two of its ConfigMaps and one made by hand.
struct OwnedNamespace {
    repo: GitFixture,
    name: String,
}

impl OwnedNamespace {
    fn synced(cluster: &TestCluster, app: &str, home: &str) -> OwnedNamespace {
        let name = format!("{home}-x");
        let repo = GitFixture::new();
        repo.write(
            "app/ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
        );
        repo.write(
            "app/in.yaml",
            &(cm("one", Some(&name)) + &cm("two", Some(&name))),
        );
        repo.write("app/keep.yaml", &cm("keep", None));
        repo.commit("a namespace and what it holds");
        ok(&sync(cluster, &repo, app, home, &["--prune"]));
        cluster.apply_yaml(&name, &cm("hand", None));
        OwnedNamespace { repo, name }
    }

    fn active(&self, cluster: &TestCluster) -> bool {
        let phase = cluster.kubectl_ok(&[
            "get",
            "namespace",
            &self.name,
            "-o",
            "jsonpath={.status.phase}",
        ]);
        phase == "Active"
    }
}

impl Drop for OwnedNamespace {
    fn drop(&mut self) {
        let _ = TestCluster::get()
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

#[test]
fn pruning_a_namespace_that_holds_a_hand_made_object_is_refused_unless_asked() {
    let cluster = TestCluster::get();
    let home = cluster.namespace("cc-ns");
    let h = home.name.as_str();
    let owned = OwnedNamespace::synced(cluster, "nsapp", h);
    let x = owned.name.as_str();
    owned.repo.remove("app/ns.yaml").remove("app/in.yaml");
    owned.repo.commit("drop the namespace and its objects");

    let records = cluster.release_statuses(h, "nsapp");
    let err = refused(&sync(cluster, &owned.repo, "nsapp", h, &["--prune"]));
    assert!(
        err.contains(&format!(
            "pruning Namespace {x} would also delete 1 object(s)"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("ConfigMap (1): {x}/hand")), "{err}");
    assert!(err.contains("--prune-cascade"), "{err}");
    // What the cluster puts in every namespace is not the user's loss.
    assert!(
        !err.contains("kube-root-ca.crt") && !err.contains("ServiceAccount"),
        "{err}"
    );
    assert!(owned.active(cluster), "{err}");
    for name in ["one", "two", "hand"] {
        assert!(
            exists(cluster, &format!("configmap/{name}"), Some(x)),
            "{name}: {err}"
        );
    }
    assert_eq!(
        cluster.release_statuses(h, "nsapp"),
        records,
        "a refusal records nothing"
    );

    let out = sync(
        cluster,
        &owned.repo,
        "nsapp",
        h,
        &["--prune", "--prune-cascade", "-o", "json"],
    );
    let doc = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("removed (cascade): 1 object(s)"), "{err}");
    assert_eq!(doc["counts"]["pruned"], 4, "{doc}");
    assert_eq!(doc["counts"]["cascaded"], 1, "{doc}");
    assert_eq!(doc["counts"]["unchanged"], 1, "{doc}");
    assert!(
        gone(cluster, &format!("namespace/{x}"), None),
        "the namespace stayed"
    );
    let revision = doc["release"].as_u64().unwrap() as u32;
    let actions = recorded_actions(cluster, "nsapp", h, revision);
    assert_eq!(
        action_of(&actions, &format!("Namespace {x}")),
        Some("pruned"),
        "{actions:?}"
    );
    assert_eq!(
        action_of(&actions, &format!("ConfigMap {x}/one")),
        Some("pruned")
    );
    assert_eq!(
        action_of(&actions, &format!("ConfigMap {x}/hand")),
        Some("pruned (cascade)"),
        "{actions:?}"
    );
}

#[test]
fn a_revision_that_drops_a_namespace_but_keeps_objects_in_it_is_refused() {
    let cluster = TestCluster::get();
    let home = cluster.namespace("cc-keep");
    let h = home.name.as_str();
    let owned = OwnedNamespace::synced(cluster, "keeper", h);
    let x = owned.name.as_str();
    owned.repo.remove("app/ns.yaml");
    owned.repo.commit("drop the namespace, keep what it holds");

    let records = cluster.release_statuses(h, "keeper");
    // Even with --prune-cascade: the revision contradicts itself.
    let out = sync(
        cluster,
        &owned.repo,
        "keeper",
        h,
        &["--prune", "--prune-cascade"],
    );
    let err = refused(&out);
    assert!(
        err.contains(&format!(
            "the revision still has 2 object(s) that pruning Namespace {x}, which it no longer has, would delete: ConfigMap (2): {x}/one, {x}/two"
        )),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("unchanged") && !stdout.contains("deployed"),
        "{stdout}"
    );
    assert!(owned.active(cluster));
    for name in ["one", "two", "hand"] {
        assert!(
            exists(cluster, &format!("configmap/{name}"), Some(x)),
            "{name}: {err}"
        );
    }
    assert_eq!(
        cluster.release_statuses(h, "keeper"),
        records,
        "a refusal records nothing"
    );
}
