//! `kubectl release-history --web`: the dashboard served for real against the test control
//! plane, its pages read over HTTP (the security rules) and in headless Chromium driven
//! over WebDriver (what a user sees: the apps, a tree, a drift mark appearing without a
//! reload, the history and a diff). Screenshots of each page are kept under
//! target/dashboard-screenshots/.

use std::process::Stdio;

use kubectl_gitops_tests::record::{CANARY_SECRET_VALUE, canary_secret_yaml};
use kubectl_gitops_tests::web::{
    Browser, CHECKING, ServedDashboard, request, request_with_body, screenshot_dir,
};
use kubectl_gitops_tests::{GitFixture, TestCluster, describe};

use crate::ownership::{config_map, helm_install, tiny_chart};
use crate::release_history::support::{helm_release, regex_escape, write_helm_secret};
use crate::tree::WEB;

/// The app `web` synced twice into `ns` (release 1: two replicas; release 2: one), with
/// the canary Secret among its objects.
fn two_releases(cluster: &TestCluster, ns: &str) -> GitFixture {
    let repo = GitFixture::new();
    repo.write("app/web.yaml", WEB);
    repo.write("app/creds.yaml", &canary_secret_yaml("creds"));
    repo.commit("web and its credentials");
    sync(cluster, &repo, ns);
    repo.write("app/web.yaml", &WEB.replace("replicas: 2", "replicas: 1"));
    repo.commit("one replica is enough");
    sync(cluster, &repo, ns);
    repo
}

fn sync(cluster: &TestCluster, repo: &GitFixture, ns: &str) {
    sync_app(cluster, repo, ("app", "web"), ns, &[]);
}

/// `kubectl sync HEAD PATH --app APP -n NS` with `extra` flags, which must succeed.
fn sync_app(
    cluster: &TestCluster,
    repo: &GitFixture,
    (path, app): (&str, &str),
    ns: &str,
    extra: &[&str],
) {
    let out = cluster
        .kubectl()
        .args(["sync", "HEAD", path, "--app", app, "-n", ns])
        .args(["--timeout", "120s"])
        .args(extra)
        .current_dir(repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "sync: {}", describe(&out));
}

