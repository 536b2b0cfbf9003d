//! Kubeconfig parsing: `kubeconfig::load` on files of arbitrary bytes, and `connect` on
//! kubeconfigs that are well formed but hold nonsense.

use gitops::kubeconfig::{self, ConnectOptions, Environment};
use proptest::prelude::*;

use crate::support::{assert_one_line, bounded, config, corpus, tricky_string};

/// Loads `bytes` as the only kubeconfig; when that works, builds a connection from it too
/// (which reads certificates and keys, but contacts nothing).
fn check(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, bytes).unwrap();
    let opts = ConnectOptions {
        kubeconfig: Some(path),
        ..ConnectOptions::default()
    };
    let env = Environment::default();
    match bounded("load", || kubeconfig::load(&opts, &env)) {
        Ok(_) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(err) = bounded("connect", || {
                runtime.block_on(kubeconfig::connect(&opts, &env))
            }) {
                assert_one_line(&err);
            }
        }
        Err(err) => assert_one_line(&err),
    }
}

/// base64 of arbitrary bytes, or of a PEM block around them, or not base64 at all.
fn data_field() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| STANDARD.encode(b)),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| {
            let body = STANDARD.encode(b);
            STANDARD.encode(format!(
                "-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
            ))
        }),
        tricky_string(),
    ]
}

/// A kubeconfig of the right shape with nonsense in its fields.
fn kubeconfig_text() -> impl Strategy<Value = String> {
    (
        tricky_string(),
        tricky_string(),
        data_field(),
        data_field(),
        data_field(),
        tricky_string(),
        any::<bool>(),
    )
        .prop_map(|(server, namespace, ca, cert, key, token, insecure)| {
            let q = |s: &str| serde_json::to_string(s).unwrap();
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    \
                 server: {}\n    certificate-authority-data: {}\n    insecure-skip-tls-verify: {insecure}\n\
                 users:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n    \
                 token: {}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u, namespace: {}}}\n",
                q(&server),
                q(&ca),
                q(&cert),
                q(&key),
                q(&token),
                q(&namespace)
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn nonsense_in_the_right_shape_never_panics(text in kubeconfig_text()) {
        check(text.as_bytes());
    }

    #[test]
    fn utf16_never_panics(odd in any::<bool>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        for bom in [[0xFF, 0xFE], [0xFE, 0xFF]] {
            let mut bytes = bom.to_vec();
            bytes.extend_from_slice(&body);
            if odd != (bytes.len() % 2 == 1) {
                bytes.push(0);
            }
            check(&bytes);
        }
    }
}

#[test]
fn corpus_of_nasty_kubeconfigs() {
    for (name, bytes) in corpus("kubeconfig") {
        eprintln!("kubeconfig corpus: {name}");
        check(&bytes);
    }
}
