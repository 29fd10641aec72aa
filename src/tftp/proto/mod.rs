//! The TFTP protocol as pure state machines (sans-IO): datagrams and the current time in, datagrams to send, the next deadline and events out.
//!
//! Nothing here touches a socket, a file, a thread or the clock, so every
//! rule can be tested in virtual time with any loss, duplication or
//! reordering a network can produce (see `tests/tftp_sim.rs`). The drivers
//! in [`super::engine`], [`super::client`] and [`super::server`] own the
//! sockets and files and run these machines in a loop, the way quinn-proto
//! and smoltcp are driven:
//!
//! ```text
//! loop {
//!     fill the sender's free window slots from the file        (Sender::buffer / filled)
//!     send every datagram the machine queued                   (poll_transmit)
//!     write what the receiver delivered                        (handle's return, poll_stashed)
//!     wait for a datagram until poll_timeout():
//!         got one  -> handle(now, from, bytes), write the data it returns
//!         deadline -> handle_timeout(now)
//!     then write what poll_stashed() hands out, in order
//! }
//! ```
//!
//! | module | machine |
//! |---|---|
//! | [`sender`] | the side that sends DATA: windows earned by ACKs, one resend per loss, never DATA for a duplicate ACK |
//! | [`receiver`] | the side that ACKs: keeps blocks that arrive early, ACKs a gap once, lingers after the final ACK |
//! | [`negotiate`] | the client's request (options, with a plain request on a second transfer ID for servers that ignore options) and the server's answer to one |

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::packet::{DEFAULT_BLKSIZE, ErrorCode, Options, Packet};
use super::timer::RetransmitTimer;

pub mod negotiate;
pub mod receiver;
pub mod sender;

pub use negotiate::{Client, Outcome as ClientOutcome};
pub use receiver::Receiver;
pub use sender::Sender;

/// A datagram the machine wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: &'a [u8],
}

/// Something worth telling a user who watches the protocol (`--trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The deadline passed without an answer; `resend` names what goes out again.
    Timeout {
        /// How long the machine waited.
        waited: Duration,
        /// What it sends again, e.g. `DATA 18` or `ACK 17`.
        resend: String,
    },
    /// A datagram from an address that is not the peer (answered with ERROR 5).
    Stray(SocketAddr),
    /// A datagram from the peer that changes nothing (a duplicate, a late OACK, garbage).
    Ignored(&'static str),
    /// The client's request was answered: the transfer runs with these options.
    Negotiated {
        /// The options in force (`none` for RFC 1350).
        options: Options,
        /// Why options were dropped, when they were.
        fallback: Option<&'static str>,
    },
}

/// Settings of one transfer, after negotiation.
#[derive(Debug, Clone)]
pub struct Params {
    /// Block size in bytes.
    pub blksize: usize,
    /// Blocks per window (1 = lock-step).
    pub windowsize: u16,
    /// Retransmissions in a row before giving up.
    pub retries: u32,
    /// The retransmission timer.
    pub timer: RetransmitTimer,
}

impl Params {
    /// The settings that follow from the options a server `granted` (none:
    /// RFC 1350's 512-byte lock-step). A granted `utimeout` means the peer
    /// copes with short timers, so ours adapts to the round-trip time;
    /// otherwise it is fixed at the granted `timeout`, or `timeout`.
    pub fn negotiated(granted: &Options, retries: u32, timeout: Duration) -> Params {
        let timer = match (granted.utimeout, granted.timeout) {
            (Some(us), _) => RetransmitTimer::adaptive(Duration::from_micros(us)),
            (None, Some(s)) => RetransmitTimer::fixed(Duration::from_secs(s.into())),
            (None, None) => RetransmitTimer::fixed(timeout),
        };
        Params {
            blksize: usize::from(granted.blksize.unwrap_or(DEFAULT_BLKSIZE)),
            windowsize: granted.windowsize.unwrap_or(1),
            retries,
            timer,
        }
    }

