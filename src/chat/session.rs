//! A chat with one peer over TCP (lesson 11, the "QQ" chat) or UDP (lesson 10, customer service), full duplex.
//!
//! The notes' programs take turns: send, then block in `recv()` for the answer,
//! then block in `input()` for the next line. Neither side can speak twice in a
//! row. Here two threads do the two jobs at once, the way real chat programs
//! work: one reads what you type and sends it, the other waits on the socket
//! and prints whatever arrives, whenever it arrives. The main thread just waits
//! for whichever of them (or Ctrl-C) has news.
//!
//! # What ends a line on the wire
//!
//! The notes' programs send what was typed and nothing more, and compare a
//! whole `recv()` with `'exit'`: a line sent with `\n` shows them a blank line
//! and never ends their chat. Line-oriented peers (`nc`, telnet, `chat room`)
//! want the `\n`. With no `--eol`, the rule is:
//!
//! - until the peer has sent a line ending, we send none: what the notes'
//!   programs expect (the lesson 11 client and the lesson 10 customer speak
//!   first and never send one; their servers wait for us to speak first);
//! - once the peer's bytes contain `\n` (nc) or `\r\n` (telnet), our lines
//!   end the same way;
//! - a `chat room` (its greeting) and another `chat` (its hello, below) get `\n`.
//!
//! A received chunk that does not end in `\n` is shown as one message rather
//! than held back waiting for the rest.
//!
//! # Telling another chat from the notes' programs
//!
//! Two chats want more than the notes' programs can take: lines ended by `\n`
//! (so that two lines sent at once are not shown glued, lesson 13) and each
//! other's `--name`. Anything sent in the byte stream would be printed by a
//! Python peer (`客户端： /nick bob`) and use up its turn. So each chat, as the
//! connection opens, sends one byte of TCP *urgent data* ([`HELLO`], sent with
//! `MSG_OOB`): a program that only calls `recv()` never sees it, as the urgent
//! byte is taken out of the stream, while a chat asks for it with
//! `recv(MSG_OOB)`. A chat that receives the hello knows the peer is a chat
//! that has heard, or will hear, its own hello first: it switches to `\n` and
//! announces its name as `/nick NAME`. Before our first line goes out, we give
//! the peer's hello [`HELLO_WAIT`] to arrive, so even piped lines are framed.
//!
//! Over UDP each datagram is one message, so no line ending is needed, and
//! there is no second channel for a hello: `--name` is not sent over UDP.
//! There is no connection either, so nothing tells the other side we left
//! unless we say so: at the end of input and on Ctrl-C we send `bye`, which is
//! what lesson 10's peers wait for.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::addr::{describe_io, display_addr};
use crate::chat::editor::{Keyboard, LineEditor, Screen, Typed};
use crate::chat::protocol;
use crate::codec::{Encoding, TextDecoder};
use crate::error::Blame;
use crate::hex::HexDumper;
use crate::message::{
    Outgoing, SendError, SendOptions, Show, Unit, invalid_bytes_warning, invalid_sample_warning,
    push_record, read_chunk,
};
use crate::output::{Log, Timestamps};
use crate::shutdown::Shutdown;
use crate::sys::UrgentWatch;

/// The word sent over UDP when we leave without having typed a quit word.
const UDP_GOODBYE: &str = "bye";

/// The byte a chat sends as TCP urgent data when the connection opens, to
/// tell another chat what it is (see the module docs).
pub const HELLO: u8 = 0;

/// How long our first line waits for the peer's hello (or a room's greeting):
/// a round trip plus the peer's `accept()` being scheduled, with room to spare
/// for a loaded machine. Only piped input ever waits (once, and against a
/// peer that never says hello: the notes' servers); nobody types that fast.
pub const HELLO_WAIT: Duration = Duration::from_millis(500);

/// Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP header bytes).
const MAX_DATAGRAM: usize = 65_507;

/// Longest line read from a pipe in one piece (a longer one goes out in pieces).
const MAX_LINE: usize = 64 * 1024;

/// How long a reader blocks before it looks whether the chat is over (UDP has
/// no `shutdown()` to wake it).
const POLL: Duration = Duration::from_millis(100);

