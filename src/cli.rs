//! Flags every tool shares, defined once and flattened into each binary, and the exit-code rules.
//!
//! Exit codes follow the usual Unix tools: 0 done, 1 a runtime failure (refused,
//! timed out, reset), 2 a usage error (a bad flag, port, address or encoding label).
//! A broken pipe on stdout (`tcp-client … | head -1`) is not an error: exit 0 quietly.

use std::error::Error;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::addr::{AddrError, Family};
use crate::codec::{self, CodecError, Encoding, Unmappable};
use crate::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::hex::HexError;
use crate::message::{SendOptions, Show};
use crate::output::{Timestamps, Verbosity};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A network or runtime failure.
pub const EXIT_RUNTIME: u8 = 1;
/// The command line was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Stopped by Ctrl-C, SIGTERM or SIGHUP (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Makes Ctrl-C (SIGINT), SIGTERM and SIGHUP set `flag` instead of killing
/// the process, so that a transfer can stop cleanly: tell the peer, remove
/// its temporary file. A second signal ends the process at once, for when
/// stopping cleanly takes too long (a fifo whose reader stopped reading);
/// `leftover`, the temporary file, is removed first, since no destructor
/// runs after `exit`.
pub fn stop_on_signals(
    flag: &Arc<AtomicBool>,
    leftover: Option<PathBuf>,
) -> Result<(), ctrlc::Error> {
    let flag = Arc::clone(flag);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            if let Some(path) = &leftover {
                let _ = std::fs::remove_file(path);
            }
            eprintln!("interrupted again: stopping at once");
            std::process::exit(EXIT_INTERRUPTED.into());
        }
    })
}

/// The exit for a run that `flag` ([`stop_on_signals`]) stopped: one line
/// saying so, and [`EXIT_INTERRUPTED`].
pub fn interrupted(prog: &str, what_happened: &str) -> ExitCode {
    eprintln!("{prog}: interrupted; {what_happened}");
    ExitCode::from(EXIT_INTERRUPTED)
}

/// A usage error a binary finds itself (beyond what clap checks).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn encoding_arg(label: &str) -> Result<&'static Encoding, CodecError> {
    codec::parse_label(label)
}

/// Address family, encodings, hex and verbosity: the flags of every tool.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Use IPv4 only.
    #[arg(short = '4', global = true, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6', global = true)]
    pub ipv6: bool,

    /// Text encoding for both directions: utf-8, gbk (Windows calls it cp936), gb18030, big5, shift_jis, … (any WHATWG label).
    #[arg(short = 'e', long, global = true, value_name = "LABEL", default_value = "utf-8", value_parser = encoding_arg)]
    pub encoding: &'static Encoding,

    /// Encoding of the text we send (overrides --encoding). An echo with two different encodings sends back the text, re-encoded; with one, the bytes as they came.
    #[arg(long, global = true, value_name = "LABEL", value_parser = encoding_arg)]
    pub send_encoding: Option<&'static Encoding>,

    /// Encoding received bytes are read in (overrides --encoding). NetAssist on Windows sends GBK and shows what it receives as UTF-8: talk to it with --recv-encoding gbk --send-encoding utf-8.
    #[arg(long, global = true, value_name = "LABEL", value_parser = encoding_arg)]
    pub recv_encoding: Option<&'static Encoding>,

    /// Refuse a message containing a character the send encoding cannot represent, instead of sending '?'.
    #[arg(long, global = true)]
    pub strict_encoding: bool,

    /// Show received bytes as a hex dump (offset, hex, printable text).
    #[arg(short = 'x', long, global = true)]
    pub hex: bool,

    /// Messages are hex digits ("48 65 6c 0d 0a" or "48656c0d0a"), sent as those bytes.
    #[arg(long, global = true)]
    pub send_hex: bool,

    /// Local time (HH:MM:SS.mmm) before each record received: each read, framed message or datagram.
    #[arg(long, global = true)]
    pub timestamps: bool,

    /// More detail on stderr: every read and write with its size (repeatable).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

impl CommonArgs {
    /// `-4` / `-6`.
    pub fn family(&self) -> Family {
        Family::from_flags(self.ipv4, self.ipv6)
    }

