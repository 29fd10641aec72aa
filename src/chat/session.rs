//! A chat with one peer over TCP (lesson 11, the "QQ" chat) or UDP (lesson 10, customer service), full duplex.
//!
//! The notes' programs take turns: send, then block in `recv()` for the answer,
//! then block in `input()` for the next line. Neither side can speak twice in a
//! row. Here two threads do the two jobs at once, the way real chat programs
//! work: one reads what you type and sends it, the other waits on the socket
//! and prints whatever arrives, whenever it arrives. The main thread just waits
//! for whichever of them (or Ctrl-C) has news.
//!
//! Staying compatible with the notes' peers takes two things:
//! - They compare a whole `recv()` with `'exit'`, so a line must be sent without
//!   a terminator for them to recognise it: [`Eol::None`]. Our default sends
//!   `\n` (lines are how TCP text is framed, lesson 13).
//! - They send without a newline, so a received chunk that does not end in
//!   `\n` is shown as one message rather than held back waiting for the rest.
//!
//! Over UDP each datagram is one message. There is no connection, so nothing
//! tells the other side we left unless we say so: at the end of input and on
//! Ctrl-C we send `bye`, which is what lesson 10's peers wait for.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::addr::{describe_io, display_addr};
use crate::chat::editor::{Edit, Screen};
use crate::chat::room;
use crate::codec::{Encoding, TextDecoder};
use crate::hex::HexDumper;
use crate::message::{
    Outgoing, SendError, SendOptions, Show, invalid_text_warning, push_visible, read_chunk,
};
use crate::output::Log;
use crate::shutdown::Shutdown;

/// The word sent over UDP when we leave without having typed a quit word.
const UDP_GOODBYE: &str = "bye";

/// Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP header bytes).
const MAX_DATAGRAM: usize = 65_507;

/// Longest line read from a pipe in one piece (a longer one goes out in pieces).
const MAX_LINE: usize = 64 * 1024;

/// How long a reader blocks before it looks whether the chat is over (UDP has
/// no `shutdown()` to wake it).
const POLL: Duration = Duration::from_millis(100);

/// What ends each line we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
pub struct ChatConfig {
    /// Our name, announced to the peer as `/nick NAME` when the chat starts.
    pub name: Option<String>,
    /// What ends each line we send.
    pub eol: Eol,
    /// Lines that end the chat when typed or received (`exit`, `bye`, …).
    pub quit_words: Vec<String>,
    /// How received messages are shown (text in an encoding, or hex).
    pub show: Show,
    /// How typed lines are encoded.
    pub send: SendOptions,
    /// After we stop sending over TCP, how long to wait for the peer to close.
    pub linger: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            name: None,
            eol: Eol::Lf,
            quit_words: vec!["exit".into(), "bye".into()],
            show: Show::Text(encoding_rs::UTF_8),
            send: SendOptions::default(),
            linger: Duration::from_secs(1),
        }
    }
}

impl ChatConfig {
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
    /// Key presses from a terminal in raw mode, edited on the [`Screen`].
    Keys(Box<dyn Read + Send>),
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
            Ending::InputEnded => write!(f, "end of input; chat over"),
            Ending::Interrupted => write!(f, "interrupted; chat over"),
        }
    }
}

/// Why a chat failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
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

enum Event {
    Typed(Vec<u8>),
    InputEnded,
    InputFailed(io::Error),
    PeerQuit(String),
    PeerClosed,
    PeerFailed(io::Error),
    OutputFailed(io::Error),
    Interrupted,
}

/// Run a chat until someone quits, the peer leaves, input ends or Ctrl-C.
///
/// Received messages go to `screen` as `peer> text` (the peer's `/nick` name
/// once it announces one); logs go to `log`.
pub fn run(
    link: Link,
    cfg: &ChatConfig,
    input: Input,
    screen: &Screen,
    log: &Log,
    shutdown: &Shutdown,
) -> Result<Ending, ChatError> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let _waker = {
        let tx = tx.clone();
        shutdown.on_trigger(move || {
            let _ = tx.send(Event::Interrupted);
        })
    };
    spawn_input(input, screen.clone(), tx.clone());
    let mut chat = Chat::new(link, cfg, log)?;
    let reader = chat.spawn_reader(cfg, screen, log, tx, stop.clone())?;
    chat.announce()?;
    let result = chat.converse(&rx, cfg, log);
    stop.store(true, Ordering::SeqCst);
    chat.close();
    let _ = reader.join();
    screen.close();
    result
}