/// What ends each line we send (`--eol`; without it, see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Eol {
    /// Nothing: what the notes' peers expect (they compare a whole `recv()` with `'exit'`).
    None,
    /// `\n`, as a terminal or `nc` sends.
    Lf,
    /// `\r\n`, as Windows tools and telnet send.
    Crlf,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Eol::None => b"",
            Eol::Lf => b"\n",
            Eol::Crlf => b"\r\n",
        }
    }
}

/// How a chat behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Our name, announced as `/nick NAME` to a peer known to be a chat or a room.
    pub name: Option<String>,
    /// What ends each line we send; None: as the peer does (module docs).
    pub eol: Option<Eol>,
    /// Lines that end the chat when typed or received (`exit`, `bye`, …).
    pub quit_words: Vec<String>,
    /// How received messages are shown (text in an encoding, or hex).
    pub show: Show,
    /// How typed lines are encoded.
    pub send: SendOptions,
    /// After we stop sending over TCP, how long to wait for the peer to close.
    pub linger: Duration,
    /// `--timestamps`: the local time before each message shown.
    pub stamps: Option<Timestamps>,
    /// Send the hello (TCP urgent data) that tells another chat we are one;
    /// `--no-hello` for a path that clears the urgent flag, where it would
    /// arrive as a NUL in front of our first line.
    pub hello: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            eol: None,
            quit_words: vec!["exit".into(), "bye".into()],
            show: Show::Text(encoding_rs::UTF_8),
            send: SendOptions::default(),
            linger: Duration::from_secs(1),
            stamps: None,
            hello: true,
        }
    }
}

impl Config {
    fn quit_word(&self, line: &str) -> Option<String> {
        let line = line.trim();
        self.quit_words.iter().find(|w| *w == line).cloned()
    }
}

/// The socket a chat runs over.
pub enum Link {
    /// A TCP connection (accepted or dialled).
    Tcp(TcpStream),
    /// A UDP socket. With a peer, the socket is connected to it and only its
    /// datagrams arrive (`chat --udp connect`); without one, we answer whoever
    /// wrote last (`chat --udp listen`).
    Udp(UdpSocket, Option<SocketAddr>),
}

/// Where typed lines come from.
pub enum Input {
    /// Lines from a pipe or file, sent as they are.
    Lines(Box<dyn Read + Send>),
    /// A terminal, edited with a [`LineEditor`] whose [`Screen`] shows the peer.
    Terminal(Box<LineEditor>),
}

/// How a chat ended (all of them are a normal end: exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// We typed a quit word.
    WeQuit(String),
    /// The peer sent a quit word.
    PeerQuit(String),
    /// The peer closed the connection.
    PeerClosed,
    /// The peer closed the connection with a reset: it left without reading
    /// everything we sent (at least our hello, when it is not a chat).
    PeerReset,
    /// Our input ended (Ctrl-D, end of a pipe).
    InputEnded,
    /// Ctrl-C.
    Interrupted,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::WeQuit(w) => write!(f, "you said {w}; chat over"),
            Ending::PeerQuit(w) => write!(f, "the peer said {w}; chat over"),
            Ending::PeerClosed => write!(f, "the peer closed the connection"),
            Ending::PeerReset => write!(f, "the peer closed the connection (reset)"),
            Ending::InputEnded => write!(f, "end of input; chat over"),
            Ending::Interrupted => write!(f, "interrupted; chat over"),
        }
    }
}

