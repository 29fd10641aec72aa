//! Hex input and output: parse NetAssist-style "hex send" strings into bytes,
//! and show received bytes the way `hexdump -C` does.
//!
//! When text looks like 乱码 (mojibake), the fastest way to find out why is to
//! look at the raw bytes: `c4 e3 ba c3` is GBK "你好", `e4 bd a0 e5 a5 bd` is
//! UTF-8 "你好". Hex mode also lets a learner send exact bytes (a `0d 0a` line
//! ending, a binary protocol header) that are awkward to type as text.

use crate::error::Blame;

/// Why a hex string could not be parsed.
///
/// Positions count *characters* (not bytes) from 1, the way a person counts
/// along the line they typed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HexError {
    /// A character that is neither a hex digit nor a separator.
    #[error("invalid hex digit {ch:?} at position {position}")]
    BadDigit {
        /// The offending character.
        ch: char,
        /// Its 1-based character position in the input.
        position: usize,
    },
    /// A group of digits with an odd length, so its last digit has no
    /// partner to form a byte with.
    #[error(
        "odd number of hex digits: lone digit at position {position} \
         (every byte needs two digits, write 0x0a as \"0a\")"
    )]
    OddDigits {
        /// 1-based character position of the digit without a partner.
        position: usize,
    },
}

/// Hex comes from the user (`--send-hex`).
impl Blame for HexError {
    fn is_usage(&self) -> bool {
        true
    }
}

/// Is `ch` one of the characters allowed between groups of hex digits?
///
/// `char::is_whitespace` also accepts the full-width space U+3000 that a
/// Chinese input method may produce.
fn is_separator(ch: char) -> bool {
    ch.is_whitespace() || matches!(ch, ':' | ',' | '-')
}

/// Parses hex text the way NetAssist's "hex send" box accepts it.
///
/// All of these give the bytes `48 65 6c`:
///
/// * `"48 65 6c"` - space separated (any whitespace works, also newlines);
/// * `"48656c"` - no separators: digits are taken in pairs;
/// * `"48:65:6C"`, `"48,65,6c"`, `"48-65-6c"` - other separators, any case;
/// * `"0x48 0x65 0x6c"` - a `0x`/`0X` prefix at the start of each group.
///
/// Text is split into *groups* at separators, and each group must have an
/// even number of digits. `"4 65"` is therefore an error rather than
/// `04 65`: guessing where the missing `0` belongs would silently send the
/// wrong bytes. Empty input (or only separators) gives no bytes.
///
/// # Errors
///
/// [`HexError::BadDigit`] for a character that is not a hex digit or
/// separator, [`HexError::OddDigits`] for a group with an odd number of
/// digits. The first problem from the left is reported.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let mut bytes = Vec::with_capacity(s.len() / 2);
    // Number characters from 1 for error messages.
    let mut chars = (1..).zip(s.chars()).peekable();
    // High nibble waiting for its partner, with its position.
    let mut pending: Option<(u8, usize)> = None;
    // True right after a separator (or at the start): only there may a group
    // begin with "0x".
    let mut group_start = true;
    // Position of the 'x' if the current group is just "0x" so far.
    let mut bare_prefix: Option<(char, usize)> = None;

    while let Some((position, ch)) = chars.next() {
        if is_separator(ch) {
            end_group(&mut pending, &mut bare_prefix)?;
            group_start = true;
            continue;
        }
        if group_start {
            group_start = false;
            if ch == '0'
                && let Some(&(x_pos, x @ ('x' | 'X'))) = chars.peek()
            {
                chars.next();
                bare_prefix = Some((x, x_pos));
                continue;
            }
        }
        let Some(digit) = ch.to_digit(16) else {
            return Err(HexError::BadDigit { ch, position });
        };
        bare_prefix = None;
        // `to_digit(16)` returns at most 15, so this always fits in a u8.
        let nibble = u8::try_from(digit).unwrap_or_default();
        match pending.take() {
            None => pending = Some((nibble, position)),
            Some((high, _)) => bytes.push(high << 4 | nibble),
        }
    }
    end_group(&mut pending, &mut bare_prefix)?;
    Ok(bytes)
}

/// Checks that the group that just ended was complete.
fn end_group(
    pending: &mut Option<(u8, usize)>,
    bare_prefix: &mut Option<(char, usize)>,
) -> Result<(), HexError> {
    if let Some((_, position)) = pending.take() {
        return Err(HexError::OddDigits { position });
    }
    // A "0x" with no digits after it: the 'x' is what makes no sense.
    if let Some((ch, position)) = bare_prefix.take() {
        return Err(HexError::BadDigit { ch, position });
    }
    Ok(())
}

/// Bytes shown per line, as in `hexdump -C`.
const BYTES_PER_LINE: usize = 16;

