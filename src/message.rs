//! Messages both ways: what a person types becomes bytes on the wire, and bytes that arrive become text to read (lessons 02, 06, 13).
//!
//! Every tool does the same conversions, so they live here once:
//! - [`Outgoing`]: a command-line message or a stdin line → encode (`--send-encoding`)
//!   or parse hex (`--send-hex`) → add a line ending (`--crlf`) → frame (`--framing`).
//! - [`Incoming`]: received bytes → decode (`--recv-encoding`, streaming) or hex-dump
//!   (`--hex`) or pass through untouched (`--raw`) → shown as records.
//! - [`Echo`]: what an echo server sends back: the bytes as they came, or, when
//!   `--recv-encoding` and `--send-encoding` differ, the same text re-encoded.
//!
//! # Records: one read is one record
//!
//! TCP carries bytes, not messages (lesson 13, 黏包): three `send`s may come out
//! of one `recv`. So what a server shows is one *record* per `read()` (with
//! `--framing raw`), per framed message (`--framing line`/`len`) or per datagram
//! (UDP), never one per line: a record that holds several lines says so. Its
//! first line starts with the head — the `--timestamps` time and the `[ADDR] `
//! prefix — the others are marked `│` under it, and a last line `└` gives the
//! record's size:
//!
//! ```text
//! [127.0.0.1:5000] one
//!                │ two
//!                │ three
//!                └ 14 bytes in one read
//! ```
//!
//! A record of one line is just that line (`[127.0.0.1:5000] hello`). Every
//! line on screen starts with a head or a mark that we wrote, never with bytes
//! a peer sent, so no peer can make its text look like another client's
//! record. Without a head (`tcp-client`, `udp-echo send`'s replies) text is
//! shown as the byte stream it is, the way `nc` shows it, unless
//! `--timestamps` asks for a time before each record.

use std::io::{self, BufRead};

use unicode_width::UnicodeWidthStr;

use crate::codec::{self, CodecError, Encoding, TextDecoder, TextEncoder, Unmappable};
use crate::error::Blame;
use crate::framing::{self, FrameError, Framing};
use crate::hex::{self, HexDumper, HexError};
use crate::output::Timestamps;

/// What a server sends back for each message (TCP) or datagram (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The same bytes, byte for byte (lesson 09's `sendto(data[0], data[1])`, the
    /// default); when the receive and send encodings differ, the same text in the
    /// send encoding ([`Echo`]).
    Echo,
    /// This text, encoded with the send encoding; `{peer}` becomes the sender's
    /// address (lesson 03's `我是服务器, 你好客户端: (ip, port)`).
    Text(String),
    /// Nothing: only receive and show (lesson 08, `--no-echo`; `tcp-server
    /// --raw`, `--sink` and `--stdin`).
    Nothing,
}

/// How received bytes are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Decoded from this encoding into UTF-8 text.
    Text(&'static Encoding),
    /// As a `hexdump -C` style dump (`--hex`).
    Hex,
    /// Byte for byte, untouched (`--raw`).
    Raw,
}

impl Show {
    /// Are the bytes written exactly as received? (Then callers may copy them without looking.)
    pub fn is_passthrough(self) -> bool {
        match self {
            Show::Raw => true,
            Show::Text(enc) => codec::is_utf8(enc),
            Show::Hex => false,
        }
    }
}

/// What one record is, named in its size line (`└ 14 bytes in one read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whatever one `read()` of a TCP stream returned (`--framing raw`).
    Read,
    /// One framed message (`--framing line`/`len`, a chat line).
    Message,
    /// One UDP datagram.
    Datagram,
}

impl Unit {
    /// `read`, `message`, `datagram`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Read => "read",
            Unit::Message => "message",
            Unit::Datagram => "datagram",
        }
    }
}

/// Append one record (see the [module docs](self)): `head` and the first line
/// of `body`, each further line marked `│` under it, and, when there were
/// several lines, `└ N bytes in one UNIT`. One line ending at the end of
/// `body` is dropped (the record's own line ends it); the lines' text goes
/// through [`push_visible`]. Chat and the other tools render a message this
/// way, whatever its head.
pub fn push_record(head: &str, body: &str, bytes: usize, unit: Unit, out: &mut Vec<u8>) {
    let body = body.strip_suffix('\n').unwrap_or(body);
    let mut lines = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    out.extend_from_slice(head.as_bytes());
    push_visible(lines.next().unwrap_or_default(), out);
    out.push(b'\n');
    let mut rest = lines.peekable();
    if rest.peek().is_none() {
        return;
    }
    // The marks stand in the head's last two columns, so that every line's
    // text starts in the same column as the first line's.
    let indent = " ".repeat(head.width().saturating_sub(2));
    for line in rest {
        out.extend_from_slice(indent.as_bytes());
        out.extend_from_slice("│".as_bytes());
        if !line.is_empty() {
            out.push(b' ');
            push_visible(line, out);
        }
        out.push(b'\n');
    }
    let s = if bytes == 1 { "" } else { "s" };
    out.extend_from_slice(format!("{indent}└ {bytes} byte{s} in one {}\n", unit.name()).as_bytes());
}

/// Turns received messages into what is printed, one instance per connection (the
/// decoder carries half a character from one read to the next).
pub struct Incoming {
    show: Show,
    decoder: Option<TextDecoder>,
    dumper: HexDumper,
    prefix: Option<String>,
    stamps: Option<Timestamps>,
    mid_line: bool,
    /// Decoded text of the message being rendered, kept for the next one.
    scratch: String,
    /// The first received bytes that were not valid text (at most
    /// [`SAMPLE`]), to find the encoding they are in for the warning.
    bad_sample: Vec<u8>,
    /// `bad_sample` is whole (a datagram, a frame, the end of the stream), not a
    /// read that may stop inside a character.
    bad_complete: bool,
    /// The last bytes of the stream's reads so far (at most
    /// [`codec::MAX_PENDING`]): where a character the stream ends inside of
    /// started, for the warning about it.
    tail: [u8; codec::MAX_PENDING],
    /// How many of `tail` are set.
    tail_len: usize,
}

/// Largest decode buffer an [`Incoming`] keeps between messages.
const SCRATCH_KEEP: usize = 64 * 1024;

/// How many bytes of the first invalid read are kept to test other encodings on.
const SAMPLE: usize = 4096;

