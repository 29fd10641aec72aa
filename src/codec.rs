//! Text encodings for lesson 06 "Encodings": turn the bytes on the wire into
//! text and back again.
//!
//! A socket only ever carries bytes. Whether the bytes `c4 e3 ba c3` mean
//! "你好" depends on which *encoding* the sender used:
//!
//! * NetAssist on a Chinese Windows sends **GBK** (`你好` = `c4 e3 ba c3`);
//! * a terminal on Ubuntu sends **UTF-8** (`你好` = `e4 bd a0 e5 a5 bd`).
//!
//! Decoding with the wrong codec does not crash - it quietly produces
//! 乱码 (mojibake): GBK bytes read as UTF-8 become `���`, UTF-8 bytes read as
//! GBK become `浣犲ソ`. This module lets the user *say* which encoding the peer
//! speaks (`--encoding gbk`) and converts correctly in both directions.
//!
//! The heavy lifting (the big GBK/Big5/Shift_JIS tables) is done by the
//! [`encoding_rs`] crate, which implements the WHATWG Encoding Standard that
//! web browsers use. This module adds what a socket tool needs on top:
//!
//! * [`parse_label`] understands the names people type (`gbk`, `GB2312`,
//!   ` utf8 `, and the Windows code page names `cp936` and `936` that Python
//!   accepts) and gives a helpful error for the ones it does not know;
//! * [`TextDecoder`] is *streaming*: TCP may split one character across two
//!   `read()` calls, and the decoder remembers the first half until the second
//!   half arrives;
//! * [`TextEncoder`] refuses or substitutes characters the target encoding
//!   cannot represent, instead of silently sending HTML entities such as
//!   `&#128512;` to a peer that never asked for HTML;
//! * [`suggest_encoding`] finds which common encoding some bytes that were
//!   not valid in the chosen one do decode in, so a warning can name it.

use crate::error::Blame;
use encoding_rs::{CoderResult, Decoder, Encoder, EncoderResult, UTF_8, UTF_16BE, UTF_16LE};

/// Re-exported so callers can name encodings (`&'static Encoding`) without
/// depending on `encoding_rs` themselves.
pub use encoding_rs::Encoding;

/// The labels we suggest when the user types one we do not recognise.
///
/// Many more are accepted (every WHATWG label, e.g. `gb2312`, `latin1`,
/// `sjis`), but these are the ones a learner is likely to need.
const COMMON_LABELS: &str = "utf-8, gbk (also cp936, 936), gb18030, big5 (cp950), \
                             shift_jis (cp932), euc-kr (cp949), euc-jp, utf-16le, utf-16be, \
                             windows-1252, iso-8859-1";

/// Windows code page names, which Python (and Windows itself) use for these
/// encodings but the WHATWG standard does not list: `"你好".encode("cp936")`
/// is how a Windows program's GBK is often spelled.
const CODE_PAGES: &[(&str, &Encoding)] = &[
    ("cp936", encoding_rs::GBK),
    ("936", encoding_rs::GBK),
    ("ms936", encoding_rs::GBK),
    ("windows-936", encoding_rs::GBK),
    ("cp54936", encoding_rs::GB18030),
    ("54936", encoding_rs::GB18030),
    ("cp950", encoding_rs::BIG5),
    ("950", encoding_rs::BIG5),
    ("ms950", encoding_rs::BIG5),
    ("cp932", encoding_rs::SHIFT_JIS),
    ("932", encoding_rs::SHIFT_JIS),
    ("ms932", encoding_rs::SHIFT_JIS),
    ("cp949", encoding_rs::EUC_KR),
    ("949", encoding_rs::EUC_KR),
    ("ms949", encoding_rs::EUC_KR),
    ("cp65001", UTF_8),
    ("65001", UTF_8),
];

/// Upper bound for a single buffer reservation while converting.
///
/// `encoding_rs` tells us the worst-case output size for an input, and
/// reserving exactly that means the converters never have to stop half way.
/// For a gigantic input that worst case could exceed what `Vec` may ever
/// hold, and asking for it would panic ("capacity overflow"). Capping each
/// reservation keeps us panic-free: if the cap was too small the converter
/// reports `OutputFull` and we simply reserve again and continue.
const MAX_RESERVE: usize = 1 << 20;

/// Everything that can go wrong in this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The user asked for an encoding name we do not know.
    #[error("unknown encoding {label:?}; try one of: {COMMON_LABELS}")]
    UnknownLabel {
        /// The label exactly as the user typed it.
        label: String,
    },
    /// A character that the target encoding has no bytes for (only reported
    /// with [`Unmappable::Refuse`]). For example GBK has no emoji.
    #[error("cannot encode '{}' (U+{:04X}) in {encoding}", ch.escape_debug(), u32::from(*ch))]
    Unmappable {
        /// The character that could not be encoded.
        ch: char,
        /// Name of the target encoding, e.g. `"GBK"`.
        encoding: &'static str,
    },
}

/// Every codec error is about input the user gave: an unknown label, or a message
/// that cannot be encoded under `--strict-encoding`.
impl Blame for CodecError {
    fn is_usage(&self) -> bool {
        true
    }
}

