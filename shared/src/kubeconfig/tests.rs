use super::*;
use std::fs;
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).expect("write kubeconfig");
    path
}

fn kubeconfig(
    current: Option<&str>,
    contexts: &[(&str, &str, &str, Option<&str>)],
    server: &str,
) -> String {
    // contexts: (name, cluster, user, namespace)
    let mut text = String::from("apiVersion: v1\nkind: Config\n");
    if let Some(c) = current {
        text.push_str(&format!("current-context: {c}\n"));
    }
    text.push_str("clusters:\n");
    for (_, cluster, _, _) in contexts {
        text.push_str(&format!(
            "- name: {cluster}\n  cluster:\n    server: {server}\n"
        ));
    }
    text.push_str("users:\n");
    for (_, _, user, _) in contexts {
        text.push_str(&format!("- name: {user}\n  user:\n    token: t-{user}\n"));
    }
    text.push_str("contexts:\n");
    for (name, cluster, user, ns) in contexts {
        text.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {cluster}\n    user: {user}\n"
        ));
        if let Some(ns) = ns {
            text.push_str(&format!("    namespace: {ns}\n"));
        }
    }
    text
}

fn env_with(files: &[&Path]) -> Environment {
    Environment {
        kubeconfig_var: Some(std::env::join_paths(files).expect("join paths")),
        home: None,
        in_cluster: false,
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn merges_several_files_first_definition_wins() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", Some("team-a"))],
            "https://a.example:6443",
        ),
    );
    let b = write(
        &dir,
        "b",
        &kubeconfig(
            Some("two"),
            &[
                ("one", "c1", "u1", Some("ignored")),
                ("two", "c2", "u2", None),
            ],
            "https://b.example:6443",
        ),
    );
    let env = env_with(&[&a, &b]);

    // current-context comes from the first file that sets it.
    let conn = block(connect(&ConnectOptions::default(), &env)).expect("connect");
    assert_eq!(conn.context.as_deref(), Some("one"));
    assert_eq!(
        conn.namespace, "team-a",
        "the first file's definition of context one wins"
    );
    assert_eq!(conn.server(), "https://a.example:6443/");
    assert_eq!(conn.files, vec![a.clone(), b.clone()]);

    // A context only the second file defines is still reachable, with its own cluster.
    let opts = ConnectOptions {
        context: Some("two".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env)).expect("connect two");
    assert_eq!(conn.server(), "https://b.example:6443/");
    assert_eq!(conn.user.as_deref(), Some("u2"));
}

#[test]
fn missing_files_in_kubeconfig_list_are_skipped() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", None)],
            "https://a.example",
        ),
    );
    let missing = dir.path().join("does-not-exist");
    let conn = block(connect(
        &ConnectOptions::default(),
        &env_with(&[&missing, &a]),
    ))
    .expect("connect");
    assert_eq!(conn.files, vec![a]);
}

#[test]
fn explicit_kubeconfig_flag_wins_over_the_variable() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", None)],
            "https://a.example",
        ),
    );
    let b = write(
        &dir,
        "b",
        &kubeconfig(
            Some("two"),
            &[("two", "c2", "u2", None)],
            "https://b.example",
        ),
    );
    let opts = ConnectOptions {
        kubeconfig: Some(b.clone()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env_with(&[&a]))).expect("connect");
    assert_eq!(conn.context.as_deref(), Some("two"));
    assert_eq!(conn.files, vec![b]);
}

#[test]
fn home_kubeconfig_is_the_fallback() {
    let dir = TempDir::new().expect("tempdir");
    fs::create_dir_all(dir.path().join(".kube")).expect("mkdir");
    write(
        &dir,
        ".kube/config",
        &kubeconfig(
            Some("home"),
            &[("home", "c", "u", None)],
            "https://home.example",
        ),
    );
    let env = Environment {
        kubeconfig_var: None,
        home: Some(dir.path().to_path_buf()),
        in_cluster: false,
    };
    let conn = block(connect(&ConnectOptions::default(), &env)).expect("connect");
    assert_eq!(conn.context.as_deref(), Some("home"));
}

#[test]
fn namespace_comes_from_flag_then_context_then_default() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("with-ns"),
            &[
                ("with-ns", "c1", "u1", Some("ctx-ns")),
                ("plain", "c2", "u2", None),
            ],
            "https://a.example",
        ),
    );
    let env = env_with(&[&a]);
    let conn = block(connect(&ConnectOptions::default(), &env)).expect("context ns");
    assert_eq!(
        (conn.namespace.as_str(), conn.namespace_source),
        ("ctx-ns", NamespaceSource::Context)
    );
    assert_eq!(conn.config.default_namespace, "ctx-ns");

    let opts = ConnectOptions {
        namespace: Some("flag-ns".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env)).expect("flag ns");
    assert_eq!(
        (conn.namespace.as_str(), conn.namespace_source),
        ("flag-ns", NamespaceSource::Flag)
    );

    let opts = ConnectOptions {
        context: Some("plain".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env)).expect("default ns");
    assert_eq!(
        (conn.namespace.as_str(), conn.namespace_source),
        ("default", NamespaceSource::Default)
    );
}

