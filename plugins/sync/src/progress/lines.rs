//! Progress lines written by a thread of their own, so that the work never waits for
//! stderr.
//!
//! A sync reports every object as it is applied. Written in place, each line waits for
//! stderr, and a reader that is slow, or reads only once the command has ended (a pipe
//! holds 64 KiB, ~1,500 lines), stalls the applies while the app's lock is kept renewed.
//! Here a line is handed to a writer thread through a bounded queue instead. When the queue
//! is full the line is dropped and counted, and the next line written says how many were
//! not shown: the work goes on at its own pace and memory stays bounded however many
//! objects a sync has (tracing-appender's non-blocking writer makes the same choice). The
//! lines are a view of the work, not its result: the release record and the summary
//! printed at the end hold every object's outcome.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

/// Lines the queue holds: a sync's lines come as fast as the server answers applies,
/// far slower than a reader that keeps up takes them, and 8,192 of them can wait for a
/// reader that does not; at ~100 bytes a line, under 1 MiB waiting at most.
pub const CAPACITY: usize = 8192;

struct Entry {
    /// Lines dropped just before this one, the queue being full.
    dropped_before: usize,
    line: String,
}

/// The sending side; [`Lines::finish`] (or dropping it) waits for the queued lines.
pub struct Lines {
    sender: Option<SyncSender<Entry>>,
    writer: Option<JoinHandle<()>>,
    dropped: usize,
}

impl Lines {
    /// Starts the writer thread; `write` writes one line (errors are the writer's to ignore:
    /// a closed stderr must not fail the sync).
    pub fn spawn<F>(capacity: usize, write: F) -> Lines
    where
        F: FnMut(&str) + Send + 'static,
    {
        let (sender, receiver) = sync_channel(capacity);
        let writer = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || write_all(&receiver, write))
            .ok();
        Lines {
            // Without a thread (it could not be started) lines are dropped, never blocking.
            sender: writer.is_some().then_some(sender),
            writer,
            dropped: 0,
        }
    }

    /// Queues a line, never waiting: with the queue full, it is counted and dropped.
    pub fn send(&mut self, line: String) {
        let Some(sender) = &self.sender else {
            self.dropped += 1;
            return;
        };
        let entry = Entry {
            dropped_before: self.dropped,
            line,
        };
        match sender.try_send(entry) {
            Ok(()) => self.dropped = 0,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// Lines dropped since the last one queued.
    #[cfg(test)]
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Once the work is done: says how many of the last lines were dropped, and waits until
    /// the writer has written everything queued, so that what is printed next follows it.
    pub fn finish(&mut self) {
        if let Some(sender) = self.sender.take()
            && self.dropped > 0
        {
            // The work is over: waiting for room is fine now.
            let _ = sender.send(Entry {
                dropped_before: self.dropped,
                line: String::new(),
            });
            self.dropped = 0;
        }
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_all<F: FnMut(&str)>(receiver: &Receiver<Entry>, mut write: F) {
    for entry in receiver {
        if entry.dropped_before > 0 {
            write(&not_shown(entry.dropped_before));
        }
        if !entry.line.is_empty() {
            write(&entry.line);
        }
    }
}

fn not_shown(count: usize) -> String {
    format!(
        "({count} progress line{} not shown: stderr was not being read fast enough)",
        if count == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A writer that blocks until `gate` opens, as a pipe nobody reads does, collecting
    /// what it writes; `entered` says when it has taken its first line.
    struct Gated {
        gate: std::sync::mpsc::Sender<()>,
        entered: std::sync::mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<String>>>,
    }

    fn gated() -> (impl FnMut(&str) + Send + 'static, Gated) {
        let (open, gate) = channel::<()>();
        let (enter, entered) = channel::<()>();
        let written = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&written);
        let mut opened = false;
        let write = move |line: &str| {
            if !opened {
                let _ = enter.send(());
                let _ = gate.recv();
                opened = true;
            }
            collected.lock().unwrap().push(line.to_string());
        };
        let handle = Gated {
            gate: open,
            entered,
            written,
        };
        (write, handle)
    }

    fn count_in(note: &str) -> usize {
        note.trim_start_matches('(')
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_writer_that_never_returns_does_not_hold_the_sender_up() {
        let (write, gated) = gated();
        let mut lines = Lines::spawn(16, write);
        lines.send("line 0".into());
        gated.entered.recv().unwrap();
        let started = Instant::now();
        for i in 1..100_000 {
            lines.send(format!("configmap/ns/object-{i} created"));
        }
        let elapsed = started.elapsed();
        let dropped = lines.dropped();
        // Not finished (the gate never opens, finishing would wait for ever): the writer
        // thread is left behind.
        std::mem::forget(lines);
        std::mem::forget(gated);
        // 100,000 lines against a writer stuck on its first: sent at once, never waiting.
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
        // The writer holds the first, the queue the next 16: the rest were dropped.
        assert_eq!(dropped, 100_000 - 17);
    }

    #[test]
    fn dropped_lines_are_counted_where_they_were_dropped_and_the_rest_is_written_in_order() {
        let (write, gated) = gated();
        let mut lines = Lines::spawn(4, write);
        // The writer takes line 0 and blocks on it; 1-4 fill the queue; 5-9 are dropped.
        lines.send("line 0".into());
        gated.entered.recv().unwrap();
        for i in 1..10 {
            lines.send(format!("line {i}"));
        }
        assert_eq!(lines.dropped(), 5);
        gated.gate.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while gated.written.lock().unwrap().len() < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        lines.send("line 10".into());
        lines.finish();
        let written = gated.written.lock().unwrap().clone();
        assert_eq!(
            written,
            [
                "line 0",
                "line 1",
                "line 2",
                "line 3",
                "line 4",
                "(5 progress lines not shown: stderr was not being read fast enough)",
                "line 10"
            ]
        );
    }

    #[test]
    fn lines_dropped_at_the_end_are_counted_when_it_finishes() {
        let (write, gated) = gated();
        let mut lines = Lines::spawn(2, write);
        for i in 0..50 {
            lines.send(format!("line {i}"));
        }
        assert!(lines.dropped() > 0);
        gated.gate.send(()).unwrap();
        lines.finish();
        let written = gated.written.lock().unwrap().clone();
        let last = written.last().unwrap();
        assert!(last.contains("not shown"), "{written:?}");
        // Every line is accounted for: written, or counted.
        assert_eq!(written.len() - 1 + count_in(last), 50, "{written:?}");
    }

    #[test]
    fn a_writer_that_keeps_up_loses_nothing() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&written);
        let mut lines = Lines::spawn(CAPACITY, move |line: &str| {
            collected.lock().unwrap().push(line.to_string())
        });
        // As many as the queue holds, sent faster than any writer writes them.
        for i in 0..CAPACITY {
            lines.send(format!("line {i}"));
        }
        lines.finish();
        let written = written.lock().unwrap();
        assert_eq!(written.len(), CAPACITY);
        assert_eq!(written[CAPACITY - 1], format!("line {}", CAPACITY - 1));
    }
}
