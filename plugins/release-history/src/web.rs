//! `--web`: the dashboard, served until Ctrl-C. Connecting, listening and printing the URL
//! are here; everything the pages show and every rule a request must pass are the
//! library's (`gitops::dashboard`).

use std::io::Write;

use anyhow::{Context, Result};
use gitops::dashboard::actions::Actions;
use gitops::dashboard::data::Cluster;
use gitops::dashboard::token::Token;
use gitops::dashboard::{Dashboard, bind, serve};
use gitops::live::LiveCluster;
use gitops_cli::Outcome;

use crate::Args;

/// Connects to every `--context` (or the current one), then serves the dashboard.
pub async fn run(args: &Args) -> Result<Outcome> {
    let contexts: Vec<Option<&str>> = if args.connection.contexts.is_empty() {
        vec![None]
    } else {
        args.connection
            .contexts
            .iter()
            .map(|c| Some(c.as_str()))
            .collect()
    };
    let mut clusters = Vec::new();
    for context in contexts {
        let options = args.connection.options_for(context, None);
        let connection = args.connection.connect_to(&options).await?;
        let name = connection
            .context
            .clone()
            .unwrap_or_else(|| "in-cluster".into());
        let live = LiveCluster::connect(&connection)
            .await
            .with_context(|| format!("cannot read the API server of context {name}"))?;
        clusters.push(Cluster {
            context: name,
            live,
            scope: (!args.namespaces.all).then(|| connection.namespace.clone()),
            who: connection.actor(),
        });
    }
    let (listener, address) = bind(args.web.listen()).await?;
    if !address.ip().is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {address}, not only on this machine: anyone who can reach it and gets the token reads what your kubeconfig may read"
        );
    }
    let token = Token::random()?;
    let actions = match args.web.allow_actions {
        true => Some(Actions::new()?),
        false => None,
    };
    let dashboard = Dashboard::new(clusters, token.clone(), address, actions);
    dashboard.watch().await;
    let shown = if address.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let url = format!("http://{shown}/?token={}", token.as_str());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Dashboard: {url}")?;
        if args.web.allow_actions {
            writeln!(
                out,
                "Actions allowed: an app can be rolled back or its deployed release synced again from its history page, and healed from its page."
            )?;
        }
        writeln!(out, "Press Ctrl-C to stop.")?;
        out.flush()?;
    }
    if args.web.open {
        open_browser(&url);
    }
    tokio::select! {
        () = serve(listener, dashboard) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Outcome::Clean)
}

/// Opens `url` in the user's browser; if that fails, the printed URL is still there.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(err) = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("warning: cannot open the browser with {opener}: {err}; open the URL above");
    }
}
