use std::future::Future;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::completion::{self, FirstPositional};
use crate::interrupt::{EXIT_INTERRUPTED, is_interrupted};

/// A plugin's whole `main`: completion requests first, then the flags, then `body` on a
/// tokio runtime, its result turned into kubectl's exit codes by [`run`].
pub fn main<A, F, Fut>(bin_name: &str, first: FirstPositional, body: F) -> ExitCode
where
    A: Parser,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    if let Some(code) = completion::intercept::<A>(bin_name, first) {
        return code;
    }
    let args = A::parse();
    no_huge_pages();
    run(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(body(args))
    })
}

/// Keeps the kernel from backing the allocator's memory with transparent huge pages: the
/// allocator asks for them, and a plugin run is too short to gain from them, while zeroing
/// each 2 MiB page on first touch took a third of a no-op sync's CPU time. Best effort: a
/// kernel without the setting leaves things as they were.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// How a plugin run ended, in `kubectl diff`'s terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing differs, or the command did what was asked: exit 0.
    Clean,
    /// Differences were found: exit 1.
    Differences,
}

/// Runs a plugin's body and turns its result into kubectl's exit codes: 0 and 1 from the
/// outcome, 2 for any error, 130 for an [`Interrupted`](crate::interrupt::Interrupted)
/// one. The error is printed once, its causes on one line each. A closed stdout
/// (`kubectl diff-git | head`) ends the run quietly with 0.
pub fn run(body: impl FnOnce() -> anyhow::Result<Outcome>) -> ExitCode {
    match body() {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Differences) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let mut stderr = io::stderr().lock();
            for (i, line) in messages(&err).iter().enumerate() {
                let _ = match i {
                    0 => writeln!(stderr, "error: {line}"),
                    _ => writeln!(stderr, "  caused by: {line}"),
                };
            }
            if is_interrupted(&err) {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let kind = match e.downcast_ref::<io::Error>() {
            Some(io) => Some(io.kind()),
            // JSON written straight to stdout fails as a serde_json error.
            None => e
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

/// An error's message and its causes', leaving out a cause the message before it already
/// says word for word (errors that print their source as part of their own message).
pub fn messages(err: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if lines
            .last()
            .is_some_and(|previous| previous.contains(&text))
        {
            continue;
        }
        lines.push(text);
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner reason")]
    struct Inner;

    #[test]
    fn a_closed_pipe_under_json_is_a_closed_pipe() {
        let closed = io::Error::from(io::ErrorKind::BrokenPipe);
        let json = serde_json::Error::io(closed);
        assert!(is_broken_pipe(
            &anyhow::Error::new(json).context("printing")
        ));
        let other = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!is_broken_pipe(&anyhow::Error::new(other)));
    }

    #[test]
    fn a_cause_the_message_already_says_is_left_out() {
        let err = anyhow::Error::new(Outer(Inner)).context("while syncing");
        assert_eq!(messages(&err), ["while syncing", "outer: inner reason"]);
        let err = anyhow::anyhow!("plain");
        assert_eq!(messages(&err), ["plain"]);
    }
}