/// The replicas of Deployment `web` in `ns`, empty when it does not exist.
fn replicas(cluster: &TestCluster, ns: &str) -> String {
    let out = cluster
        .kubectl()
        .args(["get", "deployment", "web", "-n", ns])
        .args(["-o", "jsonpath={.spec.replicas}", "--ignore-not-found"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Confirms the rollback page open in `browser`, then checks that the history shows
/// release 3 and that the cluster recorded it as `kubectl sync --rollback OF` records it.
fn confirm_rollback(browser: &Browser, cluster: &TestCluster, ns: &str, of: u32, shot: &str) {
    browser.run("document.querySelector('form.confirm button').click(); return true;");
    let timeline = browser.wait_for_text("ol.timeline", "Release 3", 120);
    assert!(
        timeline.contains(&format!("rollback of release {of}")),
        "{timeline}"
    );
    browser.screenshot(shot);
    let record = cluster.kubectl_ok(&["release-history", "web", "3", "-n", ns, "-o", "json"]);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["operation"], "rollback", "{record}");
    assert_eq!(record["rollback_of"], of, "{record}");
    assert_eq!(
        record["description"],
        format!("rollback to release {of}"),
        "{record}"
    );
    assert_eq!(record["who"], "admin", "{record}");
}

/// POSTs `form` to /rollback from the dashboard's own page (its cookie, its origin) and
/// checks that it is refused for its CSRF token.
fn refused_without_csrf(dashboard: &ServedDashboard, form: &str) {
    let host = dashboard.host.as_str();
    let answer = request_with_body(
        host,
        "POST",
        "/rollback",
        &[
            ("Host", host),
            ("Cookie", &dashboard.cookie()),
            ("Origin", &format!("http://{host}")),
        ],
        form,
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("CSRF token"), "{}", answer.body);
}

fn app_query(ns: &str) -> String {
    format!("c=0&ns={ns}&app=web&src=kubectl-gitops")
}

#[test]
fn without_the_token_from_another_host_or_cross_site_the_dashboard_refuses() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-guard");
    let n = ns.name.as_str();
    let _repo = two_releases(cluster, n);
    // A Helm release of the same name beside it.
    write_helm_secret(cluster, n, &helm_release(n, 1, "deployed", "v1"), true);
    let dashboard = ServedDashboard::start(cluster, &["-n", n]);
    let host = dashboard.host.as_str();
    assert!(host.starts_with("127.0.0.1:"), "not on loopback: {host}");

    // No token, a wrong one, a wrong cookie: refused, nothing of the cluster in the answer.
    let none = request(host, "GET", "/", &[("Host", host)]);
    assert_eq!(none.status, 401, "{none:?}");
    assert!(!none.body.contains(">web</a>"), "{}", none.body);
    let wrong = request(host, "GET", "/?token=0000", &[("Host", host)]);
    assert_eq!(wrong.status, 401);
    let bad_cookie = format!(
        "kubectl_gitops_dashboard_{}=0000",
        host.rsplit(':').next().unwrap()
    );
    let wrong_cookie = request(host, "GET", "/", &[("Host", host), ("Cookie", &bad_cookie)]);
    assert_eq!(wrong_cookie.status, 401);

    // The token in the URL becomes an HttpOnly, SameSite=Strict cookie, and the URL loses it.
    let path = format!("/?token={}", dashboard.token);
    let first = request(host, "GET", &path, &[("Host", host)]);
    assert_eq!(first.status, 303, "{first:?}");
    assert_eq!(first.header("location"), Some("/"));
    let cookie = first.header("set-cookie").unwrap();
    assert!(cookie.starts_with(&dashboard.cookie()), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // The cookie reads the overview; with another Host header (DNS rebinding) it does not.
    let overview = dashboard.page_when_checked("/", 60);
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(">web</a>"), "{}", overview.body);
    // Helm's release is listed beside ours; its drift is not checked, and says why.
    let helm_row = overview
        .body
        .lines()
        .find(|l| l.contains(">web</a>") && l.contains(">helm</td>"))
        .unwrap_or_else(|| panic!("no Helm release in: {}", overview.body));
    assert!(
        helm_row.contains("Helm releases are not checked for drift"),
        "{helm_row}"
    );
    assert!(helm_row.contains("unknown"), "{helm_row}");
    // The filters: by health (the Helm release's objects do not exist: degraded), by
    // source's status, by namespace.
    let rows = |path: &str| {
        let page = dashboard.page_when_checked(path, 60);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        page.body
            .lines()
            .filter(|l| l.starts_with("<tr><td data-label=\"App\">"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let healthy = rows("/?health=healthy");
    assert_eq!(healthy.len(), 1, "{healthy:?}");
    assert!(healthy[0].contains("kubectl-gitops"), "{healthy:?}");
    let degraded = rows("/?health=degraded");
    assert_eq!(degraded.len(), 1, "{degraded:?}");
    assert!(degraded[0].contains(">helm</td>"), "{degraded:?}");
    assert_eq!(rows(&format!("/?ns={n}&status=deployed")).len(), 2);
    assert!(rows("/?status=failed").is_empty());
    assert!(rows("/?ns=elsewhere").is_empty());
    let rebound = request(
        host,
        "GET",
        "/",
        &[
            ("Host", "attacker.example:80"),
            ("Cookie", &dashboard.cookie()),
        ],
    );
    assert_eq!(rebound.status, 403, "{rebound:?}");
    assert!(!rebound.body.contains(">web</a>"));

    // Every answer: a strict CSP, and no page loads anything from elsewhere.
    let csp = overview.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    for page in [
        overview.body.as_str(),
        &dashboard.page("/assets/dashboard.css").body,
    ] {
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
            "{page}"
        );
    }
    assert!(
        !overview.body.contains("<script>"),
        "inline script: {}",
        overview.body
    );

    // A POST from another site is refused as such; a same-site one finds no action.
    let forged = request_with_body(
        host,
        "POST",
        "/",
        &[
            ("Host", host),
            ("Cookie", &dashboard.cookie()),
            ("Origin", "http://attacker.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "action=rollback&revision=1",
    );
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.body.contains("another site"), "{}", forged.body);
    let origin = format!("http://{host}");
    let same_site = request_with_body(
        host,
        "POST",
        "/",
        &[
            ("Host", host),
            ("Cookie", &dashboard.cookie()),
            ("Origin", &origin),
        ],
        "action=rollback&revision=1",
    );
    assert_eq!(same_site.status, 403, "{same_site:?}");
    assert!(
        same_site.body.contains("takes no action"),
        "{}",
        same_site.body
    );
    assert_eq!(
        cluster.release_statuses(n, "web").len(),
        2,
        "a release was written"
    );

    // The Secret's page masks its values; the canary check reads every page answered.
    let secret = dashboard.page(&format!(
        "/object?{}&g=&k=Secret&n=creds&on={n}",
        app_query(n)
    ));
    assert_eq!(secret.status, 200, "{}", secret.body);
    assert!(
        secret.body.contains("password: &#39;***&#39;"),
        "{}",
        secret.body
    );
    assert!(
        !secret
            .body
            .contains(kubectl_gitops_tests::record::CANARY_SECRET_VALUE)
    );
    // An object outside the app's tree is not shown.
    let other = dashboard.page(&format!(
        "/object?{}&g=&k=Secret&n=default-token&on=kube-system",
        app_query(n)
    ));
    assert_eq!(other.status, 404, "{}", other.body);
}

#[test]
fn an_address_other_than_loopback_is_served_with_a_warning() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-address");
    let dashboard = ServedDashboard::start(cluster, &["-n", &ns.name, "--address", "0.0.0.0"]);
    let host = dashboard.host.clone();
    let page = dashboard.page("/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("No app matches."), "{}", page.body);
    let stderr = dashboard.stop();
    assert!(
        stderr.contains("warning: the dashboard listens on 0.0.0.0:"),
        "{host}: {stderr}"
    );
}

#[test]
fn in_a_browser_the_apps_a_tree_a_live_drift_mark_the_history_and_a_diff_show() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-browser");
    let n = ns.name.as_str();
    let _repo = two_releases(cluster, n);
    let dashboard = ServedDashboard::start(cluster, &["-n", n]);
    let browser = Browser::start(screenshot_dir("browser"));

    // The overview: the app, its last release and states in words.
    browser.open(&dashboard.url);
    let row = browser.wait_for_text("table.apps tbody tr", "in sync", 30);
    for word in [
        "deployed",
        "one replica is enough",
        "healthy",
        "in sync",
        "kubectl-gitops",
    ] {
        assert!(row.contains(word), "no {word} in the overview's row: {row}");
    }
    browser.screenshot("overview");
    browser.resize(420, 900);
    // A narrow window: no table header; each cell says which column it is.
    let header =
        browser.run("return getComputedStyle(document.querySelector('table.apps thead')).display;");
    assert_eq!(header, serde_json::json!("none"));
    browser.screenshot("overview-narrow");
    browser.resize(1280, 900);

    // The app page: its tree, the Deployment owning a ReplicaSet owning a Pod.
    browser.click_link("web");
    let deployment = format!("tr[data-object=\"Deployment.apps/{n}/web\"]");
    browser.wait_for_text(&deployment, "in sync", 30);
    let tree = browser.text("table.tree tbody");
    assert!(tree.contains("ReplicaSet.apps/web-"), "{tree}");
    assert!(tree.contains("Pod/web-"), "{tree}");
    assert!(tree.contains("Secret/creds"), "{tree}");
    browser.wait_for_text("#live", "live", 30);
    browser.screenshot("app");

    // Scaled by hand: the mark turns to modified without a reload (the marker survives).
    browser.run("window.notReloaded = true; return true;");
    cluster.kubectl_ok(&["scale", "deployment", "web", "-n", n, "--replicas=3"]);
    browser.wait_for_text(&format!("{deployment} td.drift"), "modified", 20);
    assert_eq!(
        browser.run("return window.notReloaded === true;"),
        serde_json::json!(true)
    );
    browser.screenshot("app-drifted");

    // The node's page: the drifted field and who changed it.
    browser.click_link("Deployment.apps/web");
    let fields = browser.wait_for_text("table.fields", "/spec/replicas", 30);
    assert!(
        fields.contains("kubectl") && fields.contains("scale"),
        "{fields}"
    );
    // Its live YAML as the cluster has it now, and its events (the controller's scaling).
    let yaml = browser.text("pre.yaml");
    assert!(
        yaml.contains("replicas: 3") && !yaml.contains("managedFields"),
        "{yaml}"
    );
    browser.wait_for_text("table.events", "ScalingReplicaSet", 30);
    browser.screenshot("object");

    // The history: both releases, then the diff between them as diff-git draws it.
    browser.click_link("back to app web");
    browser.click_link("history");
    let timeline = browser.wait_for_text("ol.timeline", "Release 2", 30);
    assert!(
        timeline.contains("Release 1") && timeline.contains("superseded"),
        "{timeline}"
    );
    browser.screenshot("history");
    browser.click_link("changes since release 1");
    let diff = browser.wait_for_text("pre.diff", "+  replicas: 1", 30);
    assert!(diff.contains("-  replicas: 2"), "{diff}");
    assert!(
        diff.contains(&format!("--- release-1/apps/Deployment/{n}/web")),
        "{diff}"
    );
    browser.screenshot("diff");

    // Without --allow-actions no page offers an action, though the app drifted and has an
    // earlier release: no heal or rollback link, no form that posts, no action page.
    for path in [
        "/",
        &format!("/app?{}", app_query(n)),
        &format!("/history?{}", app_query(n)),
    ] {
        let page = dashboard.page(path);
        assert!(
            !page.body.to_lowercase().contains("method=\"post\""),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("Roll back"), "{path}: {}", page.body);
        assert!(!page.body.contains("again"), "{path}: {}", page.body);
        assert!(!page.body.contains("Heal drift"), "{path}: {}", page.body);
    }
    for action in [
        format!("/rollback?{}&rev=1", app_query(n)),
        format!("/heal?{}", app_query(n)),
    ] {
        let page = dashboard.page(&action);
        assert_eq!(page.status, 404, "{action}: {}", page.body);
        assert!(
            page.body.contains("without --allow-actions"),
            "{}",
            page.body
        );
    }
}

#[test]
fn the_overview_answers_before_the_drift_checks_and_then_shows_what_they_find() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-first");
    let n = ns.name.as_str();
    let _repo = two_releases(cluster, n);
    cluster.kubectl_ok(&["scale", "deployment", "web", "-n", n, "--replicas=3"]);
    let app_row = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("<tr><td data-label=\"App\">") && l.contains(">web</a>"))
            .unwrap_or_else(|| panic!("no row of web in: {body}"))
            .to_string()
    };

    // The first answer comes from the release records: the release is there, its health
    // and drift say they are being checked, and nothing claims a state not read yet.
    let dashboard = ServedDashboard::start(cluster, &["-n", n]);
    let first = app_row(&dashboard.page("/").body);
    assert!(first.contains("one replica is enough"), "{first}");
    assert_eq!(first.matches(CHECKING).count(), 2, "{first}");
    for known in ["in sync", "drifted", "healthy", "degraded", "unknown"] {
        assert!(!first.contains(known), "{known} before the check: {first}");
    }
    // Then the check's finding: the Deployment scaled by hand.
    let checked = app_row(&dashboard.page_when_checked("/", 60).body);
    assert!(checked.contains("1 drifted"), "{checked}");
    drop(dashboard);

    // In a browser, the first overview fills itself in without a reload.
    let dashboard = ServedDashboard::start(cluster, &["-n", n]);
    let browser = Browser::start(screenshot_dir("checking"));
    browser.open(&dashboard.url);
    let row = browser.wait_for_text("table.apps tbody tr", "1 drifted", 30);
    assert!(!row.contains("… checking"), "{row}");
    assert_ne!(
        browser.run("return document.body.getAttribute('data-refreshes');"),
        serde_json::Value::Null,
        "the states came without the live update: {row}"
    );
    browser.screenshot("overview-checked");
}

