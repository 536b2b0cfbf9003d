//! Objects another app or a Helm release owns: diff-git names the owner, sync refuses them
//! before writing anything, `sync --adopt` takes them over, and a heal never does.

use std::process::{Command, Output, Stdio};

use crate::requests::{counted, requests_about};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

const PART_OF: &str = "{.metadata.labels.applyset\\.kubernetes\\.io/part-of}";

pub(crate) fn config_map(name: &str, greeting: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: {greeting}\n"
    )
}

/// `kubectl <plugin> HEAD <path> --app <app> -n <ns> <extra>` in `repo`.
fn plugin(
    cluster: &TestCluster,
    repo: &GitFixture,
    plugin: &str,
    (path, app, ns): (&str, &str, &str),
    extra: &[&str],
) -> Output {
    cluster
        .kubectl()
        .args([plugin, "HEAD", path, "--app", app, "-n", ns])
        .args(extra)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sync(
    cluster: &TestCluster,
    repo: &GitFixture,
    at: (&str, &str, &str),
    extra: &[&str],
) -> Output {
    let mut args = vec!["--wait=false"];
    args.extend_from_slice(extra);
    plugin(cluster, repo, "sync", at, &args)
}

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", describe(out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn get(cluster: &TestCluster, ns: &str, what: &str, jsonpath: &str) -> String {
    cluster.kubectl_ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={jsonpath}")])
}

/// The ApplySet id of `app`, read from its parent Secret.
fn applyset_id(cluster: &TestCluster, ns: &str, app: &str) -> String {
    get(
        cluster,
        ns,
        &format!("secret/{app}.applyset"),
        "{.metadata.labels.applyset\\.kubernetes\\.io/id}",
    )
}

/// What `what` looks like now: its part-of label and its resourceVersion.
fn state(cluster: &TestCluster, ns: &str, what: &str) -> (String, String) {
    (
        get(cluster, ns, what, PART_OF),
        get(cluster, ns, what, "{.metadata.resourceVersion}"),
    )
}

