//! tcp-client: lesson 02's TCP client (send, print the reply, close) and a full-duplex `nc -N`.

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socktools::cli::{self, CommonArgs, FramingArgs, parse_seconds};
use socktools::error::Error;
use socktools::output::Log;
use socktools::tcp::client;

const EXAMPLES: &str = "\
Examples:
  tcp-client 127.0.0.1 8080 hello              send, print the reply, exit (lesson 02)
  tcp-client 127.0.0.1 8080 a b c              three messages, each reply on its own line
  tcp-client 127.0.0.1:8080 你好 --send-encoding gbk --hex
  tcp-client [::1]:8080                        type lines; Ctrl-D half-closes, like nc -N
  tcp-client host 8080 < file > reply          byte-exact pipe
  tcp-client host 8080 ping --repeat 5 --interval 500
  tcp-client host 8080 --timestamps            one record per read, with its time (lesson 13)


Exit status: 0 when every message got a reply (or, with no MESSAGE, when the server
closed the connection); 1 when a message got no reply within --wait, or the server
closed the connection without replying; 2 for a bad command line.";

#[derive(Parser)]
#[command(name = "tcp-client", version, about = "Connect to a TCP server: send messages and print the replies (one record per read, lesson 13), or pipe stdin/stdout through the connection like nc (the byte stream as it is; --timestamps makes each read a record).", after_help = EXAMPLES)]
struct Args {
    /// Server host name or address (also HOST:PORT or [IPv6]:PORT).
    host: String,
    /// Server port, unless given with HOST.
    port: Option<String>,
    /// Messages to send, each followed by a wait for the reply. None: full duplex with stdin/stdout.
    messages: Vec<String>,

    /// Seconds to wait for each reply to start (fractions allowed). No reply in that time, or a server that closes without one, makes the exit status 1. 0: only send, do not wait.
    #[arg(long, default_value = "2", value_name = "SECS", value_parser = parse_seconds)]
    wait: Duration,

    /// Seconds of quiet that end a reply once it has started (raise it for a server that answers in pieces).
    #[arg(long, default_value = "0.1", value_name = "SECS", value_parser = parse_seconds)]
    settle: Duration,

    /// Connect timeout in seconds, per address tried.
    #[arg(short = 'w', long = "timeout", default_value = "10", value_name = "SECS", value_parser = parse_seconds)]
    timeout: Duration,

    /// Give up after this many seconds with no data either way (duplex mode).
    #[arg(short = 'i', long, value_name = "SECS", value_parser = parse_seconds)]
    idle: Option<Duration>,

    /// Send the messages this many times (NetAssist's timed send).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,

    /// Milliseconds between repeats.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval: u64,

    /// Send each newline from stdin as \r\n.
    #[arg(long)]
    crlf: bool,

    /// Keep the write side open when stdin ends (default: shut it down, like nc -N).
    #[arg(long)]
    no_shutdown: bool,

    #[command(flatten)]
    framing: FramingArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn run(args: Args) -> Result<(), Error> {
    let log = Log::stderr(args.common.verbosity());
    let words: Vec<String> = std::iter::once(args.host)
        .chain(args.port)
        .chain(args.messages)
        .collect();
    let (target, messages) = socktools::addr::parse_target_args(&words)?;
    let mut cfg = client::Config::default();
    cfg.family = args.common.family();
    cfg.connect_timeout = (!args.timeout.is_zero()).then_some(args.timeout);
    cfg.wait = args.wait;
    cfg.settle = args.settle;
    cfg.idle = args.idle;
    cfg.repeat = args.repeat;
    cfg.interval = Duration::from_millis(args.interval);
    cfg.shutdown_on_eof = !args.no_shutdown;
    cfg.framing = args.framing.framing;
    cfg.max_frame = args.framing.max_frame;
    cfg.show = args.common.show(false);
    cfg.stamps = args.common.timestamps();
    cfg.send = args.common.send_options(args.framing.framing, args.crlf);
    if messages.is_empty() {
        // Duplex mode: bytes may be spliced straight between these pipes and the socket.
        socktools::sys::widen_stdio_pipes();
    }
    let mut out = io::stdout().lock();
    let summary = client::run(&target, messages, &cfg, &mut out, &log)?;
    out.flush()?;
    summary.check()?;
    Ok(())
}

fn main() -> ExitCode {
    match run(cli::parse::<Args>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("tcp-client", &e),
    }
}
