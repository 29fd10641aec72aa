//! The side of a transfer that sends DATA, as a pure state machine: a window earned by ACKs, one resend per loss, never a DATA for a duplicate ACK.
//!
//! # Windows (RFC 7440)
//!
//! With `windowsize` W the sender sends W blocks, then waits for an ACK;
//! W = 1 is RFC 1350's lock-step. The receiver ACKs the W-th block, or,
//! when a block is missing, the last block it has in order.
//!
//! * An ACK of everything sent slides the window and the next W blocks go out.
//! * An ACK of part of what was sent means a gap: the next block is sent
//!   again, once, and nothing new goes out until everything sent is
//!   acknowledged. Our receiver keeps the blocks that arrived after the gap,
//!   so its next ACK jumps past them; when that ACK instead names exactly
//!   the block resent, the receiver has nothing after it and the rest of
//!   what was sent is sent again.
//! * A timeout sends the first unacknowledged block again, not the whole
//!   window, so a peer that vanished costs one block per retry.
//!
//! The window is earned: until the peer has acknowledged DATA, and again
//! after a timeout, at most [`INITIAL_WINDOW_BYTES`] are in flight. One ACK 0
//! to a read request with `blksize 65464 windowsize 64` therefore releases
//! 256 KiB, not 4 MiB sent seven times over.
//!
//! # The Sorcerer's Apprentice
//!
//! If a sender answered every ACK with DATA, one delayed packet would make
//! every block go out twice for the rest of the transfer (RFC 1123
//! §4.2.3.1). Here an ACK causes DATA only when it moves the window, and
//! each ACK number moves it once: a duplicate ACK never sends anything.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Event, Params, Stats, Status, TransferError, Transmit, unknown_tid};
use crate::addr::unmapped;
use crate::tftp::packet::{DATA_HEADER, Opcode, Packet};

/// Bytes in flight before the peer has acknowledged any DATA (and after a
/// timeout): enough for a full window of ordinary blocks, a few big ones.
pub const INITIAL_WINDOW_BYTES: usize = 256 * 1024;

/// The most a sender sends, first sends and resends alike, to a peer that
/// has never acknowledged DATA: a request with a forged source address (or
/// a client that died after ACK 0) must not turn 50 bytes into megabytes.
pub const UNPROVEN_BYTES: u64 = 1 << 20;

/// A server's sender that never hears the final ACK retransmits the last
/// block this many times at most, then calls the file sent, unconfirmed:
/// the course's Python client never ACKs the last block, and waiting the
/// full retry budget for it would only hold a server thread. A client's
/// upload is not done until the server confirms it.
pub const FINAL_ACK_RETRIES: u32 = 2;

/// A server ACKs an upload's last block only once the file is safely on
/// disk (ours fsyncs, then renames), which takes far longer than a
/// loopback round trip: waiting at least this long for that ACK keeps
/// `tftp-put` from resending the last block to a server that is merely
/// saving it. A lost last block costs this much once, no more.
const COMMIT_ALLOWANCE: Duration = Duration::from_millis(200);

/// A DATA packet in the window.
struct Slot {
    packet: Vec<u8>,
    sent_at: Option<Instant>,
    resent: bool,
}

