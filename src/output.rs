//! Where a tool's words go: data to stdout ([`Output`]), everything else to stderr ([`Log`]).
//!
//! Keeping the two apart is what lets `tcp-server --raw > file` or
//! `tcp-client … | grep` work: logs never end up inside the data. Both are shared
//! by every connection thread, so each write happens under a lock and whole lines
//! never interleave. Library code writes through these handles instead of
//! printing, so tests can capture what a server said into memory.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

fn lock(sink: &Sink) -> MutexGuard<'_, Box<dyn Write + Send>> {
    sink.lock().unwrap_or_else(|e| e.into_inner())
}

/// How much a tool says on stderr (`-q` / default / `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `-q`: only errors and the `listening on` line.
    Quiet,
    /// Connections, summaries and warnings.
    #[default]
    Normal,
    /// `-v`: also every read and write with its byte count (lesson 05).
    Verbose,
}

/// The stderr log, shared by all threads.
#[derive(Clone)]
pub struct Log {
    sink: Sink,
    level: Verbosity,
}

impl Log {
    /// Log to the process's stderr.
    pub fn stderr(level: Verbosity) -> Self {
        Self::to_writer(io::stderr(), level)
    }

    /// Log into any writer (tests use [`SharedBuf`]).
    pub fn to_writer(w: impl Write + Send + 'static, level: Verbosity) -> Self {
        Log {
            sink: Arc::new(Mutex::new(Box::new(w))),
            level,
        }
    }

    fn line(&self, args: fmt::Arguments<'_>) {
        let mut sink = lock(&self.sink);
        // A log line that cannot be written (stderr closed) is not worth dying for.
        let _ = writeln!(sink, "{args}");
        let _ = sink.flush();
    }

    /// Said whatever the verbosity: `listening on …`, errors.
    pub fn always(&self, args: fmt::Arguments<'_>) {
        self.line(args)
    }

    /// Connections, disconnections, summaries.
    pub fn info(&self, args: fmt::Arguments<'_>) {
        if self.level >= Verbosity::Normal {
            self.line(args)
        }
    }

    /// Something the user should know about, prefixed `warning: `.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        if self.level >= Verbosity::Normal {
            self.line(format_args!("warning: {args}"))
        }
    }

    /// Only with `-v`.
    pub fn verbose(&self, args: fmt::Arguments<'_>) {
        if self.is_verbose() {
            self.line(args)
        }
    }

    /// Is `-v` on? (Lets callers skip formatting work.)
    pub fn is_verbose(&self) -> bool {
        self.level >= Verbosity::Verbose
    }
}

/// The data stream (stdout), shared by all threads. Every write is flushed, so a
/// reader on the other end of a pipe sees each message as it arrives.
#[derive(Clone)]
pub struct Output {
    sink: Sink,
}

impl Output {
    /// Write to the process's stdout.
    pub fn stdout() -> Self {
        Self::to_writer(io::stdout())
    }

    /// Write into any writer.
    pub fn to_writer(w: impl Write + Send + 'static) -> Self {
        Output {
            sink: Arc::new(Mutex::new(Box::new(w))),
        }
    }

    /// Write one whole message and flush it.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut sink = lock(&self.sink);
        sink.write_all(bytes)?;
        sink.flush()
    }
}

/// The data stream could not be written (a full disk under `> file`, a closed
/// pipe under `| head`). A server that went on would lose everything that
/// arrives from then on without a word, so it stops with this error instead.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] pub io::Error);

impl StdoutError {
    /// As an `io::Error` of the same kind, so a broken pipe is still
    /// recognised as one ([`crate::cli::report`] exits 0 quietly then).
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.0.kind(), self)
    }
}

/// An in-memory writer whose clones share one buffer: hand one clone to a
/// [`Log`] or [`Output`], keep the other to read what was written.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything written so far, as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_lines() {
        let buf = SharedBuf::new();
        let log = Log::to_writer(buf.clone(), Verbosity::Quiet);
        log.info(format_args!("hidden"));
        log.warn(format_args!("hidden too"));
        log.always(format_args!("listening on 127.0.0.1:1"));
        assert_eq!(buf.text(), "listening on 127.0.0.1:1\n");

        let buf = SharedBuf::new();
        let log = Log::to_writer(buf.clone(), Verbosity::Normal);
        log.verbose(format_args!("hidden"));
        log.warn(format_args!("odd bytes"));
        assert_eq!(buf.text(), "warning: odd bytes\n");
        assert!(!log.is_verbose());
    }

    #[test]
    fn output_writes_whole_messages() {
        let buf = SharedBuf::new();
        let out = Output::to_writer(buf.clone());
        out.write(b"[a] x\n").unwrap();
        out.write(b"").unwrap();
        assert_eq!(buf.bytes(), b"[a] x\n");
    }
}
