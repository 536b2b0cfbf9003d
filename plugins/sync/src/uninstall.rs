//! `--uninstall`: one app's PreDelete hooks, its objects deleted, its PostDelete hooks, its
//! last release recorded as `uninstalled`; the preview first, and a question on a terminal.

use std::io::{IsTerminal, Write};

use anyhow::{Result, bail};
use gitops::hooks;
use gitops::objects::hook::Occasion;
use gitops::sync::flow;
use gitops::sync::uninstall::UninstallOptions;
use gitops_cli::{JsonFormat, Outcome, interrupt};

use crate::once::{ask, print_record};
use crate::session::Session;
use crate::{Args, progress};

pub async fn run(args: &Args, session: &Session) -> Result<Outcome> {
    let Some(app) = args.app.name.clone() else {
        bail!("--uninstall needs the app's name: --app NAME");
    };
    if args.source.revision.is_some() || args.source.path.is_some() {
        bail!("--uninstall takes no revision or path: the app's objects are found in the cluster");
    }
    let connection = &session.connection;
    let options = UninstallOptions {
        prune_crds: args.prune_crds.for_app(None),
        prune_cascade: args.prune_cascade,
        no_hooks: args.no_hooks,
        purge: args.purge,
        timeout: args.change.timeout_for(None),
        who: connection.actor(),
    };
    let locked = flow::lock(
        &session.cluster,
        &connection.namespace,
        &app,
        &connection.actor(),
        args.change.lock_duration,
    )
    .await?;
    let planned = locked
        .plan_uninstall(
            &session.cluster,
            &session.store,
            &app,
            options,
            &session.cancel,
        )
        .await
        .map_err(interrupt::sync_error)?;
    let plan = &planned.plan;
    let deletes = plan.delete_count();
    {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "uninstall of app {app} in namespace {}:",
            connection.namespace
        )?;
        for line in plan.preview_lines() {
            writeln!(err, "  {line}")?;
        }
        let hooks = hooks::planned(&plan.hooks, Occasion::Uninstall);
        gitops_cli::diff_view::hook_lines(&mut err, "hooks:", &hooks)?;
    }
    if args.dry_run {
        planned.stop().await?;
        return Ok(if deletes == 0 {
            Outcome::Clean
        } else {
            Outcome::Differences
        });
    }
    let prompts = !args.yes && std::io::stdin().is_terminal();
    let question = format!("Uninstall app {app}, deleting {deletes} object(s)?");
    if prompts && !ask(&question, &session.cancel).await? {
        eprintln!("nothing deleted");
        planned.stop().await?;
        return Ok(Outcome::Clean);
    }
    let mut display = progress::Display::new(None);
    let (record, result) = planned
        .execute(
            &session.cluster,
            &session.store,
            &session.cancel,
            &mut |event| display.event(event),
        )
        .await;
    display.finish();
    if let Some(record) = &record {
        print_record(args, &mut std::io::stdout(), record, true)?;
        if args.purge && result.is_ok() && args.output.format != Some(JsonFormat::Json) {
            eprintln!("release records of app {app} deleted (--purge)");
        }
    }
    result.map_err(interrupt::sync_error)?;
    Ok(Outcome::Clean)
}
