//! tcp-server: lessons 03 and 04's TCP server — one thread per client, echo or reply to each message.

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socktools::addr::parse_port;
use socktools::cli::{self, CommonArgs, FramingArgs, parse_seconds, parse_size};
use socktools::error::Error;
use socktools::message::Reply;
use socktools::net::{ListenSpec, tcp_listener};
use socktools::output::{Io, Log, Output};
use socktools::shutdown::Shutdown;
use socktools::sys::raise_fd_limit;
use socktools::tcp::server::{self, Config};

const EXAMPLES: &str = "\
Examples:
  tcp-server                                   echo server on port 8080, every interface
  tcp-server 9090 --reply 'ok, 问题正在处理中...'  reply to every message (lesson 04)
  tcp-server --once --reply '我是服务器, 你好客户端: {peer}'   one client, then exit (lesson 03)
  tcp-server 8080 --recv-encoding gbk --send-encoding utf-8
                                               NetAssist on Windows (sends GBK, shows UTF-8)
  tcp-server 8092 -v --timestamps              lesson 13: each read is one record, with its time
  tcp-server 0 --bind 127.0.0.1                any free port, loopback only
  tcp-server 9000 --once --raw > file          receive a file, like nc -l > file (a write error ends it with exit 1)
  tcp-server 8080 --idle-timeout 0 --max-per-client 4   no idle limit, at most 4 connections per address

Echo and encodings: when --recv-encoding and --send-encoding are the same (the default),
the echo sends back the bytes as they came, even ones that are not valid text; when they
differ, it decodes the text and sends it back re-encoded.";

#[derive(Parser)]
#[command(name = "tcp-server", version, about = "A multi-client TCP server: prints what each client sends as [ADDR] text, one record per read (or per --framing message), and echoes or replies.", after_help = EXAMPLES)]
struct Args {
    /// Port to listen on (0: any free port; the first stderr line says which).
    #[arg(default_value = "8080", value_parser = parse_port)]
    port: u16,

    /// Listen on this address only (default: every interface, IPv4 and IPv6).
    #[arg(short = 'b', long, value_name = "ADDR")]
    bind: Option<String>,

    /// Send back what each client sends (the default, except with --raw): byte for byte, or, when --recv-encoding and --send-encoding differ, the same text re-encoded.
    #[arg(long, group = "mode")]
    echo: bool,

    /// Answer each message with TEXT ({peer} becomes the client's address).
    #[arg(long, group = "mode", value_name = "TEXT")]
    reply: Option<String>,

    /// Read and discard, only counting bytes.
    #[arg(long, group = "mode")]
    sink: bool,

    /// Send stdin lines to the client, one client at a time (like nc -l).
    #[arg(long, group = "mode")]
    stdin: bool,

    /// Serve one client, then exit.
    #[arg(long)]
    once: bool,

    /// Most clients at once; more are told so and closed (lowered at start if the descriptor limit cannot hold them).
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Most connections from one IP address; more are told so and closed (default: no limit, as a classroom behind one NAT shares an address).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_per_client: Option<u32>,

    /// Disconnect a client that has sent nothing for SECS seconds, telling it why (0: never).
    #[arg(long, default_value = "300", value_name = "SECS", value_parser = parse_seconds)]
    idle_timeout: Duration,

    /// Most bytes held for unfinished --framing line/len messages, all clients together; each client may hold BYTES/2/--max-clients of its own (128K by default), so small messages are always served, and one that would overfill the shared rest is disconnected (suffixes K, M, G).
    #[arg(long, default_value = "256M", value_name = "BYTES", value_parser = parse_size)]
    max_buffered: usize,

    /// Write received bytes to stdout untouched (no [ADDR], no decoding); without a mode flag, does not echo.
    #[arg(long, conflicts_with_all = ["hex", "timestamps"])]
    raw: bool,

    /// Send each newline of --stdin input or --reply line framing as \r\n.
    #[arg(long)]
    crlf: bool,

    #[command(flatten)]
    framing: FramingArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn run(args: Args) -> Result<(), Error> {
    let family = args.common.family();
    let reply = match (args.reply, args.sink || args.stdin, args.echo) {
        (Some(text), ..) => Reply::Text(text),
        (_, true, _) => Reply::Nothing,
        (_, _, false) if args.raw => Reply::Nothing,
        _ => Reply::Echo,
    };
    let mut cfg = Config::default();
    cfg.reply = reply;
    cfg.sink = args.sink;
    cfg.once = args.once;
    cfg.max_clients = args.max_clients as usize;
    cfg.framing = args.framing.framing;
    cfg.max_frame = args.framing.max_frame;
    cfg.show = args.common.show(args.raw);
    cfg.stamps = args.common.timestamps();
    cfg.recv_encoding = args.common.recv_encoding();
    cfg.send = args.common.send_options(args.framing.framing, args.crlf);
    cfg.max_buffered = args.max_buffered;
    cfg.idle_timeout = (!args.idle_timeout.is_zero()).then_some(args.idle_timeout);
    cfg.max_per_client = args.max_per_client.map(|n| n as usize);
    cfg.fd_limit = raise_fd_limit();
    let listener = tcp_listener(ListenSpec::parse(args.bind.as_deref(), args.port, family)?)?;
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    let mut io = Io::new(Output::stdout(), Log::stderr(args.common.verbosity()));
    if args.stdin {
        io = io.with_stdin(Box::new(io::stdin()));
    }
    server::serve(listener, &cfg, io, &shutdown)?;
    Ok(())
}

fn main() -> ExitCode {
    match run(cli::parse::<Args>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("tcp-server", &e),
    }
}
