//! The side of a transfer that receives DATA and ACKs it, as a pure state machine: blocks that arrive early are kept, a gap is ACKed once, the final ACK lingers.
//!
//! When to ACK:
//!
//! * the W-th block in order since the last ACK (RFC 7440; every block in lock-step);
//! * a block past a gap: the last block in order, once per gap, so the sender
//!   resends the missing one now rather than after a timeout. The ACK waits
//!   a moment first, as the delayed ACK below does, because a block that is
//!   merely overtaken fills the gap by itself. The blocks past the gap are
//!   kept (up to a window's worth);
//! * the block asked for by such an ACK, or by a timeout's ACK, at once
//!   (with the kept blocks it completes, so the sender's next window starts
//!   after them);
//! * when blocks in order stay unacknowledged and the stream pauses (the
//!   sender's window is smaller than ours, or its tail was lost): after a
//!   short delay, like TCP's delayed ACK;
//! * a timeout: the last block in order again;
//! * a duplicate that starts the sender's retransmission (the block right
//!   after one of our recent ACKs): our ACK was lost, say it again. Other
//!   duplicates get nothing, so stray copies cost nothing.
//!
//! The final (short) block is not ACKed until the caller has made the file
//! safe ([`Receiver::confirm`]), so a sender hears "done" only when it is.
//! Then the receiver lingers, answering the final block again if it comes
//! again, since a lost final ACK would leave the sender retrying.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::sender::shared_machine_methods;
use super::{Event, Params, Stats, Status, TransferError, Transmit, unknown_tid, unwrap_block};
use crate::addr::unmapped;
use crate::tftp::packet::{ErrorCode, Packet};

/// How many of the receiver's latest ACKs it remembers, to recognise a
/// sender's retransmission round.
const ACK_MEMORY: usize = 16;

/// While lingering after the final ACK, repeat it first after two
/// round-trip times, but not sooner than this.
const FIRST_REPEAT: Duration = Duration::from_micros(250);

/// Bounds of the delayed ACK (see the module documentation).
const ACK_DELAY_MIN: Duration = Duration::from_micros(200);
const ACK_DELAY_MAX: Duration = Duration::from_millis(200);

/// A datagram waiting for `poll_transmit`.
enum Queued {
    Ack(u16),
    /// The packet repeated until DATA 1 arrives (ACK 0 or an OACK).
    First,
    Other(Vec<u8>, SocketAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Receiving,
    Complete,
    Lingering,
    Done,
    Failed,
}

/// The receiving side of one transfer.
pub struct Receiver {
    peer: SocketAddr,
    peer_role: &'static str,
    params: Params,
    state: State,
    first: Option<Vec<u8>>,
    limit: Option<u64>,
    /// The next block wanted in order.
    expected: u64,
    since_ack: u64,
    recent_acks: [u64; ACK_MEMORY],
    recent_len: usize,
    recent_at: usize,
    gap_acked_for: Option<u64>,
    /// Our latest ACK asked for `expected`: ACK it as soon as it comes.
    requested: bool,
    /// Blocks kept past a gap: `stash[i]` is block `expected + i` (so `stash[0]` is always empty).
    stash: VecDeque<Option<Vec<u8>>>,
    /// Kept blocks now in order, for [`Receiver::poll_stashed`].
    ready: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    /// When the last ACK went out, and whether it was a repeat (Karn's rule).
    probe: Option<(u64, Instant, bool)>,
    deadline: Option<Instant>,
    ack_due: Option<Instant>,
    timeouts: u32,
    last_progress: Instant,
    /// The peer has sent DATA: its address is real and it is sending.
    heard: bool,
    linger_end: Option<Instant>,
    repeat_at: Option<Instant>,
    repeat_every: Duration,
    queue: VecDeque<Queued>,
    out: Vec<u8>,
    stats: Stats,
    events: VecDeque<Event>,
    error: Option<TransferError>,
}

impl Receiver {
    /// A receiver for DATA from `peer`. `first` is the packet that starts
    /// the transfer from our side (ACK 0 to a write request or to an OACK,
    /// or the server's OACK); it is sent now and again until DATA 1 comes.
    /// `None` when DATA 1 is already here (a server that answered a read
    /// request without options): hand it to [`Receiver::handle`].
    /// `limit` bounds the bytes accepted (ERROR 3 past it).
    pub fn new(
        peer: SocketAddr,
        peer_role: &'static str,
        params: Params,
        first: Option<Vec<u8>>,
        limit: Option<u64>,
        now: Instant,
    ) -> Receiver {
        let mut queue = VecDeque::new();
        // ACK 0 or the OACK stands for "send block 1": a repeated DATA 1
        // means it was heard and our ACK of block 1 was lost.
        let recent_len = if first.is_some() {
            queue.push_back(Queued::First);
            1
        } else {
            0
        };
        Receiver {
            peer,
            peer_role,
            deadline: Some(now + params.timer.rto()),
            params,
            state: State::Receiving,
            first,
            limit,
            expected: 1,
            since_ack: 0,
            recent_acks: [0; ACK_MEMORY],
            recent_len,
            recent_at: recent_len,
            gap_acked_for: None,
            requested: false,
            stash: VecDeque::new(),
            ready: VecDeque::new(),
            pool: Vec::new(),
            probe: None,
            ack_due: None,
            timeouts: 0,
            last_progress: now,
            heard: false,
            linger_end: None,
            repeat_at: None,
            repeat_every: FIRST_REPEAT,
            queue,
            out: Vec::new(),
            stats: Stats {
                confirmed: true,
                ..Stats::default()
            },
            events: VecDeque::new(),
            error: None,
        }
    }

