//! ApplySet membership against the real control plane: kubectl's own `--applyset` and ours
//! must agree on ids and members, and prune must delete exactly the dropped members.

use std::collections::{BTreeMap, BTreeSet};

use gitops::apply::applyset::{
    self, ApplySet, ApplySetError, ApplySetId, ID_LABEL, PART_OF_LABEL, TOOLING, label_members,
    list_members, parent_name, write_parent,
};
use gitops::apply::prune::{PruneError, prune};
use gitops::cancel::Cancel;
use gitops::kubeconfig::{ConnectOptions, Environment, connect};
use gitops::live::LiveCluster;
use gitops::objects::{BuiltinScopes, DesiredSet, ObjectKey};
use gitops::render::{Manifest, Origin};
use kubectl_gitops_tests::{TestCluster, assert_success, block_on};
use serde_json::{Value, json};

async fn live(cluster: &TestCluster) -> LiveCluster {
    let options = ConnectOptions {
        kubeconfig: Some(cluster.admin_kubeconfig.clone()),
        ..Default::default()
    };
    let connection = connect(&options, &Environment::default()).await.unwrap();
    LiveCluster::connect(&connection).await.unwrap()
}

fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
    }
}

/// `kubectl get <what> -o json` parsed, or None if it does not exist.
fn get_json(cluster: &TestCluster, args: &[&str]) -> Option<Value> {
    let out = cluster
        .kubectl()
        .args(["get", "-o", "json", "--ignore-not-found"])
        .args(args)
        .output()
        .unwrap();
    assert_success(&format!("kubectl get {}", args.join(" ")), &out);
    (!out.stdout.is_empty()).then(|| serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn kubectl_and_we_agree_on_the_id_and_members_and_we_refuse_its_set() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("applyset-kubectl");
    let app = "legacy";
    let parent = parent_name(app);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {color: blue}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
",
    )
    .unwrap();
    let applyset_flag = format!("--applyset=secret/{parent}");
    let args = [
        "apply",
        "--server-side",
        "--prune",
        &applyset_flag,
        "-n",
        &ns.name,
        "-f",
        dir.path().to_str().unwrap(),
    ];
    let out = cluster
        .kubectl()
        .env("KUBECTL_APPLYSET", "true")
        .args(args)
        .output()
        .unwrap();
    assert_success(
        &format!("KUBECTL_APPLYSET=true kubectl {}", args.join(" ")),
        &out,
    );

    // kubectl computed the same id we do.
    let id = ApplySetId::for_secret(&parent, &ns.name);
    let secret = get_json(cluster, &["secret", &parent, "-n", &ns.name]).unwrap();
    assert_eq!(secret["metadata"]["labels"][ID_LABEL], json!(id.as_str()));
    let labelled = cluster.kubectl_ok(&[
        "get",
        "configmaps,deployments",
        "-n",
        &ns.name,
        "-l",
        &format!("{PART_OF_LABEL}={id}"),
        "-o",
        "name",
    ]);
    let mut labelled: Vec<&str> = labelled.lines().collect();
    labelled.sort();
    assert_eq!(
        labelled,
        ["configmap/settings", "deployment.apps/web"],
        "kubectl labelled its members with our id"
    );

    block_on(async {
        let live = live(cluster).await;
        let set = applyset::read(&live, &ns.name, app).await.unwrap().unwrap();
        assert_eq!(set.id, id);
        assert_eq!(
            set.group_kinds,
            BTreeSet::from(["ConfigMap".into(), "Deployment.apps".into()])
        );
        assert!(set.additional_namespaces.is_empty());
        let tooling = set.tooling.clone().unwrap();
        assert!(tooling.starts_with("kubectl/v1.37."), "{tooling}");

        let refusal = set.check_tooling().unwrap_err().to_string();
        assert!(
            refusal.contains(&format!("{}/{parent}", ns.name)),
            "{refusal}"
        );
        assert!(refusal.contains(&tooling), "{refusal}");
        assert!(refusal.contains("will not touch it"), "{refusal}");

        // Both tools see the same members.
        let members: Vec<ObjectKey> = list_members(&live, &set)
            .await
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(
            members,
            [
                key("", "ConfigMap", Some(&ns.name), "settings"),
                key("apps", "Deployment", Some(&ns.name), "web"),
            ]
        );

        // And prune will not touch kubectl's set, even with nothing to keep.
        let err = prune(&live, &set, &BTreeSet::new(), false, &Cancel::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PruneError::ApplySet(ApplySetError::OtherTool { .. })),
            "{err}"
        );
    });
    assert!(get_json(cluster, &["configmap", "settings", "-n", &ns.name]).is_some());
}

fn manifest(object: Value) -> Manifest {
    Manifest {
        object,
        origin: Origin {
            file: "app.yaml".into(),
            document: 0,
            line: 1,
        },
    }
}

