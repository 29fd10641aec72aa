//! Message framing for lesson 13, "sticky packets" (黏包): cutting a TCP byte stream back into the messages that were sent.
//!
//! TCP delivers a *stream of bytes*, not a sequence of messages. If a client
//! calls `send(b"hello")` and then `send(b"world")`, the server may get
//! `b"helloworld"` from a single `recv()` (the two messages "stick
//! together"), or `b"hel"` and then `b"loworld"`. Nothing is lost and the order
//! is kept, but the boundaries between the `send()` calls are gone.
//!
//! The cure is to put the boundaries into the bytes themselves. This module
//! offers three ways to do it ([`Framing`]):
//!
//! * [`Framing::Raw`] does nothing: whatever one read returns is treated as
//!   one message. This is what the course's Python examples do, and it is
//!   how the sticky-packet problem is shown.
//! * [`Framing::Line`] ends every message with `'\n'`, like many text
//!   protocols (SMTP, Redis inline commands, ...).
//! * [`Framing::Len`] puts a 4-byte big-endian length in front of every
//!   message, so the receiver knows how many bytes to wait for.
//!
//! The work is split in two layers, in the style of tokio's mini-redis:
//!
//! * [`Deframer`] is *sans-IO*: it never reads from a socket. You push the
//!   bytes you received and pop complete frames. Its answer separates
//!   "not all bytes have arrived yet" (`Ok(None)`) from "these bytes are
//!   wrong" (`Err`), which is the heart of handling sticky packets.
//! * [`FrameReader`] wraps any [`std::io::Read`] (a `TcpStream`, stdin, a
//!   test double) and keeps reading until the [`Deframer`] has a frame.
//!
//! [`encode_frame`] is the sending side: it adds the framing to a payload.

use crate::error::Blame;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

/// How a byte stream is cut into messages.
///
/// Used as a command-line value (`--framing raw|line|len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Framing {
    /// Whatever one read() returns is one message (what the course's Python does; shows sticky packets)
    #[default]
    Raw,
    /// One message per '\n'; a "\r\n" ending is accepted and stripped from the payload
    Line,
    /// 4-byte big-endian length prefix, then that many bytes
    Len,
}

/// Default for `--max-frame`: 16 MiB.
///
/// A length prefix is just a number chosen by the peer. Without a limit, a
/// peer that sends `ff ff ff ff` could make us wait for (and buffer) 4 GiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Size of the length prefix of a [`Framing::Len`] frame.
const HEADER_LEN: usize = 4;

/// How much [`FrameReader`] asks for in one `read()` call.
const READ_CHUNK: usize = 64 * 1024;

/// When the [`Deframer`]'s capacity is above this after a frame is taken, and
/// the bytes left are no more than the bytes consumed, the memory is handed
/// back, so that one big frame does not pin megabytes for the rest of a long
/// connection (even when the next frame's first byte came in the same read).
const SHRINK_ABOVE: usize = 1024 * 1024;

/// Why a byte stream could not be cut into frames.
///
/// `TooLarge` and `Truncated` mean the bytes themselves are wrong: the
/// stream cannot be resynchronised (we no longer know where the next frame
/// starts), so the usual reaction is to report the error and close the
/// connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is bigger than allowed.
    ///
    /// Displayed as `frame of 4294967295 bytes exceeds --max-frame 16777216`,
    /// or for [`Framing::Line`] as `line longer than --max-frame 16777216 bytes`.
    TooLarge {
        /// Size of the frame: the claimed length of a len frame, or (for a line)
        /// the bytes seen so far.
        len: u64,
        /// The limit that was exceeded.
        max: usize,
        /// Which framing the limit was hit in (chooses the message).
        framing: Framing,
    },
    /// The stream ended inside a len frame.
    ///
    /// Displayed as `connection closed mid-frame: got 3 of 10 bytes`, or,
    /// if it ended inside the 4-byte header, `connection closed mid-frame:
    /// got 2 of 4 header bytes`.
    Truncated {
        /// Bytes the frame (or its header) should have had.
        expected: u64,
        /// Bytes that actually arrived.
        got: u64,
        /// `true` if the stream ended inside the 4-byte length header.
        header: bool,
    },
    /// I/O error from the reader.
    Io(#[from] io::Error),
}

/// A frame too large or cut short is the peer's doing, not the command line's.
impl Blame for FrameError {
    fn is_usage(&self) -> bool {
        false
    }
}

// The message depends on more than one field, so Display is written by hand
// instead of with `#[error("...")]`; thiserror still provides `Error` and `From`.
impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge {
                max,
                framing: Framing::Line,
                ..
            } => write!(f, "line longer than --max-frame {max} bytes"),
            FrameError::TooLarge { len, max, .. } => {
                write!(f, "frame of {len} bytes exceeds --max-frame {max}")
            }
            FrameError::Truncated {
                expected,
                got,
                header,
            } => {
                let what = if *header { "header bytes" } else { "bytes" };
                write!(
                    f,
                    "connection closed mid-frame: got {got} of {expected} {what}"
                )
            }
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Widens a size to `u64` for error reports (`usize` is at most 64 bits on
/// every platform Rust supports, so this never saturates in practice).
fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One message as it came off the wire.
///
/// It keeps the exact received bytes ([`Frame::wire`]) next to the message
/// itself ([`Frame::payload`]), so an echo server can send back precisely
/// what it got, `"\r\n"` and length prefix included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Everything received for this frame, framing included.
    bytes: Vec<u8>,
    /// Where the message sits inside `bytes`.
    payload: Range<usize>,
}