#[test]
fn cluster_and_user_flags_override_the_context() {
    let dir = TempDir::new().expect("tempdir");
    let text = kubeconfig(
        Some("one"),
        &[("one", "c1", "u1", None), ("two", "c2", "u2", None)],
        "https://a.example",
    );
    let a = write(&dir, "a", &text);
    let opts = ConnectOptions {
        user: Some("u2".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env_with(&[&a]))).expect("connect");
    assert_eq!(conn.user.as_deref(), Some("u2"));
    assert_eq!(conn.actor(), "u2");
}

#[test]
fn impersonation_and_timeout_are_applied() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", None)],
            "https://a.example",
        ),
    );
    let opts = ConnectOptions {
        impersonate: Some("jane".into()),
        impersonate_groups: vec!["devs".into()],
        request_timeout: Some("1m30s".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env_with(&[&a]))).expect("connect");
    assert_eq!(conn.config.auth_info.impersonate.as_deref(), Some("jane"));
    assert_eq!(
        conn.config.auth_info.impersonate_groups,
        Some(vec!["devs".to_string()])
    );
    assert_eq!(conn.request_timeout, Some(Duration::from_secs(90)));
    assert_eq!(conn.config.read_timeout, Some(Duration::from_secs(90)));
    assert_eq!(conn.actor(), "jane");
}

#[test]
fn a_service_account_is_acted_as_in_the_namespace_in_use_and_never_with_as() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", Some("from-context"))],
            "https://a.example",
        ),
    );
    let opts = ConnectOptions {
        service_account: Some("deployer".into()),
        ..Default::default()
    };
    let conn = block(connect(&opts, &env_with(&[&a]))).expect("connect");
    assert_eq!(
        conn.config.auth_info.impersonate.as_deref(),
        Some("system:serviceaccount:from-context:deployer")
    );
    assert_eq!(conn.actor(), "system:serviceaccount:from-context:deployer");
    let opts = ConnectOptions {
        namespace: Some("team-a".into()),
        ..opts
    };
    let conn = block(connect(&opts, &env_with(&[&a]))).expect("connect");
    assert_eq!(
        conn.config.auth_info.impersonate.as_deref(),
        Some("system:serviceaccount:team-a:deployer")
    );
    let opts = ConnectOptions {
        impersonate: Some("jane".into()),
        ..opts
    };
    let error = block(connect(&opts, &env_with(&[&a]))).expect_err("two identities");
    assert_eq!(
        error.to_string(),
        "--as jane cannot be used for an app the app list gives a service_account (deployer): its syncs act as that account"
    );
}

#[test]
fn request_timeout_syntax_matches_kubectl() {
    assert_eq!(parse_request_timeout("0").expect("0"), None);
    assert_eq!(
        parse_request_timeout("15").expect("15"),
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        parse_request_timeout("500ms").expect("ms"),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        parse_request_timeout("2m").expect("2m"),
        Some(Duration::from_secs(120))
    );
    let err = parse_request_timeout("soon").expect_err("soon is not a duration");
    assert!(
        err.to_string()
            .contains("invalid --request-timeout \"soon\""),
        "{err}"
    );
}

#[test]
fn missing_context_lists_the_ones_that_exist() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(
            Some("one"),
            &[("one", "c1", "u1", None), ("two", "c2", "u2", None)],
            "https://a",
        ),
    );
    let opts = ConnectOptions {
        context: Some("prod".into()),
        ..Default::default()
    };
    let err = block(connect(&opts, &env_with(&[&a]))).expect_err("prod does not exist");
    let text = err.to_string();
    assert!(
        text.contains("context \"prod\" does not exist in"),
        "{text}"
    );
    assert!(
        text.contains(&a.display().to_string()),
        "names the file: {text}"
    );
    assert!(text.contains("available contexts: one, two"), "{text}");
}

#[test]
fn unset_current_context_is_an_error_naming_the_choices() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(
        &dir,
        "a",
        &kubeconfig(None, &[("one", "c1", "u1", None)], "https://a"),
    );
    let err = block(connect(&ConnectOptions::default(), &env_with(&[&a])))
        .expect_err("no current context");
    let text = err.to_string();
    assert!(text.contains("current-context is not set"), "{text}");
    assert!(text.contains("available contexts: one"), "{text}");
}