impl Incoming {
    /// `prefix` (such as `[127.0.0.1:5000] `) starts every record; without one
    /// (and without [`Self::with_timestamps`]), text is printed as a continuous
    /// stream, the way `nc` shows it.
    pub fn new(show: Show, prefix: Option<String>) -> Self {
        let decoder = match show {
            Show::Text(enc) => Some(TextDecoder::new(enc)),
            _ => None,
        };
        Incoming {
            show,
            decoder,
            dumper: HexDumper::new(),
            prefix,
            stamps: None,
            mid_line: false,
            scratch: String::new(),
            bad_sample: Vec::new(),
            bad_complete: false,
            tail: [0; codec::MAX_PENDING],
            tail_len: 0,
        }
    }

    /// `--timestamps`: the time each record arrived, before it (and before its
    /// prefix). Even without a prefix, received bytes are then shown as
    /// records, since a time only means something for a record. `--raw` output
    /// stays untouched.
    pub fn with_timestamps(mut self, stamps: Option<Timestamps>) -> Self {
        self.stamps = stamps;
        self
    }

    /// Are received bytes shown as records (a head before each), or as a stream?
    pub fn records(&self) -> bool {
        self.prefix.is_some() || self.stamps.is_some()
    }

    /// What starts a record now: the time, then the prefix.
    fn head(&self) -> String {
        let mut head = String::new();
        if let Some(t) = &self.stamps {
            head.push_str(&t.now());
            head.push(' ');
        }
        if let Some(p) = &self.prefix {
            head.push_str(p);
        }
        head
    }

    fn record(&self, body: &str, bytes: usize, unit: Unit, out: &mut Vec<u8>) {
        push_record(&self.head(), body, bytes, unit, out);
    }

    fn keep_sample(&mut self, payload: &[u8], complete: bool) {
        if self.bad_sample.is_empty() {
            self.bad_sample = payload[..payload.len().min(SAMPLE)].to_vec();
            // Cut to SAMPLE bytes, it may stop inside a character.
            self.bad_complete = complete && payload.len() <= SAMPLE;
        }
    }

    /// Remember the last bytes of a read the decoder took without error.
    fn keep_tail(&mut self, payload: &[u8]) {
        let keep = codec::MAX_PENDING;
        let mut all = [0u8; 2 * codec::MAX_PENDING];
        let from = &payload[payload.len().saturating_sub(keep)..];
        all[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        all[self.tail_len..self.tail_len + from.len()].copy_from_slice(from);
        let len = self.tail_len + from.len();
        let start = len.saturating_sub(keep);
        self.tail_len = len - start;
        self.tail[..self.tail_len].copy_from_slice(&all[start..len]);
    }

    /// Append the printable form of one received message to `out`: one `read()`
    /// of a stream, or with `framed` one whole frame (a line, a length-prefixed
    /// message), which then gets a record, or without a head a line, of its own
    /// even when it is empty.
    pub fn render(&mut self, payload: &[u8], framed: bool, out: &mut Vec<u8>) {
        let unit = if framed { Unit::Message } else { Unit::Read };
        match self.show {
            Show::Raw => out.extend_from_slice(payload),
            Show::Hex => {
                let dump = self.dumper.dump(payload);
                if !self.records() {
                    out.extend_from_slice(dump.as_bytes());
                } else if !dump.is_empty() || framed {
                    self.record(&dump, payload.len(), unit, out);
                }
            }
            Show::Text(_) => {
                let mut text = std::mem::take(&mut self.scratch);
                text.clear();
                if let Some(d) = &mut self.decoder {
                    // A frame is a whole message: a character cannot go on in
                    // the next one. A read may end inside one.
                    let bad = if framed {
                        d.decode_into(payload, true, &mut text)
                    } else {
                        d.decode_read_into(payload, &mut text)
                    };
                    if bad {
                        self.keep_sample(payload, framed);
                    }
                    if bad || framed {
                        // Nothing is left pending in the decoder.
                        self.tail_len = 0;
                    } else {
                        self.keep_tail(payload);
                    }
                }
                if !self.records() {
                    self.stream_text(&text, framed, out);
                } else if !text.is_empty() || framed {
                    // (A read that holds only the start of a character shows it
                    // in the record of the read that completes it.)
                    self.record(&text, payload.len(), unit, out);
                }
                // Kept for the next message, unless a bulk read made it big: a
                // thousand idle clients should not each hold on to megabytes.
                if text.capacity() <= SCRATCH_KEEP {
                    self.scratch = text;
                }
            }
        }
    }

    /// Append the printable form of a message that is complete in itself — a UDP
    /// datagram (lessons 07–09). Unlike [`Self::render`], nothing carries over:
    /// the text is decoded with a definite end (a character cut off at the end
    /// shows as U+FFFD in this record, not at the start of the next message, which
    /// may come from someone else), a hex dump starts at offset 0, and the message
    /// gets a record, or a line, of its own even when it is empty.
    pub fn render_whole(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        match self.show {
            Show::Raw => out.extend_from_slice(payload),
            Show::Hex => {
                let dump = hex::dump(payload);
                if self.records() {
                    self.record(&dump, payload.len(), Unit::Datagram, out);
                } else if dump.is_empty() {
                    out.push(b'\n');
                } else {
                    out.extend_from_slice(dump.as_bytes());
                }
            }
            Show::Text(_) => {
                let mut text = String::new();
                if let Some(d) = &mut self.decoder
                    && d.decode_into(payload, true, &mut text)
                {
                    self.keep_sample(payload, true);
                }
                if self.records() {
                    self.record(&text, payload.len(), Unit::Datagram, out);
                } else {
                    out.extend_from_slice(text.as_bytes());
                    if !text.ends_with('\n') {
                        out.push(b'\n');
                    }
                    self.mid_line = false;
                }
            }
        }
    }

    /// Text without a head: the stream as it is.
    fn stream_text(&mut self, text: &str, framed: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(text.as_bytes());
        if framed {
            out.push(b'\n');
        }
        if !text.is_empty() || framed {
            self.mid_line = !framed && !text.ends_with('\n');
        }
    }

    /// At end of stream: flush a dangling partial character (shown as U+FFFD).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Some(d) = &mut self.decoder else { return };
        let mut rest = String::new();
        d.decode_into(&[], true, &mut rest);
        let tail = std::mem::take(&mut self.tail_len);
        if rest.is_empty() {
            return;
        }
        // The bytes of that unfinished character are what the warning tests
        // other encodings on: now known to be whole, nothing more will come.
        let enc = d.encoding();
        let pending = codec::pending_suffix(enc, &self.tail[..tail]).to_vec();
        self.keep_sample(&pending, true);
        if self.records() {
            // The unfinished character of the last read, which the stream's end
            // shows was never completed: no byte of its own, so no size line.
            self.record(&rest, 0, Unit::Read, out);
        } else {
            self.stream_text(&rest, false, out);
        }
    }