impl Frame {
    /// The message itself (a line without its `"\n"`/`"\r\n"`, a len frame
    /// without its prefix).
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(self.payload.clone()).unwrap_or_default()
    }

    /// The exact bytes received for this message, framing included (echo
    /// servers send these back byte for byte).
    pub fn wire(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the message out of the frame without copying it.
    pub fn into_payload(self) -> Vec<u8> {
        let Frame { mut bytes, payload } = self;
        // Cut the tail (the '\n') first, then the head (the length prefix).
        // `min` keeps this panic-free even if the range were ever wrong.
        let end = payload.end.min(bytes.len());
        bytes.truncate(end);
        bytes.drain(..payload.start.min(end));
        bytes
    }
}

/// Sans-IO deframer: push bytes as they arrive, pop complete frames.
///
/// ```text
///   recv() -> b"hel"          push   next_frame() -> Ok(None)   (wait)
///   recv() -> b"lo\nwor"      push   next_frame() -> "hello"
///                                    next_frame() -> Ok(None)   ("wor" waits)
///   recv() -> b"ld\n"         push   next_frame() -> "world"
/// ```
///
/// Memory is bounded by what the peer actually sends, never by what it
/// claims: a len frame's announced size is checked against `max_frame` as
/// soon as its 4 header bytes arrive, and the buffer grows only as real
/// bytes are pushed. A line that grows past `max_frame` without a `'\n'` is
/// rejected instead of being buffered forever.
///
/// After an error nothing is consumed: asking again gives the same error.
pub struct Deframer {
    framing: Framing,
    max_frame: usize,
    /// Received bytes. `buf[..start]` were already handed out as frames.
    buf: Vec<u8>,
    /// Read offset into `buf`. Moving an offset is O(1); removing the front
    /// of a `Vec` after every frame would move all later bytes each time,
    /// O(n²) for a burst of small frames.
    start: usize,
    /// Line framing: `buf[start..start + scanned]` is known to hold no `'\n'`,
    /// so a line arriving one byte at a time is not searched again and again.
    scanned: usize,
    /// Raw framing: the size of every pushed chunk not yet returned, in order.
    raw_chunks: VecDeque<usize>,
}

