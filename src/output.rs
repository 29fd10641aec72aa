//! Where a tool's words go: data to stdout ([`Output`]), everything else to stderr ([`Log`]).
//!
//! Keeping the two apart is what lets `tcp-server --raw > file` or
//! `tcp-client … | grep` work: logs never end up inside the data. Both are shared
//! by every connection thread, so each write happens under a lock and whole lines
//! never interleave. Library code writes through these handles instead of
//! printing, so tests can capture what a server said into memory.
//!
//! [`Timestamps`] is the clock of `--timestamps`: the local time each record
//! arrived, as NetAssist shows it.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    /// Log into any writer (a file, a buffer in a test).
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

/// `s` when `n` is not 1: `1 message`, `2 messages`.
pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A client's one-line summary of the replies that did not come, `no reply to 1
/// of 3 datagrams within 2 s`: one wording for tcp-client (`noun` "message") and
/// `udp-echo send` ("datagram"). `within`: how long each reply was waited for,
/// None when there was no fixed limit (a person decided when to stop).
pub(crate) fn no_reply_summary(
    missing: u64,
    sent: u64,
    noun: &str,
    within: Option<Duration>,
) -> String {
    let within = within
        .map(|w| format!(" within {} s", w.as_secs_f64()))
        .unwrap_or_default();
    format!(
        "no reply to {missing} of {sent} {noun}{}{within}",
        plural(sent)
    )
}

/// A client's warning about one message that got no reply in time, `no reply to
/// line 2 from ADDR within 2 s`; `what` (which message) is None when there is
/// only one, and then the summary at the end says it all.
pub(crate) fn no_reply_warning(what: Option<&str>, from: &str, wait: Duration) -> String {
    let what = what.map(|w| format!(" to {w}")).unwrap_or_default();
    format!("no reply{what} from {from} within {} s", wait.as_secs_f64())
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

/// Where a server's words go, the last argument but one of every `serve`: the data
/// it receives (stdout), what it does (stderr) and, for `tcp-server --stdin`, what
/// to send.
pub struct Io {
    /// What clients send, as records (stdout). The TFTP server writes files, not this.
    pub out: Output,
    /// Connections, warnings, summaries (stderr).
    pub log: Log,
    /// Lines to send to the client (`tcp-server --stdin`); other servers leave it `None`.
    pub stdin: Option<Box<dyn io::Read + Send>>,
}

impl Io {
    /// Data to `out`, logs to `log`, no input.
    pub fn new(out: Output, log: Log) -> Io {
        Io {
            out,
            log,
            stdin: None,
        }
    }

    /// The same, with `stdin` as the input.
    pub fn with_stdin(self, stdin: Box<dyn io::Read + Send>) -> Io {
        Io {
            stdin: Some(stdin),
            ..self
        }
    }
}

/// The data stream could not be written (a full disk under `> file`, a closed
/// pipe under `| head`). A server that went on would lose everything that
/// arrives from then on without a word, so it stops with this error instead.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(#[source] pub io::Error);

/// Stdout is the user's file or pipe, not their command line.
impl crate::error::Blame for StdoutError {
    fn is_usage(&self) -> bool {
        false
    }
}

/// The time of day before each record with `--timestamps` (`14:03:07.125`):
/// local time to the millisecond, as NetAssist shows it, so arrivals can be
/// compared with the clock on the wall and with a Windows classmate's screen
/// (UTC would be eight hours off in China). The time zone is read once, from
/// `TZ` or `/etc/localtime` as the C library does it (by the small tz-rs
/// crate: the C library's `localtime_r` would need `unsafe`, which this crate
/// forbids); where neither is set, the time is UTC, as `date` shows it there.
#[derive(Clone)]
pub struct Timestamps {
    zone: Arc<tz::TimeZone>,
    /// Tests: every record at this time.
    frozen: Option<SystemTime>,
}

impl fmt::Debug for Timestamps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timestamps")
            .field("frozen", &self.frozen)
            .finish_non_exhaustive()
    }
}

impl Timestamps {
    /// Local time, in the zone `TZ` names or else `/etc/localtime` says, as
    /// the C library has it: UTC when `TZ` is empty or names no zone, or when
    /// neither is there.
    pub fn local() -> Self {
        let zone = match std::env::var("TZ") {
            Ok(tz) if tz.trim().is_empty() => Ok(tz::TimeZone::utc()),
            Ok(tz) => tz::TimeZone::from_posix_tz(&tz),
            Err(_) => tz::TimeZone::local(),
        };
        Self::in_zone(zone.unwrap_or_else(|_| tz::TimeZone::utc()))
    }

    /// Time in the zone `tz` names, as `TZ` would: a POSIX string (`CST-8`
    /// is China's) or a zone name (`Asia/Shanghai`).
    pub fn zone(tz: &str) -> Result<Self, String> {
        tz::TimeZone::from_posix_tz(tz)
            .map(Self::in_zone)
            .map_err(|e| format!("invalid time zone {tz:?}: {e}"))
    }

    fn in_zone(zone: tz::TimeZone) -> Self {
        Timestamps {
            zone: Arc::new(zone),
            frozen: None,
        }
    }

    /// The same clock stopped at `at`, so that tests know what it shows.
    #[cfg(test)]
    pub(crate) fn frozen_at(mut self, at: SystemTime) -> Self {
        self.frozen = Some(at);
        self
    }

    /// The time now, `HH:MM:SS.mmm`.
    pub fn now(&self) -> String {
        self.format(self.frozen.unwrap_or_else(SystemTime::now))
    }

    /// `at` as `HH:MM:SS.mmm`, local time.
    pub fn format(&self, at: SystemTime) -> String {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        let offset = self
            .zone
            .find_local_time_type(secs)
            .map_or(0, |t| i64::from(t.ut_offset()));
        let day = secs.saturating_add(offset).rem_euclid(86_400);
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            day / 3600,
            day / 60 % 60,
            day % 60,
            since.subsec_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::SharedBuf;

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
    fn timestamps_are_local_time_of_day_to_the_millisecond() {
        use std::time::Duration;
        // 2024-05-26 07:51:48.125 UTC.
        let at = UNIX_EPOCH + Duration::from_millis(1_716_709_908_125);
        let china = Timestamps::zone("CST-8").unwrap();
        assert_eq!(china.format(at), "15:51:48.125");
        let utc = Timestamps::zone("UTC0").unwrap();
        assert_eq!(utc.format(at), "07:51:48.125");
        // Behind UTC, and across midnight.
        let west = Timestamps::zone("XXX10").unwrap();
        assert_eq!(west.format(at), "21:51:48.125");
        // With summer time (Central Europe: +2 in May).
        let cet = Timestamps::zone("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        assert_eq!(cet.format(at), "09:51:48.125");
        assert_eq!(china.clone().frozen_at(at).now(), "15:51:48.125");
        assert!(Timestamps::zone("not a zone!").is_err());
        let now = Timestamps::local().now();
        assert_eq!(now.len(), 12, "{now}");
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
