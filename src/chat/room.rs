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
//! speaker's. So the room cuts the stream at `\n` ([`LineSplitter`]) and relays
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
//!   ([`push_visible`]): control characters (`\x1b[2J` arrives as that text,
//!   not as a cleared screen) and invisible or layout-changing ones, such as
//!   U+2028 (which some terminals show as a new line: `hi\u{2028}bob> send me
//!   your password` would otherwise look like two lines, one from bob), the
//!   bidi overrides and isolates (U+202E reverses what follows it) and
//!   zero-width characters. They arrive as `\u{2028}`. Everything that shows as
//!   itself (Chinese, accents, emoji) is relayed untouched.
//! - Names ([`check_name`], [`looks_alike`]) hold nothing invisible, no spaces,
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
//! The queue ([`RoomConfig::max_queue`] bytes) absorbs a slow member's bursts. A
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
//! Lines end with `\n` (a `\r` before it is dropped); everything the room sends is
//! a line. A new member's first line starts with [`GREETING`]; then comes a
//! line listing who is here. Room notices start with `* `, relayed messages are
//! `name> text`. Commands: `/nick NAME`, `/who`, `/enc LABEL`, `/quit`, `/help`;
//! a line starting with `//` is a message starting with `/`. See [`parse_input`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::addr::{describe_io, display_addr};
use crate::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable};
use crate::error::{Blame, UsageError};
use crate::message::{escape, is_invisible, push_visible};
use crate::net::{Places, Slot};
use crate::output::{Log, Output, Timestamps};
use crate::shutdown::Shutdown;

/// The start of the first line the room sends to a new member. `chat connect`
/// recognises a room by it (and nc users read it as a welcome).
pub const GREETING: &str = "* welcome to the chat room";

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

/// Default [`RoomConfig::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

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
pub struct RoomConfig {
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

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
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
pub enum RoomError {
    /// A setting that cannot work, such as a UTF-16 default encoding.
    #[error("{0}")]
    Usage(#[from] UsageError),
    /// The listening socket or a thread could not be set up.
    #[error("cannot start the room: {}", describe_io(.0))]
    Io(io::Error),
}

impl Blame for RoomError {
    fn is_usage(&self) -> bool {
        matches!(self, RoomError::Usage(_))
    }
}

/// What happened while the room was open, printed when it closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomSummary {
    /// Members who joined.
    pub joined: u64,
    /// Messages relayed (each counted once, however many read it).
    pub messages: u64,
    /// Connections turned away because the room was full.
    pub refused: u64,
    /// Members disconnected because they did not read what was sent to them.
    pub too_slow: u64,
}

impl fmt::Display for RoomSummary {
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
pub fn encoding_problem(enc: &'static Encoding) -> Option<String> {
    (!enc.is_ascii_compatible()).then(|| {
        format!(
            "{} cannot be used in the room: it does not keep ASCII as ASCII, so lines and commands could not be found (try utf-8 or gbk)",
            codec::display_name(enc)
        )
    })
}

// ---------------------------------------------------------------------------
// Lines (lesson 13)
// ---------------------------------------------------------------------------

/// One line cut out of a member's byte stream, without its `\n` (or `\r\n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's bytes, as received (still in the sender's encoding).
    pub bytes: &'a [u8],
    /// The line was longer than the limit: these are its first `max_line`
    /// bytes, possibly ending in the middle of a character
    /// ([`decode_line`] drops such a half character).
    pub cut: bool,
}

/// Cuts a byte stream into lines of at most `max_line` bytes, however the bytes
/// were split into reads: sans-IO, like [`crate::framing::Deframer`], so it is
/// tested without sockets.
///
/// Unlike the deframer, which gives up on an over-long frame (after a length
/// prefix it cannot trust there is no way to find the next frame), a chat line
/// that is too long is cut and the stream goes on: the next `\n` resynchronises.
/// The buffer never holds more than `max_line + 1` bytes (the extra byte may be
/// the `\r` of a `\r\n`).
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    /// Skipping the rest of a line that was already cut.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max: max_line.max(1),
            discarding: false,
        }
    }

    /// Feed the bytes of one read; `each` is called for every line they
    /// complete (or cut). When `each` breaks (the member said `/quit`), the rest
    /// is ignored and `push` breaks too.
    pub fn push(
        &mut self,
        mut data: &[u8],
        mut each: impl FnMut(Line<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        while !data.is_empty() {
            let (segment, ends_line) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let seg = &data[..i];
                    data = &data[i + 1..];
                    (seg, true)
                }
                None => (std::mem::take(&mut data), false),
            };
            if self.discarding {
                // The tail of a line already cut and relayed: skip up to its newline.
                self.discarding = !ends_line;
                continue;
            }
            let room = (self.max + 1).saturating_sub(self.buf.len());
            let overflow = segment.len() > room;
            self.buf
                .extend_from_slice(&segment[..segment.len().min(room)]);
            let too_long = if ends_line {
                if !overflow && self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                overflow || self.buf.len() > self.max
            } else {
                // max + 1 bytes ending in '\r' may yet be a line of max bytes + "\r\n".
                overflow || (self.buf.len() > self.max && self.buf.last() != Some(&b'\r'))
            };
            let flow = if too_long {
                self.discarding = !ends_line;
                each(Line {
                    bytes: &self.buf[..self.max],
                    cut: true,
                })
            } else if ends_line {
                each(Line {
                    bytes: &self.buf,
                    cut: false,
                })
            } else {
                ControlFlow::Continue(())
            };
            if too_long || ends_line {
                self.buf.clear();
            }
            flow?;
        }
        ControlFlow::Continue(())
    }

    /// At a clean end of stream: the last line if it had no newline (a
    /// member who sends `bye` and closes still said `bye`). Nothing if the
    /// stream ended inside a line that was already cut.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let discarding = std::mem::replace(&mut self.discarding, false);
        let mut rest = std::mem::take(&mut self.buf);
        if rest.last() == Some(&b'\r') {
            rest.pop();
        }
        (!discarding && !rest.is_empty()).then_some(rest)
    }
}

/// The text of a line from a member who sends `enc`, and whether it held bytes
/// that are not valid in `enc` (shown as `�`).
///
/// Each line gets a fresh decoder: no character can span a `\n` in an
/// encoding the room accepts (see [`encoding_problem`]). A cut line is decoded
/// with `last = false`, so a character the cut split in two is left inside the
/// decoder and dropped: the relayed text always ends on a character boundary.
pub fn decode_line(line: Line<'_>, enc: &'static Encoding) -> (String, bool) {
    let mut decoder = TextDecoder::new(enc);
    let text = decoder.decode(line.bytes, !line.cut);
    (text, decoder.had_errors())
}

