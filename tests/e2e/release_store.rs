//! Release records as Secrets and the app lock as a Lease, against the real API server.

use std::path::Path;
use std::time::Duration;

use gitops::kubeconfig::{ConnectOptions, Environment, connect};
use gitops::lock::{self, LockError};
use gitops::release::record::{Operation, ReleaseRecord, ReleaseStatus};
use gitops::release::store::{self, INTERRUPTED, RELEASE_TYPE, ReleaseStore, StoreError};
use kubectl_gitops_tests::{TestCluster, block_on};

async fn client(kubeconfig: &Path) -> kube::Client {
    let options = ConnectOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        ..Default::default()
    };
    connect(&options, &Environment::default())
        .await
        .unwrap()
        .client()
        .unwrap()
}

fn new_record(namespace: &str) -> ReleaseRecord {
    ReleaseRecord::start(
        "web",
        namespace,
        Operation::Sync,
        "admin",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n".into(),
    )
}

fn revisions(listed: &[Result<ReleaseRecord, store::UnreadableRecord>]) -> Vec<Option<u32>> {
    listed
        .iter()
        .map(|r| match r {
            Ok(record) => Some(record.revision),
            Err(unreadable) => unreadable.revision,
        })
        .collect()
}

async fn finish(store: &ReleaseStore, mut record: ReleaseRecord, status: ReleaseStatus) {
    record.status = status;
    record.finished = Some(k8s_openapi::jiff::Timestamp::now());
    store.update(&record).await.unwrap();
}

#[test]
fn records_count_up_are_superseded_listed_and_trimmed() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("release");
    let kubectl_get = |name: &str, path: &str| {
        cluster.kubectl_ok(&[
            "get",
            "secret",
            name,
            "-n",
            &ns.name,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    block_on(async {
        let store = ReleaseStore::new(client(&cluster.admin_kubeconfig).await, &ns.name);

        let r1 = store.create_pending(new_record(&ns.name)).await.unwrap();
        let r2 = store.create_pending(new_record(&ns.name)).await.unwrap();
        assert_eq!((r1.revision, r2.revision), (1, 2));
        assert_eq!(r1.status, ReleaseStatus::Pending);

        assert_eq!(kubectl_get("web.r1", "{.type}"), RELEASE_TYPE);
        let labels: serde_json::Value =
            serde_json::from_str(&kubectl_get("web.r1", "{.metadata.labels}")).unwrap();
        assert_eq!(
            labels,
            serde_json::json!({
                "app.kubernetes.io/managed-by": "kubectl-gitops",
                "kubectl-gitops.io/app": "web",
                "kubectl-gitops.io/revision": "1",
                "kubectl-gitops.io/status": "pending",
            })
        );

        finish(&store, r1, ReleaseStatus::Deployed).await;
        assert_eq!(
            kubectl_get("web.r1", "{.metadata.labels.kubectl-gitops\\.io/status}"),
            "deployed"
        );
        finish(&store, r2, ReleaseStatus::Deployed).await;
        store.supersede_others("web", 2).await.unwrap();
        let first = store.get("web", 1).await.unwrap().unwrap();
        assert_eq!(first.status, ReleaseStatus::Superseded);
        assert_eq!(
            kubectl_get("web.r1", "{.metadata.labels.kubectl-gitops\\.io/status}"),
            "superseded"
        );
        assert_eq!(
            store
                .latest_deployed("web")
                .await
                .unwrap()
                .unwrap()
                .revision,
            2
        );
        assert!(store.get("web", 9).await.unwrap().is_none());

        // A hand-written record that cannot be read is listed, not fatal.
        cluster.apply_yaml(
            &ns.name,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web.r0\n  labels:\n    kubectl-gitops.io/app: web\n    app.kubernetes.io/managed-by: kubectl-gitops\ntype: {RELEASE_TYPE}\nstringData:\n  release: not a record\n"
            ),
        );
        let listed = store.list("web").await.unwrap();
        assert_eq!(revisions(&listed), [Some(2), Some(1), Some(0)]);
        let unreadable = listed[2].as_ref().unwrap_err();
        assert_eq!(unreadable.secret, "web.r0");
        assert!(unreadable.reason.contains("not valid JSON"), "{unreadable}");
        assert!(matches!(
            store.get("web", 0).await,
            Err(StoreError::Unreadable(_))
        ));

        let r3 = store.create_pending(new_record(&ns.name)).await.unwrap();
        let r4 = store.create_pending(new_record(&ns.name)).await.unwrap();
        finish(&store, r3, ReleaseStatus::Failed).await;
        finish(&store, r4, ReleaseStatus::Failed).await;
        // Keeps the newest two and the newest deployed (2), which is older than them.
        assert_eq!(store.trim("web", 2).await.unwrap(), [1, 0]);
        assert_eq!(
            revisions(&store.list("web").await.unwrap()),
            [Some(4), Some(3), Some(2)]
        );

        // A sync that crashed left r5 pending; the next one (holding the lock) fails it.
        let r5 = store.create_pending(new_record(&ns.name)).await.unwrap();
        assert_eq!(r5.revision, 5);
        assert_eq!(store.fail_stale_pending("web").await.unwrap(), [5]);
        let r5 = store.get("web", 5).await.unwrap().unwrap();
        assert_eq!(r5.status, ReleaseStatus::Failed);
        assert_eq!(r5.error.as_deref(), Some(INTERRUPTED));

        // A young pending record may belong to a running sync: trim leaves it.
        let r6 = store.create_pending(new_record(&ns.name)).await.unwrap();
        assert_eq!(store.trim("web", 0).await.unwrap(), [5, 4, 3]);
        assert_eq!(
            revisions(&store.list("web").await.unwrap()),
            [Some(r6.revision), Some(2)]
        );

        assert_eq!(store.apps().await.unwrap(), ["web"]);
        let client = client(&cluster.admin_kubeconfig).await;
        let all = store::list_all(client.clone(), Some(&ns.name), store::Read::Whole)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].app.as_str(), all[0].records), ("web", 2));
        let whole = all[0].newest.as_ref().unwrap();
        assert_eq!(whole.revision, 6);
        assert!(!whole.manifest.text().is_empty());
        // The head, from the listing alone, says the same of the release, without its manifest.
        let heads = store::list_all(client, Some(&ns.name), store::Read::Head)
            .await
            .unwrap();
        let head = heads[0].newest.as_ref().unwrap();
        assert_eq!((head, heads[0].records), (&whole.head(), 2));
        assert!(head.manifest.text().is_empty());
    });
}

