//! TFTP "netascii" mode (RFC 1350, RFC 764): streaming conversion between local Unix text and the wire form.
//!
//! Why does netascii exist? Operating systems disagree on how a line ends:
//! Unix ends lines with `\n` (LF), Windows with `\r\n` (CR LF), classic Mac OS
//! with a lone `\r`. A text file copied byte for byte from one to the other
//! looks wrong on arrival. TFTP inherited Telnet's answer (RFC 764): on the
//! wire every line ends with `\r\n`, and a carriage return that is *not* an end
//! of line is sent as `\r\0`, so the receiver can tell the two apart. Each side
//! converts between the wire form and its own local convention.
//!
//! On our (Unix) side:
//!
//! | local | wire |
//! |---|---|
//! | `\n` | `\r\n` |
//! | `\r` | `\r\0` |
//! | any other byte | unchanged |
//!
//! A local `\r\n` is therefore sent as `\r\0\r\n`, which decodes back to
//! `\r\n`: the round trip is exact for any bytes, text or not.
//!
//! The catch is that TFTP moves data in fixed-size blocks (512 bytes by
//! default, as small as 8 with the `blksize` option), and a block boundary can
//! fall between the two bytes of a `\r\n` or `\r\0` pair. Both adapters here
//! are therefore *streaming*: [`NetasciiReader`] keeps the second byte of an
//! expansion for the next read, and [`NetasciiWriter`] holds a trailing `\r`
//! until the next block says what it meant.

use std::io::{self, Read, Write};

/// Size of the chunks read from the inner reader and handed to the inner
/// writer. Large enough that a big file costs few system calls, small enough
/// not to matter for memory.
const CHUNK: usize = 16 * 1024;

/// Local bytes → netascii wire bytes, as a [`Read`] adapter.
///
/// The TFTP sender reads blocks of exactly `blksize` wire bytes from it, so an
/// expansion (`\n` → `\r\n`, `\r` → `\r\0`) may be split across two reads; the
/// second byte is kept for the next read.
///
/// Each [`read`](Read::read) fills the caller's buffer completely unless the
/// inner reader reaches end of file (or fails), because a TFTP sender takes a
/// short block to mean "this is the last one". `Ok(0)` is returned only once
/// the inner reader is exhausted and every converted byte has been handed out.
/// [`io::ErrorKind::Interrupted`] from the inner reader is retried, as
/// [`Read::read_exact`] does.
pub struct NetasciiReader<R> {
    inner: R,
    /// Local bytes read from `inner` but not yet converted: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Second half of an expansion that did not fit into the caller's buffer.
    pending: Option<u8>,
    /// An error from `inner` that arrived after some bytes were already
    /// converted; it is reported by the next read so that it is not lost and
    /// the bytes before it are not thrown away.
    error: Option<io::Error>,
    /// `inner` returned `Ok(0)`. Remembered so that a finished file is not
    /// read again on every call.
    eof: bool,
}

impl<R: Read> NetasciiReader<R> {
    /// Wraps `inner`, whose bytes are local (Unix) text, so that reading gives
    /// netascii wire bytes.
    pub fn new(inner: R) -> Self {
        NetasciiReader {
            inner,
            buf: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            pending: None,
            error: None,
            eof: false,
        }
    }

    /// Gives back the inner reader.
    ///
    /// Bytes already read from it but not yet returned by this adapter are
    /// lost, so call this only after [`read`](Read::read) has returned `Ok(0)`
    /// if nothing may go missing.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for NetasciiReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut written = 0;
        if let Some(b) = self.pending.take() {
            out[0] = b;
            written = 1;
        }
        while written < out.len() {
            if self.start == self.end {
                if self.eof {
                    break;
                }
                match self.inner.read(&mut self.buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        // A misbehaving reader could claim more than the
                        // buffer holds; clamp rather than panic on slicing.
                        self.start = 0;
                        self.end = n.min(self.buf.len());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if written == 0 => return Err(e),
                    Err(e) => {
                        self.error = Some(e);
                        break;
                    }
                }
            }
            let (consumed, produced) = encode(
                &self.buf[self.start..self.end],
                &mut out[written..],
                &mut self.pending,
            );
            self.start += consumed;
            written += produced;
        }
        Ok(written)
    }
}