    /// Has the peer sent any DATA? (See [`super::Sender::proven`].)
    pub fn proven(&self) -> bool {
        self.heard
    }

    /// A datagram arrived from `from`. Returns the file data it carries
    /// when that is the next in order: write it, then whatever
    /// [`Receiver::poll_stashed`] hands out, before anything else.
    pub fn handle<'d>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &'d [u8],
    ) -> Option<&'d [u8]> {
        if from != self.peer {
            self.stats.strays += 1;
            self.events.push_back(Event::Stray(from));
            self.queue.push_back(Queued::Other(unknown_tid(), from));
            return None;
        }
        match Packet::parse(datagram) {
            Ok(Packet::Data { block, data }) => self.on_data(now, block, data),
            Ok(Packet::Error { code, message }) => {
                if self.state == State::Lingering {
                    // The file is complete and safe; the sender's opinion is too late.
                    self.finish();
                } else if matches!(self.state, State::Receiving | State::Complete) {
                    self.fail_quietly(TransferError::Peer {
                        peer: self.peer_role,
                        code,
                        message: message.into_owned(),
                    });
                }
                None
            }
            // The peer did not hear our ACK 0 and repeated its OACK.
            Ok(Packet::Oack(_))
                if self.state == State::Receiving && self.expected == 1 && self.first.is_some() =>
            {
                self.queue.push_back(Queued::First);
                None
            }
            Ok(Packet::Oack(_)) => ignore(&mut self.events, "repeated OACK"),
            Ok(_) => ignore(&mut self.events, "unexpected packet while receiving"),
            Err(_) => ignore(&mut self.events, "malformed datagram"),
        }
    }

    fn on_data<'d>(&mut self, now: Instant, block: u16, data: &'d [u8]) -> Option<&'d [u8]> {
        let bs = self.params.blksize;
        let abs = unwrap_block(block, self.expected);
        match self.state {
            State::Receiving => {}
            State::Lingering => {
                // Our final ACK was lost: say it again.
                if abs + 1 == self.expected {
                    self.queue.push_back(Queued::Ack(block));
                }
                return None;
            }
            _ => return None,
        }
        if data.len() > bs {
            return ignore(&mut self.events, "DATA larger than the block size");
        }
        self.heard = true;
        if abs < self.expected {
            self.stats.duplicates += 1;
            // The first block of a retransmission round: our ACK was lost.
            if abs >= 1 && self.recent_acks[..self.recent_len].contains(&(abs - 1)) {
                self.send_ack(now, false);
                self.requested = true;
            } else {
                self.events.push_back(Event::Ignored("duplicate DATA"));
            }
            return None;
        }
        if abs > self.expected {
            self.keep(abs, data);
            if self.gap_acked_for != Some(self.expected) {
                let due = now + self.ack_delay() / 2;
                self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
            }
            return None;
        }
        // The next block in order.
        if let Some((acked, at, false)) = self.probe.take_if(|p| p.0 + 1 == self.expected) {
            debug_assert_eq!(acked + 1, self.expected);
            self.params.timer.sample(now.saturating_duration_since(at));
        }
        self.params.timer.progressed();
        self.timeouts = 0;
        self.last_progress = now;
        if !self.accept(data.len()) {
            return None;
        }
        let mut last = data.len() < bs;
        self.stash.pop_front();
        while !last && let Some(Some(_)) = self.stash.front() {
            let kept = self.stash.pop_front().flatten().expect("checked above");
            if !self.accept(kept.len()) {
                return None;
            }
            last = kept.len() < bs;
            self.ready.push_back(kept);
        }
        if last {
            self.stash.clear();
            self.state = State::Complete;
            self.deadline = None;
            self.ack_due = None;
            self.stats.srtt = self.params.timer.srtt();
            return Some(data);
        }
        let window = u64::from(self.params.windowsize.max(1));
        if self.since_ack >= window || self.requested {
            self.send_ack(now, false);
        } else if self.stash.iter().any(Option::is_some) {
            // Still a gap further on.
            let due = now + self.ack_delay() / 2;
            self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
        } else {
            self.ack_due = Some(now + self.ack_delay());
        }
        self.deadline = Some(now + self.params.timer.rto());
        Some(data)
    }

    /// Counts one block of `len` bytes in order, within the limit.
    fn accept(&mut self, len: usize) -> bool {
        let total = self.stats.bytes + len as u64;
        if let Some(limit) = self.limit.filter(|&l| total > l) {
            self.fail(TransferError::TooLarge { limit });
            return false;
        }
        self.stats.bytes = total;
        self.stats.blocks += 1;
        self.expected += 1;
        self.since_ack += 1;
        true
    }

    /// Keeps a block that arrived past a gap, if it is within a window.
    fn keep(&mut self, abs: u64, data: &[u8]) {
        let i = (abs - self.expected) as usize;
        if i >= usize::from(self.params.windowsize.max(1)) {
            self.events
                .push_back(Event::Ignored("DATA beyond the window"));
            return;
        }
        if self.stash.len() <= i {
            self.stash.resize(i + 1, None);
        }
        if self.stash[i].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.stash[i] = Some(buf);
        self.stats.kept += 1;
    }

    /// How long blocks in order may wait for their ACK once the stream
    /// pauses: two of the path's shortest round trips (the blocks of one
    /// window arrive much closer together than that), never more than half
    /// the sender's likely timeout.
    fn ack_delay(&self) -> Duration {
        let timer = &self.params.timer;
        let half_rto = (timer.rto() / 2).clamp(ACK_DELAY_MIN, ACK_DELAY_MAX);
        timer
            .min_rtt()
            .map_or(half_rto, |rtt| (rtt * 2).clamp(ACK_DELAY_MIN, half_rto))
    }

    /// Queues an ACK of the last block in order.
    fn send_ack(&mut self, now: Instant, repeat: bool) {
        let acked = self.expected - 1;
        self.queue.push_back(Queued::Ack(acked as u16));
        self.recent_acks[self.recent_at] = acked;
        self.recent_at = (self.recent_at + 1) % ACK_MEMORY;
        self.recent_len = (self.recent_len + 1).min(ACK_MEMORY);
        self.probe = Some((acked, now, repeat));
        self.since_ack = 0;
        self.requested = false;
        self.ack_due = None;
        if !repeat {
            self.gap_acked_for = self.gap_acked_for.filter(|&g| g == self.expected);
        }
    }

    /// A kept block that is now in order, to write after the data
    /// [`Receiver::handle`] returned. Hand the buffer back with [`Receiver::recycle`].
    pub fn poll_stashed(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    /// Returns a buffer from [`Receiver::poll_stashed`] for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < usize::from(self.params.windowsize) {
            self.pool.push(buf);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let to = match self.queue.pop_front()? {
            Queued::Ack(block) => {
                self.stats.sent += 1;
                self.out.clear();
                self.out.extend_from_slice(&Packet::ack(block));
                self.peer
            }
            Queued::First => {
                self.stats.sent += 1;
                let first = self.first.as_deref()?;
                self.out.clear();
                self.out.extend_from_slice(first);
                if self.probe.is_none() {
                    // ACK 0 / OACK goes out: time the answer (DATA 1) if it comes at once.
                    self.probe = Some((0, now, false));
                } else if let Some(p) = &mut self.probe {
                    p.2 = true;
                }
                self.peer
            }
            Queued::Other(bytes, to) => {
                self.out = bytes;
                to
            }
        };
        Some(Transmit {
            to,
            bytes: &self.out,
        })
    }

    /// When [`Receiver::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Receiving => match (self.deadline, self.ack_due) {
                (Some(d), Some(a)) => Some(d.min(a)),
                (d, a) => d.or(a),
            },
            State::Lingering => match (self.linger_end, self.repeat_at) {
                (Some(e), Some(r)) => Some(e.min(r)),
                (e, r) => e.or(r),
            },
            State::Complete | State::Done | State::Failed => None,
        }
    }

    /// Something for a trace.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Call when `now` has reached [`Receiver::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Receiving => {}
            State::Lingering => {
                if self.linger_end.is_some_and(|e| now >= e) {
                    self.finish();
                } else if self.repeat_at.is_some_and(|r| now >= r) {
                    self.queue
                        .push_back(Queued::Ack((self.expected - 1) as u16));
                    self.repeat_every *= 2;
                    self.repeat_at = Some(now + self.repeat_every);
                }
                return;
            }
            _ => return,
        }
        if self.ack_due.is_some_and(|a| now >= a) {
            let gap = self.stash.iter().any(Option::is_some);
            if gap {
                self.gap_acked_for = Some(self.expected);
            }
            self.send_ack(now, false);
            // A gap's ACK asks for the missing block: ACK it the moment it comes.
            self.requested = gap;
        }
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        let waited = self.params.timer.rto();
        self.timeouts += 1;
        self.params.timer.timed_out();
        let retries = self.params.retries;
        let stalled = now.saturating_duration_since(self.last_progress);
        if self.timeouts > retries && stalled >= self.params.timer.patience(retries) {
            self.fail(TransferError::TimedOut {
                waiting_for: format!("DATA block {}", self.expected as u16),
                retries: self.timeouts - 1,
                waited: stalled,
            });
            return;
        }
        // An RFC 1350 sender (tftp-hpa's client) restarts its own timer on
        // every datagram it gets, so an ACK repeated every second would keep
        // it from ever resending the lost block: with the fixed timer, say
        // it again only every other timeout. (A sender with no timer at
        // all, the course's Python server, still hears it.)
        if !self.params.timer.is_adaptive() && self.timeouts.is_multiple_of(2) {
            self.deadline = Some(now + self.params.timer.rto());
            return;
        }
        self.stats.retransmits += 1;
        let resend = if self.expected == 1 && self.first.is_some() {
            self.queue.push_back(Queued::First);
            if let Some(p) = &mut self.probe {
                p.2 = true;
            }
            self.since_ack = 0;
            describe_first(self.first.as_deref())
        } else {
            self.send_ack(now, true);
            format!("ACK {}", (self.expected - 1) as u16)
        };
        self.requested = true;
        self.deadline = Some(now + self.params.timer.rto());
        self.events.push_back(Event::Timeout { waited, resend });
    }

    /// The file is safe (renamed into place): send the final ACK, then
    /// linger for at most the sender's retransmission interval, answering
    /// the final block again if it comes again. With `repeat`, the final
    /// ACK also goes out again at doubling intervals from two round trips
    /// on: the driver can tell when the sender's port closes
    /// ([`Receiver::handle_unreachable`]) and so end the linger early, and a
    /// sender whose first final ACK was lost is finished without a timeout
    /// of its own. Repeating the *final* ACK cannot start the Sorcerer's
    /// Apprentice: there is no block after it to send twice.
    pub fn confirm(&mut self, now: Instant, repeat: bool) {
        if self.state != State::Complete {
            return;
        }
        self.queue
            .push_back(Queued::Ack((self.expected - 1) as u16));
        self.state = State::Lingering;
        self.linger_end = Some(now + self.params.timer.linger());
        self.repeat_every = self
            .stats
            .srtt
            .map_or(FIRST_REPEAT, |rtt| (rtt * 2).max(FIRST_REPEAT));
        self.repeat_at = repeat.then(|| now + self.repeat_every);
    }

    /// The file could not be kept: tell the sender (ERROR 0 with `why`).
    pub fn reject(&mut self, why: &str) {
        self.queue.clear();
        self.queue.push_back(Queued::Other(
            Packet::error(ErrorCode::NotDefined, why),
            self.peer,
        ));
        self.state = State::Failed;
    }

    fn finish(&mut self) {
        self.state = State::Done;
        self.linger_end = None;
        self.repeat_at = None;
    }

    /// A datagram to `dest` met a closed port (ICMP port unreachable). When
    /// `dest` is the peer's transfer ID: while lingering, that is the sender
    /// saying it has the final ACK; before, the sender is gone.
    pub fn handle_unreachable(&mut self, dest: SocketAddr) {
        if unmapped(dest) != unmapped(self.peer) {
            return;
        }
        match self.state {
            State::Lingering => self.finish(),
            State::Receiving => self.fail_quietly(TransferError::PeerGone(self.peer_role)),
            _ => {}
        }
    }

    /// Where the transfer stands.
    pub fn status(&self) -> Status {
        match self.state {
            State::Receiving => Status::Running,
            State::Complete => Status::Complete,
            State::Lingering => Status::Lingering,
            State::Done => Status::Done,
            State::Failed => Status::Failed,
        }
    }

    shared_machine_methods!();
}

/// Tells the trace why a datagram was ignored; it carries no file data to
/// write (None).
pub(super) fn ignore<T>(events: &mut VecDeque<Event>, why: &'static str) -> Option<T> {
    events.push_back(Event::Ignored(why));
    None
}

fn describe_first(first: Option<&[u8]>) -> String {
    first.map_or_else(String::new, super::describe)
}