    /// Close a line left open by text without a final newline (no prefix mode).
    pub fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.mid_line {
            out.push(b'\n');
            self.mid_line = false;
        }
    }

    /// Did the last printed text stop in the middle of a line? ([`Self::end_line`]
    /// closes it, so the next reply or the shell prompt starts on a line of its own.)
    pub fn mid_line(&self) -> bool {
        self.mid_line
    }

    /// The warning to print, once per connection, when bytes that are not valid
    /// in the receive encoding have first been shown as U+FFFD: it names an
    /// encoding the bad bytes do decode in (the same words `invalid_sample_warning` gives whole bytes).
    /// None the rest of the time, and always with `--hex` or `--raw`, which
    /// decode nothing.
    pub fn take_error_warning(&mut self) -> Option<String> {
        let d = self.decoder.as_mut()?;
        d.take_error_warning()
            .then(|| invalid_sample_warning(d.encoding(), &self.bad_sample, self.bad_complete))
    }
}

/// The warning for `bytes`, one read received and not valid in `in_use`: it
/// names an encoding they do decode in, trying UTF-8, GBK (and GB18030) and
/// Big5 but never `in_use`, and shows the start of the text they give in it; or
/// says that none decodes them. The read may stop inside a character (see
/// `invalid_sample_warning` for bytes known to be whole).
pub fn invalid_bytes_warning(in_use: &'static Encoding, bytes: &[u8]) -> String {
    invalid_sample_warning(in_use, bytes, false)
}

/// [`invalid_bytes_warning`] for bytes that are `complete` (a datagram, a frame,
/// the end of a stream) or may stop inside a character (a read).
pub(crate) fn invalid_sample_warning(
    in_use: &'static Encoding,
    bytes: &[u8],
    complete: bool,
) -> String {
    let name = in_use.name();
    let start = format!("received bytes that are not valid {name}, shown as \u{FFFD}");
    match codec::suggest_encoding(in_use, bytes, complete) {
        Some((enc, text)) => {
            format!(
                "{start}; they are valid {} (\"{}\"): try --recv-encoding {}, or --hex to see the bytes",
                enc.name(),
                preview(&text),
                codec::label(enc)
            )
        }
        None => {
            let others: Vec<&str> = codec::likely_besides(in_use)
                .into_iter()
                .map(Encoding::name)
                .collect();
            let others = match others.split_last() {
                Some((last, [])) => (*last).to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            format!("{start}, and not valid {others} either; try --hex to see the bytes")
        }
    }
}

/// The first characters of `text`, on one line, made visible.
fn preview(text: &str) -> String {
    const CHARS: usize = 24;
    let flat: String = text.trim_end().replace(['\r', '\n'], " ");
    let mut out = Vec::new();
    push_visible(&flat.chars().take(CHARS).collect::<String>(), &mut out);
    let mut shown = String::from_utf8_lossy(&out).into_owned();
    if flat.chars().count() > CHARS {
        shown.push('…');
    }
    shown
}

/// Append `line` with everything that could fool its reader made visible, as
/// `\x1b` or `\u{202e}`: control characters (a peer must not ring the bell,
/// clear the screen or hide text with escape sequences) and [`is_invisible`]
/// characters (a peer must not reverse the rest of a line with a bidi override,
/// start what looks like a new line with U+2028, or hide text in zero-width
/// characters). Tabs stay, and so does every character that shows as itself:
/// Chinese, accents, emoji. `--raw` and `--hex` show the bytes exactly.
///
/// Two exceptions keep emoji whole, because nothing in them is hidden: U+200D
/// (zero width joiner) between two emoji, as in 👩‍💻 (elsewhere it is escaped, which
/// also shows the ZWJ and ZWNJ of Indic and Persian text escaped: the price of
/// never letting an invisible character through), and the tag characters of the
/// three subdivision flags (🏴 England, Scotland, Wales; tags anywhere else could
/// carry hidden ASCII).
pub fn push_visible(line: &str, out: &mut Vec<u8>) {
    if !line.chars().any(escaped) {
        out.extend_from_slice(line.as_bytes());
        return;
    }
    let mut rest = line;
    let mut prev = None;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        if c == BLACK_FLAG
            && let Some(tags) = SUBDIVISION_FLAG_TAGS.iter().find(|t| after.starts_with(*t))
        {
            out.extend_from_slice(&rest.as_bytes()[..c.len_utf8() + tags.len()]);
            rest = &after[tags.len()..];
            prev = Some(TAG_END);
            continue;
        }
        let joins_emoji = c == ZWJ
            && prev.is_some_and(|p| pictographic(p) || p == EMOJI_PRESENTATION)
            && after.chars().next().is_some_and(pictographic);
        if escaped(c) && !joins_emoji {
            out.extend_from_slice(escape(c).as_bytes());
        } else {
            out.extend_from_slice(&rest.as_bytes()[..c.len_utf8()]);
        }
        prev = Some(c);
        rest = after;
    }
}

/// How [`push_visible`] shows a character it escapes: `\x1b` for the first
/// 256 code points, `\u{202e}` for the others.
pub fn escape(c: char) -> String {
    let code = u32::from(c);
    if code < 0x100 {
        format!("\\x{code:02x}")
    } else {
        format!("\\u{{{code:x}}}")
    }
}

fn escaped(c: char) -> bool {
    (c.is_control() && c != '\t') || is_invisible(c)
}