#[test]
fn concurrent_writers_get_distinct_revisions() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("release-race");
    block_on(async {
        let store = ReleaseStore::new(client(&cluster.admin_kubeconfig).await, &ns.name);
        let (a, b, c) = tokio::join!(
            store.create_pending(new_record(&ns.name)),
            store.create_pending(new_record(&ns.name)),
            store.create_pending(new_record(&ns.name)),
        );
        let mut got = vec![
            a.unwrap().revision,
            b.unwrap().revision,
            c.unwrap().revision,
        ];
        got.sort();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn the_read_only_user_is_told_which_namespace_and_verb() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("release-rbac");
    block_on(async {
        let store = ReleaseStore::new(client(&cluster.viewer_kubeconfig).await, &ns.name);
        let err = store.list("web").await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Forbidden { .. }), "{err:?}");
        assert!(
            text.starts_with(&format!("cannot list Secrets in namespace {}: ", ns.name)),
            "{text}"
        );
        assert!(text.contains("release records are Secrets"), "{text}");
        let err = store
            .create_pending(new_record(&ns.name))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(403), "{err}");
    });
}

#[test]
fn one_sync_per_app_holds_the_lease() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("lock");
    let lease = |path: &str| {
        cluster.kubectl_ok(&[
            "get",
            "lease",
            "kubectl-gitops.web",
            "-n",
            &ns.name,
            "--ignore-not-found",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    block_on(async {
        let client = client(&cluster.admin_kubeconfig).await;
        let minute = Duration::from_secs(60);
        let alice = lock::acquire(client.clone(), &ns.name, "web", "alice@a pid 1", minute)
            .await
            .unwrap();
        assert_eq!(lease("{.spec.holderIdentity}"), "alice@a pid 1");
        assert_eq!(lease("{.spec.leaseDurationSeconds}"), "60");

        let err = lock::acquire(client.clone(), &ns.name, "web", "bob@b pid 2", minute)
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("app web is being synced by alice@a pid 1 (lease expires in "),
            "{text}"
        );
        alice.renew().await.unwrap();
        let offset = cluster.audit_offset();
        alice.release().await.unwrap();
        assert_eq!(lease("{.metadata.name}"), "", "released means deleted");
        // Untouched since its renewal, the Lease is deleted on the version that renewal
        // left, without being read first.
        let requests: Vec<String> = cluster
            .our_requests_since(offset, &ns.name)
            .into_iter()
            .filter(|r| r.ends_with("leases"))
            .collect();
        assert_eq!(requests, ["delete leases"]);

        // A lease left behind by a crashed sync expires and is taken over.
        let crashed = lock::acquire(
            client.clone(),
            &ns.name,
            "web",
            "alice@a pid 1",
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let bob = lock::acquire(client.clone(), &ns.name, "web", "bob@b pid 2", minute)
            .await
            .unwrap();
        assert_eq!(lease("{.spec.holderIdentity}"), "bob@b pid 2");
        assert_eq!(lease("{.spec.leaseTransitions}"), "1");
        let err = crashed.renew().await.unwrap_err();
        assert!(err.to_string().contains("now held by bob@b pid 2"), "{err}");
        assert!(matches!(
            crashed.release().await,
            Err(LockError::Lost { .. })
        ));
        assert_eq!(
            lease("{.spec.holderIdentity}"),
            "bob@b pid 2",
            "a lost lock never deletes the new holder's lease"
        );
        bob.release().await.unwrap();
        assert_eq!(lease("{.metadata.name}"), "");
    });
}

#[test]
fn keep_alive_renews_past_the_lease_duration() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("lock-alive");
    block_on(async {
        let client = client(&cluster.admin_kubeconfig).await;
        let short = Duration::from_secs(2);
        let held = lock::acquire(client.clone(), &ns.name, "web", "alice@a pid 1", short)
            .await
            .unwrap()
            .keep_alive()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        held.check().unwrap();
        let err = lock::acquire(client.clone(), &ns.name, "web", "bob@b pid 2", short)
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err:?}");
        held.release().await.unwrap();
        lock::acquire(client, &ns.name, "web", "bob@b pid 2", short)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    });
}