/// `text` with control and invisible characters escaped ([`push_visible`]):
/// `\x1b[2J` becomes the six characters `\x1b[2J`, U+202E the eight `\u{202e}`.
/// Chinese and every other character that shows as itself stay.
fn visible(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    push_visible(text, &mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One line to send: `text` in `enc` (`?` for characters it lacks), then `\n`.
pub fn encode_line(enc: &'static Encoding, text: &str) -> Vec<u8> {
    let mut bytes = match TextEncoder::new(enc).encode(text, Unmappable::Substitute) {
        Ok(encoded) => encoded.bytes,
        // Substitute never refuses; UTF-8 is the only sensible fallback anyway.
        Err(_) => text.as_bytes().to_vec(),
    };
    bytes.push(b'\n');
    bytes
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// What a line a member typed asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// An empty line: nothing to relay.
    Empty,
    /// A message for everyone else (a `//` line arrives here with one `/` removed).
    Message(&'a str),
    /// A `/command`.
    Command(Command<'a>),
}

/// The room's commands. Their names are matched ignoring ASCII case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `/nick NAME`: take another name (empty: show the usage).
    Nick(&'a str),
    /// `/who`: list the members.
    Who,
    /// `/enc LABEL`: declare one's encoding (empty: show the current one).
    Enc(&'a str),
    /// `/quit`: leave.
    Quit,
    /// `/help`: list the commands.
    Help,
    /// Any other `/word` (the word, without its `/`).
    Unknown(&'a str),
}

/// Classify one line of text.
///
/// ```
/// use socktools::chat::room::{Command, Input, parse_input};
/// assert_eq!(parse_input("hello"), Input::Message("hello"));
/// assert_eq!(parse_input("/nick  小明 "), Input::Command(Command::Nick("小明")));
/// assert_eq!(parse_input("//etc is a folder"), Input::Message("/etc is a folder"));
/// assert_eq!(parse_input(""), Input::Empty);
/// ```
pub fn parse_input(line: &str) -> Input<'_> {
    if line.is_empty() {
        return Input::Empty;
    }
    if line.starts_with("//") {
        return Input::Message(&line[1..]);
    }
    let Some(cmd) = line.strip_prefix('/') else {
        return Input::Message(line);
    };
    let (word, arg) = match cmd.find(char::is_whitespace) {
        Some(i) => (&cmd[..i], cmd[i..].trim()),
        None => (cmd, ""),
    };
    Input::Command(match word.to_ascii_lowercase().as_str() {
        "nick" => Command::Nick(arg),
        "who" => Command::Who,
        "enc" => Command::Enc(arg),
        "quit" => Command::Quit,
        "help" => Command::Help,
        _ => Command::Unknown(word),
    })
}

/// Why a name cannot be taken. The texts are what the member reads, after
/// `cannot rename to "NAME": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or more than [`MAX_NAME_CHARS`] characters.
    #[error("a name has 1 to 32 characters")]
    Length,
    /// Contains a space, tab or other whitespace.
    #[error("a name cannot contain spaces")]
    Whitespace,
    /// Contains a control character.
    #[error("a name cannot contain control characters")]
    Control,
    /// Contains a character that does not show, or that changes the layout of
    /// the line (shown here made visible, as `\u{200b}`).
    #[error(
        "a name cannot contain invisible or formatting characters such as {0}; choose one without them"
    )]
    Invisible(String),
    /// Starts with `*` or a look-alike, as the room's notices do.
    #[error(
        "a name cannot start with \"*\" or a look-alike: the room's notices start with \"* \"; choose another"
    )]
    Notice,
    /// Contains `>` or a look-alike, which ends the name in `name> text`.
    #[error(
        "a name cannot contain \">\" or a look-alike: messages are shown as \"name> text\"; choose another"
    )]
    Arrow,
    /// The room (or the `chat` client) uses this name, or one that looks like it.
    #[error("\"{0}\" is reserved: the room and chat clients use it; choose another name")]
    Reserved(&'static str),
    /// Another member has it (names are compared ignoring case).
    #[error("that name is taken")]
    Taken,
    /// Looks like the name of a member who is here ([`looks_alike`]).
    #[error("it looks like \"{0}\", who is already here; choose another name")]
    LooksLike(String),
}

/// Check a name's form (not whether it is taken or reserved): 1–32
/// characters; no whitespace (so a name is one word after `/who`); nothing
/// that does not show as itself (control characters, [`is_invisible`] ones,
/// variation selectors, the blank U+2800), so that what readers see is the
/// whole name; and neither `>` nor a leading `*`, nor look-alikes of them
/// (`＞`, `›`, `∗`), so that a name cannot make `name> text` look like a
/// notice or like someone else's message.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if let Some(c) = name.chars().find(|&c| hidden_in_name(c)) {
        return Err(NameError::Invisible(escape(c)));
    }
    let skeleton: String = unicode_security::skeleton(name).collect();
    // Some single characters show as several words (U+FDFA, an Arabic ligature).
    if skeleton.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.starts_with('*') || skeleton.starts_with('*') {
        return Err(NameError::Notice);
    }
    if name.contains('>') || skeleton.contains('>') {
        return Err(NameError::Arrow);
    }
    Ok(())
}

/// Shows nothing of itself: more than messages escape, since a name has no
/// reason to hold a variation selector (an emoji drawn as text or picture is
/// still the same name to the reader, so two such names could not be told apart).
fn hidden_in_name(c: char) -> bool {
    // The variation selectors (Mongolian, standard, ideographic), and the
    // braille blank, a "letter" that shows as a space.
    is_invisible(c)
        || matches!(
            c,
            '\u{180b}'..='\u{180d}'
                | '\u{180f}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{e0100}'..='\u{e01ef}'
                | '\u{2800}'
        )
}

/// Names no member can take, nor anything that looks like them: what the
/// room is called in its own notices, what people expect the room to speak as
/// (`server`), and `me`, the prompt `chat connect` shows before its user's
/// own lines, so another member's `me> ...` would look like theirs.
const RESERVED: [&str; 3] = ["server", "room", "me"];

/// Could a reader mistake one name for the other? Names are compared ignoring
/// case and by their UTS #39 skeletons, which map look-alikes to one
/// prototype (Cyrillic `а` to Latin `a`, `0` to `O`, `rn` and `m` alike) and
/// drop default-ignorable characters. Case is folded both before and after
/// the mapping, since look-alikes and case interact: `user-10` and `user-1O`
/// are the same skeleton, `user-1o` and `user-1O` the same name ignoring case.
pub fn looks_alike(a: &str, b: &str) -> bool {
    same_name(a, b) || {
        let [a1, a2] = fold(a);
        let [b1, b2] = fold(b);
        a1 == b1 || a2 == b2
    }
}

/// The two keys [`looks_alike`] compares: the skeleton of the lowercased name,
/// and that of its skeleton lowercased.
fn fold(name: &str) -> [String; 2] {
    use unicode_security::skeleton;
    let lower: String = skeleton(&name.to_lowercase()).collect();
    let skel: String = skeleton(name).collect();
    [lower, skeleton(&skel.to_lowercase()).collect()]
}

/// Are these the same name? `Alice` and `alice` are, or people could not tell
/// who is talking.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

const HELP: &str = "* commands: /nick NAME (change your name), /who (who is here), /enc LABEL (the encoding you type and read: utf-8, gbk, big5, ...; /enc TYPED READ when they differ, NetAssist: /enc gbk utf-8), /quit (leave), /help; start a line with // to send a message that starts with /";

// ---------------------------------------------------------------------------
// The outgoing queue
// ---------------------------------------------------------------------------

/// A queue of byte messages bounded in bytes, with one consumer that waits.
///
/// Bounded in bytes, not messages: 1000 one-line messages and one 8 KiB paste
/// cost what they weigh. Messages are `Arc<[u8]>`: a broadcast encoded once
/// sits in every queue that needs it without being copied.
struct Outbox {
    queue: Mutex<Queue>,
    ready: Condvar,
    limit: usize,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<[u8]>>,
    bytes: usize,
    closed: bool,
}