/// Streaming hex dump in the format of `hexdump -C`:
///
/// ```text
/// 00000000  48 65 6c 6c 6f 2c 20 c4  e3 ba c3 0d 0a           |Hello, ......|
/// ```
///
/// Each line shows the offset of its first byte (8 hex digits), up to 16
/// bytes in two groups of 8, and the same bytes as text between `|`s, where
/// anything that is not printable ASCII is shown as `.` (so GBK or UTF-8
/// Chinese shows up as dots - the hex column tells you which it is).
///
/// Use **one dumper per connection**: the offset keeps counting across
/// calls, so it always says how far into the stream a byte is. Each call
/// starts a new line, so every chunk is shown as soon as it arrives. Unlike
/// `hexdump -C`, repeated lines are not collapsed into `*` and no final
/// offset line is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexDumper {
    /// Stream offset of the next byte to be dumped.
    offset: u64,
}

impl Default for HexDumper {
    fn default() -> Self {
        Self::new()
    }
}

impl HexDumper {
    /// Creates a dumper starting at offset 0.
    pub fn new() -> Self {
        Self { offset: 0 }
    }

    /// Formats `bytes` as dump lines, each ending in `'\n'`. Empty input
    /// gives an empty string.
    pub fn dump(&mut self, bytes: &[u8]) -> String {
        // Each full line is 79 characters including the newline.
        let lines = bytes.len().div_ceil(BYTES_PER_LINE);
        let mut out = String::with_capacity(lines.saturating_mul(80));
        for chunk in bytes.chunks(BYTES_PER_LINE) {
            out.push_str(&format!("{:08x} ", self.offset));
            for i in 0..BYTES_PER_LINE {
                // One space before each group of 8: together with the space
                // after the offset this gives "00000000  48 ... c4  e3".
                if i % 8 == 0 {
                    out.push(' ');
                }
                match chunk.get(i) {
                    Some(&b) => {
                        push_hex_byte(&mut out, b);
                        out.push(' ');
                    }
                    // Pad short lines so the text column always lines up.
                    None => out.push_str("   "),
                }
            }
            out.push_str(" |");
            out.extend(chunk.iter().map(|&b| printable(b)));
            out.push_str("|\n");
            // `wrapping_add` so that even an absurdly long stream cannot
            // overflow-panic; 2^64 bytes will not be reached in practice.
            self.offset = self.offset.wrapping_add(chunk.len() as u64);
        }
        out
    }

    /// Stream offset of the next byte, i.e. the number of bytes dumped so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// One-shot dump of a complete buffer starting at offset 0
/// (same as `HexDumper::new().dump(bytes)`).
pub fn dump(bytes: &[u8]) -> String {
    HexDumper::new().dump(bytes)
}

/// Appends `b` as two lowercase hex digits.
fn push_hex_byte(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(DIGITS[usize::from(b >> 4)]));
    out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
}

/// The text column shows printable ASCII (space to `~`) as itself and every
/// other byte as `.`, exactly like `hexdump -C`. Bytes >= 0x80 are *not*
/// decoded: on their own they are only parts of a character.
fn printable(b: u8) -> char {
    if (0x20..=0x7e).contains(&b) {
        char::from(b)
    } else {
        '.'
    }
}