/// The names of `resource` in `ns`.
fn names(cluster: &TestCluster, ns: &str, resource: &str) -> Vec<String> {
    cluster
        .kubectl_ok(&["get", resource, "-n", ns, "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn another_apps_object_is_refused_named_and_taken_over_only_with_adopt() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("own-apps");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("a/shared.yaml", &config_map("shared", "from-a"));
    repo.write("b/own.yaml", &config_map("own", "b"));
    repo.commit("a and b");
    code(&sync(cluster, &repo, ("a", "a", n), &[]), 0);
    code(&sync(cluster, &repo, ("b", "b", n), &[]), 0);
    let a_id = applyset_id(cluster, n, "a");
    let b_id = applyset_id(cluster, n, "b");
    assert_ne!(a_id, b_id);

    // b's revision now has a's ConfigMap too.
    repo.write("b/shared.yaml", &config_map("shared", "from-b"));
    repo.commit("b wants shared");
    let before = state(cluster, n, "configmap/shared");
    let b_parent = get(
        cluster,
        n,
        "secret/b.applyset",
        "{.metadata.resourceVersion}",
    );
    let owner_line = format!("ConfigMap {n}/shared belongs to app a (namespace {n})");

    let offset = cluster.audit_offset();
    let diff = plugin(cluster, &repo, "diff-git", ("b", "b", n), &[]);
    code(&diff, 1);
    assert!(
        stderr(&diff).contains(&format!(
            "conflict: {owner_line}; sync --adopt takes it over"
        )),
        "{}",
        describe(&diff)
    );
    // Naming a costs one LIST of Secrets by a's id, across all namespaces.
    let requests = requests_about(cluster, offset, &[n], Some(&a_id));
    assert_eq!(
        counted(&requests, "list")
            .into_iter()
            .filter(|(what, _)| what == "secrets *")
            .collect::<Vec<_>>(),
        [("secrets *".to_string(), 1)],
        "{requests:#?}"
    );
    let json = plugin(cluster, &repo, "diff-git", ("b", "b", n), &["-o", "json"]);
    code(&json, 1);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["owners"][0]["key"]["name"], "shared", "{doc:#}");
    assert_eq!(doc["owners"][0]["owner"]["parent"]["app"], "a", "{doc:#}");

    let refused = sync(cluster, &repo, ("b", "b", n), &["--prune"]);
    code(&refused, 2);
    let err = stderr(&refused);
    assert!(err.contains(&owner_line), "{err}");
    assert!(
        err.contains("--adopt") && err.contains("nothing was applied"),
        "{err}"
    );
    // Nothing written: the object as a left it, b's parent untouched, no new record, and
    // the lock given up.
    assert_eq!(state(cluster, n, "configmap/shared"), before);
    assert_eq!(before.0, a_id);
    assert_eq!(
        get(
            cluster,
            n,
            "secret/b.applyset",
            "{.metadata.resourceVersion}"
        ),
        b_parent
    );
    assert_eq!(
        cluster.release_statuses(n, "b"),
        [(1, "deployed".to_string())]
    );
    assert!(
        names(cluster, n, "leases").is_empty(),
        "a lock was left held"
    );
    // --force-conflicts is about fields, not objects: still refused.
    code(
        &sync(cluster, &repo, ("b", "b", n), &["--force-conflicts"]),
        2,
    );
    assert_eq!(state(cluster, n, "configmap/shared"), before);
    // A dry run refuses alike, so CI sees the refusal before the sync does.
    let dry = sync(cluster, &repo, ("b", "b", n), &["--dry-run"]);
    code(&dry, 2);
    assert!(stderr(&dry).contains("app a"), "{}", describe(&dry));

    // diff-git --adopt previews the takeover as the sync will print it.
    let preview = plugin(cluster, &repo, "diff-git", ("b", "b", n), &["--adopt"]);
    code(&preview, 1);
    let adopting = format!("adopting ConfigMap {n}/shared from app a (namespace {n})");
    assert!(
        stderr(&preview).contains(&adopting),
        "{}",
        describe(&preview)
    );

    let adopted = sync(cluster, &repo, ("b", "b", n), &["--adopt"]);
    code(&adopted, 0);
    assert!(
        stderr(&adopted).contains(&adopting),
        "{}",
        describe(&adopted)
    );
    assert_eq!(get(cluster, n, "configmap/shared", PART_OF), b_id);
    assert_eq!(
        get(cluster, n, "configmap/shared", "{.data.greeting}"),
        "from-b"
    );
    // Ours now: the next sync needs no --adopt.
    code(&sync(cluster, &repo, ("b", "b", n), &[]), 0);
    // a's release still wants its own greeting: a's diff shows b's change (both apps
    // apply with the same field manager, so a's entry alone cannot prove it unchanged).
    let a_diff = plugin(cluster, &repo, "diff-git", ("a", "a", n), &[]);
    code(&a_diff, 1);
    let shown = String::from_utf8_lossy(&a_diff.stdout);
    assert!(
        shown.contains("from-a") && shown.contains("from-b"),
        "{}",
        describe(&a_diff)
    );

    // b's now, so b's prune deletes it; a's diff then shows it missing.
    repo.remove("b/shared.yaml");
    repo.commit("b drops shared");
    code(&sync(cluster, &repo, ("b", "b", n), &["--prune"]), 0);
    assert!(!names(cluster, n, "configmaps").contains(&"configmap/shared".to_string()));
    code(&plugin(cluster, &repo, "diff-git", ("a", "a", n), &[]), 1);
}

/// A chart named tiny whose templates are `templates`, each a (file name, text).
pub(crate) fn tiny_chart(templates: &[(&str, &str)]) -> tempfile::TempDir {
    let chart = tempfile::tempdir().unwrap();
    std::fs::create_dir(chart.path().join("templates")).unwrap();
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    for (name, text) in templates {
        std::fs::write(chart.path().join("templates").join(name), text).unwrap();
    }
    chart
}

/// `helm install <release> <chart> -n <ns>` with the harness's helm.
pub(crate) fn helm_install(
    cluster: &TestCluster,
    release: &str,
    chart: &std::path::Path,
    ns: &str,
) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(cluster.helm_path())
        .env("KUBECONFIG", &cluster.admin_kubeconfig)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_CACHE_HOME", home.path().join(".cache"))
        .env("XDG_DATA_HOME", home.path().join(".local/share"))
        .args(["install", release])
        .arg(chart)
        .args(["-n", ns])
        .output()
        .unwrap();
    code(&out, 0);
}

