//! The client: lessons 07 and 09 (`udp-echo send`).

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use super::datagram::{DatagramReader, transient};
use super::{Error, TICK, too_long};
use crate::addr::{Family, Target, describe_io, display_addr, resolve};
use crate::codec;
use crate::error::UsageError;
use crate::message::{Incoming, Outgoing, SendOptions, Show, read_chunk, read_chunk_until};
use crate::output::{Log, Timestamps, no_reply_warning, plural};
use crate::sys::{self, wait_readable};

/// The longest stdin line read in one piece. A line longer than this cannot become
/// one datagram in any encoding we support (even `--send-hex` spells a byte with
/// at least two characters), so it is refused without being held in memory.
const MAX_LINE: usize = 256 * 1024;

/// How [`send`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The destination's address family, when its name has several (`-4`, `-6`).
    pub family: Family,
    /// How long to wait for each reply; `None`: do not wait (`--no-wait`, lesson 07).
    pub wait: Option<Duration>,
    /// After sending this message (and printing its reply), stop — lesson 09's
    /// `exit`. `None`: never stop early.
    pub quit_word: Option<String>,
    /// Send the command-line messages this many times.
    pub repeat: u32,
    /// Pause between repeats.
    pub interval: Duration,
    /// Allow broadcast destinations (SO_BROADCAST), and print every reply that
    /// comes within the wait, from whoever answers.
    pub broadcast: bool,
    /// How replies are shown.
    pub show: Show,
    /// `--timestamps`: the time before each datagram printed.
    pub stamps: Option<Timestamps>,
    /// How messages are encoded.
    pub send: SendOptions,
    /// `--raw`: stdin is cut into datagrams of this many bytes, nothing added or
    /// removed (and replies should be shown [`Show::Raw`]); `None`: one datagram
    /// per stdin line. The quit word does not apply.
    pub raw: Option<usize>,
    /// Stdin is a terminal, a person typing: after the last MESSAGE a missing
    /// reply is listened for until they press Enter or Ctrl-D.
    pub interactive: bool,
}

/// `--size`'s default: the notes' `recvfrom(1024)` gets each datagram whole.
pub const DEFAULT_RAW_SIZE: usize = 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            family: Family::Any,
            wait: Some(Duration::from_secs(2)),
            quit_word: Some("exit".into()),
            repeat: 1,
            interval: Duration::from_secs(1),
            broadcast: false,
            show: Show::Text(encoding_rs::UTF_8),
            stamps: None,
            send: SendOptions::default(),
            raw: None,
            interactive: false,
        }
    }
}

/// What a [`send`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Datagrams sent.
    pub sent: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Replies received from the address we sent to (every datagram with `--broadcast`).
    pub replies: u64,
    /// Payload bytes of those replies.
    pub bytes_in: u64,
    /// Datagrams from other addresses, or late ones (shown with their address).
    pub others: u64,
    /// Datagrams that got no reply within the wait (the quit word not counted).
    pub missing: u64,
    /// Stdin lines that could not be sent (too long, refused by `--strict-encoding`, bad hex).
    pub not_sent: u64,
    /// How long each reply was waited for; None without a fixed limit (`--no-wait`,
    /// or a person at a terminal, who says when to stop).
    pub wait: Option<Duration>,
}

impl Summary {
    /// Ok when every datagram was sent and answered (or no answer was waited for);
    /// otherwise the error that makes the tool exit 1.
    pub fn check(&self) -> Result<(), Error> {
        if self.missing == 0 && self.not_sent == 0 {
            Ok(())
        } else {
            Err(Error::Incomplete {
                missing: self.missing,
                sent: self.sent,
                not_sent: self.not_sent,
                wait: self.wait,
            })
        }
    }
}

/// A client socket for sending to `dest`: bound to any local port of `dest`'s
/// family (the notes' client never binds; the OS picks a port at the first
/// `sendto`, we just do it up front), **not** connected, and with SO_BROADCAST
/// when `broadcast` — without it the kernel refuses to send to a broadcast address.
pub fn client_socket(dest: &SocketAddr, broadcast: bool) -> io::Result<UdpSocket> {
    let any: IpAddr = if dest.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
    if broadcast {
        socket.set_broadcast(true)?;
    }
    // Safety net for a datagram dropped between poll and recv (see `serve`).
    socket.set_read_timeout(Some(TICK))?;
    Ok(socket)
}

/// One message to send: what was typed (to compare with the quit word), or why
/// it cannot be sent.
struct Prepared {
    typed: Vec<u8>,
    wire: Result<Vec<u8>, String>,
}

/// Is `a` the same address and port as `b`? (Not `==`: an IPv6 scope or flow
/// label may differ, and an IPv4 address may come back IPv4-mapped.)
fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
}

/// What to tell the user when a reply is late, after "no reply from ADDR within N s".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Late {
    /// Nothing: the run goes on without it (and counts it missing).
    GiveUp,
    /// A person at the terminal: the reply is still listened for while they
    /// type the next line.
    ListenWhileTyping,
    /// A person at the terminal, after the last MESSAGE: listened for until
    /// they press Enter or Ctrl-D.
    ListenUntilEnter,
}

/// The client's state while it sends and waits.
struct Client<'a, W: Write> {
    socket: UdpSocket,
    dest: SocketAddr,
    name: String,
    cfg: &'a Config,
    out: &'a mut W,
    log: &'a Log,
    reader: DatagramReader,
    printed: Vec<u8>,
    summary: Summary,
    warned_decode: bool,
    /// The last message's reply did not come within the wait and the user was
    /// told it is still listened for (a person at the terminal, typing their
    /// answer): after the last MESSAGE, listen until it comes or they say stop.
    overdue: bool,
    /// The messages without a reply, oldest first (as many as `summary.missing`):
    /// which one, and whether the user has been told.
    owed: VecDeque<Owed>,
    /// Messages handled so far (sent or not).
    messages: u64,
    /// There is only one MESSAGE: a warning need not say which.
    single: bool,
}

/// A message whose reply did not come within the wait.
struct Owed {
    /// `line 2`, `message 1`, …
    what: String,
    /// Its warning has been printed.
    warned: bool,
    /// The warning said it is still listened for.
    listening: bool,
}

