//! The transcript (stdout): what was said, written by a thread of its own.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::outbox::{Outbox, Refused, lock};
use super::{MEMBER_STACK, WRITE_BATCH};
use crate::addr::describe_io;
use crate::output::{Log, Output, Timestamps};
use crate::shutdown::Shutdown;

/// The room's stdout, written by a thread of its own through a bounded queue:
/// a server whose terminal is paused (Ctrl-S) or piped into a stalled program
/// must not freeze the room any more than a stalled member may. When stdout
/// falls behind, transcript lines are dropped (with one warning), never messages.
pub(super) struct Transcript {
    outbox: Arc<Outbox>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
    log: Log,
    stamps: Option<Timestamps>,
}

impl Transcript {
    pub(super) fn start(
        out: Output,
        log: Log,
        shutdown: Shutdown,
        limit: usize,
    ) -> io::Result<Transcript> {
        let outbox = Arc::new(Outbox::new(limit));
        let q = outbox.clone();
        let warn = log.clone();
        let thread = thread::Builder::new()
            .name("transcript".into())
            .stack_size(MEMBER_STACK)
            .spawn(move || {
                let mut batch = Vec::new();
                while q.next_batch(&mut batch, WRITE_BATCH) {
                    if let Err(e) = out.write(&batch) {
                        // `chat room | head`: nobody reads the transcript any more;
                        // stop, as every tool does on a broken pipe.
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            shutdown.trigger();
                        } else {
                            warn.warn(format_args!(
                                "cannot write the transcript: {}",
                                describe_io(&e)
                            ));
                        }
                        q.abort();
                    }
                    batch.clear();
                }
            })?;
        Ok(Transcript {
            outbox,
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
            log,
            stamps: None,
        })
    }

    pub(super) fn with_timestamps(mut self, stamps: Option<Timestamps>) -> Self {
        self.stamps = stamps;
        self
    }

    pub(super) fn push(&self, mut line: Vec<u8>) {
        if let Some(stamps) = &self.stamps {
            line.splice(0..0, format!("{} ", stamps.now()).into_bytes());
        }
        if self.outbox.push(line.into()) == Err(Refused::Full)
            && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
        {
            self.log.warn(format_args!(
                "stdout is not keeping up: dropping transcript lines (the room goes on)"
            ));
        }
    }

    /// Flush what is queued until `deadline`; a stdout that accepts nothing is
    /// left behind (its thread is not waited for).
    pub(super) fn finish(&self, deadline: Instant) {
        self.outbox.close();
        let Some(t) = lock(&self.thread).take() else {
            return;
        };
        while !t.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            self.log
                .warn(format_args!("{dropped} transcript lines were dropped"));
        }
    }
}
