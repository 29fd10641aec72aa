//! Flags every tool shares, defined once and flattened into each binary, and the exit-code rules.
//!
//! Exit codes follow the usual Unix tools: 0 done, 1 a runtime failure (refused,
//! timed out, reset), 2 a usage error (a bad flag, port, address or encoding label).
//! A broken pipe on stdout (`tcp-client … | head -1`) is not an error: exit 0 quietly.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::addr::{AddrError, Family};
use crate::codec::{self, CodecError, Encoding, Unmappable};
use crate::error::is_broken_pipe;
use crate::framing::{DEFAULT_MAX_FRAME, Framing};
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

/// Signal handlers can only fail to install at start-up, for reasons of the system.
impl crate::error::Blame for ctrlc::Error {
    fn is_usage(&self) -> bool {
        false
    }
}

/// The exit for a run that `flag` ([`stop_on_signals`]) stopped: one line
/// saying so, and [`EXIT_INTERRUPTED`].
pub fn interrupted(prog: &str, what_happened: &str) -> ExitCode {
    eprintln!("{prog}: interrupted; {what_happened}");
    ExitCode::from(EXIT_INTERRUPTED)
}

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

    /// Encoding of the text we send (overrides --encoding).
    #[arg(long, global = true, value_name = "LABEL", value_parser = encoding_arg)]
    pub send_encoding: Option<&'static Encoding>,

    /// Encoding received bytes are decoded in (overrides --encoding). NetAssist on Windows sends GBK and shows what it receives as UTF-8: talk to it with --recv-encoding gbk --send-encoding utf-8.
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

    /// More detail on stderr: every read and write with its size.
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

/// Print `prog: error` on stderr and pick the exit code.
pub fn report(prog: &str, err: &crate::Error) -> ExitCode {
    if is_broken_pipe(err.as_std()) {
        return ExitCode::from(EXIT_OK);
    }
    eprintln!("{prog}: {err}");
    ExitCode::from(if err.is_usage() {
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

/// `host:port`, with brackets around an IPv6 address: what to type for HOST
/// when a port was given as an argument of its own (`tftp-get ::1 6969 f`).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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
    pub fn client_config(&self, host: &str) -> Result<crate::tftp::client::Config, AddrError> {
        let target = crate::addr::parse_host_or_target(host, self.port)?;
        let server = crate::addr::resolve(&target, self.family())?[0];
        let mut cfg = crate::tftp::client::Config::new(server);
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

// --- The command line as every binary reads it ---------------------------------
//
// Each binary's `main` calls [`parse`] instead of clap's `Args::parse()`: the
// same flags and errors, plus what clap alone cannot do — `--generate` (which
// must work without the required arguments), nc's flags answered with the
// socktools way to do the same, and `-vv` refused where it adds nothing.

/// What `--generate` writes, as ripgrep names them.
pub const GENERATE: [&str; 5] = [
    "man",
    "complete-bash",
    "complete-zsh",
    "complete-fish",
    "complete-powershell",
];

/// The clap command of binary `P` as the tools present it: `--version` on
/// every subcommand too, and `--generate` listed in `--help`.
pub fn command<P: clap::CommandFactory>() -> clap::Command {
    P::command().propagate_version(true).arg(
        clap::Arg::new("generate")
            .long("generate")
            .value_name("KIND")
            .value_parser(GENERATE)
            .action(clap::ArgAction::Set)
            .help("Print a man page or a shell completion script on stdout, then exit (see the README's \"Shell integration\")"),
    )
}

/// Parses the command line of binary `P`, or exits: 0 after `--help`,
/// `--version` and `--generate`, 2 for a usage error.
pub fn parse<P: clap::Parser>() -> P {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = command::<P>();
    let name = cmd.get_name().to_owned();
    match examine(&mut cmd, &args) {
        Ok(matches) => match P::from_arg_matches(&matches) {
            Ok(parsed) => parsed,
            Err(e) => e.format(&mut cmd).exit(),
        },
        Err(Refusal::Clap(e)) => e.exit(),
        Err(Refusal::Usage(line)) => {
            eprintln!("{name}: {line}");
            std::process::exit(EXIT_USAGE.into());
        }
        Err(Refusal::Generate(kind)) => {
            let mut out = io::stdout().lock();
            match generate(cmd, &kind, &mut out).and_then(|()| io::Write::flush(&mut out)) {
                Ok(()) => std::process::exit(EXIT_OK.into()),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    std::process::exit(EXIT_OK.into())
                }
                Err(e) => {
                    eprintln!("{name}: cannot write the {kind}: {e}");
                    std::process::exit(EXIT_RUNTIME.into());
                }
            }
        }
    }
}

/// Why [`examine`] did not hand back matches to run with.
#[derive(Debug)]
pub enum Refusal {
    /// clap's own answer: an error, or `--help` / `--version` to print.
    Clap(clap::Error),
    /// A usage error to print as `prog: LINE` (exit 2).
    Usage(String),
    /// `--generate KIND` was asked for (KIND is one of [`GENERATE`]).
    Generate(String),
}

/// The checks of [`parse`], without printing or exiting: `args` (program
/// name first) against `cmd` (from [`command`]).
pub fn examine(
    cmd: &mut clap::Command,
    args: &[std::ffi::OsString],
) -> Result<clap::ArgMatches, Refusal> {
    if let Some(kind) = generate_request(args) {
        return match kind {
            Some(kind) if GENERATE.contains(&kind.as_str()) => Err(Refusal::Generate(kind)),
            _ => Err(Refusal::Usage(format!(
                "--generate needs one of: {}",
                GENERATE.join(", ")
            ))),
        };
    }
    let matches = cmd.try_get_matches_from_mut(args).map_err(|e| {
        let hint = nc_flag(&e).and_then(|flag| {
            nc_hint(cmd.get_name(), &flag).or_else(|| elsewhere_hint(cmd, args, &flag))
        });
        match hint {
            Some(hint) => Refusal::Usage(hint),
            None => Refusal::Clap(e),
        }
    })?;
    if let Some(line) = too_verbose(cmd, &matches) {
        return Err(Refusal::Usage(line));
    }
    Ok(matches)
}

/// `--generate KIND` or `--generate=KIND` anywhere before `--`: found
/// before clap parses, since a man page needs no HOST or PORT. `Some(None)`:
/// asked for without a kind.
fn generate_request(args: &[std::ffi::OsString]) -> Option<Option<String>> {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            return None;
        }
        if word == "--generate" {
            return Some(words.next().map(|k| k.into_owned()));
        }
        if let Some(kind) = word.strip_prefix("--generate=") {
            return Some(Some(kind.to_owned()));
        }
    }
    None
}

/// The flag clap did not know, when it is one nc users type out of habit.
fn nc_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(flag) => Some(flag.split('=').next().unwrap_or(flag).to_owned()),
        _ => None,
    }
}

