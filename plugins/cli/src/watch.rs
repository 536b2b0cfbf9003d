//! What the `--watch` loops share: Ctrl-C that stops between rounds, never during one;
//! timestamps for log lines; fetching the repository before each round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Set by Ctrl-C. Owning the signal is what keeps Ctrl-C from killing a sync or heal
/// half-way: the loop checks [`StopSignal::stopped`] between rounds.
#[derive(Clone)]
pub struct StopSignal {
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl StopSignal {
    /// Takes over Ctrl-C (SIGINT) for the rest of the process.
    pub fn on_ctrl_c() -> StopSignal {
        let signal = StopSignal {
            stop: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        };
        let handle = signal.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                handle.stop.store(true, Ordering::SeqCst);
                handle.wake.notify_one();
            }
        });
        signal
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits `interval`, or less if Ctrl-C comes first.
    pub async fn sleep(&self, interval: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = self.wake.notified() => {}
        }
    }
}

/// `2026-11-25T01:02:03Z`, for log lines.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `git fetch --all` in a checkout with remotes, so `origin/main` moves. A `--repo URL` is
/// fetched whenever it is opened, so nothing is done for it. Returns what went wrong, for
/// the caller to log; the local state is used then.
pub fn fetch(repo: Option<&str>) -> Result<(), String> {
    let dir = match repo {
        Some(repo) if repo.contains("://") => return Ok(()),
        Some(repo) => repo,
        None => ".",
    };
    let remotes = std::process::Command::new("git")
        .args(["-C", dir, "remote"])
        .output();
    if !remotes.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
        return Ok(());
    }
    match std::process::Command::new("git")
        .args(["-C", dir, "fetch", "--quiet", "--all"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "git fetch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => Err(format!("git fetch failed: {error}")),
    }
}
