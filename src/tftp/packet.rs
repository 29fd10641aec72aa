//! TFTP packets on the wire (RFC 1350, options from RFC 2347/2348/2349/7440): parse any bytes without panicking, encode exactly.
//!
//! Every TFTP packet starts with a 2-byte big-endian *opcode*, the
//! `struct.pack('!H', ...)` of the course's Python code:
//!
//! ```text
//!  RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ...
//!  DATA     | 03    | block (2 bytes) | 0..blksize bytes of data
//!  ACK      | 04    | block (2 bytes)
//!  ERROR    | 05    | error code (2 bytes) | message | 0
//!  OACK     | 06    | opt1 | 0 | value1 | 0 | ...
//! ```
//!
//! A request for `a.txt` is therefore `00 01 'a.txt' 00 'octet' 00`, exactly
//! the bytes of `struct.pack('!H5sb5sb', 1, b'a.txt', 0, b'octet', 0)`.
//!
//! Parsing follows async-tftp's style: tiny helpers that return the value and
//! the rest of the slice (`Option<(T, &[u8])>`) and never index out of
//! bounds, so no input, however hostile, can make [`Packet::parse`] panic.
//! A parsed packet *borrows* the datagram (no copy of the data block).

use std::borrow::Cow;
use std::fmt;

/// Largest block size a peer may ask for (RFC 2348): 65535 minus the IP and UDP headers.
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The block size without options (RFC 1350), and the reason the notes read `recvfrom(1024)` and test `len < 516`.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Opcode and block number in front of every DATA block.
pub const DATA_HEADER: usize = 4;
/// The largest `utimeout` (microseconds) we accept: 255 s, the `timeout` option's ceiling.
pub const MAX_UTIMEOUT: u64 = 255_000_000;

/// The 2-byte operation code at the start of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Opcode {
    /// Read request: download.
    Rrq = 1,
    /// Write request: upload.
    Wrq = 2,
    /// A block of file data.
    Data = 3,
    /// Acknowledgement of a block.
    Ack = 4,
    /// An error; ends the transfer.
    Error = 5,
    /// Option acknowledgement (RFC 2347).
    Oack = 6,
}

/// Transfer mode named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they are ("binary").
    Octet,
    /// Text with `\r\n` line ends on the wire, converted to local `\n` (see [`super::netascii`]).
    Netascii,
    /// Obsolete mail delivery mode of RFC 1350; recognised only so it can be refused with ERROR 4.
    Mail,
}

impl Mode {
    /// The mode's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
            Mode::Mail => "mail",
        }
    }

    /// Mode names are case-insensitive (`OCTET`, `Octet` and `octet` are the same).
    fn from_bytes(b: &[u8]) -> Option<Mode> {
        [Mode::Octet, Mode::Netascii, Mode::Mail]
            .into_iter()
            .find(|m| b.eq_ignore_ascii_case(m.as_str().as_bytes()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TFTP error codes (RFC 1350 codes 0–7, RFC 2347 code 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID (a packet from the wrong port).
    UnknownTransferId,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused,
    /// A code outside 0–8, kept as received.
    Other(u16),
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number; every number maps to something.
    pub fn from_code(n: u16) -> ErrorCode {
        match n {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            n => ErrorCode::Other(n),
        }
    }

    /// RFC wording, for messages such as `server error 1 (file not found): ...`.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::NotDefined => "not defined",
            ErrorCode::FileNotFound => "file not found",
            ErrorCode::AccessViolation => "access violation",
            ErrorCode::DiskFull => "disk full or allocation exceeded",
            ErrorCode::IllegalOperation => "illegal TFTP operation",
            ErrorCode::UnknownTransferId => "unknown transfer ID",
            ErrorCode::FileExists => "file already exists",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::OptionRefused => "option negotiation refused",
            ErrorCode::Other(_) => "unknown error code",
        }
    }
}

/// One `name`/`value` pair of a request or OACK, as bytes.
///
/// Kept raw in a parsed packet so that a bad value can be answered with
/// ERROR 8 *by the negotiation*, not lost as a parse failure; see [`Options`].
pub type RawOption<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// File name, as bytes (it need not be UTF-8: a Windows client may send GBK).
    pub filename: Cow<'a, [u8]>,
    /// Transfer mode.
    pub mode: Mode,
    /// Options in the order received (RFC 2347).
    pub options: Vec<RawOption<'a>>,
}