/// A flag another subcommand takes (`chat room --name`, or `chat -v listen`
/// with the flag before the subcommand): say which ones take it, instead
/// of clap's tip to pass it as a value.
fn elsewhere_hint(cmd: &clap::Command, args: &[std::ffi::OsString], flag: &str) -> Option<String> {
    let takes = |a: &clap::Arg| match flag.strip_prefix("--") {
        Some(long) => a.get_long() == Some(long),
        None => flag.len() == 2 && a.get_short() == flag.chars().nth(1),
    };
    let takers: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| s.get_arguments().any(takes))
        .map(|s| s.get_name())
        .collect();
    let prog = cmd.get_name();
    let words: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    let (at, used) = words
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, w)| {
            let name = cmd
                .get_subcommands()
                .map(|s| s.get_name())
                .find(|n| n == w)?;
            Some((i, name))
        })
        .unzip();
    let before = matches!(
        (words.iter().position(|w| w.starts_with(flag)), at),
        (Some(p), Some(a)) if p < a
    );
    let list = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|n| format!("{prog} {n}")).collect();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    let after = used
        .filter(|u| takers.contains(u))
        .or(takers.first().copied())?;
    match used {
        Some(used) if !takers.contains(&used) => Some(format!(
            "{flag} is a flag of {}, not of {prog} {used}",
            list(&takers)
        )),
        _ if before || used.is_none() => Some(format!(
            "{flag} goes after the subcommand: {prog} {after} {flag} … (it is a flag of {})",
            list(&takers)
        )),
        _ => None,
    }
}