impl fmt::Debug for Deframer {
    // Printing the buffer itself could mean megabytes of numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deframer")
            .field("framing", &self.framing)
            .field("max_frame", &self.max_frame)
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl Deframer {
    /// Creates an empty deframer. `max_frame` limits the payload of line and
    /// len frames; raw frames are never larger than the chunks pushed.
    pub fn new(framing: Framing, max_frame: usize) -> Self {
        Deframer {
            framing,
            max_frame,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            raw_chunks: VecDeque::new(),
        }
    }

    /// Adds bytes just received from the stream. Call [`Deframer::next_frame`]
    /// afterwards, until it returns `Ok(None)`: one push may complete
    /// several frames (sticky packets), or none.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.compact();
        let want = self.held_after_push(bytes.len());
        if want > self.buf.capacity() {
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        if self.framing == Framing::Raw {
            self.raw_chunks.push_back(bytes.len());
        }
    }

    /// Pops the next complete frame.
    ///
    /// * `Ok(Some(frame))`: a complete frame.
    /// * `Ok(None)`: not all bytes have arrived yet; push more.
    /// * `Err(_)`: these bytes are wrong ([`FrameError::TooLarge`]).
    ///
    /// Raw: each pushed chunk (if non-empty) comes out as one frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.framing {
            Framing::Raw => Ok(self.raw_chunks.pop_front().map(|n| self.take(n, 0..n))),
            Framing::Line => self.next_line(),
            Framing::Len => self.next_len(),
        }
    }

    /// Call at end of stream, after [`Deframer::next_frame`] returned `Ok(None)`.
    ///
    /// * Line: a final unterminated line is returned as a frame (data is never
    ///   lost; many files end without a `'\n'`).
    /// * Len: leftover bytes are half a frame, so [`FrameError::Truncated`].
    /// * Nothing left: `Ok(None)`.
    ///
    /// If complete frames are still buffered, they are returned first, so
    /// calling `finish` until it gives `Ok(None)` drains everything.
    pub fn finish(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.next_frame()? {
            return Ok(Some(frame));
        }
        let left = self.buffered();
        if left == 0 {
            return Ok(None);
        }
        match self.framing {
            // Every raw chunk is complete; next_frame() returned them all.
            Framing::Raw => Ok(None),
            Framing::Line => {
                // next_frame() let a line of max + 1 bytes ending in '\r' wait,
                // since a '\n' could have made it a legal line plus "\r\n".
                // Without that '\n', the '\r' is part of the line.
                if left > self.max_frame {
                    return Err(self.line_too_large(left));
                }
                Ok(Some(self.take(left, 0..left)))
            }
            Framing::Len => {
                let pending = &self.buf[self.start..];
                Err(match pending.first_chunk::<HEADER_LEN>() {
                    None => FrameError::Truncated {
                        expected: to_u64(HEADER_LEN),
                        got: to_u64(left),
                        header: true,
                    },
                    Some(header) => FrameError::Truncated {
                        expected: u64::from(u32::from_be_bytes(*header)),
                        got: to_u64(left - HEADER_LEN),
                        header: false,
                    },
                })
            }
        }
    }

    /// Bytes buffered but not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Bytes of memory the buffer holds: its capacity, which may be more than
    /// [`Deframer::buffered`]. This, not `buffered`, is what a budget must count.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// What [`Deframer::held`] will be once `n` more bytes are pushed, so a
    /// caller can refuse them before the memory is taken.
    ///
    /// Growth doubles, so a frame arriving in many small pieces is copied
    /// O(n) times overall, not O(n²); but a len frame whose header is in
    /// never grows the buffer past the frame's end, so a 16 MiB frame holds
    /// 16 MiB and 4 bytes, not the 32 MiB that doubling would reach.
    pub fn held_after_push(&self, n: usize) -> usize {
        let cap = self.buf.capacity();
        // push() compacts first; the same condition as compact().
        let left = self.buffered();
        let start = if self.start >= left { 0 } else { self.start };
        let need = (start + left).saturating_add(n);
        if need <= cap {
            return cap;
        }
        let doubled = need.max(cap.saturating_mul(2));
        match self.len_frame_end(start) {
            // A push that passes the frame's end completes the frame, which is
            // taken at once: growing to exactly what is needed copies each of
            // its bytes at most once more, and 16 MiB plus one byte of the next
            // frame does not make 32 MiB.
            Some(end) => need.max(doubled.min(end)),
            None => doubled,
        }
    }

    /// Hands memory back: when the capacity is above `above` and the bytes left
    /// are no more than those consumed, the bytes left move to the front and the
    /// rest is freed. The condition is `compact`'s, so the copying
    /// stays O(n) overall however often this is called.
    pub fn shrink(&mut self, above: usize) {
        if self.buf.capacity() > above && self.start >= self.buffered() {
            self.compact();
            self.buf.shrink_to(self.buf.len());
        }
    }

    /// Len framing, once the header is in: where the frame starting at
    /// `start` (after compaction) ends. None for a claim over `max_frame`,
    /// which `next_frame` rejects, so it must not size the buffer.
    fn len_frame_end(&self, start: usize) -> Option<usize> {
        if self.framing != Framing::Len {
            return None;
        }
        let header = self.buf[self.start..].first_chunk::<HEADER_LEN>()?;
        let body = usize::try_from(u32::from_be_bytes(*header)).ok()?;
        if body > self.max_frame {
            return None;
        }
        start.checked_add(HEADER_LEN)?.checked_add(body)
    }

    /// Line framing: look for the next `'\n'`.
    fn next_line(&mut self) -> Result<Option<Frame>, FrameError> {
        let pending = &self.buf[self.start..];
        let unsearched = pending.get(self.scanned..).unwrap_or_default();
        match unsearched.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let newline = self.scanned + i;
                // "\r\n" (Windows, telnet, HTTP) ends a line too; the '\r' is
                // framing, not message, so it stays in wire() only.
                let line = &pending[..newline];
                let payload_len = line.strip_suffix(b"\r").unwrap_or(line).len();
                if payload_len > self.max_frame {
                    return Err(self.line_too_large(payload_len));
                }
                Ok(Some(self.take(newline + 1, 0..payload_len)))
            }
            None => {
                self.scanned = pending.len();
                // No '\n' yet. If the line is already too long, say so now
                // instead of buffering a line without end. A trailing '\r' may
                // still turn out to be framing, so it is not counted yet.
                let at_least = pending.strip_suffix(b"\r").unwrap_or(pending).len();
                if at_least > self.max_frame {
                    return Err(self.line_too_large(pending.len()));
                }
                Ok(None)
            }
        }
    }

    /// Len framing: read the 4-byte header, then wait for the body.
    fn next_len(&mut self) -> Result<Option<Frame>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(header) = pending.first_chunk::<HEADER_LEN>() else {
            return Ok(None); // not even the header yet
        };
        let claimed = u32::from_be_bytes(*header);
        // Check the claim *before* waiting for (or reserving room for) the
        // body: a hostile `ff ff ff ff` is rejected right here, with only
        // these 4 bytes in memory.
        let too_large = FrameError::TooLarge {
            len: u64::from(claimed),
            max: self.max_frame,
            framing: Framing::Len,
        };
        let Ok(body_len) = usize::try_from(claimed) else {
            return Err(too_large);
        };
        if body_len > self.max_frame {
            return Err(too_large);
        }
        let Some(total) = body_len.checked_add(HEADER_LEN) else {
            return Err(too_large);
        };
        if pending.len() < total {
            return Ok(None); // body incomplete: wait, without reserving `total`
        }
        Ok(Some(self.take(total, HEADER_LEN..total)))
    }

    fn line_too_large(&self, len: usize) -> FrameError {
        FrameError::TooLarge {
            len: to_u64(len),
            max: self.max_frame,
            framing: Framing::Line,
        }
    }

    /// Hands out the next `wire_len` buffered bytes as a frame.
    /// Callers only pass lengths they checked against `buffered()`.
    fn take(&mut self, wire_len: usize, payload: Range<usize>) -> Frame {
        let end = self.start.saturating_add(wire_len).min(self.buf.len());
        let bytes = self.buf[self.start..end].to_vec();
        self.start = end;
        self.scanned = 0;
        if self.start == self.buf.len() {
            // Everything consumed: rewinding is free, no bytes need to move.
            self.start = 0;
            self.buf.clear();
        }
        self.shrink(SHRINK_ABOVE);
        Frame { bytes, payload }
    }

    /// Drops consumed bytes from the front of the buffer, but only once they
    /// are at least as many as the bytes left. Each move then copies no more
    /// than was consumed since the last one, so over a whole connection the
    /// copying adds up to at most the bytes received: O(n) overall.
    fn compact(&mut self) {
        let left = self.buffered();
        if self.start > 0 && self.start >= left {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(left);
            self.start = 0;
        }
    }
}