/// Why [`Outbox::push`] did not take a message.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// Over the limit: the consumer is not keeping up.
    Full,
    /// Closed: the member is leaving.
    Closed,
}

impl Outbox {
    fn new(limit: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            limit,
        }
    }

    /// Queue `item`; never waits. An empty queue takes any one message, so a
    /// limit below the longest message cannot lock everyone out.
    fn push(&self, item: Arc<[u8]>) -> Result<(), Refused> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(Refused::Closed);
        }
        if !q.items.is_empty() && q.bytes + item.len() > self.limit {
            return Err(Refused::Full);
        }
        q.bytes += item.len();
        q.items.push_back(item);
        self.ready.notify_one();
        Ok(())
    }

    /// Take no more; what is queued is still delivered.
    fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_all();
    }

    /// Take no more and forget what is queued.
    fn abort(&self) {
        let mut q = lock(&self.queue);
        q.closed = true;
        q.items.clear();
        q.bytes = 0;
        self.ready.notify_all();
    }

    /// Wait for messages and append them to `batch` (at least one, then more
    /// while they fit in `max`). `false` once the queue is closed and empty.
    fn next_batch(&self, batch: &mut Vec<u8>, max: usize) -> bool {
        let mut q = lock(&self.queue);
        while q.items.is_empty() {
            if q.closed {
                return false;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        while let Some(front) = q.items.front() {
            if !batch.is_empty() && batch.len() + front.len() > max {
                break;
            }
            batch.extend_from_slice(front);
            q.bytes -= front.len();
            q.items.pop_front();
        }
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked must not take the room down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The room
// ---------------------------------------------------------------------------

/// One connection: its socket (shared by the reader, the writer and whoever
/// must shut it down) and its outgoing queue.
struct Conn {
    stream: TcpStream,
    outbox: Outbox,
    /// Why the room disconnected this member, if it did.
    kicked: Mutex<Option<String>>,
    /// The member's name, for the writer's `-v` lines (their address until they join).
    name: Mutex<String>,
}

impl Conn {
    /// Disconnect: forget the queue and shut the socket down, which wakes the
    /// reader (its `recv` returns 0) and the writer (its `send` fails).
    fn kick(&self, why: &str) {
        lock(&self.kicked).get_or_insert_with(|| why.to_string());
        self.outbox.abort();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn kicked(&self) -> Option<String> {
        lock(&self.kicked).clone()
    }

    fn name(&self) -> String {
        lock(&self.name).clone()
    }
}

/// A member as the room sees them.
struct Member {
    name: String,
    addr: String,
    enc: &'static Encoding,
    conn: Arc<Conn>,
}

#[derive(Default)]
struct State {
    /// By join order, which is also the order of `/who`.
    members: BTreeMap<u64, Member>,
    next_id: u64,
    /// Ctrl-C: no more joins or announcements.
    closing: bool,
}

impl State {
    /// Why `name` cannot be taken by member `except` (or by a newcomer, for
    /// `None`): a reserved name, another member's name, or a look-alike of
    /// either. Members who have left do not count: names are not owned.
    fn name_problem(&self, name: &str, except: Option<u64>) -> Result<(), NameError> {
        if let Some(word) = RESERVED.into_iter().find(|w| looks_alike(w, name)) {
            return Err(NameError::Reserved(word));
        }
        let others = self.members.iter().filter(|(id, _)| Some(**id) != except);
        for (_, m) in others {
            if same_name(&m.name, name) {
                return Err(NameError::Taken);
            }
            if looks_alike(&m.name, name) {
                return Err(NameError::LooksLike(m.name.clone()));
            }
        }
        Ok(())
    }

    /// `* 3 users here: alice (127.0.0.1:5000), bob (127.0.0.1:5002, you), …`
    fn who(&self, me: u64) -> String {
        let n = self.members.len();
        let mut line = format!("* {n} user{} here: ", if n == 1 { "" } else { "s" });
        for (i, (id, m)) in self.members.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            let you = if *id == me { ", you" } else { "" };
            line.push_str(&format!("{} ({}{you})", m.name, m.addr));
        }
        line
    }
}

#[derive(Default)]
struct Counters {
    joined: AtomicU64,
    messages: AtomicU64,
    refused: AtomicU64,
    too_slow: AtomicU64,
    /// Places taken, from accept until leaving (`--max-users`).
    active: Places,
}

struct Room {
    cfg: RoomConfig,
    log: Log,
    state: Mutex<State>,
    transcript: Transcript,
    counters: Counters,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queue bytes for one member; a member whose queue is full is disconnected.
    fn deliver(&self, conn: &Conn, bytes: Arc<[u8]>) -> bool {
        match conn.outbox.push(bytes) {
            Ok(()) => true,
            Err(Refused::Closed) => false,
            Err(Refused::Full) => {
                self.counters.too_slow.fetch_add(1, Ordering::Relaxed);
                conn.kick("too slow: outgoing queue full");
                false
            }
        }
    }

    /// Send `text` to one member, in their encoding.
    fn tell(&self, member: &Member, text: &str) {
        self.deliver(&member.conn, encode_line(member.enc, text).into());
    }

    /// Send `text` to every member but `except`: encoded once per encoding in
    /// use (50 UTF-8 members and 3 GBK ones cost two encodings, not 53), the
    /// same bytes shared by every queue. Called with the room locked, so every
    /// member sees messages in the same order. Never waits. Returns how many
    /// members the text was queued for.
    fn broadcast(&self, st: &State, except: Option<u64>, text: &str) -> usize {
        let mut encoded: Vec<(&'static Encoding, Arc<[u8]>)> = Vec::new();
        let mut queued = 0;
        for (id, m) in &st.members {
            if Some(*id) == except {
                continue;
            }
            let bytes = match encoded.iter().find(|(enc, _)| *enc == m.enc) {
                Some((_, bytes)) => bytes.clone(),
                None => {
                    let bytes: Arc<[u8]> = encode_line(m.enc, text).into();
                    encoded.push((m.enc, bytes.clone()));
                    bytes
                }
            };
            if self.deliver(&m.conn, bytes) {
                queued += 1;
            }
        }
        queued
    }

    /// A new member: pick a name, greet them, tell the others. `None` when the
    /// room is closing.
    fn join(&self, conn: &Arc<Conn>, addr: &str) -> Option<(u64, String)> {
        let mut st = self.lock();
        if st.closing {
            return None;
        }
        st.next_id += 1;
        let id = st.next_id;
        // user-N, or the next free N if someone took that name (or a look-alike) with /nick.
        let name = (id..)
            .map(|n| format!("user-{n}"))
            .find(|name| st.name_problem(name, None).is_ok())
            .unwrap_or_default();
        st.members.insert(
            id,
            Member {
                name: name.clone(),
                addr: addr.to_string(),
                enc: self.cfg.encoding,
                conn: conn.clone(),
            },
        );
        *lock(&conn.name) = name.clone();
        // Queued before anything else can be: the greeting is the first line.
        let me = &st.members[&id];
        self.tell(
            me,
            &format!(
                "{GREETING}, you are {name} ({addr}); commands: /nick NAME, /enc LABEL, /who, /quit, /help"
            ),
        );
        self.tell(me, &st.who(id));
        self.broadcast(&st, Some(id), &format!("* {name} ({addr}) joined"));
        drop(st);
        self.counters.joined.fetch_add(1, Ordering::Relaxed);
        self.log.info(format_args!("{name} ({addr}) joined"));
        Some((id, name))
    }

    /// A member leaves: free their place, then tell the others (so whoever
    /// reacts to the notice by connecting finds the place free).
    fn leave(&self, id: u64, reason: Option<&str>, slot: Slot) {
        let mut st = self.lock();
        let Some(m) = st.members.remove(&id) else {
            return;
        };
        drop(slot);
        let reason = reason.or(st.closing.then_some("the room is closing"));
        let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        let notice = format!("{} ({}) left{why}", m.name, m.addr);
        if !st.closing {
            self.broadcast(&st, None, &format!("* {notice}"));
        }
        drop(st);
        self.log.info(format_args!("{notice}"));
    }

    /// Relay a message from member `id` to the others, and to the transcript.
    fn relay(&self, id: u64, name: &str, text: &str) {
        let line = format!("{name}> {}", visible(text));
        let st = self.lock();
        if st.closing {
            return;
        }
        let queued = self.broadcast(&st, Some(id), &line);
        // Under the lock too: the transcript lists messages in the room's order.
        self.transcript.push(format!("{line}\n").into_bytes());
        drop(st);
        self.counters.messages.fetch_add(1, Ordering::Relaxed);
        self.log.verbose(format_args!(
            "{name}: relayed a message of {} bytes to {queued} member{}",
            text.len(),
            if queued == 1 { "" } else { "s" }
        ));
    }

    /// `/nick`: take `new` if it is free, and tell everyone (the renamed member too).
    fn rename(&self, id: u64, new: &str) -> Result<String, NameError> {
        check_name(new)?;
        let mut st = self.lock();
        st.name_problem(new, Some(id))?;
        let Some(m) = st.members.get_mut(&id) else {
            return Err(NameError::Taken);
        };
        let old = std::mem::replace(&mut m.name, new.to_string());
        *lock(&m.conn.name) = new.to_string();
        self.broadcast(&st, None, &format!("* {old} is now known as {new}"));
        drop(st);
        self.log.info(format_args!("{old} is now known as {new}"));
        Ok(old)
    }

    /// Ctrl-C: say goodbye to everyone, then close every connection; stalled
    /// members get [`CLOSE_GRACE`], not the write timeout.
    fn close(&self, members: Vec<(JoinHandle<()>, Weak<Conn>)>) {
        {
            let mut st = self.lock();
            st.closing = true;
            self.broadcast(&st, None, "* the room is closing");
            for m in st.members.values() {
                // Writers deliver what is queued (the goodbye), then stop; a
                // shut-down read side makes each reader's recv return 0.
                m.conn.outbox.close();
                let _ = m.conn.stream.shutdown(std::net::Shutdown::Read);
            }
        }
        let deadline = Instant::now() + CLOSE_GRACE;
        while members.iter().any(|(t, _)| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for (t, conn) in &members {
            if let Some(conn) = conn.upgrade().filter(|_| !t.is_finished()) {
                conn.kick("the room is closing");
            }
        }
        for (t, _) in members {
            let _ = t.join();
        }
        self.transcript
            .finish(deadline.max(Instant::now() + Duration::from_millis(100)));
    }

    fn summary(&self) -> RoomSummary {
        let c = &self.counters;
        RoomSummary {
            joined: c.joined.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            too_slow: c.too_slow.load(Ordering::Relaxed),
        }
    }
}

// ---------------------------------------------------------------------------
// The transcript (stdout)
// ---------------------------------------------------------------------------

/// The room's stdout, written by a thread of its own through a bounded queue:
/// a server whose terminal is paused (Ctrl-S) or piped into a stalled program
/// must not freeze the room any more than a stalled member may. When stdout
/// falls behind, transcript lines are dropped (with one warning), never messages.
struct Transcript {
    outbox: Arc<Outbox>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
    log: Log,
    stamps: Option<Timestamps>,
}

impl Transcript {
    fn start(out: Output, log: Log, shutdown: Shutdown, limit: usize) -> io::Result<Transcript> {
        let outbox = Arc::new(Outbox::new(limit));
        let q = outbox.clone();
        let warn = log.clone();
        let thread = thread::Builder::new()
            .name("transcript".into())
            .stack_size(MEMBER_STACK)
            .spawn(move || {
                let mut batch = Vec::new();
                while q.next_batch(&mut batch, WRITE_BATCH) {
                    if let Err(e) = out.write(&batch) {
                        // `chat room | head`: nobody reads the transcript any more;
                        // stop, as every tool does on a broken pipe.
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            shutdown.trigger();
                        } else {
                            warn.warn(format_args!(
                                "cannot write the transcript: {}",
                                describe_io(&e)
                            ));
                        }
                        q.abort();
                    }
                    batch.clear();
                }
            })?;
        Ok(Transcript {
            outbox,
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
            log,
            stamps: None,
        })
    }

    fn with_timestamps(mut self, stamps: Option<Timestamps>) -> Self {
        self.stamps = stamps;
        self
    }

    fn push(&self, mut line: Vec<u8>) {
        if let Some(stamps) = &self.stamps {
            line.splice(0..0, format!("{} ", stamps.now()).into_bytes());
        }
        if self.outbox.push(line.into()) == Err(Refused::Full)
            && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
        {
            self.log.warn(format_args!(
                "stdout is not keeping up: dropping transcript lines (the room goes on)"
            ));
        }
    }

    /// Flush what is queued until `deadline`; a stdout that accepts nothing is
    /// left behind (its thread is not waited for).
    fn finish(&self, deadline: Instant) {
        self.outbox.close();
        let Some(t) = lock(&self.thread).take() else {
            return;
        };
        while !t.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            self.log
                .warn(format_args!("{dropped} transcript lines were dropped"));
        }
    }
}

// ---------------------------------------------------------------------------
// One member: the reader thread, and the writer thread it starts
// ---------------------------------------------------------------------------

/// How a member's reading ended.
enum End {
    /// `/quit`.
    Quit,
    /// The member closed the connection.
    Eof,
    /// A read failed (a reset, say); the text says how.
    Error(String),
}

/// What the reader thread knows about its member.
struct Session<'a> {
    room: &'a Room,
    conn: &'a Conn,
    id: u64,
    name: String,
    /// What they type in (the room decodes their lines from it).
    enc: &'static Encoding,
    /// What they read (the room encodes for them in it): NetAssist types GBK
    /// and shows UTF-8, so the two may differ.
    read_enc: &'static Encoding,
    /// Told once that their bytes do not decode.
    hinted: bool,
}

impl Session<'_> {
    /// A notice for this member only.
    fn notice(&self, text: &str) {
        self.room
            .deliver(self.conn, encode_line(self.enc, text).into());
    }

    /// Read, cut into lines, act on each, until the member leaves.
    fn read_loop(&mut self) -> End {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut lines = LineSplitter::new(self.room.cfg.max_line);
        loop {
            let n = match (&self.conn.stream).read(&mut buf) {
                Ok(0) => {
                    // A clean end: a last line without its newline still counts.
                    if let Some(rest) = lines.finish() {
                        let last = Line {
                            bytes: &rest,
                            cut: false,
                        };
                        if self.on_line(last).is_break() {
                            return End::Quit;
                        }
                    }
                    return End::Eof;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A half line before a reset is dropped: we cannot know it was complete.
                Err(e) => return End::Error(describe_io(&e)),
            };
            self.room
                .log
                .verbose(format_args!("{}: received {n} bytes", self.name));
            if lines.push(&buf[..n], |line| self.on_line(line)).is_break() {
                return End::Quit;
            }
        }
    }

    fn on_line(&mut self, line: Line<'_>) -> ControlFlow<()> {
        let (text, bad_bytes) = decode_line(line, self.enc);
        if line.cut {
            let max = self.room.cfg.max_line;
            self.notice(&format!(
                "* line too long: only its first {max} bytes were kept (--max-line {max})"
            ));
        }
        if bad_bytes && !self.hinted {
            self.hinted = true;
            let (notice, log) = self.encoding_hint(line.bytes, !line.cut);
            self.notice(&notice);
            self.room.log.warn(format_args!("{}: {log}", self.name));
        }
        match parse_input(&text) {
            Input::Empty => ControlFlow::Continue(()),
            Input::Message(m) => {
                self.room.relay(self.id, &self.name, m);
                ControlFlow::Continue(())
            }
            Input::Command(c) => self.command(c),
        }
    }

    fn command(&mut self, c: Command<'_>) -> ControlFlow<()> {
        match c {
            Command::Nick("") => self.notice("* usage: /nick NAME"),
            Command::Nick(new) if new == self.name => {
                self.notice(&format!("* you are already {new}"))
            }
            Command::Nick(new) => match self.room.rename(self.id, new) {
                Ok(_) => self.name = new.to_string(),
                Err(why) => self.notice(&format!("* cannot rename to \"{}\": {why}", visible(new))),
            },
            Command::Who => {
                let who = self.room.lock().who(self.id);
                self.notice(&who);
            }
            Command::Enc("") => self.notice(&format!(
                "* {}; /enc LABEL changes it (utf-8, gbk, gb18030, big5, ...), /enc TYPED READ sets each way",
                self.encodings()
            )),
            Command::Enc(label) => self.set_encoding(label),
            Command::Quit => {
                self.notice("* bye");
                return ControlFlow::Break(());
            }
            Command::Help => self.notice(HELP),
            Command::Unknown(word) => self.notice(&format!(
                "* unknown command \"/{}\"; /help lists the commands",
                visible(word)
            )),
        }
        ControlFlow::Continue(())
    }

    /// What to tell a member whose line is not valid in the encoding they
    /// type in (and what to log): the `/enc` that reads it, found by trying
    /// the likely encodings on the line itself. They keep reading what they
    /// read now, so NetAssist (GBK in, UTF-8 shown) is told `/enc gbk utf-8`.
    fn encoding_hint(&self, bytes: &[u8], complete: bool) -> (String, String) {
        let typed = codec::display_name(self.enc);
        let start = format!("* your text is not valid {typed} (the others see \u{FFFD})");
        match codec::suggest_encoding(self.enc, bytes, complete) {
            Some((enc, _)) => {
                let label = codec::label(enc);
                let read = codec::label(self.read_enc);
                let name = codec::display_name(enc);
                let advice = if enc == self.read_enc {
                    format!("/enc {label}")
                } else {
                    format!("/enc {label} {read}")
                };
                let told = if enc == self.read_enc {
                    format!("{start}; it is valid {name}: if you type {name}, send {advice}")
                } else {
                    format!(
                        "{start}; it is valid {name}: if you type {name}, send {advice} (you read {}, as NetAssist does), or /enc {label} if you read {name} too",
                        codec::display_name(self.read_enc)
                    )
                };
                (
                    told,
                    format!(
                        "received bytes that are not valid {typed}; they are valid {name} ({advice} would read them)"
                    ),
                )
            }
            None => (
                format!("{start}; /enc LABEL says which encoding you type (utf-8, gbk, big5, ...)"),
                format!(
                    "received bytes that are not valid {typed}, nor in another likely encoding"
                ),
            ),
        }
    }

    /// `your encoding is GBK`, or `you type GBK and read UTF-8`.
    fn encodings(&self) -> String {
        if self.enc == self.read_enc {
            format!("your encoding is {}", codec::display_name(self.enc))
        } else {
            format!(
                "you type {} and read {}",
                codec::display_name(self.enc),
                codec::display_name(self.read_enc)
            )
        }
    }

    /// `/enc LABEL` (both ways) or `/enc TYPED READ` (NetAssist: `/enc gbk utf-8`).
    fn set_encoding(&mut self, labels: &str) {
        let words: Vec<&str> = labels.split_whitespace().collect();
        let (typed, read) = match words[..] {
            [one] => (one, one),
            [typed, read] => (typed, read),
            _ => {
                return self.notice(
                    "* usage: /enc LABEL, or /enc TYPED READ when you type in one encoding and read another (NetAssist: /enc gbk utf-8)",
                );
            }
        };
        let [typed, read] = [typed, read].map(|label| match codec::parse_label(label) {
            Ok(enc) => match encoding_problem(enc) {
                Some(problem) => Err(format!("* {problem}")),
                None => Ok(enc),
            },
            // Not the usual list of labels: it names UTF-16, which the room refuses.
            Err(_) => Err(format!(
                "* unknown encoding \"{}\"; try utf-8, gbk, gb18030, big5, shift_jis, euc-kr or another WHATWG label",
                visible(label)
            )),
        });
        let (typed, read) = match (typed, read) {
            (Ok(t), Ok(r)) => (t, r),
            (Err(why), _) | (_, Err(why)) => return self.notice(&why),
        };
        // The room encodes for this member from now on; so do their own notices.
        if let Some(m) = self.room.lock().members.get_mut(&self.id) {
            m.enc = read;
        }
        self.enc = typed;
        self.read_enc = read;
        self.hinted = false;
        let now = self
            .encodings()
            .replacen("your encoding is", "your encoding is now", 1);
        self.notice(&format!("* {now}"));
        let log = if typed == read {
            format!("encoding {}", codec::display_name(typed))
        } else {
            format!(
                "types {}, reads {}",
                codec::display_name(typed),
                codec::display_name(read)
            )
        };
        self.room.log.info(format_args!("{}: {log}", self.name));
    }
}

/// The writer: queue → socket, until the queue is closed and empty, or a write
/// fails or times out (then the member is disconnected with the reason).
/// Returns `true` if a write timed out.
fn write_loop(conn: &Conn, log: &Log) -> bool {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while conn.outbox.next_batch(&mut batch, WRITE_BATCH) {
        if let Err(e) = (&conn.stream).write_all(&batch) {
            let timed_out = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            let why = if timed_out {
                "too slow: write timed out".to_string()
            } else {
                describe_io(&e)
            };
            conn.kick(&why);
            return timed_out;
        }
        if log.is_verbose() {
            log.verbose(format_args!("{}: sent {} bytes", conn.name(), batch.len()));
        }
        batch.clear();
    }
    // Everything delivered: FIN, so the member reads the end of the stream.
    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
    false
}

/// A member's whole stay, on their reader thread.
fn member(room: &Room, conn: Arc<Conn>, peer: SocketAddr, slot: Slot) {
    let addr = display_addr(&peer);
    let writer = {
        let (conn, log) = (conn.clone(), room.log.clone());
        thread::Builder::new()
            .name(format!("writer {addr}"))
            .stack_size(MEMBER_STACK)
            .spawn(move || write_loop(&conn, &log))
    };
    let writer = match writer {
        Ok(t) => t,
        Err(e) => {
            room.log.warn(format_args!(
                "{addr}: cannot start a thread ({e}); connection dropped"
            ));
            return;
        }
    };
    let Some((id, name)) = room.join(&conn, &addr) else {
        room.deliver(
            &conn,
            encode_line(room.cfg.encoding, "* the room is closing").into(),
        );
        conn.outbox.close();
        let _ = writer.join();
        return;
    };
    let mut session = Session {
        room,
        conn: &conn,
        id,
        name,
        enc: room.cfg.encoding,
        read_enc: room.cfg.encoding,
        hinted: false,
    };
    let end = session.read_loop();
    let quit = matches!(end, End::Quit);
    let reason = conn.kicked().or(match end {
        End::Error(e) => Some(e),
        End::Quit | End::Eof => None,
    });
    room.leave(id, reason.as_deref(), slot);
    // The writer delivers what is still queued (`* bye` after /quit), then ends.
    conn.outbox.close();
    if writer.join().unwrap_or(false) {
        room.counters.too_slow.fetch_add(1, Ordering::Relaxed);
    }
    if quit {
        drain(&conn.stream);
    }
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
}

/// After `/quit`, read and discard what the member still sends, for a moment.
///
/// Closing a socket with unread bytes in its receive buffer makes the kernel
/// send RST instead of FIN, and a peer that receives RST may throw away what
/// it had not read yet (Windows does): our `* bye` could vanish. Members
/// usually close at once after our FIN, which ends this loop immediately.
fn drain(stream: &TcpStream) {
    if stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// One connection too many: say so and close, rather than leave it waiting.
fn refuse(room: &Room, stream: TcpStream, peer: SocketAddr) {
    let max = room.cfg.max_users;
    room.counters.refused.fetch_add(1, Ordering::Relaxed);
    room.log.warn(format_args!(
        "{} refused: the room is full ({max} users, --max-users)",
        display_addr(&peer)
    ));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let notice = format!("* the room is full ({max} users); try again later");
    let _ = (&stream).write_all(&encode_line(room.cfg.encoding, &notice));
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Run the room on `listener` until `shutdown` is triggered (Ctrl-C).
///
/// Prints `listening on ADDR` on `log` first (scripts and tests wait for it),
/// writes the transcript (`name> text`, UTF-8) to `out`, and joins, leaves and
/// renames to `log`. Returns the totals, which it has also logged.
///
/// # Errors
///
/// [`RoomError::Usage`] for a default encoding the room cannot use (before
/// anything is printed), [`RoomError::Io`] when the listener cannot be read or
/// a thread not started.
pub fn serve(
    listener: TcpListener,
    cfg: &RoomConfig,
    out: Output,
    log: Log,
    shutdown: &Shutdown,
) -> Result<RoomSummary, RoomError> {
    if let Some(problem) = encoding_problem(cfg.encoding) {
        return Err(UsageError(format!("--encoding: {problem}")).into());
    }
    let local = listener.local_addr().map_err(RoomError::Io)?;
    let wake = shutdown.wake_listener(&listener).map_err(RoomError::Io)?;
    let transcript = Transcript::start(out, log.clone(), shutdown.clone(), TRANSCRIPT_QUEUE)
        .map_err(RoomError::Io)?
        .with_timestamps(cfg.stamps.clone());
    log.always(format_args!("listening on {local}"));
    let room = Arc::new(Room {
        cfg: cfg.clone(),
        log,
        state: Mutex::new(State::default()),
        transcript,
        counters: Counters::default(),
    });
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
        let conn = Arc::new(Conn {
            stream,
            outbox: Outbox::new(cfg.max_queue),
            kicked: Mutex::new(None),
            name: Mutex::new(display_addr(&peer)),
        });
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
    use crate::net::{ListenSpec, tcp_listener};
    use crate::output::{SharedBuf, Verbosity};
    use proptest::prelude::*;
    use std::io::{BufRead, BufReader};
    use std::net::Ipv4Addr;

    /// Every line `push` and `finish` give for `chunks` fed in order.
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::new(max);
        let mut got = Vec::new();
        for c in chunks {
            let _ = s.push(c, |l| {
                got.push((l.bytes.to_vec(), l.cut));
                ControlFlow::Continue(())
            });
        }
        if let Some(rest) = s.finish() {
            got.push((rest, false));
        }
        got
    }

    fn lines(v: &[(&str, bool)]) -> Vec<(Vec<u8>, bool)> {
        v.iter().map(|(t, c)| (t.as_bytes().to_vec(), *c)).collect()
    }

    #[test]
    fn lines_not_reads() {
        // Two messages stuck together, and one split across three reads.
        let got = split(100, &[b"hello\nwor", b"ld\r", b"\n", b"\n", b"bye"]);
        assert_eq!(
            got,
            lines(&[
                ("hello", false),
                ("world", false),
                ("", false),
                ("bye", false)
            ])
        );
    }

    #[test]
    fn long_line_is_cut_and_the_next_one_is_intact() {
        let got = split(8, &[b"0123456789abc", b"def\nnext\n"]);
        assert_eq!(got, lines(&[("01234567", true), ("next", false)]));
        // Exactly the limit, with \r\n split across reads: not cut.
        let got = split(4, &[b"abcd\r", b"\nxyz"]);
        assert_eq!(got, lines(&[("abcd", false), ("xyz", false)]));
        // One byte over, ending in one read with its newline: cut, and nothing skipped after.
        let got = split(4, &[b"abcde\nok\n"]);
        assert_eq!(got, lines(&[("abcd", true), ("ok", false)]));
        // max + "\r" then more text: that \r was not a line ending.
        let got = split(4, &[b"abcd\r", b"e\nok\n"]);
        assert_eq!(got, lines(&[("abcd", true), ("ok", false)]));
        // A stream ending inside a cut line gives nothing more.
        let got = split(4, &[b"abcdefgh"]);
        assert_eq!(got, lines(&[("abcd", true)]));
    }

    #[test]
    fn quit_stops_at_that_line() {
        let mut s = LineSplitter::new(100);
        let mut seen = Vec::new();
        let flow = s.push(b"a\n/quit\nafter\n", |l| {
            seen.push(l.bytes.to_vec());
            if l.bytes == b"/quit" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert!(flow.is_break());
        assert_eq!(seen, vec![b"a".to_vec(), b"/quit".to_vec()]);
    }

    proptest! {
        /// However the stream is split into reads, the same lines come out, none
        /// longer than the limit and none holding a newline.
        #[test]
        fn reads_do_not_matter(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(0xe4u8), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            max in 1usize..40,
        ) {
            let whole = split(max, &[&data]);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            points.sort();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for p in points {
                chunks.push(&data[from..p]);
                from = p;
            }
            chunks.push(&data[from..]);
            prop_assert_eq!(&split(max, &chunks), &whole);
            for (line, cut) in &whole {
                prop_assert!(!line.contains(&b'\n'));
                prop_assert!(line.len() <= max);
                prop_assert!(!cut || line.len() == max);
            }
            if data.split(|&b| b == b'\n').all(|l| l.len() <= max) {
                // No long lines: exactly the lines between newlines, \r\n endings
                // dropped, and only an empty last line left out.
                let mut want: Vec<(Vec<u8>, bool)> = data
                    .split(|&b| b == b'\n')
                    .map(|l| (l.strip_suffix(b"\r").unwrap_or(l).to_vec(), false))
                    .collect();
                if want.last().is_some_and(|(l, _)| l.is_empty()) {
                    want.pop();
                }
                prop_assert_eq!(whole, want);
            }
        }
    }

    #[test]
    fn cut_lines_end_on_a_character_boundary() {
        // UTF-8: 你好你好 is 12 bytes; cut at 10 keeps 你好你 (9 bytes), not half of 好.
        let utf8 = "你好你好".as_bytes();
        let (text, bad) = decode_line(
            Line {
                bytes: &utf8[..10],
                cut: true,
            },
            encoding_rs::UTF_8,
        );
        assert_eq!((text.as_str(), bad), ("你好你", false));
        // GBK: a + 你好 = 61 c4 e3 ba c3; cut at 4 bytes keeps a你, drops the lead byte ba.
        let gbk = b"a\xc4\xe3\xba\xc3";
        let (text, bad) = decode_line(
            Line {
                bytes: &gbk[..4],
                cut: true,
            },
            encoding_rs::GBK,
        );
        assert_eq!((text.as_str(), bad), ("a你", false));
        // A whole line that ends in half a character shows it as U+FFFD.
        let (text, bad) = decode_line(
            Line {
                bytes: &gbk[..4],
                cut: false,
            },
            encoding_rs::GBK,
        );
        assert_eq!((text.as_str(), bad), ("a你\u{FFFD}", true));
    }

    #[test]
    fn transcoding_between_gbk_and_utf8() {
        let (text, bad) = decode_line(
            Line {
                bytes: b"\xc4\xe3\xba\xc3",
                cut: false,
            },
            encoding_rs::GBK,
        );
        assert_eq!((text.as_str(), bad), ("你好", false));
        assert_eq!(
            encode_line(encoding_rs::GBK, "alice> 你好"),
            b"alice> \xc4\xe3\xba\xc3\n"
        );
        assert_eq!(
            encode_line(encoding_rs::UTF_8, "alice> 你好"),
            "alice> 你好\n".as_bytes()
        );
        // GBK has no emoji: '?' rather than an HTML entity.
        assert_eq!(encode_line(encoding_rs::GBK, "好😀"), b"\xba\xc3?\n");
        // GBK bytes read as UTF-8 are invalid: flagged, shown as U+FFFD.
        let (_, bad) = decode_line(
            Line {
                bytes: b"\xc4\xe3\xba\xc3",
                cut: false,
            },
            encoding_rs::UTF_8,
        );
        assert!(bad);
    }

    #[test]
    fn control_characters_are_escaped_chinese_is_not() {
        assert_eq!(visible("\x1b[2J你好\tok\x07"), "\\x1b[2J你好\tok\\x07");
        assert_eq!(
            visible("你好\u{2028}bob> 密码\u{202e}"),
            "你好\\u{2028}bob> 密码\\u{202e}"
        );
    }

    #[test]
    fn commands() {
        use Command::*;
        let cmd = |s| match parse_input(s) {
            Input::Command(c) => c,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(cmd("/nick alice"), Nick("alice"));
        assert_eq!(cmd("/NICK\talice  "), Nick("alice"));
        assert_eq!(cmd("/nick a b"), Nick("a b"));
        assert_eq!(cmd("/nick"), Nick(""));
        assert_eq!(cmd("/who"), Who);
        assert_eq!(cmd("/who cares"), Who);
        assert_eq!(cmd("/enc gbk"), Enc("gbk"));
        assert_eq!(cmd("/enc"), Enc(""));
        assert_eq!(cmd("/quit"), Quit);
        assert_eq!(cmd("/Help"), Help);
        assert_eq!(cmd("/frobnicate now"), Unknown("frobnicate"));
        assert_eq!(cmd("/"), Unknown(""));
        assert_eq!(parse_input("//"), Input::Message("/"));
        assert_eq!(parse_input("//nick x"), Input::Message("/nick x"));
        assert_eq!(parse_input(" /nick x"), Input::Message(" /nick x"));
        assert_eq!(parse_input("  "), Input::Message("  "));
        assert_eq!(parse_input(""), Input::Empty);
    }

    #[test]
    fn names() {
        assert_eq!(check_name("alice"), Ok(()));
        assert_eq!(check_name("小明"), Ok(()));
        assert_eq!(check_name(&"名".repeat(32)), Ok(()));
        assert_eq!(check_name(&"名".repeat(33)), Err(NameError::Length));
        assert_eq!(check_name(""), Err(NameError::Length));
        assert_eq!(check_name("a b"), Err(NameError::Whitespace));
        assert_eq!(check_name("a\u{3000}b"), Err(NameError::Whitespace));
        assert_eq!(check_name("a\x1bb"), Err(NameError::Control));
        assert!(same_name("Alice", "alice"));
        assert!(!same_name("alice", "alice2"));
    }

    #[test]
    fn names_that_hide_or_forge_are_refused() {
        use NameError::*;
        assert_eq!(check_name("Zoë"), Ok(()));
        assert_eq!(check_name("Zoe\u{308}"), Ok(()));
        assert_eq!(check_name("user-12"), Ok(()));
        assert_eq!(check_name("😀"), Ok(()));
        assert_eq!(check_name("a*b"), Ok(()));
        let invisible = |s: &str| Err(Invisible(s.to_string()));
        assert_eq!(check_name("b\u{200b}ob"), invisible("\\u{200b}"));
        assert_eq!(check_name("\u{115f}"), invisible("\\u{115f}"));
        assert_eq!(check_name("\u{1160}x"), invisible("\\u{1160}"));
        assert_eq!(check_name("\u{3164}"), invisible("\\u{3164}"));
        assert_eq!(check_name("\u{ffa0}"), invisible("\\u{ffa0}"));
        assert_eq!(check_name("eve\u{202e}"), invisible("\\u{202e}"));
        assert_eq!(check_name("a\u{ad}b"), invisible("\\xad"));
        assert_eq!(check_name("❤\u{fe0f}"), invisible("\\u{fe0f}"));
        assert_eq!(check_name("\u{2800}"), invisible("\\u{2800}"));
        assert_eq!(check_name("a\u{2028}b"), Err(Whitespace));
        assert_eq!(check_name("a\u{1680}b"), Err(Whitespace));
        assert_eq!(check_name("\u{fdfa}"), Err(Whitespace));
        assert_eq!(check_name("*"), Err(Notice));
        assert_eq!(check_name("*alice"), Err(Notice));
        assert_eq!(check_name("\u{2217}"), Err(Notice), "asterisk operator");
        assert_eq!(check_name("\u{ff0a}x"), Err(Notice), "fullwidth asterisk");
        assert_eq!(check_name("alice>"), Err(Arrow));
        assert_eq!(check_name("a>b"), Err(Arrow));
        assert_eq!(check_name("alice\u{ff1e}"), Err(Arrow), "fullwidth >");
        assert_eq!(
            check_name("alice\u{203a}"),
            Err(Arrow),
            "single angle quote"
        );
    }

    #[test]
    fn look_alike_names() {
        assert!(looks_alike("alice", "\u{430}lice"), "Cyrillic a");
        assert!(looks_alike("alice", "\u{430}LICE"));
        assert!(looks_alike("alice", "\u{ff41}lice"), "fullwidth a");
        assert!(looks_alike("mary", "rnary"));
        assert!(looks_alike("bob", "b\u{200b}ob"));
        assert!(looks_alike("server", "\u{455}erver"), "Cyrillic dze");
        assert!(looks_alike("user-10", "user-1O"));
        assert!(looks_alike("user-10", "user-1o"));
        assert!(looks_alike("Zoë", "zoe\u{308}"));
        assert!(!looks_alike("alice", "alice2"));
        assert!(!looks_alike("小明", "小红"));
        assert!(!looks_alike("user-1", "user-2"));
        assert!(!looks_alike("user-1", "user-11"));
        // The names the room gives never look like one another.
        let names: Vec<String> = (1..=300).map(|n| format!("user-{n}")).collect();
        for (i, a) in names.iter().enumerate() {
            assert_eq!(check_name(a), Ok(()));
            for b in &names[i + 1..] {
                assert!(!looks_alike(a, b), "{a} {b}");
            }
        }
    }

    /// The spoofs of issue 12, in process: each refused, or escaped on the way.
    #[test]
    fn nobody_can_pass_for_someone_else() {
        let room = TestRoom::start(RoomConfig::default());
        let (a, mut ra) = room.member();
        let (b, mut rb) = room.member();
        assert!(next(&mut ra).ends_with(") joined\n"));
        (&b).write_all(b"/nick bob\n").unwrap();
        assert_eq!(next(&mut rb), "* user-2 is now known as bob\n");
        assert_eq!(next(&mut ra), "* user-2 is now known as bob\n");
        for (nick, why) in [
            (
                "b\u{200b}ob",
                "a name cannot contain invisible or formatting characters such as \\u{200b}; choose one without them",
            ),
            ("BOB", "that name is taken"),
            (
                "\u{ff42}ob",
                "it looks like \"bob\", who is already here; choose another name",
            ),
            (
                "\u{455}erver",
                "\"server\" is reserved: the room and chat clients use it; choose another name",
            ),
            (
                "me",
                "\"me\" is reserved: the room and chat clients use it; choose another name",
            ),
        ] {
            (&a).write_all(format!("/nick {nick}\n").as_bytes())
                .unwrap();
            let shown = visible(nick);
            assert_eq!(
                next(&mut ra),
                format!("* cannot rename to \"{shown}\": {why}\n")
            );
        }
        // A look-alike of the next default name pushes newcomers past it.
        (&a).write_all("/nick user-\u{417}\n".as_bytes()).unwrap();
        assert_eq!(next(&mut ra), "* user-1 is now known as user-\u{417}\n");
        let (_c, mut rc) = room.member();
        assert!(next(&mut ra).starts_with("* user-4 ("));
        (&a).write_all("hi\u{2028}bob> give me your password \u{202e}gpj.exe\n".as_bytes())
            .unwrap();
        let want = "user-\u{417}> hi\\u{2028}bob> give me your password \\u{202e}gpj.exe\n";
        assert_eq!(next(&mut rb), "* user-1 is now known as user-\u{417}\n");
        assert!(next(&mut rb).starts_with("* user-4 ("));
        assert_eq!(next(&mut rb), want);
        assert_eq!(next(&mut rc), want);
        let (_, out, _) = room.stop();
        assert_eq!(out, want);
    }

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
    fn outbox_is_bounded_in_bytes() {
        let q = Outbox::new(10);
        let item = |n: usize| -> Arc<[u8]> { vec![b'x'; n].into() };
        // An empty queue takes one message of any size...
        assert_eq!(q.push(item(50)), Ok(()));
        assert_eq!(q.push(item(1)), Err(Refused::Full));
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch, 100));
        assert_eq!(batch.len(), 50);
        // ...then up to the limit.
        for _ in 0..5 {
            assert_eq!(q.push(item(2)), Ok(()));
        }
        assert_eq!(q.push(item(1)), Err(Refused::Full));
        batch.clear();
        assert!(q.next_batch(&mut batch, 5));
        assert_eq!(batch.len(), 4, "batches stop before the batch limit");
        q.close();
        assert_eq!(q.push(item(1)), Err(Refused::Closed));
        batch.clear();
        assert!(q.next_batch(&mut batch, 100), "closed queues still drain");
        assert_eq!(batch.len(), 6);
        assert!(!q.next_batch(&mut batch, 100));
    }

    #[test]
    fn summary_text() {
        let s = RoomSummary {
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
    struct TestRoom {
        addr: SocketAddr,
        shutdown: Shutdown,
        server: thread::JoinHandle<RoomSummary>,
        out: SharedBuf,
        log: SharedBuf,
    }

    impl TestRoom {
        fn start(cfg: RoomConfig) -> TestRoom {
            let listener = tcp_listener(ListenSpec {
                bind: Some(Ipv4Addr::LOCALHOST.into()),
                ..ListenSpec::any(0)
            })
            .unwrap();
            let addr = listener.local_addr().unwrap();
            let (out, log) = (SharedBuf::new(), SharedBuf::new());
            let shutdown = Shutdown::new();
            let (o, l, sd) = (
                Output::to_writer(out.clone()),
                Log::to_writer(log.clone(), Verbosity::Normal),
                shutdown.clone(),
            );
            let server = thread::spawn(move || serve(listener, &cfg, o, l, &sd).unwrap());
            TestRoom {
                addr,
                shutdown,
                server,
                out,
                log,
            }
        }

        /// A member that has read its greeting and the who-is-here line.
        fn member(&self) -> (TcpStream, BufReader<TcpStream>) {
            let s = TcpStream::connect(self.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            assert!(next(&mut r).starts_with(GREETING));
            assert!(next(&mut r).contains(" here: "));
            (s, r)
        }

        fn stop(self) -> (RoomSummary, String, String) {
            self.shutdown.trigger();
            let summary = self.server.join().unwrap();
            (summary, self.out.text(), self.log.text())
        }
    }

    fn next(r: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn serve_in_process() {
        let room = TestRoom::start(RoomConfig::default());
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

    /// A member whose socket accepts nothing for the write timeout is dropped,
    /// even when its queue has room to spare.
    #[test]
    fn write_timeout_drops_a_stalled_member() {
        let room = TestRoom::start(RoomConfig {
            max_queue: 256 << 20,
            write_timeout: Duration::from_millis(200),
            ..RoomConfig::default()
        });
        let (a, mut ra) = room.member();
        let stalled = TcpStream::connect(room.addr).unwrap();
        let joined = next(&mut ra);
        assert!(joined.starts_with("* user-2 ("), "{joined}");
        let line = format!("{}\n", "x".repeat(999));
        let flooder = {
            let a = a.try_clone().unwrap();
            thread::spawn(move || {
                // Until the kernel buffers on both sides are full, and then some.
                for _ in 0..16 * 1024 {
                    if (&a).write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
            })
        };
        let left = next(&mut ra);
        assert!(
            left.starts_with("* user-2 (")
                && left.ends_with(") left (too slow: write timed out)\n"),
            "{left}"
        );
        flooder.join().unwrap();
        drop(stalled);
        let (summary, _, _) = room.stop();
        assert_eq!(summary.too_slow, 1);
    }

    #[test]
    fn utf16_default_is_refused_before_listening() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let log = SharedBuf::new();
        let cfg = RoomConfig {
            encoding: encoding_rs::UTF_16LE,
            ..RoomConfig::default()
        };
        let err = serve(
            listener,
            &cfg,
            Output::to_writer(SharedBuf::new()),
            Log::to_writer(log.clone(), Verbosity::Normal),
            &Shutdown::new(),
        )
        .unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert_eq!(log.text(), "");
    }
}