#[test]
fn a_helm_releases_object_is_refused_naming_the_release_and_adopt_takes_it() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("own-helm");
    let n = ns.name.as_str();
    let chart = tiny_chart(&[("settings.yaml", &config_map("settings", "helm"))]);
    helm_install(cluster, "web", chart.path(), n);
    let before = state(cluster, n, "configmap/settings");

    // Moving from Helm: the same objects, now from git.
    let repo = GitFixture::new();
    repo.write("app/settings.yaml", &config_map("settings", "helm"));
    repo.commit("settings");
    let owner_line = format!("ConfigMap {n}/settings belongs to Helm release web in namespace {n}");

    let diff = plugin(cluster, &repo, "diff-git", ("app", "shop", n), &[]);
    code(&diff, 1);
    assert!(stderr(&diff).contains(&owner_line), "{}", describe(&diff));

    let refused = sync(cluster, &repo, ("app", "shop", n), &[]);
    code(&refused, 2);
    assert!(
        stderr(&refused).contains(&owner_line),
        "{}",
        describe(&refused)
    );
    assert_eq!(state(cluster, n, "configmap/settings"), before);
    assert!(cluster.release_statuses(n, "shop").is_empty());
    let secrets = names(cluster, n, "secrets");
    assert!(
        !secrets.contains(&"secret/shop.applyset".to_string()),
        "{secrets:?}"
    );
    assert!(
        names(cluster, n, "leases").is_empty(),
        "a lock was left held"
    );

    let adopted = sync(cluster, &repo, ("app", "shop", n), &["--adopt"]);
    code(&adopted, 0);
    assert!(
        stderr(&adopted).contains(&format!(
            "adopting ConfigMap {n}/settings from Helm release web in namespace {n}"
        )),
        "{}",
        describe(&adopted)
    );
    assert_eq!(
        get(cluster, n, "configmap/settings", PART_OF),
        applyset_id(cluster, n, "shop")
    );
    // Helm's annotations stay, yet the object is ours now: no --adopt needed again.
    code(&sync(cluster, &repo, ("app", "shop", n), &[]), 0);
}

#[test]
fn an_object_nobody_owns_is_adopted_and_the_preview_says_so() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("own-bare");
    let n = ns.name.as_str();
    cluster.apply_yaml(n, &config_map("bare", "hello"));
    let repo = GitFixture::new();
    repo.write("app/bare.yaml", &config_map("bare", "hello"));
    repo.commit("bare");
    let note = format!("note: ConfigMap {n}/bare exists without an owner: adopted");

    // The same content, labels aside: nothing differs, and the note says what sync does.
    let diff = plugin(cluster, &repo, "diff-git", ("app", "shop", n), &[]);
    code(&diff, 0);
    assert!(stderr(&diff).contains(&note), "{}", describe(&diff));

    let synced = sync(cluster, &repo, ("app", "shop", n), &[]);
    code(&synced, 0);
    assert!(stderr(&synced).contains(&note), "{}", describe(&synced));
    assert_eq!(
        get(cluster, n, "configmap/bare", PART_OF),
        applyset_id(cluster, n, "shop")
    );
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        [(1, "deployed".to_string())]
    );
}

#[test]
fn a_heal_never_takes_back_what_another_app_adopted() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("own-heal");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("a/shared.yaml", &config_map("shared", "from-a"));
    repo.write("b/shared.yaml", &config_map("shared", "from-b"));
    repo.commit("both");
    code(&sync(cluster, &repo, ("a", "a", n), &[]), 0);
    code(&sync(cluster, &repo, ("b", "b", n), &["--adopt"]), 0);
    let b_id = applyset_id(cluster, n, "b");
    let taken = state(cluster, n, "configmap/shared");
    assert_eq!(taken.0, b_id);

    // a's release still has it, so a sees drift; healing it would take it back.
    let drift = |extra: &[&str]| {
        cluster
            .kubectl()
            .args(["drift", "a", "-n", n, "--wait=false"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    code(&drift(&[]), 1);
    let healed = drift(&["--heal"]);
    code(&healed, 2);
    let err = stderr(&healed);
    assert!(
        err.contains(&format!(
            "ConfigMap {n}/shared belongs to app b (namespace {n})"
        )),
        "{err}"
    );
    assert_eq!(state(cluster, n, "configmap/shared"), taken);
    assert_eq!(
        cluster.release_statuses(n, "a"),
        [(1, "deployed".to_string())]
    );
    assert!(
        names(cluster, n, "leases").is_empty(),
        "a lock was left held"
    );
}