/// A TFTP packet. Parsed packets borrow the datagram they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request (download).
    Rrq(Request<'a>),
    /// Write request (upload).
    Wrq(Request<'a>),
    /// A data block. Block numbers start at 1 and wrap from 65535 to 0.
    Data {
        /// Block number.
        block: u16,
        /// The bytes; fewer than the block size means this is the last block.
        data: &'a [u8],
    },
    /// Acknowledges `block` (0 acknowledges a WRQ or an OACK).
    Ack {
        /// Block number acknowledged.
        block: u16,
    },
    /// Ends the transfer with an error.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable text (lossily decoded if not UTF-8).
        message: Cow<'a, str>,
    },
    /// Options the server accepted (RFC 2347).
    Oack(Vec<RawOption<'a>>),
}

/// Why bytes are not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Fewer bytes than the packet's fixed part.
    #[error("packet too short ({0} bytes)")]
    TooShort(usize),
    /// The first two bytes are not an opcode 1–6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field is not terminated by a zero byte.
    #[error("{0} is not terminated by a zero byte")]
    Unterminated(&'static str),
    /// The request names a mode other than octet, netascii or mail.
    #[error("unknown transfer mode {0:?}")]
    UnknownMode(String),
}

/// A packet from the network.
impl crate::error::Blame for PacketError {
    fn is_usage(&self) -> bool {
        false
    }
}

/// Splits off a big-endian u16.
fn take_u16(b: &[u8]) -> Option<(u16, &[u8])> {
    match b {
        [hi, lo, rest @ ..] => Some((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => None,
    }
}

/// Splits off a zero-terminated string (without its zero).
fn take_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

/// Reads `name\0value\0` pairs until the bytes run out.
///
/// Lenient where real clients are sloppy: some pad requests with extra zero
/// bytes, or end with a name that has no value; both are ignored, as
/// tftp-hpa does. An unterminated string at the end is ignored too.
fn take_options(mut b: &[u8]) -> Vec<RawOption<'_>> {
    let mut options = Vec::new();
    while let Some((name, rest)) = take_cstr(b) {
        if name.is_empty() {
            break;
        }
        let Some((value, rest)) = take_cstr(rest) else {
            break;
        };
        options.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        b = rest;
    }
    options
}

impl<'a> Packet<'a> {
    /// Parses one datagram. Never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let (opcode, rest) = take_u16(bytes).ok_or(PacketError::TooShort(bytes.len()))?;
        match opcode {
            1 | 2 => {
                let (filename, rest) =
                    take_cstr(rest).ok_or(PacketError::Unterminated("file name"))?;
                let (mode, rest) = take_cstr(rest).ok_or(PacketError::Unterminated("mode"))?;
                let mode = Mode::from_bytes(mode).ok_or_else(|| {
                    PacketError::UnknownMode(String::from_utf8_lossy(mode).into_owned())
                })?;
                let request = Request {
                    filename: Cow::Borrowed(filename),
                    mode,
                    options: take_options(rest),
                };
                Ok(if opcode == 1 {
                    Packet::Rrq(request)
                } else {
                    Packet::Wrq(request)
                })
            }
            3 => {
                let (block, data) = take_u16(rest).ok_or(PacketError::TooShort(bytes.len()))?;
                Ok(Packet::Data { block, data })
            }
            // Extra bytes after an ACK's block number are ignored: some embedded
            // clients pad short datagrams.
            4 => {
                let (block, _) = take_u16(rest).ok_or(PacketError::TooShort(bytes.len()))?;
                Ok(Packet::Ack { block })
            }
            // A message without its final zero is accepted: the text is still
            // worth showing, and the course's Python server's ERROR is well formed anyway.
            5 => {
                let (code, rest) = take_u16(rest).ok_or(PacketError::TooShort(bytes.len()))?;
                let text = take_cstr(rest).map_or(rest, |(text, _)| text);
                Ok(Packet::Error {
                    code: ErrorCode::from_code(code),
                    message: String::from_utf8_lossy(text),
                })
            }
            6 => Ok(Packet::Oack(take_options(rest))),
            n => Err(PacketError::UnknownOpcode(n)),
        }
    }

    /// The packet's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Packet::Rrq(_) => Opcode::Rrq,
            Packet::Wrq(_) => Opcode::Wrq,
            Packet::Data { .. } => Opcode::Data,
            Packet::Ack { .. } => Opcode::Ack,
            Packet::Error { .. } => Opcode::Error,
            Packet::Oack(_) => Opcode::Oack,
        }
    }

    /// Appends the packet's bytes to `out` (so a sender can reuse one buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.opcode() as u16).to_be_bytes());
        let put_options = |out: &mut Vec<u8>, options: &[RawOption<'_>]| {
            for (name, value) in options {
                out.extend_from_slice(name);
                out.push(0);
                out.extend_from_slice(value);
                out.push(0);
            }
        };
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                out.extend_from_slice(&r.filename);
                out.push(0);
                out.extend_from_slice(r.mode.as_str().as_bytes());
                out.push(0);
                put_options(out, &r.options);
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => out.extend_from_slice(&block.to_be_bytes()),
            Packet::Error { code, message } => {
                out.extend_from_slice(&code.code().to_be_bytes());
                // A zero inside the text would end it early on the other side.
                out.extend(message.bytes().filter(|&b| b != 0));
                out.push(0);
            }
            Packet::Oack(options) => put_options(out, options),
        }
    }

    /// The packet's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// An ERROR packet's bytes.
    pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
        Packet::Error {
            code,
            message: Cow::Borrowed(message),
        }
        .encode()
    }

    /// An ACK's bytes.
    pub fn ack(block: u16) -> [u8; 4] {
        let [a, b] = block.to_be_bytes();
        [0, Opcode::Ack as u8, a, b]
    }
}