/// Looks up an encoding by any of its WHATWG labels.
///
/// Matching ignores ASCII case and surrounding whitespace, so `"GBK"`,
/// `" gbk "`, `"gb2312"` and `"GB2312"` all give GBK, and `"utf8"` gives
/// UTF-8. (Why does `gb2312` give GBK? GBK is a superset of GB2312, and real
/// programs that claim "GB2312" nearly always send GBK, so browsers - and we -
/// treat the two names as one encoding.)
///
/// Windows code page names are accepted too, as Python accepts them:
/// `cp936` and `936` give GBK, `cp950` Big5, `cp932` Shift_JIS, `cp949`
/// EUC-KR, `cp65001` UTF-8.
///
/// The WHATWG standard also maps a few dangerous legacy labels such as
/// `iso-2022-kr` and `hz-gb-2312` to a special "replacement" encoding that
/// decodes *everything* to a single `U+FFFD`. That protects browsers, but it
/// would be useless in a socket tool, so we reject those labels as unknown.
///
/// # Errors
///
/// [`CodecError::UnknownLabel`] if the label names no usable encoding.
pub fn parse_label(label: &str) -> Result<&'static Encoding, CodecError> {
    let trimmed = label.trim();
    if let Some(&(_, enc)) = CODE_PAGES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
    {
        return Ok(enc);
    }
    // `for_label_no_replacement` returns `None` both for unknown labels and
    // for labels that map to the "replacement" encoding.
    Encoding::for_label_no_replacement(trimmed.as_bytes()).ok_or_else(|| CodecError::UnknownLabel {
        label: label.to_owned(),
    })
}

/// The label to type for `enc` on the command line (`gbk`, `utf-8`, `big5`):
/// its name in lower case, which [`parse_label`] accepts.
pub fn label(enc: &'static Encoding) -> String {
    enc.name().to_ascii_lowercase()
}

/// The encodings a peer of this course plausibly sends, most likely first:
/// UTF-8 (Ubuntu, Python's default), GBK (Windows in China, NetAssist; its
/// decoder also takes GB18030's four-byte sequences), Big5 (Windows in
/// Taiwan and Hong Kong). UTF-8 comes first because random bytes are seldom
/// valid UTF-8, while many byte strings happen to be valid GBK.
const LIKELY: [&Encoding; 3] = [UTF_8, encoding_rs::GBK, encoding_rs::BIG5];

/// The likely encodings ([`suggest_encoding`] tries them) other than
/// `in_use`, most likely first. GBK and GB18030 share one decoder, so one
/// in use rules out the other too.
pub fn likely_besides(in_use: &'static Encoding) -> Vec<&'static Encoding> {
    let family = |e: &'static Encoding| {
        if e == encoding_rs::GB18030 {
            encoding_rs::GBK
        } else {
            e
        }
    };
    LIKELY
        .into_iter()
        .filter(|&e| family(e) != family(in_use))
        .collect()
}

/// Which likely encoding other than `in_use` decodes `bytes` without an error,
/// and the text it gives: the hint for bytes that `in_use` could not decode.
/// Unless `complete` (a datagram, a frame, the end of a stream), `bytes` may
/// stop inside a character (a read cut there): an unfinished last character
/// then does not count against an encoding. An encoding must turn the bytes
/// into some text: a lone lead byte that it would only keep waiting on proves
/// nothing. None when none of them decodes the bytes.
pub fn suggest_encoding(
    in_use: &'static Encoding,
    bytes: &[u8],
    complete: bool,
) -> Option<(&'static Encoding, String)> {
    likely_besides(in_use).into_iter().find_map(|e| {
        let mut decoder = TextDecoder::new(e);
        let mut text = String::new();
        let bad = decoder.decode_into(bytes, complete, &mut text);
        (!bad && !text.is_empty()).then_some((e, text))
    })
}

/// The longest a character of any encoding we decode can be cut short: a UTF-8
/// or GB18030 four-byte sequence missing its last byte.
pub const MAX_PENDING: usize = 3;

/// Of `tail`, the last bytes of a stream that `enc` decoded up to its end, the
/// ones it still holds as an unfinished character: the longest suffix (at most
/// [`MAX_PENDING`] bytes) a fresh decoder takes whole without producing any text
/// or error. Empty when there is none.
pub fn pending_suffix<'a>(enc: &'static Encoding, tail: &'a [u8]) -> &'a [u8] {
    let start = tail.len().saturating_sub(MAX_PENDING);
    (start..tail.len())
        .map(|i| &tail[i..])
        .find(|s| {
            let mut decoder = enc.new_decoder_without_bom_handling();
            // (encoding_rs writes only into room already there.)
            let room = decoder.max_utf8_buffer_length(s.len()).unwrap_or(16);
            let mut text = String::with_capacity(room);
            let (_, read, bad) = decoder.decode_to_string(s, &mut text, false);
            read == s.len() && !bad && text.is_empty()
        })
        .unwrap_or_default()
}

/// Returns `true` if `enc` is UTF-8.
///
/// A modern terminal expects UTF-8, so bytes received in UTF-8 can be shown
/// as they are and bytes to send in UTF-8 need no conversion at all.
pub fn is_utf8(enc: &'static Encoding) -> bool {
    enc == UTF_8
}

