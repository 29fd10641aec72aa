//! udp-echo: lessons 07–09's UDP — an echo server that answers every sender, and a client that sends and waits for the reply.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socktools::addr::{parse_port, parse_target_args};
use socktools::cli::{self, CommonArgs, UsageError, parse_seconds};
use socktools::codec::{Encoding, parse_label};
use socktools::framing::Framing;
use socktools::net::{ListenSpec, udp_socket};
use socktools::output::{Log, Output};
use socktools::shutdown::Shutdown;
use socktools::udp::{self, DEFAULT_PORT, Reply, SendConfig, ServeConfig};

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
  udp-echo send 192.168.1.255 8090 hi --broadcast    print every host that answers";

const SERVE_EXAMPLES: &str = "\
Examples:
  udp-echo serve                          echo server on port 8090, every interface (lesson 09)
  udp-echo serve 8090 --count 1 --no-echo receive one datagram, print it, exit (lesson 08)
  udp-echo serve 0 --bind 127.0.0.1       any free port, loopback only
  udp-echo serve --timestamps             each datagram with the time it arrived
  udp-echo serve --recv-encoding gbk --send-encoding utf-8
                                          NetAssist on Windows (sends GBK, shows UTF-8)";

const SEND_EXAMPLES: &str = "\
Examples:
  udp-echo send 127.0.0.1 8090 我爱你 --no-wait   send one datagram: 发送完成 (lesson 07)
  udp-echo send 127.0.0.1:8090            send stdin lines, print each echo, stop after exit (09)
  udp-echo send 127.0.0.1 8090 你好 --send-encoding gbk --hex
  udp-echo send 192.168.1.255 8090 hi --broadcast    print every host that answers";

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
}

#[derive(clap::Args)]
struct SendArgs {
    /// Server host name or address (also HOST:PORT or [IPv6]:PORT).
    host: String,
    /// Server port, unless given with HOST.
    port: Option<String>,
    /// Messages, one datagram each. None: each stdin line (without its line ending) is one.
    messages: Vec<String>,

    /// Seconds to wait for each reply (fractions allowed; 0: do not wait).
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
}

fn serve(args: ServeArgs, common: &CommonArgs) -> anyhow::Result<()> {
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
    let cfg = ServeConfig {
        reply,
        count: args.count,
        show: common.show(false),
        stamps: common.timestamps(),
        recv_encoding: common.recv_encoding(),
        send,
    };
    let socket = udp_socket(ListenSpec::parse(args.bind.as_deref(), args.port, family)?)?;
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    let log = Log::stderr(common.verbosity());
    udp::serve(socket, &cfg, &Output::stdout(), &log, &shutdown)?;
    Ok(())
}

fn send(args: SendArgs, common: &CommonArgs) -> anyhow::Result<()> {
    let log = Log::stderr(common.verbosity());
    let words: Vec<String> = std::iter::once(args.host)
        .chain(args.port)
        .chain(args.messages)
        .collect();
    let (target, messages) = parse_target_args(&words)?;
    let cfg = SendConfig {
        wait: (!args.no_wait && !args.wait.is_zero()).then_some(args.wait),
        quit_word: (!args.quit_word.is_empty()).then_some(args.quit_word),
        repeat: args.repeat,
        interval: Duration::from_millis(args.interval),
        broadcast: args.broadcast,
        show: common.show(false),
        stamps: common.timestamps(),
        send: common.send_options(Framing::Raw, false),
    };
    let mut out = io::stdout().lock();
    let summary = udp::send(
        &target,
        common.family(),
        messages,
        io::stdin().lock(),
        &cfg,
        &mut out,
        &log,
    )?;
    out.flush()?;
    summary.check()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = cli::parse::<Args>();
    let result = match args.command {
        Command::Serve(s) => serve(s, &args.common),
        Command::Send(s) => send(s, &args.common),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("udp-echo", e.as_ref()),
    }
}