/// The sending side of a chat, run on the calling thread.
struct Chat {
    link: Link,
    /// Where UDP datagrams go: the fixed peer, or whoever wrote last.
    last_peer: Arc<Mutex<Option<SocketAddr>>>,
    /// `--name`, announced as `/nick NAME`.
    name: Option<String>,
    /// Whether, and over UDP to whom, our name was announced.
    told: bool,
    told_to: Option<SocketAddr>,
    outgoing: Outgoing,
    eol: &'static [u8],
    hex: bool,
    log: Log,
}

impl Chat {
    fn new(link: Link, cfg: &ChatConfig, log: &Log) -> Result<Chat, ChatError> {
        let fixed = match &link {
            Link::Udp(socket, Some(peer)) => {
                socket.connect(peer).map_err(|error| ChatError::Io {
                    addr: display_addr(peer),
                    what: "connect",
                    error,
                })?;
                Some(*peer)
            }
            _ => None,
        };
        Ok(Chat {
            link,
            last_peer: Arc::new(Mutex::new(fixed)),
            name: cfg.name.clone(),
            told: false,
            told_to: None,
            outgoing: Outgoing::new(cfg.send),
            eol: cfg.eol.bytes(),
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
        cfg: &ChatConfig,
        screen: &Screen,
        log: &Log,
        tx: Sender<Event>,
        stop: Arc<AtomicBool>,
    ) -> Result<thread::JoinHandle<()>, ChatError> {
        let mut view = PeerView::new(cfg, screen.clone(), log.clone());
        let clone_err = |error| ChatError::Io {
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

    /// Tell the peer our name as `/nick NAME`, the way a room learns it: when
    /// the chat starts, and over `--udp listen` to each new peer before our
    /// first answer to it.
    fn announce(&mut self) -> Result<(), ChatError> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        let to = match &self.link {
            Link::Tcp(_) => None,
            Link::Udp(..) => *lock(&self.last_peer),
        };
        let due = match &self.link {
            Link::Tcp(_) => !self.told,
            Link::Udp(..) => to.is_some() && self.told_to != to,
        };
        if !due {
            return Ok(());
        }
        let mut wire = format!("/nick {name}").into_bytes();
        wire.extend_from_slice(self.eol);
        self.told = true;
        self.told_to = to;
        self.send_bytes(&wire)
    }

    /// Wait for lines to send and for news from the peer, until the chat ends.
    fn converse(
        &mut self,
        rx: &Receiver<Event>,
        cfg: &ChatConfig,
        log: &Log,
    ) -> Result<Ending, ChatError> {
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
                Event::InputEnded => Ending::InputEnded,
                Event::InputFailed(e) => return Err(ChatError::Input(e)),
                Event::PeerQuit(word) => Ending::PeerQuit(word),
                Event::PeerClosed => Ending::PeerClosed,
                Event::PeerFailed(error) => {
                    return Err(ChatError::Io {
                        addr: self.peer_name(),
                        what: "receive",
                        error,
                    });
                }
                Event::OutputFailed(e) => return Err(ChatError::Output(e)),
                Event::Interrupted => Ending::Interrupted,
            };
            self.goodbye(&ending, rx, cfg.linger);
            log.info(format_args!("{ending}"));
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
                        Ok(Event::PeerClosed | Event::PeerQuit(_) | Event::PeerFailed(_))
                        | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                        Ok(_) => {}
                    }
                }
            }
            (Link::Udp(..), Ending::InputEnded | Ending::Interrupted) => {
                let mut wire = UDP_GOODBYE.as_bytes().to_vec();
                wire.extend_from_slice(self.eol);
                let _ = self.send_bytes(&wire);
            }
            _ => {}
        }
    }

    fn send_line(&mut self, line: &[u8]) -> Result<(), ChatError> {
        self.announce()?;
        let wire = self.outgoing.stdin_chunk(line)?;
        if let Some(w) = wire.warning(self.outgoing.options().encoding) {
            self.log.warn(format_args!("{w}"));
        }
        let mut bytes = wire.bytes;
        if !self.hex {
            bytes.extend_from_slice(self.eol);
        }
        self.send_bytes(&bytes)
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), ChatError> {
        match &self.link {
            Link::Tcp(stream) => {
                (&mut &*stream)
                    .write_all(bytes)
                    .map_err(|error| ChatError::Io {
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
                        return Err(ChatError::Io {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read what we type, on its own thread (it may block forever on a terminal;
/// the process ends without waiting for it).
fn spawn_input(input: Input, screen: Screen, tx: Sender<Event>) {
    let _ = thread::Builder::new()
        .name("chat-input".into())
        .spawn(move || match input {
            Input::Lines(r) => read_lines(BufReader::new(r), &tx),
            Input::Keys(r) => read_keys(r, &screen, &tx),
        });
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

fn read_keys(mut keys: impl Read, screen: &Screen, tx: &Sender<Event>) {
    let mut buf = [0u8; 1024];
    loop {
        let n = match keys.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Event::InputEnded);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Event::InputFailed(e));
                return;
            }
        };
        let edits = match screen.keys(&buf[..n]) {
            Ok(edits) => edits,
            Err(e) => {
                let _ = tx.send(Event::OutputFailed(e));
                return;
            }
        };
        for edit in edits {
            let event = match edit {
                Edit::Line(line) => Event::Typed(line.into_bytes()),
                Edit::End => Event::InputEnded,
                Edit::Changed => continue,
            };
            let end = matches!(event, Event::InputEnded);
            if tx.send(event).is_err() || end {
                return;
            }
        }
    }
}

/// How the peer's words are shown: as `name> text` lines, or as a room's
/// lines unchanged. Also spots the peer's quit word and `/nick`.
struct PeerView {
    label: String,
    /// Our own name, as the prompt shows it before what we type.
    own: String,
    room: bool,
    first_line: bool,
    quit_words: Vec<String>,
    hex: Option<HexDumper>,
    /// What the peer's bytes are decoded from (with `--hex`, still used to spot
    /// the quit word).
    encoding: &'static Encoding,
    screen: Screen,
    log: Log,
    shown: Vec<u8>,
}

impl PeerView {
    fn new(cfg: &ChatConfig, screen: Screen, log: Log) -> Self {
        PeerView {
            label: "peer".into(),
            own: cfg.name.clone().unwrap_or_else(|| "me".into()),
            room: false,
            first_line: true,
            quit_words: cfg.quit_words.clone(),
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

    /// Show one message (a read's worth of text, or one datagram). Returns the
    /// quit word if the peer sent one; lines after it are not shown.
    fn message(&mut self, raw: &[u8], text: &str) -> Result<Option<String>, io::Error> {
        self.shown.clear();
        let mut quit = None;
        let body = text.strip_suffix('\n').unwrap_or(text);
        for line in body.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if std::mem::take(&mut self.first_line) && line.starts_with(room::GREETING) {
                self.room = true;
            }
            if self.room {
                push_visible(line, &mut self.shown);
                self.shown.push(b'\n');
                continue;
            }
            if let Some(word) = self.quit_words.iter().find(|w| *w == line.trim()) {
                quit = Some(word.clone());
                break;
            }
            if let Some(name) = line.strip_prefix("/nick ").map(str::trim)
                && room::check_name(name).is_ok()
                // Our own lines are shown as `me> text`: a peer called `me`
                // could pass their words off as ours.
                && !room::looks_alike(name, &self.own)
            {
                self.log
                    .info(format_args!("{} is now known as {name}", self.label));
                self.label = name.to_string();
                continue;
            }
            if line.is_empty() || self.hex.is_some() {
                continue;
            }
            self.shown.extend_from_slice(self.label.as_bytes());
            self.shown.extend_from_slice(b"> ");
            push_visible(line, &mut self.shown);
            self.shown.push(b'\n');
        }
        if let Some(dumper) = &mut self.hex {
            let dump = dumper.dump(raw);
            for line in dump.lines() {
                self.shown.extend_from_slice(self.label.as_bytes());
                self.shown.extend_from_slice(b"> ");
                self.shown.extend_from_slice(line.as_bytes());
                self.shown.push(b'\n');
            }
        }
        if !self.shown.is_empty() {
            self.screen.show(&self.shown)?;
        }
        Ok(quit)
    }
}

fn deliver(view: &mut PeerView, raw: &[u8], text: &str, tx: &Sender<Event>) -> bool {
    match view.message(raw, text) {
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

fn read_tcp(stream: TcpStream, view: &mut PeerView, tx: &Sender<Event>) {
    // One decoder for the whole connection: a character split between two
    // reads is completed, not garbled (lesson 06).
    let mut decoder = TextDecoder::new(view.encoding);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match (&mut &stream).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Event::PeerFailed(e));
                return;
            }
        };
        let text = decoder.decode(&buf[..n], n == 0);
        if decoder.take_error_warning() {
            view.log.warn(format_args!(
                "{}",
                invalid_text_warning(decoder.encoding().name())
            ));
        }
        if (!text.is_empty() || n > 0) && !deliver(view, &buf[..n], &text, tx) {
            return;
        }
        if n == 0 {
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
            // Each datagram is a message of its own, decoded on its own.
            let mut decoder = TextDecoder::new(view.encoding);
            let text = decoder.decode(&buf[..n], true);
            if !deliver(view, &buf[..n], &text, tx) {
                return;
            }
        }
    }
}
