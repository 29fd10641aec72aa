//! The TFTP transfer engine: one sender and one receiver state machine, shared by `tftp-get`, `tftp-put` and `tftp-serve`.
//!
//! After the request (and the option negotiation, see [`super::client`] and
//! [`super::server`]) both sides of a transfer do the same thing whoever
//! asked: one side sends DATA blocks ([`send_file`]), the other answers with
//! ACKs ([`receive_file`]). Both run on a socket of their own, and the
//! address and port of the other side is the transfer ID: a datagram from
//! anywhere else is answered with ERROR 5 and otherwise ignored.
//!
//! # Windows (RFC 7440)
//!
//! With `windowsize` W the sender sends W blocks, then waits for one ACK.
//! The receiver ACKs the W-th block in order, or, when a block is missing,
//! the last block it has in order; the sender then starts its next window
//! right after the block acknowledged ("go back N"). W = 1 is RFC 1350's
//! lock-step: one block, one ACK.
//!
//! # The Sorcerer's Apprentice
//!
//! RFC 1350 says to answer every DATA with an ACK. If a sender also
//! answered every ACK with DATA, one delayed packet would make every block
//! go out twice for the rest of the transfer (RFC 1123 §4.2.3.1). So here a
//! duplicate ACK never makes the sender send anything; only a timeout, or an
//! ACK inside the window (a gap), does. The receiver writes each block once
//! and answers a duplicate only when it starts the sender's retransmission
//! round (a sender times out and resends from the block after the last ACK
//! it got), so stray duplicates cost nothing.
//!
//! # Block numbers
//!
//! Blocks are counted with 64 bits here and sent as their low 16 bits, so
//! block 65536 goes out as 0, the rollover tftp-hpa, curl and atftp use.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::netascii::{NetasciiReader, NetasciiWriter};
use super::packet::{DATA_HEADER, DEFAULT_BLKSIZE, ErrorCode, Mode, Options, Packet};
use super::timer::RetransmitTimer;

/// Largest datagram we may receive (65507 bytes over IPv4, a little more over IPv6).
const MAX_DATAGRAM: usize = 65536;

/// How often a blocked wait looks at the abort flag.
const ABORT_POLL: Duration = Duration::from_millis(100);

/// A sender that never hears the final ACK retransmits the last block this
/// many times at most, then calls the file sent: the course's Python client
/// never ACKs the last block, and waiting the full retry budget for it
/// would only hold a server thread.
const FINAL_ACK_RETRIES: u32 = 2;

/// While a receiver lingers after its final ACK, it repeats that ACK first
/// after two round-trip times, but not sooner than this (see [`confirm`]).
const FIRST_REPEAT: Duration = Duration::from_micros(250);

/// How many of the receiver's latest ACKs it remembers, to recognise a
/// sender's retransmission round.
const ACK_MEMORY: usize = 16;

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
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// No answer after all retries.
    #[error("timed out after {retries} retransmissions waiting for {waiting_for}")]
    TimedOut {
        /// What was awaited, e.g. `ACK of block 17`.
        waiting_for: String,
        /// Retransmissions made.
        retries: u32,
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
    /// The socket failed.
    #[error("network error: {}", crate::addr::describe_io(.0))]
    Socket(io::Error),
    /// Stopped by Ctrl-C.
    #[error("transfer aborted")]
    Aborted,
}

/// What happened during a transfer.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// File bytes moved (wire bytes, before any netascii conversion).
    pub bytes: u64,
    /// DATA blocks moved, not counting retransmissions.
    pub blocks: u64,
    /// Packets sent again after a timeout or a gap.
    pub retransmits: u64,
    /// Duplicate DATA (receiver) or duplicate ACKs (sender) that arrived.
    pub duplicates: u64,
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
        if self.strays > 0 {
            notes += &format!(", {} stray", self.strays);
        }
        if let Some(rtt) = self.srtt {
            notes += &format!(", rtt {rtt:.1?}");
        }
        notes
    }
}

