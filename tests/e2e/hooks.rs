//! Hooks and waves as Argo CD and Helm repositories use them, synced unchanged: the order
//! is read from the API server's audit log and from the objects' own status times, never
//! from our output alone.

use std::path::Path;
use std::process::Output;

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};
use serde_json::Value;

use crate::faults::sync_cmd;

/// Copies the fixture directory `tests/fixtures/NAME` to `dest` in `repo`.
pub(crate) fn copy_fixture(repo: &GitFixture, name: &str, dest: &str) {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let mut files = Vec::new();
    walk(&root, &mut files);
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy();
        repo.write(
            &format!("{dest}/{relative}"),
            &std::fs::read_to_string(&file).unwrap(),
        );
    }
}

fn sync(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    sync_cmd(cluster, repo, args).output().unwrap()
}

/// One write our plugins made, from the audit log.
#[derive(Debug)]
struct Write {
    /// `create jobs migrate`, `patch deployments backend` (a generated name is empty).
    what: String,
    received: String,
    done: String,
}

/// The writes (create, patch, update, delete; no dry runs) of our plugins to the app's own
/// kinds in `namespace` since `offset`, in the order the API server received them.
fn writes_since(cluster: &TestCluster, offset: u64, namespace: &str) -> Vec<Write> {
    let mut writes: Vec<Write> = cluster
        .our_audit_events_since(offset)
        .into_iter()
        .filter(|e| e["objectRef"]["namespace"] == namespace)
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "patch" | "update" | "delete")
            )
        })
        .filter(|e| {
            !e["requestURI"]
                .as_str()
                .is_some_and(|u| u.contains("dryRun"))
        })
        .filter(|e| {
            matches!(
                e["objectRef"]["resource"].as_str(),
                Some("configmaps" | "deployments" | "services" | "jobs" | "pods")
            )
        })
        .map(|e| Write {
            what: format!(
                "{} {} {}",
                e["verb"].as_str().unwrap(),
                e["objectRef"]["resource"].as_str().unwrap(),
                e["objectRef"]["name"].as_str().unwrap_or("")
            )
            .trim_end()
            .to_string(),
            received: e["requestReceivedTimestamp"].as_str().unwrap().to_string(),
            done: e["stageTimestamp"].as_str().unwrap().to_string(),
        })
        .collect();
    writes.sort_by(|a, b| a.received.cmp(&b.received));
    writes
}

/// The position of the first write that is `what`, failing with every write if none is.
fn at(writes: &[Write], what: &str) -> usize {
    writes
        .iter()
        .position(|w| w.what == what)
        .unwrap_or_else(|| panic!("no {what:?} among {:#?}", writes))
}

/// `a` (a time the cluster wrote, whole seconds) is not after `b` (an audit time).
fn not_after(a: &str, b: &str) -> bool {
    a[..19] <= b[..19]
}

fn get(cluster: &TestCluster, ns: &str, what: &str, path: &str) -> String {
    cluster.kubectl_ok(&["get", what, "-n", ns, "-o", &format!("jsonpath={path}")])
}

/// Jobs in `ns` whose name starts with `prefix`, as `name completionTime`.
fn jobs(cluster: &TestCluster, ns: &str, prefix: &str) -> Vec<(String, String)> {
    get(
        cluster,
        ns,
        "jobs",
        "{range .items[*]}{.metadata.name} {.status.completionTime}{\"\\n\"}{end}",
    )
    .lines()
    .filter(|l| l.starts_with(prefix))
    .map(|l| {
        let (name, done) = l.split_once(' ').unwrap_or((l, ""));
        (name.to_string(), done.to_string())
    })
    .collect()
}

fn release(cluster: &TestCluster, ns: &str, app: &str, revision: u32) -> Value {
    let text = cluster.kubectl_ok(&[
        "release-history",
        app,
        &revision.to_string(),
        "-n",
        ns,
        "-o",
        "json",
    ]);
    serde_json::from_str(&text).unwrap()
}