/// The canonical name of an encoding, e.g. `"GBK"`, `"UTF-8"`, `"Shift_JIS"`.
///
/// Useful in messages such as "decoding as GBK".
pub fn display_name(enc: &'static Encoding) -> &'static str {
    enc.name()
}

/// Streaming decoder from bytes on the wire to text.
///
/// Create **one per connection** and feed it every chunk `read()` returns, in
/// order. TCP is a byte stream, not a message stream: the three bytes of a
/// UTF-8 `你` (`e4 bd a0`) may arrive as `e4` in one read and `bd a0` in the
/// next. Decoding each chunk on its own would turn both halves into `�`; a
/// single long-lived decoder keeps the incomplete tail and finishes the
/// character when the rest arrives.
///
/// Bytes that are invalid in the chosen encoding become `U+FFFD` (`�`) - they
/// are never dropped silently, so the user can see *that* something was
/// wrong, and [`had_errors`](Self::had_errors) records it.
pub struct TextDecoder {
    /// The `encoding_rs` decoder holding any partial character.
    decoder: Decoder,
    /// Which encoding we decode, kept so we can start a fresh decoder.
    encoding: &'static Encoding,
    /// Whether any invalid byte has been seen on this stream.
    had_errors: bool,
    /// Whether [`take_error_warning`](Self::take_error_warning) already
    /// returned `true`.
    warned: bool,
}

impl std::fmt::Debug for TextDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `encoding_rs::Decoder` is not `Debug`, so show only our own state.
        f.debug_struct("TextDecoder")
            .field("encoding", &self.encoding.name())
            .field("had_errors", &self.had_errors)
            .finish_non_exhaustive()
    }
}

impl TextDecoder {
    /// Creates a decoder for `enc`.
    ///
    /// A byte order mark (BOM) at the very start of the stream is removed:
    /// Windows tools like to prefix UTF-8 and UTF-16 text with one, and it is
    /// not part of the message. The BOM does not switch the encoding - if the
    /// user said GBK, we decode GBK.
    pub fn new(enc: &'static Encoding) -> Self {
        Self {
            decoder: enc.new_decoder_with_bom_removal(),
            encoding: enc,
            had_errors: false,
            warned: false,
        }
    }

    /// Decodes the next chunk of the stream.
    ///
    /// Pass `last = true` once the stream has ended (the peer closed the
    /// connection). Then a dangling half character, which can now never be
    /// completed, is flushed as `U+FFFD`. With `last = false` such a tail is
    /// kept back and completed by the next call.
    ///
    /// After a call with `last = true` the decoder is ready for a new stream
    /// (the error flag is kept, it describes the whole connection).
    pub fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        let mut out = String::new();
        self.decode_into(bytes, last, &mut out);
        out
    }

    /// [`Self::decode`], appending to `out`: a server that decodes every message
    /// of a thousand clients reuses one buffer per client instead of asking the
    /// allocator (shared by all threads) twice per message. Returns whether
    /// bytes of this call were invalid (and shown as U+FFFD).
    pub fn decode_into(&mut self, bytes: &[u8], last: bool, out: &mut String) -> bool {
        let mut replaced_any = false;
        let mut rest = bytes;
        loop {
            // Reserve the worst case so the decoder can usually finish in one
            // go. `None` means the size would overflow `usize`; fall back to
            // the cap and let the loop ask for more.
            let room = self
                .decoder
                .max_utf8_buffer_length(rest.len())
                .unwrap_or(MAX_RESERVE)
                .min(MAX_RESERVE);
            out.reserve(room);
            let (result, read, replaced) = self.decoder.decode_to_string(rest, out, last);
            replaced_any |= replaced;
            self.had_errors |= replaced;
            rest = rest.get(read..).unwrap_or_default();
            match result {
                CoderResult::InputEmpty => break,
                // Not enough room: the loop reserves more and continues
                // exactly where the decoder stopped.
                CoderResult::OutputFull => {}
            }
        }
        if last {
            // `encoding_rs` forbids reusing a decoder after the end of its
            // stream, so start afresh in case the caller keeps going.
            self.decoder = self.encoding.new_decoder_with_bom_removal();
        }
        replaced_any
    }

    /// Decodes one `read()` of a stream, appending to `out`; returns whether
    /// some of its bytes were invalid.
    ///
    /// Like [`Self::decode_into`] with `last = false`, a character cut off at
    /// the end waits for the next read, unless this read held invalid bytes.
    /// Then the stream is evidently not in this encoding (GBK read as UTF-8,
    /// say), and its unfinished tail is just as likely garbage: it is shown as
    /// U+FFFD now, with the rest of its read, instead of turning up in front
    /// of the next read, or on its own when the peer closes. So `c4 e3 ba c3`
    /// (GBK 你好) read as UTF-8 is one `���`, not `��` and later `�`.
    pub fn decode_read_into(&mut self, bytes: &[u8], out: &mut String) -> bool {
        let bad = self.decode_into(bytes, false, out);
        if bad {
            self.decode_into(&[], true, out);
            // The stream goes on: a byte order mark after this is data.
            self.decoder = self.encoding.new_decoder_without_bom_handling();
        }
        bad
    }

    /// Returns `true` if any invalid byte has been seen on this stream so far.
    ///
    /// Lots of errors usually mean the wrong encoding was chosen (e.g. GBK
    /// text decoded as UTF-8).
    pub fn had_errors(&self) -> bool {
        self.had_errors
    }

    /// Returns `true` exactly once: on the first call after invalid bytes have
    /// been seen. Every other call returns `false`.
    ///
    /// This lets the caller print a single hint per connection ("try another
    /// `--encoding`, or `--hex` to see the raw bytes") instead of one per
    /// packet.
    pub fn take_error_warning(&mut self) -> bool {
        if self.had_errors && !self.warned {
            self.warned = true;
            true
        } else {
            false
        }
    }

    /// The encoding this decoder reads.
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }
}