/// One side of a transfer: its socket and the other side's transfer ID.
pub struct Channel<'a> {
    socket: &'a UdpSocket,
    peer: SocketAddr,
    peer_role: &'static str,
    abort: Option<Arc<AtomicBool>>,
    nonblocking: bool,
    strays: u64,
}

/// What one wait of a [`Channel`] brought.
enum Heard {
    /// A datagram from the peer, of this length.
    Datagram(usize),
    /// Nothing before the deadline.
    Nothing,
    /// The peer's port is closed: ICMP "port unreachable" answered something we sent.
    PeerGone,
}

impl<'a> Channel<'a> {
    /// A channel to `peer` (`peer_role` names it in errors: `server` or `client`).
    pub fn new(socket: &'a UdpSocket, peer: SocketAddr, peer_role: &'static str) -> Channel<'a> {
        Channel {
            socket,
            peer,
            peer_role,
            abort: None,
            nonblocking: false,
            strays: 0,
        }
    }

    /// Makes waits end with [`TransferError::Aborted`] once `flag` is set.
    pub fn abort_on(mut self, flag: Arc<AtomicBool>) -> Channel<'a> {
        self.abort = Some(flag);
        self
    }

    /// The peer's address and port.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one datagram to the peer.
    pub fn send(&self, bytes: &[u8]) -> Result<(), TransferError> {
        loop {
            match self.socket.send_to(bytes, self.peer) {
                Ok(_) => return Ok(()),
                // The socket is non-blocking (see `recv`): a full send buffer
                // drains as the kernel hands datagrams on, so wait for room.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::net::wait_ready(self.socket, true, ABORT_POLL)
                        .map_err(TransferError::Socket)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransferError::Socket(e)),
            }
        }
    }

    /// Tells the peer why we stop (best effort: the peer may be gone) and returns `err`.
    pub fn fail(&self, code: ErrorCode, message: &str, err: TransferError) -> TransferError {
        let _ = self
            .socket
            .send_to(&Packet::error(code, message), self.peer);
        err
    }

    /// Waits until `deadline` for a datagram from the peer; `Ok(None)` on timeout.
    /// Datagrams from anyone else get ERROR 5 and are skipped.
    pub fn recv(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<Option<usize>, TransferError> {
        loop {
            match self.hear(buf, deadline)? {
                Heard::Datagram(n) => return Ok(Some(n)),
                Heard::Nothing => return Ok(None),
                // An ICMP error from an earlier send, reported once: not fatal to UDP.
                Heard::PeerGone => {}
            }
        }
    }

    /// [`Channel::recv`], but a "port unreachable" from the peer is reported
    /// as [`Heard::PeerGone`] rather than skipped. Linux reports it only on a
    /// connected socket (see [`confirm`]).
    fn hear(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Heard, TransferError> {
        if !self.nonblocking {
            // Read first, wait only when nothing is queued: in a window's
            // burst the next block is usually there already, and one system
            // call beats two.
            self.socket
                .set_nonblocking(true)
                .map_err(TransferError::Socket)?;
            self.nonblocking = true;
        }
        loop {
            if self
                .abort
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(self.fail(
                    ErrorCode::NotDefined,
                    "transfer aborted",
                    TransferError::Aborted,
                ));
            }
            match self.socket.recv_from(buf) {
                Ok((n, from)) if from == self.peer => return Ok(Heard::Datagram(n)),
                Ok((_, from)) => {
                    self.strays += 1;
                    let _ = self.socket.send_to(
                        &Packet::error(ErrorCode::UnknownTransferId, "unknown transfer ID"),
                        from,
                    );
                    if Instant::now() >= deadline {
                        return Ok(Heard::Nothing);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(Heard::Nothing);
                    }
                    crate::net::wait_ready(self.socket, false, (deadline - now).min(ABORT_POLL))
                        .map_err(TransferError::Socket)?;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Ok(Heard::PeerGone);
                }
                // Other ICMP errors from earlier sends: not fatal to UDP.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => return Err(TransferError::Socket(e)),
            }
        }
    }

    /// Gives up after `retries` retransmissions: ERROR 0 to the peer, and the error.
    pub fn timed_out(&self, waiting_for: String, retries: u32) -> TransferError {
        self.fail(
            ErrorCode::NotDefined,
            "timed out",
            TransferError::TimedOut {
                waiting_for,
                retries,
            },
        )
    }

    /// The local file could not be written: ERROR 3 to the peer when the disk is full, else ERROR 0.
    pub fn write_failed(&self, error: io::Error) -> TransferError {
        let code = if error.kind() == io::ErrorKind::StorageFull {
            ErrorCode::DiskFull
        } else {
            ErrorCode::NotDefined
        };
        self.fail(
            code,
            "write error",
            TransferError::File {
                what: "write error",
                error,
            },
        )
    }

    fn peer_error(&self, code: ErrorCode, message: &str) -> TransferError {
        TransferError::Peer {
            peer: self.peer_role,
            code,
            message: message.to_string(),
        }
    }

    fn protocol_error(&self, what: String) -> TransferError {
        self.fail(
            ErrorCode::IllegalOperation,
            &what,
            TransferError::Protocol(what.clone()),
        )
    }
}