/// (stage, result) of each hook a release ran.
fn hook_results(release: &Value) -> Vec<(String, String)> {
    release["hooks"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    (
                        r["stage"].as_str().unwrap().to_string(),
                        r["result"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_argo_cd_app_runs_its_hooks_and_waves_in_order() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hk-argo");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    copy_fixture(&repo, "argo-hooks", "apps/shop");
    repo.commit("shop with hooks and waves");

    // diff-git lists the hooks a sync would run; they are no difference of their own.
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", "apps/shop", "--app", "shop", "-n", n])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "hooks a sync would run (not run now):",
        &format!("  PreSync: Job.batch {n}/upgrade-sql-schema-* (PreSync, wave 0)"),
        &format!("  Sync: Job.batch {n}/migrate (Sync, wave 2)"),
        &format!("  PostSync: Job.batch {n}/smoke-test-* (PostSync, wave 0)"),
        &format!("  SyncFail: Job.batch {n}/notify-failure-* (SyncFail, wave 0)"),
    ] {
        assert!(err.contains(line), "missing {line:?}: {}", describe(&out));
    }
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        !diff.contains("kind: Job"),
        "hooks are no difference: {diff}"
    );

    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "apps/shop",
            "--app",
            "shop",
            "-n",
            n,
            "--timeout",
            "120s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let writes = writes_since(cluster, offset, n);

    // PreSync before anything is applied; then waves 0 to 3, the Sync hook with wave 2;
    // PostSync last, deleted once it succeeded.
    let presync = at(&writes, "create jobs");
    let settings = at(&writes, "patch configmaps settings");
    let backend = at(&writes, "patch deployments backend");
    let service = at(&writes, "patch services backend");
    let migrate = at(&writes, "create jobs migrate");
    let frontend = at(&writes, "patch deployments frontend");
    let postsync = writes
        .iter()
        .rposition(|w| w.what == "create jobs")
        .unwrap();
    assert!(presync < settings, "{writes:#?}");
    assert!(settings < backend && settings < service, "{writes:#?}");
    assert!(backend < migrate && service < migrate, "{writes:#?}");
    assert!(migrate < frontend, "{writes:#?}");
    assert!(frontend < postsync, "{writes:#?}");
    // Each step ended before the next began.
    assert!(
        writes[settings].done < writes[backend].received,
        "{writes:#?}"
    );
    assert!(
        writes[backend].done < writes[migrate].received,
        "{writes:#?}"
    );

    // What the cluster says of when each hook finished and each wave was healthy.
    let schema = jobs(cluster, n, "upgrade-sql-schema-");
    assert_eq!(schema.len(), 1, "{schema:?}");
    assert!(
        not_after(&schema[0].1, &writes[settings].received),
        "the PreSync Job completed at {} before wave 0 began at {}",
        schema[0].1,
        writes[settings].received
    );
    let available = get(
        cluster,
        n,
        "deployment/backend",
        "{.status.conditions[?(@.type==\"Available\")].lastTransitionTime}",
    );
    assert!(
        not_after(&available, &writes[migrate].received),
        "wave 1 was healthy ({available}) before wave 2 began ({})",
        writes[migrate].received
    );
    let migrated = jobs(cluster, n, "migrate");
    assert!(
        not_after(&migrated[0].1, &writes[frontend].received),
        "the Sync hook of wave 2 completed ({}) before wave 3 began ({})",
        migrated[0].1,
        writes[frontend].received
    );
    // The PostSync Job is deleted when it succeeds; SyncFail never ran.
    assert!(jobs(cluster, n, "smoke-test-").is_empty());
    assert!(
        writes
            .iter()
            .skip(postsync)
            .any(|w| w.what.starts_with("delete jobs smoke-test-")),
        "{writes:#?}"
    );
    assert!(jobs(cluster, n, "notify-failure-").is_empty());
    // Hooks are not members of the app.
    let members = get(
        cluster,
        n,
        "jobs",
        "{.items[*].metadata.labels.applyset\\.kubernetes\\.io/part-of}",
    );
    assert!(members.trim().is_empty(), "{members}");

    let record = release(cluster, n, "shop", 1);
    assert_eq!(
        hook_results(&record),
        [
            ("PreSync".to_string(), "succeeded".to_string()),
            ("Sync".into(), "succeeded".into()),
            ("PostSync".into(), "succeeded".into()),
        ],
        "{record}"
    );
    assert_eq!(record["hooks"][2]["deleted"], true, "{record}");
    let text = cluster.kubectl_ok(&["release-history", "shop", "1", "-n", n]);
    assert!(text.contains("Hooks:"), "{text}");
    assert!(text.contains(&format!("Job.batch {n}/migrate")), "{text}");

    // Hooks are no drift: the Jobs left behind are not the app's objects.
    let out = cluster
        .kubectl()
        .args(["drift", "shop", "-n", n])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // A sync that finds nothing to change runs no hook and records nothing.
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "apps/shop", "--app", "shop", "-n", n],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let again = writes_since(cluster, offset, n);
    assert!(again.iter().all(|w| !w.what.contains("jobs")), "{again:#?}");
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        [(1, "deployed".to_string())]
    );

    // A change to a hook alone is no difference for diff-git, but a sync runs the hooks
    // again (they changed) and records a release.
    let smoke = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/argo-hooks/smoke-test.yaml"),
    )
    .unwrap()
    .replace("curl:8.10.1", "curl:8.11.0");
    repo.write("apps/shop/smoke-test.yaml", &smoke);
    repo.commit("a newer smoke test");
    let out = cluster
        .kubectl()
        .args(["diff-git", "HEAD", "apps/shop", "--app", "shop", "-n", n])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "apps/shop", "--app", "shop", "-n", n],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let again = writes_since(cluster, offset, n);
    assert!(
        again.iter().any(|w| w.what == "create jobs migrate"),
        "{again:#?}"
    );
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        [(1, "superseded".to_string()), (2, "deployed".to_string())]
    );
}

