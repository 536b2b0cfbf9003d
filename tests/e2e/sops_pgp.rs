//! SOPS-encrypted Secrets for PGP recipients: keys made by the real gpg in a throwaway
//! keyring, files encrypted by the real sops that build.sh builds. The plugins run the
//! user's gpg ($GNUPGHOME) to unwrap the data key; values are masked in every output, and
//! without the key nothing is applied and the error names the fingerprint.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kubectl_gitops_tests::record::{SOPS_CANARY_VALUE, base64};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

fn ok(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{what}: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
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

/// A throwaway gpg keyring (a short path under /tmp: gpg-agent's socket path is limited),
/// with a new key without passphrase when asked. Its gpg-agent is stopped when dropped.
struct Keyring {
    dir: tempfile::TempDir,
    fingerprint: String,
}

impl Keyring {
    fn new(with_key: bool) -> Keyring {
        let found = Command::new("gpg").arg("--version").output();
        assert!(
            found.is_ok_and(|out| out.status.success()),
            "this test needs GnuPG's `gpg` on PATH (Debian: apt-get install gnupg; \
             scripts/setup.sh installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kg")
            .tempdir_in("/tmp")
            .unwrap();
        // gpg wants its home private (and warns otherwise).
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(dir.path(), private).unwrap();
        let mut keyring = Keyring {
            dir,
            fingerprint: String::new(),
        };
        if with_key {
            let out = keyring
                .gpg()
                .args(["--batch", "--passphrase", "", "--quick-gen-key"])
                .args(["test <t@example.invalid>", "default", "default", "never"])
                .output()
                .unwrap();
            ok("gpg --quick-gen-key", out);
            let out = keyring
                .gpg()
                .args(["--batch", "--with-colons", "--list-secret-keys"])
                .output()
                .unwrap();
            let listing = ok("gpg --list-secret-keys", out);
            keyring.fingerprint = listing
                .lines()
                .find_map(|line| line.strip_prefix("fpr:"))
                .and_then(|rest| rest.split(':').find(|field| field.len() == 40))
                .unwrap()
                .to_string();
        }
        keyring
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.path()).stdin(Stdio::null());
        cmd
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Two Secrets in one file (`---` between them), encrypted by sops for `recipients`
/// (`--pgp FPR`, `--age R`), only `data` and `stringData` encrypted; the plaintext stays in
/// `dir`, outside the repository.
fn encrypt(cluster: &TestCluster, dir: &Path, keyring: &Keyring, recipients: &[&str]) -> String {
    let plain = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: Opaque\ndata:\n  \
         password: {}\nstringData:\n  token: {SOPS_CANARY_VALUE}\n---\napiVersion: v1\n\
         kind: Secret\nmetadata:\n  name: more\nstringData:\n  token: {SOPS_CANARY_VALUE}\n",
        base64(SOPS_CANARY_VALUE.as_bytes())
    );
    std::fs::write(dir.join("secret.yaml"), plain).unwrap();
    let out = Command::new(cluster.bin.join("sops"))
        .arg("--encrypt")
        .args(recipients)
        .args(["--encrypted-regex", "^(data|stringData)$", "secret.yaml"])
        .env("GNUPGHOME", keyring.path())
        .current_dir(dir)
        .output()
        .unwrap();
    let encrypted = ok("sops --encrypt", out);
    assert!(encrypted.contains("ENC[AES256_GCM,") && !encrypted.contains(SOPS_CANARY_VALUE));
    assert_eq!(encrypted.matches("\nsops:\n").count(), 2, "{encrypted}");
    encrypted
}

/// Runs a plugin in `repo` with only the keys given: a gpg keyring, an age key file.
fn run(
    cluster: &TestCluster,
    repo: &GitFixture,
    args: &[&str],
    keyring: &Path,
    age_keys: Option<&Path>,
) -> Output {
    let mut cmd = cluster.kubectl();
    cmd.args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .env("GNUPGHOME", keyring)
        .env_remove("SOPS_GPG_EXEC")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    if let Some(keys) = age_keys {
        cmd.env("SOPS_AGE_KEY_FILE", keys);
    }
    cmd.output().unwrap()
}

fn secret_value(cluster: &TestCluster, ns: &str, name: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "secret",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.data.token}",
    ])
}