/// Makes the socket's kernel buffers big enough for a whole window, so a
/// burst of W blocks is not dropped by a full receive queue. The kernel
/// caps the size (`net.core.rmem_max`); what it grants is what we get.
pub fn size_buffers(socket: &UdpSocket, blksize: usize, windowsize: u16) {
    // Each datagram also costs the kernel some bookkeeping (sk_buff), so
    // count generously per block.
    let want = (blksize + DATA_HEADER + 1024) * usize::from(windowsize) * 2;
    let sock = socket2::SockRef::from(socket);
    for (get, set) in [
        (
            socket2::Socket::recv_buffer_size as fn(&socket2::Socket) -> io::Result<usize>,
            socket2::Socket::set_recv_buffer_size as fn(&socket2::Socket, usize) -> io::Result<()>,
        ),
        (
            socket2::Socket::send_buffer_size,
            socket2::Socket::set_send_buffer_size,
        ),
    ] {
        if get(&sock).is_ok_and(|have| have < want) {
            let _ = set(&sock, want.min(64 << 20));
        }
    }
}

/// Reads until `buf` is full or the source ends; returns how much was read.
fn read_full(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A DATA packet in the sender's window.
struct Slot {
    packet: Vec<u8>,
    sent_at: Option<Instant>,
    resent: bool,
}

/// Sends the whole of `source` as DATA blocks 1, 2, ... and waits for the
/// final ACK.
///
/// `oack` is the server's OACK when it accepted options for a read request:
/// it is sent first and must be acknowledged with ACK 0. `progress` is
/// called with the number of bytes acknowledged so far.
pub fn send_file(
    ch: &mut Channel<'_>,
    params: &mut Params,
    oack: Option<&[u8]>,
    source: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> Result<Stats, TransferError> {
    let mut stats = Stats::default();
    let mut rbuf = vec![0u8; MAX_DATAGRAM];
    if let Some(oack) = oack {
        handshake_ack0(ch, params, oack, &mut rbuf, &mut stats)?;
    }
    let window_size = usize::from(params.windowsize.max(1));
    let bs = params.blksize;
    let mut window: VecDeque<Slot> = VecDeque::with_capacity(window_size);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // `base` is the number of the first block in `window` (the oldest not acknowledged).
    let mut base: u64 = 1;
    // Index in `window` of the next block to transmit.
    let mut next = 0usize;
    let mut eof = false;
    let mut timeouts = 0u32;
    let mut last_progress = Instant::now();
    loop {
        while window.len() < window_size && !eof {
            let abs = base + window.len() as u64;
            let mut packet = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(DATA_HEADER + bs));
            // A recycled packet is already full size: only the header is
            // rewritten, not 64 KiB zeroed again before the read fills them.
            packet.resize(DATA_HEADER + bs, 0);
            packet[..2].copy_from_slice(&[0, 3]);
            packet[2..DATA_HEADER].copy_from_slice(&(abs as u16).to_be_bytes());
            let n = read_full(source, &mut packet[DATA_HEADER..]).map_err(|error| {
                ch.fail(
                    ErrorCode::NotDefined,
                    "read error",
                    TransferError::File {
                        what: "read error",
                        error,
                    },
                )
            })?;
            packet.truncate(DATA_HEADER + n);
            eof = n < bs;
            window.push_back(Slot {
                packet,
                sent_at: None,
                resent: false,
            });
        }
        let mut sent_last = Instant::now();
        while let Some(slot) = window.get_mut(next) {
            ch.send(&slot.packet)?;
            sent_last = Instant::now();
            if slot.sent_at.is_some() {
                slot.resent = true;
                stats.retransmits += 1;
            }
            slot.sent_at = Some(sent_last);
            next += 1;
        }
        let deadline = sent_last + params.timer.rto();
        // Wait for an ACK that moves the window, or for the deadline.
        let acked = loop {
            let Some(n) = ch.recv(&mut rbuf, deadline)? else {
                break None;
            };
            match Packet::parse(&rbuf[..n]) {
                Ok(Packet::Ack { block }) => {
                    // How many blocks of the window this ACK covers: 0 is the
                    // block before the window (a duplicate), and anything past
                    // what was sent is stale or bogus.
                    let covered = usize::from(block.wrapping_sub((base - 1) as u16));
                    if covered == 0 || covered > next {
                        stats.duplicates += 1;
                        continue;
                    }
                    break Some(covered);
                }
                // A server repeats its OACK to a write request when DATA 1 was
                // lost: it is waiting for the first window, so send it again.
                Ok(Packet::Oack(_)) if base == 1 => break Some(0),
                Ok(Packet::Error { code, message }) => return Err(ch.peer_error(code, &message)),
                Ok(other) => {
                    return Err(ch.protocol_error(format!(
                        "unexpected {:?} packet while sending",
                        other.opcode()
                    )));
                }
                Err(e) => {
                    return Err(ch.protocol_error(format!("malformed packet while sending: {e}")));
                }
            }
        };
        let Some(covered) = acked else {
            // Timeout: resend the whole window, or give up.
            timeouts += 1;
            params.timer.timed_out();
            let only_final_left = eof && window.len() == 1;
            // The receiver may be busy making the file safe (an fsync and a
            // rename) before it ACKs, so even here wait the timer's patience.
            let final_retries = params.retries.min(FINAL_ACK_RETRIES);
            if only_final_left
                && timeouts > final_retries
                && last_progress.elapsed() >= params.timer.patience(final_retries)
            {
                stats.confirmed = false;
                stats.bytes += (window[0].packet.len() - DATA_HEADER) as u64;
                stats.blocks += 1;
                stats.srtt = params.timer.srtt();
                stats.strays = ch.strays;
                return Ok(stats);
            }
            if timeouts > params.retries
                && last_progress.elapsed() >= params.timer.patience(params.retries)
            {
                return Err(ch.timed_out(format!("ACK of block {}", base as u16), timeouts - 1));
            }
            next = 0;
            continue;
        };
        if covered == 0 {
            next = 0;
            continue;
        }
        let newest = &window[covered - 1];
        if let (false, Some(at)) = (newest.resent, newest.sent_at) {
            params.timer.sample(at.elapsed());
        }
        params.timer.progressed();
        timeouts = 0;
        last_progress = Instant::now();
        for slot in window.drain(..covered) {
            stats.bytes += (slot.packet.len() - DATA_HEADER) as u64;
            spare.push(slot.packet);
        }
        stats.blocks += covered as u64;
        base += covered as u64;
        progress(stats.bytes);
        if window.is_empty() && eof {
            stats.confirmed = true;
            stats.srtt = params.timer.srtt();
            stats.strays = ch.strays;
            return Ok(stats);
        }
        // An ACK short of everything sent means a gap: go back to the block
        // after it (RFC 7440). After a full ACK, `next` is 0 either way.
        next = 0;
    }
}

/// [`send_file`] in a transfer mode: netascii turns local line ends into
/// `\r\n` on the way out.
pub fn send_in_mode(
    ch: &mut Channel<'_>,
    params: &mut Params,
    oack: Option<&[u8]>,
    mode: Mode,
    source: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> Result<Stats, TransferError> {
    if mode == Mode::Netascii {
        send_file(ch, params, oack, &mut NetasciiReader::new(source), progress)
    } else {
        send_file(ch, params, oack, source, progress)
    }
}

/// Sends `first` (an OACK) until the peer answers ACK 0.
fn handshake_ack0(
    ch: &mut Channel<'_>,
    params: &mut Params,
    first: &[u8],
    rbuf: &mut [u8],
    stats: &mut Stats,
) -> Result<(), TransferError> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        ch.send(first)?;
        let sent = Instant::now();
        let deadline = sent + params.timer.rto();
        while let Some(n) = ch.recv(rbuf, deadline)? {
            match Packet::parse(&rbuf[..n]) {
                Ok(Packet::Ack { block: 0 }) => {
                    if attempt == 0 {
                        params.timer.sample(sent.elapsed());
                    }
                    params.timer.progressed();
                    return Ok(());
                }
                Ok(Packet::Error { code, message }) => return Err(ch.peer_error(code, &message)),
                Ok(Packet::Ack { .. }) => stats.duplicates += 1,
                Ok(other) => {
                    return Err(ch.protocol_error(format!(
                        "unexpected {:?} packet instead of ACK 0",
                        other.opcode()
                    )));
                }
                Err(e) => {
                    return Err(
                        ch.protocol_error(format!("malformed packet instead of ACK 0: {e}"))
                    );
                }
            }
        }
        params.timer.timed_out();
        if attempt > 0 {
            stats.retransmits += 1;
        }
        attempt += 1;
        // Adaptive waits are short: keep trying until patience runs out too.
        if attempt > params.retries && start.elapsed() >= params.timer.patience(params.retries) {
            return Err(ch.timed_out("ACK of the option acknowledgement".into(), attempt - 1));
        }
    }
}

