//! The fixtures in testdata/ were written by the real sops (tests/cluster/build.sh
//! builds it) for the test key in testdata/keys.txt; testdata/README.md says how.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use crate::render::yaml_value;
use serde_json::json;

const KEY: &str = include_str!("testdata/keys.txt");
const OTHER_KEY: &str = include_str!("testdata/other-keys.txt");
const RECIPIENT: &str = include_str!("testdata/recipient.txt");
const REGEX: &str = include_str!("testdata/secret.regex.yaml");
const SUFFIX: &str = include_str!("testdata/secret.suffix.yaml");
const ALL_JSON: &str = include_str!("testdata/secret.all.json");
const MAC_ONLY: &str = include_str!("testdata/secret.mac-only.yaml");

const PGP_SECRET_KEY: &str = include_str!("testdata/pgp-secret.asc");
const PGP_FINGERPRINT: &str = include_str!("testdata/pgp-fingerprint.txt");
const PGP: &str = include_str!("testdata/secret.pgp.yaml");
const AGE_PGP: &str = include_str!("testdata/secret.age-pgp.yaml");
const MULTI: &str = include_str!("testdata/secret.multi.yaml");
const MULTI_MAC_ONLY: &str = include_str!("testdata/secret.multi.mac-only.yaml");
const ENCRYPTED_SUFFIX: &str = include_str!("testdata/secret.encrypted-suffix.yaml");
const UNENCRYPTED_REGEX: &str = include_str!("testdata/secret.unencrypted-regex.yaml");

/// Keys with only age identities, and a gpg whose keyring is empty.
fn age_keys(text: &str) -> Result<Keys, KeyFileError> {
    Ok(Keys {
        age: AgeKeys::from_text(text),
        gpg: Gpg::missing(),
    })
}

fn run(text: &str, key: &str) -> Result<Value, SopsError> {
    let docs = vec![(1, yaml_value(text).unwrap())];
    assert!(is_encrypted(&docs));
    let mut out = decrypt(docs, || age_keys(key))?;
    Ok(out.remove(0).1)
}

/// A file's documents, decrypted.
fn run_all(text: &str, keys: Keys) -> Result<Vec<Value>, SopsError> {
    let docs = crate::render::yaml::yaml_documents("secret.yaml", text).unwrap();
    let out = decrypt(docs, || Ok(keys))?;
    Ok(out.into_iter().map(|(_, doc)| doc).collect())
}

/// A throwaway gpg keyring under /tmp (short: gpg-agent's socket path is limited),
/// holding the test PGP key when asked; its gpg-agent is stopped when dropped.
struct GnuPgHome {
    dir: tempfile::TempDir,
}

impl GnuPgHome {
    fn new(with_key: bool) -> GnuPgHome {
        let found = std::process::Command::new("gpg").arg("--version").output();
        assert!(
            found.is_ok_and(|out| out.status.success()),
            "these tests need GnuPG's `gpg` on PATH (Debian: apt-get install gnupg; \
             scripts/setup.sh installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("kg")
            .tempdir_in("/tmp")
            .unwrap();
        // gpg wants its home private (and warns otherwise).
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let home = GnuPgHome { dir };
        if with_key {
            let mut import = std::process::Command::new("gpg")
                .arg("--homedir")
                .arg(home.dir.path())
                .args(["--batch", "--import"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut import.stdin.take().unwrap(), PGP_SECRET_KEY.as_bytes())
                .unwrap();
            let out = import.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        home
    }

    fn keys(&self, age: &str) -> Keys {
        Keys {
            age: AgeKeys::from_text(age),
            gpg: Gpg::with_homedir(self.dir.path()),
        }
    }
}

impl GnuPgHome {
    fn kill_agent(&self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

impl Drop for GnuPgHome {
    fn drop(&mut self) {
        self.kill_agent();
    }
}

#[test]
fn decrypts_what_sops_encrypted_with_encrypted_regex() {
    let secret = run(REGEX, KEY).unwrap();
    assert_eq!(
        secret,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "labels": {"tier": "db", "replicas": 3}},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"token": "s3cr3t-token", "port": "5432", "list": ["a", "b"]},
        })
    );
}

#[test]
fn decrypts_unencrypted_suffix_json_and_mac_only_encrypted_files() {
    let secret = run(SUFFIX, KEY).unwrap();
    assert_eq!(secret["stringData"]["token"], json!("s3cr3t-token"));
    assert_eq!(
        secret["stringData"]["note_unencrypted"],
        json!("kept plain")
    );
    assert!(secret.get("sops").is_none());
    let docs = vec![(1, serde_json::from_str(ALL_JSON).unwrap())];
    let all = decrypt(docs, || age_keys(KEY)).unwrap();
    assert_eq!(all[0].1["metadata"]["name"], json!("creds"));
    assert_eq!(all[0].1["stringData"]["token"], json!("s3cr3t-token"));
    let mac_only = run(MAC_ONLY, KEY).unwrap();
    assert_eq!(mac_only["stringData"]["token"], json!("s3cr3t-token"));
}

#[test]
fn a_changed_value_or_mac_is_refused() {
    // An encrypted value swapped for another's: its key path no longer matches.
    let doc = yaml_value(REGEX).unwrap();
    let mut swapped = doc.clone();
    swapped["stringData"]["token"] = doc["data"]["password"].clone();
    let err = decrypt(vec![(1, swapped)], || age_keys(KEY)).unwrap_err();
    assert!(
        matches!(&err, SopsError::Tampered { path } if path == "stringData.token"),
        "{err}"
    );
    // A plain value changed: the MAC tells.
    let mut renamed = doc.clone();
    renamed["metadata"]["labels"]["tier"] = json!("web");
    let err = decrypt(vec![(1, renamed)], || age_keys(KEY)).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
    assert!(err.to_string().contains("tampered"), "{err}");
    // The MAC itself changed.
    let mut mac = doc.clone();
    let stored = doc["sops"]["mac"]
        .as_str()
        .unwrap()
        .replacen("data:", "data:A", 1);
    mac["sops"]["mac"] = json!(stored);
    let err = decrypt(vec![(1, mac)], || age_keys(KEY)).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
    // A value added in plain text where values are encrypted.
    let mut added = doc;
    added["stringData"]["extra"] = json!(1);
    let err = decrypt(vec![(1, added)], || age_keys(KEY)).unwrap_err();
    assert!(matches!(err, SopsError::BadValue { .. }), "{err}");
}

#[test]
fn without_a_matching_key_the_error_names_the_recipients() {
    let err = run(REGEX, OTHER_KEY).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(RECIPIENT.trim()), "{text}");
    assert!(text.starts_with("no key opens it"), "{text}");
    let err = run(REGEX, "").unwrap_err();
    assert!(matches!(err, SopsError::NoKey(_)), "{err}");
}

