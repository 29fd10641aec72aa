//! The TCP client of lesson 02, and a full-duplex `nc`-style pipe (lesson 05's half-close).
//!
//! Two ways to use it:
//! - [`send_messages`]: the lesson. Send a message, wait for the reply, print it, close.
//!   "Wait" means: up to `--wait` seconds for the reply to *start*, then until the
//!   peer has been quiet for `--settle` (100 ms), or closed. TCP has no message
//!   boundaries (lesson 13), so a short silence is the only sign a reply is
//!   complete when no framing is agreed; a reply that has begun comes in one burst,
//!   while a server that has not answered yet may be thinking (or a person typing).
//!   A message that gets no reply, or a server that closes without one, is a
//!   failure ([`Summary::check`]): the run exits 1, as `curl` does for an
//!   empty reply or a timeout, so a script can tell.
//! - [`duplex`]: stdin → socket and socket → stdout at the same time, on two threads.
//!   When stdin ends we `shutdown(Write)`: the peer's `recv` returns `b''` (lesson 05),
//!   yet we keep reading its answer until it closes too. Bytes pass through untouched
//!   when no conversion is asked for, and then `io::copy` lets the kernel move them
//!   (`splice`) without them ever entering our buffers.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown as Direction, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::addr::{describe_io, display_addr};
use crate::error::Blame;
use crate::framing::{DEFAULT_MAX_FRAME, Deframer, Framing};
use crate::message::{Incoming, Outgoing, SendError, SendOptions, Show, read_chunk};
use crate::output::{Log, Timestamps, no_reply_summary, no_reply_warning, plural};

/// How the client behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's address family, when its name has several (`-4`, `-6`).
    pub family: crate::addr::Family,
    /// Give up connecting after this long (`--timeout`; None: the system's limit).
    pub connect_timeout: Option<Duration>,
    /// How long to wait for a reply to start (message mode). Zero: do not wait at all.
    pub wait: Duration,
    /// Silence that ends a reply once it has started (message mode).
    pub settle: Duration,
    /// Give up when nothing moves in either direction for this long (duplex mode).
    pub idle: Option<Duration>,
    /// Send the messages this many times (NetAssist's timed send).
    pub repeat: u32,
    /// Pause between rounds.
    pub interval: Duration,
    /// Half-close when stdin ends (duplex mode); `--no-shutdown` turns it off.
    pub shutdown_on_eof: bool,
    /// How the stream is cut into messages.
    pub framing: Framing,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// How replies are shown.
    pub show: Show,
    /// `--timestamps`: each read becomes a record with its time in front,
    /// instead of part of an `nc`-like stream.
    pub stamps: Option<Timestamps>,
    /// How messages are encoded.
    pub send: SendOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            family: crate::addr::Family::Any,
            connect_timeout: None,
            wait: Duration::from_secs(2),
            settle: DEFAULT_SETTLE,
            idle: None,
            repeat: 1,
            interval: Duration::from_secs(1),
            shutdown_on_eof: true,
            framing: Framing::Raw,
            max_frame: DEFAULT_MAX_FRAME,
            show: Show::Text(encoding_rs::UTF_8),
            stamps: None,
            send: SendOptions::default(),
        }
    }
}

/// The quiet gap that ends a reply which has started (`--settle`). A server's
/// answer to one message leaves it in one burst — on a LAN its pieces arrive
/// within a millisecond or two of each other — so a tenth of a second is long
/// to wait and still over at once to a person.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(100);