/// What to say instead of clap's "to pass '-l' as a value, use '-- -l'"
/// when `prog` does not have nc's `flag`: the socktools way to do the same.
pub fn nc_hint(prog: &str, flag: &str) -> Option<String> {
    let tftp = prog.starts_with("tftp-");
    let (what, advice) = match flag {
        "-l" | "--listen" => (
            "listen",
            match prog {
                "tcp-server" => "tcp-server listens already: tcp-server PORT",
                "udp-echo" => "to listen, use udp-echo serve PORT",
                "chat" => "to wait for a peer, use chat listen PORT",
                "tftp-serve" => "tftp-serve listens already: tftp-serve --port PORT DIR",
                _ if tftp => "the TFTP server is tftp-serve --port PORT DIR",
                _ => "to listen, use tcp-server PORT (udp-echo serve PORT for UDP)",
            },
        ),
        "-p" | "--source-port" => (
            "port",
            match prog {
                "tcp-server" => "the port is the first argument: tcp-server PORT",
                "tcp-client" => "the port follows the host: tcp-client HOST PORT",
                "udp-echo" => {
                    "the port is an argument: udp-echo serve PORT, udp-echo send HOST PORT"
                }
                "chat" => "the port is an argument: chat listen PORT, chat connect HOST PORT",
                _ => return None,
            },
        ),
        "-u" | "--udp" => (
            "UDP",
            match prog {
                "udp-echo" => "udp-echo is UDP already; leave -u out",
                "chat" => "chat's is --udp: chat --udp listen PORT",
                _ if tftp => "TFTP is always UDP; leave -u out",
                _ => "for UDP use udp-echo: udp-echo serve PORT, udp-echo send HOST PORT MESSAGE",
            },
        ),
        "-k" | "--keep-open" => (
            "keep-listening",
            match prog {
                "udp-echo" => "udp-echo serve keeps serving already (--count N stops after N)",
                "tftp-serve" => "tftp-serve keeps serving already",
                "tcp-server" => {
                    "tcp-server keeps accepting connections already (--once stops after one)"
                }
                _ => "tcp-server keeps accepting connections already: tcp-server PORT",
            },
        ),
        "-N" => (
            "shut-down-at-EOF",
            match prog {
                "tcp-client" => {
                    "tcp-client shuts down its write side at stdin EOF already (--no-shutdown keeps it open)"
                }
                _ => "tcp-client shuts down its write side at stdin EOF already",
            },
        ),
        "-z" | "--zero" => (
            "port-scan",
            "socktools has no port scanner; tcp-client HOST PORT tells whether the port accepts (\"connection refused\" when nothing listens)",
        ),
        "-e" | "-c" | "--exec" | "--sh-exec" => (
            "run-a-program",
            "socktools does not run programs on a connection; pipe instead: PROGRAM | tcp-client HOST PORT",
        ),
        "-C" | "--crlf" if matches!(prog, "tcp-client" | "tcp-server") => ("CRLF", "use --crlf"),
        _ => return None,
    };
    Some(format!("{flag} is nc's {what} flag; {advice}"))
}

/// `-vv` where the second `v` means nothing: refused rather than accepted
/// in silence. Tools with `--trace` (the TFTP ones) take `-vv` as `--trace`.
fn too_verbose(cmd: &clap::Command, matches: &clap::ArgMatches) -> Option<String> {
    let mut most = 0u8;
    let mut traces = false;
    let (mut cmd, mut level) = (cmd, Some(matches));
    while let Some(m) = level {
        if let Ok(Some(&count)) = m.try_get_one::<u8>("verbose") {
            most = most.max(count);
        }
        traces |= cmd.get_arguments().any(|a| a.get_id() == "trace");
        level = None;
        if let Some((name, sub)) = m.subcommand()
            && let Some(sub_cmd) = cmd.find_subcommand(name)
        {
            (cmd, level) = (sub_cmd, Some(sub));
        }
    }
    (most >= 2 && !traces).then(|| {
        "-vv: -v already shows every read and write with its size, and there is no more detail; use -v (and --hex to see the bytes)".to_owned()
    })
}

/// Writes what `--generate KIND` asks for: a man page, or a completion script.
pub fn generate(mut cmd: clap::Command, kind: &str, out: &mut dyn io::Write) -> io::Result<()> {
    use clap_complete::Shell;
    let shell = match kind {
        "man" => return man_page(cmd, out),
        "complete-bash" => Shell::Bash,
        "complete-zsh" => Shell::Zsh,
        "complete-fish" => Shell::Fish,
        "complete-powershell" => Shell::PowerShell,
        _ => return Err(io::Error::other(format!("unknown --generate kind {kind}"))),
    };
    let name = cmd.get_name().to_owned();
    // clap_complete panics when its writer fails (a closed pipe): write into memory first.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)
}