#[test]
fn a_pgp_encrypted_secret_is_decrypted_by_gpg_applied_and_masked() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sops-pgp");
    let n = ns.name.as_str();
    let keyring = Keyring::new(true);
    let plain = tempfile::tempdir().unwrap();
    let pgp = format!("--pgp={}", keyring.fingerprint);
    let encrypted = encrypt(cluster, plain.path(), &keyring, &[&pgp]);
    let repo = GitFixture::new();
    repo.write("secret.yaml", &encrypted);
    repo.commit("PGP-encrypted secrets");
    let app = ["--app", "pgp", "-n", n];
    let run = |args: &[&str]| run(cluster, &repo, args, keyring.path(), None);

    let out = run(&["diff-git", "HEAD", "-n", n]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(all_text(&out).contains("creds") && all_text(&out).contains("more"));
    assert!(all_text(&out).contains("***"), "{}", describe(&out));
    assert_masked("diff-git", &out);
    let out = run(&[&["sync", "HEAD", "--dry-run", "-o", "json"][..], &app].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_masked("sync --dry-run", &out);
    let out = run(&[&["sync", "HEAD", "--wait=false"][..], &app].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_masked("sync", &out);

    let want = base64(SOPS_CANARY_VALUE.as_bytes());
    assert_eq!(secret_value(cluster, n, "creds"), want);
    assert_eq!(secret_value(cluster, n, "more"), want);
    let live = cluster.kubectl_ok(&["get", "secrets", "-n", n, "-o", "json"]);
    assert!(
        !live.contains("ENC[") && !live.contains("\"sops\":"),
        "{live}"
    );
    for args in [
        &["drift", "pgp", "-n", n][..],
        &["release-history", "pgp", "1", "-n", n, "--manifest"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_masked(args[0], &out);
    }
}

#[test]
fn a_pgp_secret_for_a_key_not_here_is_refused_naming_its_fingerprint() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("sops-pgp-nokey");
    let n = ns.name.as_str();
    let keyring = Keyring::new(true);
    let plain = tempfile::tempdir().unwrap();
    let pgp = format!("--pgp={}", keyring.fingerprint);
    let encrypted = encrypt(cluster, plain.path(), &keyring, &[&pgp]);
    let repo = GitFixture::new();
    repo.write("secret.yaml", &encrypted);
    repo.commit("PGP-encrypted secrets");
    let sync = ["sync", "HEAD", "--app", "pgp", "-n", n, "--wait=false"];

    // A keyring without the key.
    let empty = Keyring::new(false);
    let out = run(cluster, &repo, &sync, empty.path(), None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "secret.yaml",
        "no key opens it",
        keyring.fingerprint.as_str(),
        "No secret key",
        "gpg --import",
        "$GNUPGHOME",
    ] {
        assert!(err.contains(want), "no {want:?}: {}", describe(&out));
    }
    assert_masked("sync without the key", &out);

    // No gpg to run.
    let mut cmd = cluster.kubectl();
    cmd.args(sync)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .env("GNUPGHOME", keyring.path())
        .env("SOPS_GPG_EXEC", "/nonexistent/gpg")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&keyring.fingerprint) && err.contains("not installed or not on PATH"),
        "{}",
        describe(&out)
    );
    let left = cluster.kubectl_ok(&["get", "secrets", "-n", n, "-o", "name"]);
    assert!(!left.contains("secret/creds"), "{left}");
}

#[test]
fn a_secret_for_age_and_pgp_recipients_decrypts_with_either_key_alone() {
    let cluster = TestCluster::get();
    let keyring = Keyring::new(true);
    let plain = tempfile::tempdir().unwrap();
    let keys = plain.path().join("keys.txt");
    let out = Command::new(cluster.bin.join("age-keygen"))
        .arg("-o")
        .arg(&keys)
        .output();
    ok("age-keygen", out.unwrap());
    let out = Command::new(cluster.bin.join("age-keygen"))
        .arg("-y")
        .arg(&keys)
        .output();
    let recipient = ok("age-keygen -y", out.unwrap()).trim().to_string();
    let pgp = format!("--pgp={}", keyring.fingerprint);
    let age = format!("--age={recipient}");
    let encrypted = encrypt(cluster, plain.path(), &keyring, &[&age, &pgp]);
    let repo = GitFixture::new();
    repo.write("secret.yaml", &encrypted);
    repo.commit("secrets for age and PGP");
    let empty = Keyring::new(false);
    let want = base64(SOPS_CANARY_VALUE.as_bytes());

    for (name, gnupghome, age_keys) in [
        ("pgp-alone", keyring.path(), None),
        ("age-alone", empty.path(), Some(keys.as_path())),
    ] {
        let ns = cluster.namespace(&format!("sops-{name}"));
        let n = ns.name.as_str();
        let sync = ["sync", "HEAD", "--app", "both", "-n", n, "--wait=false"];
        let out = run(cluster, &repo, &sync, gnupghome, age_keys);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", describe(&out));
        assert_masked(name, &out);
        assert_eq!(secret_value(cluster, n, "creds"), want, "{name}");
        assert_eq!(secret_value(cluster, n, "more"), want, "{name}");
    }
    // With neither: both recipients are named.
    let ns = cluster.namespace("sops-neither");
    let n = ns.name.as_str();
    let sync = ["sync", "HEAD", "--app", "both", "-n", n, "--wait=false"];
    let out = run(cluster, &repo, &sync, empty.path(), None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&recipient) && err.contains(&keyring.fingerprint),
        "{}",
        describe(&out)
    );
}