/// Encodes one message for the wire.
///
/// * Raw: the payload as is (the receiver cannot find where it ends).
/// * Line: payload + `"\n"`. A payload containing `'\n'` will arrive as
///   several lines; one ending in `'\r'` will lose that `'\r'`.
/// * Len: 4-byte big-endian length + payload. Errors with
///   [`FrameError::TooLarge`] if the payload is longer than `u32::MAX`.
pub fn encode_frame(framing: Framing, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    Ok(match framing {
        Framing::Raw => payload.to_vec(),
        Framing::Line => {
            let mut out = Vec::with_capacity(payload.len().saturating_add(1));
            out.extend_from_slice(payload);
            out.push(b'\n');
            out
        }
        Framing::Len => {
            let header = len_header(payload.len())?;
            let mut out = Vec::with_capacity(payload.len().saturating_add(HEADER_LEN));
            out.extend_from_slice(&header);
            out.extend_from_slice(payload);
            out
        }
    })
}

/// The 4-byte big-endian length prefix for a payload of `len` bytes.
fn len_header(len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    match u32::try_from(len) {
        Ok(n) => Ok(n.to_be_bytes()),
        Err(_) => Err(FrameError::TooLarge {
            len: to_u64(len),
            max: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            framing: Framing::Len,
        }),
    }
}

/// Blocking reader on top of [`Deframer`]: reads chunks (up to 64 KiB) from
/// `R` until a frame is complete.
///
/// ```text
/// let stream = TcpStream::connect("127.0.0.1:8000")?;
/// let mut frames = FrameReader::new(stream, Framing::Line, DEFAULT_MAX_FRAME);
/// while let Some(frame) = frames.read_frame()? {
///     println!("{}", String::from_utf8_lossy(frame.payload()));
/// }
/// ```
pub struct FrameReader<R> {
    reader: R,
    deframer: Deframer,
    /// Scratch space for one `read()` call.
    chunk: Vec<u8>,
    /// The reader returned `Ok(0)`: the peer closed the connection.
    eof: bool,
}

impl<R: fmt::Debug> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("reader", &self.reader)
            .field("deframer", &self.deframer)
            .field("eof", &self.eof)
            .finish()
    }
}

impl<R: Read> FrameReader<R> {
    /// Wraps `reader`; see [`Deframer::new`] for `framing` and `max_frame`.
    pub fn new(reader: R, framing: Framing, max_frame: usize) -> Self {
        FrameReader {
            reader,
            deframer: Deframer::new(framing, max_frame),
            chunk: vec![0; READ_CHUNK],
            eof: false,
        }
    }