#[test]
fn our_parent_is_readable_by_kubectl_and_prune_deletes_exactly_the_dropped_members() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("applyset-ours");
    let extra = cluster.namespace("applyset-extra");
    let app = "shop";
    let parent = parent_name(app);
    // Cluster-scoped and so shared by every test: unique by namespace name, and pruned below.
    let role = format!("{}-reader", ns.name);
    let configmap = |name: &str, namespace: Option<&str>| {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": "v"}});
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        manifest(object)
    };
    let mut desired = DesiredSet::build(
        vec![
            configmap("kept", None),
            configmap("dropped", None),
            configmap("elsewhere", Some(&extra.name)),
            manifest(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            })),
        ],
        &ns.name,
        &BuiltinScopes,
    )
    .unwrap();
    // Same kind, same namespace, no part-of label: prune must leave it alone.
    cluster.apply_yaml(
        &ns.name,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: look-alike\ndata: {k: v}\n",
    );

    let kept = key("", "ConfigMap", Some(&ns.name), "kept");
    let elsewhere = key("", "ConfigMap", Some(&extra.name), "elsewhere");
    let dropped = key("", "ConfigMap", Some(&ns.name), "dropped");
    let dropped_role = key("rbac.authorization.k8s.io", "ClusterRole", None, &role);

    block_on(async {
        let live = live(cluster).await;
        assert_eq!(applyset::read(&live, &ns.name, app).await.unwrap(), None);
        let set = ApplySet::new(&ns.name, app).with_members(desired.keys());
        write_parent(&live, &set).await.unwrap();
        label_members(&mut desired, &set.id);
        for object in desired.iter() {
            live.apply(&object.object, false).await.unwrap();
        }

        let read = applyset::read(&live, &ns.name, app).await.unwrap().unwrap();
        assert_eq!(read, set);
        read.check_tooling().unwrap();
        let members = list_members(&live, &read).await.unwrap();
        assert_eq!(
            members.keys().cloned().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                kept.clone(),
                elsewhere.clone(),
                dropped.clone(),
                dropped_role.clone()
            ])
        );
    });

    // kubectl sees the parent's annotations as KEP-3659 spells them.
    let yaml = cluster.kubectl_ok(&["get", "secret", &parent, "-n", &ns.name, "-o", "yaml"]);
    for line in [
        format!("applyset.kubernetes.io/tooling: {TOOLING}"),
        "applyset.kubernetes.io/contains-group-kinds: ClusterRole.rbac.authorization.k8s.io,ConfigMap".to_string(),
        format!("applyset.kubernetes.io/additional-namespaces: {}", extra.name),
        format!(
            "applyset.kubernetes.io/id: {}",
            ApplySetId::for_secret(&parent, &ns.name)
        ),
    ] {
        assert!(yaml.contains(&line), "missing {line:?} in\n{yaml}");
    }

    let keep = BTreeSet::from([kept.clone(), elsewhere.clone()]);
    block_on(async {
        let live = live(cluster).await;
        let set = applyset::read(&live, &ns.name, app).await.unwrap().unwrap();
        let expected = vec![dropped.clone(), dropped_role.clone()];
        assert_eq!(
            prune(&live, &set, &keep, true, &Cancel::new())
                .await
                .unwrap(),
            expected
        );
        assert!(get_json(cluster, &["configmap", "dropped", "-n", &ns.name]).is_some());

        assert_eq!(
            prune(&live, &set, &keep, false, &Cancel::new())
                .await
                .unwrap(),
            expected
        );
        assert_eq!(
            prune(&live, &set, &keep, false, &Cancel::new())
                .await
                .unwrap(),
            []
        );

        // After pruning, the parent shrinks to what is left.
        let exact = ApplySet::new(&ns.name, app).with_members(&keep);
        write_parent(&live, &exact).await.unwrap();
        let read = applyset::read(&live, &ns.name, app).await.unwrap().unwrap();
        assert_eq!(read.group_kinds, BTreeSet::from(["ConfigMap".into()]));
        let left: BTreeMap<ObjectKey, Value> = list_members(&live, &read).await.unwrap();
        assert_eq!(left.into_keys().collect::<BTreeSet<_>>(), keep);
    });

    assert!(get_json(cluster, &["configmap", "dropped", "-n", &ns.name]).is_none());
    assert!(get_json(cluster, &["clusterrole", &role]).is_none());
    assert!(get_json(cluster, &["configmap", "kept", "-n", &ns.name]).is_some());
    assert!(get_json(cluster, &["configmap", "elsewhere", "-n", &extra.name]).is_some());
    let look_alike = get_json(cluster, &["configmap", "look-alike", "-n", &ns.name])
        .expect("prune left the unlabelled look-alike alone");
    assert!(
        look_alike["metadata"]["labels"]
            .get(PART_OF_LABEL)
            .is_none()
    );
}
