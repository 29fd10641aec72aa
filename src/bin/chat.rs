//! chat: lessons 10 and 11's chat between two people (TCP or UDP), full duplex, and a multi-user room.

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use socktools::addr::{self, Family, display_addr, parse_port};
use socktools::chat::editor::{LineEditor, Screen};
use socktools::chat::protocol;
use socktools::chat::room;
use socktools::chat::session::{self, Eol, Input, Link};
use socktools::cli::{self, CommonArgs, parse_seconds, parse_size};
use socktools::codec::{Encoding, parse_label};
use socktools::error::{Error, UsageError};
use socktools::framing::Framing;
use socktools::net::{ListenSpec, tcp_listener, udp_socket};
use socktools::output::{Io, Log, Output, Timestamps, Verbosity};
use socktools::shutdown::Shutdown;
use socktools::udp;

/// The notes' ports: the QQ chat (lesson 11, notes 001) listens on 8008, the
/// customer-service desk (lesson 10, notes 004) on 8888.
const TCP_PORT: u16 = 8008;
const UDP_PORT: u16 = 8888;

/// `chat listen`'s port when none is given.
fn default_port(udp: bool) -> u16 {
    if udp { UDP_PORT } else { TCP_PORT }
}

const EXAMPLES: &str = "\
Examples:
  chat listen                          wait on port 8008 for one peer (lesson 11)
  chat connect 127.0.0.1 8008          dial it; type at any time, 'exit' or 'bye' ends
  chat --udp listen                    lesson 10's customer-service desk, on port 8888
  chat --udp connect 127.0.0.1 8888    the customer
  chat room                            many people on port 8008 (chat room --help)

No flags are needed against the notes' Python chat programs, another chat,
nc or a chat room: see chat listen --help for how lines end on the wire.";

const LISTEN_EXAMPLES: &str = "\
Examples:
  chat listen                          TCP on port 8008, like the notes' QQ chat server (lesson 11)
  chat listen 9000 --name alice        another port; another chat is told your name
  chat --udp listen                    UDP on port 8888, like the notes' service desk (lesson 10)
  chat listen --recv-encoding gbk      the peer is NetAssist on Windows (sends GBK, shows UTF-8)
  chat listen --eol lf                 the peer is nc and you speak first

How lines end: until the peer has sent a line ending, ours end with nothing,
as the notes' programs expect (they compare a whole recv() with 'exit'); then
as the peer's do (\\n from nc, \\r\\n from telnet). Another chat, or a chat room,
gets \\n: chats recognise each other by a hello sent as TCP urgent data, which
programs that only call recv() never see, and only then tell their --name.";

const CONNECT_EXAMPLES: &str = "\
Examples:
  chat connect 127.0.0.1 8008              the notes' QQ chat server, another chat, or a room
  chat connect 127.0.0.1:8008 --name bob   another chat or a room is told your name
  chat --udp connect 127.0.0.1 8888        the notes' UDP service desk (lesson 10)
  chat connect ::1 8008 -w 3               give up after 3 s if nobody answers
  chat connect 127.0.0.1 8008 --eol lf     the peer is nc -l and you speak first

No flags are needed against the notes' Python programs: see chat listen --help
for how lines end on the wire.";

const ROOM_EXAMPLES: &str = "\
Examples:
  chat room                          a room on port 8008, every interface; Ctrl-C closes it
  chat room 9000 --encoding gbk      members who do not say /enc speak GBK
  chat room 0 --bind 127.0.0.1       any free port, loopback only
  chat room > transcript.txt         keep what was said (stdout: name> text, UTF-8)

Members join with `chat connect HOST 8008`, `nc HOST 8008` or `telnet HOST 8008`, and type
lines. Commands: /nick NAME, /who, /enc LABEL (their encoding: utf-8, gbk, big5, ...;
/enc TYPED READ when they differ: NetAssist, which sends GBK and shows UTF-8, says
/enc gbk utf-8), /quit, /help; a line starting with // sends a message starting with /.";

