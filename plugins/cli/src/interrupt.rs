//! Ctrl-C (SIGINT) and SIGTERM for the commands that change the cluster. The first asks
//! what runs to stop: a sync starts no new write, lets the requests in flight finish,
//! finishes its release record as failed and gives its lock up, and the run exits 130. A
//! second exits at once, with 130 and no cleanup. The library only sees a
//! [`Cancel`]; printing and the signals are the plugins'.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use gitops::cancel::Cancel;
use gitops::drift::DriftError;
use gitops::sync::SyncError;

/// The exit status of an interrupted run, as a shell's for SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Takes over SIGINT and SIGTERM for the rest of the process (once; later calls return
/// the same handle), and returns the handle they cancel. Needs a tokio runtime.
pub fn install() -> Cancel {
    static CANCEL: OnceLock<Cancel> = OnceLock::new();
    CANCEL
        .get_or_init(|| {
            let cancel = Cancel::new();
            let handle = cancel.clone();
            tokio::spawn(async move {
                let mut signals = Signals::new();
                if !signals.next().await {
                    return;
                }
                eprintln!(
                    "interrupted: finishing the requests in flight, then stopping (interrupt again to stop at once)"
                );
                handle.cancel();
                if !signals.next().await {
                    return;
                }
                eprintln!(
                    "interrupted again: stopping at once; a lock left behind is taken over by the next sync on this host"
                );
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
            cancel
        })
        .clone()
}

/// Waits `interval`, or less if the run is interrupted first (a `--watch` between rounds).
pub async fn sleep(cancel: &Cancel, interval: Duration) {
    tokio::select! {
        () = tokio::time::sleep(interval) => {}
        () = cancel.cancelled() => {}
    }
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Signals {
        Signals {}
    }

    /// The next signal; false if none can come (the handlers could not be installed).
    #[cfg(unix)]
    async fn next(&mut self) -> bool {
        async fn one(signal: &mut Option<tokio::signal::unix::Signal>) -> bool {
            match signal {
                Some(signal) => signal.recv().await.is_some(),
                None => std::future::pending().await,
            }
        }
        if self.interrupt.is_none() && self.terminate.is_none() {
            return false;
        }
        tokio::select! {
            got = one(&mut self.interrupt) => got,
            got = one(&mut self.terminate) => got,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> bool {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// An error that ends the run because it was interrupted: printed as any error, exit 130.
#[derive(Debug)]
pub struct Interrupted {
    message: String,
}

impl Interrupted {
    pub fn new(message: impl Into<String>) -> Interrupted {
        Interrupted {
            message: message.into(),
        }
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}

/// A sync's error for `main`: an interruption exits 130, anything else as before.
pub fn sync_error(error: SyncError) -> anyhow::Error {
    if error.is_interrupted() {
        Interrupted::new(error.to_string()).into()
    } else {
        error.into()
    }
}

/// [`sync_error`] for a drift check or heal.
pub fn drift_error(error: DriftError) -> anyhow::Error {
    match error {
        DriftError::Sync(sync) if sync.is_interrupted() => {
            Interrupted::new(sync.to_string()).into()
        }
        other => other.into(),
    }
}

/// Whether `error` ends the run as interrupted.
pub fn is_interrupted(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Interrupted>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_under_context_is_still_one() {
        let error = sync_error(SyncError::InterruptedBeforeWriting).context("healing app a");
        assert!(is_interrupted(&error));
        let other = anyhow::anyhow!("refused");
        assert!(!is_interrupted(&other));
    }
}