/// What to do with a character the target encoding cannot represent, such
/// as `😀` in GBK (GBK predates emoji).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmappable {
    /// Send `?` in its place and carry on (the replaced characters are
    /// listed in [`Encoded::substituted`] so the caller can warn).
    Substitute,
    /// Send nothing and return [`CodecError::Unmappable`] naming the
    /// character.
    Refuse,
}

/// The result of encoding one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The bytes to write to the socket.
    pub bytes: Vec<u8>,
    /// Characters that were replaced by `?`, in the order they appeared.
    pub substituted: Vec<char>,
}

/// Encoder from text to the bytes a peer expects.
///
/// Unlike decoding, encoding works on whole messages (a line the user typed),
/// so this type holds no per-stream state and can be shared freely.
#[derive(Debug, Clone, Copy)]
pub struct TextEncoder {
    /// The target encoding.
    encoding: &'static Encoding,
}

impl TextEncoder {
    /// Creates an encoder producing `enc`.
    pub fn new(enc: &'static Encoding) -> Self {
        Self { encoding: enc }
    }

    /// Encodes one whole message.
    ///
    /// * UTF-8: Rust strings already *are* UTF-8, so the bytes are copied
    ///   unchanged.
    /// * UTF-16LE / UTF-16BE: every character fits, two bytes per code unit,
    ///   no byte order mark.
    /// * Everything else (GBK, Big5, ...) goes through `encoding_rs`.
    ///   Characters the encoding lacks are handled according to `policy`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Unmappable`] with [`Unmappable::Refuse`] when `text`
    /// contains a character the encoding cannot represent.
    pub fn encode(&self, text: &str, policy: Unmappable) -> Result<Encoded, CodecError> {
        let enc = self.encoding;
        let bytes = if enc == UTF_16LE {
            text.encode_utf16().flat_map(u16::to_le_bytes).collect()
        } else if enc == UTF_16BE {
            text.encode_utf16().flat_map(u16::to_be_bytes).collect()
        } else if enc.output_encoding() == UTF_8 {
            // UTF-8 itself. (The WHATWG "replacement" encoding also reports
            // UTF-8 as its output encoding, so it lands here too.)
            text.as_bytes().to_vec()
        } else {
            return self.encode_legacy(text, policy);
        };
        // Every Unicode character exists in UTF-8 and UTF-16.
        Ok(Encoded {
            bytes,
            substituted: Vec::new(),
        })
    }

    /// The encoding this encoder produces.
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    /// Encodes into a legacy (non-Unicode) encoding such as GBK.
    ///
    /// `encoding_rs`'s convenient `Encoding::encode` would replace a missing
    /// character with an HTML reference like `&#128512;` - right for a web
    /// form, wrong for a socket. So we use the `_without_replacement` API,
    /// which *stops* at each unmappable character and lets us decide.
    fn encode_legacy(&self, text: &str, policy: Unmappable) -> Result<Encoded, CodecError> {
        let mut encoder = self.encoding.new_encoder();
        let mut bytes = Vec::new();
        let mut substituted = Vec::new();
        let mut rest = text;
        while let Some((ch, after)) = feed(&mut encoder, rest, &mut bytes, false) {
            match policy {
                Unmappable::Refuse => {
                    return Err(CodecError::Unmappable {
                        ch,
                        encoding: self.encoding.name(),
                    });
                }
                Unmappable::Substitute => {
                    substituted.push(ch);
                    // Encode the '?' *through the encoder* instead of pushing
                    // the byte 0x3f ourselves: stateful encodings such as
                    // ISO-2022-JP may first need an escape sequence to switch
                    // back to ASCII. '?' is ASCII, so it always maps.
                    let _ = feed(&mut encoder, "?", &mut bytes, false);
                    rest = after;
                }
            }
        }
        // End of message: lets stateful encoders return to their initial
        // state (ISO-2022-JP appends `ESC ( B`). Nothing is left to be
        // unmappable here, so the result can be ignored.
        let _ = feed(&mut encoder, "", &mut bytes, true);
        Ok(Encoded { bytes, substituted })
    }
}