#[derive(Parser)]
#[command(name = "chat", version, propagate_version = true, about = "Chat with one peer over TCP or UDP, both sides typing at any time.", after_help = EXAMPLES)]
struct Args {
    /// Chat over UDP datagrams (lesson 10): the same as --udp after listen or connect.
    #[arg(long)]
    udp: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wait for one peer on PORT, then chat (over UDP: answer whoever wrote last).
    #[command(after_help = LISTEN_EXAMPLES)]
    Listen(ListenArgs),
    /// Dial HOST PORT (or HOST:PORT, [IPv6]:PORT) and chat.
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// A multi-user chat room: every line a member types is relayed to the others as `name> text`.
    #[command(after_help = ROOM_EXAMPLES)]
    Room(RoomArgs),
}

#[derive(clap::Args)]
struct ListenArgs {
    /// Port to listen on [default: 8008, or 8888 with --udp] (0: any free port; the first stderr line says which).
    #[arg(value_parser = parse_port)]
    port: Option<u16>,

    /// Listen on this address only (default: every interface, IPv4 and IPv6).
    #[arg(short = 'b', long, value_name = "ADDR")]
    bind: Option<String>,

    #[command(flatten)]
    chat: ChatArgs,
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// The peer's host name or address.
    host: String,

    /// The peer's port, unless given with HOST.
    port: Option<String>,

    /// Connect timeout in seconds.
    #[arg(short = 'w', long = "timeout", default_value = "10", value_name = "SECS", value_parser = parse_seconds)]
    timeout: Duration,

    #[command(flatten)]
    chat: ChatArgs,
}

/// The flags of a chat with one peer (listen and connect).
#[derive(clap::Args)]
struct ChatArgs {
    /// Chat over UDP datagrams (lesson 10) instead of a TCP connection.
    #[arg(long)]
    udp: bool,

    /// Your name, shown before your lines; told (as /nick NAME) to another chat or a room, never to other programs, nor over UDP.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// What ends each line sent: none, lf or crlf [default: none until the peer sends a line ending, then the same; lf to another chat or a room].
    #[arg(long, value_enum, value_name = "EOL")]
    eol: Option<Eol>,

    /// Send nothing but what is typed: no hello (one byte of TCP urgent data that tells another chat we are one), so names are not told to another chat either; for a network that clears TCP's urgent flag.
    #[arg(long)]
    no_hello: bool,

    /// Another word that ends the chat when typed or received (besides exit and bye; repeatable).
    #[arg(long = "quit-word", value_name = "WORD")]
    quit_words: Vec<String>,

    #[command(flatten)]
    common: CommonArgs,
}

/// `chat room`: the room's own flags, and of the shared ones only those a room uses.
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

    /// The members' encoding until they say /enc LABEL: utf-8, gbk, gb18030, big5, … (any WHATWG label).
    #[arg(short = 'e', long, value_name = "LABEL", default_value = "utf-8", value_parser = parse_label)]
    encoding: &'static Encoding,

    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// More detail on stderr: every relayed line, every read and write (there is no -vv).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only errors on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Local time (HH:MM:SS.mmm) before each line of the transcript.
    #[arg(long)]
    timestamps: bool,
}

impl RoomArgs {
    fn config(&self) -> room::Config {
        let mut cfg = room::Config::default();
        cfg.max_users = self.max_users as usize;
        cfg.max_line = self.max_line;
        cfg.max_queue = self.max_queue;
        cfg.encoding = self.encoding;
        cfg.stamps = self.timestamps.then(Timestamps::local);
        cfg
    }

    fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose > 0) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }

    fn run(&self, shutdown: &Shutdown) -> Result<(), Error> {
        let family = Family::from_flags(self.ipv4, self.ipv6);
        let spec = ListenSpec::parse(self.bind.as_deref(), self.port, family)?;
        let listener = tcp_listener(spec)?;
        let io = Io::new(Output::stdout(), Log::stderr(self.verbosity()));
        room::serve(listener, &self.config(), io, shutdown)?;
        Ok(())
    }
}

/// A chat with one peer: `chat listen` or `chat connect`.
enum Peer<'a> {
    Listen(&'a ListenArgs),
    Connect(&'a ConnectArgs),
}

impl Peer<'_> {
    fn chat(&self) -> &ChatArgs {
        match self {
            Peer::Listen(a) => &a.chat,
            Peer::Connect(a) => &a.chat,
        }
    }
}