    /// Reads the next frame; `Ok(None)` at a clean end of stream.
    ///
    /// Retries on [`io::ErrorKind::Interrupted`]. Other errors (including
    /// `WouldBlock`/`TimedOut` from a socket read timeout) are returned as
    /// [`FrameError::Io`] without losing buffered bytes, so the caller may
    /// call again.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            // Bytes from an earlier read may already hold a frame (sticky
            // packets): only read when the deframer says it needs more.
            if let Some(frame) = self.deframer.next_frame()? {
                return Ok(Some(frame));
            }
            if self.eof {
                return self.deframer.finish();
            }
            match self.reader.read(&mut self.chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    // A correct reader never claims more than the buffer
                    // holds; a buggy one gets an error, not a panic.
                    let Some(bytes) = self.chunk.get(..n) else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "reader returned more bytes than the buffer holds",
                        )
                        .into());
                    };
                    self.deframer.push(bytes);
                }
                // A signal arrived before any data: nothing happened, try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The underlying reader (e.g. to look up the peer address).
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The underlying reader, mutably (e.g. to set a read timeout). Reading
    /// from it directly would skip bytes the deframer expects.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Bytes = &'static [u8];

    /// Pops every frame that is complete right now.
    fn drain(d: &mut Deframer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame().expect("valid input") {
            out.push(f.into_payload());
        }
        out
    }

    /// The next frame is complete, with this payload and these bytes on the
    /// wire; `into_payload` gives the payload too.
    fn next_is(d: &mut Deframer, payload: &[u8], wire: &[u8]) {
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(f.payload(), payload);
        assert_eq!(f.wire(), wire);
        assert_eq!(f.into_payload(), payload);
    }

    /// `err` is `want` and reads `message`. (Compared by Debug: `FrameError`
    /// holds an `io::Error` and so has no `PartialEq`.)
    fn assert_err(err: FrameError, want: FrameError, message: &str) {
        assert_eq!(format!("{err:?}"), format!("{want:?}"));
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn one_push_of_whole_frames_gives_each_with_its_wire_bytes() {
        // Each frame: (payload, wire bytes).
        type Frames = &'static [(Bytes, Bytes)];
        let cases: [(Framing, Bytes, Frames); 5] = [
            // The sticky packet: two send() calls, one recv().
            (
                Framing::Line,
                b"hello\nworld\n",
                &[(b"hello", b"hello\n"), (b"world", b"world\n")],
            ),
            // A CRLF is stripped from the payload but kept in the wire bytes.
            (
                Framing::Line,
                b"hi\r\nbare\n\r\n",
                &[(b"hi", b"hi\r\n"), (b"bare", b"bare\n"), (b"", b"\r\n")],
            ),
            // Only one CR before the LF is framing.
            (
                Framing::Line,
                b"a\r\r\nb\rc\n",
                &[(b"a\r", b"a\r\r\n"), (b"b\rc", b"b\rc\n")],
            ),
            (
                Framing::Len,
                b"\x00\x00\x00\x05hello\x00\x00\x00\x02hi",
                &[
                    (b"hello", b"\x00\x00\x00\x05hello"),
                    (b"hi", b"\x00\x00\x00\x02hi"),
                ],
            ),
            (
                Framing::Len,
                b"\x00\x00\x00\x00",
                &[(b"", b"\x00\x00\x00\x00")],
            ),
        ];
        for (framing, input, frames) in cases {
            let mut d = Deframer::new(framing, DEFAULT_MAX_FRAME);
            d.push(input);
            for (payload, wire) in frames {
                next_is(&mut d, payload, wire);
            }
            assert!(d.next_frame().unwrap().is_none(), "{input:?}");
            assert_eq!(d.buffered(), 0, "{input:?}");
            assert!(d.finish().unwrap().is_none(), "{input:?}");
        }
    }

    #[test]
    fn frames_split_at_every_offset() {
        let cases: [(Framing, Bytes, [Bytes; 2]); 2] = [
            (Framing::Line, b"hello\r\nworld\n", [b"hello", b"world"]),
            (
                Framing::Len,
                b"\x00\x00\x00\x05hello\x00\x00\x00\x00",
                [b"hello", b""],
            ),
        ];
        for (framing, input, want) in cases {
            for cut in 0..=input.len() {
                let mut d = Deframer::new(framing, DEFAULT_MAX_FRAME);
                let mut got = Vec::new();
                d.push(&input[..cut]);
                got.extend(drain(&mut d));
                d.push(&input[cut..]);
                got.extend(drain(&mut d));
                assert_eq!(got, want, "{framing:?}, cut {cut}");
                assert!(d.finish().unwrap().is_none());
            }
        }
    }

    // ----- Line framing -----

    #[test]
    fn line_arriving_one_byte_at_a_time() {
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        for &b in b"abc".iter() {
            d.push(&[b]);
            assert!(d.next_frame().unwrap().is_none());
        }
        d.push(b"\n");
        assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"abc");
    }

    #[test]
    fn final_unterminated_line_is_returned_by_finish() {
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        d.push(b"one\ntwo\r");
        assert_eq!(drain(&mut d), vec![b"one".to_vec()]);
        let last = d.finish().unwrap().unwrap();
        // Without a '\n' the '\r' is data, not framing.
        assert_eq!(last.payload(), b"two\r");
        assert_eq!(last.wire(), b"two\r");
        assert!(d.finish().unwrap().is_none());
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn finish_returns_complete_frames_first() {
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        d.push(b"a\nb");
        assert_eq!(d.finish().unwrap().unwrap().payload(), b"a");
        assert_eq!(d.finish().unwrap().unwrap().payload(), b"b");
        assert!(d.finish().unwrap().is_none());
    }

    #[test]
    fn a_frame_over_max_is_refused_before_it_ends_without_growing_the_buffer() {
        // A line: 4 bytes are still legal, the fifth is not. A len frame: the
        // header of a hostile peer announces 4 GiB; refused at once.
        let cases: [(Framing, usize, [Bytes; 2], u64, &str); 2] = [
            (
                Framing::Line,
                4,
                [b"abcd", b"e"],
                5,
                "line longer than --max-frame 4 bytes",
            ),
            (
                Framing::Len,
                DEFAULT_MAX_FRAME,
                [b"\xff\xff", b"\xff\xff"],
                4_294_967_295,
                "frame of 4294967295 bytes exceeds --max-frame 16777216",
            ),
        ];
        for (framing, max, [first, second], len, message) in cases {
            let mut d = Deframer::new(framing, max);
            d.push(first);
            assert!(d.next_frame().unwrap().is_none());
            d.push(second);
            let want = FrameError::TooLarge { len, max, framing };
            assert_err(d.next_frame().unwrap_err(), want, message);
            // Nothing consumed: asking again gives the same answer.
            assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
            assert_eq!(d.buffered(), first.len() + second.len());
            assert!(d.buf.capacity() < 1024, "capacity {}", d.buf.capacity());
        }
    }

    #[test]
    fn a_frame_over_max_after_a_legal_one_is_too_large() {
        // A line of 5 bytes with its newline; a len frame of exactly max, then one over.
        let cases: [(Framing, usize, Bytes, Bytes, u64, &str); 2] = [
            (
                Framing::Line,
                4,
                b"ok\nabcde\n",
                b"ok",
                5,
                "line longer than --max-frame 4 bytes",
            ),
            (
                Framing::Len,
                3,
                b"\x00\x00\x00\x03abc\x00\x00\x00\x04",
                b"abc",
                4,
                "frame of 4 bytes exceeds --max-frame 3",
            ),
        ];
        for (framing, max, input, first, len, message) in cases {
            let mut d = Deframer::new(framing, max);
            d.push(input);
            assert_eq!(d.next_frame().unwrap().unwrap().payload(), first);
            let want = FrameError::TooLarge { len, max, framing };
            assert_err(d.next_frame().unwrap_err(), want, message);
        }
    }

    #[test]
    fn line_of_exactly_max_with_crlf_is_fine() {
        let mut d = Deframer::new(Framing::Line, 4);
        d.push(b"abcd\r");
        assert!(d.next_frame().unwrap().is_none()); // the '\r' may be framing
        d.push(b"\n");
        assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"abcd");

        // ... but at end of stream that '\r' was data: 5 bytes > 4.
        let mut d = Deframer::new(Framing::Line, 4);
        d.push(b"abcd\r");
        assert!(d.next_frame().unwrap().is_none());
        assert!(matches!(d.finish(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn many_small_lines_are_handled_in_linear_time() {
        // With a Vec::drain(..) per frame this would copy ~100k * 600 KB.
        const N: usize = 100_000;
        let mut input = Vec::new();
        for i in 0..N {
            input.extend_from_slice(format!("{i}\n").as_bytes());
        }
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        d.push(&input);
        let mut count = 0;
        while let Some(f) = d.next_frame().unwrap() {
            assert_eq!(f.payload(), count.to_string().as_bytes());
            count += 1;
        }
        assert_eq!(count, N);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn buffer_is_compacted_while_streaming() {
        // Always one partial line in the buffer, so it never empties
        // completely; compaction must still keep it small.
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        d.push(b"x");
        for _ in 0..10_000 {
            d.push(b"yz\nx");
            assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"xyz");
            assert!(d.next_frame().unwrap().is_none());
            assert!(d.buf.len() < 64, "buffer grew to {}", d.buf.len());
        }
        assert_eq!(d.buffered(), 1);
    }

    // ----- Len framing -----

    #[test]
    fn big_legal_len_frame_grows_only_with_real_bytes() {
        // A server's clients each announcing a frame just under the limit must
        // cost what they sent, not what they announced.
        for claimed in [DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME - 1] {
            let mut d = Deframer::new(Framing::Len, DEFAULT_MAX_FRAME);
            d.push(&(claimed as u32).to_be_bytes());
            d.push(b"0123456789");
            assert!(d.next_frame().unwrap().is_none());
            assert_eq!(d.buffered(), 14);
            assert!(d.buf.capacity() < 1024, "capacity {}", d.buf.capacity());
        }
    }

    #[test]
    fn a_big_frame_taken_with_one_byte_of_the_next_hands_its_memory_back() {
        // A server that counted only buffered() would see 1 byte here while the
        // buffer kept the whole frame's capacity: this is what held() is for.
        let mut wire = encode_frame(Framing::Len, &vec![7; DEFAULT_MAX_FRAME]).unwrap();
        wire.push(0); // first byte of the next frame's header
        for chunk_len in [64 * 1024, 100_000] {
            let mut d = Deframer::new(Framing::Len, DEFAULT_MAX_FRAME);
            for chunk in wire.chunks(chunk_len) {
                let predicted = d.held_after_push(chunk.len());
                d.push(chunk);
                assert_eq!(d.held(), predicted, "chunks of {chunk_len}");
                // Never the 32 MiB that doubling past 16 MiB would give.
                assert!(d.held() <= wire.len(), "held {}", d.held());
            }
            assert!(d.held() >= DEFAULT_MAX_FRAME);
            let frame = d.next_frame().unwrap().unwrap();
            assert_eq!(frame.payload().len(), DEFAULT_MAX_FRAME);
            assert!(d.next_frame().unwrap().is_none());
            assert_eq!(d.buffered(), 1);
            // Shrunk to the one byte left. The bound leaves room for an
            // allocator that rounds up, and is still 16 000 times below what
            // was held.
            assert!(d.held() <= 1024, "held {}", d.held());
            d.push(b"\x00\x00\x02hi");
            assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"hi");
        }
    }

    #[test]
    fn shrink_frees_what_is_consumed_but_never_moves_a_frame_in_progress() {
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        let mut wire = vec![b'a'; 10_000];
        wire.extend_from_slice(b"\nbc");
        d.push(&wire);
        assert_eq!(d.next_frame().unwrap().unwrap().payload().len(), 10_000);
        assert!(d.next_frame().unwrap().is_none());
        // Under SHRINK_ABOVE, taking a frame keeps the capacity for the next ones.
        assert!(d.held() >= 10_000, "held {}", d.held());
        d.shrink(1024);
        assert_eq!(d.buffered(), 2);
        assert!(d.held() < 1024, "held {}", d.held());
        d.push(b"\n");
        assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"bc");
        // Nothing consumed: shrinking would copy the whole unfinished line, again
        // and again as it grows, so it waits.
        d.push(&[b'x'; 5000]);
        let held = d.held();
        d.shrink(0);
        assert_eq!(d.held(), held);
        assert_eq!(d.buffered(), 5000);
    }

    #[test]
    fn truncated_header_or_body_at_eof() {
        let cases: [(Bytes, u64, u64, bool, &str); 2] = [
            (
                b"\x00\x00",
                4,
                2,
                true,
                "connection closed mid-frame: got 2 of 4 header bytes",
            ),
            (
                b"\x00\x00\x00\x0aabc",
                10,
                3,
                false,
                "connection closed mid-frame: got 3 of 10 bytes",
            ),
        ];
        for (input, expected, got, header, message) in cases {
            let mut d = Deframer::new(Framing::Len, DEFAULT_MAX_FRAME);
            d.push(input);
            assert!(d.next_frame().unwrap().is_none());
            let want = FrameError::Truncated {
                expected,
                got,
                header,
            };
            assert_err(d.finish().unwrap_err(), want, message);
        }
    }

    // ----- Raw framing -----

    #[test]
    fn raw_each_push_is_one_frame() {
        let mut d = Deframer::new(Framing::Raw, DEFAULT_MAX_FRAME);
        d.push(b"hello\nworld");
        d.push(b"");
        d.push(b"!");
        next_is(&mut d, b"hello\nworld", b"hello\nworld");
        assert_eq!(d.next_frame().unwrap().unwrap().payload(), b"!");
        assert!(d.next_frame().unwrap().is_none());
        assert!(d.finish().unwrap().is_none());
    }

    // ----- encode_frame -----

    #[test]
    fn encode_each_framing() {
        assert_eq!(encode_frame(Framing::Raw, b"hi").unwrap(), b"hi");
        assert_eq!(encode_frame(Framing::Line, b"hi").unwrap(), b"hi\n");
        assert_eq!(
            encode_frame(Framing::Len, b"hello").unwrap(),
            b"\x00\x00\x00\x05hello"
        );
        assert_eq!(
            encode_frame(Framing::Len, b"").unwrap(),
            b"\x00\x00\x00\x00"
        );
    }

    #[test]
    fn len_header_rejects_more_than_u32_max() {
        // Testing through encode_frame would need a 4 GiB payload.
        assert_eq!(len_header(0x0102_0304).unwrap(), [1, 2, 3, 4]);
        let too_big = usize::try_from(u64::from(u32::MAX) + 1).unwrap();
        assert!(matches!(
            len_header(too_big),
            Err(FrameError::TooLarge {
                len: 4_294_967_296,
                max: 4_294_967_295,
                framing: Framing::Len
            })
        ));
    }

    #[test]
    fn into_payload_strips_framing() {
        let mut d = Deframer::new(Framing::Line, DEFAULT_MAX_FRAME);
        d.push(b"abc\r\n");
        assert_eq!(d.next_frame().unwrap().unwrap().into_payload(), b"abc");
    }

    // ----- FrameReader -----

    /// Returns one byte per read(): the worst case of split packets.
    struct OneByteAtATime(Vec<u8>, usize);

    impl Read for OneByteAtATime {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.get(self.1), buf.first_mut()) {
                (Some(&b), Some(slot)) => {
                    *slot = b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// Plays back a script: each step is the result of one read() call.
    struct Scripted(VecDeque<io::Result<Vec<u8>>>);

    impl Scripted {
        fn new(steps: Vec<io::Result<Vec<u8>>>) -> Self {
            Scripted(steps.into())
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(Err(e)) => Err(e),
                Some(Ok(data)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    if n < data.len() {
                        self.0.push_front(Ok(data[n..].to_vec()));
                    }
                    Ok(n)
                }
            }
        }
    }

    fn err(kind: io::ErrorKind) -> io::Result<Vec<u8>> {
        Err(io::Error::from(kind))
    }

    /// `r` gives frames with these payloads, then the end of the stream.
    fn reads_then_ends<R: Read>(r: &mut FrameReader<R>, payloads: &[&[u8]]) {
        for p in payloads {
            assert_eq!(r.read_frame().unwrap().unwrap().payload(), *p);
        }
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn reader_one_byte_at_a_time() {
        for framing in [Framing::Line, Framing::Len] {
            let mut wire = Vec::new();
            for p in [&b"hello"[..], b"", b"world"] {
                wire.extend(encode_frame(framing, p).unwrap());
            }
            let mut r = FrameReader::new(OneByteAtATime(wire, 0), framing, DEFAULT_MAX_FRAME);
            reads_then_ends(&mut r, &[b"hello", b"", b"world"]);
            assert!(r.read_frame().unwrap().is_none());
        }
    }

    #[test]
    fn reader_gives_each_frame_then_none() {
        let cases: [(Framing, &[Bytes], [Bytes; 2]); 2] = [
            // Two messages that arrived together come out as one raw frame,
            // exactly like the course's Python server prints them.
            (Framing::Raw, &[b"helloworld", b"!"], [b"helloworld", b"!"]),
            // The final line needs no newline.
            (Framing::Line, &[b"a\nb"], [b"a", b"b"]),
        ];
        for (framing, reads, frames) in cases {
            let script = Scripted::new(reads.iter().map(|r| Ok(r.to_vec())).collect());
            let mut r = FrameReader::new(script, framing, DEFAULT_MAX_FRAME);
            reads_then_ends(&mut r, &frames);
        }
    }

    #[test]
    fn reader_would_block_mid_frame_keeps_bytes() {
        let script = Scripted::new(vec![
            Ok(b"\x00\x00\x00\x05he".to_vec()),
            err(io::ErrorKind::WouldBlock),
            Ok(b"llo".to_vec()),
        ]);
        let mut r = FrameReader::new(script, Framing::Len, DEFAULT_MAX_FRAME);
        match r.read_frame() {
            Err(FrameError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            other => panic!("expected WouldBlock, got {other:?}"),
        }
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!(f.payload(), b"hello");
        assert_eq!(f.wire(), b"\x00\x00\x00\x05hello");
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn reader_retries_interrupted() {
        let script = Scripted::new(vec![
            err(io::ErrorKind::Interrupted),
            Ok(b"hel".to_vec()),
            err(io::ErrorKind::Interrupted),
            Ok(b"lo\n".to_vec()),
        ]);
        let mut r = FrameReader::new(script, Framing::Line, DEFAULT_MAX_FRAME);
        reads_then_ends(&mut r, &[b"hello"]);
        assert!(r.get_ref().0.is_empty());
    }

    #[test]
    fn reader_reports_truncated_frame_at_eof() {
        let script = Scripted::new(vec![Ok(b"\x00\x00\x00\x0aabc".to_vec())]);
        let mut r = FrameReader::new(script, Framing::Len, DEFAULT_MAX_FRAME);
        assert!(matches!(
            r.read_frame(),
            Err(FrameError::Truncated {
                expected: 10,
                got: 3,
                header: false
            })
        ));
    }

    #[test]
    fn reader_passes_other_errors_through() {
        let script = Scripted::new(vec![err(io::ErrorKind::ConnectionReset)]);
        let mut r = FrameReader::new(script, Framing::Line, DEFAULT_MAX_FRAME);
        let e = r.read_frame().unwrap_err();
        assert!(matches!(&e, FrameError::Io(io) if io.kind() == io::ErrorKind::ConnectionReset));
        assert!(!e.to_string().is_empty());
        r.get_mut().0.push_back(Ok(b"ok\n".to_vec()));
        assert_eq!(r.read_frame().unwrap().unwrap().payload(), b"ok");
    }

    #[test]
    fn reader_survives_a_lying_reader() {
        struct Liar;
        impl Read for Liar {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                Ok(buf.len() + 1)
            }
        }
        let mut r = FrameReader::new(Liar, Framing::Raw, DEFAULT_MAX_FRAME);
        assert!(matches!(r.read_frame(), Err(FrameError::Io(_))));
    }

    // ----- properties -----

    /// Payloads that survive Line framing: no '\n' inside, no '\r' at the end.
    fn line_payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|mut p| {
            p.retain(|&b| b != b'\n');
            while p.last() == Some(&b'\r') {
                p.pop();
            }
            p
        })
    }

    /// `bytes` cut into chunks of the given sizes (cycled; each at least 1).
    fn chunks_of<'a>(mut bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
        sizes.iter().cycle().map_while(move |&size| {
            (!bytes.is_empty()).then(|| {
                let (chunk, rest) = bytes.split_at(size.min(bytes.len()));
                bytes = rest;
                chunk
            })
        })
    }

    /// Pushes `wire` in chunks of the given sizes (cycled), then finishes.
    fn deframe_in_chunks(
        framing: Framing,
        wire: &[u8],
        sizes: &[usize],
    ) -> Result<Vec<Frame>, FrameError> {
        let mut d = Deframer::new(framing, 64);
        let mut frames = Vec::new();
        for chunk in chunks_of(wire, sizes) {
            d.push(chunk);
            while let Some(f) = d.next_frame()? {
                frames.push(f);
            }
        }
        while let Some(f) = d.finish()? {
            frames.push(f);
        }
        Ok(frames)
    }

    /// `payloads` framed, then deframed from chunks of `sizes`: the same
    /// payloads come back, and their wire bytes are the bytes sent.
    fn round_trip(
        framing: Framing,
        payloads: &[Vec<u8>],
        sizes: &[usize],
    ) -> Result<(), TestCaseError> {
        let wire: Vec<u8> = payloads
            .iter()
            .flat_map(|p| encode_frame(framing, p).unwrap())
            .collect();
        let frames = deframe_in_chunks(framing, &wire, sizes).unwrap();
        let got: Vec<Vec<u8>> = frames.iter().map(|f| f.payload().to_vec()).collect();
        prop_assert_eq!(got, payloads);
        let rewired: Vec<u8> = frames.iter().flat_map(|f| f.wire().to_vec()).collect();
        prop_assert_eq!(rewired, wire);
        Ok(())
    }

    proptest! {
        #[test]
        fn line_round_trip(
            payloads in proptest::collection::vec(line_payload(), 0..20),
            sizes in proptest::collection::vec(1usize..50, 1..10),
        ) {
            round_trip(Framing::Line, &payloads, &sizes)?;
        }

        #[test]
        fn len_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
            sizes in proptest::collection::vec(1usize..50, 1..10),
        ) {
            round_trip(Framing::Len, &payloads, &sizes)?;
        }

        #[test]
        fn raw_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..20),
        ) {
            let mut d = Deframer::new(Framing::Raw, 8);
            for p in &payloads {
                d.push(p);
            }
            let mut got = Vec::new();
            while let Some(f) = d.finish().unwrap() {
                got.push(f.into_payload());
            }
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..50, 1..10),
            max in 0usize..80,
        ) {
            for framing in [Framing::Raw, Framing::Line, Framing::Len] {
                let mut d = Deframer::new(framing, max);
                for chunk in chunks_of(&bytes, &sizes) {
                    d.push(chunk);
                    while let Ok(Some(f)) = d.next_frame() {
                        prop_assert!(f.payload().len() <= f.wire().len());
                    }
                }
                while let Ok(Some(_)) = d.finish() {}
            }
        }
    }
}
