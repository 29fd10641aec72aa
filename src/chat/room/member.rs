//! One member: the lines cut out of their stream (lesson 13), and their reader and writer threads.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use super::state::{Conn, Room};
use super::{MEMBER_STACK, READ_CHUNK, WRITE_BATCH, encoding_problem};
use crate::addr::{describe_io, display_addr};
use crate::chat::protocol::{Command, Input, parse_input};
use crate::codec::{self, Encoding, TextDecoder, TextEncoder, Unmappable};
use crate::message::push_visible;
use crate::net::Slot;
use crate::output::Log;

// ---------------------------------------------------------------------------
// Lines (lesson 13)
// ---------------------------------------------------------------------------

/// One line cut out of a member's byte stream, without its `\n` (or `\r\n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
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
pub(crate) struct LineSplitter {
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
pub(crate) fn decode_line(line: Line<'_>, enc: &'static Encoding) -> (String, bool) {
    let mut decoder = TextDecoder::new(enc);
    let text = decoder.decode(line.bytes, !line.cut);
    (text, decoder.had_errors())
}

/// `text` with control and invisible characters escaped ([`push_visible`]):
/// `\x1b[2J` becomes the six characters `\x1b[2J`, U+202E the eight `\u{202e}`.
/// Chinese and every other character that shows as itself stay.
pub(super) fn visible(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    push_visible(text, &mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One line to send: `text` in `enc` (`?` for characters it lacks), then `\n`.
pub(crate) fn encode_line(enc: &'static Encoding, text: &str) -> Vec<u8> {
    let mut bytes = match TextEncoder::new(enc).encode(text, Unmappable::Substitute) {
        Ok(encoded) => encoded.bytes,
        // Substitute never refuses; UTF-8 is the only sensible fallback anyway.
        Err(_) => text.as_bytes().to_vec(),
    };
    bytes.push(b'\n');
    bytes
}

// ---------------------------------------------------------------------------
// One member: the reader thread, and the writer thread it starts
// ---------------------------------------------------------------------------

const HELP: &str = "* commands: /nick NAME (change your name), /who (who is here), /enc LABEL (the encoding you type and read: utf-8, gbk, big5, ...; /enc TYPED READ when they differ, NetAssist: /enc gbk utf-8), /quit (leave), /help; start a line with // to send a message that starts with /";

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
pub(super) fn member(room: &Room, conn: Arc<Conn>, peer: SocketAddr, slot: Slot) {
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
pub(super) fn refuse(room: &Room, stream: TcpStream, peer: SocketAddr) {
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

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::{TestRoom, next};
    use super::*;
    use proptest::prelude::*;

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

    /// The text of `bytes` as a line (`cut` or whole) sent in `enc`, and whether it held invalid bytes.
    fn decode(bytes: &[u8], cut: bool, enc: &'static Encoding) -> (String, bool) {
        decode_line(Line { bytes, cut }, enc)
    }

    #[test]
    fn cut_lines_end_on_a_character_boundary() {
        // UTF-8: 你好你好 is 12 bytes; cut at 10 keeps 你好你 (9 bytes), not half of 好.
        let utf8 = "你好你好".as_bytes();
        let (text, bad) = decode(&utf8[..10], true, encoding_rs::UTF_8);
        assert_eq!((text.as_str(), bad), ("你好你", false));
        // GBK: a + 你好 = 61 c4 e3 ba c3; cut at 4 bytes keeps a你, drops the lead byte ba.
        let gbk = b"a\xc4\xe3\xba\xc3";
        let (text, bad) = decode(&gbk[..4], true, encoding_rs::GBK);
        assert_eq!((text.as_str(), bad), ("a你", false));
        // A whole line that ends in half a character shows it as U+FFFD.
        let (text, bad) = decode(&gbk[..4], false, encoding_rs::GBK);
        assert_eq!((text.as_str(), bad), ("a你\u{FFFD}", true));
    }

    #[test]
    fn transcoding_between_gbk_and_utf8() {
        let (text, bad) = decode(b"\xc4\xe3\xba\xc3", false, encoding_rs::GBK);
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
        let (_, bad) = decode(b"\xc4\xe3\xba\xc3", false, encoding_rs::UTF_8);
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

    /// A member whose socket accepts nothing for the write timeout is dropped,
    /// even when its queue has room to spare.
    #[test]
    fn write_timeout_drops_a_stalled_member() {
        let room = TestRoom::start(Config {
            max_queue: 256 << 20,
            write_timeout: Duration::from_millis(200),
            ..Config::default()
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
}