/// One page for the whole binary: clap_mangen's sections for the command,
/// then each subcommand's synopsis and options (clap_mangen would point to
/// separate `udp-echo-serve(1)` pages, which would need installing one by
/// one), then the examples kept line by line.
fn man_page(mut cmd: clap::Command, out: &mut dyn io::Write) -> io::Result<()> {
    use clap_mangen::Man;
    use clap_mangen::roff::{Roff, bold, roman};
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    if cmd.get_long_about().is_some() {
        man.render_description_section(&mut page)?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    let subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    if !subs.is_empty() {
        let mut list = Roff::new();
        list.control("SH", ["COMMANDS"]);
        for sub in &subs {
            list.control("TP", []);
            list.text([bold(sub.get_name())]);
            if let Some(about) = sub.get_about() {
                list.text([roman(about.to_string())]);
            }
        }
        list.to_writer(&mut page)?;
    }
    for sub in &subs {
        let full_name = format!("{} {}", cmd.get_name(), sub.get_name());
        let title = full_name.to_uppercase();
        Roff::new()
            .control("SH", [title.as_str()])
            .to_writer(&mut page)?;
        let sub_page = Man::new((*sub).clone().bin_name(&full_name));
        let mut body = Vec::new();
        if let Some(about) = sub.get_about() {
            Roff::new()
                .text([roman(about.to_string())])
                .to_writer(&mut body)?;
        }
        sub_page.render_synopsis_section(&mut body)?;
        sub_page.render_options_section(&mut body)?;
        examples(sub, &mut body)?;
        // The subcommand's sections become subsections under its heading.
        let body = String::from_utf8_lossy(&body).replace("\n.SH ", "\n.SS ");
        page.extend_from_slice(body.as_bytes());
    }
    examples(&cmd, &mut page)?;
    man.render_version_section(&mut page)?;
    // Each render starts with the same two-line preamble (a quote-character
    // definition): keep the first.
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let page = String::from_utf8_lossy(&page).into_owned();
    let (head, rest) = match page.find(PREAMBLE) {
        Some(at) => page.split_at(at + PREAMBLE.len()),
        None => (page.as_str(), ""),
    };
    out.write_all(head.as_bytes())?;
    out.write_all(rest.replace(PREAMBLE, "").as_bytes())
}

/// The after-help examples, one command per line as in `--help`.
fn examples(cmd: &clap::Command, out: &mut dyn io::Write) -> io::Result<()> {
    use clap_mangen::roff::{Roff, roman};
    let Some(text) = cmd.get_after_help().map(|t| t.to_string()) else {
        return Ok(());
    };
    let mut lines = text.lines().peekable();
    let heading = match lines.peek() {
        Some(first) if first.ends_with(':') => lines
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_uppercase(),
        _ => "EXAMPLES".to_owned(),
    };
    let mut roff = Roff::new();
    roff.control("SH", [heading.as_str()]);
    roff.control("nf", []);
    for line in lines {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.to_writer(out)
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

    #[derive(clap::Parser, Debug)]
    #[command(name = "tcp-client", version)]
    struct Demo {
        host: String,
        #[arg(short = 'v', action = clap::ArgAction::Count)]
        verbose: u8,
    }

    /// How [`examine`] answers `args`, in a word or a line: `ok`, `clap`,
    /// `generate KIND` or `usage: LINE`.
    fn examined(args: &[&str]) -> String {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        match examine(&mut command::<Demo>(), &args) {
            Ok(_) => "ok".into(),
            Err(Refusal::Clap(_)) => "clap".into(),
            Err(Refusal::Generate(kind)) => format!("generate {kind}"),
            Err(Refusal::Usage(line)) => format!("usage: {line}"),
        }
    }

    #[test]
    fn generate_needs_no_required_argument_and_stops_at_double_dash() {
        let man = examined(&["tcp-client", "--generate", "man"]);
        assert_eq!(man, "generate man");
        let fish = examined(&["tcp-client", "--generate=complete-fish"]);
        assert_eq!(fish, "generate complete-fish");
        let roff = examined(&["tcp-client", "--generate", "roff"]);
        assert!(
            roff.starts_with("usage: --generate needs one of: man,"),
            "{roff}"
        );
        // After `--` it is HOST.
        assert_eq!(examined(&["tcp-client", "--", "--generate"]), "ok");
    }

    #[test]
    fn nc_flags_and_vv_are_usage_errors_with_the_way_to_do_it() {
        assert_eq!(
            examined(&["tcp-client", "-l", "8080"]),
            "usage: -l is nc's listen flag; to listen, use tcp-server PORT (udp-echo serve PORT for UDP)"
        );
        assert_eq!(examined(&["tcp-client", "--bogus"]), "clap");
        let vv = examined(&["tcp-client", "-vv", "h"]);
        assert!(vv.starts_with("usage: -vv: "), "{vv}");
        assert_eq!(examined(&["tcp-client", "-v", "h"]), "ok");
        assert_eq!(nc_hint("tftp-get", "-p"), None, "a real flag there");
    }

    #[test]
    fn man_page_is_one_page_with_examples() {
        let mut page = Vec::new();
        generate(command::<Demo>(), "man", &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert_eq!(page.matches(".TH ").count(), 1, "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble: {page}");
        assert!(page.contains("\\-\\-generate"), "{page}");
    }

    #[test]
    fn host_and_port_join_like_the_tools_read_them() {
        assert_eq!(join_host_port("127.0.0.1", 69), "127.0.0.1:69");
        assert_eq!(join_host_port("::1", 69), "[::1]:69");
        assert_eq!(join_host_port("[::1]", 69), "[::1]:69");
    }

    #[test]
    fn broken_pipe_is_quiet_success() {
        let e = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(report("t", &e.into()), ExitCode::from(EXIT_OK));
    }
}