/// Why a chat failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Sending or receiving failed.
    #[error("{addr}: {what}: {}", describe_io(.error))]
    Io {
        /// The peer.
        addr: String,
        /// `send`, `receive`.
        what: &'static str,
        /// The error.
        error: io::Error,
    },
    /// A typed line could not be encoded (`--strict-encoding`, bad `--send-hex`).
    #[error("{0}")]
    Message(#[from] SendError),
    /// Reading our own input failed.
    #[error("reading input: {0}")]
    Input(#[source] io::Error),
    /// Writing to the screen failed.
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
}

impl Blame for Error {
    fn is_usage(&self) -> bool {
        match self {
            Error::Message(e) => e.is_usage(),
            _ => false,
        }
    }
}

enum Event {
    Typed(Vec<u8>),
    /// The peer turned out to be a chat or a room: time to tell our name.
    PeerKnown,
    InputEnded,
    InputFailed(io::Error),
    PeerQuit(String),
    PeerClosed,
    PeerReset,
    PeerFailed(io::Error),
    OutputFailed(io::Error),
    Interrupted,
}

/// Run a chat until someone quits, the peer leaves, input ends or Ctrl-C.
///
/// Received messages go to `screen` as `peer> text` (the peer's `/nick` name
/// once it announces one); logs go to `log`. The closing line (`the peer said
/// bye; chat over`) is logged after the line editor, if any, has left the
/// terminal, so it lands on a line of its own.
pub fn run(
    link: Link,
    cfg: &Config,
    input: Input,
    screen: &Screen,
    log: &Log,
    shutdown: &Shutdown,
) -> Result<Ending, Error> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let _waker = {
        let tx = tx.clone();
        shutdown.on_trigger(move || {
            let _ = tx.send(Event::Interrupted);
        })
    };
    let peer = Arc::new(PeerInfo::default());
    let mut chat = Chat::new(link, cfg, peer.clone(), log)?;
    let mut keyboard =
        spawn_input(input, screen, &cfg.quit_words, tx.clone()).map_err(Error::Input)?;
    let reader = chat.spawn_reader(cfg, screen, log, peer, tx, stop.clone())?;
    let result = chat.converse(&rx, cfg);
    stop.store(true, Ordering::SeqCst);
    chat.close();
    let _ = reader.join();
    // The editor goes first, then what waited for it, then the last word.
    screen.hold();
    if let Some(keyboard) = &mut keyboard {
        keyboard.stop();
    }
    screen.close();
    if let Ok(ending) = &result {
        log.info(format_args!("{ending}"));
    }
    result
}

/// What we have learnt about the peer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing yet: maybe the notes' programs, maybe nc.
    #[default]
    Unknown,
    /// Another `chat` (its hello came).
    Chat,
    /// A `chat room` (its greeting came).
    Room,
}

#[derive(Debug, Default, Clone, Copy)]
struct Known {
    kind: Kind,
    /// How the peer ends its lines, once it has sent one.
    eol: Option<Eol>,
    /// Anything at all came (hello, bytes, or the end).
    heard: bool,
}

/// What the reader learns about the peer, for the sender.
#[derive(Default)]
struct PeerInfo {
    known: Mutex<Known>,
    changed: Condvar,
}

impl PeerInfo {
    fn get(&self) -> Known {
        *lock(&self.known)
    }

    /// Update what we know; true if the peer just became known as a chat or room.
    fn learn(&self, f: impl FnOnce(&mut Known)) -> bool {
        let mut k = lock(&self.known);
        let before = k.kind;
        f(&mut k);
        k.heard = true;
        self.changed.notify_all();
        before == Kind::Unknown && k.kind != Kind::Unknown
    }

