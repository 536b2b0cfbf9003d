//! Users with exactly the permissions a test gives them: a ServiceAccount, its token from
//! the TokenRequest API, and a kubeconfig of its own.

use std::path::PathBuf;

use crate::{TestCluster, record};

/// A ServiceAccount user and the kubeconfig that authenticates as it.
pub struct ServiceAccountUser {
    pub name: String,
    pub namespace: String,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServiceAccountUser {
    /// The username the API server knows it by (for RoleBindings and error messages).
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

impl TestCluster {
    /// Creates ServiceAccount `name` in `namespace` (no permissions yet) and a kubeconfig
    /// for it whose default namespace is `namespace`.
    pub fn service_account_user(&self, namespace: &str, name: &str) -> ServiceAccountUser {
        self.kubectl_ok(&["create", "serviceaccount", name, "-n", namespace]);
        let token = self
            .kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=2h"])
            .trim()
            .to_string();
        record::remember_credential(
            &TestCluster::get().state,
            &format!("sa-{}-{namespace}-{name}", std::process::id()),
            &token,
        );
        let admin = std::fs::read_to_string(&self.admin_kubeconfig).unwrap();
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin).unwrap();
        let cluster = &config["clusters"][0]["cluster"];
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}@test\n  context:\n    cluster: test\n    user: {name}\n    namespace: {namespace}\ncurrent-context: {name}@test\n",
            cluster["server"].as_str().unwrap(),
            cluster["certificate-authority"].as_str().unwrap(),
        );
        let dir = tempfile::Builder::new()
            .prefix("kubectl-gitops-user")
            .tempdir()
            .unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).unwrap();
        ServiceAccountUser {
            name: name.to_string(),
            namespace: namespace.to_string(),
            kubeconfig: path,
            _dir: dir,
        }
    }
}
