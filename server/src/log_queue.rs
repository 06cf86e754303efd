//! The log's way out: every line goes through a bounded queue to a thread of
//! its own that writes it to standard error, so a reader that stops reading
//! (a stalled pipe to journald, a log shipper or `| tee`) costs log lines,
//! never the server: with the queue full (8 MiB of lines), a line is
//! dropped and counted, and once lines are written again one line (logged
//! as any other, in the log's format) says how many went. Without that thread (a thread limit at start), lines are
//! written as they come, as before.
//!
//! Not `tracing-appender`: its writer thread's failure to start is a panic,
//! where the server's start reports thread limits in words.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Most bytes of lines waiting to be written.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// Most lines waiting (a bound for the channel; the bytes bind first).
const MAX_QUEUED_LINES: usize = 65_536;

/// What the queue's ends share.
#[derive(Debug, Default)]
struct Counts {
    /// Bytes of lines queued, not yet written.
    queued: AtomicUsize,
    /// Lines dropped since the last report of them.
    dropped: AtomicU64,
}

/// Where log lines go: the queue, or (without its thread) straight out.
#[derive(Clone)]
pub struct LogQueue {
    sender: Option<SyncSender<Vec<u8>>>,
    counts: Arc<Counts>,
    direct: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for LogQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogQueue")
            .field("threaded", &self.sender.is_some())
            .field("counts", &self.counts)
            .finish()
    }
}

/// Waits, when dropped, for the lines queued to be written (at most
/// [`Guard::WAIT`]: a reader that never reads does not hold the exit).
#[derive(Debug)]
pub struct Guard {
    counts: Arc<Counts>,
}

impl Guard {
    /// The longest an exit waits for its last lines.
    pub const WAIT: Duration = Duration::from_secs(2);

    /// Waits for the queue to empty, at most `wait`; whether it did.
    pub fn flush(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while self.counts.queued.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.flush(Self::WAIT);
    }
}

impl LogQueue {
    /// A queue writing to `sink` on a thread of its own (or, when that
    /// thread cannot start, to `sink` directly), which calls `report` with
    /// the number of lines dropped once it caught up after dropping some;
    /// and the guard to keep until exit.
    pub fn start(sink: impl Write + Send + 'static, report: fn(u64)) -> (LogQueue, Guard) {
        let counts = Arc::new(Counts::default());
        let sink: Arc<Mutex<Box<dyn Write + Send>>> = Arc::new(Mutex::new(Box::new(sink)));
        let (sender, receiver) = sync_channel(MAX_QUEUED_LINES);
        let writing = {
            let (counts, sink) = (counts.clone(), sink.clone());
            std::thread::Builder::new()
                .name("myna-log".into())
                .spawn(move || write_lines(&receiver, &counts, &sink, report))
        };
        let queue = LogQueue {
            sender: writing.is_ok().then_some(sender),
            counts: counts.clone(),
            direct: sink,
        };
        (queue, Guard { counts })
    }

    /// Queues one line (written directly without the thread).
    fn send(&self, line: Vec<u8>) {
        let Some(sender) = &self.sender else {
            let mut sink = self.direct.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = sink.write_all(&line);
            return;
        };
        let size = line.len();
        if self.counts.queued.fetch_add(size, Ordering::AcqRel) + size > MAX_QUEUED_BYTES {
            self.counts.queued.fetch_sub(size, Ordering::AcqRel);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(line) {
            self.counts.queued.fetch_sub(size, Ordering::AcqRel);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped and not reported yet.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }
}

/// The writing thread: each line in turn (an error loses that line only);
/// once the queue is empty after drops, `report` of how many.
fn write_lines(
    receiver: &Receiver<Vec<u8>>,
    counts: &Counts,
    sink: &Mutex<Box<dyn Write + Send>>,
    report: fn(u64),
) {
    while let Ok(line) = receiver.recv() {
        {
            let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = sink.write_all(&line);
            let _ = sink.flush();
        }
        let caught_up = counts.queued.fetch_sub(line.len(), Ordering::AcqRel) == line.len();
        if caught_up {
            let dropped = counts.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                report(dropped);
            }
        }
    }
}

/// The report of lines dropped, in the log as any line.
fn log_dropped(dropped: u64) {
    tracing::warn!(
        dropped,
        "{dropped} log lines dropped: standard error was not read fast enough (more than {} \
         MiB waiting)",
        MAX_QUEUED_BYTES / (1024 * 1024)
    );
}

/// The process's log queue's guard, once [`install`]ed.
static INSTALLED: std::sync::OnceLock<Guard> = std::sync::OnceLock::new();

/// The queue to standard error for the process's log (its guard kept for
/// [`flush_before_exit`]).
pub fn install() -> LogQueue {
    let (queue, guard) = LogQueue::start(std::io::stderr(), log_dropped);
    let _ = INSTALLED.set(guard);
    queue
}

/// Writes what the log holds, waiting at most [`Guard::WAIT`]: before the
/// process exits (`std::process::exit` runs no destructor).
pub fn flush_before_exit() {
    if let Some(guard) = INSTALLED.get() {
        guard.flush(Guard::WAIT);
    }
}

/// One log line being formatted: queued whole when the formatter is done.
#[derive(Debug)]
pub struct LineWriter {
    line: Vec<u8>,
    queue: LogQueue,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.queue.send(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LogQueue {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            line: Vec::new(),
            queue: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that blocks every write until `open` is set, recording what
    /// it wrote.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<std::sync::atomic::AtomicBool>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            while !self.open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines reported dropped (by the tests' `report`).
    static REPORTED: AtomicU64 = AtomicU64::new(0);

    fn reported(dropped: u64) {
        REPORTED.fetch_add(dropped, Ordering::Relaxed);
    }

    impl Gate {
        /// What it wrote so far.
        fn text(&self) -> String {
            let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&written).into_owned()
        }
    }

    fn log(queue: &LogQueue, line: &str) {
        let mut writer = queue.make_writer();
        let _ = writer.write_all(line.as_bytes());
    }

    #[test]
    fn a_reader_that_stops_reading_costs_lines_never_the_caller() {
        let gate = Gate::default();
        let (queue, guard) = LogQueue::start(gate.clone(), reported);
        let line = format!("{}\n", "x".repeat(1023));
        let started = Instant::now();
        // 16 MiB of lines while nothing is read: none of them waits.
        for _ in 0..16 * 1024 {
            log(&queue, &line);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never blocked for good"
        );
        let dropped = queue.dropped();
        assert!(dropped >= 8 * 1024 - 1, "about half dropped: {dropped}");
        assert!(!guard.flush(Duration::from_millis(50)), "still held");
        // The reader reads again: what was queued comes out, then the count.
        gate.open.store(true, Ordering::Release);
        assert!(guard.flush(Duration::from_secs(10)));
        log(&queue, "after\n");
        assert!(guard.flush(Duration::from_secs(10)));
        let text = gate.text();
        let kept = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(kept + dropped, 16 * 1024, "each line written or counted");
        assert_eq!(REPORTED.load(Ordering::Relaxed), dropped, "told");
        assert!(text.ends_with("after\n"));
    }

    #[test]
    fn lines_are_written_whole_in_order() {
        let gate = Gate::default();
        gate.open.store(true, Ordering::Release);
        let (queue, guard) = LogQueue::start(gate.clone(), |_| {});
        for i in 0..1_000 {
            let mut writer = queue.make_writer();
            let _ = write!(writer, "line ");
            let _ = writeln!(writer, "{i}");
        }
        drop(guard);
        let text = gate.text();
        let expected: String = (0..1_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        assert_eq!(queue.dropped(), 0);
    }
}