    /// Wait until anything came from the peer, or `deadline`.
    fn wait_heard(&self, deadline: Instant) {
        let mut k = lock(&self.known);
        while !k.heard {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            k = self
                .changed
                .wait_timeout(k, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The sending side of a chat, run on the calling thread.
struct Chat {
    link: Link,
    /// Where UDP datagrams go: the fixed peer, or whoever wrote last.
    last_peer: Arc<Mutex<Option<SocketAddr>>>,
    peer: Arc<PeerInfo>,
    /// `--name`, announced as `/nick NAME`.
    name: Option<String>,
    /// Whether our name was announced.
    told: bool,
    outgoing: Outgoing,
    /// `--eol`, when given.
    eol: Option<Eol>,
    /// Until when our first line waits for the peer's hello (TCP only).
    hello_deadline: Option<Instant>,
    hex: bool,
    log: Log,
}

impl Chat {
    fn new(link: Link, cfg: &Config, peer: Arc<PeerInfo>, log: &Log) -> Result<Chat, Error> {
        let fixed = match &link {
            Link::Udp(socket, Some(peer)) => {
                socket.connect(peer).map_err(|error| Error::Io {
                    addr: display_addr(peer),
                    what: "connect",
                    error,
                })?;
                Some(*peer)
            }
            _ => None,
        };
        let hello_deadline = match &link {
            Link::Tcp(stream) if cfg.hello => {
                say_hello(stream, log);
                Some(Instant::now() + HELLO_WAIT)
            }
            _ => None,
        };
        Ok(Chat {
            link,
            last_peer: Arc::new(Mutex::new(fixed)),
            peer,
            name: cfg.name.clone(),
            told: false,
            outgoing: Outgoing::new(cfg.send),
            eol: cfg.eol,
            hello_deadline,
            hex: cfg.send.hex,
            log: log.clone(),
        })
    }

    fn peer_name(&self) -> String {
        match &self.link {
            Link::Tcp(s) => s.peer_addr().map(|a| display_addr(&a)).ok(),
            Link::Udp(..) => lock(&self.last_peer).as_ref().map(display_addr),
        }
        .unwrap_or_else(|| "peer".into())
    }

    fn spawn_reader(
        &self,
        cfg: &Config,
        screen: &Screen,
        log: &Log,
        peer: Arc<PeerInfo>,
        tx: Sender<Event>,
        stop: Arc<AtomicBool>,
    ) -> Result<thread::JoinHandle<()>, Error> {
        let udp = matches!(self.link, Link::Udp(..));
        let mut view = PeerView::new(cfg, screen.clone(), log.clone(), peer, udp);
        let clone_err = |error| Error::Io {
            addr: self.peer_name(),
            what: "receive",
            error,
        };
        let handle = match &self.link {
            Link::Tcp(stream) => {
                let stream = stream.try_clone().map_err(clone_err)?;
                thread::spawn(move || read_tcp(stream, &mut view, &tx))
            }
            Link::Udp(socket, fixed) => {
                let socket = socket.try_clone().map_err(clone_err)?;
                socket.set_read_timeout(Some(POLL)).map_err(clone_err)?;
                let reader = UdpReader {
                    socket,
                    connected: fixed.is_some(),
                    last_peer: self.last_peer.clone(),
                    stop,
                };
                thread::spawn(move || reader.run(&mut view, &tx))
            }
        };
        Ok(handle)
    }

    /// What ends our lines now: `--eol`, else as the module docs say.
    fn line_end(&self) -> &'static [u8] {
        if let Some(eol) = self.eol {
            return eol.bytes();
        }
        let known = self.peer.get();
        match known.kind {
            Kind::Chat | Kind::Room => Eol::Lf,
            Kind::Unknown => known.eol.unwrap_or(Eol::None),
        }
        .bytes()
    }

    /// Tell the peer our name as `/nick NAME`, the way a room learns it, once
    /// the peer is known to be a chat or a room: anyone else would print it.
    fn announce(&mut self) -> Result<(), Error> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        if self.told || self.peer.get().kind == Kind::Unknown {
            return Ok(());
        }
        let mut wire = format!("/nick {name}").into_bytes();
        wire.extend_from_slice(self.line_end());
        self.told = true;
        self.send_bytes(&wire)
    }

    /// Wait for lines to send and for news from the peer, until the chat ends.
    fn converse(&mut self, rx: &Receiver<Event>, cfg: &Config) -> Result<Ending, Error> {
        loop {
            let event = rx.recv().unwrap_or(Event::InputEnded);
            let ending = match event {
                Event::Typed(line) => {
                    let quit = cfg.quit_word(&String::from_utf8_lossy(&line));
                    self.send_line(&line)?;
                    match quit {
                        Some(word) => Ending::WeQuit(word),
                        None => continue,
                    }
                }
                Event::PeerKnown => {
                    self.announce()?;
                    continue;
                }
                Event::InputEnded => Ending::InputEnded,
                Event::InputFailed(e) => return Err(Error::Input(e)),
                Event::PeerQuit(word) => Ending::PeerQuit(word),
                Event::PeerClosed => Ending::PeerClosed,
                Event::PeerReset => Ending::PeerReset,
                Event::PeerFailed(error) => {
                    return Err(Error::Io {
                        addr: self.peer_name(),
                        what: "receive",
                        error,
                    });
                }
                Event::OutputFailed(e) => return Err(Error::Output(e)),
                Event::Interrupted => Ending::Interrupted,
            };
            self.goodbye(&ending, rx, cfg.linger);
            return Ok(ending);
        }
    }

    /// Leave politely. Over TCP, after our last line: stop sending (the peer's
    /// `recv()` returns `b''`, lesson 05) and give the peer a moment to close,
    /// so our last words are read before the connection goes. Over UDP, say
    /// `bye`, since nothing else would tell the peer.
    fn goodbye(&mut self, ending: &Ending, rx: &Receiver<Event>, linger: Duration) {
        match (&self.link, ending) {
            (Link::Tcp(stream), Ending::WeQuit(_) | Ending::InputEnded) => {
                let _ = stream.shutdown(Direction::Write);
                let deadline = Instant::now() + linger;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(
                            Event::PeerClosed
                            | Event::PeerReset
                            | Event::PeerQuit(_)
                            | Event::PeerFailed(_),
                        )
                        | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                        Ok(_) => {}
                    }
                }
            }
            (Link::Udp(..), Ending::InputEnded | Ending::Interrupted) => {
                let mut wire = UDP_GOODBYE.as_bytes().to_vec();
                wire.extend_from_slice(self.line_end());
                let _ = self.send_bytes(&wire);
            }
            _ => {}
        }
    }

