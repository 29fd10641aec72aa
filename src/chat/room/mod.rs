//! The chat room (`chat room`): many people, one conversation, over TCP — what `ncat --chat` does, done better.
//!
//! Members connect with `chat connect`, `nc`, `telnet` or NetAssist. Each one
//! gets a name (`user-3` until `/nick alice`), and every line a member types is
//! sent to everyone else as `alice> text`. This module is the server: lesson 04's
//! thread-per-client server, with three lessons of the course built into it.
//!
//! # Lines, not reads (lesson 13, sticky packets 黏包)
//!
//! TCP carries bytes, not messages. When alice types `hello` and `world`, one
//! `recv()` may return `hello\nwor` and the next `ld\n`. A room that relayed each
//! read as it came (as `ncat --chat` does) would show `alice> hello\nwor` and
//! then `alice> ld`: a message cut in two, with half a line glued to the next
//! speaker's. So the room cuts the stream at `\n` (`member::LineSplitter`) and relays
//! whole lines only. A line is bounded (`--max-line`): a peer that never sends a
//! newline must not make us buffer without end, so a longer line is cut, relayed
//! as far as the limit, and the rest of it up to the next newline is skipped.
//!
//! # Text, not bytes (lesson 06, GBK vs UTF-8)
//!
//! The room decodes every line with its sender's encoding and encodes it again for
//! each reader in theirs. A NetAssist user who said `/enc gbk` sends `c4 e3 ba c3`
//! and a UTF-8 terminal reads `你好`; the answer goes back as GBK bytes. Chinese is
//! relayed as Chinese (ncat escapes every byte above 127: nmap issue 1280).
//! Characters a reader's encoding lacks arrive as `?`.
//!
//! # Who really wrote what
//!
//! A line that reaches a member starts either with `* ` (the room speaking) or
//! with `name> ` (that member speaking), and nothing in it can make it look
//! otherwise:
//!
//! - Characters that act on the terminal instead of showing are made visible
//!   ([`push_visible`](crate::message::push_visible)): control characters (`\x1b[2J` arrives as that text,
//!   not as a cleared screen) and invisible or layout-changing ones, such as
//!   U+2028 (which some terminals show as a new line: `hi\u{2028}bob> send me
//!   your password` would otherwise look like two lines, one from bob), the
//!   bidi overrides and isolates (U+202E reverses what follows it) and
//!   zero-width characters. They arrive as `\u{2028}`. Everything that shows as
//!   itself (Chinese, accents, emoji) is relayed untouched.
//! - Names ([`check_name`](crate::chat::protocol::check_name),
//!   [`looks_alike`](crate::chat::protocol::looks_alike)) hold nothing invisible, no spaces,
//!   no `>` and no leading `*` (nor look-alikes of these), are none of the
//!   reserved names (`server`, `room`, `me`), and neither equal (ignoring case)
//!   nor look like (UTS #39 confusables: Cyrillic `аlice`, `rnary`) the name of
//!   a member who is here.
//!
//! # Two threads and a bounded queue per member (lesson 04, and lesson 05's send buffer)
//!
//! `send()` blocks when the peer's receive window and our send buffer are full:
//! that is what happens when a member stops reading (a suspended laptop, a
//! terminal paused with Ctrl-S). If the thread that relays alice's message wrote
//! to every member itself, one such member would freeze the whole room. So each
//! member has:
//!
//! - a *reader* thread: reads its socket, cuts lines, runs commands, and
//!   *broadcasts*: encodes each message once per encoding in use and puts the bytes
//!   into every other member's queue. Putting never waits.
//! - a *writer* thread: takes bytes out of its member's queue and writes them to
//!   the socket, with a write timeout. Only this thread ever waits for the member.
//!
//! The queue ([`Config::max_queue`] bytes) absorbs a slow member's bursts. A
//! member who falls further behind than that is not going to catch up: they are
//! disconnected (their socket is shut down) and the others read
//! `* bob (…) left (too slow: outgoing queue full)`. Memory stays bounded: about
//! `max_users × max_queue` bytes at most are queued, whatever the members do.
//!
//! The price of never waiting: the room reads from a sender as fast as they send.
//! Someone who pastes megabytes at once can push members on slow links past the
//! limit too. Every chat server makes this trade (IRC servers call the queue the
//! *sendq* and drop clients that exceed it); `--max-queue` sets where it lies.
//!
//! # The protocol
//!
//! Lines ending in `\n`, the greeting, `* ` notices, `name> text` messages and
//! `/` commands are described in [`protocol`](crate::chat::protocol), which
//! `chat connect` shares.
//!
//! # Where the code is
//!
//! - `member.rs`: lines (lesson 13), and one member's reader and writer threads;
//! - `outbox.rs`: the bounded outgoing queue;
//! - `state.rs`: the room: who is here, joining, leaving, relaying;
//! - `transcript.rs`: stdout, fed through a queue of its own;
//! - here: the configuration, the totals and [`serve`].