/// Bytes the way Python prints them (`b'\xc4\xe3!'`): printable ASCII as itself,
/// everything else as `\xNN` — what the notes show for `print(recv_data)`.
pub fn py_repr(bytes: &[u8]) -> String {
    // Python picks double quotes only when that avoids escaping a single quote.
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() * 2 + 3);
    out.push('b');
    out.push(char::from(quote));
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(char::from(quote));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_bytes_repr() {
        assert_eq!(
            py_repr(b"\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7"),
            r"b'\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7'"
        );
        assert_eq!(py_repr(b"a'b\\\r\n\t"), r#"b"a'b\\\r\n\t""#);
        assert_eq!(py_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(py_repr(b""), "b''");
    }

    // Expected dump lines below are what util-linux `hexdump -C` prints for
    // the same bytes, minus its final offset line.

    #[test]
    fn parses_netassist_formats() {
        let expected = b"Hel\r\n".to_vec();
        for input in [
            "48 65 6c 0d 0a",
            "48656c0d0a",
            "48:65:6C:0D:0A",
            "0x48 0x65 0x6c 0x0d 0x0a",
            "0X48,0X65,0X6C,0X0D,0X0A",
            "48,65,6c,0d,0a",
            "48-65-6c-0d-0a",
            "  48\t65\n6c\r\n0d   0a  ",
            "4865 6c0d0a",
            "0x48656c 0d0a",
            "48\u{3000}65 6c 0d 0a",
            "48, 65,, 6c ,0d:0a",
        ] {
            assert_eq!(parse_hex(input), Ok(expected.clone()), "{input:?}");
        }
        assert_eq!(parse_hex("c4 e3 ba c3"), Ok(b"\xc4\xe3\xba\xc3".to_vec()));
        assert_eq!(parse_hex("00 ff FF"), Ok(vec![0x00, 0xff, 0xff]));
        assert_eq!(parse_hex("0x00"), Ok(vec![0]));
        assert_eq!(parse_hex("00"), Ok(vec![0]));
        assert_eq!(
            parse_hex("000x"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 4
            })
        );
    }

    #[test]
    fn empty_input_is_empty() {
        assert_eq!(parse_hex(""), Ok(vec![]));
        assert_eq!(parse_hex("  \n, : -"), Ok(vec![]));
    }

    #[test]
    fn bad_digit_position() {
        let err = parse_hex("48 6g").unwrap_err();
        assert_eq!(
            err,
            HexError::BadDigit {
                ch: 'g',
                position: 5
            }
        );
        assert_eq!(err.to_string(), "invalid hex digit 'g' at position 5");
        assert_eq!(
            parse_hex("abcg").unwrap_err().to_string(),
            "invalid hex digit 'g' at position 4"
        );
        // Positions count characters, not UTF-8 bytes.
        assert_eq!(
            parse_hex("你 48"),
            Err(HexError::BadDigit {
                ch: '你',
                position: 1
            })
        );
        assert_eq!(
            parse_hex("48 ０"),
            Err(HexError::BadDigit {
                ch: '０',
                position: 4
            })
        );
        // A prefix with no digits after it.
        assert_eq!(
            parse_hex("0x"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 2
            })
        );
        assert_eq!(
            parse_hex("41 0x 42"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 5
            })
        );
        // "0x" only counts as a prefix at the start of a group.
        assert_eq!(
            parse_hex("480x65"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 4
            })
        );
        assert_eq!(
            parse_hex("0x0x"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 4
            })
        );
        assert_eq!(
            parse_hex("x1"),
            Err(HexError::BadDigit {
                ch: 'x',
                position: 1
            })
        );
    }

    #[test]
    fn odd_digit_groups_rejected() {
        assert_eq!(parse_hex("4 65"), Err(HexError::OddDigits { position: 1 }));
        assert_eq!(parse_hex("abc"), Err(HexError::OddDigits { position: 3 }));
        assert_eq!(
            parse_hex("48 656"),
            Err(HexError::OddDigits { position: 6 })
        );
        assert_eq!(parse_hex("0x4"), Err(HexError::OddDigits { position: 3 }));
        assert_eq!(
            parse_hex("abc").unwrap_err().to_string(),
            "odd number of hex digits: lone digit at position 3 \
             (every byte needs two digits, write 0x0a as \"0a\")"
        );
        // The first problem from the left wins.
        assert_eq!(parse_hex("4 6g"), Err(HexError::OddDigits { position: 1 }));
    }

    #[test]
    fn dump_matches_hexdump_c() {
        assert_eq!(
            dump(b"Hello, \xc4\xe3\xba\xc3\r\n"),
            "00000000  48 65 6c 6c 6f 2c 20 c4  e3 ba c3 0d 0a           |Hello, ......|\n"
        );
        assert_eq!(
            dump(b"Hello, \xc4\xe3\xba\xc3\r\nABCDEFGHIJ\x00\x7f~ \x80xyz\x1f"),
            "00000000  48 65 6c 6c 6f 2c 20 c4  e3 ba c3 0d 0a 41 42 43  |Hello, ......ABC|\n\
             00000010  44 45 46 47 48 49 4a 00  7f 7e 20 80 78 79 7a 1f  |DEFGHIJ..~ .xyz.|\n"
        );
    }

    #[test]
    fn dump_short_lines_pad_like_hexdump_c() {
        assert_eq!(
            dump(b"A"),
            "00000000  41                                                |A|\n"
        );
        assert_eq!(
            dump(b"ABCDEFGH"),
            "00000000  41 42 43 44 45 46 47 48                           |ABCDEFGH|\n"
        );
        assert_eq!(
            dump(b"ABCDEFGHI"),
            "00000000  41 42 43 44 45 46 47 48  49                       |ABCDEFGHI|\n"
        );
        assert_eq!(
            dump(b"0123456789abcdef0"),
            "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n\
             00000010  30                                                |0|\n"
        );
    }

    #[test]
    fn dump_empty_is_empty() {
        assert_eq!(dump(b""), "");
        let mut d = HexDumper::default();
        assert_eq!(d.dump(b""), "");
        assert_eq!(d.offset(), 0);
    }

    #[test]
    fn offsets_continue_across_calls() {
        let mut d = HexDumper::new();
        assert_eq!(
            d.dump(b"Hello, \xc4\xe3\xba\xc3\r\n"),
            "00000000  48 65 6c 6c 6f 2c 20 c4  e3 ba c3 0d 0a           |Hello, ......|\n"
        );
        assert_eq!(d.offset(), 13);
        // The next chunk starts a fresh line at stream offset 0x0d.
        assert_eq!(
            d.dump(b"\xc4\xe3\xba\xc3"),
            "0000000d  c4 e3 ba c3                                       |....|\n"
        );
        assert_eq!(d.offset(), 17);
        assert_eq!(d.dump(&[0x20; 20]).lines().count(), 2);
        assert_eq!(d.offset(), 37);
    }

    #[test]
    fn dump_then_parse_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = dump(&bytes);
        assert_eq!(text.lines().count(), 16);
        // Every line has the same width, so the text column lines up.
        assert!(text.lines().all(|line| line.len() == 78));
        // The hex columns of a dump are valid `parse_hex` input.
        let hex: String = text.lines().map(|line| &line[10..58]).collect();
        assert_eq!(parse_hex(&hex), Ok(bytes));
    }
}
