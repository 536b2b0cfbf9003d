//! What makes the plugins finished products: completion through kubectl, `--version`,
//! `--help` with examples.

use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

const PLUGINS: [&str; 4] = ["diff-git", "sync", "release-history", "drift"];

/// `kubectl __complete PLUGIN ARGS…`: the candidates kubectl would offer, and the directive.
fn complete(cluster: &TestCluster, args: &[&str]) -> (Vec<String>, String) {
    let out = cluster
        .kubectl()
        .arg("__complete")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let directive = lines.pop().unwrap_or_default();
    (lines, directive)
}

#[test]
fn kubectl_completes_contexts_namespaces_flags_and_apps() {
    let cluster = TestCluster::get();
    for plugin in PLUGINS {
        let (contexts, directive) = complete(cluster, &[plugin, "--context", ""]);
        assert_eq!(contexts, ["admin@test"], "{plugin}");
        assert_eq!(directive, ":4", "no file names after --context");

        let ns = cluster.namespace("cmp");
        let (namespaces, _) = complete(cluster, &[plugin, "-n", &ns.name[..5]]);
        assert!(namespaces.contains(&ns.name), "{plugin}: {namespaces:?}");
        let (namespaces, _) = complete(
            cluster,
            &[plugin, &format!("--namespace={}", &ns.name[..5])],
        );
        assert!(
            namespaces.contains(&format!("--namespace={}", ns.name)),
            "{plugin}: {namespaces:?}"
        );

        let (flags, _) = complete(cluster, &[plugin, "--kubec"]);
        assert_eq!(flags, ["--kubeconfig"]);
    }

    // Apps are the ones recorded in the namespace.
    let ns = cluster.namespace("cmp-app");
    let repo = GitFixture::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    repo.commit("cm");
    let out = cluster
        .kubectl()
        .args([
            "sync",
            "--app",
            "checkout-api",
            "-n",
            &ns.name,
            "--wait=false",
        ])
        .current_dir(repo.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let (apps, _) = complete(cluster, &["sync", "-n", &ns.name, "--app", "check"]);
    assert_eq!(apps, ["checkout-api"]);

    // In a repository with an app list, its apps too (drift's APP as well).
    repo.write(
        ".kubectl-gitops.yaml",
        "apps:\n- name: checkout-web\n  path: .\n- name: billing\n  path: .\n",
    );
    repo.commit("app list");
    let in_repo = |args: &[&str]| -> Vec<String> {
        let out = cluster
            .kubectl()
            .arg("__complete")
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.pop();
        lines
    };
    assert_eq!(
        in_repo(&["sync", "-n", &ns.name, "--app", "check"]),
        ["checkout-api", "checkout-web"]
    );
    assert_eq!(in_repo(&["drift", "-n", &ns.name, "b"]), ["billing"]);
}

#[test]
fn kubectl_completion_offers_each_plugins_own_output_formats() {
    let cluster = TestCluster::get();
    let formats: [(&str, &[&str]); 4] = [
        ("diff-git", &["json", "markdown", "name"]),
        ("sync", &["json"]),
        ("release-history", &["html", "json", "tree", "yaml"]),
        ("drift", &["json", "tree"]),
    ];
    for (plugin, formats) in formats {
        let (values, directive) = complete(cluster, &[plugin, "-o", ""]);
        assert_eq!(values, formats, "{plugin}");
        assert_eq!(directive, ":4", "{plugin}: no file names after -o");
        let (values, _) = complete(cluster, &[plugin, "--output=j"]);
        assert_eq!(values, ["--output=json"], "{plugin}");
    }
}

#[test]
fn a_completion_script_written_into_a_closed_pipe_ends_quietly() {
    // `kubectl sync completion bash | head -1`, with head gone before the script is written.
    let cluster = TestCluster::get();
    for plugin in PLUGINS {
        for shell in ["bash", "zsh", "fish", "powershell"] {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = cluster
                .kubectl()
                .args([plugin, "completion", shell])
                .stdout(writer)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !err.contains("panicked"),
                "{plugin} completion {shell}: {}",
                describe(&out)
            );
        }
    }
}