#[test]
fn a_failing_presync_hook_applies_nothing_and_runs_syncfail() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hk-fail");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    copy_fixture(&repo, "argo-hooks", "apps/shop");
    // The schema upgrade fails, as a locked database would make it.
    let failing = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/argo-hooks/upgrade-sql-schema.yaml"),
    )
    .unwrap()
    .replace(
        "  template:\n    spec:",
        "  template:\n    metadata:\n      annotations:\n        kubectl-gitops.test/fail: \"relation users is locked\"\n    spec:",
    );
    repo.write("apps/shop/upgrade-sql-schema.yaml", &failing);
    repo.commit("a schema upgrade that fails");

    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "apps/shop",
            "--app",
            "shop",
            "-n",
            n,
            "--timeout",
            "90s",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("PreSync hook Job.batch {n}/upgrade-sql-schema-")),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("relation users is locked"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("no object was applied"), "{}", describe(&out));
    // Nothing of the app exists; the SyncFail hook ran.
    for kind in [
        "configmap/settings",
        "deployment/backend",
        "service/backend",
    ] {
        let out = cluster
            .kubectl()
            .args(["get", kind, "-n", n])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{kind} exists: {}", describe(&out));
    }
    let notified = jobs(cluster, n, "notify-failure-");
    assert_eq!(notified.len(), 1, "{notified:?}");
    assert_eq!(
        cluster.release_statuses(n, "shop"),
        [(1, "failed".to_string())]
    );
    let record = release(cluster, n, "shop", 1);
    assert_eq!(
        hook_results(&record),
        [
            ("PreSync".to_string(), "failed".to_string()),
            ("SyncFail".into(), "succeeded".into()),
        ],
        "{record}"
    );
    assert!(
        record["hooks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("relation users is locked"),
        "{record}"
    );
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("upgrade-sql-schema-"),
        "{record}"
    );

    // --no-hooks syncs the objects without running any hook.
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "apps/shop", "--app", "shop", "-n", n, "--no-hooks"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        writes_since(cluster, offset, n)
            .iter()
            .all(|w| !w.what.contains(" jobs")),
        "no hook ran"
    );
    cluster.kubectl_ok(&["get", "deployment/frontend", "-n", n]);
}

#[test]
fn a_failing_postsync_hook_fails_the_release_after_the_apply() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hk-post");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  k: v\n",
    );
    repo.write(
        "app/check.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: check-\n  annotations:\n    argocd.argoproj.io/hook: PostSync\n    kubectl-gitops.test/fail: \"endpoint /healthz answered 503\"\nspec:\n  restartPolicy: Never\n  nodeSelector: {type: kwok}\n  containers:\n  - name: check\n    image: busybox:1.36\n",
    );
    repo.commit("settings and a check that fails");
    let out = sync(
        cluster,
        &repo,
        &["HEAD", "app", "--app", "web", "-n", n, "--timeout", "60s"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("PostSync hook Pod {n}/check-")),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("endpoint /healthz answered 503"),
        "the Pod's termination message: {}",
        describe(&out)
    );
    // The objects were applied; the release failed.
    assert_eq!(get(cluster, n, "configmap/settings", "{.data.k}"), "v");
    assert_eq!(
        cluster.release_statuses(n, "web"),
        [(1, "failed".to_string())]
    );
}