#[test]
fn html_report_is_one_self_contained_page_of_the_history_and_its_diffs() {
    use base64::Engine as _;
    use sha2::Digest as _;

    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-report");
    let n = ns.name.as_str();
    let repo = two_releases(cluster, n);
    // Release 3 rotates the Secret's value: the diff says so, masked.
    let secret = canary_secret_yaml("creds").replace(CANARY_SECRET_VALUE, "rotated-value-0123");
    repo.write("app/creds.yaml", &secret);
    repo.commit("rotate the credentials");
    sync(cluster, &repo, n);

    let out = cluster
        .kubectl()
        .args(["release-history", "web", "-n", n, "-o", "html"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let page = String::from_utf8(out.stdout).unwrap();

    // Self-contained: nothing loaded from anywhere, no script, its own CSP allowing only
    // the style it holds.
    for outside in [
        "http://", "https://", "<script", "src=", "<link", "@import", "url(",
    ] {
        assert!(!page.contains(outside), "{outside} in the report");
    }
    let style = page
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .unwrap()
        .0;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
    assert!(
        page.contains(&format!(
            "content=\"default-src 'none'; style-src 'sha256-{hash}'\""
        )),
        "the CSP does not allow exactly its stylesheet"
    );
    // Secrets masked as the CLI masks them.
    assert!(!page.contains(CANARY_SECRET_VALUE) && !page.contains("rotated-value-0123"));
    assert!(
        page.contains("*** (after)"),
        "the Secret's change is not shown masked"
    );

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(n), "[ns]");
    settings.add_filter(r"(?s)<style>.*</style>", "<style>[stylesheet]</style>");
    settings.add_filter(r"sha256-[A-Za-z0-9+/=]+", "sha256-[hash]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]");
    settings.add_filter(r"<dd>[0-9a-f]{7} ", "<dd>[commit] ");
    settings.add_filter(r"<dd>\d+\.\d s</dd>", "<dd>[duration]</dd>");
    settings.bind(|| insta::assert_snapshot!("html_report", page));
}

#[test]
fn with_allow_actions_a_rollback_and_a_heal_are_previewed_confirmed_and_recorded_as_the_cli_records_them()
 {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-actions");
    let n = ns.name.as_str();
    let _repo = two_releases(cluster, n);
    let dashboard = ServedDashboard::start(cluster, &["-n", n, "--allow-actions"]);
    let host = dashboard.host.as_str();

    // Forged POSTs are refused and change nothing: from another site, and without the
    // form's CSRF token.
    let form = format!("{}&rev=1", app_query(n));
    let cross_site = request_with_body(
        host,
        "POST",
        "/rollback",
        &[
            ("Host", host),
            ("Cookie", &dashboard.cookie()),
            ("Origin", "http://attacker.example"),
        ],
        &form,
    );
    assert_eq!(cross_site.status, 403, "{cross_site:?}");
    for forged in [form.clone(), format!("{form}&csrf=0000")] {
        refused_without_csrf(&dashboard, &forged);
    }
    assert_eq!(
        cluster.release_statuses(n, "web").len(),
        2,
        "a forged POST acted"
    );

    // In the browser: the history offers the rollback, its page shows the preview diff,
    // the button rolls back, and the history shows the new release.
    let browser = Browser::start(screenshot_dir("actions"));
    browser.open(&dashboard.url);
    browser.wait_for_text("table.apps tbody tr", "web", 30);
    browser.click_link("2");
    browser.wait_for_text("ol.timeline", "Release 1", 30);
    browser.click_link("Roll back to release 1");
    let preview = browser.wait_for_text("pre.diff", "+  replicas: 2", 60);
    assert!(preview.contains("-  replicas: 1"), "{preview}");
    browser.screenshot("rollback-preview");
    assert_eq!(
        cluster.release_statuses(n, "web").len(),
        2,
        "the preview acted"
    );
    // From the cluster: a release recorded as kubectl sync --rollback 1 records it, and the
    // Deployment back at release 1's two replicas.
    confirm_rollback(&browser, cluster, n, 1, "rolled-back");
    let statuses = cluster.release_statuses(n, "web");
    assert_eq!(
        statuses.last(),
        Some(&(3, "deployed".to_string())),
        "{statuses:?}"
    );
    assert_eq!(replicas(cluster, n), "2");

    // Scaled by hand, the app offers a heal: its page shows the drifted field and who
    // changed it, and the button heals it, recorded as kubectl drift --heal records it.
    cluster.kubectl_ok(&["scale", "deployment", "web", "-n", n, "--replicas=4"]);
    browser.open(&format!("http://{host}/app?{}", app_query(n)));
    browser.wait_for_text("main", "Heal drift", 30);
    browser.click_link("Heal drift");
    let fields = browser.wait_for_text("table.fields", "/spec/replicas", 60);
    assert!(
        fields.contains("kubectl") && fields.contains('4'),
        "{fields}"
    );
    browser.screenshot("heal-preview");
    assert_eq!(replicas(cluster, n), "4", "the preview acted");
    browser.run("document.querySelector('form.confirm button').click(); return true;");
    let deployment = format!("tr[data-object=\"Deployment.apps/{n}/web\"] td.drift");
    browser.wait_for_text(&deployment, "in sync", 120);
    browser.screenshot("healed");
    assert_eq!(replicas(cluster, n), "2");
    let record = cluster.kubectl_ok(&["release-history", "web", "4", "-n", n, "-o", "json"]);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["operation"], "heal", "{record}");
    assert_eq!(record["status"], "deployed", "{record}");
}