mod member;
mod outbox;
mod state;
mod transcript;

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::addr::{describe_io, display_addr};
use crate::codec::{self, Encoding};
use crate::error::{Blame, UsageError};
use crate::output::{Io, Timestamps};
use crate::shutdown::Shutdown;

use member::{member, refuse};
use state::{Conn, Room};
use transcript::Transcript;

/// The port of `chat room` without one: the notes' QQ chat uses 8008 (lesson 11).
pub const DEFAULT_PORT: u16 = 8008;

/// Default `--max-users`.
pub const DEFAULT_MAX_USERS: usize = 256;

/// Default `--max-line`: 8 KiB, far more than anyone types in one line.
pub const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// Default `--max-queue`: 256 KiB per member. That holds thousands of ordinary
/// chat lines (or 32 of the longest), so a member whose connection hiccups loses
/// nothing, while 256 stalled members pin at most 64 MiB.
pub const DEFAULT_MAX_QUEUE: usize = 256 * 1024;

/// Default [`Config::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Stack of each member's threads. Their buffers live on the heap, so a small
/// stack is plenty: 256 members are 512 threads, 64 MiB of address space at
/// 128 KiB each instead of 1 GiB at Rust's default 2 MiB.
const MEMBER_STACK: usize = 128 * 1024;

/// How far stdout may fall behind before transcript lines are dropped.
const TRANSCRIPT_QUEUE: usize = 1024 * 1024;

/// How much one `read()` asks for.
const READ_CHUNK: usize = 16 * 1024;

/// How much the writer hands to one `write()`: everything queued, up to this.
const WRITE_BATCH: usize = 64 * 1024;

/// On Ctrl-C, how long members get to receive `* the room is closing` before
/// their sockets are shut down regardless. A member who reads gets it in
/// microseconds; one who does not would otherwise hold us up until the write timeout.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// How the room behaves (the flags of `chat room`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Most members at once (`--max-users`); one more is told the room is full.
    pub max_users: usize,
    /// Longest line, in received bytes (`--max-line`); longer ones are cut.
    pub max_line: usize,
    /// Most bytes waiting to be sent to one member (`--max-queue`). A member
    /// with more is disconnected as too slow. (One message is always accepted
    /// into an empty queue, so the true bound is this plus one message.)
    pub max_queue: usize,
    /// The encoding of a member who has not said `/enc` (`--encoding`).
    pub encoding: &'static Encoding,
    /// A member whose socket accepts nothing for this long is disconnected.
    pub write_timeout: Duration,
    /// `--timestamps`: the local time before each transcript line.
    pub stamps: Option<Timestamps>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_users: DEFAULT_MAX_USERS,
            max_line: DEFAULT_MAX_LINE,
            max_queue: DEFAULT_MAX_QUEUE,
            encoding: encoding_rs::UTF_8,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            stamps: None,
        }
    }
}

/// Why the room could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting that cannot work, such as a UTF-16 default encoding.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The listening socket or a thread could not be set up.
    #[error("cannot start the room: {}", describe_io(.0))]
    Io(io::Error),
}

impl Blame for Error {
    fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}