#[test]
fn a_pgp_file_is_decrypted_by_gpg_with_the_key_in_its_keyring() {
    let home = GnuPgHome::new(true);
    let want = run(REGEX, KEY).unwrap();
    let secret = run_all(PGP, home.keys("")).unwrap();
    assert_eq!(secret, vec![want.clone()]);
    // Age and PGP recipients: either key alone opens it.
    let by_pgp = run_all(AGE_PGP, home.keys("")).unwrap();
    assert_eq!(by_pgp, vec![want.clone()]);
    let by_age = run_all(AGE_PGP, age_keys(KEY).unwrap()).unwrap();
    assert_eq!(by_age, vec![want]);
}

#[test]
fn a_pgp_file_without_the_key_names_its_fingerprint_and_what_to_do() {
    let fp = PGP_FINGERPRINT.trim();
    let empty = GnuPgHome::new(false);
    let err = run_all(PGP, empty.keys(KEY)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SopsError::NoKey(_)), "{text}");
    assert!(text.starts_with("no key opens it"), "{text}");
    assert!(text.contains(&format!("PGP key {fp}")), "{text}");
    assert!(text.contains("No secret key"), "gpg's reason: {text}");
    assert!(
        !text.contains("keybox") && !text.contains("trustdb") && !text.contains("WARNING"),
        "gpg's housekeeping left out: {text}"
    );
    assert!(
        text.contains("gpg --import") && text.contains("$GNUPGHOME"),
        "{text}"
    );
    // With age recipients too, both kinds are named, with what to do for each.
    let err = run_all(AGE_PGP, empty.keys(OTHER_KEY)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(RECIPIENT.trim()) && text.contains(fp),
        "{text}"
    );
    assert!(text.contains("$SOPS_AGE_KEY_FILE"), "{text}");
    assert!(text.contains("gpg --import"), "{text}");
}