#[test]
fn with_allow_actions_the_deployed_release_is_synced_again_from_its_history_and_recorded_as_the_cli_records_it()
 {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-again");
    let n = ns.name.as_str();
    let _repo = two_releases(cluster, n);
    // Deleted by hand: a sync of the release puts it back. (A field another manager
    // took, as kubectl scale does, is a conflict here as on the command line; the heal
    // takes such fields back.)
    cluster.kubectl_ok(&["delete", "deployment", "web", "-n", n]);
    let dashboard = ServedDashboard::start(cluster, &["-n", n, "--allow-actions"]);
    let host = dashboard.host.as_str();

    // A forged POST (no CSRF token) is refused and syncs nothing.
    refused_without_csrf(&dashboard, &format!("{}&rev=2", app_query(n)));
    assert_eq!(
        cluster.release_statuses(n, "web").len(),
        2,
        "a forged POST acted"
    );
    assert_eq!(replicas(cluster, n), "", "a forged POST acted");

    // The deployed release offers to be synced again; its page shows what goes back.
    let browser = Browser::start(screenshot_dir("again"));
    browser.open(&dashboard.url);
    browser.open(&format!("http://{host}/history?{}", app_query(n)));
    browser.wait_for_text("ol.timeline", "Sync release 2 again", 30);
    assert!(
        !browser.text("ol.timeline").contains("Sync release 1 again"),
        "only the deployed release is synced again"
    );
    browser.click_link("Sync release 2 again");
    let preview = browser.wait_for_text("pre.diff", "+  replicas: 1", 60);
    assert!(preview.contains("Deployment"), "{preview}");
    browser.screenshot("sync-again-preview");
    assert_eq!(replicas(cluster, n), "", "the preview acted");
    // From the cluster: recorded as kubectl sync --rollback 2 records it, release 2
    // superseded, the Deployment back with release 2's one replica.
    confirm_rollback(&browser, cluster, n, 2, "synced-again");
    let statuses = cluster.release_statuses(n, "web");
    assert_eq!(
        statuses,
        vec![
            (1, "superseded".to_string()),
            (2, "superseded".to_string()),
            (3, "deployed".to_string())
        ]
    );
    assert_eq!(replicas(cluster, n), "1");
}