/// Does `c` show nothing of itself, or change how the text around it is laid
/// out, rather than being a character the reader sees? These are the format
/// characters (general category Cf: bidi controls such as U+202E, zero-width
/// characters such as U+200B, U+FEFF), the line and paragraph separators
/// U+2028 and U+2029 (some terminals and editors start a new line there), and
/// the other default-ignorable code points: blank "letters" such as the Hangul
/// fillers U+115F and U+3164, and code points Unicode keeps for more of them,
/// so that characters assigned later are covered too.
///
/// Variation selectors (U+FE00–FE0F, U+E0100–E01EF, the Mongolian U+180B–180F
/// ones) are not counted: they choose how the character before them is drawn
/// (the emoji style of ❤️, a variant of a CJK ideograph), so they stay in
/// messages; names refuse them too.
pub fn is_invisible(c: char) -> bool {
    c >= '\u{ad}'
        && INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// [`is_invisible`]'s ranges, sorted (Unicode 16: Cf, Zl, Zp and
/// Default_Ignorable_Code_Point less the variation selectors).
const INVISIBLE: &[(char, char)] = &[
    ('\u{ad}', '\u{ad}'),       // soft hyphen
    ('\u{34f}', '\u{34f}'),     // combining grapheme joiner
    ('\u{600}', '\u{605}'),     // Arabic number signs
    ('\u{61c}', '\u{61c}'),     // Arabic letter mark (bidi)
    ('\u{6dd}', '\u{6dd}'),     // Arabic end of ayah
    ('\u{70f}', '\u{70f}'),     // Syriac abbreviation mark
    ('\u{890}', '\u{891}'),     // Arabic pound and piastre marks above
    ('\u{8e2}', '\u{8e2}'),     // Arabic disputed end of ayah
    ('\u{115f}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17b4}', '\u{17b5}'),   // Khmer inherent vowels
    ('\u{180e}', '\u{180e}'),   // Mongolian vowel separator
    ('\u{200b}', '\u{200f}'),   // zero width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{2028}', '\u{202e}'),   // line and paragraph separators, bidi embeddings and overrides
    ('\u{2060}', '\u{206f}'),   // word joiner, invisible operators, bidi isolates, deprecated
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{feff}', '\u{feff}'),   // zero width no-break space (BOM)
    ('\u{ffa0}', '\u{ffa0}'),   // halfwidth Hangul filler
    ('\u{fff0}', '\u{fffb}'),   // reserved, interlinear annotation
    ('\u{110bd}', '\u{110bd}'), // Kaithi number sign
    ('\u{110cd}', '\u{110cd}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343f}'), // Egyptian hieroglyph format controls
    ('\u{1bca0}', '\u{1bca3}'), // shorthand format controls
    ('\u{1d173}', '\u{1d17a}'), // musical symbol beams and slurs
    ('\u{e0000}', '\u{e00ff}'), // language tag, tag characters, reserved
    ('\u{e01f0}', '\u{e0fff}'), // reserved
];

const ZWJ: char = '\u{200d}';
const EMOJI_PRESENTATION: char = '\u{fe0f}';
const BLACK_FLAG: char = '\u{1f3f4}';
const TAG_END: char = '\u{e007f}';

/// The tags after 🏴 that make the flags of England, Scotland and Wales
/// (`gbeng`, `gbsct`, `gbwls`, then CANCEL TAG).
const SUBDIVISION_FLAG_TAGS: [&str; 3] = [
    "\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
    "\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
    "\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}",
];

/// Roughly Extended_Pictographic: the blocks every emoji joined by ZWJ comes from
/// (arrows for 🙂‍↔️, dingbats for ❤️‍🔥, ⬛ for 🐈‍⬛). Erring wide is safe: a ZWJ
/// between two of these joins characters that are visible either way.
fn pictographic(c: char) -> bool {
    matches!(c,
        '\u{2190}'..='\u{21ff}'
        | '\u{2300}'..='\u{23ff}'
        | '\u{2600}'..='\u{27bf}'
        | '\u{2b00}'..='\u{2bff}'
        | '\u{1f000}'..='\u{1faff}')
}

/// Why a message could not be turned into bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `--send-hex` input that is not hex.
    #[error("bad hex in message: {0}")]
    Hex(#[from] HexError),
    /// `--strict-encoding` and a character the encoding lacks.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A message too large for its frame.
    #[error("{0}")]
    Frame(#[from] FrameError),
}

impl Blame for SendError {
    fn is_usage(&self) -> bool {
        match self {
            SendError::Hex(_) | SendError::Codec(_) => true,
            SendError::Frame(e) => e.is_usage(),
        }
    }
}

/// The bytes for one message, and any characters that had to be replaced by `?`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wire {
    /// What to send.
    pub bytes: Vec<u8>,
    /// Characters the send encoding could not represent (sent as `?`).
    pub substituted: Vec<char>,
}

impl Wire {
    /// The warning for substituted characters, if any.
    pub fn warning(&self, enc: &'static Encoding) -> Option<String> {
        let list: Vec<String> = self
            .substituted
            .iter()
            .map(|c| format!("'{c}' (U+{:04X})", u32::from(*c)))
            .collect();
        (!list.is_empty()).then(|| {
            format!(
                "{} cannot be encoded in {}; sent as '?' (--strict-encoding refuses such messages)",
                list.join(", "),
                enc.name()
            )
        })
    }
}

/// Settings for turning typed text into bytes.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// `--send-encoding`.
    pub encoding: &'static Encoding,
    /// Substitute `?` or refuse (`--strict-encoding`).
    pub unmappable: Unmappable,
    /// `--send-hex`: messages are hex digits, sent as the bytes they spell.
    pub hex: bool,
    /// `--crlf`: line endings go out as `\r\n` (what Windows tools and many protocols expect).
    pub crlf: bool,
    /// `--framing`.
    pub framing: Framing,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            encoding: encoding_rs::UTF_8,
            unmappable: Unmappable::Substitute,
            hex: false,
            crlf: false,
            framing: Framing::Raw,
        }
    }
}

/// Turns messages and stdin lines into wire bytes.
pub struct Outgoing {
    opts: SendOptions,
    encoder: TextEncoder,
    stdin_decoder: TextDecoder,
}

impl Outgoing {
    /// A converter with these settings.
    pub fn new(opts: SendOptions) -> Self {
        Outgoing {
            opts,
            encoder: TextEncoder::new(opts.encoding),
            stdin_decoder: TextDecoder::new(encoding_rs::UTF_8),
        }
    }

    /// The settings in use.
    pub fn options(&self) -> &SendOptions {
        &self.opts
    }

    /// Would stdin bytes go out unchanged? Then a caller may copy them without
    /// looking (and the kernel may splice them straight from the pipe).
    pub fn is_passthrough(&self) -> bool {
        !self.opts.hex
            && !self.opts.crlf
            && self.opts.framing == Framing::Raw
            && codec::is_utf8(self.opts.encoding)
    }

    /// One message given as text (a command-line argument). With raw framing it is
    /// sent exactly as typed, no newline added — as the notes' `send("你好".encode())`.
    pub fn message(&mut self, text: &str) -> Result<Wire, SendError> {
        self.convert(text.as_bytes(), false)
    }

    /// One chunk of stdin: normally a line including its `\n` (as `read_chunk` cuts it).
    pub fn stdin_chunk(&mut self, chunk: &[u8]) -> Result<Wire, SendError> {
        self.convert(chunk, true)
    }