/// The options TFTP peers negotiate, typed.
///
/// `None` means "not requested" (in a request) or "not accepted" (in an OACK).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Block size in bytes (RFC 2348), 8–65464.
    pub blksize: Option<u16>,
    /// Retransmission timeout in seconds (RFC 2349), 1–255.
    pub timeout: Option<u8>,
    /// Retransmission timeout in microseconds (tftp-hpa's extension): a peer
    /// that accepts it can live with sub-second timers, so ours adapts to the
    /// measured round-trip time.
    pub utimeout: Option<u64>,
    /// Transfer size in bytes (RFC 2349): 0 in a read request asks the server for the size.
    pub tsize: Option<u64>,
    /// Blocks sent before waiting for an ACK (RFC 7440), 1–65535.
    pub windowsize: Option<u16>,
}

/// An option value that is not valid; answered with ERROR 8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for option {name}")]
pub struct OptionError {
    /// Option name, lower case.
    pub name: &'static str,
    /// The value as received.
    pub value: String,
}

impl Options {
    /// Reads known options from raw pairs; names are case-insensitive and
    /// unknown names are ignored (RFC 2347). A `blksize` above 65464 is
    /// lowered to 65464 (the RFC's limit, what every server does); any other
    /// out-of-range or non-numeric value is an error.
    pub fn from_raw(raw: &[RawOption<'_>]) -> Result<Options, OptionError> {
        let mut o = Options::default();
        for (name, value) in raw {
            let Some(known) = ["blksize", "timeout", "utimeout", "tsize", "windowsize"]
                .into_iter()
                .find(|k| name.eq_ignore_ascii_case(k.as_bytes()))
            else {
                continue;
            };
            let bad = || OptionError {
                name: known,
                value: String::from_utf8_lossy(value).into_owned(),
            };
            let n = parse_decimal(value).ok_or_else(bad)?;
            match known {
                "blksize" if n >= u64::from(MIN_BLKSIZE) => {
                    o.blksize = Some(n.min(u64::from(MAX_BLKSIZE)) as u16)
                }
                "timeout" if (1..=255).contains(&n) => o.timeout = Some(n as u8),
                "utimeout" if (1..=MAX_UTIMEOUT).contains(&n) => o.utimeout = Some(n),
                "tsize" => o.tsize = Some(n),
                "windowsize" if (1..=65535).contains(&n) => o.windowsize = Some(n as u16),
                _ => return Err(bad()),
            }
        }
        Ok(o)
    }

    /// The options as raw pairs, in a fixed order.
    pub fn to_raw(&self) -> Vec<RawOption<'static>> {
        let pairs = [
            ("blksize", self.blksize.map(u64::from)),
            ("timeout", self.timeout.map(u64::from)),
            ("utimeout", self.utimeout),
            ("tsize", self.tsize),
            ("windowsize", self.windowsize.map(u64::from)),
        ];
        pairs
            .into_iter()
            .filter_map(|(name, v)| {
                v.map(|v| {
                    (
                        Cow::Borrowed(name.as_bytes()),
                        Cow::Owned(v.to_string().into_bytes()),
                    )
                })
            })
            .collect()
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }
}

