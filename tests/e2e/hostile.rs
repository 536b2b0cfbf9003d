//! Hostile input through the real plugins: each case gets a clear error (or is skipped,
//! where skipping is the documented behaviour), exit 2, no panic, in bounded time.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use gitops::release::record::{self, Operation, ReleaseRecord, ReleaseStatus};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

/// Far above what any of these takes; a hang or a quadratic blow-up crosses it.
const BOUND: Duration = Duration::from_secs(30);

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ";

/// Runs `kubectl PLUGIN ARGS` in `dir` as admin, timing it.
fn run(cluster: &TestCluster, dir: &Path, plugin: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = cluster
        .kubectl()
        .arg(plugin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        started.elapsed() < BOUND,
        "kubectl {plugin} {args:?} took {:?}",
        started.elapsed()
    );
    out
}

/// Exit 2 with an error that starts with one line naming `expect`, and no panic.
fn assert_refused(out: &Output, expect: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", describe(out));
    for e in expect {
        assert!(
            first.contains(e),
            "expected {e:?} in the first line:\n{err}"
        );
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// A repository with one good ConfigMap under `good/`, so every case also shows the rest
/// of the repository still works.
fn repo_with_good() -> GitFixture {
    let repo = GitFixture::new();
    repo.write("good/cm.yaml", &format!("{CM}fine\n"));
    repo
}

#[test]
fn yaml_bombs_deep_nesting_and_huge_files_are_refused_quickly() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-parse");
    let repo = repo_with_good();
    // Billion laughs: nine levels of nine aliases, a few hundred bytes of text.
    let mut laughs = format!(
        "{CM}bomb\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        laughs.push_str(&format!(
            "  {name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    repo.write("bomb/cm.yaml", &laughs);
    // 10,000 levels of nesting, as maps and as lists.
    let depth = 10_000;
    repo.write(
        "deep/maps.yaml",
        &format!(
            "{CM}deep\ndata: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        ),
    );
    repo.write(
        "deeplist/list.json",
        &format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
    );
    // One 50 MB document: a ConfigMap with one enormous value.
    let big = format!("{CM}big\ndata:\n  x: {}\n", "x".repeat(50 * 1024 * 1024));
    repo.write("big/cm.yaml", &big);
    let big_size = big.len();
    drop(big);
    repo.commit("hostile documents");
    let n = ns.name.as_str();

    let out = run(cluster, repo.path(), "diff-git", &["HEAD", "bomb", "-n", n]);
    assert_refused(&out, &["bomb/cm.yaml:", "alias bomb"]);
    let out = run(cluster, repo.path(), "diff-git", &["HEAD", "deep", "-n", n]);
    assert_refused(
        &out,
        &[
            "deep/maps.yaml:5:",
            "brackets nest more than 1000 levels deep",
        ],
    );
    let out = run(
        cluster,
        repo.path(),
        "diff-git",
        &["HEAD", "deeplist", "-n", n],
    );
    assert_refused(&out, &["deeplist/list.json:1:", "recursion limit exceeded"]);
    let out = run(cluster, repo.path(), "diff-git", &["HEAD", "big", "-n", n]);
    assert_refused(
        &out,
        &[&format!(
            "big/cm.yaml: the file is {big_size} bytes, more than the 16777216-byte limit"
        )],
    );
    // The same from the working tree.
    let out = run(
        cluster,
        repo.path(),
        "diff-git",
        &["--working-tree", "big", "-n", n],
    );
    assert_refused(
        &out,
        &[&format!("big/cm.yaml: the file is {big_size} bytes")],
    );

    let out = run(cluster, repo.path(), "diff-git", &["HEAD", "good", "-n", n]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_its_line() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-utf8");
    let repo = repo_with_good();
    let path = repo.path().join("bin/cm.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff\xfe}\n",
    )
    .unwrap();
    repo.commit("latin-1");
    let out = run(
        cluster,
        repo.path(),
        "diff-git",
        &["HEAD", "bin", "-n", &ns.name],
    );
    assert_refused(&out, &["bin/cm.yaml:3: the file is not valid UTF-8 text"]);

    // sync takes the app's lock while the revision renders: a revision that does not
    // render is refused the same way, and the lock is given back at once.
    let sync = |path: &str| {
        run(
            cluster,
            repo.path(),
            "sync",
            &[
                "HEAD",
                path,
                "--app",
                "latin",
                "-n",
                &ns.name,
                "--yes",
                "--wait=false",
            ],
        )
    };
    assert_refused(
        &sync("bin"),
        &["bin/cm.yaml:3: the file is not valid UTF-8 text"],
    );
    let leases = cluster.kubectl_ok(&["get", "leases", "-n", &ns.name, "-o", "name"]);
    assert_eq!(leases.trim(), "", "the lock outlived the refused sync");
    let out = sync("good");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

/// Symlinks that leave the repository are skipped, committed or on disk: their targets
/// are never read, so nothing of them can show up (documented in SECURITY.md).
#[cfg(unix)]
#[test]
fn symlinks_out_of_the_repository_are_skipped_and_never_read() {
    use std::os::unix::fs::symlink;
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-link");
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("stolen.yaml");
    std::fs::write(&secret_file, format!("{CM}stolen\ndata:\n  v: TOPSECRET\n")).unwrap();
    std::fs::create_dir_all(outside.path().join("dir")).unwrap();
    std::fs::write(
        outside.path().join("dir/stolen.yaml"),
        format!("{CM}stolen-dir\ndata:\n  v: TOPSECRET\n"),
    )
    .unwrap();

    let repo = repo_with_good();
    symlink(&secret_file, repo.path().join("good/absolute.yaml")).unwrap();
    let depth = repo.path().components().count();
    let relative = format!("{}{}", "../".repeat(depth), secret_file.display());
    symlink(&relative, repo.path().join("good/relative.yaml")).unwrap();
    symlink(
        outside.path().join("dir"),
        repo.path().join("good/linked-dir"),
    )
    .unwrap();
    symlink("cm.yaml", repo.path().join("good/alias-inside.yml")).unwrap();
    repo.commit("links");

    for args in [
        &["HEAD", "good", "-o", "json", "-n", &ns.name][..],
        &["--working-tree", "good", "-o", "json", "-n", &ns.name][..],
    ] {
        let out = run(cluster, repo.path(), "diff-git", args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The link inside the repository is followed, and duplicates cm.yaml: that error
        // names both files, and nothing from outside.
        assert_refused(&out, &["good/alias-inside.yml:1", "good/cm.yaml:1"]);
        assert!(
            !text.contains("TOPSECRET") && !text.contains("stolen"),
            "{text}"
        );
    }
    std::fs::remove_file(repo.path().join("good/alias-inside.yml")).unwrap();
    repo.commit("no alias");
    for args in [
        &["HEAD", "good", "-o", "json", "-n", &ns.name][..],
        &["--working-tree", "good", "-o", "json", "-n", &ns.name][..],
    ] {
        let out = run(cluster, repo.path(), "diff-git", args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["summary"]["added"], 1, "{text}");
        assert!(
            !text.contains("TOPSECRET") && !text.contains("stolen"),
            "{text}"
        );
    }
}

#[test]
fn kustomize_resources_outside_the_repository_are_refused() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-kust");
    let repo = repo_with_good();
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n- ../../good/cm.yaml\n- ../../../etc\n",
    );
    repo.write(
        "overlays/up/kustomization.yaml",
        "resources:\n- ../../../../../../../../tmp\n",
    );
    repo.commit("escaping overlays");
    let out = run(
        cluster,
        repo.path(),
        "diff-git",
        &["HEAD", "overlays/prod", "-n", &ns.name],
    );
    assert_refused(
        &out,
        &[
            "overlays/prod/kustomization.yaml: `../../../etc` in resources points outside the repository",
        ],
    );
    let out = run(
        cluster,
        repo.path(),
        "diff-git",
        &["HEAD", "overlays/up", "-n", &ns.name],
    );
    assert_refused(
        &out,
        &["points outside the repository", "climbs above the top"],
    );
}

/// Overwrites the loose object `spec` names with `bytes`, as a failing disk or a bad copy
/// would.
fn overwrite_object(repo: &GitFixture, spec: &str, bytes: &[u8]) {
    let path = object_path(repo, spec);
    // Loose objects are read-only.
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, bytes).unwrap();
}

fn object_path(repo: &GitFixture, spec: &str) -> std::path::PathBuf {
    let id = repo.git(&["rev-parse", spec]);
    repo.path()
        .join(".git/objects")
        .join(&id[..2])
        .join(&id[2..])
}

#[test]
fn a_corrupt_git_object_is_an_error_naming_the_revision() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-git");
    let n = ns.name.as_str();
    // A blob overwritten with garbage, one cut short (libgit2 alone spins on it forever),
    // one holding another object (its content no longer matches its id), and a tree
    // overwritten with garbage.
    for case in 0..4 {
        let repo = repo_with_good();
        let commit = repo.commit("one");
        let blob_id = repo.git(&["rev-parse", "HEAD:good/cm.yaml"]);
        let tree_id = repo.git(&["rev-parse", "HEAD:good"]);
        let blob = std::fs::read(object_path(&repo, "HEAD:good/cm.yaml")).unwrap();
        match case {
            0 => overwrite_object(&repo, "HEAD:good/cm.yaml", b"this is not zlib"),
            1 => overwrite_object(&repo, "HEAD:good/cm.yaml", &blob[..blob.len() / 2]),
            2 => {
                repo.write("other.txt", "something else\n");
                let other = repo.git(&["hash-object", "-w", "other.txt"]);
                let bytes = std::fs::read(object_path(&repo, &other)).unwrap();
                overwrite_object(&repo, "HEAD:good/cm.yaml", &bytes);
            }
            _ => overwrite_object(&repo, "HEAD:good", b"\x78\x9c garbage"),
        }
        let out = run(cluster, repo.path(), "diff-git", &["HEAD", "good", "-n", n]);
        let corrupt = |id: &str| format!("the git object {id} in ");
        match case {
            0 => assert_refused(&out, &[&corrupt(&blob_id), "corrupt deflate stream"]),
            1 => assert_refused(&out, &[&corrupt(&blob_id), "ends early"]),
            2 => assert_refused(
                &out,
                &[
                    &format!("reading revision {} in ", &commit[..7]),
                    "hash mismatch",
                ],
            ),
            _ => assert_refused(&out, &[&corrupt(&tree_id), "is corrupt"]),
        }
    }
}

#[test]
fn a_corrupt_release_record_fails_a_rollback_clearly() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-rel");
    let n = ns.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    // Release 1: not a record at all. Release 2: a record whose manifest is an alias bomb.
    std::fs::write(dir.path().join("garbage"), b"\x1f\x8b\x08garbage").unwrap();
    let mut bomb = ReleaseRecord::start("web", n, Operation::Sync, "tester", Default::default());
    bomb.revision = 2;
    bomb.status = ReleaseStatus::Deployed;
    let mut manifest = format!("{CM}bomb\ndata:\n  a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        manifest.push_str(&format!(
            "  {name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    bomb.manifest = manifest.into();
    std::fs::write(dir.path().join("bomb"), record::encode(&bomb).unwrap()).unwrap();
    for (revision, file) in [(1, "garbage"), (2, "bomb")] {
        let name = format!("web.r{revision}");
        let from = format!("--from-file=release={}", dir.path().join(file).display());
        cluster.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            &name,
            "-n",
            n,
            "--type=kubectl-gitops.io/release.v1",
            &from,
        ]);
        let revision_label = format!("kubectl-gitops.io/revision={revision}");
        cluster.kubectl_ok(&[
            "label",
            "secret",
            &name,
            "-n",
            n,
            "app.kubernetes.io/managed-by=kubectl-gitops",
            "kubectl-gitops.io/app=web",
            &revision_label,
            "kubectl-gitops.io/status=deployed",
        ]);
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let rollback = |revision: &str| {
        run(
            cluster,
            elsewhere.path(),
            "sync",
            &["--rollback", revision, "--app", "web", "-n", n, "--yes"],
        )
    };
    assert_refused(
        &rollback("1"),
        &[&format!("release record {n}/web.r1 cannot be read"), "gzip"],
    );
    assert_refused(&rollback("2"), &["release 2", "alias bomb"]);
    // The history lists both, the unreadable one with its reason.
    let out = run(
        cluster,
        elsewhere.path(),
        "release-history",
        &["web", "-n", n, "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unreadable"][0]["secret"], "web.r1", "{doc}");
}

/// TLS is verified against the kubeconfig's certificate authority; only the kubeconfig
/// itself (`insecure-skip-tls-verify: true`) turns that off.
#[test]
fn tls_is_verified_unless_the_kubeconfig_says_otherwise() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("hostile-tls");
    let repo = repo_with_good();
    repo.commit("one");
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-the-cluster-ca",
        ])
        .arg("-keyout")
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(dir.path().join("other.crt"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let admin = std::fs::read_to_string(&cluster.admin_kubeconfig).unwrap();
    let ca = cluster.state.join("pki/ca.crt").display().to_string();
    assert!(admin.contains(&ca), "{admin}");
    let wrong_ca = dir.path().join("wrong-ca");
    let other = dir.path().join("other.crt").display().to_string();
    std::fs::write(&wrong_ca, admin.replace(&ca, &other)).unwrap();
    let insecure = dir.path().join("insecure");
    std::fs::write(
        &insecure,
        admin.replace(
            &format!("certificate-authority: {ca}"),
            "insecure-skip-tls-verify: true",
        ),
    )
    .unwrap();

    let diff = |kubeconfig: &Path| {
        let started = Instant::now();
        let out = cluster
            .kubectl()
            .args([
                "diff-git",
                "HEAD",
                "good",
                "-n",
                &ns.name,
                "--request-timeout=10s",
            ])
            .env("KUBECONFIG", kubeconfig)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
        out
    };
    let out = diff(&wrong_ca);
    assert_refused(
        &out,
        &[
            "the TLS certificate of the API server",
            "does not verify against the cluster's certificate authority",
            "UnknownIssuer",
        ],
    );
    let out = diff(&insecure);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // The token is never printed.
    let token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap();
    for out in [diff(&wrong_ca), diff(&insecure)] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(token));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(token));
    }
}