    fn convert(&mut self, input: &[u8], from_stdin: bool) -> Result<Wire, SendError> {
        let (body, had_newline) = split_line_ending(input);
        let framing = self.opts.framing;
        // With raw framing a typed line ending is part of the data; a framed message
        // carries its boundary in the frame instead, and hex input spells every byte.
        let mut wire = if self.opts.hex {
            let text = String::from_utf8_lossy(body);
            if text.trim().is_empty() {
                return Ok(Wire::default());
            }
            Wire {
                bytes: hex::parse_hex(&text)?,
                substituted: Vec::new(),
            }
        } else if framing != Framing::Raw {
            self.encode(body, from_stdin)?
        } else if self.opts.crlf && had_newline {
            let mut w = self.encode(body, from_stdin)?;
            w.bytes.extend_from_slice(b"\r\n");
            w
        } else {
            self.encode(input, from_stdin)?
        };
        wire.bytes = match framing {
            Framing::Raw => wire.bytes,
            Framing::Line => {
                let ending: &[u8] = if self.opts.crlf { b"\r\n" } else { b"\n" };
                wire.bytes.extend_from_slice(ending);
                wire.bytes
            }
            Framing::Len => framing::encode_frame(framing, &wire.bytes)?,
        };
        Ok(wire)
    }

    fn encode(&mut self, bytes: &[u8], from_stdin: bool) -> Result<Wire, SendError> {
        if codec::is_utf8(self.opts.encoding) {
            // Same encoding on both sides: bytes go out untouched, even invalid ones.
            return Ok(Wire {
                bytes: bytes.to_vec(),
                substituted: Vec::new(),
            });
        }
        let text = if from_stdin {
            // A chunk may end inside a character; the decoder keeps it for the next one.
            self.stdin_decoder.decode(bytes, false)
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };
        let enc = self.encoder.encode(&text, self.opts.unmappable)?;
        Ok(Wire {
            bytes: enc.bytes,
            substituted: enc.substituted,
        })
    }
}

/// What an echo server sends back (lessons 03, 09, and lesson 06's NetAssist).
///
/// `--recv-encoding` says how received bytes are read, `--send-encoding` how
/// the text we send is written. With one encoding both ways, the bytes go
/// back untouched, invalid ones included. With two, the *text* goes back:
/// decoded with the one, encoded with the other. NetAssist on Windows sends
/// GBK and shows what it receives as UTF-8, so `tcp-server --recv-encoding gbk
/// --send-encoding utf-8` shows its 你好 as 你好 and answers `e4 bd a0 e5 a5
/// bd`, which it shows as 你好 too. `tcp-server` and `udp-echo serve` follow
/// this one rule.
pub struct Echo {
    /// None: one encoding, bytes back as they came.
    transcode: Option<(TextDecoder, TextEncoder)>,
    unmappable: Unmappable,
}

impl Echo {
    /// The echo for bytes received in `recv` and text sent in `send`;
    /// `unmappable` says what becomes of a character `send` lacks (`?`, or
    /// the message is refused: `--strict-encoding`).
    pub fn new(recv: &'static Encoding, send: &'static Encoding, unmappable: Unmappable) -> Self {
        Echo {
            transcode: (recv != send).then(|| (TextDecoder::new(recv), TextEncoder::new(send))),
            unmappable,
        }
    }

    /// Do the bytes go back as they came (one encoding both ways)?
    pub fn is_bytes(&self) -> bool {
        self.transcode.is_none()
    }

    /// The answer to one `read()` of a stream. A character cut off at its end
    /// waits for the next read, so a GBK character split across two reads
    /// goes back whole; bytes the receive encoding cannot read go back as
    /// U+FFFD, re-encoded (`?` in GBK), just as they are shown.
    pub fn read(&mut self, bytes: &[u8]) -> Result<Wire, CodecError> {
        self.convert(bytes, |d, b, text| {
            d.decode_read_into(b, text);
        })
    }

    /// The answer to a message that is whole in itself: a datagram, a frame's
    /// payload.
    pub fn message(&mut self, bytes: &[u8]) -> Result<Wire, CodecError> {
        self.convert(bytes, |d, b, text| {
            d.decode_into(b, true, text);
        })
    }

    /// At the end of a stream: the rest of a character that never came whole
    /// (as U+FFFD), if any.
    pub fn finish(&mut self) -> Result<Wire, CodecError> {
        self.convert(&[], |d, b, text| {
            d.decode_into(b, true, text);
        })
    }

    fn convert(
        &mut self,
        bytes: &[u8],
        decode: impl FnOnce(&mut TextDecoder, &[u8], &mut String),
    ) -> Result<Wire, CodecError> {
        let Some((decoder, encoder)) = &mut self.transcode else {
            return Ok(Wire {
                bytes: bytes.to_vec(),
                substituted: Vec::new(),
            });
        };
        let mut text = String::new();
        decode(decoder, bytes, &mut text);
        let enc = encoder.encode(&text, self.unmappable)?;
        Ok(Wire {
            bytes: enc.bytes,
            substituted: enc.substituted,
        })
    }
}

/// Split a trailing `\n` or `\r\n` off a line.
fn split_line_ending(line: &[u8]) -> (&[u8], bool) {
    match line.strip_suffix(b"\n") {
        Some(rest) => (rest.strip_suffix(b"\r").unwrap_or(rest), true),
        None => (line, false),
    }
}

/// Read one line (with its `\n`) from `reader` into `buf`, or at most `max` bytes
/// when the line is longer, so endless input without newlines is still sent in
/// pieces and never buffered without bound. Returns 0 at end of input.
pub(crate) fn read_chunk(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    read_chunk_until(reader, buf, max, |window| {
        window.iter().position(|&b| b == b'\n').map(|i| i + 1)
    })
}