/// Encodes as much of `src` into `dst` as fits, returning how many bytes of
/// `src` were used and how many of `dst` were filled.
///
/// When the first byte of an expansion is the last byte that fits, the second
/// goes into `pending` and the source byte counts as used, so that the caller
/// never has to undo half an expansion.
fn encode(src: &[u8], dst: &mut [u8], pending: &mut Option<u8>) -> (usize, usize) {
    let mut consumed = 0;
    let mut written = 0;
    while consumed < src.len() && written < dst.len() {
        let rest = &src[consumed..];
        let limit = rest.len().min(dst.len() - written);
        // Copying whole runs of ordinary bytes keeps the common case (long
        // lines) at memcpy speed instead of one branch per byte.
        let run = rest[..limit]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(limit);
        dst[written..written + run].copy_from_slice(&rest[..run]);
        consumed += run;
        written += run;
        if run == limit {
            continue;
        }
        let second = if rest[run] == b'\n' { b'\n' } else { b'\0' };
        dst[written] = b'\r';
        written += 1;
        consumed += 1;
        if written < dst.len() {
            dst[written] = second;
            written += 1;
        } else {
            *pending = Some(second);
            break;
        }
    }
    (consumed, written)
}

/// Netascii wire bytes → local bytes, as a [`Write`] adapter.
///
/// `\r\n` becomes `\n` and `\r\0` becomes `\r`. A `\r` followed by any other
/// byte is kept as-is, and that byte is then decoded normally (so `\r\r\n`
/// gives `\r\n`): real senders are not always strict, and tftp-hpa accepts such
/// input the same lenient way. A `\r` at the end of one write is held until
/// the next write (or [`finish`](NetasciiWriter::finish)) decides what it was.
///
/// Call [`finish`](NetasciiWriter::finish) at the end of the transfer:
/// dropping the writer instead loses a held `\r`. [`flush`](Write::flush)
/// flushes the inner writer but keeps a held `\r`, because it cannot know yet
/// whether a `\n` or `\0` follows. After an error from the inner writer, the
/// transfer should be abandoned: how much of the failed write reached the
/// inner writer is unknown.
pub struct NetasciiWriter<W> {
    inner: W,
    /// The last byte written so far was a `\r` that has not been decoded yet.
    held_cr: bool,
    /// Decoded bytes waiting to go to `inner`; kept between writes so that its
    /// allocation is reused.
    out: Vec<u8>,
}

impl<W: Write> NetasciiWriter<W> {
    /// Wraps `inner`, so that netascii wire bytes written to the adapter reach
    /// `inner` as local (Unix) text.
    pub fn new(inner: W) -> Self {
        NetasciiWriter {
            inner,
            held_cr: false,
            out: Vec::new(),
        }
    }

    /// Ends the stream: a held `\r` is written as `\r`; returns the inner
    /// writer, flushed.
    ///
    /// A `\r` as the very last wire byte is not valid netascii (it should have
    /// been `\r\0`), but keeping it loses nothing.
    pub fn finish(mut self) -> io::Result<W> {
        if self.held_cr {
            self.held_cr = false;
            self.inner.write_all(b"\r")?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Borrows the inner writer, e.g. to look at what a test has received.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Decodes `chunk` into `self.out`, carrying `held_cr` across calls.
    fn decode(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if self.held_cr
            && let Some((&first, tail)) = rest.split_first()
        {
            self.held_cr = false;
            match first {
                b'\n' => {
                    self.out.push(b'\n');
                    rest = tail;
                }
                b'\0' => {
                    self.out.push(b'\r');
                    rest = tail;
                }
                // Not a pair: the `\r` stands for itself and `first` is
                // decoded below like any byte, since it may be a `\r` that
                // starts a pair of its own.
                _ => self.out.push(b'\r'),
            }
        }
        while let Some(p) = rest.iter().position(|&b| b == b'\r') {
            self.out.extend_from_slice(&rest[..p]);
            match rest.get(p + 1) {
                None => {
                    self.held_cr = true;
                    return;
                }
                Some(b'\n') => {
                    self.out.push(b'\n');
                    rest = &rest[p + 2..];
                }
                Some(b'\0') => {
                    self.out.push(b'\r');
                    rest = &rest[p + 2..];
                }
                Some(_) => {
                    self.out.push(b'\r');
                    rest = &rest[p + 1..];
                }
            }
        }
        self.out.extend_from_slice(rest);
    }
}

impl<W: Write> Write for NetasciiWriter<W> {
    /// Converts the whole of `buf` and writes the result to the inner writer
    /// with `write_all`; returns `Ok(buf.len())`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Working in bounded chunks keeps `out` small even if the caller
        // hands over a huge buffer in one call.
        for chunk in buf.chunks(CHUNK) {
            self.out.clear();
            self.decode(chunk);
            self.inner.write_all(&self.out)?;
        }
        Ok(buf.len())
    }

    /// Flushes the inner writer. A held `\r` stays held.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes `local` in one go, through `read_to_end`.
    fn encode_all(local: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        NetasciiReader::new(local).read_to_end(&mut wire).unwrap();
        wire
    }

    /// Reads `reader` to the end into a buffer of `size` bytes, handing each
    /// block read to `each`; returns all that was read.
    fn read_blocks(mut reader: impl Read, size: usize, mut each: impl FnMut(&[u8])) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut block = vec![0; size];
        loop {
            let n = reader.read(&mut block).unwrap();
            if n == 0 {
                return wire;
            }
            each(&block[..n]);
            wire.extend_from_slice(&block[..n]);
        }
    }

