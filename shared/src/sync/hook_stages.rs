//! A sync's hooks, stage by stage: each weight of a stage at once, the next when every
//! hook of the one before it succeeded; each run reported and kept for the record.

use super::{SyncError, SyncEvent};
use crate::hooks::{self, run::Runner};
use crate::objects::hook::{Hook, Stage};
use crate::release::record::HookRun;

/// The hooks of a sync (or an uninstall) and how to run them; absent when none runs.
pub(super) struct HookStages<'a> {
    pub hooks: &'a [Hook],
    pub runner: Runner<'a>,
}

/// Why a stage stopped.
pub(super) enum HookStop {
    /// A hook failed, timed out or could not be created.
    Failed(SyncError),
    /// The caller's cancel stopped a hook: the caller says how far it got.
    Interrupted,
}

impl HookStop {
    /// The error to return: a failure as it is, an interruption as `interrupted` says.
    pub fn into_error(self, interrupted: impl FnOnce() -> SyncError) -> SyncError {
        match self {
            HookStop::Failed(error) => error,
            HookStop::Interrupted => interrupted(),
        }
    }
}

impl HookStages<'_> {
    /// Runs the hooks of `stage`, weight by weight, adding each run to `runs`: stops at
    /// the first weight with a hook that did not succeed (the later weights do not run).
    pub async fn run(
        &self,
        stage: Stage,
        runs: &mut Vec<HookRun>,
        events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> Result<(), HookStop> {
        for (weight, group) in hooks::for_stage(self.hooks, stage, self.runner.occasion) {
            self.run_group(stage, weight, &group, runs, events).await?;
        }
        Ok(())
    }

    /// Runs one weight's `group` at once.
    pub async fn run_group(
        &self,
        stage: Stage,
        weight: i64,
        group: &[&Hook],
        runs: &mut Vec<HookRun>,
        events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> Result<(), HookStop> {
        events(SyncEvent::Hooks {
            stage,
            weight,
            count: group.len(),
        });
        let ran = self.runner.run_group(stage, group).await;
        for run in &ran {
            events(SyncEvent::HookFinished { run });
        }
        let failed = ran.iter().find(|r| r.result != "succeeded").cloned();
        let stopped = ran.iter().any(|r| r.result == "interrupted");
        runs.extend(ran);
        if stopped {
            return Err(HookStop::Interrupted);
        }
        match failed {
            None => Ok(()),
            Some(run) => Err(HookStop::Failed(SyncError::HookFailed {
                stage,
                hook: run.key.to_string(),
                result: run.result.replace('-', " "),
                message: run.message.unwrap_or_else(|| "stopped".into()),
            })),
        }
    }
}