/// The socket to chat over; None when Ctrl-C came before a peer did.
fn link(peer: &Peer, udp: bool, log: &Log, shutdown: &Shutdown) -> Result<Option<Link>, Error> {
    let family = peer.chat().common.family();
    match peer {
        Peer::Listen(a) => {
            let port = a.port.unwrap_or(default_port(udp));
            let spec = ListenSpec::parse(a.bind.as_deref(), port, family)?;
            if udp {
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
        Peer::Connect(a) => {
            let words: Vec<String> = std::iter::once(a.host.clone())
                .chain(a.port.clone())
                .collect();
            let (target, rest) = addr::parse_target_args(&words)?;
            if !rest.is_empty() {
                return Err(UsageError(format!("unexpected argument \"{}\"", rest[0])).into());
            }
            if udp {
                let peer = addr::resolve(&target, family)?[0];
                let socket = udp::client::client_socket(&peer, false)?;
                log.info(format_args!(
                    "chatting with {} over UDP",
                    display_addr(&peer)
                ));
                return Ok(Some(Link::Udp(socket, Some(peer))));
            }
            let timeout = (!a.timeout.is_zero()).then_some(a.timeout);
            let stream = addr::connect(&target, family, timeout)?;
            log.info(format_args!(
                "connected to {}",
                display_addr(&stream.peer_addr()?)
            ));
            Ok(Some(Link::Tcp(stream)))
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    let peer = match &args.command {
        Command::Room(room) => {
            if args.udp {
                return Err(UsageError(
                    "--udp does not apply to the room (a room is TCP: members connect to it)"
                        .into(),
                )
                .into());
            }
            return room.run(&shutdown);
        }
        Command::Listen(a) => Peer::Listen(a),
        Command::Connect(a) => Peer::Connect(a),
    };
    let opts = peer.chat();
    let udp = args.udp || opts.udp;
    let verbosity = opts.common.verbosity();
    if let Some(name) = &opts.name
        && let Err(why) = protocol::check_name(name)
    {
        return Err(UsageError(format!("invalid --name \"{name}\": {why}")).into());
    }
    let mut quit_words = vec!["exit".to_string(), "bye".to_string()];
    quit_words.extend(opts.quit_words.iter().cloned());
    let mut cfg = session::Config::default();
    cfg.name = opts.name.clone();
    cfg.eol = opts.eol;
    cfg.quit_words = quit_words;
    cfg.show = opts.common.show(false);
    cfg.send = opts.common.send_options(Framing::Raw, false);
    cfg.linger = Duration::from_secs(1);
    cfg.stamps = opts.common.timestamps();
    cfg.hello = !opts.no_hello;
    let log = Log::stderr(verbosity);
    let Some(link) = link(&peer, udp, &log, &shutdown)? else {
        return Ok(());
    };
    if udp && opts.name.is_some() {
        log.info(format_args!(
            "note: over UDP --name only labels your own lines: nothing tells another chat from the notes' programs, which would print a /nick line"
        ));
    }
    // On a terminal, a line editor; its screen prints the peer's words and
    // our log above the line being typed.
    let terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
    let prompt = format!("{}> ", opts.name.as_deref().unwrap_or("me"));
    let (screen, input, log) = match terminal.then(|| LineEditor::open(&prompt)).flatten() {
        Some((editor, screen)) => {
            let log = if io::stderr().is_terminal() {
                Log::to_writer(screen.log_writer(), verbosity)
            } else {
                log
            };
            (screen, Input::Terminal(Box::new(editor)), log)
        }
        None => (
            Screen::plain(io::stdout(), io::stderr()),
            Input::Lines(Box::new(io::stdin())),
            log,
        ),
    };
    session::run(link, &cfg, input, &screen, &log, &shutdown)?;
    Ok(())
}

fn main() -> ExitCode {
    match run(cli::parse::<Args>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("chat", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The notes' ports, without binding them (tests never use fixed ports):
    /// the default chosen, and what `chat listen --help` says it is.
    #[test]
    fn listen_defaults_to_the_notes_ports() {
        assert_eq!((default_port(false), default_port(true)), (8008, 8888));
        let mut cmd = Args::command();
        let help = cmd
            .find_subcommand_mut("listen")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            help.contains("[default: 8008, or 8888 with --udp]"),
            "{help}"
        );
    }
}
