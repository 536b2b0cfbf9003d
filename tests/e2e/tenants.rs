//! Tenants: an app list entry's `service_account:` makes its syncs act as that
//! ServiceAccount of the app's namespace, so the app can do only what the account's RBAC
//! allows. Checked from the cluster: who the audit log says wrote, which objects exist,
//! which release records there are.

use std::process::{Output, Stdio};

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::rbac::{documented_role, user_with_role};

fn config_map(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace
        .map(|ns| format!(", namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{namespace}}}\ndata: {{a: b}}\n"
    )
}

fn sync(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .args(["sync", "HEAD", "--timeout", "90s"])
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// An error exit (above 1, as kubectl's) whose stderr says each of `texts`.
fn fails_saying(out: &Output, texts: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c > 1) && texts.iter().all(|t| stderr.contains(t)),
        "expected an error saying {texts:?}: {}",
        describe(out)
    );
}

fn exists(cluster: &TestCluster, what: &[&str]) -> bool {
    let out = cluster.kubectl().arg("get").args(what).output().unwrap();
    out.status.success()
}

fn releases(cluster: &TestCluster, app: &str, ns: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        ns,
        "--field-selector",
        "type=kubectl-gitops.io/release.v1",
        "-l",
        &format!("kubectl-gitops.io/app={app}"),
        "-o",
        "name",
    ])
}

#[test]
fn a_tenants_app_acts_as_its_service_account_and_what_it_may_not_do_is_never_applied() {
    let cluster = TestCluster::get();
    let team = cluster.namespace("tenant-a");
    let other = cluster.namespace("tenant-b");
    let (t, o) = (team.name.as_str(), other.name.as_str());
    // The team's account: the documented sync Role in its own namespace, nothing else.
    let deployer = user_with_role(cluster, t, "deployer", documented_role("sync"));

    let repo = GitFixture::new();
    repo.write(
        ".kubectl-gitops.yaml",
        &format!(
            "apps:\n\
             - {{name: shop, path: shop, namespace: {t}, service_account: deployer}}\n\
             - {{name: greedy, path: greedy, namespace: {t}, service_account: deployer}}\n\
             - {{name: spill, path: spill, namespace: {t}, service_account: deployer}}\n"
        ),
    );
    repo.write("shop/cm.yaml", &config_map("shop-settings", None));
    repo.write(
        "greedy/app.yaml",
        &format!(
            "{}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
             metadata: {{name: {t}-greedy}}\nrules: [{{apiGroups: [\"\"], resources: [secrets], verbs: [get]}}]\n",
            config_map("greedy-settings", None)
        ),
    );
    repo.write(
        "spill/app.yaml",
        &format!(
            "{}---\n{}",
            config_map("spill-settings", None),
            config_map("spill-elsewhere", Some(o))
        ),
    );
    repo.commit("three apps of one team");

    // Within its namespace: synced, and every write of it made as the account.
    let offset = cluster.audit_offset();
    let out = sync(cluster, &repo, &["--app", "shop"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(exists(cluster, &["configmap", "shop-settings", "-n", t]));
    let writers: std::collections::BTreeSet<String> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == t)
        .filter(|e| matches!(e["verb"].as_str(), Some("create" | "patch" | "update")))
        .map(|e| {
            e["impersonatedUser"]["username"]
                .as_str()
                .unwrap_or("nobody")
                .to_string()
        })
        .collect();
    assert_eq!(
        writers.into_iter().collect::<Vec<_>>(),
        [deployer.username()],
        "every write of the tenant's sync impersonates its account"
    );
    let history = cluster.kubectl_ok(&["release-history", "shop", "-n", t, "-o", "json"]);
    assert!(history.contains(&deployer.username()), "{history}");

    // A ClusterRole is beyond the account (it may not even read them): refused naming
    // the verb and resource, and nothing of the app is there, not even its ConfigMap or a
    // release record.
    let out = sync(cluster, &repo, &["--app", "greedy"]);
    fails_saying(
        &out,
        &[
            &deployer.username(),
            "cannot list",
            "clusterroles.rbac.authorization.k8s.io",
        ],
    );
    assert!(!exists(cluster, &["clusterrole", &format!("{t}-greedy")]));
    assert!(!exists(cluster, &["configmap", "greedy-settings", "-n", t]));
    assert_eq!(
        releases(cluster, "greedy", t),
        "",
        "no record of a refused sync"
    );

    // Another team's namespace is beyond it too, though it may read ConfigMaps there:
    // every write is asked before the first, so the one it may not make is named and
    // none is made.
    cluster.apply_yaml(
        t,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {t}-reader}}\n\
             rules: [{{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list]}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {t}-reader}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {t}-reader}}\n\
             subjects: [{{kind: ServiceAccount, name: deployer, namespace: {t}}}]\n"
        ),
    );
    let out = sync(cluster, &repo, &["--app", "spill"]);
    fails_saying(
        &out,
        &[
            &format!("{} may not sync app spill", deployer.username()),
            &format!("create configmaps \"spill-elsewhere\" in namespace {o}"),
            "nothing was applied",
        ],
    );
    assert!(!exists(cluster, &["configmap", "spill-settings", "-n", t]));
    assert!(!exists(cluster, &["configmap", "spill-elsewhere", "-n", o]));
    assert_eq!(releases(cluster, "spill", t), "");

    // A person's --as cannot stand in for the account.
    let out = sync(cluster, &repo, &["--app", "shop", "--as", "jane"]);
    fails_saying(&out, &["--as jane cannot be used"]);
}