    /// Encodes `local` with reads of exactly `size` bytes.
    fn encode_in_reads(local: &[u8], size: usize) -> Vec<u8> {
        read_blocks(NetasciiReader::new(local), size, |_| {})
    }

    /// Decodes `parts` written one after another, then finishes.
    fn decode_parts(parts: &[&[u8]]) -> Vec<u8> {
        let mut writer = NetasciiWriter::new(Vec::new());
        for part in parts {
            assert_eq!(writer.write(part).unwrap(), part.len());
        }
        writer.finish().unwrap()
    }

    /// An inner reader that hands out at most `step` bytes per call and
    /// reports `Interrupted` on every other call, to exercise both the refill
    /// path and the retry.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        served_last: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.served_last = !self.served_last;
            if !self.served_last {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Checks that `wire` is valid netascii: every `\r` starts a pair.
    fn assert_valid_netascii(wire: &[u8]) {
        for (i, &b) in wire.iter().enumerate() {
            if b == b'\r' {
                assert!(
                    matches!(wire.get(i + 1), Some(b'\n' | b'\0')),
                    "bare \\r at {i} in {wire:?}"
                );
            }
            if b == b'\n' {
                assert!(i > 0 && wire[i - 1] == b'\r', "bare \\n at {i} in {wire:?}");
            }
        }
    }

    #[test]
    fn encode_each_special_byte() {
        let cases: [(&[u8], &[u8]); 4] = [
            // LF becomes CRLF.
            (b"a\nb", b"a\r\nb"),
            // CR becomes CR NUL.
            (b"\r", b"\r\0"),
            // A local CRLF is not detected: each byte is encoded.
            (b"\r\n", b"\r\0\r\n"),
            (b"", b""),
        ];
        for (local, wire) in cases {
            assert_eq!(encode_all(local), wire, "{local:?}");
        }
    }

    #[test]
    fn encode_other_bytes_unchanged() {
        let all: Vec<u8> = (0..=255u8).filter(|&b| b != b'\r' && b != b'\n').collect();
        assert_eq!(encode_all(&all), all);
    }

    #[test]
    fn decode_each_pair() {
        let cases: [(&[&[u8]], &[u8]); 6] = [
            // CRLF becomes LF.
            (&[b"\r\n"], b"\n"),
            // CR NUL becomes CR.
            (&[b"\r\0"], b"\r"),
            // CR before anything else is kept.
            (&[b"\rx"], b"\rx"),
            // The second `\r` starts its own pair, as in tftp-hpa.
            (&[b"\r\r\n"], b"\r\n"),
            (&[b"\r", b"\r", b"\n"], b"\r\n"),
            // A held CR survives an empty write.
            (&[b"\r", b"", b"\n"], b"\n"),
        ];
        for (parts, local) in cases {
            assert_eq!(decode_parts(parts), local, "{parts:?}");
        }
    }

    #[test]
    fn decode_trailing_cr_is_held_until_finish() {
        let mut writer = NetasciiWriter::new(Vec::new());
        writer.write_all(b"ab\r").unwrap();
        writer.flush().unwrap();
        assert_eq!(writer.get_ref(), b"ab");
        assert_eq!(writer.finish().unwrap(), b"ab\r");
    }

    #[test]
    fn encoder_read_sizes_give_identical_output() {
        let local = b"line one\nline two\r\nbare\rcr\n\n\r\rend\n".repeat(40);
        let expected = encode_all(&local);
        assert_valid_netascii(&expected);
        for size in [1, 2, 3, 7, 512] {
            assert_eq!(encode_in_reads(&local, size), expected, "read size {size}");
        }
    }

    #[test]
    fn encoder_fills_blocks_from_a_trickling_inner_reader() {
        let local = b"a\nbc\rd\n".repeat(100);
        let expected = encode_all(&local);
        let reader = NetasciiReader::new(Trickle {
            data: &local,
            step: 3,
            served_last: false,
        });
        let mut seen = 0;
        let wire = read_blocks(reader, 8, |block| {
            // A short block before the end would end a TFTP transfer early.
            seen += block.len();
            let n = block.len();
            assert!(n == 8 || seen == expected.len(), "short block of {n}");
        });
        assert_eq!(wire, expected);
    }

    #[test]
    fn encoder_pending_byte_is_emitted_before_eof() {
        // The expansion of the last byte straddles the end of the first read.
        let mut reader = NetasciiReader::new(&b"ab\n"[..]);
        let mut block = [0; 3];
        assert_eq!(reader.read(&mut block).unwrap(), 3);
        assert_eq!(&block, b"ab\r");
        assert_eq!(reader.read(&mut block).unwrap(), 1);
        assert_eq!(block[0], b'\n');
        assert_eq!(reader.read(&mut block).unwrap(), 0);
    }

    #[test]
    fn encoder_error_after_data_is_reported_next() {
        let failing = b"x\ny".chain(FailingReader);
        let mut reader = NetasciiReader::new(failing);
        let mut block = [0; 16];
        assert_eq!(reader.read(&mut block).unwrap(), 4);
        assert_eq!(&block[..4], b"x\r\ny");
        let err = reader.read(&mut block).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn encoder_into_inner_returns_reader() {
        let reader = NetasciiReader::new(io::Cursor::new(b"abc".to_vec()));
        assert_eq!(reader.into_inner().into_inner(), b"abc");
    }

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn decoder_every_split_gives_identical_output() {
        let wire: &[u8] = b"x\r\ny\r\0z\r";
        let expected = decode_parts(&[wire]);
        assert_eq!(expected, b"x\ny\rz\r");
        for i in 0..=wire.len() {
            let (a, b) = wire.split_at(i);
            assert_eq!(decode_parts(&[a, b]), expected, "split at {i}");
        }
        for i in 0..=wire.len() {
            for j in i..=wire.len() {
                let parts = [&wire[..i], &wire[i..j], &wire[j..]];
                assert_eq!(decode_parts(&parts), expected, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn decoder_large_write_crosses_internal_chunks() {
        // A pair straddling the internal chunk boundary must still decode.
        let mut wire = vec![b'a'; CHUNK - 1];
        wire.extend_from_slice(b"\r\n\r\0");
        wire.extend(std::iter::repeat_n(b'b', CHUNK));
        let mut expected = vec![b'a'; CHUNK - 1];
        expected.extend_from_slice(b"\n\r");
        expected.extend(std::iter::repeat_n(b'b', CHUNK));
        assert_eq!(decode_parts(&[&wire]), expected);
    }

    /// Up to `max` bytes, about three quarters of them `\r`, `\n` or NUL: the bytes
    /// netascii changes, in every order.
    fn crlf_rich(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()],
            0..max,
        )
    }

    proptest! {
        #[test]
        fn round_trip_is_exact(
            local in crlf_rich(2000),
            read_size in 1usize..600,
            write_sizes in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let mut writer = NetasciiWriter::new(Vec::new());
            let mut sizes = write_sizes.iter().cycle();
            let wire = read_blocks(NetasciiReader::new(&local[..]), read_size, |block| {
                let mut rest = block;
                while !rest.is_empty() {
                    let size = (*sizes.next().unwrap()).min(rest.len());
                    let (part, tail) = rest.split_at(size);
                    assert_eq!(writer.write(part).unwrap(), part.len());
                    rest = tail;
                }
            });
            prop_assert_eq!(writer.finish().unwrap(), local.clone());
            assert_valid_netascii(&wire);
            let specials = local.iter().filter(|&&b| b == b'\r' || b == b'\n').count();
            prop_assert_eq!(wire.len(), local.len() + specials);
        }

        #[test]
        fn trickling_inner_reader_gives_same_encoding(
            local in proptest::collection::vec(any::<u8>(), 0..1000),
            step in 1usize..20,
            read_size in 1usize..40,
        ) {
            let expected = encode_all(&local);
            let reader = NetasciiReader::new(Trickle {
                data: &local,
                step,
                served_last: false,
            });
            prop_assert_eq!(read_blocks(reader, read_size, |_| {}), expected);
        }

        #[test]
        fn decoder_never_panics(
            wire in crlf_rich(500),
            split in 0usize..500,
        ) {
            let split = split.min(wire.len());
            let (a, b) = wire.split_at(split);
            prop_assert_eq!(decode_parts(&[a, b]), decode_parts(&[&wire]));
        }
    }
}
