//! udp-echo: lessons 07–09's UDP — an echo server that answers every sender, and a client that sends and waits for the reply.

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socktools::addr::{parse_port, parse_target_args};
use socktools::cli::{self, CommonArgs, parse_seconds};
use socktools::codec::{Encoding, parse_label};
use socktools::error::{Error, UsageError};
use socktools::framing::Framing;
use socktools::message::Reply;
use socktools::net::{ListenSpec, udp_socket};
use socktools::output::{Io, Log, Output};
use socktools::shutdown::Shutdown;
use socktools::udp::client::{self, DEFAULT_RAW_SIZE};
use socktools::udp::{self, DEFAULT_PORT, server};

const EXAMPLES: &str = "\
Examples:
  udp-echo serve                          echo server on port 8090, every interface (lesson 09)
  udp-echo serve 8090 --count 1 --no-echo receive one datagram, print it, exit (lesson 08)
  udp-echo serve --reply '收到: {peer}'   answer every datagram with this text
  udp-echo serve --recv-encoding gbk --send-encoding utf-8
                                          NetAssist on Windows (sends GBK, shows UTF-8)
  udp-echo send 127.0.0.1 8090 我爱你 --no-wait   send one datagram: 发送完成 (lesson 07)
  udp-echo send 127.0.0.1:8090            send stdin lines, print each echo, stop after exit (09)
  udp-echo send [::1]:8090 ping --repeat 5 --interval 500
  udp-echo send 192.168.1.255 8090 hi --broadcast    print every host that answers
  udp-echo serve 9000 --raw --no-echo > out         receive a file, byte for byte
  udp-echo send 127.0.0.1 9000 --raw --no-wait < file

A message that gets no reply within --wait makes the exit status 1 (the same rule as
tcp-client); on a terminal the reply is still listened for while you type.";

const SERVE_EXAMPLES: &str = "\
Examples:
  udp-echo serve                          echo server on port 8090, every interface (lesson 09)
  udp-echo serve 8090 --count 1 --no-echo receive one datagram, print it, exit (lesson 08)
  udp-echo serve 0 --bind 127.0.0.1       any free port, loopback only
  udp-echo serve --timestamps             each datagram with the time it arrived
  udp-echo serve --recv-encoding gbk --send-encoding utf-8
                                          NetAssist on Windows (sends GBK, shows UTF-8)
  udp-echo serve 9000 --raw > out         payloads to stdout as they are (and echoed)
  udp-echo serve 9000 --raw --no-echo > out    receive a file sent with send --raw --no-wait

Echo and encodings: when --recv-encoding and --send-encoding are the same (the default),
the echo sends back the bytes as they came, even ones that are not valid text; when they
differ, it decodes the text and sends it back re-encoded.";

const SEND_EXAMPLES: &str = "\
Examples:
  udp-echo send 127.0.0.1 8090 我爱你 --no-wait   send one datagram: 发送完成 (lesson 07)
  udp-echo send 127.0.0.1:8090            send stdin lines, print each echo, stop after exit (09)
  udp-echo send 127.0.0.1 8090 你好 --send-encoding gbk --hex
  udp-echo send 192.168.1.255 8090 hi --broadcast    print every host that answers
  udp-echo send 127.0.0.1 9000 --raw < file > echoed   1024-byte datagrams, each echo as it is
  udp-echo send 127.0.0.1 9000 --raw --no-wait --size 512 < file

Exit status: 0 when every datagram got its reply (or --no-wait); 1 when one got none
within --wait (a missing reply to the quit word does not count); 2 for a bad command
line. A reply that comes later, while the tool still runs, is shown and counts for the
oldest datagram without one. On a terminal, after the last MESSAGE, a missing reply is
listened for until you press Enter or Ctrl-D.";

#[derive(Parser)]
#[command(name = "udp-echo", version, about = "UDP without a connection: an echo server that answers every sender, and a client that sends datagrams and prints the replies.", after_help = EXAMPLES)]
struct Args {
    #[command(subcommand)]
    command: Command,

    // Listed after each subcommand's own options in its --help.
    #[command(flatten, next_display_order = 100)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Receive datagrams, print each with its sender's address (one datagram, one record), and echo it back to that sender (lessons 08, 09).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Send each MESSAGE (or each stdin line) as one datagram and print the reply (lessons 07, 09).
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Port to listen on (0: any free port; the first stderr line says which).
    #[arg(default_value_t = DEFAULT_PORT, value_parser = parse_port)]
    port: u16,

    /// Listen on this address only (default: every interface, IPv4 and IPv6).
    #[arg(short = 'b', long, value_name = "ADDR")]
    bind: Option<String>,

    /// Only print what arrives; send nothing back (lesson 08).
    #[arg(long, group = "mode")]
    no_echo: bool,

    /// Answer each datagram with TEXT instead of echoing it ({peer} becomes the sender's address).
    #[arg(long, group = "mode", value_name = "TEXT")]
    reply: Option<String>,

    /// Another name for --send-encoding (the echo re-encodes the text when it differs from --recv-encoding).
    #[arg(long, value_name = "LABEL", value_parser = parse_label, hide = true)]
    reply_encoding: Option<&'static Encoding>,

    /// Exit after N datagrams.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Write each payload to stdout as it is: no address, no decoding, nothing added (to receive a file; see send --raw).
    #[arg(long)]
    raw: bool,
}

#[derive(clap::Args)]
struct SendArgs {
    /// Server host name or address (also HOST:PORT or [IPv6]:PORT).
    host: String,
    /// Server port, unless given with HOST.
    port: Option<String>,
    /// Messages, one datagram each. None: each stdin line (without its line ending) is one.
    messages: Vec<String>,