/// A datagram waiting for `poll_transmit`.
enum Queued {
    /// The window's block with this number.
    Block(u64),
    /// The OACK.
    Oack,
    /// Anything else (an ERROR), to this address.
    Other(Vec<u8>, SocketAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The OACK is out; ACK 0 has not come.
    AwaitAck0,
    Sending,
    Done,
    Failed,
}

/// The sending side of one transfer.
pub struct Sender {
    peer: SocketAddr,
    peer_role: &'static str,
    params: Params,
    state: State,
    oack: Option<Vec<u8>>,
    oack_sent: Option<(Instant, bool)>,
    /// Unacknowledged blocks, the first one numbered `base`.
    window: VecDeque<Slot>,
    base: u64,
    /// How many blocks at the front of the window went out at least once.
    sent: usize,
    spare: Vec<Vec<u8>>,
    /// A slot handed out by [`Sender::buffer`], not yet filled.
    filling: Option<Vec<u8>>,
    eof: bool,
    initial_window: usize,
    /// Blocks allowed in flight now.
    cwnd: usize,
    /// Bytes of DATA sent before the peer acknowledged any (see [`UNPROVEN_BYTES`]).
    unproven: Option<u64>,
    /// The peer has sent an ACK: its address is real and it is listening.
    /// Any ACK counts, even one naming a block never sent: what matters is
    /// that the address answers (a client that then holds its transfer
    /// without progress is bounded by the retries, and `--max-per-client`).
    heard: bool,
    /// A partial ACK moved the window: nothing new until everything sent is acknowledged.
    recovering: bool,
    /// The block last sent again because of a gap or a timeout.
    resent: Option<u64>,
    /// The peer repeated its ACK of the block before the last one: it is
    /// there and waiting, so the last block is not given up on early.
    peer_waiting: bool,
    queue: VecDeque<Queued>,
    other: Vec<u8>,
    deadline: Option<Instant>,
    /// How long `deadline` was set to wait, for the timeout's trace line.
    armed: Duration,
    timeouts: u32,
    last_progress: Instant,
    stats: Stats,
    events: VecDeque<Event>,
    error: Option<TransferError>,
}

/// The methods [`Sender`] and [`Receiver`](super::Receiver) share word for word: each has a
/// `peer`, `params`, `stats`, `error`, `deadline`, a `queue` of `Queued`
/// datagrams and a `State` with `Failed`, and these read and end them alike.
/// (Paths in a macro resolve where it is used: `State` and `Queued` are each
/// machine's own.)
macro_rules! shared_machine_methods {
    () => {
        /// The peer's address and port (its transfer ID).
        pub fn peer(&self) -> SocketAddr {
            self.peer
        }

        /// The settings in force.
        pub fn params(&self) -> &Params {
            &self.params
        }

        /// Ends the transfer with `error`, telling the peer why (an ERROR goes out).
        pub fn fail(&mut self, error: TransferError) {
            if let Some(packet) = error.to_peer() {
                self.queue.clear();
                self.queue.push_back(Queued::Other(packet, self.peer));
            }
            self.fail_quietly(error);
        }

        fn fail_quietly(&mut self, error: TransferError) {
            self.state = State::Failed;
            self.deadline = None;
            self.stats.srtt = self.params.timer.srtt();
            self.error = Some(error);
        }

        /// Why it failed (once).
        pub fn take_error(&mut self) -> Option<TransferError> {
            self.error.take()
        }

        /// What happened so far.
        pub fn stats(&self) -> &Stats {
            &self.stats
        }
    };
}
pub(super) use shared_machine_methods;

impl Sender {
    /// A sender to `peer` (`peer_role` names it in errors: `server` or
    /// `client`). With an `oack` (a server that accepted options of a read
    /// request), the OACK goes out first and block 1 only after ACK 0.
    pub fn new(
        peer: SocketAddr,
        peer_role: &'static str,
        params: Params,
        oack: Option<Vec<u8>>,
        now: Instant,
    ) -> Sender {
        let window = usize::from(params.windowsize.max(1));
        let initial_window = (INITIAL_WINDOW_BYTES / params.blksize.max(1)).clamp(1, window);
        let mut queue = VecDeque::new();
        let state = if oack.is_some() {
            queue.push_back(Queued::Oack);
            State::AwaitAck0
        } else {
            State::Sending
        };
        Sender {
            peer,
            peer_role,
            params,
            state,
            oack,
            oack_sent: None,
            window: VecDeque::with_capacity(window),
            base: 1,
            sent: 0,
            spare: Vec::new(),
            filling: None,
            eof: false,
            initial_window,
            cwnd: initial_window,
            unproven: Some(0),
            heard: false,
            recovering: false,
            resent: None,
            peer_waiting: false,
            queue,
            other: Vec::new(),
            deadline: None,
            armed: Duration::ZERO,
            timeouts: 0,
            last_progress: now,
            stats: Stats::default(),
            events: VecDeque::new(),
            error: None,
        }
    }

    /// Room for the next block's data when the window has some: fill it
    /// (up to its whole length; less means this is the last block) and
    /// call [`Sender::filled`].
    pub fn buffer(&mut self) -> Option<&mut [u8]> {
        let room = self.state == State::Sending
            && !self.eof
            && !self.recovering
            && self.window.len() < self.cwnd;
        if !room {
            return None;
        }
        let bs = self.params.blksize;
        let mut packet = match self.filling.take() {
            Some(p) => p,
            None => self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(DATA_HEADER + bs)),
        };
        // A recycled packet is already full size: only the header is
        // rewritten, not 64 KiB zeroed again before the read fills them.
        packet.resize(DATA_HEADER + bs, 0);
        let abs = self.base + self.window.len() as u64;
        packet[..2].copy_from_slice(&(Opcode::Data as u16).to_be_bytes());
        packet[2..DATA_HEADER].copy_from_slice(&(abs as u16).to_be_bytes());
        Some(&mut self.filling.insert(packet)[DATA_HEADER..])
    }

    /// The slot from [`Sender::buffer`] holds `len` bytes of data; fewer
    /// than the block size ends the file. The block is queued to go out.
    pub fn filled(&mut self, len: usize) {
        let Some(mut packet) = self.filling.take() else {
            return;
        };
        let len = len.min(self.params.blksize);
        packet.truncate(DATA_HEADER + len);
        self.eof = len < self.params.blksize;
        let abs = self.base + self.window.len() as u64;
        self.window.push_back(Slot {
            packet,
            sent_at: None,
            resent: false,
        });
        self.queue.push_back(Queued::Block(abs));
    }