#[test]
fn a_pgp_only_file_without_gpg_says_gpg_is_missing() {
    let err = run_all(PGP, age_keys(KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::GpgMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(PGP_FINGERPRINT.trim()), "{text}");
    assert!(
        text.contains("not installed or not on PATH") && text.contains("$SOPS_GPG_EXEC"),
        "{text}"
    );
    // With an age recipient whose key is missing too, the error says both.
    let err = run_all(AGE_PGP, age_keys(OTHER_KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::NoKey(_)), "{err}");
    assert!(err.to_string().contains("not installed"), "{err}");
}

#[test]
fn kms_only_files_name_their_recipients_as_not_supported() {
    let mut doc = yaml_value(REGEX).unwrap();
    doc["sops"]["age"] = Value::Null;
    doc["sops"]["kms"] = json!([{
        "arn": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
        "enc": "x",
        "created_at": "2026-01-01T00:00:00Z",
    }]);
    doc["sops"]["hc_vault"] = json!([{
        "vault_address": "https://vault.example.invalid:8200",
        "engine_path": "sops",
        "key_name": "prod",
        "enc": "x",
    }]);
    let err = decrypt(vec![(1, doc)], || age_keys(KEY)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "it is encrypted only for AWS KMS key arn:aws:kms:eu-west-1:111122223333:key/abcd, \
         Vault transit key https://vault.example.invalid:8200 sops prod, which are not \
         supported yet (age and PGP are); add an age or PGP recipient to the file (`sops \
         updatekeys` with a .sops.yaml naming it)"
    );
}

#[test]
fn a_multi_document_file_is_one_tree_with_one_mac() {
    let docs = run_all(MULTI, age_keys(KEY).unwrap()).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["stringData"]["token"], json!("first-token"));
    assert_eq!(docs[1]["stringData"]["token"], json!("second-token"));
    assert_eq!(docs[1]["stringData"]["list"], json!(["x", "y"]));
    assert!(docs.iter().all(|doc| doc.get("sops").is_none()));
    let docs = run_all(MULTI_MAC_ONLY, age_keys(KEY).unwrap()).unwrap();
    assert_eq!(docs[1]["stringData"]["token"], json!("second-token"));

    // A plain value of the second document changed: the one MAC tells.
    let changed = MULTI.replacen("name: second", "name: third", 1);
    let err = run_all(&changed, age_keys(KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
    // A document dropped, or one without a block added: the MAC tells too.
    let first = MULTI.split("\n---\n").next().unwrap();
    let err = run_all(first, age_keys(KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
    let added = format!("{MULTI}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n");
    let err = run_all(&added, age_keys(KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
    // The block must come first, as sops reads it.
    let plain_first = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n---\n{MULTI}");
    let err = run_all(&plain_first, age_keys(KEY).unwrap()).unwrap_err();
    assert!(matches!(err, SopsError::Metadata { .. }), "{err}");
}

#[test]
fn encrypted_suffix_and_unencrypted_regex_files_decrypt_as_sops_wrote_them() {
    let secret = run(ENCRYPTED_SUFFIX, KEY).unwrap();
    assert_eq!(
        secret["stringData"],
        json!({"token_encrypted": "s3cr3t-token", "note": "kept plain"})
    );
    let secret = run(UNENCRYPTED_REGEX, KEY).unwrap();
    assert_eq!(secret, run(REGEX, KEY).unwrap());
    // Plain there, so a change to it is the MAC's to catch.
    let changed = ENCRYPTED_SUFFIX.replace("note: kept plain", "note: changed");
    let err = run(&changed, KEY).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

#[test]
fn encrypted_values_outside_a_secret_are_refused() {
    let doc = yaml_value(REGEX).unwrap();
    let mut config = doc.clone();
    config["kind"] = json!("ConfigMap");
    // The kind is a plain value, so the MAC would catch it too: the kind check comes
    // first and says what to do.
    let err = decrypt(vec![(1, config)], || age_keys(KEY)).unwrap_err();
    assert!(matches!(err, SopsError::NotASecret { .. }), "{err}");
}

#[test]
fn leftover_encrypted_values_are_found_by_path() {
    let doc = yaml_value(REGEX).unwrap();
    assert_eq!(leftover_encrypted(&doc), Some("data.password".to_string()));
    assert_eq!(leftover_encrypted(&json!({"a": ["ENC"]})), None);
}

#[test]
fn a_pgp_key_that_needs_its_passphrase_gives_gpgs_error_and_what_to_do() {
    let home = GnuPgHome::new(false);
    let gpg = |args: &[&str]| {
        let out = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(home.dir.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    gpg(&[
        "--batch",
        "--passphrase",
        "pw",
        "--quick-gen-key",
        "locked <locked@example.invalid>",
        "future-default",
        "default",
        "never",
    ]);
    let listing = gpg(&["--batch", "--with-colons", "--list-secret-keys"]);
    let fp = listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|field| field.len() == 40))
        .unwrap()
        .to_string();
    // A 32-byte key wrapped for it, as sops wraps one; the agent forgets the passphrase.
    let plain = home.dir.path().join("k");
    std::fs::write(&plain, [7u8; 32]).unwrap();
    let plain = plain.to_str().unwrap();
    let enc = gpg(&[
        "--batch",
        "--armor",
        "--trust-model",
        "always",
        "--recipient",
        &fp,
        "--output",
        "-",
        "--encrypt",
        plain,
    ]);
    home.kill_agent();
    let err = Gpg::with_homedir(home.dir.path()).unwrap(&enc).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GpgFailure::Refused { .. }), "{text}");
    assert!(text.contains("passphrase"), "{text}");
    assert!(text.contains("gpg-agent"), "{text}");
}
