//! SOPS-encrypted Secrets, encrypted here by the real sops and age that build.sh builds:
//! decrypted while rendering with the key `$SOPS_AGE_KEY_FILE` names, applied, masked in
//! every output; without the key nothing is applied and the error names the recipient.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::record::{SOPS_CANARY_VALUE, base64};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n";

fn tool(cluster: &TestCluster, name: &str) -> Command {
    Command::new(cluster.bin.join(name))
}

fn ok(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{what}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A new age key in `dir`, and its recipient.
fn age_key(cluster: &TestCluster, dir: &Path) -> (std::path::PathBuf, String) {
    let keys = dir.join("keys.txt");
    let out = tool(cluster, "age-keygen").arg("-o").arg(&keys).output();
    ok("age-keygen", out.unwrap());
    let out = tool(cluster, "age-keygen").arg("-y").arg(&keys).output();
    let recipient = ok("age-keygen -y", out.unwrap()).trim().to_string();
    (keys, recipient)
}

/// `plain` encrypted by sops for `recipient`, only `data` and `stringData` encrypted (as
/// Flux's guide does it); the plaintext stays in `dir`, outside the repository.
fn encrypt(cluster: &TestCluster, dir: &Path, recipient: &str, plain: &str) -> String {
    std::fs::write(dir.join("secret.yaml"), plain).unwrap();
    let out = tool(cluster, "sops")
        .args(["--encrypt", "--age", recipient])
        .args(["--encrypted-regex", "^(data|stringData)$", "secret.yaml"])
        .current_dir(dir)
        .output()
        .unwrap();
    ok("sops --encrypt", out)
}

fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_masked(what: &str, out: &Output) {
    let text = all_text(out);
    for value in [
        SOPS_CANARY_VALUE.to_string(),
        base64(SOPS_CANARY_VALUE.as_bytes()),
    ] {
        assert!(
            !text.contains(&value),
            "{what} shows a decrypted value: {text}"
        );
    }
}

#[test]
fn a_sops_encrypted_secret_is_decrypted_applied_and_masked_and_refused_without_the_key() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sops");
    let n = ns.name.as_str();
    let secrets = tempfile::tempdir().unwrap();
    let (keys, recipient) = age_key(cluster, secrets.path());
    let plain = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: Opaque\ndata:\n  \
         password: {}\nstringData:\n  token: {SOPS_CANARY_VALUE}\n",
        base64(SOPS_CANARY_VALUE.as_bytes())
    );
    let encrypted = encrypt(cluster, secrets.path(), &recipient, &plain);
    assert!(encrypted.contains("ENC[AES256_GCM,") && !encrypted.contains(SOPS_CANARY_VALUE));
    let repo = GitFixture::new();
    repo.write("secret.yaml", &encrypted);
    repo.write("settings.yaml", SETTINGS);
    repo.commit("encrypted secret");

    let run = |args: &[&str], key: bool| {
        let mut cmd = cluster.kubectl();
        cmd.args(args)
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE");
        if key {
            cmd.env("SOPS_AGE_KEY_FILE", &keys);
        }
        cmd.output().unwrap()
    };
    let app = ["--app", "sops", "-n", n];

    // The diff and the sync preview show the Secret, masked.
    let out = run(&["diff-git", "HEAD", "-n", n], true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(all_text(&out).contains("creds"), "{}", describe(&out));
    assert!(all_text(&out).contains("***"), "{}", describe(&out));
    assert_masked("diff-git", &out);
    let out = run(&[&["sync", "HEAD", "--dry-run"][..], &app].concat(), true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_masked("sync --dry-run", &out);

    let out = run(
        &[&["sync", "HEAD", "--wait=false"][..], &app].concat(),
        true,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_masked("sync", &out);

    // The cluster holds the decrypted values, and no trace of sops.
    let get = |path: &str| {
        cluster.kubectl_ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            n,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let want = base64(SOPS_CANARY_VALUE.as_bytes());
    assert_eq!(get("{.data.token}"), want);
    // `data` values are base64 already: applied as they decrypt.
    assert_eq!(get("{.data.password}"), want);
    let live = cluster.kubectl_ok(&["get", "secret", "creds", "-n", n, "-o", "json"]);
    assert!(
        !live.contains("ENC[") && !live.contains("\"sops\":"),
        "{live}"
    );

    // Someone edits the Secret: drift reports it, masked; history too.
    cluster.kubectl_ok(&[
        "patch",
        "secret",
        "creds",
        "-n",
        n,
        "--type=merge",
        "-p",
        r#"{"stringData":{"token":"edited"}}"#,
    ]);
    for args in [
        &["drift", "sops", "-n", n][..],
        &["drift", "sops", "-n", n, "-o", "json"],
        &["drift", "sops", "-n", n, "--git"],
    ] {
        let out = run(args, true);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_masked("drift", &out);
    }
    for args in [
        &["release-history", "sops", "-n", n][..],
        &["release-history", "sops", "1", "-n", n, "--manifest"],
        &["release-history", "sops", "1", "-n", n, "-o", "json"],
    ] {
        let out = run(args, false);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_masked("release-history", &out);
    }
    // The value is reachable when asked for, so its absence above means something.
    let out = run(
        &[
            "release-history",
            "sops",
            "1",
            "-n",
            n,
            "--manifest",
            "--show-secrets",
        ],
        false,
    );
    assert!(
        all_text(&out).contains(SOPS_CANARY_VALUE),
        "{}",
        describe(&out)
    );

    // Without the key: the sync fails naming the file and the recipient, applying nothing.
    let other = cluster.namespace("sops-nokey");
    let m = other.name.as_str();
    let out = run(
        &["sync", "HEAD", "--app", "sops", "-n", m, "--wait=false"],
        false,
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret.yaml") && err.contains(&recipient),
        "{}",
        describe(&out)
    );
    assert!(err.contains("no age key"), "{}", describe(&out));
    assert_masked("sync without the key", &out);
    let left = cluster.kubectl_ok(&["get", "secrets,configmaps", "-n", m, "-o", "name"]);
    assert!(
        !left.contains("secret/creds") && !left.contains("configmap/settings"),
        "{left}"
    );
}