    /// Has the peer answered at all (any ACK from its transfer ID)? A server
    /// lets a new request take the slot of a transfer whose client never
    /// has.
    pub fn proven(&self) -> bool {
        self.heard
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        loop {
            match self.queue.pop_front()? {
                Queued::Other(bytes, to) => {
                    self.other = bytes;
                    return Some(Transmit {
                        to,
                        bytes: &self.other,
                    });
                }
                Queued::Oack => {
                    if self.state != State::AwaitAck0 {
                        continue;
                    }
                    self.oack_sent = Some(match self.oack_sent {
                        None => (now, false),
                        Some((at, _)) => (at, true),
                    });
                    self.armed = self.params.timer.rto();
                    self.deadline = Some(now + self.armed);
                    let bytes = self.oack.as_deref()?;
                    return Some(Transmit {
                        to: self.peer,
                        bytes,
                    });
                }
                Queued::Block(abs) => {
                    if abs < self.base || self.state != State::Sending {
                        continue;
                    }
                    let i = (abs - self.base) as usize;
                    let Some(slot) = self.window.get_mut(i) else {
                        continue;
                    };
                    if slot.sent_at.is_some() {
                        slot.resent = true;
                        self.stats.retransmits += 1;
                    }
                    slot.sent_at = Some(now);
                    if let Some(n) = &mut self.unproven {
                        *n += slot.packet.len() as u64;
                    }
                    self.sent = self.sent.max(i + 1);
                    self.stats.sent += 1;
                    let mut wait = self.params.timer.rto();
                    if self.peer_role == "server" && self.eof && i + 1 == self.window.len() {
                        wait = wait.max(COMMIT_ALLOWANCE);
                    }
                    self.armed = wait;
                    self.deadline = Some(now + wait);
                    return Some(Transmit {
                        to: self.peer,
                        bytes: &self.window[i].packet,
                    });
                }
            }
        }
    }