/// What happened while the room was open, printed when it closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Members who joined.
    pub joined: u64,
    /// Messages relayed (each counted once, however many read it).
    pub messages: u64,
    /// Connections turned away because the room was full.
    pub refused: u64,
    /// Members disconnected because they did not read what was sent to them.
    pub too_slow: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |n: u64| if n == 1 { "" } else { "s" };
        write!(
            f,
            "room closed: {} member{} joined, {} message{} relayed",
            self.joined,
            s(self.joined),
            self.messages,
            s(self.messages)
        )?;
        if self.refused > 0 {
            write!(f, ", {} refused (room full)", self.refused)?;
        }
        if self.too_slow > 0 {
            write!(f, ", {} disconnected as too slow", self.too_slow)?;
        }
        Ok(())
    }
}

/// Why `enc` cannot be a member's encoding, if it cannot.
///
/// The room finds the end of a line by the byte `0a` and a command by the byte
/// `2f` (`/`). In UTF-8, GBK, Big5, Shift_JIS and the like those bytes only ever
/// mean `\n` and `/` (every byte of a multi-byte character is above `3f` or
/// above `7f`). In UTF-16 `\n` is two bytes and `0a` may be half of any
/// character, so lines cannot be found without decoding first; ISO-2022-JP
/// switches what ASCII bytes mean. Those are refused.
pub(crate) fn encoding_problem(enc: &'static Encoding) -> Option<String> {
    (!enc.is_ascii_compatible()).then(|| {
        format!(
            "{} cannot be used in the room: it does not keep ASCII as ASCII, so lines and commands could not be found (try utf-8 or gbk)",
            codec::display_name(enc)
        )
    })
}