impl fmt::Display for Options {
    /// `blksize=1468 windowsize=16 tsize=1048576`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.to_raw();
        if raw.is_empty() {
            return f.write_str("none");
        }
        for (i, (name, value)) in raw.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(
                f,
                "{sep}{}={}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            )?;
        }
        Ok(())
    }
}

/// ASCII digits only (no sign, no spaces), without overflow.
fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        let d = c.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(pairs: &[(&'static str, &'static str)]) -> Vec<RawOption<'static>> {
        pairs
            .iter()
            .map(|(n, v)| (Cow::Borrowed(n.as_bytes()), Cow::Borrowed(v.as_bytes())))
            .collect()
    }

    #[test]
    fn rrq_is_the_notes_struct_pack() {
        // struct.pack('!H%dsb5sb' % 5, 1, b'a.txt', 0, b'octet', 0)
        let bytes = b"\x00\x01a.txt\x00octet\x00";
        let p = Packet::parse(bytes).unwrap();
        assert_eq!(
            p,
            Packet::Rrq(Request {
                filename: Cow::Borrowed(b"a.txt"),
                mode: Mode::Octet,
                options: vec![]
            })
        );
        assert_eq!(p.encode(), bytes);
    }

    #[test]
    fn wrq_with_options_and_any_case() {
        let bytes = b"\x00\x02f\x00NetASCII\x00BLKSIZE\x001468\x00tsize\x000\x00";
        let Packet::Wrq(r) = Packet::parse(bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.mode, Mode::Netascii);
        assert_eq!(r.options, raw(&[("BLKSIZE", "1468"), ("tsize", "0")]));
        let o = Options::from_raw(&r.options).unwrap();
        assert_eq!(
            o,
            Options {
                blksize: Some(1468),
                tsize: Some(0),
                ..Options::default()
            }
        );
    }

    #[test]
    fn data_ack_error_oack_bytes() {
        assert_eq!(
            Packet::parse(b"\x00\x03\x00\x01hi").unwrap(),
            Packet::Data {
                block: 1,
                data: b"hi"
            }
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\xff\xff").unwrap(),
            Packet::Data {
                block: 65535,
                data: b""
            }
        );
        assert_eq!(
            Packet::parse(b"\x00\x04\x01\x02").unwrap(),
            Packet::Ack { block: 258 }
        );
        assert_eq!(Packet::ack(258), *b"\x00\x04\x01\x02");
        // The notes' server: struct.pack('!HH5sb', 5, 5, b'error', 0)
        let e = Packet::parse(b"\x00\x05\x00\x05error\x00").unwrap();
        assert_eq!(
            e,
            Packet::Error {
                code: ErrorCode::UnknownTransferId,
                message: "error".into()
            }
        );
        assert_eq!(
            Packet::error(ErrorCode::FileNotFound, "no"),
            b"\x00\x05\x00\x01no\x00"
        );
        let oack = Packet::Oack(raw(&[("blksize", "1024")]));
        assert_eq!(oack.encode(), b"\x00\x06blksize\x001024\x00");
        assert_eq!(Packet::parse(b"\x00\x06blksize\x001024\x00").unwrap(), oack);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(Packet::parse(b""), Err(PacketError::TooShort(0)));
        assert_eq!(Packet::parse(b"\x00"), Err(PacketError::TooShort(1)));
        assert_eq!(
            Packet::parse(b"\x00\x07"),
            Err(PacketError::UnknownOpcode(7))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file"),
            Err(PacketError::Unterminated("file name"))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00octet"),
            Err(PacketError::Unterminated("mode"))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00binary\x00"),
            Err(PacketError::UnknownMode("binary".into()))
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\x00"),
            Err(PacketError::TooShort(3))
        );
        assert_eq!(
            Packet::parse(b"\x00\x04\x00"),
            Err(PacketError::TooShort(3))
        );
    }

    #[test]
    fn lenient_where_clients_are_sloppy() {
        // Padding zeros and a dangling option name are ignored.
        let Packet::Rrq(r) =
            Packet::parse(b"\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00\x00").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.options, raw(&[("tsize", "0")]));
        let Packet::Rrq(r) = Packet::parse(b"\x00\x01f\x00octet\x00blksize\x00").unwrap() else {
            panic!()
        };
        assert!(r.options.is_empty());
        assert_eq!(
            Packet::parse(b"\x00\x04\x00\x09\x00\x00").unwrap(),
            Packet::Ack { block: 9 }
        );
        let e = Packet::parse(b"\x00\x05\x00\x63no zero").unwrap();
        assert_eq!(
            e,
            Packet::Error {
                code: ErrorCode::Other(99),
                message: "no zero".into()
            }
        );
    }

    #[test]
    fn mail_mode_is_recognised_so_it_can_be_refused() {
        let Packet::Rrq(r) = Packet::parse(b"\x00\x01f\x00MAIL\x00").unwrap() else {
            panic!()
        };
        assert_eq!(r.mode, Mode::Mail);
    }

    #[test]
    fn option_values() {
        let o = Options::from_raw(&raw(&[
            ("blksize", "100000"),
            ("windowsize", "64"),
            ("x-unknown", "zz"),
        ]));
        assert_eq!(
            o.unwrap(),
            Options {
                blksize: Some(MAX_BLKSIZE),
                windowsize: Some(64),
                ..Options::default()
            }
        );
        for (name, value) in [
            ("blksize", "7"),
            ("blksize", "12a"),
            ("blksize", ""),
            ("blksize", "-1"),
            ("timeout", "0"),
            ("timeout", "256"),
            ("windowsize", "0"),
            ("windowsize", "65536"),
            ("utimeout", "0"),
            ("tsize", "99999999999999999999999"),
        ] {
            let err = Options::from_raw(&raw(&[(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{name}={value}");
        }
        let all = Options {
            blksize: Some(1468),
            timeout: Some(3),
            utimeout: Some(5000),
            tsize: Some(7),
            windowsize: Some(16),
        };
        assert_eq!(Options::from_raw(&all.to_raw()).unwrap(), all);
        assert_eq!(
            all.to_string(),
            "blksize=1468 timeout=3 utimeout=5000 tsize=7 windowsize=16"
        );
        assert_eq!(Options::default().to_string(), "none");
    }

    #[test]
    fn error_codes_round_trip() {
        for n in 0..=20u16 {
            assert_eq!(ErrorCode::from_code(n).code(), n);
        }
    }

    fn cstring() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 1..20)
    }

    fn arb_options() -> impl Strategy<Value = Vec<RawOption<'static>>> {
        proptest::collection::vec(
            (cstring(), proptest::collection::vec(1u8..=255, 0..10)),
            0..5,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v)))
                .collect()
        })
    }

    fn arb_packet() -> impl Strategy<Value = Packet<'static>> {
        let data: &'static [u8] = &[7u8; 600];
        let mode = prop_oneof![Just(Mode::Octet), Just(Mode::Netascii), Just(Mode::Mail)];
        prop_oneof![
            (cstring(), mode.clone(), arb_options()).prop_map(|(f, mode, options)| Packet::Rrq(
                Request {
                    filename: Cow::Owned(f),
                    mode,
                    options
                }
            )),
            (cstring(), mode, arb_options()).prop_map(|(f, mode, options)| Packet::Wrq(Request {
                filename: Cow::Owned(f),
                mode,
                options
            })),
            (any::<u16>(), 0..600usize).prop_map(move |(block, n)| Packet::Data {
                block,
                data: &data[..n]
            }),
            any::<u16>().prop_map(|block| Packet::Ack { block }),
            (any::<u16>(), "[^\u{0}]{0,30}").prop_map(|(c, m)| Packet::Error {
                code: ErrorCode::from_code(c),
                message: Cow::Owned(m)
            }),
            arb_options().prop_map(Packet::Oack),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(p in arb_packet()) {
            let bytes = p.encode();
            prop_assert_eq!(Packet::parse(&bytes).unwrap(), p);
        }

        #[test]
        fn parse_never_panics_and_reencodes_consistently(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::parse(&bytes) {
                let again = p.encode();
                prop_assert_eq!(Packet::parse(&again).unwrap(), p);
            }
        }

        #[test]
        fn option_parsing_never_panics(name in "[a-zA-Z]{0,12}", value in proptest::collection::vec(any::<u8>(), 0..25)) {
            let _ = Options::from_raw(&[(Cow::Owned(name.into_bytes()), Cow::Owned(value))]);
        }
    }
}
