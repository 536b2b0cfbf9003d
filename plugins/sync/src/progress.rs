//! What a sync is doing, as it happens: a spinner line on a terminal, plain lines
//! otherwise. All on stderr, so stdout keeps the result; lines are written by a thread of
//! their own ([`lines`]), so a slow stderr never holds the work up.

mod lines;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use gitops::apply::health::Health;
use gitops::sync::SyncEvent;
use indicatif::{ProgressBar, ProgressStyle};

use self::lines::Lines;

/// Set once by the reconciler, whose log is one JSON line per event: no progress lines.
static SILENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// No progress lines from here on.
pub fn silence() {
    SILENT.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub struct Display {
    bar: Option<ProgressBar>,
    /// Names the destination on each line when several sync at once (no spinner then).
    prefix: Option<String>,
    lines: Lines,
}

impl Display {
    pub fn new(prefix: Option<&str>) -> Display {
        let bar = (prefix.is_none() && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let lines = match &bar {
            Some(bar) => {
                let bar = bar.clone();
                Lines::spawn(lines::CAPACITY, move |line: &str| bar.println(line))
            }
            None if SILENT.load(std::sync::atomic::Ordering::Relaxed) => {
                Lines::spawn(lines::CAPACITY, |_: &str| {})
            }
            None => Lines::spawn(lines::CAPACITY, |line: &str| {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }),
        };
        Display {
            bar,
            prefix: prefix.map(str::to_string),
            lines,
        }
    }

    fn line(&mut self, text: String) {
        let text = match &self.prefix {
            Some(prefix) => format!("{prefix} {text}"),
            None => text,
        };
        self.lines.send(text);
    }

    fn status(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    pub fn event(&mut self, event: SyncEvent<'_>) {
        match event {
            // The sync prints it when it takes the lock; a heal reports it as an event.
            SyncEvent::LockTakenOver { .. } => {}
            SyncEvent::Recorded { revision } => self.line(format!("release {revision}: pending")),
            SyncEvent::Phase { name, wave, count } => {
                let wave = if wave == 0 {
                    String::new()
                } else {
                    format!(" (wave {wave})")
                };
                self.status(format!("applying {count} {name} object(s){wave}"));
            }
            SyncEvent::Applied { key, action } => self.line(format!("{key} {action}")),
            SyncEvent::ApplyFailed { key, message } => {
                self.line(format!("{key} failed: {message}"))
            }
            SyncEvent::Pruned { key } => self.line(format!("{key} pruned")),
            SyncEvent::Undone { key } => self.line(format!("{key} deleted again")),
            SyncEvent::Waiting { count, timeout } => {
                let text = format!(
                    "waiting up to {} for {count} object(s) to be healthy",
                    humantime::format_duration(timeout)
                );
                match &self.bar {
                    Some(_) => self.status(text),
                    None => self.line(text),
                }
            }
            SyncEvent::WaveWaiting { wave, count } => self.line(format!(
                "wave {wave}: waiting for {count} object(s) to be healthy before the next wave"
            )),
            SyncEvent::Hooks {
                stage,
                weight,
                count,
            } => self.line(format!("{stage} hooks: running {count} (weight {weight})")),
            SyncEvent::HookFinished { run } => {
                let took = humantime::format_duration(std::time::Duration::from_millis(
                    run.duration_ms / 100 * 100,
                ));
                let message = run
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let deleted = if run.deleted { ", deleted" } else { "" };
                self.line(format!(
                    "{} hook {} {} in {took}{deleted}{message}",
                    run.stage, run.key, run.result
                ))
            }
            SyncEvent::Health { key, health } => match health {
                Health::Healthy => self.line(format!("{key} healthy")),
                other => match &self.bar {
                    Some(_) => self.status(format!("waiting: {key} {other}")),
                    None => self.line(format!("{key} {other}")),
                },
            },
        }
    }

    pub fn finish(&mut self) {
        self.lines.finish();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