    /// The encoding of outgoing text.
    pub fn send_encoding(&self) -> &'static Encoding {
        self.send_encoding.unwrap_or(self.encoding)
    }

    /// The encoding of incoming text.
    pub fn recv_encoding(&self) -> &'static Encoding {
        self.recv_encoding.unwrap_or(self.encoding)
    }

    /// `?` or refuse.
    pub fn unmappable(&self) -> Unmappable {
        if self.strict_encoding {
            Unmappable::Refuse
        } else {
            Unmappable::Substitute
        }
    }

    /// `-q` / `-v`.
    pub fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else if self.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        }
    }

    /// How received bytes are shown (`raw`: `--raw` was given).
    pub fn show(&self, raw: bool) -> Show {
        if raw {
            Show::Raw
        } else if self.hex {
            Show::Hex
        } else {
            Show::Text(self.recv_encoding())
        }
    }

    /// The clock of `--timestamps`, if given.
    pub fn timestamps(&self) -> Option<Timestamps> {
        self.timestamps.then(Timestamps::local)
    }

    /// How typed text becomes bytes.
    pub fn send_options(&self, framing: Framing, crlf: bool) -> SendOptions {
        SendOptions {
            encoding: self.send_encoding(),
            unmappable: self.unmappable(),
            hex: self.send_hex,
            crlf,
            framing,
        }
    }
}

/// `--framing` and `--max-frame`, for the TCP tools (lesson 13).
#[derive(Debug, Clone, clap::Args)]
pub struct FramingArgs {
    /// How the byte stream is cut into messages: raw (each read), line (each \n), len (4-byte big-endian length prefix).
    #[arg(long, value_enum, default_value_t = Framing::Raw, value_name = "MODE")]
    pub framing: Framing,

    /// Largest accepted frame or line, in bytes (suffixes K, M, G).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    pub max_frame: usize,
}

impl Default for FramingArgs {
    fn default() -> Self {
        FramingArgs {
            framing: Framing::Raw,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// Parse a byte count such as `65536`, `64K`, `16M`, `1G`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 1usize << 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 1 << 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size \"{s}\": expected a positive number of bytes such as 65536, 64K or 16M"))
}

/// Parse seconds with fractions (`2`, `0.5`).
pub fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid duration \"{s}\": expected seconds such as 2 or 0.5"))
}

/// Is this error (or one it wraps) the user's command line being wrong?
pub fn is_usage(err: &(dyn Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<UsageError>() || e.is::<HexError>() {
            return true;
        }
        if let Some(a) = e.downcast_ref::<AddrError>() {
            return matches!(
                a,
                AddrError::InvalidPort(_) | AddrError::InvalidHost(_) | AddrError::MissingPort(_)
            );
        }
        // Every CodecError is about input the user gave: an unknown label, or a
        // message that cannot be encoded under --strict-encoding.
        if e.is::<CodecError>() {
            return true;
        }
        cur = next_cause(e);
    }
    false
}

/// The error `e` wraps. `io::Error::other(inner)` does not report `inner` as its
/// source (only inner's own source), so look inside it explicitly.
fn next_cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

fn is_broken_pipe(err: &(dyn Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cur = next_cause(e);
    }
    false
}

/// The one-line form of an error and its causes: `outer: inner: innermost`. A cause
/// whose text the line already contains is not repeated.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = e.source();
    }
    line.replace('\n', " ")
}

/// Print `prog: error` on stderr and pick the exit code.
pub fn report(prog: &str, err: &(dyn Error + 'static)) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::from(EXIT_OK);
    }
    eprintln!("{prog}: {}", one_line(err));
    ExitCode::from(if is_usage(err) {
        EXIT_USAGE
    } else {
        EXIT_RUNTIME
    })
}

/// Flags shared by `tftp-get` and `tftp-put` (lesson 12).
#[derive(Debug, Clone, clap::Args)]
pub struct TftpArgs {
    /// Server port, unless HOST says HOST:PORT.
    #[arg(short = 'p', long, default_value = "69", value_parser = crate::addr::parse_port)]
    pub port: u16,

    /// Block size to ask for, 8-65464 (a server that refuses gets asked again without options).
    #[arg(short = 'B', long, default_value_t = 1468, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub blksize: u16,

    /// Blocks sent per ACK (RFC 7440), 1-65535; 1 is lock-step.
    #[arg(short = 'W', long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: u16,

    /// Fixed retransmission timeout in seconds (1-255), also asked of the server (default: 1 s, then adapted to the measured round trip when the server allows).
    #[arg(short = 't', long, value_name = "SECS", value_parser = clap::value_parser!(u8).range(1..))]
    pub timeout: Option<u8>,