#[test]
fn every_plugin_prints_completion_scripts_version_and_examples() {
    let cluster = TestCluster::get();
    for plugin in PLUGINS {
        for (shell, marker) in [
            ("bash", "complete -F"),
            ("zsh", "#compdef"),
            ("fish", "complete -c"),
        ] {
            let out = cluster
                .kubectl()
                .args([plugin, "completion", shell])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", describe(&out));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains(marker),
                "{plugin} {shell}"
            );
        }
        let out = cluster
            .kubectl()
            .args([plugin, "--version"])
            .output()
            .unwrap();
        let version = String::from_utf8_lossy(&out.stdout);
        let expected = format!("kubectl {plugin} {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(version.starts_with(&expected), "{version}");

        let out = cluster.kubectl().args([plugin, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains(&format!("  kubectl {plugin}")),
            "{help}"
        );
        assert!(
            help.contains("--kubeconfig") && help.contains("--namespace"),
            "{help}"
        );
    }
}

/// Release archives and krew manifests made by the project's scripts install with the real
/// krew, and the installed plugins run through kubectl.
#[test]
fn krew_installs_every_plugin_from_the_generated_manifests() {
    let cluster = TestCluster::get();
    let root = kubectl_gitops_tests::workspace_root();
    let work = tempfile::tempdir().unwrap();
    let dist = work.path().join("dist");
    let manifests = work.path().join("manifests");
    let run = |script: &str, args: &[&std::path::Path]| {
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts").join(script))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", describe(&out));
    };
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/release-archives.sh"))
        .args(["--profile", "dev", "--out"])
        .arg(&dist)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    run(
        "krew-manifests.sh",
        &[&dist, std::path::Path::new("--out"), &manifests],
    );

    // kubectl finds krew as the plugin `kubectl krew`.
    let krew_bin = work.path().join("krew-bin");
    std::fs::create_dir_all(&krew_bin).unwrap();
    std::os::unix::fs::symlink(cluster.bin.join("krew"), krew_bin.join("kubectl-krew")).unwrap();
    let krew_root = work.path().join("krew-root");
    // Only krew's own bin directory and the tools: not our build directory.
    let path = std::env::join_paths([
        krew_root.join("bin"),
        krew_bin.clone(),
        cluster.bin.clone(),
        "/usr/bin".into(),
        "/bin".into(),
    ])
    .unwrap();

    let version = env!("CARGO_PKG_VERSION");
    for (plugin, binary) in crate::release_archives::PLUGINS {
        let manifest = manifests.join(format!("{plugin}.yaml"));
        let text = std::fs::read_to_string(&manifest).unwrap();
        let doc = crate::release_archives::parse_manifest(&text, plugin);
        let archive = dist.join(format!(
            "kubectl-gitops-{plugin}-v{version}-linux-amd64.tar.gz"
        ));
        let platform = &doc["spec"]["platforms"][0];
        assert_eq!(
            platform["selector"]["matchLabels"],
            serde_json::json!({"os": "linux", "arch": "amd64"})
        );
        assert_eq!(platform["bin"], binary);
        assert!(platform["uri"].as_str().unwrap().ends_with(&format!(
            "/v{version}/kubectl-gitops-{plugin}-v{version}-linux-amd64.tar.gz"
        )));
        assert_eq!(
            platform["sha256"],
            crate::release_archives::sha256(&archive),
            "the checksum is the archive's"
        );

        let out = std::process::Command::new(cluster.kubectl_path())
            .args([
                "krew",
                "install",
                &format!("--manifest={}", manifest.display()),
                &format!("--archive={}", archive.display()),
            ])
            .env("KREW_ROOT", &krew_root)
            .env("PATH", &path)
            .env("HOME", work.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "krew install {plugin}: {}",
            describe(&out)
        );

        let out = std::process::Command::new(cluster.kubectl_path())
            .args([plugin, "--help"])
            .env("PATH", &path)
            .env("HOME", work.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {plugin} --help after krew install: {}",
            describe(&out)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("kubectl {plugin}")));
    }
    // `krew list` needs krew's index (a network fetch); its receipts say the same offline.
    for (plugin, _) in crate::release_archives::PLUGINS {
        let receipt = krew_root.join("receipts").join(format!("{plugin}.yaml"));
        assert!(receipt.is_file(), "no krew receipt for {plugin}");
    }
    let list = std::process::Command::new(cluster.kubectl_path())
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for (_, binary) in crate::release_archives::PLUGINS {
        assert!(list.contains(&format!("krew-root/bin/{binary}")), "{list}");
    }
}