    fn send_line(&mut self, line: &[u8]) -> Result<(), Error> {
        // The first line waits (a moment at most) for the peer's hello or
        // greeting: how it must end depends on who the peer is.
        if let Some(deadline) = self.hello_deadline.take() {
            self.peer.wait_heard(deadline);
        }
        self.announce()?;
        let wire = self.outgoing.stdin_chunk(line)?;
        if let Some(w) = wire.warning(self.outgoing.options().encoding) {
            self.log.warn(format_args!("{w}"));
        }
        let mut bytes = wire.bytes;
        if !self.hex {
            bytes.extend_from_slice(self.line_end());
        }
        self.send_bytes(&bytes)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match &self.link {
            Link::Tcp(stream) => {
                (&mut &*stream)
                    .write_all(bytes)
                    .map_err(|error| Error::Io {
                        addr: self.peer_name(),
                        what: "send",
                        error,
                    })?;
            }
            Link::Udp(socket, fixed) => {
                if bytes.len() > MAX_DATAGRAM {
                    self.log.warn(format_args!(
                        "a {}-byte line does not fit in one datagram (at most {MAX_DATAGRAM}); not sent",
                        bytes.len()
                    ));
                    return Ok(());
                }
                let Some(peer) = *lock(&self.last_peer) else {
                    self.log.warn(format_args!(
                        "nobody has written yet, so there is nobody to answer; not sent"
                    ));
                    return Ok(());
                };
                let sent = if fixed.is_some() {
                    socket.send(bytes)
                } else {
                    socket.send_to(bytes, peer)
                };
                match sent {
                    Ok(_) => {}
                    // The ICMP "port unreachable" of an earlier datagram, reported now:
                    // the peer is not (yet) there. UDP has no connection to lose.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        self.log.warn(format_args!(
                            "{} is not listening (port unreachable)",
                            display_addr(&peer)
                        ));
                    }
                    Err(error) => {
                        return Err(Error::Io {
                            addr: display_addr(&peer),
                            what: "send",
                            error,
                        });
                    }
                }
            }
        }
        self.log.verbose(format_args!(
            "sent {} bytes to {}",
            bytes.len(),
            self.peer_name()
        ));
        Ok(())
    }

    /// Wake the reader: a TCP `shutdown()` makes its `recv()` return.
    fn close(&self) {
        if let Link::Tcp(stream) = &self.link {
            let _ = stream.shutdown(Direction::Both);
        }
    }
}