    /// Retransmissions in a row before giving up.
    #[arg(short = 'r', long, default_value_t = 6, value_name = "N")]
    pub retries: u32,

    /// Transfer mode: octet (bytes as they are) or netascii (text; \r\n on the wire).
    #[arg(short = 'm', long, default_value = "octet", value_parser = parse_tftp_mode)]
    pub mode: crate::tftp::Mode,

    /// Ask for no options at all: plain RFC 1350 (512-byte blocks, lock-step).
    #[arg(long)]
    pub no_options: bool,

    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// More detail on stderr; -vv is --trace.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// One line per datagram sent or received, and per timeout, on stderr (lesson 12: watch lock-step and windows).
    #[arg(long)]
    pub trace: bool,

    /// Only errors on stderr (no progress bar, no summary).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

fn parse_tftp_mode(s: &str) -> Result<crate::tftp::Mode, String> {
    match s.to_ascii_lowercase().as_str() {
        "octet" | "binary" => Ok(crate::tftp::Mode::Octet),
        "netascii" | "ascii" => Ok(crate::tftp::Mode::Netascii),
        _ => Err(format!("invalid mode \"{s}\": expected octet or netascii")),
    }
}

impl TftpArgs {
    /// `-4` / `-6`.
    pub fn family(&self) -> Family {
        Family::from_flags(self.ipv4, self.ipv6)
    }

    /// `-q` / default / `-v`.
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, 1..) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }

    /// `--trace` or `-vv`.
    pub fn tracing(&self) -> bool {
        self.trace || self.verbose >= 2
    }

    /// Resolves HOST (`host`, `host:port`, `[v6]:port`, `::1`) and builds the client's settings.
    pub fn client_config(
        &self,
        host: &str,
    ) -> Result<crate::tftp::client::ClientConfig, AddrError> {
        let target = crate::addr::parse_host_or_target(host, self.port)?;
        let server = crate::addr::resolve(&target, self.family())?[0];
        let mut cfg = crate::tftp::client::ClientConfig::new(server);
        cfg.mode = self.mode;
        cfg.blksize = Some(self.blksize);
        cfg.windowsize = Some(self.windowsize);
        if let Some(t) = self.timeout {
            cfg.timeout = std::time::Duration::from_secs(t.into());
            cfg.send_timeout = true;
            // A timeout the user chose is what they get: no adaptive timer.
            cfg.utimeout = None;
        }
        cfg.retries = self.retries;
        cfg.no_options = self.no_options;
        if self.tracing() {
            cfg.trace = Some(crate::tftp::engine::Trace::new(
                crate::output::Log::stderr(Verbosity::Normal),
                std::time::Instant::now(),
                String::new(),
            ));
        }
        Ok(cfg)
    }
}

/// A progress bar on stderr for a TFTP transfer (bytes, rate, ETA when the size is known).
pub struct TransferProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl TransferProgress {
    /// A bar when stderr is a terminal and `verbosity` allows, else nothing.
    pub fn new(verbosity: Verbosity) -> TransferProgress {
        use std::io::IsTerminal;
        let show = verbosity >= Verbosity::Normal && io::stderr().is_terminal();
        TransferProgress {
            bar: show.then(indicatif::ProgressBar::hidden),
        }
    }

    /// Removes the bar (before the summary line is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl crate::tftp::client::Progress for TransferProgress {
    fn start(&mut self, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        let template = match total {
            Some(_) => "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} ETA {eta}",
            None => "{bytes} {spinner} {binary_bytes_per_sec} {elapsed}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }

    fn update(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("16m").unwrap(), 16 << 20);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12x").unwrap_err().contains("\"12x\""));
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0.5").unwrap().as_millis(), 500);
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
    }

    #[test]
    fn usage_errors_are_recognised_through_wrapping() {
        #[derive(Debug, thiserror::Error)]
        #[error("while parsing")]
        struct Outer(#[source] AddrError);
        let e = Outer(AddrError::InvalidPort("80a".into()));
        assert!(is_usage(&e));
        assert_eq!(
            one_line(&e),
            "while parsing: invalid port \"80a\": expected 0-65535"
        );
        let refused = AddrError::Connect(crate::addr::ConnectFailures(vec![]));
        assert!(!is_usage(&refused));
    }

    #[test]
    fn broken_pipe_is_quiet_success() {
        let e = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(report("t", &e), ExitCode::from(EXIT_OK));
    }
}