/// What a datagram received by the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    /// The reply to the message being waited for.
    Reply,
    /// A reply that came after its wait: counted for the oldest message still
    /// without one (UDP cannot tell which message a reply answers; a server
    /// answers in order, so the oldest is the best guess, and the count is right
    /// either way).
    Late,
    /// From someone else, or from the server with no reply owed.
    Other,
}

impl<W: Write> Client<'_, W> {
    /// Send one datagram, then wait for its reply as configured. Returns whether
    /// to go on (false after the quit word).
    fn exchange(&mut self, msg: Prepared, what: &str, late: Late) -> Result<bool, Error> {
        self.messages += 1;
        let quit = self.cfg.raw.is_none()
            && self
                .cfg
                .quit_word
                .as_ref()
                .is_some_and(|q| q.as_bytes() == msg.typed.as_slice());
        let bytes = match msg.wire {
            Ok(b) => b,
            Err(why) => {
                self.summary.not_sent += 1;
                self.log.warn(format_args!("{what} not sent: {why}"));
                return Ok(!quit);
            }
        };
        if self.cfg.wait.is_some() {
            // Whatever is already here arrived before this message was sent, so it
            // cannot be its answer (a late reply to the last one, say): show it as
            // such now, rather than mistake it for the answer later.
            self.drain()?;
        }
        // Another message: the replies that did not come can be named now.
        self.warn_missing();
        // 4. 发送数据 — sendto(data, (ip, port)).
        let n = self
            .socket
            .send_to(&bytes, self.dest)
            .map_err(|error| Error::Send {
                addr: self.name.clone(),
                error,
                broadcast: self.cfg.broadcast,
            })?;
        self.summary.sent += 1;
        self.summary.bytes_out += n as u64;
        let Some(wait) = self.cfg.wait else {
            // Lesson 07's `print('发送完成')`: sent — which is all UDP can tell.
            // (A file in --raw datagrams gets one line for all of them, at the end.)
            if self.cfg.raw.is_some() {
                self.log
                    .verbose(format_args!("sent {n} bytes to {}", self.name));
            } else {
                self.log
                    .info(format_args!("sent {n} bytes to {}", self.name));
            }
            return Ok(!quit);
        };
        self.log
            .verbose(format_args!("sent {n} bytes to {}", self.name));
        // 5. 接收返回的数据 — receive the reply, but wait at most `wait`.
        if !self.await_reply(Instant::now() + wait)? {
            let secs = wait.as_secs_f64();
            if quit {
                // The notes' client prints the echo of `exit` too, but a server
                // that stops on `exit` may never answer it: not a failure.
                self.log.info(format_args!(
                    "no reply to {what} from {} within {secs} s (not counted: a server may quit without answering it)",
                    self.name
                ));
            } else {
                self.summary.missing += 1;
                let listening = match late {
                    Late::GiveUp => "",
                    Late::ListenWhileTyping => {
                        "; still listening (type the next line, or Ctrl-D to stop)"
                    }
                    Late::ListenUntilEnter => "; still listening (Enter or Ctrl-D stops)",
                };
                self.overdue = late != Late::GiveUp;
                let mut owed = Owed {
                    what: what.to_string(),
                    warned: false,
                    listening: false,
                };
                if late != Late::GiveUp {
                    // A person waits for it: say now that we still listen.
                    let what = (!self.single).then_some(what);
                    self.log.warn(format_args!(
                        "{}{listening}",
                        no_reply_warning(what, &self.name, wait)
                    ));
                    owed.warned = true;
                    owed.listening = true;
                }
                // Otherwise the warning waits for the next message: with only one,
                // the summary at the end says it all (one failure, one line); and a
                // late reply may still come meanwhile.
                self.owed.push_back(owed);
            }
        }
        Ok(!quit)
    }

    /// Print datagrams until the reply from `dest` has come (true), or until
    /// `deadline` (false). With `--broadcast`, wait the whole time and print every
    /// datagram with its address: any number of hosts may answer.
    fn await_reply(&mut self, deadline: Instant) -> Result<bool, Error> {
        let mut answered = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(answered);
            }
            let ready = wait_readable(&self.socket, left).map_err(|error| Error::Socket {
                what: "wait for the reply",
                error,
            })?;
            if !ready {
                continue;
            }
            let Some((from, kind)) = self.receive_one(true)? else {
                continue;
            };
            match kind {
                Received::Reply => {
                    answered = true;
                    if !self.cfg.broadcast {
                        return Ok(true);
                    }
                }
                // An earlier message's reply: this one's may still come.
                Received::Late => {}
                Received::Other => self.log.verbose(format_args!(
                    "{} is not {}: not the reply",
                    display_addr(&from),
                    self.name
                )),
            }
        }
    }

    /// Warn about each message still without a reply that has not been named
    /// yet: `no reply to line 2 from ADDR within 2 s`.
    fn warn_missing(&mut self) {
        let Some(wait) = self.cfg.wait else { return };
        for owed in self.owed.iter_mut().filter(|o| !o.warned) {
            owed.warned = true;
            self.log.warn(format_args!(
                "{}",
                no_reply_warning(Some(&owed.what), &self.name, wait)
            ));
        }
    }

    /// The run is over: name the replies still missing when there were several
    /// messages (with one, the summary says it all), and say what it did.
    fn finish(mut self) -> Summary {
        if self.messages > 1 {
            self.warn_missing();
        }
        self.summary
    }

    /// Print what is already queued, without waiting.
    fn drain(&mut self) -> Result<(), Error> {
        while wait_readable(&self.socket, Duration::ZERO).unwrap_or(false) {
            if self.receive_one(false)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Wait for the next piece of input from `feed`, showing every datagram that
    /// arrives meanwhile: a reply that comes while the tool runs is never left
    /// unseen. With `until_answered`, also stop (None) when no reply is owed any more.
    fn listen(
        &mut self,
        feed: &mut StdinFeed,
        until_answered: bool,
    ) -> Result<Option<Input>, Error> {
        loop {
            if until_answered && self.summary.missing == 0 {
                return Ok(None);
            }
            match feed.rx.try_recv() {
                Ok(input) => return Ok(Some(input)),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(Some(Input::End)),
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            let ready =
                sys::wait_readable_or_woken(&self.socket, &feed.wake, TICK).map_err(|error| {
                    Error::Socket {
                        what: "wait for datagrams",
                        error,
                    }
                })?;
            if !ready {
                continue;
            }
            // Which one woke us is not said: look at both without waiting.
            self.drain()?;
            feed.wake.clear();
        }
    }

    /// Receive and print one datagram. A reply (from `dest`) is printed bare;
    /// anything else with its address in front. A reply is owed to every message
    /// that missed its wait, oldest first, and (`waiting`) to the message being
    /// waited for. Returns the sender and what the datagram was; None when the
    /// receive came back empty.
    fn receive_one(&mut self, waiting: bool) -> Result<Option<(SocketAddr, Received)>, Error> {
        let d = match self.reader.recv_from(&self.socket) {
            Ok(d) => d,
            Err(e) if transient(&e) => {
                self.log
                    .verbose(format_args!("receive: {} (ignored)", describe_io(&e)));
                return Ok(None);
            }
            Err(error) => {
                return Err(Error::Socket {
                    what: "receive",
                    error,
                });
            }
        };
        let from = d.from;
        // With --broadcast anyone may answer, and the current message comes
        // first: its window is the one replies are counted in.
        let kind = if !(same_endpoint(&from, &self.dest) || self.cfg.broadcast) {
            Received::Other
        } else if self.cfg.broadcast && waiting {
            Received::Reply
        } else if self.summary.missing > 0 {
            Received::Late
        } else if waiting {
            Received::Reply
        } else {
            Received::Other
        };
        let is_reply = kind != Received::Other;
        let bare = is_reply && !self.cfg.broadcast;
        let name = display_addr(&from);
        self.log.verbose(format_args!(
            "received {} bytes from {name}{}",
            d.payload.len(),
            if kind == Received::Late {
                " (the late reply to an earlier message)"
            } else {
                ""
            }
        ));
        if d.truncated {
            self.log.warn(format_args!(
                "datagram from {name} longer than {} bytes, cut to that length",
                d.payload.len()
            ));
        }
        if self.cfg.raw.is_some() && !bare {
            // Byte for byte means only the replies, in order: a stranger's
            // datagram, or an echo nothing was waiting for, would corrupt the output.
            self.summary.others += 1;
            self.log.warn(format_args!(
                "{} bytes from {name} not written ({}; --raw writes only replies)",
                d.payload.len(),
                if is_reply || same_endpoint(&from, &self.dest) {
                    "no reply was owed"
                } else {
                    "not the server"
                }
            ));
            return Ok(Some((from, Received::Other)));
        }
        let prefix = (!bare).then(|| format!("[{name}] "));
        let mut incoming =
            Incoming::new(self.cfg.show, prefix).with_timestamps(self.cfg.stamps.clone());
        self.printed.clear();
        incoming.render_whole(d.payload, &mut self.printed);
        if is_reply {
            self.summary.replies += 1;
            self.summary.bytes_in += d.payload.len() as u64;
            if kind == Received::Late {
                // A reply that was reported missing has come after all.
                self.summary.missing -= 1;
                if let Some(owed) = self.owed.pop_front()
                    && owed.warned
                    && !owed.listening
                {
                    // Told it was missing, and not that we still listen: say
                    // what this reply is, or the counts would not add up.
                    self.log.info(format_args!(
                        "late reply from {name}: counted for {}",
                        owed.what
                    ));
                }
            }
        } else {
            self.summary.others += 1;
        }
        self.out
            .write_all(&self.printed)
            .and_then(|()| self.out.flush())
            .map_err(Error::Output)?;
        if let Some(w) = incoming.take_error_warning()
            && !std::mem::replace(&mut self.warned_decode, true)
        {
            self.log.warn(format_args!("{w}"));
        }
        Ok(Some((from, kind)))
    }
}

/// One piece of stdin, read on its own thread: a line (or, with `--raw`, a chunk),
/// the end, or a read error.
enum Input {
    /// The bytes to send, or the length of a line too long to be one datagram.
    Data(Result<Vec<u8>, usize>),
    /// End of input (Ctrl-D on a terminal).
    End,
    /// Reading failed.
    Failed(io::Error),
}

/// Stdin, read on a thread so that datagrams are shown while a person is still
/// typing: the thread hands over one piece at a time and calls `wake` for
/// each, so the client can wait on the socket and stdin together.
struct StdinFeed {
    rx: std::sync::mpsc::Receiver<Input>,
    wake: sys::Wake,
}

impl StdinFeed {
    /// Start reading `stdin`: lines, or chunks of `raw` bytes; `terminal`: a
    /// person types it, so every read is sent as it comes (no waiting for a
    /// chunk to fill).
    fn spawn(
        mut stdin: impl BufRead + Send + 'static,
        raw: Option<usize>,
        terminal: bool,
    ) -> io::Result<StdinFeed> {
        let (wake, mut waker) = sys::wake_pair()?;
        // Room for one piece: the thread reads at most one ahead of the sender.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // Detached on purpose: when the run is over we are done, even if this
        // thread still waits for a line from a terminal.
        thread::Builder::new().name("stdin".into()).spawn(move || {
            let mut buf = Vec::new();
            loop {
                let input = match raw {
                    Some(size) => match next_chunk(&mut stdin, &mut buf, size, terminal) {
                        Ok(0) => Input::End,
                        Ok(_) => Input::Data(Ok(std::mem::take(&mut buf))),
                        Err(e) => Input::Failed(e),
                    },
                    None => match next_line(&mut stdin, &mut buf) {
                        Ok(None) => Input::End,
                        Ok(Some(Ok(()))) => Input::Data(Ok(std::mem::take(&mut buf))),
                        Ok(Some(Err(len))) => Input::Data(Err(len)),
                        Err(e) => Input::Failed(e),
                    },
                };
                let last = !matches!(input, Input::Data(_));
                if tx.send(input).is_err() || waker.wake().is_err() || last {
                    return;
                }
            }
        })?;
        Ok(StdinFeed { rx, wake })
    }
}

/// Read up to `size` bytes of `input` into `buf` (cleared first): as many as
/// there are, up to `size`, unless `terminal`, where one read is one piece (what
/// was typed before Enter). Returns how many; 0 at end of input.
fn next_chunk(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    size: usize,
    terminal: bool,
) -> io::Result<usize> {
    read_chunk_until(input, buf, size, |have| terminal.then_some(have.len()))
}

/// Read the next stdin line without its `\n` or `\r\n` into `line`. Ok(None) at
/// end of input; Ok(Some(Err(len))) for a line longer than [`MAX_LINE`], which is
/// read and dropped (`len` bytes) so that the next line starts where it should.
fn next_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> io::Result<Option<Result<(), usize>>> {
    if read_chunk(input, line, MAX_LINE + 2)? == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && line.len() == MAX_LINE + 2 {
        // Too long: skip to the end of the line, counting (without its ending).
        let mut len = line.len();
        let mut rest = Vec::new();
        while read_chunk(input, &mut rest, 64 * 1024)? > 0 {
            len += rest.len();
            if rest.ends_with(b"\n") {
                len -= if rest.ends_with(b"\r\n") { 2 } else { 1 };
                break;
            }
        }
        return Ok(Some(Err(len)));
    }
    if line.ends_with(b"\n") {
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
    }
    Ok(Some(Ok(())))
}

/// Lessons 07 and 09's client: send each of `messages` — or, when there are none,
/// each line of `stdin` (with `cfg.raw`, each chunk of it) — to `target` as one
/// datagram, and print each reply on `out`, as `cfg` says.
///
/// A message that cannot work at all (too long for a datagram, refused by
/// `--strict-encoding`) is an error before anything is sent. A stdin line that
/// cannot be sent is reported and skipped, and a reply that does not come within
/// the wait is reported and the next line is sent: both show up in the summary,
/// and [`Summary::check`] turns them into an error at the end.
///
/// Stdin is read on a thread of its own, and while the client waits for the
/// next line it keeps printing whatever arrives. A reply that misses its wait
/// but comes while the client runs is shown and counted for the oldest message
/// without one; the last message's wait ends early only when no reply is owed.
/// With `cfg.interactive` (a person at a terminal), after the last MESSAGE the
/// client keeps listening for a missing reply until the person presses Enter
/// or Ctrl-D.
pub fn send<W: Write>(
    target: &Target,
    messages: &[String],
    stdin: impl BufRead + Send + 'static,
    cfg: &Config,
    out: &mut W,
    log: &Log,
) -> Result<Summary, Error> {
    // The notes' steps, in the order a careful program takes them: the messages
    // are checked before anything happens, and the socket's address family must
    // match the destination's, so step 1 comes after steps 3 and 2.
    //
    // 3. 准备数据 — the data must be bytes: encode the messages first, so that a
    //    message we would refuse is reported before anything is sent.
    let mut outgoing = Outgoing::new(cfg.send);
    let mut wires = Vec::with_capacity(messages.len());
    for m in messages {
        let wire = outgoing.message(m)?;
        if let Some(w) = wire.warning(cfg.send.encoding) {
            log.warn(format_args!("{w}"));
        }
        wires.push(wire.bytes);
    }
    // 2. 定义接收信息的目标 — the destination, `('127.0.0.1', 8090)`. A name may
    //    resolve to several addresses; UDP cannot "try" one (nothing answers a
    //    datagram by itself), so the first of the wanted family is used (-4 / -6).
    let dest = resolve(target, cfg.family)?[0];
    for (i, w) in wires.iter().enumerate() {
        if let Some(why) = too_long(w.len(), &dest) {
            return Err(UsageError(format!("message {}: {why}", i + 1)).into());
        }
    }
    if let Some(size) = cfg.raw
        && let Some(why) = too_long(size, &dest)
    {
        return Err(UsageError(format!("--size {size}: {why}")).into());
    }
    // 1. 创建套接字 — socket(AF_INET, SOCK_DGRAM), unconnected (see `client_socket`).
    let socket = client_socket(&dest, cfg.broadcast).map_err(|error| Error::Socket {
        what: "create socket",
        error,
    })?;
    if let Ok(local) = socket.local_addr() {
        log.verbose(format_args!(
            "sending from {} to {}",
            display_addr(&local),
            display_addr(&dest)
        ));
    }
    let mut client = Client {
        socket,
        dest,
        name: display_addr(&dest),
        cfg,
        out,
        log,
        reader: DatagramReader::new(),
        printed: Vec::new(),
        summary: Summary {
            wait: cfg.wait.filter(|_| !cfg.interactive),
            ..Summary::default()
        },
        warned_decode: false,
        overdue: false,
        owed: VecDeque::new(),
        messages: 0,
        single: messages.len() == 1 && cfg.repeat <= 1,
    };
    let start_feed = |raw, terminal| {
        StdinFeed::spawn(stdin, raw, terminal).map_err(|error| Error::Socket {
            what: "start reading stdin",
            error,
        })
    };

    if !messages.is_empty() {
        let rounds = cfg.repeat.max(1);
        'rounds: for round in 0..rounds {
            if round > 0 && !cfg.interval.is_zero() {
                thread::sleep(cfg.interval);
            }
            for (i, (m, w)) in messages.iter().zip(&wires).enumerate() {
                let msg = Prepared {
                    typed: m.as_bytes().to_vec(),
                    wire: Ok(w.clone()),
                };
                let last = round + 1 == rounds && i + 1 == messages.len();
                let late = if cfg.interactive && last {
                    Late::ListenUntilEnter
                } else {
                    Late::GiveUp
                };
                if !client.exchange(msg, &format!("message {}", i + 1), late)? {
                    break 'rounds;
                }
            }
        }
        if client.overdue {
            // Lesson 08's receiver is a person who reads our message and types an
            // answer: it may take longer than any --wait. Keep listening until it
            // comes, or until they say stop (Enter, Ctrl-D).
            let mut feed = start_feed(None, true)?;
            client.listen(&mut feed, true)?;
        }
        return Ok(client.finish());
    }

    if cfg.repeat > 1 {
        log.warn(format_args!(
            "--repeat applies to MESSAGE arguments; each stdin {} is sent once",
            if cfg.raw.is_some() { "chunk" } else { "line" }
        ));
    }
    let late = if cfg.interactive {
        Late::ListenWhileTyping
    } else {
        Late::GiveUp
    };
    let mut feed = start_feed(cfg.raw, cfg.interactive)?;
    let mut number = 0u64;
    loop {
        let input = if cfg.wait.is_some() {
            client.listen(&mut feed, false)?.unwrap_or(Input::End)
        } else {
            // --no-wait: nothing is read from the socket, so nothing to show.
            feed.rx.recv().unwrap_or(Input::End)
        };
        let data = match input {
            Input::End => break,
            Input::Failed(e) => return Err(Error::Stdin(e)),
            Input::Data(data) => data,
        };
        number += 1;
        let (msg, what) = match data {
            Err(len) => (
                Prepared {
                    typed: Vec::new(),
                    wire: Err(format!(
                        "{len} bytes is more than one UDP datagram can carry"
                    )),
                },
                format!("line {number}"),
            ),
            // --raw: the bytes as they are.
            Ok(chunk) if cfg.raw.is_some() => (
                Prepared {
                    typed: Vec::new(),
                    wire: Ok(chunk),
                },
                format!("datagram {number}"),
            ),
            Ok(line) => (
                Prepared {
                    wire: line_to_wire(&mut outgoing, &line, &dest, log),
                    typed: line,
                },
                format!("line {number}"),
            ),
        };
        if !client.exchange(msg, &what, late)? {
            break;
        }
    }
    if cfg.wait.is_some() {
        // Anything that came in since the last look is still shown.
        client.drain()?;
    } else if cfg.raw.is_some() {
        let s = &client.summary;
        log.info(format_args!(
            "sent {} datagram{} ({} bytes) to {}",
            s.sent,
            plural(s.sent),
            s.bytes_out,
            client.name
        ));
    }
    Ok(client.finish())
}

/// One stdin line (without its ending) as datagram bytes.
fn line_to_wire(
    outgoing: &mut Outgoing,
    line: &[u8],
    dest: &SocketAddr,
    log: &Log,
) -> Result<Vec<u8>, String> {
    let enc = outgoing.options().encoding;
    // In UTF-8, `stdin_chunk` sends the bytes exactly as typed, even ones that are
    // not valid UTF-8. For another encoding it would keep a character cut off at
    // the end of the line for the next chunk — right for TCP's stream, wrong here,
    // where the next line is another datagram. So each line is converted on its
    // own, a broken character becoming U+FFFD (sent as `?`, with a warning).
    let wire = if codec::is_utf8(enc) || outgoing.options().hex {
        outgoing.stdin_chunk(line)
    } else {
        outgoing.message(&String::from_utf8_lossy(line))
    }
    .map_err(|e| e.to_string())?;
    if let Some(w) = wire.warning(enc) {
        log.warn(format_args!("{w}"));
    }
    match too_long(wire.bytes.len(), dest) {
        Some(why) => Err(why),
        None => Ok(wire.bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Blame;
    use crate::net::{ListenSpec, udp_socket};
    use crate::output::{Io, Output, Verbosity};
    use crate::shutdown::Shutdown;
    use crate::testutil::SharedBuf;
    use crate::udp::MAX_PAYLOAD_V4;
    use crate::udp::server::{self, serve};
    use crate::udp::test_support::*;
    use std::io::Cursor;
    use std::sync::mpsc;

    fn target(addr: SocketAddr) -> Target {
        Target {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// Run `send` against `addr` with these stdin bytes; (summary, stdout, stderr).
    fn run_send(
        addr: SocketAddr,
        messages: &[&str],
        stdin: &[u8],
        cfg: &Config,
    ) -> (Result<Summary, Error>, String, String) {
        let log = SharedBuf::new();
        let mut out = Vec::new();
        let messages: Vec<String> = messages.iter().map(|s| s.to_string()).collect();
        let r = send(
            &target(addr),
            &messages,
            Cursor::new(stdin.to_vec()),
            cfg,
            &mut out,
            &Log::to_writer(log.clone(), Verbosity::Normal),
        );
        (r, String::from_utf8_lossy(&out).into_owned(), log.text())
    }

    /// A peer on loopback that answers nothing (the test reads what it got):
    /// its socket and address.
    fn silent_peer() -> (UdpSocket, SocketAddr) {
        let socket = sock();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    /// A peer on loopback that does `act` with its socket on a thread of its
    /// own: its address, and the thread to join.
    fn spawn_peer<T: Send + 'static>(
        act: impl FnOnce(UdpSocket) -> T + Send + 'static,
    ) -> (SocketAddr, thread::JoinHandle<T>) {
        let (socket, addr) = silent_peer();
        (addr, thread::spawn(move || act(socket)))
    }

    #[test]
    fn send_stdin_lines_to_our_server_and_stop_after_exit() {
        let srv = start(server::Config::default());
        let cfg = Config::default();
        let (r, out, log) = run_send(
            srv.addr,
            &[],
            "我爱你\r\n你爱我\nexit\nnot sent\n".as_bytes(),
            &cfg,
        );
        let summary = r.unwrap();
        assert_eq!(out, "我爱你\n你爱我\nexit\n");
        assert_eq!((summary.sent, summary.replies, summary.missing), (3, 3, 0));
        assert_eq!(log, "");
        summary.check().unwrap();
        let printed = srv.out.clone();
        srv.stop();
        assert!(!printed.text().contains("not sent"), "{}", printed.text());
    }

    #[test]
    fn non_utf8_stdin_line_goes_out_byte_exact() {
        let (addr, echo) = spawn_peer(move |peer| {
            let (got, from) = recv(&peer);
            peer.send_to(&got, from).unwrap();
            got
        });
        let cfg = Config {
            show: Show::Hex,
            ..Config::default()
        };
        let (r, out, _) = run_send(addr, &[], b"\xff\xfe\xc4\n", &cfg);
        assert_eq!(echo.join().unwrap(), b"\xff\xfe\xc4");
        assert_eq!(r.unwrap().replies, 1);
        assert!(out.starts_with("00000000  ff fe c4 "), "{out}");
    }

    #[test]
    fn gbk_stdin_lines_are_converted_each_on_its_own() {
        let (tx, rx) = mpsc::channel();
        let (addr, collect) = spawn_peer(move |peer| {
            for _ in 0..2 {
                let (got, from) = recv(&peer);
                peer.send_to(b"ok", from).unwrap();
                tx.send(got).unwrap();
            }
        });
        let cfg = Config {
            send: SendOptions {
                encoding: encoding_rs::GBK,
                ..SendOptions::default()
            },
            ..Config::default()
        };
        // The first line ends in half a UTF-8 character: it must not leak into the second.
        let (r, out, log) = run_send(addr, &[], b"\xe4\xbd\n\xe4\xbd\xa0\xe5\xa5\xbd\n", &cfg);
        collect.join().unwrap();
        assert_eq!(rx.recv().unwrap(), b"?");
        assert_eq!(rx.recv().unwrap(), b"\xc4\xe3\xba\xc3");
        assert_eq!(out, "ok\nok\n");
        assert!(log.contains("cannot be encoded in GBK"), "{log}");
        r.unwrap().check().unwrap();
    }

    #[test]
    fn a_lost_reply_is_reported_and_the_next_line_still_sent() {
        let (addr, server) = spawn_peer(move |peer| {
            let (first, _) = recv(&peer); // dropped, as the network might
            let (second, from) = recv(&peer);
            peer.send_to(b"answer", from).unwrap();
            (first, second)
        });
        let cfg = Config {
            wait: Some(Duration::from_millis(1000)),
            ..Config::default()
        };
        let (r, out, log) = run_send(addr, &[], b"one\ntwo\n", &cfg);
        assert_eq!(server.join().unwrap(), (b"one".to_vec(), b"two".to_vec()));
        let summary = r.unwrap();
        // UDP cannot tell which line "answer" answers: it counts for the oldest
        // without one, and line 2 waits its full second. One missing either way.
        assert_eq!(out, "answer\n");
        assert_eq!(
            log,
            format!(
                "warning: no reply to line 1 from {addr} within 1 s\n\
                 late reply from {addr}: counted for line 1\n\
                 warning: no reply to line 2 from {addr} within 1 s\n"
            )
        );
        assert_eq!((summary.sent, summary.missing), (2, 1));
        let err = summary.check().unwrap_err();
        assert_eq!(err.to_string(), "no reply to 1 of 2 datagrams within 1 s");
        assert!(!err.is_usage());
    }

    #[test]
    fn no_reply_to_the_quit_word_is_not_a_failure() {
        let (addr, server) = spawn_peer(move |peer| {
            let (_, from) = recv(&peer);
            peer.send_to(b"hi", from).unwrap();
            recv(&peer).0 // `exit`, not answered: this server quits on it
        });
        let cfg = Config {
            wait: Some(Duration::from_millis(1000)),
            ..Config::default()
        };
        let (r, out, log) = run_send(addr, &["hi", "exit", "never"], b"", &cfg);
        assert_eq!(server.join().unwrap(), b"exit");
        let summary = r.unwrap();
        assert_eq!(out, "hi\n");
        assert_eq!((summary.sent, summary.missing), (2, 0));
        assert!(log.contains("not counted"), "{log}");
        summary.check().unwrap();
    }

    #[test]
    fn a_datagram_from_a_third_address_is_shown_with_it_not_taken_for_the_reply() {
        let (addr, third_addr, server) = answered_twice(b"intruder", b"real");
        let (r, out, _) = run_send(addr, &["ping"], b"", &Config::default());
        server.join().unwrap();
        assert_eq!(out, format!("[{third_addr}] intruder\nreal\n"));
        let summary = r.unwrap();
        assert_eq!((summary.replies, summary.others), (1, 1));
    }

    /// A peer whose one datagram is answered twice: with `other_says` from
    /// another address, then with `it_says` by the peer. The peer's address,
    /// the other's, and the thread.
    fn answered_twice(
        other_says: &'static [u8],
        it_says: &'static [u8],
    ) -> (SocketAddr, SocketAddr, thread::JoinHandle<()>) {
        let other = sock();
        let other_addr = other.local_addr().unwrap();
        let (addr, server) = spawn_peer(move |peer| {
            let (_, from) = recv(&peer);
            other.send_to(other_says, from).unwrap();
            peer.send_to(it_says, from).unwrap();
        });
        (addr, other_addr, server)
    }

    /// The person at the other end: takes a datagram, and answers it with
    /// `reply` only once `log` shows the client gave up waiting and listens on.
    fn answer_once_warned(
        log: &SharedBuf,
        reply: &'static [u8],
    ) -> (SocketAddr, thread::JoinHandle<()>) {
        let log = log.clone();
        spawn_peer(move |peer| {
            let (_, from) = recv(&peer);
            wait_for(&log, "still listening");
            peer.send_to(reply, from).unwrap();
        })
    }

    /// Wait until `buf` holds `needle` (what the client printed or logged).
    fn wait_for(buf: &SharedBuf, needle: &str) {
        let deadline = Instant::now() + T;
        while !buf.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                buf.text()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// A stdin that gives `first`, then, when asked for more, calls `then`
    /// before giving `rest` — a person who types a line, and the next one later.
    struct Typing<F: FnMut()> {
        first: Cursor<Vec<u8>>,
        then: Option<F>,
        rest: Cursor<Vec<u8>>,
    }

    impl<F: FnMut()> io::Read for Typing<F> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = self.fill_buf()?.len().min(b.len());
            b[..n].copy_from_slice(&self.fill_buf()?[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl<F: FnMut()> BufRead for Typing<F> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            if (self.first.position() as usize) < self.first.get_ref().len() {
                return self.first.fill_buf();
            }
            if let Some(mut then) = self.then.take() {
                then();
            }
            self.rest.fill_buf()
        }
        fn consume(&mut self, n: usize) {
            if (self.first.position() as usize) < self.first.get_ref().len() {
                self.first.consume(n)
            } else {
                self.rest.consume(n)
            }
        }
    }

    /// Run `send` with `stdin`; its stdout and stderr are shared buffers the
    /// test can watch while it runs.
    fn run_send_watched(
        addr: SocketAddr,
        messages: &[&str],
        stdin: impl BufRead + Send + 'static,
        cfg: &Config,
        out: &SharedBuf,
        log: &SharedBuf,
    ) -> Result<Summary, Error> {
        let messages: Vec<String> = messages.iter().map(|s| s.to_string()).collect();
        send(
            &target(addr),
            &messages,
            stdin,
            cfg,
            &mut out.clone(),
            &Log::to_writer(log.clone(), Verbosity::Normal),
        )
    }

    #[test]
    fn a_late_reply_while_waiting_for_stdin_counts_for_the_line_that_missed_it() {
        let (addr, server) = spawn_peer(move |peer| {
            // A slow server: line 1's answer comes twice its wait after line 1.
            let (one, from) = recv(&peer);
            thread::sleep(Duration::from_millis(600));
            peer.send_to(b"late one", from).unwrap();
            let (two, from) = recv(&peer);
            peer.send_to(b"two", from).unwrap();
            (one, two)
        });
        let (out, log) = (SharedBuf::new(), SharedBuf::new());
        let o = out.clone();
        // Line 2 is "typed" only after the late answer to line 1 has been shown:
        // shown while the client waits for stdin.
        let stdin = Typing {
            first: Cursor::new(b"one\n".to_vec()),
            then: Some(move || wait_for(&o, "late one")),
            rest: Cursor::new(b"two\n".to_vec()),
        };
        let cfg = Config {
            wait: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let summary = run_send_watched(addr, &[], stdin, &cfg, &out, &log).unwrap();
        assert_eq!(server.join().unwrap(), (b"one".to_vec(), b"two".to_vec()));
        // Line 1's reply, late, and line 2's: each shown as a reply, none missing.
        assert_eq!(out.text(), "late one\ntwo\n");
        assert_eq!(
            (summary.replies, summary.others, summary.missing),
            (2, 0, 0)
        );
        // Its warning was to come with line 2; by then the reply had come.
        assert_eq!(log.text(), "");
    }

    #[test]
    fn on_a_terminal_a_reply_typed_after_the_wait_is_the_reply() {
        let (out, log) = (SharedBuf::new(), SharedBuf::new());
        // A person at the other end reads line 1 and takes their time to answer.
        let (addr, server) = answer_once_warned(&log, "我是人".as_bytes());
        let o = out.clone();
        let stdin = Typing {
            first: Cursor::new(b"hello\n".to_vec()),
            // Our person sees the answer, then presses Ctrl-D.
            then: Some(move || wait_for(&o, "我是人")),
            rest: Cursor::new(Vec::new()),
        };
        let cfg = Config {
            wait: Some(Duration::from_millis(200)),
            interactive: true,
            ..Config::default()
        };
        let summary = run_send_watched(addr, &[], stdin, &cfg, &out, &log).unwrap();
        server.join().unwrap();
        assert_eq!(out.text(), "我是人\n");
        assert_eq!(
            log.text(),
            format!(
                "warning: no reply to line 1 from {addr} within 0.2 s; still listening (type the next line, or Ctrl-D to stop)\n"
            )
        );
        assert_eq!((summary.replies, summary.missing), (1, 0));
        summary.check().unwrap();
    }

    #[test]
    fn on_a_terminal_a_message_waits_for_its_reply_until_enter() {
        // Answered late: the reply ends the run.
        let (out, log) = (SharedBuf::new(), SharedBuf::new());
        let (addr, server) = answer_once_warned(&log, b"typed by hand");
        let (keys, typed) = io::pipe().unwrap();
        let cfg = Config {
            wait: Some(Duration::from_millis(200)),
            interactive: true,
            ..Config::default()
        };
        let stdin = io::BufReader::new(keys);
        let summary = run_send_watched(addr, &["hi"], stdin, &cfg, &out, &log).unwrap();
        server.join().unwrap();
        assert_eq!(out.text(), "typed by hand\n");
        assert!(
            log.text()
                .ends_with("within 0.2 s; still listening (Enter or Ctrl-D stops)\n"),
            "{}",
            log.text()
        );
        summary.check().unwrap();
        drop(typed);

        // Never answered: Enter stops it, and the reply is missing.
        let (out, log) = (SharedBuf::new(), SharedBuf::new());
        let (keys, mut typed) = io::pipe().unwrap();
        let l = log.clone();
        let (addr, person) = spawn_peer(move |peer| {
            wait_for(&l, "still listening");
            typed.write_all(b"\n").unwrap();
            recv(&peer)
        });
        let stdin = io::BufReader::new(keys);
        let summary = run_send_watched(addr, &["hi"], stdin, &cfg, &out, &log).unwrap();
        assert_eq!(person.join().unwrap().0, b"hi");
        assert_eq!(out.text(), "");
        assert_eq!(
            summary.check().unwrap_err().to_string(),
            "no reply to 1 of 1 datagram"
        );
    }

    #[test]
    fn next_chunk_fills_to_size_but_on_a_terminal_takes_one_read() {
        // A reader that gives 3 bytes per read, like lines typed one by one.
        let data = b"abcdefgh";
        let mut buf = Vec::new();
        let mut r = io::BufReader::with_capacity(3, &data[..]);
        let mut got = Vec::new();
        while next_chunk(&mut r, &mut buf, 5, false).unwrap() > 0 {
            got.push(buf.clone());
        }
        assert_eq!(got, [b"abcde".to_vec(), b"fgh".to_vec()]);
        let mut r = io::BufReader::with_capacity(3, &data[..]);
        let mut got = Vec::new();
        while next_chunk(&mut r, &mut buf, 5, true).unwrap() > 0 {
            got.push(buf.clone());
        }
        assert_eq!(got, [b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]);
    }

    #[test]
    fn raw_cuts_stdin_into_datagrams_of_size_and_writes_only_the_replies() {
        let third = sock();
        let data = (0..2500u32)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<u8>>();
        let (addr, server) = spawn_peer(move |peer| {
            let mut sizes = Vec::new();
            for i in 0..3 {
                let (d, from) = recv(&peer);
                sizes.push(d.len());
                if i == 1 {
                    // A stranger's datagram must not land in the byte stream.
                    third.send_to(b"noise", from).unwrap();
                }
                peer.send_to(&d, from).unwrap();
            }
            sizes
        });
        let cfg = Config {
            raw: Some(1000),
            show: Show::Raw,
            ..Config::default()
        };
        let log = SharedBuf::new();
        let mut out = Vec::new();
        let summary = send(
            &target(addr),
            &[],
            Cursor::new(data.clone()),
            &cfg,
            &mut out,
            &Log::to_writer(log.clone(), Verbosity::Normal),
        )
        .unwrap();
        assert_eq!(server.join().unwrap(), vec![1000, 1000, 500]);
        assert!(out == data, "the echoes are not the bytes sent");
        assert_eq!((summary.sent, summary.replies, summary.missing), (3, 3, 0));
        assert!(
            log.text().contains("5 bytes from 127.0.0.1:") && log.text().contains("not written"),
            "{}",
            log.text()
        );
        // "exit" is data here, not the quit word; nothing is added to it.
        let (addr, server) = spawn_peer(move |echo| {
            let mut got = Vec::new();
            for _ in 0..2 {
                let (d, from) = recv(&echo);
                echo.send_to(&d, from).unwrap();
                got.push(d);
            }
            got
        });
        let cfg = Config {
            raw: Some(4),
            show: Show::Raw,
            ..Config::default()
        };
        let (r, _, _) = run_send(addr, &[], b"exit\n\r\n", &cfg);
        assert_eq!(
            server.join().unwrap(),
            vec![b"exit".to_vec(), b"\n\r\n".to_vec()]
        );
        assert_eq!(r.unwrap().sent, 2);
    }

    #[test]
    fn raw_size_larger_than_a_datagram_is_refused() {
        let cfg = Config {
            raw: Some(MAX_PAYLOAD_V4 + 1),
            ..Config::default()
        };
        let (r, _, _) = run_send(sock().local_addr().unwrap(), &[], b"", &cfg);
        let err = r.unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert!(
            err.to_string()
                .starts_with("--size 65508: 65508 bytes is more than one UDP datagram can carry"),
            "{err}"
        );
    }

    #[test]
    fn no_wait_only_sends_and_says_so() {
        let (peer, addr) = silent_peer();
        let cfg = Config {
            wait: None,
            ..Config::default()
        };
        let (r, out, log) = run_send(addr, &["我爱你"], b"", &cfg);
        assert_eq!(recv(&peer).0, "我爱你".as_bytes());
        assert_eq!(out, "");
        assert_eq!(log, format!("sent 9 bytes to {addr}\n"));
        r.unwrap().check().unwrap();
    }

    #[test]
    fn repeat_sends_the_messages_again() {
        let (peer, addr) = silent_peer();
        let cfg = Config {
            wait: None,
            repeat: 3,
            interval: Duration::from_millis(1),
            ..Config::default()
        };
        let (r, _, _) = run_send(addr, &["a", "b"], b"", &cfg);
        assert_eq!(r.unwrap().sent, 6);
        let got: Vec<Vec<u8>> = (0..6).map(|_| recv(&peer).0).collect();
        assert_eq!(got, [b"a", b"b", b"a", b"b", b"a", b"b"]);
    }

    #[test]
    fn too_long_messages_are_refused_not_truncated() {
        let (peer, addr) = silent_peer();
        let long = "x".repeat(MAX_PAYLOAD_V4 + 1);
        let (r, _, _) = run_send(addr, &["ok", &long], b"", &Config::default());
        let err = r.unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "message 2: 65508 bytes is more than one UDP datagram can carry (at most 65507 bytes to an IPv4 address)"
        );
        // Refused before anything was sent.
        peer.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(peer.recv_from(&mut [0u8; 8]).is_err());

        // A stdin line: reported, skipped, and the next one still goes.
        peer.set_read_timeout(Some(T)).unwrap();
        let cfg = Config {
            wait: None,
            ..Config::default()
        };
        let mut input = long.into_bytes();
        input.extend_from_slice(b"\nnext\n");
        let (r, _, log) = run_send(addr, &[], &input, &cfg);
        assert_eq!(recv(&peer).0, b"next");
        assert!(
            log.contains("line 1 not sent: 65508 bytes is more"),
            "{log}"
        );
        let summary = r.unwrap();
        assert_eq!((summary.sent, summary.not_sent), (1, 1));
        assert_eq!(
            summary.check().unwrap_err().to_string(),
            "1 message not sent"
        );

        // A line longer than any datagram in any encoding is not even kept whole.
        let mut input = vec![b'y'; MAX_LINE * 2];
        input.extend_from_slice(b"\nlast\n");
        let (r, _, log) = run_send(addr, &[], &input, &cfg);
        assert_eq!(recv(&peer).0, b"last");
        assert!(
            log.contains(&format!("line 1 not sent: {} bytes is more", MAX_LINE * 2)),
            "{log}"
        );
        assert_eq!(r.unwrap().not_sent, 1);
    }

    #[test]
    fn broadcast_flag_sets_so_broadcast_and_its_absence_is_explained() {
        let dest: SocketAddr = "255.255.255.255:9".parse().unwrap();
        assert!(client_socket(&dest, true).unwrap().broadcast().unwrap());
        assert!(!client_socket(&dest, false).unwrap().broadcast().unwrap());
        // Without SO_BROADCAST the kernel refuses before anything is sent.
        let (r, _, _) = run_send(dest, &["hi"], b"", &Config::default());
        let err = r.unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot send to 255.255.255.255:9: permission denied (sending to a broadcast address needs --broadcast)"
        );
        assert!(!err.is_usage());
    }

    #[test]
    fn broadcast_mode_prints_every_answer_with_its_address() {
        // Loopback stands in for a LAN: two "hosts" answer one datagram.
        let (addr, other_addr, server) = answered_twice(b"me too", b"here");
        let cfg = Config {
            broadcast: true,
            wait: Some(Duration::from_millis(500)),
            ..Config::default()
        };
        let (r, out, log) = run_send(addr, &["who is there?"], b"", &cfg);
        server.join().unwrap();
        assert_eq!(out, format!("[{other_addr}] me too\n[{addr}] here\n"));
        assert_eq!(log, "");
        let summary = r.unwrap();
        assert_eq!(
            (summary.replies, summary.others, summary.missing),
            (2, 0, 0)
        );
    }

    #[test]
    fn ipv6_loopback_to_a_dual_stack_server() {
        if UdpSocket::bind("[::1]:0").is_err() {
            return; // no IPv6 here
        }
        let socket = udp_socket(ListenSpec::any(0)).unwrap();
        let port = socket.local_addr().unwrap().port();
        let io = Io::new(
            Output::to_writer(SharedBuf::new()),
            Log::to_writer(SharedBuf::new(), Verbosity::Quiet),
        );
        let sd = Shutdown::new();
        let sd2 = sd.clone();
        let (tx, done) = mpsc::channel();
        thread::spawn(move || tx.send(serve(socket, &server::Config::default(), io, &sd2)));
        for host in ["::1", "127.0.0.1"] {
            let t = Target {
                host: host.into(),
                port,
            };
            let mut printed = Vec::new();
            let summary = send(
                &t,
                &["six or four".into()],
                io::empty(),
                &Config::default(),
                &mut printed,
                &Log::to_writer(SharedBuf::new(), Verbosity::Normal),
            )
            .unwrap();
            assert_eq!(printed, b"six or four\n", "{host}");
            summary.check().unwrap();
        }
        sd.trigger();
        let summary = done.recv_timeout(T).expect("serve did not stop").unwrap();
        assert_eq!(summary.senders, 2);
    }
}