/// Runs `encoder` over `src`, appending to `out`, until the input is used up
/// (`None`) or an unmappable character is met (`Some((char, rest))`, where
/// `rest` is the input after that character).
fn feed<'a>(
    encoder: &mut Encoder,
    mut src: &'a str,
    out: &mut Vec<u8>,
    last: bool,
) -> Option<(char, &'a str)> {
    loop {
        let room = encoder
            .max_buffer_length_from_utf8_without_replacement(src.len())
            .unwrap_or(MAX_RESERVE)
            .min(MAX_RESERVE);
        out.reserve(room);
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(src, out, last);
        let consumed = src.get(..read).unwrap_or_default();
        src = src.get(read..).unwrap_or_default();
        match result {
            EncoderResult::InputEmpty => return None,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(reported) => {
                // The unmappable character is the last one consumed. We take
                // it from the input because for a few characters (e.g. ESC in
                // ISO-2022-JP) the encoder reports U+FFFD instead of the real
                // character, which would make a confusing error message.
                let ch = consumed.chars().next_back().unwrap_or(reported);
                return Some((ch, src));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{BIG5, GB18030, GBK, ISO_2022_JP, SHIFT_JIS};
    use proptest::prelude::*;

    /// "你好" in GBK.
    const NIHAO_GBK: &[u8] = b"\xc4\xe3\xba\xc3";
    /// "你好" in UTF-8.
    const NIHAO_UTF8: &[u8] = b"\xe4\xbd\xa0\xe5\xa5\xbd";
    /// The greeting NetAssist sends in lesson 06, and its GBK bytes.
    const GREETING: &str = "你好服务端，我是客户端小黑!";
    const GREETING_GBK: &[u8] = b"\xc4\xe3\xba\xc3\xb7\xfe\xce\xf1\xb6\xcb\xa3\xac\xce\xd2\xca\xc7\
                                  \xbf\xcd\xbb\xa7\xb6\xcb\xd0\xa1\xba\xda!";

    fn encode(enc: &'static Encoding, text: &str) -> Vec<u8> {
        TextEncoder::new(enc)
            .encode(text, Unmappable::Refuse)
            .expect("encodable")
            .bytes
    }

    fn decode_all(enc: &'static Encoding, bytes: &[u8]) -> String {
        TextDecoder::new(enc).decode(bytes, true)
    }

    /// Decodes `bytes` fed in pieces cut at `cuts` (sorted offsets).
    fn decode_pieces(enc: &'static Encoding, bytes: &[u8], cuts: &[usize]) -> String {
        let mut dec = TextDecoder::new(enc);
        let mut out = String::new();
        let mut start = 0;
        for &cut in cuts {
            out.push_str(&dec.decode(&bytes[start..cut], false));
            start = cut;
        }
        out.push_str(&dec.decode(&bytes[start..], true));
        assert!(!dec.had_errors(), "cuts {cuts:?} produced errors");
        out
    }

    #[test]
    fn greeting_matches_netassist_bytes() {
        assert_eq!(encode(GBK, GREETING), GREETING_GBK);
        assert_eq!(decode_all(GBK, GREETING_GBK), GREETING);
        assert_eq!(encode(GBK, "你好"), NIHAO_GBK);
        assert_eq!(encode(UTF_8, "你好"), NIHAO_UTF8);
    }

    #[test]
    fn round_trips() {
        let cases: [(&'static Encoding, &str, &[u8]); 5] = [
            (GBK, "你好", NIHAO_GBK),
            (UTF_8, "你好", NIHAO_UTF8),
            (BIG5, "你好", b"\xa7\x41\xa6\x6e"),
            (
                SHIFT_JIS,
                "こんにちは",
                b"\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd",
            ),
            (GB18030, "😀", b"\x94\x39\xfc\x36"),
        ];
        for (enc, text, bytes) in cases {
            assert_eq!(encode(enc, text), bytes, "{}", enc.name());
            assert_eq!(decode_all(enc, bytes), text, "{}", enc.name());
        }
    }

    #[test]
    fn wrong_codec_gives_mojibake() {
        // The lesson's point: same bytes, different codec, different text.
        assert_eq!(decode_all(UTF_8, NIHAO_GBK), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(decode_all(GBK, NIHAO_UTF8), "浣犲ソ");
    }

    #[test]
    fn split_at_every_offset() {
        let text = "Hi 你好, server! 服务端OK\r\n";
        for enc in [GBK, UTF_8, GB18030] {
            let bytes = encode(enc, text);
            for cut in 0..=bytes.len() {
                assert_eq!(decode_pieces(enc, &bytes, &[cut]), text, "{}", enc.name());
            }
        }
        // GB18030 encodes characters outside the BMP in four bytes.
        let text = "a😀b😀";
        let bytes = encode(GB18030, text);
        assert_eq!(bytes, b"a\x94\x39\xfc\x36b\x94\x39\xfc\x36");
        for cut in 0..=bytes.len() {
            assert_eq!(decode_pieces(GB18030, &bytes, &[cut]), text);
        }
    }

    #[test]
    fn split_into_three_pieces() {
        let text = "你a好😀";
        for enc in [GBK, UTF_8, GB18030] {
            let text = if enc == GBK { "你a好" } else { text };
            let bytes = encode(enc, text);
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    assert_eq!(decode_pieces(enc, &bytes, &[i, j]), text);
                }
            }
        }
    }

    #[test]
    fn empty_chunks_are_harmless() {
        let mut dec = TextDecoder::new(GBK);
        assert_eq!(dec.decode(b"", false), "");
        assert_eq!(dec.decode(b"\xc4", false), "");
        assert_eq!(dec.decode(b"", false), "");
        assert_eq!(dec.decode(b"\xe3", false), "你");
        assert_eq!(dec.decode(b"", true), "");
        assert!(!dec.had_errors());
    }

    /// `dec` has met a malformed sequence, and has a warning for it once.
    fn assert_warns_once(dec: &mut TextDecoder) {
        assert!(dec.had_errors());
        assert!(dec.take_error_warning());
        assert!(!dec.take_error_warning());
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let mut dec = TextDecoder::new(UTF_8);
        assert!(!dec.take_error_warning());
        assert_eq!(dec.decode(b"ok", false), "ok");
        assert!(!dec.had_errors());
        assert_eq!(dec.decode(b"\xff\xfe", false), "\u{fffd}\u{fffd}");
        assert_warns_once(&mut dec);
        // More errors on the same connection: still no second warning.
        assert_eq!(dec.decode(b"\xff", true), "\u{fffd}");
        assert!(!dec.take_error_warning());
        assert!(dec.had_errors());
    }

    #[test]
    fn dangling_gbk_lead_byte_flushed_at_end() {
        let mut dec = TextDecoder::new(GBK);
        // 0x81 starts a two-byte GBK character; mid-stream we wait for more.
        assert_eq!(dec.decode(b"A\x81", false), "A");
        assert!(!dec.had_errors());
        // The stream ends before the second byte: the half character is lost,
        // and we say so with U+FFFD.
        assert_eq!(dec.decode(b"", true), "\u{fffd}");
        assert_warns_once(&mut dec);
        // Reusable for a new stream after `last`.
        assert_eq!(dec.decode(NIHAO_GBK, true), "你好");
    }

    #[test]
    fn bom_is_removed() {
        assert_eq!(decode_all(UTF_8, b"\xef\xbb\xbfhi"), "hi");
        assert_eq!(decode_all(UTF_16LE, b"\xff\xfe\x60\x4f"), "你");
        assert_eq!(decode_all(UTF_16BE, b"\x4f\x60"), "你");
    }

    #[test]
    fn emoji_in_gbk_substituted() {
        let enc = TextEncoder::new(GBK);
        let out = enc.encode("你好😀!", Unmappable::Substitute).unwrap();
        assert_eq!(out.bytes, b"\xc4\xe3\xba\xc3?!");
        assert_eq!(out.substituted, vec!['😀']);
        let out = enc.encode("😀a😃", Unmappable::Substitute).unwrap();
        assert_eq!(out.bytes, b"?a?");
        assert_eq!(out.substituted, vec!['😀', '😃']);
    }

    #[test]
    fn emoji_in_gbk_refused() {
        let err = TextEncoder::new(GBK)
            .encode("你好😀", Unmappable::Refuse)
            .unwrap_err();
        assert!(matches!(
            err,
            CodecError::Unmappable {
                ch: '😀',
                encoding: "GBK"
            }
        ));
        assert_eq!(err.to_string(), "cannot encode '😀' (U+1F600) in GBK");
    }

    #[test]
    fn stateful_encoder_substitution_stays_in_ascii() {
        // ISO-2022-JP switches modes with escape sequences; the '?' must be
        // sent in ASCII mode, and ESC itself is reported as the real char.
        let out = TextEncoder::new(ISO_2022_JP)
            .encode("日😀", Unmappable::Substitute)
            .unwrap();
        assert_eq!(out.bytes, b"\x1b$BF|\x1b(B?");
        assert_eq!(decode_all(ISO_2022_JP, &out.bytes), "日?");
        let err = TextEncoder::new(ISO_2022_JP)
            .encode("a\u{1b}", Unmappable::Refuse)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode '\\u{1b}' (U+001B) in ISO-2022-JP"
        );
    }

    #[test]
    fn never_html_references() {
        let text = "emoji 😀, hangul 한, thai ก, euro €, cjk 你";
        for label in [
            "gbk",
            "big5",
            "shift_jis",
            "euc-jp",
            "euc-kr",
            "iso-2022-jp",
            "windows-1252",
            "koi8-r",
        ] {
            let enc = parse_label(label).unwrap();
            let out = TextEncoder::new(enc)
                .encode(text, Unmappable::Substitute)
                .unwrap();
            assert!(!out.bytes.windows(2).any(|w| w == b"&#"), "{label}");
            assert!(!out.substituted.is_empty(), "{label}");
        }
    }

    #[test]
    fn utf16_encoding_by_hand() {
        let le = TextEncoder::new(parse_label("utf-16le").unwrap());
        assert_eq!(
            le.encode("你", Unmappable::Refuse).unwrap().bytes,
            [0x60, 0x4f]
        );
        let be = TextEncoder::new(UTF_16BE);
        assert_eq!(
            be.encode("你", Unmappable::Refuse).unwrap().bytes,
            [0x4f, 0x60]
        );
        // Surrogate pair for U+1F600.
        assert_eq!(
            le.encode("😀", Unmappable::Refuse).unwrap().bytes,
            [0x3d, 0xd8, 0x00, 0xde]
        );
        assert_eq!(decode_all(UTF_16LE, &[0x3d, 0xd8, 0x00, 0xde]), "😀");
    }

    #[test]
    fn utf8_passes_through() {
        let out = TextEncoder::new(UTF_8)
            .encode("你好😀", Unmappable::Refuse)
            .unwrap();
        assert_eq!(out.bytes, "你好😀".as_bytes());
        assert!(out.substituted.is_empty());
        assert!(is_utf8(UTF_8));
        assert!(!is_utf8(GBK));
        assert!(!is_utf8(UTF_16LE));
    }

    #[test]
    fn labels_parse() {
        for (label, expected) in [
            ("GBK", GBK),
            ("gbk", GBK),
            ("gb2312", GBK),
            ("GB2312", GBK),
            (" utf8 ", UTF_8),
            ("utf-8", UTF_8),
            ("gb18030", GB18030),
            ("big5", BIG5),
            ("shift_jis", SHIFT_JIS),
            ("sjis", SHIFT_JIS),
            ("utf-16le", UTF_16LE),
            ("utf-16be", UTF_16BE),
            ("latin1", encoding_rs::WINDOWS_1252),
            ("iso-8859-1", encoding_rs::WINDOWS_1252),
        ] {
            assert_eq!(parse_label(label).unwrap(), expected, "{label}");
        }
        assert_eq!(display_name(GBK), "GBK");
        assert_eq!(display_name(parse_label("utf8").unwrap()), "UTF-8");
        let dec = TextDecoder::new(GBK);
        assert_eq!(dec.encoding(), GBK);
        assert_eq!(TextEncoder::new(BIG5).encoding(), BIG5);
    }

    #[test]
    fn bad_labels_rejected() {
        for label in [
            "nope",
            "replacement",
            "iso-2022-kr",
            "hz-gb-2312",
            "",
            "utf-7",
        ] {
            let err = parse_label(label).unwrap_err();
            assert!(matches!(&err, CodecError::UnknownLabel { label: l } if l == label));
        }
        assert_eq!(
            parse_label("xyz").unwrap_err().to_string(),
            "unknown encoding \"xyz\"; try one of: utf-8, gbk (also cp936, 936), gb18030, \
             big5 (cp950), shift_jis (cp932), euc-kr (cp949), euc-jp, utf-16le, utf-16be, \
             windows-1252, iso-8859-1"
        );
    }

    #[test]
    fn windows_code_page_names_as_python_has_them() {
        for (label, expected) in [
            ("cp936", GBK),
            ("CP936", GBK),
            (" 936 ", GBK),
            ("ms936", GBK),
            ("cp950", BIG5),
            ("cp932", SHIFT_JIS),
            ("cp949", encoding_rs::EUC_KR),
            ("cp65001", UTF_8),
            ("cp1252", encoding_rs::WINDOWS_1252),
        ] {
            assert_eq!(parse_label(label).unwrap(), expected, "{label}");
        }
        assert!(parse_label("9360").is_err());
        assert_eq!(label(GBK), "gbk");
        assert_eq!(parse_label(&label(SHIFT_JIS)).unwrap(), SHIFT_JIS);
    }

    #[test]
    fn suggestion_names_an_encoding_that_decodes_and_never_the_one_in_use() {
        // GBK bytes at a UTF-8 server: GBK.
        let (enc, text) = suggest_encoding(UTF_8, NIHAO_GBK, true).unwrap();
        assert_eq!((enc, text.as_str()), (GBK, "你好"));
        // UTF-8 bytes at a GBK server (我爱你\n is not valid GBK): UTF-8.
        let mut utf8 = encode(UTF_8, "我爱你");
        utf8.push(b'\n');
        assert!(
            TextDecoder::new(GBK)
                .decode(&utf8, true)
                .contains('\u{fffd}')
        );
        let (enc, text) = suggest_encoding(GBK, &utf8, true).unwrap();
        assert_eq!((enc, text.as_str()), (UTF_8, "我爱你\n"));
        assert_eq!(suggest_encoding(GB18030, &utf8, true).unwrap().0, UTF_8);
        // A read cut inside a character still counts as decodable…
        assert_eq!(
            suggest_encoding(UTF_8, &NIHAO_GBK[..3], false).unwrap().0,
            GBK
        );
        // …but not bytes that are whole (a datagram, the end of a stream).
        assert_eq!(suggest_encoding(UTF_8, &NIHAO_GBK[..3], true), None);
        // A lone lead byte decodes to nothing anywhere: no suggestion, cut or not.
        for complete in [false, true] {
            assert_eq!(suggest_encoding(GBK, b"\xc4", complete), None);
            assert_eq!(suggest_encoding(GBK, b"", complete), None);
        }
        // Never the encoding in use, nor its GB18030 twin.
        for in_use in [UTF_8, GBK, GB18030, BIG5] {
            for bytes in [NIHAO_GBK, NIHAO_UTF8, &utf8[..], b"\xff\xfe\x80"] {
                if let Some((enc, _)) = suggest_encoding(in_use, bytes, false) {
                    assert_ne!(enc, in_use);
                    assert!(!(in_use == GB18030 && enc == GBK));
                }
            }
        }
        // Bytes that nothing likely decodes.
        assert_eq!(suggest_encoding(UTF_8, b"\xff\xff\xff", false), None);
    }

    #[test]
    fn pending_suffix_is_the_unfinished_character() {
        assert_eq!(pending_suffix(UTF_8, b"k\xe4\xbd"), b"\xe4\xbd");
        assert_eq!(pending_suffix(UTF_8, b"ok\xc4"), b"\xc4");
        assert_eq!(pending_suffix(GBK, b"ok\xc4"), b"\xc4");
        assert_eq!(pending_suffix(UTF_8, b"\xf0\x9f\x98"), b"\xf0\x9f\x98");
        assert_eq!(pending_suffix(UTF_8, b"ok"), b"");
        assert_eq!(pending_suffix(UTF_8, b""), b"");
    }

    #[test]
    fn a_read_with_invalid_bytes_does_not_keep_its_tail_for_the_next() {
        // GBK 你好 read as UTF-8: c4 and e3 ba are invalid; c3 could start a
        // character, but in a read that is not UTF-8 it is shown now.
        let mut dec = TextDecoder::new(UTF_8);
        let mut out = String::new();
        assert!(dec.decode_read_into(NIHAO_GBK, &mut out));
        assert_eq!(out, "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(dec.decode(b"", true), "");
        // A valid read cut inside a character keeps it for the next read.
        let mut dec = TextDecoder::new(UTF_8);
        let mut out = String::new();
        assert!(!dec.decode_read_into(&NIHAO_UTF8[..4], &mut out));
        assert_eq!(out, "你");
        assert!(!dec.decode_read_into(&NIHAO_UTF8[4..], &mut out));
        assert_eq!(out, "你好");
        // After a bad read the stream goes on, a BOM there being data.
        let mut dec = TextDecoder::new(UTF_8);
        let mut out = String::new();
        dec.decode_read_into(b"\xff", &mut out);
        dec.decode_read_into(b"\xef\xbb\xbfok", &mut out);
        assert_eq!(out, "\u{fffd}\u{feff}ok");
    }

    #[test]
    fn replacement_encoding_does_not_panic() {
        // Not reachable through `parse_label`, but the API accepts any
        // `&'static Encoding`, so make sure nothing breaks.
        let enc = encoding_rs::REPLACEMENT;
        let mut dec = TextDecoder::new(enc);
        let _ = dec.decode(b"abc", false);
        let _ = dec.decode(b"", true);
        let out = TextEncoder::new(enc)
            .encode("你", Unmappable::Refuse)
            .unwrap();
        assert_eq!(out.bytes, "你".as_bytes());
    }

    /// Sorted, de-duplicated cut points within `0..=len`.
    fn cuts_for(len: usize, raw: &[usize]) -> Vec<usize> {
        let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    /// Code points that do not survive a GB18030 round trip.
    ///
    /// GB18030-2022 gave 18 characters that used to live in the Private Use
    /// Area (U+E000..U+F8FF) their official code points. The encoder still
    /// accepts the old private-use code points, but the bytes decode to the
    /// new, official ones (e.g. U+E78D -> `a6 d9` -> U+FE10 '︐'). U+E5E5 has
    /// no GB18030 bytes at all (its old bytes `a3 a0` now mean U+3000).
    fn gb18030_lossy(c: char) -> bool {
        matches!(
            c,
            '\u{e5e5}' | '\u{e78d}'
                ..='\u{e796}'
                    | '\u{e81e}'
                    | '\u{e826}'
                    | '\u{e82b}'
                    | '\u{e82c}'
                    | '\u{e832}'
                    | '\u{e843}'
                    | '\u{e854}'
                    | '\u{e864}'
        )
    }

    #[test]
    fn gb18030_private_use_quirks() {
        assert_eq!(encode(GB18030, "\u{e78d}"), b"\xa6\xd9");
        assert_eq!(decode_all(GB18030, b"\xa6\xd9"), "\u{fe10}");
        let out = TextEncoder::new(GB18030)
            .encode("\u{e5e5}", Unmappable::Substitute)
            .unwrap();
        assert_eq!(out.bytes, b"?");
        assert_eq!(out.substituted, ['\u{e5e5}']);
    }

    proptest! {
        #[test]
        fn any_string_round_trips(text in any::<String>(), raw in prop::collection::vec(any::<usize>(), 0..6)) {
            for enc in [UTF_8, GB18030] {
                // GB18030 covers all of Unicode except the few quirks above.
                let text: String = if enc == GB18030 {
                    text.chars().filter(|&c| !gb18030_lossy(c)).collect()
                } else {
                    text.clone()
                };
                let encoded = TextEncoder::new(enc).encode(&text, Unmappable::Refuse);
                prop_assert!(encoded.is_ok(), "{}: {:?}", enc.name(), encoded);
                let bytes = encoded.map(|out| out.bytes).unwrap_or_default();
                let cuts = cuts_for(bytes.len(), &raw);
                prop_assert_eq!(decode_pieces(enc, &bytes, &cuts), text);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), raw in prop::collection::vec(any::<usize>(), 0..4)) {
            for label in ["utf-8", "gbk", "gb18030", "big5", "shift_jis", "utf-16le", "iso-2022-jp"] {
                let mut dec = TextDecoder::new(parse_label(label).unwrap());
                let cuts = cuts_for(bytes.len(), &raw);
                let mut start = 0;
                for &cut in &cuts {
                    let _ = dec.decode(&bytes[start..cut], false);
                    start = cut;
                }
                let _ = dec.decode(&bytes[start..], true);
            }
        }
    }
}