/// Run the room on `listener` until `shutdown` is triggered (Ctrl-C).
///
/// Prints `listening on ADDR` on `log` first (scripts and tests wait for it),
/// writes the transcript (`name> text`, UTF-8) to `out`, and joins, leaves and
/// renames to `log`. Returns the totals, which it has also logged.
///
/// # Errors
///
/// [`Error::Usage`] for a default encoding the room cannot use (before
/// anything is printed), [`Error::Io`] when the listener cannot be read or
/// a thread not started.
pub fn serve(
    listener: TcpListener,
    cfg: &Config,
    io: Io,
    shutdown: &Shutdown,
) -> Result<Summary, Error> {
    let Io { out, log, .. } = io;
    if let Some(problem) = encoding_problem(cfg.encoding) {
        return Err(UsageError(format!("--encoding: {problem}")).into());
    }
    let local = listener.local_addr().map_err(Error::Io)?;
    let wake = shutdown.wake_listener(&listener).map_err(Error::Io)?;
    let transcript = Transcript::start(out, log.clone(), shutdown.clone(), TRANSCRIPT_QUEUE)
        .map_err(Error::Io)?
        .with_timestamps(cfg.stamps.clone());
    log.always(format_args!("listening on {local}"));
    let room = Arc::new(Room::new(cfg.clone(), log, transcript));
    // Each member's thread, and a weak handle on its socket, so a stalled one
    // can be shut down at closing time (weak: the socket closes when the
    // member's threads are done with it, not when we next look at this list).
    let mut members: Vec<(JoinHandle<()>, Weak<Conn>)> = Vec::new();
    while !shutdown.is_triggered() {
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(_) if shutdown.is_triggered() => break,
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
                room.log
                    .warn(format_args!("accept failed: {}", describe_io(&e)));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        members.retain(|(t, _)| !t.is_finished());
        if room.counters.active.taken() >= cfg.max_users {
            refuse(&room, stream, peer);
            continue;
        }
        // Small chat lines should leave at once, not wait for Nagle's algorithm
        // to collect more; the write timeout bounds how long a writer can hang.
        if let Err(e) = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_write_timeout(Some(cfg.write_timeout)))
        {
            room.log.warn(format_args!(
                "{}: {}; connection dropped",
                display_addr(&peer),
                describe_io(&e)
            ));
            continue;
        }
        let conn = Arc::new(Conn::new(stream, cfg.max_queue, display_addr(&peer)));
        // Claimed here, on the accepting thread, so check and claim cannot race.
        let slot = room.counters.active.claim();
        let (r, c) = (room.clone(), conn.clone());
        let spawned = thread::Builder::new()
            .name(format!("reader {peer}"))
            .stack_size(MEMBER_STACK)
            .spawn(move || member(&r, c, peer, slot));
        match spawned {
            Ok(t) => members.push((t, Arc::downgrade(&conn))),
            Err(e) => room.log.warn(format_args!(
                "{}: cannot start a thread ({e}); connection dropped",
                display_addr(&peer)
            )),
        }
    }
    drop(wake);
    room.close(members);
    let summary = room.summary();
    room.log.info(format_args!("{summary}"));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::GREETING;
    use crate::testutil::Running;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpStream};

    #[test]
    fn encodings_the_room_can_carry() {
        assert!(encoding_problem(encoding_rs::UTF_8).is_none());
        assert!(encoding_problem(encoding_rs::GBK).is_none());
        assert!(encoding_problem(encoding_rs::BIG5).is_none());
        let p = encoding_problem(encoding_rs::UTF_16LE).unwrap();
        assert!(p.starts_with("UTF-16LE cannot be used in the room"), "{p}");
        assert!(encoding_problem(encoding_rs::ISO_2022_JP).is_some());
    }

    #[test]
    fn summary_text() {
        let s = Summary {
            joined: 1,
            messages: 2,
            refused: 0,
            too_slow: 1,
        };
        assert_eq!(
            s.to_string(),
            "room closed: 1 member joined, 2 messages relayed, 1 disconnected as too slow"
        );
    }

    /// A room running in-process: its transcript and log land in memory.
    pub(super) struct TestRoom {
        pub(super) addr: SocketAddr,
        server: Running<Summary, Error>,
    }

    impl TestRoom {
        pub(super) fn start(cfg: Config) -> TestRoom {
            let server = Running::tcp(move |l, io, sd| serve(l, &cfg, io, sd));
            TestRoom {
                addr: server.addr,
                server,
            }
        }

        /// A member that has read its greeting and the who-is-here line.
        pub(super) fn member(&self) -> (TcpStream, BufReader<TcpStream>) {
            let s = TcpStream::connect(self.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            assert!(next(&mut r).starts_with(GREETING));
            assert!(next(&mut r).contains(" here: "));
            (s, r)
        }

        pub(super) fn stop(self) -> (Summary, String, String) {
            let (out, log) = (self.server.out.clone(), self.server.log.clone());
            let summary = self.server.stop();
            (summary, out.text(), log.text())
        }
    }

    /// The next line a member reads, with its `\n` (empty at the end of the stream).
    pub(super) fn next(r: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn serve_in_process() {
        let room = TestRoom::start(Config::default());
        let addr = room.addr;
        let (a, mut ra) = room.member();
        let (b, mut rb) = room.member();
        assert!(next(&mut ra).ends_with(") joined\n"));
        (&a).write_all(b"hel").unwrap();
        (&b).write_all(b"/nick bob\n").unwrap();
        assert_eq!(next(&mut rb), "* user-2 is now known as bob\n");
        assert_eq!(next(&mut ra), "* user-2 is now known as bob\n");
        (&a).write_all(b"lo\n").unwrap();
        assert_eq!(next(&mut rb), "user-1> hello\n");
        let (summary, out, log) = room.stop();
        assert_eq!(next(&mut rb), "* the room is closing\n");
        assert_eq!(next(&mut rb), "", "then the end of the stream");
        assert_eq!((summary.joined, summary.messages), (2, 1));
        assert_eq!(out, "user-1> hello\n");
        assert!(log.starts_with(&format!("listening on {addr}\n")), "{log}");
        assert!(log.contains("user-2 is now known as bob\n"), "{log}");
        assert!(log.ends_with(&format!("{summary}\n")), "{log}");
    }

    #[test]
    fn utf16_default_is_refused_before_listening() {
        let cfg = Config {
            encoding: encoding_rs::UTF_16LE,
            ..Config::default()
        };
        let server = Running::tcp(move |l, io, sd| serve(l, &cfg, io, sd));
        let err = server.result().unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert_eq!(server.log.text(), "");
    }
}