#[test]
fn a_helm_releases_page_updates_without_a_reload_when_one_of_its_objects_changes() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-helm-live");
    let n = ns.name.as_str();
    let chart = tiny_chart(&[
        ("settings.yaml", &config_map("settings", "helm")),
        ("extra.yaml", &config_map("extra", "helm")),
    ]);
    helm_install(cluster, "tiny", chart.path(), n);
    let dashboard = ServedDashboard::start(cluster, &["-n", n]);
    let browser = Browser::start(screenshot_dir("helm-live"));
    browser.open(&dashboard.url);
    let page = format!("http://{}/app?c=0&ns={n}&app=tiny&src=helm", dashboard.host);
    browser.open(&page);
    let extra = format!("tr[data-object=\"ConfigMap/{n}/extra\"] td.health");
    let health = browser.wait_for_text(&extra, "healthy", 30);
    assert!(!health.contains("missing"), "{health}");
    browser.wait_for_text("#live", "live", 30);

    // Deleted by hand: no release of Helm's changed, yet the page shows it gone, without
    // a reload.
    browser.run("window.notReloaded = true; return true;");
    cluster.kubectl_ok(&["delete", "configmap", "extra", "-n", n]);
    browser.wait_for_text(&extra, "missing", 30);
    assert_eq!(
        browser.run("return window.notReloaded === true;"),
        serde_json::json!(true)
    );
    browser.screenshot("helm-object-deleted");
}

