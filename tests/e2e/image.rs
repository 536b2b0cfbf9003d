//! The reconciler's container image (scripts/image.sh): built twice with the same
//! digest, laid out as the script promises (a static binary, git, ssh and their
//! libraries, a non-root user, fixed times and owners), runnable as a root filesystem,
//! pushed to the distribution registry that serves it by digest, and `deploy/` pinned to
//! that digest syncs.
//!
//! The first run on a machine builds kubectl-sync for x86_64-unknown-linux-musl (minutes);
//! later runs find it in the cache and take seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::charts::Registry;
use kubectl_gitops_tests::{TestCluster, describe, workspace_root};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::in_cluster::{Install, relocated_deploy, sync_deploy};

/// Runs scripts/image.sh (dev profile: the test needs its digest, not a release's speed)
/// and returns its stdout lines.
fn image_sh(args: &[&str]) -> Vec<String> {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/image.sh"))
        .args(["--profile", "dev"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/image.sh {}: {}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An OCI image layout's blob.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256_hex(&bytes), hex, "blob {digest} is what it says");
    bytes
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A layer's entries as `tar -tv` lists them, in archive order, times in UTC.
fn layer_listing(path: &Path) -> Vec<String> {
    run(Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(path)
        .env("TZ", "UTC"))
    .lines()
    .map(str::to_string)
    .collect()
}

/// Runs `args` inside `rootfs` as its root directory, with the /dev/null a container
/// runtime gives every container: chroot as root (a device node made for it), else in a
/// user and mount namespace (the host's /dev/null bound there). None when neither is
/// allowed here.
fn in_rootfs(rootfs: &Path, user: Option<&str>, args: &[&str]) -> Option<Output> {
    let root = run(Command::new("id").arg("-u")).trim() == "0";
    let dev_null = rootfs.join("dev/null");
    std::fs::create_dir_all(rootfs.join("dev")).unwrap();
    let mut cmd = if root {
        if !dev_null.exists() {
            run(Command::new("mknod")
                .args(["-m", "666"])
                .arg(&dev_null)
                .args(["c", "1", "3"]));
        }
        let mut cmd = Command::new("chroot");
        if let Some(user) = user {
            cmd.arg(format!("--userspec={user}"));
        }
        cmd.arg(rootfs);
        cmd
    } else {
        if !dev_null.exists() {
            std::fs::write(&dev_null, "").unwrap();
        }
        let mut cmd = Command::new("unshare");
        cmd.args(["--map-root-user", "--mount", "--", "sh", "-c"])
            .arg("mount --bind /dev/null \"$0/dev/null\" && exec chroot \"$0\" \"$@\"")
            .arg(rootfs);
        cmd
    };
    let out = cmd
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/tmp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !root && stderr.contains("unshare failed") {
        eprintln!("note: user namespaces are not allowed here: the image's programs were not run");
        return None;
    }
    Some(out)
}

#[test]
fn the_image_builds_reproducibly_is_pushed_by_digest_and_deploy_pinned_to_it_syncs() {
    let cluster = TestCluster::get();
    let work = tempfile::tempdir().unwrap();
    let first: PathBuf = work.path().join("first");
    let second: PathBuf = work.path().join("second");

    // Build one.
    let lines = image_sh(&["--out", first.to_str().unwrap()]);
    let digest = lines[0].clone();
    assert!(
        digest.len() == 71 && digest.starts_with("sha256:"),
        "{lines:?}"
    );

    // The layout: one image, its manifest and config as promised.
    let index = json(&std::fs::read(first.join("index.json")).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let manifest_bytes = blob(&first, &digest);
    let manifest = json(&manifest_bytes);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config = json(&blob(
        &first,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["created"], "1970-01-01T00:00:00Z", "{config}");
    for history in config["history"].as_array().into_iter().flatten() {
        assert_eq!(history["created"], "1970-01-01T00:00:00Z", "{config}");
    }
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/kubectl-sync"])
    );
    assert_eq!(config["config"]["User"], "65532");
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"XDG_CACHE_HOME=/var/cache/kubectl-gitops"),
        "{env:?}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "a base layer and the binary's: {manifest}");

    // Every layer entry: owner 0/0, time 0, names in sorted order.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let mut files = Vec::new();
    for layer in layers {
        let path = first.join("blobs/sha256").join(
            layer["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap(),
        );
        let listing = layer_listing(&path);
        let mut names = Vec::new();
        for line in &listing {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], "0/0", "{line}");
            assert_eq!((fields[3], fields[4]), ("1970-01-01", "00:00:00"), "{line}");
            let name = fields[5].trim_end_matches('/');
            names.push(name.to_string());
            if fields[0].starts_with('-') {
                files.push(name.to_string());
            }
        }
        let mut sorted = names.clone();
        sorted.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(names, sorted, "layer entries in name order");
        run(Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(&rootfs));
    }
    // Nothing but the binary, git and its https helper, ssh, the CA bundle, the user
    // database, and shared libraries (the loader among them).
    for file in &files {
        let expected = [
            "kubectl-sync",
            "usr/bin/git",
            "usr/bin/ssh",
            "usr/lib/git-core/git-remote-http",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/passwd",
            "etc/group",
        ]
        .contains(&file.as_str())
            || (file.starts_with("usr/lib") && file.contains(".so"));
        assert!(expected, "unexpected file in the image: {file}");
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );

    // The binary is static, and no build path is in it.
    let binary = rootfs.join("kubectl-sync");
    let headers = run(Command::new("readelf").arg("-lW").arg(&binary));
    assert!(!headers.contains("program interpreter"), "{headers}");
    let bytes = std::fs::read(&binary).unwrap();
    let checkout = workspace_root().to_string_lossy().into_owned();
    assert!(
        !bytes
            .windows(checkout.len())
            .any(|w| w == checkout.as_bytes()),
        "the binary holds the checkout's path {checkout}"
    );
    let version = run(Command::new(&binary).arg("--version"));
    assert!(version.starts_with("kubectl sync "), "{version}");

    // Its programs run from the image's own files.
    if let Some(out) = in_rootfs(&rootfs, None, &["/usr/bin/git", "--version"]) {
        assert!(out.status.success(), "git: {}", describe(&out));
        // git's https helper loads (curl, TLS) and tries to connect.
        let out = in_rootfs(
            &rootfs,
            None,
            &["/usr/bin/git", "ls-remote", "https://127.0.0.1:1/x.git"],
        )
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Failed to connect") || stderr.contains("Could not connect"),
            "git-remote-https: {}",
            describe(&out)
        );
        let out = in_rootfs(&rootfs, None, &["/usr/bin/ssh", "-V"]).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("OpenSSH"),
            "ssh: {}",
            describe(&out)
        );
        // ssh as the image's user (it refuses a user /etc/passwd does not name).
        if run(Command::new("id").arg("-u")).trim() == "0" {
            let out = in_rootfs(
                &rootfs,
                Some("65532:65532"),
                &["/usr/bin/ssh", "-G", "git.example.com"],
            )
            .unwrap();
            assert!(out.status.success(), "ssh as 65532: {}", describe(&out));
        }
        let out = in_rootfs(&rootfs, None, &["/kubectl-sync", "--version"]).unwrap();
        assert!(out.status.success(), "kubectl-sync: {}", describe(&out));
    }

    // Build two, pushed to the registry and pinned into a copy of deploy/: the same
    // digest, the same bytes.
    let registry = Registry::start(&cluster.bin, None);
    let repository = format!("{}/kubectl-gitops/kubectl-sync", registry.host);
    let install = Install::new("ic-image");
    let ns = install.namespace.as_str();
    let repo = relocated_deploy(ns);
    let lines = image_sh(&[
        "--out",
        second.to_str().unwrap(),
        "--push",
        &repository,
        "--plain-http",
        "--pin",
        "--deploy",
        repo.path().join("deploy").to_str().unwrap(),
    ]);
    assert_eq!(lines[0], digest, "two builds of one checkout, two digests");
    assert_eq!(
        std::fs::read(second.join("index.json")).unwrap(),
        std::fs::read(first.join("index.json")).unwrap()
    );
    let pushed = format!("{repository}@{digest}");
    assert_eq!(lines[1], pushed);

    // The registry serves the manifest by digest, byte for byte.
    let url = format!(
        "http://{}/v2/kubectl-gitops/kubectl-sync/manifests/{digest}",
        registry.host
    );
    let body = work.path().join("manifest.json");
    let headers = run(Command::new("curl")
        .args([
            "-fsS",
            "-D",
            "-",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            "-o",
        ])
        .arg(&body)
        .arg(&url));
    assert_eq!(std::fs::read(&body).unwrap(), manifest_bytes);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "{headers}"
    );

    // deploy/ pinned to the pushed digest syncs (kwok runs the pods without pulling).
    let deployment = std::fs::read_to_string(repo.path().join("deploy/deployment.yaml")).unwrap();
    assert!(
        deployment.contains(&format!("        image: {pushed}\n")),
        "{deployment}"
    );
    repo.commit("Pin the reconciler's image");
    let doc = sync_deploy(cluster, &repo, ns);
    assert_eq!(doc["status"], "deployed", "{doc}");
    let image = cluster.kubectl_ok(&[
        "get",
        "deployment/kubectl-gitops",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.status.readyReplicas}",
    ]);
    assert_eq!(image, format!("{pushed} 2"));
}
