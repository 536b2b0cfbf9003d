//! The canary: a Secret value and the test users' bearer tokens must never reach any
//! output of any plugin, in any output mode or log level, unless --show-secrets.
//!
//! Every plugin run of the whole suite is recorded by the harness
//! ([`kubectl_gitops_tests::record`]), and so is every dashboard page the tests were served,
//! over HTTP or in the browser ([`kubectl_gitops_tests::web::record_page`]);
//! `canary_values_appear_in_no_recorded_output` reads them all. tests/run.sh runs it after the rest of the suite (it is ignored otherwise,
//! since it must come last).

use std::process::{Output, Stdio};

use kubectl_gitops_tests::record::{
    CANARY_SECRET_VALUE, canary_secret_yaml, check_canaries, runs_dir,
};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n";

fn run(cluster: &TestCluster, repo: &GitFixture, args: &[&str]) -> Output {
    cluster
        .kubectl()
        .args(args)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn expect(out: &Output, codes: &[i32]) {
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "expected exit {codes:?}: {}",
        describe(out)
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every plugin, every output mode, with and without request logging, on an app holding
/// the canary Secret: nothing prints it. The final check covers these runs too.
#[test]
fn every_plugin_in_every_mode_keeps_the_canary_secret_and_token_out_of_its_output() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("canary");
    let n = ns.name.as_str();
    let repo = GitFixture::new();
    repo.write("secret.yaml", &canary_secret_yaml("creds"));
    repo.write("settings.yaml", SETTINGS);
    repo.commit("one");
    let verbose: [&[&str]; 3] = [&[], &["-v=6"], &["--v=9"]];
    let app = ["--app", "canary", "-n", n];

    for v in verbose {
        for mode in [
            &[][..],
            &["-o", "json"],
            &["-o", "name"],
            &["-o", "markdown"],
            &["--color=always"],
        ] {
            let args = [&["diff-git", "HEAD", "-n", n][..], mode, v].concat();
            expect(&run(cluster, &repo, &args), &[1]);
        }
    }
    // A dry run has changes to show (exit 1), its document too, masked alike.
    for mode in [&[][..], &["-o", "json"]] {
        let args = [&["sync", "HEAD", "--dry-run"][..], &app, mode, &["-v=6"]].concat();
        expect(&run(cluster, &repo, &args), &[1]);
    }
    let out = run(
        cluster,
        &repo,
        &[
            &["sync", "HEAD", "--wait=false", "--color=always"][..],
            &app,
            &["-v=6"],
        ]
        .concat(),
    );
    expect(&out, &[0]);
    assert!(
        text(&out).contains(" 200 OK in "),
        "-v=6 logs requests: {}",
        describe(&out)
    );

    // A new revision changes the Secret: the diff says so, masked.
    repo.write(
        "secret.yaml",
        &canary_secret_yaml("creds").replace("stringData:", "stringData:\n  extra: more"),
    );
    repo.commit("two");
    let out = run(
        cluster,
        &repo,
        &[&["sync", "HEAD", "-o", "json", "--wait=false"][..], &app].concat(),
    );
    expect(&out, &[0]);
    // Someone edits the Secret live: drift reports the field, masked.
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
    for v in verbose {
        for mode in [&[][..], &["-o", "json"], &["--color=always"], &["--git"]] {
            let args = [&["drift", "canary", "-n", n][..], mode, v].concat();
            expect(&run(cluster, &repo, &args), &[1]);
        }
        for args in [
            &["release-history", "-n", n][..],
            &["release-history", "canary", "-n", n, "-o", "json"],
            &["release-history", "canary", "-n", n, "-o", "yaml"],
            &["release-history", "canary", "2", "-n", n, "--manifest"],
            &["release-history", "canary", "2", "-n", n, "-o", "yaml"],
            &[
                "release-history",
                "canary",
                "1",
                "2",
                "-n",
                n,
                "--color=always",
            ],
        ] {
            expect(&run(cluster, &repo, &[args, v].concat()), &[0]);
        }
        for mode in [&[][..], &["-o", "json"]] {
            let args = [
                &["diff-git", "HEAD", "--app", "canary", "-n", n][..],
                mode,
                v,
            ]
            .concat();
            expect(&run(cluster, &repo, &args), &[1]);
        }
    }
    let out = run(
        cluster,
        &repo,
        &[&["drift", "canary", "-n", n, "--heal", "--wait=false", "-v=6"][..]].concat(),
    );
    expect(&out, &[0]);
    let out = run(
        cluster,
        &repo,
        &[
            &["sync", "--rollback", "1", "--wait=false", "-o", "json"][..],
            &app,
        ]
        .concat(),
    );
    expect(&out, &[0]);
    // An error path: a Secret the server rejects, beside the canary.
    repo.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: Bad_Name\nstringData:\n  token: x\n",
    );
    repo.commit("bad");
    let out = run(
        cluster,
        &repo,
        &[&["sync", "HEAD", "--wait=false", "-v=6"][..], &app].concat(),
    );
    expect(&out, &[2]);

    // With --show-secrets the value does show: the canary is reachable, so its absence
    // everywhere else means something. (The final check skips these runs.)
    repo.git(&["rm", "-q", "bad.yaml"]);
    repo.commit("good again");
    let out = run(
        cluster,
        &repo,
        &[
            &[
                "release-history",
                "canary",
                "2",
                "--manifest",
                "--show-secrets",
            ][..],
            &["-n", n],
        ]
        .concat(),
    );
    expect(&out, &[0]);
    assert!(
        text(&out).contains(CANARY_SECRET_VALUE),
        "{}",
        describe(&out)
    );
    // Each record's head rides on its Secret's metadata, which every list of apps reads:
    // it holds no value.
    let metadata = cluster.kubectl_ok(&[
        "get",
        "secrets",
        "-n",
        n,
        "-l",
        "kubectl-gitops.io/app=canary",
        "-o",
        "jsonpath={.items[*].metadata}",
    ]);
    assert!(
        metadata.contains("kubectl-gitops.io/release-head"),
        "{metadata}"
    );
    assert!(!metadata.contains(CANARY_SECRET_VALUE), "{metadata}");

    let so_far = check_canaries(&cluster.state);
    assert!(so_far.leaks.is_empty(), "leaks so far: {:#?}", so_far.leaks);
}

/// The suite's final check: every recorded plugin run (except those that asked for
/// --show-secrets) is free of every canary. Run last, by tests/run.sh.
#[test]
#[ignore = "run by tests/run.sh after the whole suite"]
fn canary_values_appear_in_no_recorded_output() {
    let cluster = TestCluster::get();
    let report = check_canaries(&cluster.state);
    assert!(
        report.checked > 0,
        "no plugin runs were recorded in {}: the recording is broken",
        runs_dir(&cluster.state).display()
    );
    assert!(
        report.leaks.is_empty(),
        "canary values in plugin output ({} runs checked):\n{}",
        report.checked,
        report.leaks.join("\n")
    );
    eprintln!(
        "canary check: {} plugin runs clean ({} with --show-secrets skipped)",
        report.checked, report.skipped
    );
}
