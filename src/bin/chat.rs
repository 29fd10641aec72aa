//! chat: lessons 10 and 11's chat between two people (TCP or UDP), full duplex, and a multi-user room.

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socktools::addr::{self, display_addr, parse_port};
use socktools::chat::editor::{RawMode, Screen};
use socktools::chat::room::{self, RoomConfig};
use socktools::chat::session::{self, ChatConfig, Eol, Input, Link};
use socktools::cli::{self, CommonArgs, UsageError, parse_seconds, parse_size};
use socktools::framing::Framing;
use socktools::net::{ListenSpec, tcp_listener, udp_socket};
use socktools::output::{Log, Output};
use socktools::shutdown::Shutdown;
use socktools::udp;

const EXAMPLES: &str = "\
Examples:
  chat listen                                  wait on port 8008 for one peer (lesson 11)
  chat connect 127.0.0.1 8008 --name alice     dial it; type at any time, 'exit' or 'bye' ends
  chat connect 127.0.0.1 8008 --eol none       talk to the notes' Python chat (no newline sent)
  chat --udp listen 8888                       lesson 10's customer service over UDP
  chat --udp connect 127.0.0.1 8888";

const ROOM_EXAMPLES: &str = "\
Examples:
  chat room                          a room on port 8008, every interface; Ctrl-C closes it
  chat room 9000 --encoding gbk      members who do not say /enc speak GBK (NetAssist)
  chat room 0 --bind 127.0.0.1       any free port, loopback only
  chat room > transcript.txt         keep what was said (stdout: name> text, UTF-8)

Members join with `chat connect HOST 8008`, `nc HOST 8008` or `telnet HOST 8008`, and type
lines. Commands: /nick NAME, /who, /enc LABEL (their encoding: utf-8, gbk, big5, ...),
/quit, /help; a line starting with // sends a message starting with /.";

#[derive(Parser)]
#[command(name = "chat", version, about = "Chat with one peer over TCP or UDP, both sides typing at any time.", after_help = EXAMPLES)]
struct Args {
    #[command(subcommand)]
    command: Command,

    /// Chat over UDP datagrams (lesson 10) instead of a TCP connection.
    #[arg(long, global = true)]
    udp: bool,

    /// Your name: announced to the peer (as a /nick line) when the chat starts.
    #[arg(long, global = true, value_name = "NAME")]
    name: Option<String>,

    /// What ends each line sent: none (the notes' Python peers), lf, crlf [default: lf, none with --udp].
    #[arg(long, global = true, value_enum, value_name = "EOL")]
    eol: Option<Eol>,

    /// Another word that ends the chat when typed or received (besides exit and bye; repeatable).
    #[arg(long = "quit-word", global = true, value_name = "WORD")]
    quit_words: Vec<String>,

    /// Connect timeout in seconds.
    #[arg(short = 'w', long = "timeout", global = true, default_value = "10", value_name = "SECS", value_parser = parse_seconds)]
    timeout: Duration,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Wait for one peer on PORT, then chat (over UDP: answer whoever wrote last).
    Listen {
        /// Port to listen on (0: any free port; the first stderr line says which).
        #[arg(default_value = "8008", value_parser = parse_port)]
        port: u16,
        /// Listen on this address only (default: every interface, IPv4 and IPv6).
        #[arg(short = 'b', long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Dial HOST PORT (or HOST:PORT, [IPv6]:PORT) and chat.
    Connect {
        /// The peer's host name or address.
        host: String,
        /// The peer's port, unless given with HOST.
        port: Option<String>,
    },
    /// A multi-user chat room: every line a member types is relayed to the others as `name> text`.
    #[command(after_help = ROOM_EXAMPLES)]
    Room(RoomArgs),
}

/// `chat room`. Of the shared flags, the room uses -4/-6, -e (the members'
/// default encoding), -v and -q; the others are refused.
#[derive(Debug, clap::Args)]
struct RoomArgs {
    /// Port to listen on (0: any free port; the first stderr line says which).
    #[arg(default_value_t = room::DEFAULT_PORT, value_parser = parse_port)]
    port: u16,

    /// Listen on this address only (default: every interface, IPv4 and IPv6).
    #[arg(short = 'b', long, value_name = "ADDR")]
    bind: Option<String>,

    /// Most members at once; one more is told the room is full.
    #[arg(long, default_value_t = room::DEFAULT_MAX_USERS as u32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_users: u32,

    /// Longest line in bytes (suffixes K, M); longer lines are cut, with a notice to the sender.
    #[arg(long, default_value = "8K", value_name = "BYTES", value_parser = parse_size)]
    max_line: usize,