    /// The longest a machine with these settings waits without progress
    /// before it gives up: every retry's wait at its longest, or the
    /// adaptive timer's patience, whichever is longer.
    pub fn give_up_bound(&self) -> Duration {
        let mut timer = self.timer.clone();
        let mut total = Duration::ZERO;
        for _ in 0..=self.retries {
            total += timer.rto();
            timer.timed_out();
        }
        total.max(self.timer.patience(self.retries) + timer.rto())
    }
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No answer after all retries.
    #[error("timed out: no {waiting_for} for {:.1} s after {retries} resend{}", waited.as_secs_f64(), if *retries == 1 { "" } else { "s" })]
    TimedOut {
        /// What was awaited, e.g. `ACK of block 17`.
        waiting_for: String,
        /// Retransmissions made.
        retries: u32,
        /// How long without progress.
        waited: Duration,
    },
    /// The peer sent an ERROR packet.
    #[error("{peer} error {} ({}): {message}", code.code(), code.description())]
    Peer {
        /// `server` or `client`.
        peer: &'static str,
        /// The peer's error code.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An upload grew past the allowed size.
    #[error("transfer exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading or writing the local file failed.
    #[error("{what}: {}", crate::addr::describe_io(error))]
    File {
        /// `read error` or `write error`.
        what: &'static str,
        /// The error.
        error: io::Error,
    },
    /// The peer's transfer ID is closed: ICMP "port unreachable" answered our datagrams.
    #[error("the {0} went away (its port is closed)")]
    PeerGone(&'static str),
    /// The socket failed.
    #[error("network error: {}", crate::addr::describe_io(.0))]
    Socket(io::Error),
    /// Stopped by Ctrl-C.
    #[error("transfer aborted")]
    Aborted,
}

/// What the peer or the network did.
impl crate::error::Blame for TransferError {
    fn is_usage(&self) -> bool {
        false
    }
}

impl TransferError {
    /// The ERROR packet that tells the peer about this failure, or `None`
    /// when the peer must not be answered (it sent the ERROR, or it is gone).
    pub fn to_peer(&self) -> Option<Vec<u8>> {
        let (code, text) = match self {
            TransferError::Peer { .. } | TransferError::PeerGone(_) => return None,
            TransferError::TimedOut { .. } => (ErrorCode::NotDefined, "timed out"),
            TransferError::Protocol(what) => (ErrorCode::IllegalOperation, what.as_str()),
            TransferError::TooLarge { .. } => (ErrorCode::DiskFull, "file too large"),
            TransferError::File { what, error } => {
                let code = if error.kind() == io::ErrorKind::StorageFull {
                    ErrorCode::DiskFull
                } else {
                    ErrorCode::NotDefined
                };
                (code, *what)
            }
            TransferError::Socket(_) => (ErrorCode::NotDefined, "network error"),
            TransferError::Aborted => (ErrorCode::NotDefined, "transfer aborted"),
        };
        Some(Packet::error(code, text))
    }
}

/// What happened during a transfer.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// File bytes moved (wire bytes, before any netascii conversion).
    pub bytes: u64,
    /// DATA blocks moved, not counting retransmissions.
    pub blocks: u64,
    /// DATA (sender) or ACK (receiver) datagrams sent, first sends and resends alike.
    pub sent: u64,
    /// Packets sent again after a timeout or a gap.
    pub retransmits: u64,
    /// Duplicate DATA (receiver) or duplicate ACKs (sender) that arrived.
    pub duplicates: u64,
    /// Blocks that arrived ahead of a gap and were kept (receiver).
    pub kept: u64,
    /// Datagrams from other addresses, answered with ERROR 5.
    pub strays: u64,
    /// False when the sender never heard the final ACK (the file was sent; the
    /// peer did not confirm it).
    pub confirmed: bool,
    /// Smoothed round-trip time, when the adaptive timer measured it.
    pub srtt: Option<Duration>,
}

impl Stats {
    /// What went wrong on the way, for a log line: `, 12 retransmitted, 1
    /// stray, rtt 92.5µs` (empty when nothing did and nothing was measured).
    pub fn notes(&self) -> String {
        let mut notes = String::new();
        if self.retransmits > 0 {
            notes += &format!(", {} retransmitted", self.retransmits);
        }
        if self.kept > 0 {
            notes += &format!(", {} kept out of order", self.kept);
        }
        if self.strays > 0 {
            notes += &format!(", {} stray", self.strays);
        }
        if let Some(rtt) = self.srtt {
            notes += &format!(", rtt {rtt:.1?}");
        }
        notes
    }
}

/// Where a machine stands.
#[derive(Debug)]
pub enum Status {
    /// Still going.
    Running,
    /// A receiver has every byte; the caller makes the file safe, then calls
    /// [`Receiver::confirm`] (or [`Receiver::reject`]).
    Complete,
    /// A receiver lingers after its final ACK, in case the ACK was lost.
    Lingering,
    /// Finished well.
    Done,
    /// Failed; the error is taken with `take_error`.
    Failed,
}

/// A block's 64-bit number from its 16 low bits on the wire: the number
/// nearest to `near` with those bits (block 65536 goes out as 0, the
/// rollover tftp-hpa, curl and atftp use).
pub(crate) fn unwrap_block(wire: u16, near: u64) -> u64 {
    let offset = i64::from(wire.wrapping_sub(near as u16) as i16);
    (near as i64 + offset).max(0) as u64
}

/// The ERROR 5 that answers a datagram from a stranger.
pub(crate) fn unknown_tid() -> Vec<u8> {
    Packet::error(ErrorCode::UnknownTransferId, "unknown transfer ID")
}

/// One line describing a datagram as lesson 12 teaches it: `DATA block 17,
/// 1468 bytes`, `ACK 17`, `OACK blksize=1468 windowsize=16`, `RRQ "a.txt"
/// octet`, `ERROR 1 (file not found): no such file`.
pub fn describe(bytes: &[u8]) -> String {
    match Packet::parse(bytes) {
        Ok(Packet::Rrq(r)) | Ok(Packet::Wrq(r)) => {
            let kind = if bytes[1] == 1 { "RRQ" } else { "WRQ" };
            let mut line = format!(
                "{kind} {:?} {}",
                String::from_utf8_lossy(&r.filename),
                r.mode
            );
            for (name, value) in &r.options {
                line += &format!(
                    " {}={}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                );
            }
            line
        }
        Ok(Packet::Data { block, data }) => format!("DATA block {block}, {} bytes", data.len()),
        Ok(Packet::Ack { block }) => format!("ACK {block}"),
        Ok(Packet::Error { code, message }) => {
            format!("ERROR {} ({}): {message}", code.code(), code.description())
        }
        Ok(Packet::Oack(raw)) => {
            let mut line = String::from("OACK");
            for (name, value) in &raw {
                line += &format!(
                    " {}={}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                );
            }
            line
        }
        Err(e) => format!("malformed datagram of {} bytes ({e})", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_numbers_unwrap_near_the_expected_one() {
        assert_eq!(unwrap_block(5, 5), 5);
        assert_eq!(unwrap_block(4, 5), 4);
        assert_eq!(unwrap_block(0, 65535), 65536);
        assert_eq!(unwrap_block(65535, 65536), 65535);
        assert_eq!(unwrap_block(1, 65536 * 3), 65536 * 3 + 1);
        assert_eq!(unwrap_block(65535, 0), 0, "never below zero");
    }

    #[test]
    fn datagrams_are_described_as_the_lesson_names_them() {
        assert_eq!(describe(&Packet::ack(17)), "ACK 17");
        let data = Packet::Data {
            block: 3,
            data: &[1; 10],
        }
        .encode();
        assert_eq!(describe(&data), "DATA block 3, 10 bytes");
        assert_eq!(
            describe(b"\x00\x01a.txt\x00octet\x00blksize\x001468\x00"),
            "RRQ \"a.txt\" octet blksize=1468"
        );
        assert_eq!(
            describe(&Packet::error(ErrorCode::FileNotFound, "no")),
            "ERROR 1 (file not found): no"
        );
        assert_eq!(describe(b"\x00\x06tsize\x0012\x00"), "OACK tsize=12");
        assert!(describe(b"\x00").starts_with("malformed datagram of 1 bytes"));
    }

    #[test]
    fn give_up_bound_covers_every_wait() {
        let p = Params::negotiated(&Options::default(), 6, Duration::from_secs(1));
        // 1 + 2 + 4 + 8 + 8 + 8 + 8 s.
        assert_eq!(p.give_up_bound(), Duration::from_secs(39));
        let fast = Params::negotiated(
            &Options {
                utimeout: Some(50_000),
                ..Options::default()
            },
            6,
            Duration::from_secs(1),
        );
        assert!(fast.give_up_bound() >= Duration::from_secs(6));
        assert!(fast.give_up_bound() <= Duration::from_secs(8));
    }
}