#[test]
fn the_overview_learns_each_apps_state_while_another_app_changes_all_the_time() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-busy");
    let n = ns.name.clone();
    let repo = GitFixture::new();
    let apps = ["busy", "one", "two", "three", "four", "five"];
    for app in apps {
        repo.write(
            &format!("{app}/cm.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\ndata:\n  value: one\n"
            ),
        );
    }
    repo.commit("six apps");
    for app in apps {
        let out = cluster
            .kubectl()
            .args(["sync", "HEAD", app, "--app", app, "-n", &n, "--yes"])
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "sync {app}: {}", describe(&out));
    }
    // Something writes to one app's object all the time (a controller's annotation), as
    // in any busy cluster: the other apps' states are still learnt and kept.
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, ticks, n) = (stop.clone(), ticks.clone(), n.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let tick = ticks.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = TestCluster::get()
                    .kubectl()
                    .args(["annotate", "--overwrite", "configmap", "busy", "-n", &n])
                    .arg(format!("example.com/tick={tick}"))
                    .output();
            }
        })
    };
    while ticks.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dashboard = ServedDashboard::start(cluster, &["-n", &n]);
    let quiet = ["one", "two", "three", "four", "five"];
    let row = |body: &str, app: &str| {
        body.lines()
            .find(|l| {
                l.starts_with("<tr><td data-label=\"App\">") && l.contains(&format!(">{app}</a>"))
            })
            .unwrap_or_else(|| panic!("no row of {app} in: {body}"))
            .to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let body = dashboard.page("/").body;
        if quiet.iter().all(|app| !row(&body, app).contains(CHECKING)) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quiet apps' states were still being checked after 30 s: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    for app in quiet {
        let row = row(&body, app);
        assert!(row.contains("in sync"), "{row}");
        assert!(row.contains("healthy"), "{row}");
    }
}