/// Why a client run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Resolving or connecting failed.
    #[error("{0}")]
    Connect(#[source] crate::addr::AddrError),
    /// A message could not be encoded (`--strict-encoding`, bad `--send-hex`).
    #[error("{0}")]
    Message(#[from] SendError),
    /// The connection failed while in use. (Deliberately not a `source`: a broken
    /// pipe *to the peer* is a real failure, unlike one on our stdout.)
    #[error("{addr}: {what}: {}", describe_io(.error))]
    Io {
        /// The peer.
        addr: String,
        /// `send`, `receive`, …
        what: &'static str,
        /// The error.
        error: io::Error,
    },
    /// Writing to our stdout failed.
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
    /// `--idle` expired.
    #[error("{addr}: idle for {secs} s, giving up (--idle)")]
    Idle {
        /// The peer.
        addr: String,
        /// The limit.
        secs: f64,
    },
    /// Message mode: a message went unanswered, or the server closed the
    /// connection before all messages were sent.
    #[error("{}", unanswered(.0))]
    Unanswered(Summary),
    /// The peer broke the framing (`--framing len` with an oversized frame, …).
    #[error("{addr}: {why}")]
    Frame {
        /// The peer.
        addr: String,
        /// What was wrong.
        why: String,
    },
}

impl Blame for Error {
    fn is_usage(&self) -> bool {
        match self {
            Error::Connect(e) => e.is_usage(),
            Error::Message(e) => e.is_usage(),
            _ => false,
        }
    }
}

/// What a client run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Bytes sent.
    pub bytes_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// The peer closed the connection.
    pub peer_closed: bool,
    /// Message mode: messages to send (`--repeat` included).
    pub messages: u64,
    /// Message mode: messages sent.
    pub sent: u64,
    /// Message mode: messages that got no reply within `--wait` (the peer stayed).
    pub no_reply: u64,
    /// Message mode: the number of the message the server closed the connection
    /// on without replying to it (a crashed server, one that refuses the input).
    pub closed_without_reply: Option<u64>,
    /// Message mode: the peer reset the connection (it closed with our bytes unread).
    pub reset: bool,
    /// Message mode: how long a reply was waited for.
    pub wait: Duration,
}

impl Summary {
    /// Ok when every message was sent and each got a reply (or none was waited
    /// for, `--wait 0`); otherwise the error that makes the tool exit 1.
    ///
    /// One rule for tcp-client and `udp-echo send`: a message sent in order to
    /// get an answer that gets none is a failure, the way `curl` fails on a
    /// timeout (28) or an empty reply (52); what did arrive is printed all the
    /// same. Duplex mode is `nc`: it succeeds when the peer closes.
    pub fn check(&self) -> Result<(), Error> {
        if self.no_reply == 0 && self.closed_without_reply.is_none() && self.sent == self.messages {
            Ok(())
        } else {
            Err(Error::Unanswered(*self))
        }
    }
}

fn unanswered(s: &Summary) -> String {
    let mut parts = Vec::new();
    if s.no_reply > 0 {
        parts.push(no_reply_summary(
            s.no_reply,
            s.sent,
            "message",
            Some(s.wait),
        ));
    }
    let reset = if s.reset {
        " (it reset the connection)"
    } else {
        ""
    };
    match s.closed_without_reply {
        Some(n) if s.messages > 1 => parts.push(format!(
            "the server closed the connection without replying to message {n}{reset}"
        )),
        Some(_) => parts.push(format!(
            "the server closed the connection without replying{reset}"
        )),
        None if s.sent < s.messages => parts.push(format!(
            "the server closed the connection after message {}{reset}",
            s.sent
        )),
        None => {}
    }
    if s.sent < s.messages {
        let left = s.messages - s.sent;
        parts.push(format!(
            "{left} of {} message{} not sent",
            s.messages,
            plural(s.messages)
        ));
    }
    parts.join("; ")
}

fn peer_name(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map(|a| display_addr(&a))
        .unwrap_or_else(|_| "peer".into())
}

/// Reads replies and prints them: raw, text or hex, framed or not.
struct Receiver {
    incoming: Incoming,
    deframer: Option<Deframer>,
    buf: Vec<u8>,
    printed: Vec<u8>,
    addr: String,
    bytes_in: u64,
    /// The last reply ended mid-line: start the next one on a new line.
    break_pending: bool,
    /// A warning held back until the reply's line is finished: stderr and
    /// stdout share the terminal, and a warning written mid-line would land
    /// inside the reply's text.
    warning: Option<String>,
}