/// How a receiver starts.
#[derive(Debug)]
pub enum Start<'a> {
    /// Send this packet (ACK 0 for a write request or after an OACK, or the
    /// server's OACK) and resend it until DATA 1 arrives.
    Send(Vec<u8>),
    /// DATA 1 has already arrived (a server that answered a read request
    /// without options); these are its data bytes.
    FirstData(&'a [u8]),
}

/// The receiver's record of ACKs it sent recently.
struct AckMemory {
    recent: [u64; ACK_MEMORY],
    len: usize,
    at: usize,
}

impl AckMemory {
    fn remember(&mut self, block: u64) {
        self.recent[self.at] = block;
        self.at = (self.at + 1) % ACK_MEMORY;
        self.len = (self.len + 1).min(ACK_MEMORY);
    }

    fn contains(&self, block: u64) -> bool {
        self.recent[..self.len].contains(&block)
    }
}

/// Receives DATA blocks into `sink` until the final (short) block, and
/// ACKs them, except the final block: the caller first makes sure the file
/// is safely in place, then calls [`confirm`] (or tells the peer what went
/// wrong with [`Channel::fail`]), so a sender hears "done" only when it is.
///
/// `limit` bounds the bytes accepted (ERROR 3 past it). `progress` is
/// called with the number of bytes written so far.
pub fn receive_file(
    ch: &mut Channel<'_>,
    params: &mut Params,
    start: Start<'_>,
    sink: &mut dyn Write,
    limit: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Stats, TransferError> {
    let mut stats = Stats {
        confirmed: true,
        ..Stats::default()
    };
    let mut rbuf = vec![0u8; MAX_DATAGRAM];
    let window = u64::from(params.windowsize.max(1));
    let bs = params.blksize;
    let mut expected: u64 = 1;
    let mut since_ack = 0u64;
    let mut acks = AckMemory {
        recent: [0; ACK_MEMORY],
        len: 0,
        at: 0,
    };
    let mut gap_acked_for: Option<u64> = None;
    let mut timeouts = 0u32;
    let mut last_progress = Instant::now();
    // When the last ACK went out, and whether it was a repeat (Karn's rule).
    let mut probe: Option<(u64, Instant, bool)> = None;
    let initial = match start {
        Start::Send(packet) => {
            ch.send(&packet)?;
            acks.remember(0);
            probe = Some((0, Instant::now(), false));
            Some(packet)
        }
        Start::FirstData(data) => {
            accept_block(ch, sink, data, limit, &mut stats)?;
            progress(stats.bytes);
            expected = 2;
            since_ack = 1;
            if data.len() < bs {
                return Ok(stats);
            }
            None
        }
    };
    if expected == 2 && since_ack >= window {
        ch.send(&Packet::ack(1))?;
        acks.remember(1);
        probe = Some((1, Instant::now(), false));
        since_ack = 0;
    }
    let mut deadline = Instant::now() + params.timer.rto();
    loop {
        let Some(n) = ch.recv(&mut rbuf, deadline)? else {
            timeouts += 1;
            params.timer.timed_out();
            if timeouts > params.retries
                && last_progress.elapsed() >= params.timer.patience(params.retries)
            {
                return Err(ch.timed_out(format!("DATA block {}", expected as u16), timeouts - 1));
            }
            // Say again where we are: the first packet until DATA 1 arrives, then the last in-order ACK.
            match (&initial, expected) {
                (Some(first), 1) => ch.send(first)?,
                _ => ch.send(&Packet::ack((expected - 1) as u16))?,
            }
            acks.remember(expected - 1);
            probe = Some((expected - 1, Instant::now(), true));
            since_ack = 0;
            stats.retransmits += 1;
            deadline = Instant::now() + params.timer.rto();
            continue;
        };
        match Packet::parse(&rbuf[..n]) {
            Ok(Packet::Data { block, data }) => {
                // The block's 64-bit number: the one nearest to `expected`
                // with these low 16 bits.
                let offset = i64::from(block.wrapping_sub(expected as u16) as i16);
                let abs = expected as i64 + offset;
                if offset == 0 {
                    if let Some((acked, at, false)) = probe.take_if(|p| p.0 + 1 == expected) {
                        debug_assert_eq!(acked + 1, expected);
                        params.timer.sample(at.elapsed());
                    }
                    params.timer.progressed();
                    timeouts = 0;
                    last_progress = Instant::now();
                    accept_block(ch, sink, data, limit, &mut stats)?;
                    progress(stats.bytes);
                    expected += 1;
                    since_ack += 1;
                    if data.len() < bs {
                        stats.srtt = params.timer.srtt();
                        stats.strays = ch.strays;
                        return Ok(stats);
                    }
                    if since_ack >= window {
                        ch.send(&Packet::ack(block))?;
                        acks.remember(expected - 1);
                        probe = Some((expected - 1, Instant::now(), false));
                        since_ack = 0;
                        gap_acked_for = None;
                    }
                    deadline = Instant::now() + params.timer.rto();
                } else if offset > 0 {
                    // A gap: say once where we are, so the sender goes back now
                    // rather than after a timeout.
                    if gap_acked_for != Some(expected) {
                        ch.send(&Packet::ack((expected - 1) as u16))?;
                        acks.remember(expected - 1);
                        gap_acked_for = Some(expected);
                        since_ack = 0;
                    }
                } else {
                    stats.duplicates += 1;
                    // The first block of a retransmission round: our ACK was lost.
                    if abs >= 1 && acks.contains(abs as u64 - 1) {
                        ch.send(&Packet::ack((expected - 1) as u16))?;
                        acks.remember(expected - 1);
                        since_ack = 0;
                    }
                }
            }
            // The server did not hear our ACK 0 and sent its OACK again.
            Ok(Packet::Oack(_)) if expected == 1 => {
                if let Some(first) = &initial {
                    ch.send(first)?;
                }
            }
            Ok(Packet::Error { code, message }) => return Err(ch.peer_error(code, &message)),
            Ok(other) => {
                return Err(ch.protocol_error(format!(
                    "unexpected {:?} packet while receiving",
                    other.opcode()
                )));
            }
            Err(e) => {
                return Err(ch.protocol_error(format!("malformed packet while receiving: {e}")));
            }
        }
    }
}

/// [`receive_file`] in a transfer mode: netascii turns `\r\n` back into
/// local line ends, and a `\r` held at the end is written out.
pub fn receive_in_mode(
    ch: &mut Channel<'_>,
    params: &mut Params,
    start: Start<'_>,
    mode: Mode,
    sink: &mut dyn Write,
    limit: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Stats, TransferError> {
    if mode != Mode::Netascii {
        return receive_file(ch, params, start, sink, limit, progress);
    }
    let mut text = NetasciiWriter::new(sink);
    let stats = receive_file(ch, params, start, &mut text, limit, progress)?;
    text.finish().map_err(|e| ch.write_failed(e))?;
    Ok(stats)
}

/// Writes one block, within `limit`.
fn accept_block(
    ch: &Channel<'_>,
    sink: &mut dyn Write,
    data: &[u8],
    limit: Option<u64>,
    stats: &mut Stats,
) -> Result<(), TransferError> {
    let total = stats.bytes + data.len() as u64;
    if let Some(limit) = limit.filter(|&l| total > l) {
        return Err(ch.fail(
            ErrorCode::DiskFull,
            "file too large",
            TransferError::TooLarge { limit },
        ));
    }
    sink.write_all(data).map_err(|e| ch.write_failed(e))?;
    stats.bytes = total;
    stats.blocks += 1;
    Ok(())
}

/// ACKs the final block of a [`receive_file`], then lingers for at most
/// `wait`, answering the final block again if it comes again (our ACK was
/// lost), so the sender can finish cleanly.
///
/// The linger has to last about one of the sender's retransmission
/// intervals (a second, for an RFC 1350 timer), yet a sender that got the
/// ACK says nothing more, so silence alone proves nothing until then. What
/// does tell is the sender's transfer ID closing: a sender that has the
/// final ACK closes its socket, and a datagram sent there comes back as
/// ICMP "port unreachable", which Linux reports on a connected socket. So
/// the socket is connected to the peer, and while we linger the final ACK
/// goes out again after about two round trips, then at doubling intervals:
/// the first "port unreachable" ends the linger, while a sender still
/// waiting (our first ACK lost) is finished by the repeat at once, without
/// a timeout of its own. Repeating the *final* ACK cannot start the
/// Sorcerer's Apprentice: there is no block after it to send twice. Where
/// no ICMP comes back (a firewall, a relay), the linger lasts `wait`, as it
/// always did.
pub fn confirm(ch: &mut Channel<'_>, stats: &Stats, wait: Duration) {
    let final_block = stats.blocks as u16;
    let ack = Packet::ack(final_block);
    // Without the connection ICMP errors go unheard: then just linger.
    let connected = ch.socket.connect(ch.peer).is_ok();
    let _ = ch.send(&ack);
    let mut rbuf = vec![0u8; MAX_DATAGRAM];
    let end = Instant::now() + wait;
    let mut interval = stats
        .srtt
        .map_or(FIRST_REPEAT, |rtt| (rtt * 2).max(FIRST_REPEAT));
    let mut repeat_at = connected.then(|| Instant::now() + interval);
    loop {
        let deadline = repeat_at.map_or(end, |at| at.min(end));
        match ch.hear(&mut rbuf, deadline) {
            Ok(Heard::Datagram(n)) => {
                if let Ok(Packet::Data { block, .. }) = Packet::parse(&rbuf[..n])
                    && block == final_block
                {
                    let _ = ch.send(&ack);
                }
            }
            Ok(Heard::Nothing) => {
                let now = Instant::now();
                if now >= end {
                    return;
                }
                let _ = ch.send(&ack);
                interval *= 2;
                repeat_at = Some(now + interval);
            }
            Ok(Heard::PeerGone) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    const FINAL: u16 = 7;

    fn finished(srtt: Option<Duration>) -> Stats {
        Stats {
            blocks: u64::from(FINAL),
            srtt,
            ..Stats::default()
        }
    }

    /// A sender's transfer socket on loopback, and a receiver's.
    fn pair() -> (UdpSocket, UdpSocket) {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (sender, receiver)
    }

    #[test]
    fn linger_ends_when_the_sender_closes_its_transfer_id() {
        let (sender, receiver) = pair();
        let peer = sender.local_addr().unwrap();
        // The sender gets the final ACK and is done: its socket closes.
        let done = thread::spawn(move || {
            let mut buf = [0u8; 16];
            let (n, _) = sender.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        let wait = Duration::from_secs(3);
        let started = Instant::now();
        let mut ch = Channel::new(&receiver, peer, "server");
        confirm(&mut ch, &finished(Some(Duration::from_micros(20))), wait);
        let took = started.elapsed();
        assert_eq!(done.join().unwrap(), Packet::ack(FINAL));
        assert!(
            took < wait / 2,
            "the closed transfer ID ended the linger: {took:?}"
        );
    }

    #[test]
    fn linger_repeats_the_final_ack_to_a_sender_still_there() {
        let (sender, receiver) = pair();
        let peer = sender.local_addr().unwrap();
        let wait = Duration::from_millis(300);
        let started = Instant::now();
        // A sender that stays (no ICMP comes back) and retransmits the final
        // block once: every packet it gets is the final ACK, a few of them,
        // and the retransmission is answered.
        let stays = thread::spawn(move || {
            let mut buf = [0u8; 16];
            let mut acks = 0;
            sender
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut resent = false;
            while started.elapsed() < wait + Duration::from_millis(200) {
                let Ok((n, from)) = sender.recv_from(&mut buf) else {
                    continue;
                };
                assert_eq!(&buf[..n], Packet::ack(FINAL));
                acks += 1;
                if !resent && started.elapsed() > wait / 3 {
                    let mut data = vec![0, 3];
                    data.extend_from_slice(&FINAL.to_be_bytes());
                    sender.send_to(&data, from).unwrap();
                    resent = true;
                }
            }
            acks
        });
        let mut ch = Channel::new(&receiver, peer, "server");
        confirm(&mut ch, &finished(None), wait);
        let took = started.elapsed();
        let acks = stays.join().unwrap();
        assert!(took >= wait, "no ICMP, so the full linger: {took:?}");
        // 1 + repeats at 1, 2, 4, ... ms within 300 ms + the answer to the retransmission.
        assert!((3..=12).contains(&acks), "{acks} final ACKs");
    }

    #[test]
    fn linger_without_a_sender_ends_at_once() {
        let (sender, receiver) = pair();
        let peer = sender.local_addr().unwrap();
        drop(sender);
        let started = Instant::now();
        let mut ch = Channel::new(&receiver, peer, "server");
        confirm(&mut ch, &finished(None), Duration::from_secs(3));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