#[test]
fn context_pointing_at_undefined_cluster_or_user_names_them() {
    let dir = TempDir::new().expect("tempdir");
    let text = "apiVersion: v1\nkind: Config\ncurrent-context: broken\nclusters: []\nusers: []\ncontexts:\n- name: broken\n  context:\n    cluster: gone\n    user: nobody\n";
    let a = write(&dir, "a", text);
    let err =
        block(connect(&ConnectOptions::default(), &env_with(&[&a]))).expect_err("cluster missing");
    let msg = err.to_string();
    assert!(msg.contains("context \"broken\""), "{msg}");
    assert!(msg.contains("cluster \"gone\""), "{msg}");
    assert!(msg.contains(&a.display().to_string()), "{msg}");

    let text = text.replace(
        "clusters: []",
        "clusters:\n- name: gone\n  cluster:\n    server: https://x",
    );
    let a = write(&dir, "b", &text);
    let err =
        block(connect(&ConnectOptions::default(), &env_with(&[&a]))).expect_err("user missing");
    assert!(err.to_string().contains("user \"nobody\""), "{err}");
}

#[test]
fn unreadable_yaml_names_the_file() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(&dir, "broken", "clusters: [this is: not valid\n");
    let err = block(connect(&ConnectOptions::default(), &env_with(&[&a]))).expect_err("bad yaml");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot read kubeconfig {}", a.display())),
        "{msg}"
    );
}

#[test]
fn explicit_missing_file_is_an_error_not_a_fallback() {
    let opts = ConnectOptions {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..Default::default()
    };
    let err = block(connect(&opts, &Environment::default())).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "kubeconfig file /nonexistent/kubeconfig does not exist (given by --kubeconfig)"
    );
}

#[test]
fn nothing_to_connect_with_says_where_it_looked() {
    let dir = TempDir::new().expect("tempdir");
    let env = Environment {
        kubeconfig_var: None,
        home: Some(dir.path().to_path_buf()),
        in_cluster: false,
    };
    let err = block(connect(&ConnectOptions::default(), &env)).expect_err("nothing");
    let msg = err.to_string();
    assert!(
        msg.starts_with("no configuration found: looked for"),
        "{msg}"
    );
    assert!(msg.contains(".kube/config"), "{msg}");
}

#[test]
fn relative_certificate_paths_resolve_against_the_file() {
    let dir = TempDir::new().expect("tempdir");
    fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    let text = "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n";
    let a = write(&dir, "sub/config", text);
    // The CA file does not exist: the error must show the absolute path next to the kubeconfig.
    let err = block(connect(&ConnectOptions::default(), &env_with(&[&a]))).expect_err("ca missing");
    let msg = err.to_string();
    assert!(msg.contains("cannot use context \"c\""), "{msg}");
    assert!(
        msg.contains(&dir.path().join("sub").display().to_string()) || msg.contains("ca.crt"),
        "{msg}"
    );
}

#[test]
fn odd_length_utf16_is_refused_not_a_panic() {
    let dir = TempDir::new().expect("tempdir");
    for bom in [[0xFF, 0xFE], [0xFE, 0xFF]] {
        let path = dir.path().join("utf16");
        let mut bytes = bom.to_vec();
        bytes.extend_from_slice(b"a\0b");
        fs::write(&path, &bytes).expect("write");
        let err = load(&ConnectOptions::default(), &env_with(&[&path])).expect_err("odd utf-16");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read kubeconfig {}: it starts with a UTF-16 byte order mark but has an odd number of bytes",
                path.display()
            )
        );
    }
}

#[test]
fn parse_errors_are_one_line() {
    let dir = TempDir::new().expect("tempdir");
    let a = write(&dir, "broken", "clusters: [this is: not valid\n");
    let msg = load(&ConnectOptions::default(), &env_with(&[&a]))
        .expect_err("bad yaml")
        .to_string();
    assert_eq!(
        msg,
        format!(
            "cannot read kubeconfig {}: failed to parse kubeconfig YAML: error: line 1 column 11: unclosed bracket '['",
            a.display()
        )
    );
}

#[test]
fn in_a_pod_a_named_context_is_an_error_never_the_pods_own_cluster() {
    let env = Environment {
        kubeconfig_var: None,
        home: None,
        in_cluster: true,
    };
    let opts = ConnectOptions {
        context: Some("prod-eu".into()),
        ..Default::default()
    };
    let error = block(connect(&opts, &env)).expect_err("a named context in a pod");
    assert!(
        matches!(&error, KubeconfigError::ContextInCluster { name } if name == "prod-eu"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("kubectl-gitops.io/secret-type=cluster"),
        "{error}"
    );
}

#[test]
fn a_service_account_token_names_its_account_and_nothing_else_is_taken_for_one() {
    use base64::Engine;
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let token = format!(
        "{}.{}.signature",
        part(r#"{"alg":"RS256"}"#),
        part(r#"{"sub":"system:serviceaccount:kubectl-gitops:kubectl-gitops","aud":["x"]}"#)
    );
    assert_eq!(
        super::token_subject(&format!("{token}\n")).as_deref(),
        Some("system:serviceaccount:kubectl-gitops:kubectl-gitops")
    );
    let person = format!("{}.{}.s", part("{}"), part(r#"{"sub":"jane"}"#));
    assert_eq!(super::token_subject(&person), None);
    assert_eq!(super::token_subject("not a token"), None);
}