/// The value of the hidden `csrf` field in `page`'s confirm form.
fn csrf_in(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .map(|at| at + "name=\"csrf\" value=\"".len())
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_rollback_onto_an_object_another_app_owns_is_refused_on_its_page_and_by_its_post() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("web-owned");
    let n = ns.name.as_str();
    // Release 1 has ConfigMap shared; release 2 leaves it out and prunes it; then app
    // other makes a ConfigMap of the same name its own.
    let repo = GitFixture::new();
    repo.write("app/web.yaml", WEB);
    repo.write("app/shared.yaml", &config_map("shared", "from-web"));
    repo.commit("web and shared");
    sync(cluster, &repo, n);
    repo.remove("app/shared.yaml");
    repo.commit("shared is not web's any more");
    sync_app(cluster, &repo, ("app", "web"), n, &["--prune", "--yes"]);
    let other = GitFixture::new();
    other.write("other/shared.yaml", &config_map("shared", "from-other"));
    other.commit("other's shared");
    sync_app(cluster, &other, ("other", "other"), n, &["--yes"]);
    let owned_by_other = || {
        cluster.kubectl_ok(&[
            "get",
            "configmap",
            "shared",
            "-n",
            n,
            "-o",
            "jsonpath={.data.greeting} {.metadata.labels.applyset\\.kubernetes\\.io/part-of}",
        ])
    };
    let before = owned_by_other();
    assert!(before.starts_with("from-other "), "{before}");

    let dashboard = ServedDashboard::start(cluster, &["-n", n, "--allow-actions"]);
    let host = dashboard.host.as_str();
    let cookie = dashboard.cookie();
    let headers = [("Host", host), ("Cookie", cookie.as_str())];
    let owner_line = format!("ConfigMap {n}/shared belongs to app other (namespace {n})");
    let rollback_page = |rev: u32| {
        let page = request(
            host,
            "GET",
            &format!("/rollback?{}&rev={rev}", app_query(n)),
            &headers,
        );
        assert_eq!(page.status, 200, "{page:?}");
        page
    };
    // The rollback's page names the owner and offers nothing to confirm.
    let page = rollback_page(1);
    assert!(page.body.contains(&owner_line), "{}", page.body);
    assert!(page.body.contains("--adopt"), "{}", page.body);
    assert!(!page.body.contains("class=\"confirm\""), "{}", page.body);
    // A POST made anyway (with the run's CSRF token, from the page that syncs release 2
    // again) is refused by the rollback itself, naming the owner; nothing changes.
    let again = rollback_page(2);
    let csrf = csrf_in(&again.body);
    let origin = format!("http://{host}");
    let posted = request_with_body(
        host,
        "POST",
        "/rollback",
        &[("Host", host), ("Cookie", &cookie), ("Origin", &origin)],
        &format!("{}&rev=1&csrf={csrf}", app_query(n)),
    );
    assert_ne!(posted.status, 303, "{posted:?}");
    assert!(posted.body.contains(&owner_line), "{}", posted.body);
    assert_eq!(
        owned_by_other(),
        before,
        "the other app's ConfigMap was touched"
    );
    let statuses = cluster.release_statuses(n, "web");
    assert_eq!(
        statuses.len(),
        2,
        "a refused rollback recorded a release: {statuses:?}"
    );
}