    /// When [`Sender::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitAck0 | State::Sending => self.deadline,
            State::Done | State::Failed => None,
        }
    }

    /// Something for a trace.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A datagram arrived from `from`.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if from != self.peer {
            self.stats.strays += 1;
            self.events.push_back(Event::Stray(from));
            self.queue.push_back(Queued::Other(unknown_tid(), from));
            return;
        }
        if matches!(self.state, State::Done | State::Failed) {
            return;
        }
        match Packet::parse(datagram) {
            Ok(Packet::Ack { block }) => {
                self.heard = true;
                self.on_ack(now, block);
            }
            Ok(Packet::Error { code, message }) => {
                self.fail_quietly(TransferError::Peer {
                    peer: self.peer_role,
                    code,
                    message: message.into_owned(),
                });
            }
            // The peer did not hear our answer to its OACK (an upload's
            // DATA 1) and said it again, or the network repeated it: our
            // own timer resends what is missing.
            Ok(Packet::Oack(_)) => self.events.push_back(Event::Ignored("repeated OACK")),
            Ok(_) => self
                .events
                .push_back(Event::Ignored("unexpected packet while sending")),
            Err(_) => self.events.push_back(Event::Ignored("malformed datagram")),
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) {
        if self.state == State::AwaitAck0 {
            if block != 0 {
                self.events.push_back(Event::Ignored("ACK before ACK 0"));
                return;
            }
            if let Some((at, false)) = self.oack_sent {
                self.params.timer.sample(now.saturating_duration_since(at));
            }
            self.progress(now);
            self.state = State::Sending;
            self.oack = None;
            self.deadline = None;
            return;
        }
        // How many blocks of the window this ACK covers: 0 is the block
        // before the window (a duplicate), and past what was sent is stale.
        let covered = usize::from(block.wrapping_sub((self.base - 1) as u16));
        if covered == 0 || covered > self.sent {
            self.peer_waiting |= covered == 0 && self.eof && self.window.len() == 1;
            self.stats.duplicates += 1;
            self.events.push_back(Event::Ignored("duplicate ACK"));
            return;
        }
        // Karn's rule, for every block the ACK covers: if one of them was
        // sent again, the ACK waited for that copy, not for the newest block.
        let newest = &self.window[covered - 1];
        if let Some(at) = newest.sent_at
            && self.window.iter().take(covered).all(|s| !s.resent)
        {
            self.params.timer.sample(now.saturating_duration_since(at));
        }
        self.progress(now);
        self.cwnd = usize::from(self.params.windowsize.max(1));
        self.unproven = None;
        for slot in self.window.drain(..covered) {
            self.stats.bytes += (slot.packet.len() - DATA_HEADER) as u64;
            self.spare.push(slot.packet);
        }
        self.stats.blocks += covered as u64;
        self.base += covered as u64;
        self.sent -= covered;
        if self.window.is_empty() && self.eof {
            self.stats.confirmed = true;
            self.finish();
            return;
        }
        if self.sent == 0 {
            self.recovering = false;
            self.resent = None;
            self.deadline = None;
            return;
        }
        // A gap: the block after the ACK is missing.
        self.recovering = true;
        if self.resent == Some(self.base - 1) {
            // The receiver took the block resent and has nothing after it.
            for abs in self.base..self.base + self.sent as u64 {
                self.queue.push_back(Queued::Block(abs));
            }
        } else {
            self.queue.push_back(Queued::Block(self.base));
        }
        self.resent = Some(self.base);
    }

    fn progress(&mut self, now: Instant) {
        self.params.timer.progressed();
        self.timeouts = 0;
        self.last_progress = now;
    }

    /// Call when `now` has reached [`Sender::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let waited = self.armed;
        self.timeouts += 1;
        self.params.timer.timed_out();
        let stalled = now.saturating_duration_since(self.last_progress);
        let retries = self.params.retries;
        if self.state == State::AwaitAck0 {
            if self.timeouts > retries && stalled >= self.params.timer.patience(retries) {
                self.give_up(now, "ACK 0 of the option acknowledgement".into());
                return;
            }
            self.stats.retransmits += 1;
            self.queue.push_back(Queued::Oack);
            self.timeout_event(waited, "OACK".into());
            return;
        }
        let final_retries = retries.min(FINAL_ACK_RETRIES);
        if self.peer_role == "client"
            && !self.peer_waiting
            && self.eof
            && self.window.len() == 1
            && self.timeouts > final_retries
            && stalled >= self.params.timer.patience(final_retries)
        {
            // The file went out; the peer just never said so (the course's client).
            self.finish_unconfirmed();
            return;
        }
        if self.timeouts > retries && stalled >= self.params.timer.patience(retries) {
            self.give_up(now, format!("ACK of block {}", self.base as u16));
            return;
        }
        if self.window.is_empty() {
            self.deadline = None;
            return;
        }
        let resend = (self.window[0].packet.len()) as u64;
        if self.unproven.is_some_and(|n| n + resend > UNPROVEN_BYTES) {
            self.give_up(now, format!("ACK of block {}", self.base as u16));
            return;
        }
        // The peer may be gone: earn the window again.
        self.cwnd = self.cwnd.min(self.initial_window);
        self.recovering = self.sent > 1;
        self.resent = Some(self.base);
        self.queue.push_back(Queued::Block(self.base));
        self.timeout_event(waited, format!("DATA {}", self.base as u16));
    }

    fn timeout_event(&mut self, waited: Duration, resend: String) {
        self.events.push_back(Event::Timeout { waited, resend });
    }

    fn give_up(&mut self, now: Instant, waiting_for: String) {
        self.fail(TransferError::TimedOut {
            waiting_for,
            retries: self.timeouts - 1,
            waited: now.saturating_duration_since(self.last_progress),
        });
    }

    /// Only the last block is left, and the peer will never ACK it.
    fn finish_unconfirmed(&mut self) {
        if let Some(slot) = self.window.pop_front() {
            self.stats.bytes += (slot.packet.len() - DATA_HEADER) as u64;
            self.stats.blocks += 1;
        }
        self.stats.confirmed = false;
        self.finish();
    }

    fn finish(&mut self) {
        self.stats.srtt = self.params.timer.srtt();
        self.state = State::Done;
        self.deadline = None;
    }

    /// A datagram to `dest` met a closed port (ICMP port unreachable). When
    /// `dest` is the peer, it has gone: the transfer ends at once instead of
    /// sending into the void until the retries run out. A client that closes
    /// as soon as it has the last block (the course's, which never ACKs it)
    /// has the file: that is the final ACK that never came, not a failure.
    pub fn handle_unreachable(&mut self, dest: SocketAddr) {
        if unmapped(dest) != unmapped(self.peer)
            || !matches!(self.state, State::AwaitAck0 | State::Sending)
        {
            return;
        }
        if self.peer_role == "client" && self.eof && self.window.len() == 1 && self.sent == 1 {
            self.finish_unconfirmed();
            return;
        }
        self.fail_quietly(TransferError::PeerGone(self.peer_role));
    }

    /// Where the transfer stands.
    pub fn status(&self) -> Status {
        match self.state {
            State::AwaitAck0 | State::Sending => Status::Running,
            State::Done => Status::Done,
            State::Failed => Status::Failed,
        }
    }

    shared_machine_methods!();
}