impl Receiver {
    /// `records`: show each read as a record of its own (lesson 13), as in
    /// message mode, whose replies are for reading; without it (duplex mode,
    /// nc's job) what arrives is the byte stream it is, unless `--timestamps`
    /// asks for records.
    fn new(cfg: &Config, addr: String, records: bool) -> Self {
        let head = records.then(String::new);
        Receiver {
            incoming: Incoming::new(cfg.show, head).with_timestamps(cfg.stamps.clone()),
            deframer: (cfg.framing != Framing::Raw)
                .then(|| Deframer::new(cfg.framing, cfg.max_frame)),
            buf: vec![0u8; 64 * 1024],
            printed: Vec::new(),
            addr,
            bytes_in: 0,
            break_pending: false,
            warning: None,
        }
    }

    /// One `recv`: Ok(None) when the peer closed, Ok(Some(n)) after printing n bytes,
    /// Err with `WouldBlock`/`TimedOut` when a read timeout expired.
    fn read_once(
        &mut self,
        stream: &TcpStream,
        out: &mut impl Write,
        log: &Log,
    ) -> Result<Option<usize>, Error> {
        let n = loop {
            match (&mut &*stream).read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(Error::Io {
                        addr: self.addr.clone(),
                        what: "receive",
                        error,
                    });
                }
            }
        };
        self.printed.clear();
        if n == 0 {
            self.frames(true)?;
            self.incoming.finish(&mut self.printed);
        } else {
            self.bytes_in += n as u64;
            log.verbose(format_args!("received {n} bytes"));
            if std::mem::take(&mut self.break_pending) {
                self.incoming.end_line(&mut self.printed);
            }
            match &mut self.deframer {
                None => self
                    .incoming
                    .render(&self.buf[..n], false, &mut self.printed),
                Some(d) => {
                    d.push(&self.buf[..n]);
                    self.frames(false)?;
                }
            }
        }
        out.write_all(&self.printed).map_err(Error::Output)?;
        out.flush().map_err(Error::Output)?;
        if let Some(w) = self.incoming.take_error_warning() {
            self.warning = Some(w);
        }
        if !self.incoming.mid_line() {
            self.warn_now(log);
        }
        Ok((n > 0).then_some(n))
    }

    fn warn_now(&mut self, log: &Log) {
        if let Some(w) = self.warning.take() {
            log.warn(format_args!("{w}"));
        }
    }

    /// Print the reply to a message just sent: wait up to `wait` for it to start,
    /// then read until the peer has been quiet for `settle` or closes.
    fn read_reply(
        &mut self,
        stream: &TcpStream,
        wait: Duration,
        settle: Duration,
        out: &mut impl Write,
        log: &Log,
    ) -> Result<ReplyEnd, Error> {
        let addr = self.addr.clone();
        let set_timeout = |t: Duration| {
            // A zero timeout means "block forever" to the OS: never ask for one.
            stream
                .set_read_timeout(Some(t.max(Duration::from_millis(1))))
                .map_err(|error| Error::Io {
                    addr: addr.clone(),
                    what: "set timeout",
                    error,
                })
        };
        set_timeout(wait)?;
        let mut end = ReplyEnd::default();
        loop {
            match self.read_once(stream, out, log) {
                Ok(Some(_)) => {
                    if !end.replied {
                        end.replied = true;
                        set_timeout(settle)?;
                    }
                }
                Ok(None) => {
                    log.verbose(format_args!("{} closed the connection", self.addr));
                    end.closed = true;
                    return Ok(end);
                }
                Err(e) if is_timeout(&e) => return Ok(end),
                // A peer that closes with our bytes unread (a server that crashed on
                // them, say) makes its kernel answer with a reset instead of a FIN.
                Err(Error::Io { error, .. }) if error.kind() == io::ErrorKind::ConnectionReset => {
                    log.verbose(format_args!("{} reset the connection", self.addr));
                    end.closed = true;
                    end.reset = true;
                    return Ok(end);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Print replies until a read times out (Ok(false)) or the peer closes (Ok(true)).
    fn read_until_quiet(
        &mut self,
        stream: &TcpStream,
        out: &mut impl Write,
        log: &Log,
    ) -> Result<bool, Error> {
        loop {
            match self.read_once(stream, out, log) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    log.verbose(format_args!("{} closed the connection", self.addr));
                    return Ok(true);
                }
                Err(e) if is_timeout(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// A reply is over. The next one starts on a new line (decided when it comes,
    /// so the rest of a character split across replies is not cut off by it). At the
    /// end of the conversation, flush a dangling partial character (shown as
    /// U+FFFD, never dropped) and end the line.
    fn end_message(&mut self, at_end: bool, out: &mut impl Write, log: &Log) -> Result<(), Error> {
        self.break_pending = !at_end;
        if !at_end {
            return Ok(());
        }
        self.printed.clear();
        self.incoming.finish(&mut self.printed);
        self.incoming.end_line(&mut self.printed);
        out.write_all(&self.printed).map_err(Error::Output)?;
        out.flush().map_err(Error::Output)?;
        self.warn_now(log);
        Ok(())
    }

    fn frames(&mut self, at_end: bool) -> Result<(), Error> {
        let Some(d) = &mut self.deframer else {
            return Ok(());
        };
        loop {
            let next = match d.next_frame() {
                Ok(None) if at_end => d.finish(),
                other => other,
            };
            match next {
                Ok(Some(f)) => self.incoming.render(f.payload(), true, &mut self.printed),
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(Error::Frame {
                        addr: self.addr.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
    }
}

/// How the reply to one message ended.
#[derive(Debug, Default, Clone, Copy)]
struct ReplyEnd {
    /// Some bytes came.
    replied: bool,
    /// The peer closed (or reset) the connection.
    closed: bool,
    /// It was a reset.
    reset: bool,
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Io { error, .. }
        if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Turn command-line messages into wire bytes (encoded, framed), warning about
/// substituted characters. Done before connecting, so a message we would refuse
/// (`--strict-encoding`, bad `--send-hex`) is reported before anything is sent.
pub fn encode_messages(
    messages: &[String],
    send: SendOptions,
    log: &Log,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut outgoing = Outgoing::new(send);
    let mut wires = Vec::with_capacity(messages.len());
    for m in messages {
        let wire = outgoing.message(m)?;
        if let Some(w) = wire.warning(send.encoding) {
            log.warn(format_args!("{w}"));
        }
        wires.push(wire.bytes);
    }
    Ok(wires)
}

/// Lesson 02: send each message (as made by [`encode_messages`]), print each reply,
/// `repeat` times; then close.
///
/// Each reply is waited for as [`Config::wait`] and [`Config::settle`]
/// say. A message that gets no reply is reported on `log` and the next one is sent
/// all the same; a server that closes the connection ends the run. Either shows in
/// the summary, and [`Summary::check`] turns it into an error.
pub fn send_messages(
    stream: &TcpStream,
    wires: &[Vec<u8>],
    cfg: &Config,
    out: &mut impl Write,
    log: &Log,
) -> Result<Summary, Error> {
    let addr = peer_name(stream);
    let mut rx = Receiver::new(cfg, addr.clone(), true);
    let mut summary = Summary {
        messages: (wires.len() * cfg.repeat.max(1) as usize) as u64,
        wait: cfg.wait,
        ..Summary::default()
    };
    'rounds: for round in 0..cfg.repeat.max(1) {
        if round > 0 && !cfg.interval.is_zero() {
            thread::sleep(cfg.interval);
        }
        for bytes in wires {
            (&mut &*stream)
                .write_all(bytes)
                .map_err(|error| Error::Io {
                    addr: addr.clone(),
                    what: "send",
                    error,
                })?;
            summary.bytes_out += bytes.len() as u64;
            summary.sent += 1;
            log.verbose(format_args!("sent {} bytes", bytes.len()));
            if cfg.wait.is_zero() {
                continue;
            }
            let end = rx.read_reply(stream, cfg.wait, cfg.settle, out, log)?;
            if end.closed {
                summary.peer_closed = true;
                summary.reset = end.reset;
                if !end.replied {
                    summary.closed_without_reply = Some(summary.sent);
                }
                break 'rounds;
            }
            if !end.replied {
                summary.no_reply += 1;
                // One failure, one line: with a single message the summary at
                // the end says it all; with several it says how many, and these
                // say which.
                if summary.messages > 1 {
                    let what = format!("message {}", summary.sent);
                    log.warn(format_args!(
                        "{}",
                        no_reply_warning(Some(&what), &addr, cfg.wait)
                    ));
                }
            }
            // Each reply on its own line, even when the peer sends no newline.
            rx.end_message(false, out, log)?;
        }
    }
    if !summary.peer_closed {
        // Close politely: send FIN, then read what is still on its way until the
        // peer closes too. Closing with unread bytes in our receive buffer would make
        // the kernel send a reset, and a reset makes the *peer's* kernel discard what
        // it received but its program has not read yet — messages would be lost.
        let _ = stream.shutdown(Direction::Write);
        let linger = if cfg.wait.is_zero() {
            LINGER
        } else {
            cfg.wait.min(LINGER)
        };
        let _ = stream.set_read_timeout(Some(linger));
        summary.peer_closed = rx.read_until_quiet(stream, out, log)?;
    }
    rx.end_message(true, out, log)?;
    summary.bytes_in = rx.bytes_in;
    Ok(summary)
}

/// How long a client that is done waits for the peer to close after its FIN.
const LINGER: Duration = Duration::from_secs(1);

/// Milliseconds since `start`, for the idle clock shared by both directions.
fn millis(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Full duplex: stdin → socket on a thread, socket → `out` here, until the peer closes.
///
/// `open_stdin` is called on the sending thread (so a non-`Send` `StdinLock` works).
pub fn duplex<R, F>(
    stream: &TcpStream,
    open_stdin: F,
    cfg: &Config,
    out: &mut impl Write,
    log: &Log,
) -> Result<Summary, Error>
where
    R: Read,
    F: FnOnce() -> R + Send + 'static,
{
    let addr = peer_name(stream);
    let start = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = stream.try_clone().map_err(|error| Error::Io {
        addr: addr.clone(),
        what: "clone socket",
        error,
    })?;
    {
        let (cfg, log, activity, sent, peer) = (
            cfg.clone(),
            log.clone(),
            last_activity.clone(),
            sent.clone(),
            addr.clone(),
        );
        // Detached on purpose: when the peer closes we are done, even if this
        // thread still waits for a line from a terminal.
        thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let input = open_stdin();
                let result = pump(input, &writer, &cfg, &log, &|n| {
                    sent.fetch_add(n, Ordering::Relaxed);
                    activity.store(millis(start), Ordering::Relaxed);
                });
                if let Err(e) = result {
                    log.warn(format_args!("sending to {peer}: {}", describe_io(&e)));
                }
                if cfg.shutdown_on_eof {
                    log.verbose(format_args!("stdin ended: shutting down the write side"));
                    let _ = writer.shutdown(Direction::Write);
                }
            })
            .map_err(|error| Error::Io {
                addr: addr.clone(),
                what: "start thread",
                error,
            })?;
    }

    if let Some(idle) = cfg.idle {
        // Wake up often enough to notice the idle limit even while the sender is busy.
        let tick = idle
            .min(Duration::from_millis(250))
            .max(Duration::from_millis(1));
        stream
            .set_read_timeout(Some(tick))
            .map_err(|error| Error::Io {
                addr: addr.clone(),
                what: "set timeout",
                error,
            })?;
    }
    let passthrough = cfg.show.is_passthrough()
        && cfg.stamps.is_none()
        && cfg.framing == Framing::Raw
        && !log.is_verbose();
    let mut rx = Receiver::new(cfg, addr.clone(), false);
    loop {
        let step = if passthrough {
            copy_through(stream, out, &addr)
        } else {
            rx.read_once(stream, out, log)
        };
        match step {
            Ok(Some(n)) => {
                if passthrough {
                    // (read_once counts its own bytes.)
                    rx.bytes_in += n as u64;
                }
                last_activity.store(millis(start), Ordering::Relaxed);
            }
            Ok(None) => break,
            Err(e) if is_timeout(&e) => {
                let idle = cfg.idle.unwrap_or(Duration::MAX);
                let quiet_for = millis(start) - last_activity.load(Ordering::Relaxed);
                if Duration::from_millis(quiet_for) >= idle {
                    return Err(Error::Idle {
                        addr,
                        secs: idle.as_secs_f64(),
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
    log.verbose(format_args!("{addr} closed the connection"));
    Ok(Summary {
        bytes_out: sent.load(Ordering::Relaxed),
        bytes_in: rx.bytes_in,
        peer_closed: true,
        ..Summary::default()
    })
}

/// Copy socket → out without looking at the bytes. `io::copy` uses `splice` between
/// a socket and a pipe on Linux, so bulk data never passes through user space.
fn copy_through(
    stream: &TcpStream,
    out: &mut impl Write,
    addr: &str,
) -> Result<Option<usize>, Error> {
    match io::copy(&mut &*stream, out) {
        // io::copy returns at end of stream only.
        Ok(n) => {
            out.flush().map_err(Error::Output)?;
            if n == 0 {
                Ok(None)
            } else {
                Ok(Some(n as usize))
            }
        }
        Err(error) => Err(Error::Io {
            addr: addr.to_string(),
            what: "receive",
            error,
        }),
    }
}

/// Send everything from `input` over `stream`, converting per `cfg.send`.
fn pump(
    input: impl Read,
    stream: &TcpStream,
    cfg: &Config,
    log: &Log,
    on_sent: &dyn Fn(u64),
) -> io::Result<()> {
    let mut outgoing = Outgoing::new(cfg.send);
    if outgoing.is_passthrough() && cfg.idle.is_none() && !log.is_verbose() {
        let mut input = input;
        let n = io::copy(&mut input, &mut &*stream)?;
        on_sent(n);
        return Ok(());
    }
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut chunk = Vec::new();
    while read_chunk(&mut reader, &mut chunk, 64 * 1024)? > 0 {
        match outgoing.stdin_chunk(&chunk) {
            Ok(wire) => {
                if let Some(w) = wire.warning(cfg.send.encoding) {
                    log.warn(format_args!("{w}"));
                }
                (&mut &*stream).write_all(&wire.bytes)?;
                log.verbose(format_args!("sent {} bytes", wire.bytes.len()));
                on_sent(wire.bytes.len() as u64);
            }
            // Refuse this line, keep the conversation going.
            Err(e) => log.warn(format_args!("line not sent: {e}")),
        }
    }
    Ok(())
}

/// Connect to `target` and run the client: [`send_messages`] when there are
/// messages, [`duplex`] with stdin otherwise.
pub fn run<W: Write>(
    target: &crate::addr::Target,
    messages: &[String],
    cfg: &Config,
    out: &mut W,
    log: &Log,
) -> Result<Summary, Error> {
    let wires = encode_messages(messages, cfg.send, log)?;
    let stream =
        crate::addr::connect(target, cfg.family, cfg.connect_timeout).map_err(Error::Connect)?;
    log.verbose(format_args!(
        "connected to {} from {}",
        peer_name(&stream),
        stream
            .local_addr()
            .map(|a| display_addr(&a))
            .unwrap_or_default()
    ));
    let summary = if messages.is_empty() {
        duplex(&stream, || io::stdin().lock(), cfg, out, log)?
    } else {
        send_messages(&stream, &wires, cfg, out, log)?
    };
    Ok(summary)
}