/// Send our hello: one byte of urgent data, which only another chat asks for.
fn say_hello(stream: &TcpStream, log: &Log) {
    match crate::sys::send_urgent(stream, HELLO) {
        Ok(()) => log.verbose(format_args!(
            "sent chat's hello: 1 byte of TCP urgent data (MSG_OOB), which a program that only calls recv() never sees"
        )),
        Err(e) => log.verbose(format_args!("could not send chat's hello: {e}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read what we type, on its own thread. Lines from a pipe block in `read()`
/// until the process ends; a terminal's [`Keyboard`] is stopped by the caller,
/// or stops by itself after a quit word (no prompt for a line never sent).
fn spawn_input(
    input: Input,
    screen: &Screen,
    quit_words: &[String],
    tx: Sender<Event>,
) -> io::Result<Option<Keyboard>> {
    match input {
        Input::Lines(r) => {
            thread::Builder::new()
                .name("chat-input".into())
                .spawn(move || read_lines(BufReader::new(r), &tx))?;
            Ok(None)
        }
        Input::Terminal(editor) => {
            let quit_words = quit_words.to_vec();
            let keyboard = Keyboard::spawn(*editor, screen.clone(), move |typed| {
                let event = match typed {
                    Ok(Typed::Line(line)) => {
                        if quit_words.iter().any(|w| w == line.trim()) {
                            let _ = tx.send(Event::Typed(line.into_bytes()));
                            return false;
                        }
                        Event::Typed(line.into_bytes())
                    }
                    Ok(Typed::Interrupted) => Event::Interrupted,
                    Ok(Typed::End) => Event::InputEnded,
                    Err(e) => Event::InputFailed(e),
                };
                tx.send(event).is_ok()
            })?;
            Ok(Some(keyboard))
        }
    }
}

fn read_lines(mut reader: impl BufRead, tx: &Sender<Event>) {
    let mut line = Vec::new();
    loop {
        match read_chunk(&mut reader, &mut line, MAX_LINE) {
            Ok(0) => {
                let _ = tx.send(Event::InputEnded);
                return;
            }
            Ok(_) => {
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                if tx.send(Event::Typed(body.to_vec())).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Event::InputFailed(e));
                return;
            }
        }
    }
}

/// How the peer's words are shown: as `name> text` lines, or as a room's
/// lines unchanged. Also spots the peer's quit word and `/nick`, and learns
/// who the peer is.
struct PeerView {
    label: String,
    /// Our own name, as the prompt shows it before what we type.
    own: String,
    peer: Arc<PeerInfo>,
    udp: bool,
    first_line: bool,
    quit_words: Vec<String>,
    hex: Option<HexDumper>,
    /// What the peer's bytes are decoded from (with `--hex`, still used to spot
    /// the quit word).
    encoding: &'static Encoding,
    screen: Screen,
    log: Log,
    shown: Vec<u8>,
    stamps: Option<Timestamps>,
}

impl PeerView {
    fn new(cfg: &Config, screen: Screen, log: Log, peer: Arc<PeerInfo>, udp: bool) -> Self {
        PeerView {
            label: "peer".into(),
            own: cfg.name.clone().unwrap_or_else(|| "me".into()),
            peer,
            udp,
            first_line: true,
            quit_words: cfg.quit_words.clone(),
            stamps: cfg.stamps.clone(),
            hex: (cfg.show == Show::Hex).then(HexDumper::new),
            encoding: match cfg.show {
                Show::Text(enc) => enc,
                Show::Hex | Show::Raw => encoding_rs::UTF_8,
            },
            screen,
            log,
            shown: Vec::new(),
        }
    }

    /// The peer's hello came: it is a chat.
    fn hello(&mut self, tx: &Sender<Event>) {
        if self.peer.learn(|k| {
            if k.kind == Kind::Unknown {
                k.kind = Kind::Chat;
            }
        }) {
            self.log.verbose(format_args!(
                "the peer is a chat (its hello came as urgent data): lines end with \\n"
            ));
            let _ = tx.send(Event::PeerKnown);
        }
    }

    /// Learn from raw bytes received: the peer's line ending, and that it spoke.
    /// Over TCP the first line ending seen stays; over UDP each datagram says
    /// how our answer to it ends (we answer whoever wrote last).
    fn learn_eol(&mut self, raw: &[u8]) {
        let seen = raw.iter().position(|&b| b == b'\n').map(|i| {
            if i > 0 && raw[i - 1] == b'\r' {
                Eol::Crlf
            } else {
                Eol::Lf
            }
        });
        let mut new = None;
        let udp = self.udp;
        self.peer.learn(|k| {
            if udp {
                k.eol = Some(seen.unwrap_or(Eol::None));
            } else if k.eol.is_none()
                && let Some(eol) = seen
            {
                k.eol = Some(eol);
                new = (k.kind == Kind::Unknown).then_some(eol);
            }
        });
        if let Some(eol) = new {
            self.log.verbose(format_args!(
                "the peer ends its lines with {}: so do we (--eol sets it)",
                if eol == Eol::Crlf { "\\r\\n" } else { "\\n" }
            ));
        }
    }

    /// Show one message (a read's worth of text, or one datagram). Returns the
    /// quit word if the peer sent one; lines after it are not shown.
    ///
    /// Another chat or a room sends one line per message, so each line is a
    /// record of its own. Anything else (the notes' programs, nc) is shown
    /// the way the other tools show `--framing raw`: what one read (or one
    /// datagram) brought is one record, `peer> first line` with the others
    /// marked under it, so that lesson 13's sticky packets stay visible.
    fn message(
        &mut self,
        raw: &[u8],
        text: &str,
        tx: &Sender<Event>,
    ) -> Result<Option<String>, io::Error> {
        self.shown.clear();
        self.learn_eol(raw);
        let time = self.stamps.as_ref().map(|s| s.now() + " ");
        let time = time.as_deref().unwrap_or("");
        let mut quit = None;
        let mut said: Vec<&str> = Vec::new();
        let body = text.strip_suffix('\n').unwrap_or(text);
        for line in body.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if std::mem::take(&mut self.first_line)
                && line.starts_with(protocol::GREETING)
                && self.peer.learn(|k| k.kind = Kind::Room)
            {
                let _ = tx.send(Event::PeerKnown);
            }
            if self.peer.get().kind == Kind::Room {
                push_record(time, line, line.len(), Unit::Message, &mut self.shown);
                continue;
            }
            if let Some(word) = self.quit_words.iter().find(|w| *w == line.trim()) {
                quit = Some(word.clone());
                break;
            }
            if let Some(name) = line.strip_prefix("/nick ").map(str::trim)
                && protocol::check_name(name).is_ok()
                // Our own lines are shown as `me> text`: a peer called `me`
                // could pass their words off as ours.
                && !protocol::looks_alike(name, &self.own)
            {
                self.log
                    .info(format_args!("{} is now known as {name}", self.label));
                self.label = name.to_string();
                continue;
            }
            said.push(line);
        }
        let head = format!("{time}{}> ", self.label);
        let unit = if self.udp { Unit::Datagram } else { Unit::Read };
        if let Some(dumper) = &mut self.hex {
            let dump = dumper.dump(raw);
            if !dump.is_empty() {
                push_record(&head, &dump, raw.len(), unit, &mut self.shown);
            }
        } else if self.peer.get().kind == Kind::Chat {
            for line in said.into_iter().filter(|l| !l.is_empty()) {
                push_record(&head, line, line.len(), Unit::Message, &mut self.shown);
            }
        } else {
            // Blank lines inside a read are part of what it brought; around
            // it, they are only the line endings of a peer that sends them.
            let first = said.iter().position(|l| !l.is_empty());
            let last = said.iter().rposition(|l| !l.is_empty());
            if let (Some(first), Some(last)) = (first, last) {
                let body = said[first..=last].join("\n");
                push_record(&head, &body, raw.len(), unit, &mut self.shown);
            }
        }
        if !self.shown.is_empty() {
            self.screen.show(&self.shown)?;
        }
        Ok(quit)
    }
}

fn deliver(view: &mut PeerView, raw: &[u8], text: &str, tx: &Sender<Event>) -> bool {
    match view.message(raw, text, tx) {
        Ok(None) => true,
        Ok(Some(word)) => {
            let _ = tx.send(Event::PeerQuit(word));
            false
        }
        Err(e) => {
            let _ = tx.send(Event::OutputFailed(e));
            false
        }
    }
}

/// Wait until the peer sent something: bytes (true), or urgent data only
/// (false, after taking it: a chat's hello, or anything else, ignored).
fn wait_tcp(
    urgent: &mut UrgentWatch,
    stream: &TcpStream,
    view: &mut PeerView,
    tx: &Sender<Event>,
) -> io::Result<bool> {
    let woken = urgent.wait(stream)?;
    if woken.urgent {
        view.hello(tx);
    }
    Ok(woken.data)
}

fn read_tcp(stream: TcpStream, view: &mut PeerView, tx: &Sender<Event>) {
    // One decoder for the whole connection: a character split between two
    // reads is completed, not garbled (lesson 06).
    let mut decoder = TextDecoder::new(view.encoding);
    let mut buf = vec![0u8; 64 * 1024];
    let mut urgent = UrgentWatch::new(HELLO);
    loop {
        match wait_tcp(&mut urgent, &stream, view, tx) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                let _ = tx.send(Event::PeerFailed(e));
                return;
            }
        }
        let n = match (&mut &stream).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A program that closes with bytes of ours unread resets the
            // connection instead of closing it; our hello is such a byte for
            // any peer that never reads. Either way the peer has left.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                view.peer.learn(|_| {});
                let _ = tx.send(Event::PeerReset);
                return;
            }
            Err(e) => {
                let _ = tx.send(Event::PeerFailed(e));
                return;
            }
        };
        if n > 0 {
            view.log.verbose(format_args!("received {n} bytes"));
        }
        let mut text = String::new();
        if n == 0 {
            decoder.decode_into(&[], true, &mut text);
        } else {
            // One read, one record: a read that is not valid text shows its
            // unfinished last character now, not in front of the next read.
            decoder.decode_read_into(&buf[..n], &mut text);
        }
        if decoder.take_error_warning() {
            view.log.warn(format_args!(
                "{}",
                invalid_bytes_warning(decoder.encoding(), &buf[..n])
            ));
        }
        if (!text.is_empty() || n > 0) && !deliver(view, &buf[..n], &text, tx) {
            return;
        }
        if n == 0 {
            view.peer.learn(|_| {});
            let _ = tx.send(Event::PeerClosed);
            return;
        }
    }
}
struct UdpReader {
    socket: UdpSocket,
    connected: bool,
    last_peer: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl UdpReader {
    fn run(self, view: &mut PeerView, tx: &Sender<Event>) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut refused = false;
        while !self.stop.load(Ordering::SeqCst) {
            let (n, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                // An ICMP "port unreachable" for something we sent: the peer is
                // not there (yet). Say so once; it may still start.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if !refused {
                        refused = true;
                        let who = lock(&self.last_peer)
                            .as_ref()
                            .map(display_addr)
                            .unwrap_or_else(|| "the peer".into());
                        view.log
                            .warn(format_args!("{who} is not listening (port unreachable)"));
                    }
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(Event::PeerFailed(e));
                    return;
                }
            };
            refused = false;
            if !self.connected {
                let mut last = lock(&self.last_peer);
                if *last != Some(from) {
                    view.log
                        .info(format_args!("message from {}", display_addr(&from)));
                    *last = Some(from);
                }
            }
            view.log.verbose(format_args!(
                "received {n} bytes from {}",
                display_addr(&from)
            ));
            // Each datagram is a message of its own, decoded on its own.
            let mut decoder = TextDecoder::new(view.encoding);
            let text = decoder.decode(&buf[..n], true);
            if decoder.take_error_warning() {
                view.log.warn(format_args!(
                    "{}",
                    invalid_sample_warning(view.encoding, &buf[..n], true)
                ));
            }
            if !deliver(view, &buf[..n], &text, tx) {
                return;
            }
        }
    }
}