    /// Seconds to wait for each reply (fractions allowed; 0: do not wait). No reply in that time makes the exit status 1.
    #[arg(long, default_value = "2", value_name = "SECS", value_parser = parse_seconds)]
    wait: Duration,

    /// Only send; do not wait for replies (lesson 07). Logs "sent N bytes to ADDR".
    #[arg(long, conflicts_with = "wait")]
    no_wait: bool,

    /// Stop after sending this message and printing its reply, as lesson 09's client does after exit ("": never stop). A missing reply to it is not an error: a server may quit without answering.
    #[arg(long, default_value = "exit", value_name = "WORD")]
    quit_word: String,

    /// Send the MESSAGEs this many times.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,

    /// Milliseconds between repeats.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval: u64,

    /// Allow sending to a broadcast address (SO_BROADCAST); print every reply within --wait, from whoever answers.
    #[arg(long)]
    broadcast: bool,

    /// Byte for byte: cut stdin into datagrams of --size bytes, nothing added or removed, and write replies to stdout as they are. No quit word.
    #[arg(long)]
    raw: bool,

    /// With --raw: bytes per datagram (the last one may be shorter).
    #[arg(long, value_name = "N", requires = "raw", default_value_t = DEFAULT_RAW_SIZE, value_parser = parse_datagram_size)]
    size: usize,
}

/// `--size`: 1 to the largest UDP payload (to IPv6; IPv4's lower limit is
/// checked once the destination is known).
fn parse_datagram_size(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=udp::MAX_PAYLOAD_V6).contains(n))
        .ok_or_else(|| {
            format!(
                "invalid size \"{s}\": expected bytes per datagram, 1 to {}",
                udp::MAX_PAYLOAD_V6
            )
        })
}

/// `--raw` shows bytes as they are: refuse the flags that would change them.
fn check_raw(common: &CommonArgs, sending: bool) -> Result<(), UsageError> {
    let changed = if common.hex {
        Some("--hex")
    } else if common.timestamps {
        Some("--timestamps")
    } else if sending && common.send_hex {
        Some("--send-hex")
    } else if sending && !socktools::codec::is_utf8(common.send_encoding()) {
        Some(if common.send_encoding.is_some() {
            "--send-encoding"
        } else {
            "--encoding"
        })
    } else {
        None
    };
    match changed {
        Some(flag) => Err(UsageError(format!(
            "--raw passes bytes through unchanged; leave out {flag}"
        ))),
        None => Ok(()),
    }
}

fn serve(args: ServeArgs, common: &CommonArgs) -> Result<(), Error> {
    let family = common.family();
    let reply = match (args.reply, args.no_echo) {
        (Some(text), _) => Reply::Text(text),
        (_, true) => Reply::Nothing,
        _ => Reply::Echo,
    };
    let mut send = common.send_options(Framing::Raw, false);
    match (args.reply_encoding, common.send_encoding) {
        (Some(a), Some(b)) if a != b => {
            return Err(UsageError(
                "--reply-encoding is another name for --send-encoding: give one of them".into(),
            )
            .into());
        }
        (Some(enc), _) => send.encoding = enc,
        _ => {}
    }
    if args.raw {
        check_raw(common, false)?;
    }
    let mut cfg = server::Config::default();
    cfg.reply = reply;
    cfg.count = args.count;
    cfg.show = common.show(args.raw);
    cfg.stamps = common.timestamps();
    cfg.recv_encoding = common.recv_encoding();
    cfg.send = send;
    let socket = udp_socket(ListenSpec::parse(args.bind.as_deref(), args.port, family)?)?;
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    let log = Log::stderr(common.verbosity());
    server::serve(socket, &cfg, Io::new(Output::stdout(), log), &shutdown)?;
    Ok(())
}

fn send(args: SendArgs, common: &CommonArgs) -> Result<(), Error> {
    let log = Log::stderr(common.verbosity());
    let words: Vec<String> = std::iter::once(args.host)
        .chain(args.port)
        .chain(args.messages)
        .collect();
    let (target, messages) = parse_target_args(&words)?;
    if args.raw {
        check_raw(common, true)?;
    }
    let mut cfg = client::Config::default();
    cfg.family = common.family();
    cfg.wait = (!args.no_wait && !args.wait.is_zero()).then_some(args.wait);
    cfg.quit_word = (!args.quit_word.is_empty()).then_some(args.quit_word);
    cfg.repeat = args.repeat;
    cfg.interval = Duration::from_millis(args.interval);
    cfg.broadcast = args.broadcast;
    cfg.show = common.show(args.raw);
    cfg.stamps = common.timestamps();
    cfg.send = common.send_options(Framing::Raw, false);
    cfg.raw = args.raw.then_some(args.size);
    cfg.interactive = typing_at_terminal();
    let mut out = io::stdout().lock();
    let summary = client::send(
        &target,
        messages,
        io::BufReader::new(io::stdin()),
        &cfg,
        &mut out,
        &log,
    )?;
    out.flush()?;
    summary.check()?;
    Ok(())
}

/// Is a person typing our stdin: a terminal, and we in its foreground? (A job
/// sent to the background that read the terminal would be stopped by SIGTTIN.)
fn typing_at_terminal() -> bool {
    io::stdin().is_terminal() && socktools::sys::in_foreground()
}

fn main() -> ExitCode {
    let args = cli::parse::<Args>();
    let result = match args.command {
        Command::Serve(s) => serve(s, &args.common),
        Command::Send(s) => send(s, &args.common),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("udp-echo", &e),
    }
}
