//! Detection, `# Source:` mapping and errors without helm; rendering with the real helm
//! (`$HELM`, else `helm` on PATH: a missing one fails).

use super::*;
use crate::render::tests::snapshot;
use crate::render::{
    RenderOptions, Renderer, chart_info as chart_info_any, detect, render as render_any,
};
use crate::source::CommitInfo;
use serde_json::json;

fn options(values_files: &[&str], set: &[&str]) -> RenderOptions {
    let binary = std::env::var_os("HELM").map_or_else(|| PathBuf::from("helm"), PathBuf::from);
    RenderOptions {
        helm: HelmOptions {
            binary,
            release_name: "shop".into(),
            namespace: "apps".into(),
            values_files: values_files.iter().map(|s| s.to_string()).collect(),
            set: set.iter().map(|s| s.to_string()).collect(),
            ..HelmOptions::default()
        },
        ..RenderOptions::default()
    }
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 1.2.3\nappVersion: \"2.0\"\n\
    dependencies:\n- name: cache\n  version: 0.1.0\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  \
    name: {{ .Release.Name }}-web\n  namespace: {{ .Release.Namespace }}\nspec:\n  \
    replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: web}}\n  template:\n    \
    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        \
    image: \"nginx:{{ .Values.image.tag }}\"\n";
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
    metadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  \
    names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n  \
    - name: v1\n    served: true\n    storage: true\n    schema:\n      \
    openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
const HOOK: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: test-{{ .Release.Name }}\n  \
    annotations: {helm.sh/hook: test}\nspec:\n  containers: [{name: t, image: busybox}]\n";

fn chart_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("charts/web/Chart.yaml", CHART),
        (
            "charts/web/values.yaml",
            "replicas: 1\nimage: {tag: \"1.0\"}\n",
        ),
        ("charts/web/templates/deployment.yaml", DEPLOYMENT),
        ("charts/web/templates/tests/test.yaml", HOOK),
        ("charts/web/crds/widget.yaml", CRD),
        (
            "charts/web/charts/cache/Chart.yaml",
            "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
        ),
        (
            "charts/web/charts/cache/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cache}\ndata: {size: {{ .Values.size | quote }}}\n",
        ),
        ("charts/web/charts/cache/values.yaml", "size: 10\n"),
        ("env/prod.yaml", "replicas: 3\ncache: {size: 20}\n"),
        (
            "other/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
        ),
    ]
}

#[test]
fn a_chart_yaml_at_the_root_means_helm() {
    let mut files = chart_files();
    files.push(("charts/web/kustomization.yaml", "resources: []\n"));
    assert_eq!(detect(&snapshot("charts/web", &files)), Renderer::Helm);
    assert_eq!(detect(&snapshot("./charts/web/", &files)), Renderer::Helm);
    assert_eq!(Renderer::Helm.to_string(), "helm");
    // A chart below the path, or a path inside a chart, is not one.
    assert_eq!(detect(&snapshot("charts", &files)), Renderer::Plain);
    assert_eq!(
        detect(&snapshot("charts/web/templates", &files)),
        Renderer::Plain
    );
}

#[test]
fn sources_map_to_repository_files() {
    let mut files = chart_files();
    files.push(("charts/web/charts/db-2.0.0.tgz", ""));
    let snap = snapshot("charts/web", &files);
    let map = |source: &str| repo_file(&snap, "charts/web", source);
    assert_eq!(
        map("web/templates/deployment.yaml"),
        "charts/web/templates/deployment.yaml"
    );
    assert_eq!(map("web/crds/widget.yaml"), "charts/web/crds/widget.yaml");
    assert_eq!(
        map("web/charts/cache/templates/cm.yaml"),
        "charts/web/charts/cache/templates/cm.yaml"
    );
    // A subchart vendored as an archive: the archive.
    assert_eq!(
        map("web/charts/db/templates/x.yaml"),
        "charts/web/charts/db-2.0.0.tgz"
    );
    // Made by a template helm names in another way: the chart.
    assert_eq!(map("web/templates/gone.yaml"), "charts/web/Chart.yaml");
    assert_eq!(map("nonsense"), "charts/web/Chart.yaml");
}