    /// Most bytes waiting to be sent to one member; a member further behind is disconnected as too slow.
    #[arg(long, default_value = "256K", value_name = "BYTES", value_parser = parse_size)]
    max_queue: usize,
}

impl RoomArgs {
    /// The room's settings; shared flags that mean nothing to a room are refused, not ignored.
    fn config(&self, args: &Args) -> Result<RoomConfig, UsageError> {
        let c = &args.common;
        let unused = [
            (args.udp, "--udp"),
            (args.name.is_some(), "--name"),
            (args.eol.is_some(), "--eol"),
            (!args.quit_words.is_empty(), "--quit-word"),
            (c.send_encoding.is_some(), "--send-encoding"),
            (c.recv_encoding.is_some(), "--recv-encoding"),
            (c.strict_encoding, "--strict-encoding"),
            (c.hex, "--hex"),
            (c.send_hex, "--send-hex"),
        ];
        if let Some((_, flag)) = unused.iter().find(|(given, _)| *given) {
            return Err(UsageError(format!(
                "{flag} does not apply to the room (-e/--encoding sets the members' default encoding; each member may change theirs with /enc)"
            )));
        }
        Ok(RoomConfig {
            max_users: self.max_users as usize,
            max_line: self.max_line,
            max_queue: self.max_queue,
            encoding: c.encoding,
            ..RoomConfig::default()
        })
    }

    fn run(&self, args: &Args, shutdown: &Shutdown) -> anyhow::Result<()> {
        let cfg = self.config(args)?;
        let spec = ListenSpec::parse(self.bind.as_deref(), self.port, args.common.family())?;
        let listener = tcp_listener(spec)?;
        room::serve(
            listener,
            &cfg,
            Output::stdout(),
            Log::stderr(args.common.verbosity()),
            shutdown,
        )?;
        Ok(())
    }
}

/// The socket to chat over; None when Ctrl-C came before a peer did.
fn link(args: &Args, log: &Log, shutdown: &Shutdown) -> anyhow::Result<Option<Link>> {
    let family = args.common.family();
    match &args.command {
        Command::Listen { port, bind } => {
            let spec = ListenSpec::parse(bind.as_deref(), *port, family)?;
            if args.udp {
                let socket = udp_socket(spec)?;
                log.always(format_args!(
                    "listening on {}",
                    display_addr(&socket.local_addr()?)
                ));
                return Ok(Some(Link::Udp(socket, None)));
            }
            let listener = tcp_listener(spec)?;
            log.always(format_args!(
                "listening on {}",
                display_addr(&listener.local_addr()?)
            ));
            let accepted = {
                let _waker = shutdown.wake_listener(&listener)?;
                listener.accept()
            };
            if shutdown.is_triggered() {
                log.info(format_args!("interrupted before anyone connected"));
                return Ok(None);
            }
            let (stream, peer) = accepted?;
            // One peer: later callers are refused rather than left waiting.
            drop(listener);
            log.info(format_args!("{} connected", display_addr(&peer)));
            Ok(Some(Link::Tcp(stream)))
        }
        // Not a chat with one peer: `run` hands it to RoomArgs::run.
        Command::Room(_) => Ok(None),
        Command::Connect { host, port } => {
            let words: Vec<String> = std::iter::once(host.clone()).chain(port.clone()).collect();
            let (target, rest) = addr::parse_target_args(&words)?;
            if !rest.is_empty() {
                return Err(UsageError(format!("unexpected argument \"{}\"", rest[0])).into());
            }
            if args.udp {
                let peer = addr::resolve(&target, family)?[0];
                let socket = udp::client_socket(&peer, false)?;
                log.info(format_args!(
                    "chatting with {} over UDP",
                    display_addr(&peer)
                ));
                return Ok(Some(Link::Udp(socket, Some(peer))));
            }
            let timeout = (!args.timeout.is_zero()).then_some(args.timeout);
            let stream = addr::connect(&target, family, timeout)?;
            log.info(format_args!(
                "connected to {}",
                display_addr(&stream.peer_addr()?)
            ));
            Ok(Some(Link::Tcp(stream)))
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    if let Command::Room(room) = &args.command {
        return room.run(&args, &shutdown);
    }
    let log = Log::stderr(args.common.verbosity());
    if let Some(name) = &args.name
        && let Err(why) = room::check_name(name)
    {
        return Err(UsageError(format!("invalid --name \"{name}\": {why}")).into());
    }
    let mut quit_words = vec!["exit".to_string(), "bye".to_string()];
    quit_words.extend(args.quit_words.iter().cloned());
    let cfg = ChatConfig {
        name: args.name.clone(),
        eol: args
            .eol
            .unwrap_or(if args.udp { Eol::None } else { Eol::Lf }),
        quit_words,
        show: args.common.show(false),
        send: args.common.send_options(Framing::Raw, false),
        linger: Duration::from_secs(1),
    };
    let Some(link) = link(&args, &log, &shutdown)? else {
        return Ok(());
    };
    let terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
    let _raw = if terminal {
        RawMode::enable(io::stdin()).ok()
    } else {
        None
    };
    let (screen, input) = match &_raw {
        Some(_) => {
            let prompt = format!("{}> ", args.name.as_deref().unwrap_or("me"));
            (
                Screen::terminal(io::stdout(), &prompt),
                Input::Keys(Box::new(io::stdin())),
            )
        }
        None => (
            Screen::plain(io::stdout()),
            Input::Lines(Box::new(io::stdin())),
        ),
    };
    session::run(link, &cfg, input, &screen, &log, &shutdown)?;
    Ok(())
}

fn main() -> ExitCode {
    match run(cli::parse::<Args>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("chat", e.as_ref()),
    }
}