/// Read from `reader` into `buf` (cleared first) until it holds `max` bytes or
/// the input ends, or until `stop`, shown each piece of buffered input (at most
/// the room left), says to stop after its first N bytes. Returns how many bytes
/// were read; 0 at end of input. A read interrupted by a signal is retried.
pub(crate) fn read_chunk_until(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
    mut stop: impl FnMut(&[u8]) -> Option<usize>,
) -> io::Result<usize> {
    buf.clear();
    while buf.len() < max {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let room = max - buf.len();
        let window = &available[..available.len().min(room)];
        let (n, done) = match stop(window) {
            Some(n) => (n.min(window.len()), true),
            None => (window.len(), false),
        };
        buf.extend_from_slice(&window[..n]);
        reader.consume(n);
        if done {
            break;
        }
    }
    Ok(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk() -> &'static Encoding {
        encoding_rs::GBK
    }

    fn show_bytes(incoming: &mut Incoming, chunks: &[&[u8]], framed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            incoming.render(c, framed, &mut out);
        }
        incoming.finish(&mut out);
        out
    }

    fn show(incoming: &mut Incoming, chunks: &[&[u8]], framed: bool) -> String {
        String::from_utf8(show_bytes(incoming, chunks, framed)).unwrap()
    }

    #[test]
    fn each_read_at_a_utf8_server_is_shown_as_one_record() {
        // (reads, what is shown, the warning)
        type Case = (&'static [&'static [u8]], &'static str, Option<&'static str>);
        let cases: [Case; 3] = [
            // One read is one record, whatever it holds.
            (
                &[b"hi\r\n", b"x\r\ny", b"\n"],
                "[a] hi\n[a] x\n  \u{2502} y\n  \u{2514} 4 bytes in one read\n[a] \n",
                None,
            ),
            // A GBK read is one record, and the hint names GBK.
            (
                &[b"\xc4\xe3\xba\xc3"],
                "[a] \u{FFFD}\u{FFFD}\u{FFFD}\n",
                Some(
                    "received bytes that are not valid UTF-8, shown as \u{FFFD}; they are valid GBK (\"你好\"): try --recv-encoding gbk, or --hex to see the bytes",
                ),
            ),
            // Control characters are made visible in prefixed lines.
            (
                &[b"a\x00b\x1b[2J\tc\x7f\xc2\x85"],
                "[a] a\\x00b\\x1b[2J\tc\\x7f\\x85\n",
                None,
            ),
        ];
        for (reads, shown, warning) in cases {
            let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[a] ".into()));
            assert_eq!(show(&mut inc, reads, false), shown);
            assert_eq!(inc.take_error_warning().as_deref(), warning, "{shown}");
        }
    }

    #[test]
    fn lesson_13_three_sends_in_one_read_show_as_one_record() {
        let head = "[127.0.0.1:5000] ";
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some(head.into()));
        let shown = show(&mut inc, &[b"one\ntwo\nthree\n"], false);
        assert_eq!(
            shown,
            "[127.0.0.1:5000] one\n\
             \x20              \u{2502} two\n\
             \x20              \u{2502} three\n\
             \x20              \u{2514} 14 bytes in one read\n"
        );
        // Every line's text starts in the first line's column.
        for line in shown.lines().take(3) {
            let col = line.char_indices().nth(head.len()).map(|(i, _)| i).unwrap();
            assert!(!line[col..].starts_with(' '), "{line:?}");
        }
        // Framed, the same bytes are three messages, three records.
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[a] ".into()));
        assert_eq!(
            show(&mut inc, &[b"one", b"two", b"three"], true),
            "[a] one\n[a] two\n[a] three\n"
        );
        // A framed message that holds lines is one record too, of one message.
        assert_eq!(
            show(&mut inc, &[b"a\n\nb"], true),
            "[a] a\n  \u{2502}\n  \u{2502} b\n  \u{2514} 4 bytes in one message\n"
        );
    }

    #[test]
    fn no_peer_text_starts_a_line_on_screen() {
        // What would pass for a continuation or another client's record is
        // only ever text after our own head or mark.
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[a] ".into()));
        let shown = show(
            &mut inc,
            &["\u{2502} x\n[b] y\n\u{2514} 1 byte".as_bytes(), b"[c] z"],
            false,
        );
        for line in shown.lines() {
            assert!(
                line.starts_with("[a] ")
                    || line.starts_with("  \u{2502}")
                    || line.starts_with("  \u{2514} "),
                "{line:?}"
            );
        }
        assert!(shown.contains("  \u{2502} [b] y\n"), "{shown}");
        assert!(shown.ends_with("[a] [c] z\n"), "{shown}");
    }

    fn clock() -> Timestamps {
        // 2024-05-26 07:51:48.125 UTC, 15:51:48.125 in China.
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_716_709_908_125);
        Timestamps::zone("CST-8").unwrap().frozen_at(at)
    }

    #[test]
    fn timestamps_come_before_each_record() {
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[a] ".into()))
            .with_timestamps(Some(clock()));
        assert_eq!(
            show(&mut inc, &[b"hi\n", b"one\ntwo\n"], false),
            "15:51:48.125 [a] hi\n\
             15:51:48.125 [a] one\n\
             \x20              \u{2502} two\n\
             \x20              \u{2514} 8 bytes in one read\n"
        );
        // Without a prefix, a time makes records of what would be a stream.
        let mut inc =
            Incoming::new(Show::Text(encoding_rs::UTF_8), None).with_timestamps(Some(clock()));
        assert!(inc.records());
        assert_eq!(
            show(&mut inc, &[b"par", b"tial\n"], false),
            "15:51:48.125 par\n15:51:48.125 tial\n"
        );
        let mut out = Vec::new();
        inc.render_whole(b"a\nb", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "15:51:48.125 a\n           \u{2502} b\n           \u{2514} 3 bytes in one datagram\n"
        );
        // --raw stays byte for byte.
        let mut inc = Incoming::new(Show::Raw, None).with_timestamps(Some(clock()));
        assert_eq!(show_bytes(&mut inc, &[b"a\nb"], false), b"a\nb");
        // A stream without a head stays a stream.
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), None);
        assert!(!inc.records());
        assert_eq!(
            show(&mut inc, &[b"one\ntwo\n", b"th", b"ree"], false),
            "one\ntwo\nthree"
        );
    }

    #[test]
    fn a_stream_that_ends_inside_a_character_hints_on_that_character() {
        // UTF-8 你 cut after two bytes, split over two reads: 浣 in GBK.
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), None);
        assert_eq!(show(&mut inc, &[b"ok\xe4", b"\xbd"], false), "ok\u{FFFD}");
        let w = inc.take_error_warning().unwrap();
        assert!(
            w.ends_with(
                "they are valid GBK (\"浣\"): try --recv-encoding gbk, or --hex to see the bytes"
            ),
            "{w}"
        );
        // A lone GBK lead byte: nothing to suggest.
        let mut inc = Incoming::new(Show::Text(gbk()), None);
        let _ = show(&mut inc, &[b"ok\xc4"], false);
        let w = inc.take_error_warning().unwrap();
        assert!(w.contains("either"), "{w}");
    }

    #[test]
    fn the_hint_never_names_the_encoding_in_use() {
        // UTF-8 at a GBK server: 我爱你\n is not valid GBK.
        let mut inc = Incoming::new(Show::Text(gbk()), Some("[a] ".into()));
        let _ = show(&mut inc, &["我爱你\n".as_bytes()], false);
        let w = inc.take_error_warning().unwrap();
        assert!(w.contains("not valid GBK"), "{w}");
        assert!(
            w.contains("valid UTF-8 (\"我爱你\"): try --recv-encoding utf-8"),
            "{w}"
        );
        assert!(!w.contains("--recv-encoding gbk"), "{w}");
        // Nothing likely decodes it: say so.
        let w = invalid_bytes_warning(encoding_rs::UTF_8, b"\xff\xff");
        assert_eq!(
            w,
            "received bytes that are not valid UTF-8, shown as \u{FFFD}, and not valid GBK or Big5 either; try --hex to see the bytes"
        );
        let w = invalid_bytes_warning(encoding_rs::UTF_16LE, b"\xff");
        assert!(w.contains("not valid UTF-8, GBK or Big5 either"), "{w}");
        // A long or multi-line text is cut and kept on one line.
        let long = "第一行\n".repeat(10);
        let w = invalid_bytes_warning(gbk(), format!("{long}\u{1b}").as_bytes());
        assert!(w.contains("(\"第一行 第一行 "), "{w}");
        assert!(w.contains("…\")"), "{w}");
        assert!(!w.contains('\n'), "{w}");
    }

    #[test]
    fn hex_dump_of_one_read_is_one_record() {
        let mut inc = Incoming::new(Show::Hex, Some("[a] ".into()));
        let text = show(&mut inc, &[&[b'x'; 20]], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("[a] 00000000  78 78"), "{text}");
        assert!(lines[1].starts_with("  \u{2502} 00000010  78 78"), "{text}");
        assert_eq!(lines[2], "  \u{2514} 20 bytes in one read");
    }

    fn visible(line: &str) -> String {
        let mut out = Vec::new();
        push_visible(line, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_made_visible() {
        // What would make a line look like someone else's, or hide text.
        assert_eq!(
            visible("hi\u{2028}bob> give\u{2029}me"),
            "hi\\u{2028}bob> give\\u{2029}me"
        );
        assert_eq!(
            visible("\u{202e}txt.exe\u{202c} \u{2066}a\u{2069} \u{200e}\u{200f}\u{61c}\u{202a}"),
            "\\u{202e}txt.exe\\u{202c} \\u{2066}a\\u{2069} \\u{200e}\\u{200f}\\u{61c}\\u{202a}"
        );
        assert_eq!(
            visible("b\u{200b}o\u{200c}b\u{2060}\u{feff}\u{ad}"),
            "b\\u{200b}o\\u{200c}b\\u{2060}\\u{feff}\\xad"
        );
        assert_eq!(
            visible("\u{115f}\u{1160}\u{3164}\u{ffa0}"),
            "\\u{115f}\\u{1160}\\u{3164}\\u{ffa0}"
        );
        // Tags hide ASCII unless they spell one of the three flags; a ZWJ joins
        // emoji only.
        assert_eq!(visible("a\u{e0068}\u{e0069}"), "a\\u{e0068}\\u{e0069}");
        assert_eq!(visible("🏴\u{e0068}"), "🏴\\u{e0068}");
        assert_eq!(visible("a\u{200d}b"), "a\\u{200d}b");
        assert_eq!(visible("😀\u{200d}"), "😀\\u{200d}");
        assert_eq!(visible("\u{200d}😀"), "\\u{200d}😀");
        // What shows as itself stays: Chinese, accents, emoji and their sequences.
        for ok in [
            "你好，世界！",
            "Zoë Zoe\u{308} café",
            "😀 👍🏽 ❤️ 1️⃣ 🇨🇳",
            "👩\u{200d}💻 👨\u{200d}👩\u{200d}👧 ❤\u{fe0f}\u{200d}🔥 🏳\u{fe0f}\u{200d}🌈 🙂\u{200d}↔\u{fe0f}",
            "🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}!",
            "葛\u{e0100}",
            "a\tb",
        ] {
            assert_eq!(visible(ok), ok);
        }
    }

    #[test]
    fn invisible_table_is_sorted_and_disjoint() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
        for c in [
            '\u{ad}',
            '\u{200d}',
            '\u{2029}',
            '\u{206f}',
            '\u{e007f}',
            '\u{e0fff}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in [
            'a',
            '\u{ac}',
            '\u{2027}',
            '\u{fe0f}',
            '\u{e0100}',
            '你',
            '\u{10ffff}',
        ] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }

    #[test]
    fn gbk_split_across_reads_is_intact() {
        // 你好 in GBK, split inside 你.
        let mut inc = Incoming::new(Show::Text(gbk()), None);
        assert_eq!(show(&mut inc, &[b"\xc4", b"\xe3\xba\xc3"], false), "你好");
        assert!(inc.mid_line());
        assert!(inc.take_error_warning().is_none());
    }

    #[test]
    fn invalid_bytes_are_visible_and_warned_once() {
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[a] ".into()));
        assert_eq!(show(&mut inc, &[b"ok\xff"], false), "[a] ok\u{FFFD}\n");
        assert!(inc.take_error_warning().unwrap().contains("--hex"));
        assert!(inc.take_error_warning().is_none());
        // --hex and --raw decode nothing, so nothing is invalid.
        for show_as in [Show::Hex, Show::Raw] {
            let mut inc = Incoming::new(show_as, None);
            let _ = show_bytes(&mut inc, &[b"ok\xff"], false);
            assert!(inc.take_error_warning().is_none());
        }
    }

    #[test]
    fn framed_messages_get_their_own_lines() {
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), None);
        assert_eq!(show(&mut inc, &[b"a", b"b"], true), "a\nb\n");
        assert!(!inc.mid_line());
        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), Some("[p] ".into()));
        assert_eq!(show(&mut inc, &[b""], true), "[p] \n");
    }

    #[test]
    fn whole_messages_are_decoded_on_their_own() {
        // "ok" and the first byte of a GBK character: the half character ends the
        // message, shown on its line, and the next message starts clean.
        let mut inc = Incoming::new(Show::Text(gbk()), Some("[a] ".into()));
        let mut out = Vec::new();
        inc.render_whole(b"ok\xc4", &mut out);
        inc.render_whole(b"\xba\xc3", &mut out);
        inc.render_whole(b"", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[a] ok\u{FFFD}\n[a] 好\n[a] \n"
        );
        assert!(inc.take_error_warning().is_some());

        let mut inc = Incoming::new(Show::Text(encoding_rs::UTF_8), None);
        let mut out = Vec::new();
        for m in [&b"hi"[..], b"two\n", b""] {
            inc.render_whole(m, &mut out);
        }
        assert_eq!(out, b"hi\ntwo\n\n");

        let mut inc = Incoming::new(Show::Hex, None);
        let mut out = Vec::new();
        inc.render_whole(b"A", &mut out);
        inc.render_whole(b"B", &mut out);
        inc.render_whole(b"", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("00000000  ").count(), 2, "{text}");
        assert!(text.ends_with("|B|\n\n"), "{text}");
    }

    #[test]
    fn echo_sends_bytes_with_one_encoding_and_text_with_two() {
        // One encoding: the bytes, invalid ones too.
        let mut echo = Echo::new(gbk(), gbk(), Unmappable::Substitute);
        assert!(echo.is_bytes());
        assert_eq!(echo.read(b"\xc4\xe3\xff").unwrap().bytes, b"\xc4\xe3\xff");
        // NetAssist: GBK in, UTF-8 out, with 你 split across two reads.
        let mut echo = Echo::new(gbk(), encoding_rs::UTF_8, Unmappable::Substitute);
        assert!(!echo.is_bytes());
        let mut back = echo.read(b"\xc4").unwrap().bytes;
        back.extend(echo.read(b"\xe3\xba\xc3").unwrap().bytes);
        back.extend(echo.finish().unwrap().bytes);
        assert_eq!(back, "你好".as_bytes());
        assert_eq!(echo.message(b"\xba\xc3").unwrap().bytes, "好".as_bytes());
        // The other way, an emoji GBK lacks: '?' and said, or refused.
        let mut echo = Echo::new(encoding_rs::UTF_8, gbk(), Unmappable::Substitute);
        let w = echo.message("你😀".as_bytes()).unwrap();
        assert_eq!(
            (w.bytes.as_slice(), w.substituted.as_slice()),
            (&b"\xc4\xe3?"[..], &['😀'][..])
        );
        let mut strict = Echo::new(encoding_rs::UTF_8, gbk(), Unmappable::Refuse);
        assert!(strict.message("😀".as_bytes()).is_err());
        // A half character at the end of the stream goes back as U+FFFD.
        let mut echo = Echo::new(gbk(), encoding_rs::UTF_8, Unmappable::Substitute);
        assert!(echo.read(b"ok\xc4").unwrap().bytes == b"ok");
        assert_eq!(echo.finish().unwrap().bytes, "\u{FFFD}".as_bytes());
    }

    #[test]
    fn hex_lines_are_prefixed() {
        let mut inc = Incoming::new(Show::Hex, Some("[a] ".into()));
        let text = show(&mut inc, &[b"Hi"], false);
        assert!(text.starts_with("[a] 00000000  48 69"), "{text}");
        assert!(text.ends_with("|Hi|\n"), "{text}");
    }

    #[test]
    fn raw_is_untouched() {
        let mut inc = Incoming::new(Show::Raw, Some("[a] ".into()));
        assert_eq!(show_bytes(&mut inc, &[b"\xff\x00\n"], false), b"\xff\x00\n");
        assert!(Show::Raw.is_passthrough());
        assert!(Show::Text(encoding_rs::UTF_8).is_passthrough());
        assert!(!Show::Text(gbk()).is_passthrough());
    }

    fn out(opts: SendOptions) -> Outgoing {
        Outgoing::new(opts)
    }

    #[test]
    fn message_encodes_gbk_without_newline() {
        let mut o = out(SendOptions {
            encoding: gbk(),
            ..Default::default()
        });
        assert_eq!(o.message("你好").unwrap().bytes, b"\xc4\xe3\xba\xc3");
        assert!(!o.is_passthrough());
    }

    #[test]
    fn unmappable_substituted_and_warned_or_refused() {
        let mut o = out(SendOptions {
            encoding: gbk(),
            ..Default::default()
        });
        let w = o.message("a😀").unwrap();
        assert_eq!(w.bytes, b"a?");
        let warning = w.warning(gbk()).unwrap();
        assert!(
            warning.contains("'😀' (U+1F600) cannot be encoded in GBK"),
            "{warning}"
        );
        let mut strict = out(SendOptions {
            encoding: gbk(),
            unmappable: Unmappable::Refuse,
            ..Default::default()
        });
        let err = strict.message("a😀").unwrap_err().to_string();
        assert!(err.contains("😀"), "{err}");
    }

    #[test]
    fn stdin_lines_with_crlf_and_framing() {
        let mut o = out(SendOptions {
            crlf: true,
            ..Default::default()
        });
        assert_eq!(o.stdin_chunk(b"hi\n").unwrap().bytes, b"hi\r\n");
        assert_eq!(o.stdin_chunk(b"hi\r\n").unwrap().bytes, b"hi\r\n");
        assert_eq!(o.stdin_chunk(b"tail").unwrap().bytes, b"tail");

        let mut o = out(SendOptions {
            framing: Framing::Len,
            ..Default::default()
        });
        assert_eq!(o.stdin_chunk(b"hello\n").unwrap().bytes, b"\0\0\0\x05hello");
        let mut o = out(SendOptions {
            framing: Framing::Line,
            ..Default::default()
        });
        assert_eq!(o.message("x").unwrap().bytes, b"x\n");
        assert_eq!(o.stdin_chunk(b"y\r\n").unwrap().bytes, b"y\n");
    }

    #[test]
    fn stdin_utf8_split_inside_a_character_transcodes_intact() {
        let mut o = out(SendOptions {
            encoding: gbk(),
            ..Default::default()
        });
        let s = "你好\n".as_bytes();
        let mut sent = o.stdin_chunk(&s[..2]).unwrap().bytes;
        sent.extend(o.stdin_chunk(&s[2..]).unwrap().bytes);
        assert_eq!(sent, b"\xc4\xe3\xba\xc3\n");
    }

    #[test]
    fn hex_input() {
        let mut o = out(SendOptions {
            hex: true,
            ..Default::default()
        });
        assert_eq!(
            o.stdin_chunk(b"48 65 6c 0d 0a\n").unwrap().bytes,
            b"Hel\r\n"
        );
        assert_eq!(o.stdin_chunk(b"   \n").unwrap().bytes, b"");
        let err = o.message("48 6g").unwrap_err().to_string();
        assert!(err.contains("position"), "{err}");
    }

    #[test]
    fn passthrough_keeps_invalid_bytes() {
        let mut o = out(SendOptions::default());
        assert!(o.is_passthrough());
        assert_eq!(o.stdin_chunk(b"\xff\xfe\n").unwrap().bytes, b"\xff\xfe\n");
    }

    #[test]
    fn read_chunk_cuts_lines_and_long_input() {
        let data = b"one\ntwo-long-line\nx".to_vec();
        let mut r = io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while read_chunk(&mut r, &mut buf, 8).unwrap() > 0 {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["one\n", "two-long", "-line\n", "x"]);
    }
}