#[test]
fn a_charts_hooks_run_as_helm_means_them_on_install_and_upgrade() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hk-helm");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    copy_fixture(&repo, "helm-hooks", "charts/shop");
    repo.commit("the shop chart");

    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "charts/shop",
            "--app",
            "web",
            "-n",
            n,
            "--timeout",
            "90s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let first = writes_since(cluster, offset, n);
    // pre-install hooks by weight (the ConfigMap at -10, then the Job at -5), before the
    // chart's objects; post-install after them. No pre-upgrade hook on an install.
    let config = at(&first, "create configmaps web-shop-db-init");
    let init = at(&first, "create jobs web-shop-db-init");
    let deployment = at(&first, "patch deployments web-shop");
    let welcome = at(&first, "create jobs web-shop-welcome");
    assert!(
        config < init && init < deployment && deployment < welcome,
        "{first:#?}"
    );
    assert!(
        first[config].done < first[init].received,
        "a weight starts when the one before it is done: {first:#?}"
    );
    assert!(
        first
            .iter()
            .all(|w| w.what != "create jobs web-shop-migrate"),
        "{first:#?}"
    );
    // hook-succeeded deleted the init Job and the welcome Job; the ConfigMap stays.
    assert!(jobs(cluster, n, "web-shop").is_empty());
    assert_eq!(
        get(cluster, n, "configmap/web-shop-db-init", "{.data.database}"),
        "shop"
    );
    // The test hook is listed, never run.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "not run: Pod {n}/web-shop-test-connection (a helm test hook)"
        )),
        "{}",
        describe(&out)
    );
    let pods = get(cluster, n, "pods", "{.items[*].metadata.name}");
    assert!(!pods.contains("test-connection"), "{pods}");

    // An upgrade runs pre-upgrade, not pre-install.
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "charts/shop",
            "--app",
            "web",
            "-n",
            n,
            "--set",
            "image.tag=1.28",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let second = writes_since(cluster, offset, n);
    let migrate = at(&second, "create jobs web-shop-migrate");
    let deployment = at(&second, "patch deployments web-shop");
    assert!(migrate < deployment, "{second:#?}");
    assert!(
        second
            .iter()
            .all(|w| !w.what.contains("db-init") && !w.what.contains("welcome")),
        "{second:#?}"
    );
    let record = release(cluster, n, "web", 2);
    assert_eq!(
        hook_results(&record),
        [("PreSync".to_string(), "succeeded".to_string())],
        "{record}"
    );
    assert_eq!(record["hooks"][0]["events"], "pre-upgrade", "{record}");

    // The dry run of the next upgrade lists its hook and runs nothing.
    let offset = cluster.audit_offset();
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "charts/shop",
            "--app",
            "web",
            "-n",
            n,
            "--set",
            "image.tag=1.29",
            "--dry-run",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "  PreSync: Job.batch {n}/web-shop-migrate (pre-upgrade, weight 0)"
        )),
        "{}",
        describe(&out)
    );
    assert!(writes_since(cluster, offset, n).is_empty());

    // A rollback runs pre-rollback hooks, from the release it goes back to.
    let out = sync(cluster, &repo, &["--rollback", "--app", "web", "-n", n]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        get(cluster, n, "configmap/web-shop-rolled-back", "{.data.to}"),
        "2.4.1"
    );
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/web-shop",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.27"
    );
    let record = release(cluster, n, "web", 3);
    assert_eq!(record["hooks"][0]["events"], "pre-rollback", "{record}");

    // A failing pre-upgrade hook stops the upgrade: the Deployment keeps its image.
    let out = sync(
        cluster,
        &repo,
        &[
            "HEAD",
            "charts/shop",
            "--app",
            "web",
            "-n",
            n,
            "--set",
            "image.tag=1.29",
            "--set",
            "database.migrationFailure=column email already exists",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("column email already exists"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        get(
            cluster,
            n,
            "deployment/web-shop",
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.27"
    );
}