#[test]
fn output_is_split_at_source_comments() {
    let snap = snapshot("charts/web", &chart_files());
    let output = "---\n# Source: web/crds/widget.yaml\napiVersion: v1\nkind: ConfigMap\n\
        metadata: {name: a}\n---\n# Source: web/templates/deployment.yaml\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n\
        # Source: web/templates/deployment.yaml\n# a comment of the template\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {x: \"# Source: no\"}\n";
    let manifests = split_by_source(&snap, "charts/web", output).unwrap();
    let origins: Vec<_> = manifests
        .iter()
        .map(|m| {
            (
                m.object["metadata"]["name"].clone(),
                m.origin.to_string(),
                m.origin.document,
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            (json!("a"), "charts/web/crds/widget.yaml:1".to_string(), 0),
            (
                json!("b"),
                "charts/web/templates/deployment.yaml:1".to_string(),
                0
            ),
            (
                json!("c"),
                "charts/web/templates/deployment.yaml:1".to_string(),
                1
            ),
        ]
    );
    // A malformed document names the template.
    let err = split_by_source(
        &snap,
        "charts/web",
        "---\n# Source: web/templates/deployment.yaml\nkind: [\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("charts/web/templates/deployment.yaml:"),
        "{err}"
    );
}

#[test]
fn set_keys_leave_the_values_out() {
    let info = ChartInfo {
        set: vec![
            "image.tag=v2,password=hunter2".into(),
            "a\\,b=1".into(),
            "list[0]=x".into(),
        ],
        ..ChartInfo::default()
    };
    assert_eq!(
        info.set_keys(),
        ["image.tag", "password", "a\\,b", "list[0]"]
    );
}

#[test]
fn values_paths_are_repo_relative() {
    assert_eq!(
        normalise_repo_path("./env/../env/prod.yaml").as_deref(),
        Some("env/prod.yaml")
    );
    assert_eq!(normalise_repo_path("/etc/passwd"), None);
    assert_eq!(normalise_repo_path("../outside.yaml"), None);
    assert_eq!(normalise_repo_path("."), None);
}

#[test]
fn missing_dependencies_are_read_from_helms_message() {
    assert_eq!(
        missing_dependencies("found in Chart.yaml, but missing in charts/ directory: a, b"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(missing_dependencies("parse error"), None);
}

#[test]
fn values_need_a_chart() {
    let snap = snapshot("other", &chart_files());
    let err = render_any(&snap, &options(&["env/prod.yaml"], &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--values and --set are for Helm charts, but `other` has no Chart.yaml (it is rendered as plain)"
    );
}

#[test]
fn a_missing_values_file_is_named() {
    let mut snap = snapshot("charts/web", &chart_files());
    let err = render_any(&snap, &options(&["env/nope.yaml"], &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "values file `env/nope.yaml` does not exist in the working tree (--values paths are \
         relative to the top of the repository)"
    );
    snap.commit = Some(CommitInfo {
        id: "0123456789abcdef0123456789abcdef01234567".into(),
        short_id: "0123456".into(),
        subject: String::new(),
        author_name: String::new(),
        author_email: String::new(),
        time: 0,
    });
    let err = render_any(&snap, &options(&["env/nope.yaml"], &[])).unwrap_err();
    assert!(
        err.to_string().contains("does not exist at commit 0123456"),
        "{err}"
    );
    let err = render_any(&snap, &options(&["../up.yaml"], &[])).unwrap_err();
    assert!(
        matches!(err, RenderError::ValuesFileOutside { .. }),
        "{err}"
    );
}

#[test]
fn a_missing_helm_says_how_to_install_it() {
    let mut opts = options(&[], &[]);
    opts.helm.binary = PathBuf::from("/nonexistent/helm");
    let err = render_any(&snapshot("charts/web", &chart_files()), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("`/nonexistent/helm` was not found;"),
        "{err}"
    );
    assert!(err.contains("https://helm.sh/docs/intro/install/"), "{err}");
    assert!(err.contains("$HELM"), "{err}");
}

#[test]
fn renders_templates_subcharts_and_crds_with_values_from_outside_the_chart() {
    let snap = snapshot("charts/web", &chart_files());
    let rendered = render_any(&snap, &options(&["env/prod.yaml"], &["image.tag=1.5"])).unwrap();
    // Hooks are rendered too (the sync runs them); the test hook is one of them.
    let (hooks, manifests): (Vec<_>, Vec<_>) = rendered
        .into_iter()
        .partition(|m| crate::objects::hook::is_hook(&m.object));
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(
        hooks[0].object["metadata"]["annotations"]["helm.sh/hook"],
        "test"
    );
    let summary: Vec<_> = manifests
        .iter()
        .map(|m| {
            (
                m.object["kind"].as_str().unwrap().to_string(),
                m.origin.file.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "CustomResourceDefinition".to_string(),
                "charts/web/crds/widget.yaml".to_string()
            ),
            (
                "ConfigMap".to_string(),
                "charts/web/charts/cache/templates/cm.yaml".to_string()
            ),
            (
                "Deployment".to_string(),
                "charts/web/templates/deployment.yaml".to_string()
            ),
        ],
    );
    let deployment = &manifests[2].object;
    assert_eq!(deployment["metadata"]["name"], "shop-web");
    assert_eq!(deployment["metadata"]["namespace"], "apps");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.5"
    );
    assert_eq!(manifests[1].object["data"]["size"], "20");

    let info = chart_info_any(&snap, &options(&["env/prod.yaml"], &["image.tag=1.5"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("web", "1.2.3")
    );
    assert_eq!(info.app_version.as_deref(), Some("2.0"));
    assert_eq!(info.values_files, ["env/prod.yaml"]);
    assert_eq!(
        info.values,
        json!({"replicas": 3, "cache": {"size": 20}, "image": {"tag": "1.5"}})
    );
    assert_eq!(
        chart_info_any(&snapshot("other", &chart_files()), &options(&[], &[])).unwrap(),
        None
    );
}

#[test]
fn helm_errors_are_one_clear_line() {
    let mut files = chart_files();
    files.push((
        "charts/web/templates/bad.yaml",
        "{{ fail \"replicas must be set\" }}\n",
    ));
    let err = render_any(&snapshot("charts/web", &files), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("helm template failed for `charts/web`: "),
        "{err}"
    );
    assert!(err.contains("replicas must be set"), "{err}");
    assert!(
        !err.contains('\n') && !err.contains("kubectl-gitops-"),
        "{err}"
    );

    let mut files = chart_files();
    files.push(("charts/web/templates/nil.yaml", "{{ .Values.a.b.c }}\n"));
    let err = render_any(&snapshot("charts/web", &files), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "helm template failed for `charts/web`: charts/web/templates/nil.yaml:1:10; executing \
         \"charts/web/templates/nil.yaml\" at <.Values.a.b.c>:; nil pointer evaluating \
         interface {}.b"
    );

    let unvendored: Vec<_> = chart_files()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("charts/web/charts/"))
        .collect();
    let err = render_any(&snapshot("charts/web", &unvendored), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "charts/web/Chart.yaml lists the dependency cache, not vendored under charts/web/charts/ \
         and with no repository to fetch it from: vendor it under charts/web/charts/ (`helm \
         dependency build`), or give its `repository:` in Chart.yaml"
    );

    let err = render_any(
        &snapshot("charts/web", &chart_files()),
        &options(&[], &["novalue"]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("helm template failed for `charts/web`: "),
        "{err}"
    );
}

#[test]
fn a_chart_at_the_top_of_the_repository() {
    let files: Vec<(String, &str)> = chart_files()
        .into_iter()
        .filter_map(|(path, text)| Some((path.strip_prefix("charts/web/")?.to_string(), text)))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    let snap = snapshot("", &files);
    assert_eq!(detect(&snap), Renderer::Helm);
    let manifests = render_any(&snap, &options(&[], &[])).unwrap();
    let origins: Vec<_> = manifests.iter().map(|m| m.origin.file.as_str()).collect();
    assert_eq!(
        origins,
        [
            "crds/widget.yaml",
            "charts/cache/templates/cm.yaml",
            "templates/deployment.yaml",
            // The test hook, rendered as a hook.
            "templates/tests/test.yaml"
        ]
    );
    let mut broken = files.clone();
    broken.push(("templates/bad.yaml", "{{ .Values.a.b.c }}\n"));
    let err = render_any(&snapshot("", &broken), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("helm template failed for `.`: templates/bad.yaml:1:10;"),
        "{err}"
    );
}

#[test]
fn a_file_dependency_is_read_from_the_same_revision_under_its_alias() {
    let chart = "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n\
        - name: common\n  version: \">=0.1.0 <1.0.0\"\n  repository: file://../../libs/common\n  \
        alias: shared\n  condition: shared.enabled\n";
    let files = [
        ("apps/web/Chart.yaml", chart),
        ("apps/web/values.yaml", "shared: {enabled: true, size: 3}\n"),
        (
            "libs/common/Chart.yaml",
            "apiVersion: v2\nname: common\nversion: 0.2.0\n",
        ),
        (
            "libs/common/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Chart.Name }}-cm}\n\
             data: {size: {{ .Values.size | quote }}}\n",
        ),
    ];
    let manifests = render_any(&snapshot("apps/web", &files), &options(&[], &[])).unwrap();
    let names: Vec<_> = manifests
        .iter()
        .map(|m| m.object["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["shared-cm"]);
    assert_eq!(manifests[0].object["data"]["size"], "3");
    // The condition is helm's to evaluate.
    let off = render_any(
        &snapshot("apps/web", &files),
        &options(&[], &["shared.enabled=false"]),
    )
    .unwrap();
    assert!(off.is_empty(), "{off:?}");

    let outside = chart.replace("file://../../libs/common", "file://../../../elsewhere");
    let files_outside = [("apps/web/Chart.yaml", outside.as_str())];
    let err = render_any(&snapshot("apps/web", &files_outside), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("apps/web/Chart.yaml: dependency `common`: `file://../../../elsewhere` points outside the repository"),
        "{err}"
    );
    let missing = chart.replace("libs/common", "libs/gone");
    let err = render_any(
        &snapshot("apps/web", &[("apps/web/Chart.yaml", missing.as_str())]),
        &options(&[], &[]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("has no Chart.yaml at libs/gone in the same revision"),
        "{err}"
    );
}

#[test]
fn an_out_of_sync_lock_is_refused_before_anything_is_fetched() {
    let chart = "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n\
        - name: redis\n  version: ^1.0.0\n  repository: https://127.0.0.1:9/charts\n";
    let lock = "dependencies:\n- name: redis\n  repository: https://127.0.0.1:9/charts\n  \
        version: 1.0.0\ndigest: sha256:0000\ngenerated: \"2026-01-01T00:00:00Z\"\n";
    let files = [("web/Chart.yaml", chart), ("web/Chart.lock", lock)];
    let err = render_any(&snapshot("web", &files), &options(&[], &[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "web/Chart.lock is out of sync with the dependencies in web/Chart.yaml (its digest does \
         not match them): run `helm dependency update` in the chart and commit the new Chart.lock"
    );
}

/// The lock digest as the real `helm dependency update` writes it, for dependencies with
/// every field Helm hashes.
#[test]
fn helm_writes_the_lock_digest_we_compute() {
    let binary = options(&[], &[]).helm.binary;
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "sub/Chart.yaml",
        "apiVersion: v2\nname: sub\nversion: 0.3.1\n",
    );
    write(
        "other/Chart.yaml",
        "apiVersion: v2\nname: other\nversion: 2.0.0-rc.1\n",
    );
    let chart = "apiVersion: v2\nname: parent\nversion: 1.0.0\ndependencies:\n\
        - name: sub\n  version: \">=0.1.0 <1.0.0 || ~2\"\n  repository: file://../sub\n  \
        condition: sub.enabled,global.sub\n  tags: [backend, \"a&b\"]\n  alias: cache\n  \
        import-values:\n  - child: exports.data\n    parent: imported\n  - plain\n\
        - name: other\n  version: \"^2.0.0-0\"\n  repository: file://../other\n";
    write("parent/Chart.yaml", chart);
    let home = dir.path().join("home");
    let out = Command::new(&binary)
        .args(["dependency", "update", "."])
        .current_dir(dir.path().join("parent"))
        .env_clear()
        .env("HOME", &home)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock_text = std::fs::read_to_string(dir.path().join("parent/Chart.lock")).unwrap();
    let lock = crate::charts::lock::Lock::from_value(&serde_yaml_ng::from_str(&lock_text).unwrap());
    let listed = crate::charts::dependencies::listed("Chart.yaml", chart.as_bytes()).unwrap();
    assert_eq!(
        crate::charts::lock::digest(&listed, &lock.dependencies),
        lock.digest,
        "{lock_text}"
    );
}

#[test]
fn a_chart_sees_the_capabilities_it_is_given() {
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n  \
        version: {{ .Capabilities.KubeVersion.Version | quote }}\n  \
        monitoring: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" | quote }}\n  \
        kind: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1/ServiceMonitor\" | quote }}\n";
    let files = [
        (
            "chart/Chart.yaml",
            "apiVersion: v2\nname: caps\nversion: 0.1.0\n",
        ),
        ("chart/templates/cm.yaml", template),
    ];
    let snap = snapshot("chart", &files);
    let data = |opts: &RenderOptions| render_any(&snap, opts).unwrap()[0].object["data"].clone();

    let mut opts = options(&[], &[]);
    let defaults = data(&opts);
    assert_eq!(defaults["monitoring"], "false");
    opts.helm.add_cluster(&crate::render::Capabilities {
        kube_version: Some("v1.31.4".into()),
        api_versions: crate::render::helm_api_versions(&[crate::render::ServedVersion {
            group: "monitoring.coreos.com".into(),
            version: "v1".into(),
            kinds: vec!["ServiceMonitor".into()],
        }]),
    });
    assert_eq!(
        data(&opts),
        json!({"version": "v1.31.4", "monitoring": "true", "kind": "true"})
    );

    let mut opts = options(&[], &[]);
    opts.helm.kube_version = Some("latest".into());
    let err = render_any(&snap, &opts).unwrap_err().to_string();
    assert!(err.contains("invalid kube version 'latest'"), "{err}");
}
