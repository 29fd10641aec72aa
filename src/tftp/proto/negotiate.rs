//! The request and its options, as pure state machines: the client's [`Client`] (request, fallbacks, then the transfer) and the server's [`grant`].
//!
//! What answers a client's request depends on the server:
//!
//! * an OACK: the server accepted (some of) our options (RFC 2347); we
//!   check them and go on with ACK 0 (download) or DATA 1 (upload);
//! * DATA 1 or ACK 0: the server ignores options: RFC 1350 it is;
//! * ERROR 8: the server refuses options, so we ask again without any;
//! * nothing at all: some servers, the course's own Python one among them,
//!   ignore a request that carries options, and on a real network the
//!   request or the answer may simply be lost.
//!
//! A lost request must not cost the options: after a timeout the client
//! sends the request with options again, from the same port; after the
//! second, also a plain request from a second port (a new transfer ID).
//! The first answer wins (an OACK is waited for a moment longer, since both
//! requests went out together); anything the server sends to the other
//! port later gets an ERROR, so the server stops that transfer. One port
//! never carries two different requests, so a server never has to guess
//! which one a port meant.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::receiver::{Receiver, ignore};
use super::sender::Sender;
use super::{Event, Params, Stats, Status, TransferError, Transmit, unknown_tid};
use crate::addr::unmapped;
use crate::tftp::packet::{
    ErrorCode, Mode, OptionError, Options, Packet, RawOption, Request as WireRequest,
};
use crate::tftp::timer::RetransmitTimer;

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The server's request address (port 69 by default).
    pub server: SocketAddr,
    /// Upload (WRQ) rather than download (RRQ).
    pub write: bool,
    /// File name on the server.
    pub filename: Vec<u8>,
    /// octet or netascii.
    pub mode: Mode,
    /// Options to ask for; none: only a plain RFC 1350 request.
    pub options: Options,
    /// The first wait for an answer to the request; it doubles on each timeout.
    pub first_wait: Duration,
    /// The retransmission timeout of a transfer that negotiated none.
    pub timeout: Duration,
    /// Retransmissions before giving up.
    pub retries: u32,
}

/// Which of the client's two ports: the request with options goes out on
/// [`WITH_OPTIONS`], the plain fallback on [`PLAIN`].
pub type Via = usize;
/// The port of the first request (with options, when there are any).
pub const WITH_OPTIONS: Via = 0;
/// The port of the plain request sent after the first timeout.
pub const PLAIN: Via = 1;

/// Unanswered rounds of requests before the plain request joins in.
const PLAIN_AFTER: u32 = 2;

/// The shortest wait for an OACK after the plain request was answered.
const HOLD_MIN: Duration = Duration::from_millis(2);

/// How a client's transfer ended up being run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Options in effect (what the server accepted).
    pub options: Options,
    /// Why options were dropped, when they were.
    pub fallback: Option<&'static str>,
    /// The server's transfer ID.
    pub peer: SocketAddr,
}

// Both machines are a few hundred bytes, and there is one per client.
#[allow(clippy::large_enum_variant)]
enum Side {
    Get(Receiver),
    Put(Sender),
}

impl Side {
    /// What the transfer under way, if there is one, answers to `get`
    /// (a download's receiver) or `put` (an upload's sender).
    fn ask<T>(
        side: &mut Option<Side>,
        get: fn(&mut Receiver) -> Option<T>,
        put: fn(&mut Sender) -> Option<T>,
    ) -> Option<T> {
        match side.as_mut()? {
            Side::Get(rx) => get(rx),
            Side::Put(tx) => put(tx),
        }
    }
}

/// A client: the request, its fallbacks, then the transfer itself.
pub struct Client {
    req: Request,
    packets: [Vec<u8>; 2],
    /// When each request first went out.
    sent: [Option<Instant>; 2],
    resent: [bool; 2],
    /// The server refused this port's request (ERROR 8).
    dead: [bool; 2],
    timer: RetransmitTimer,
    timeouts: u32,
    deadline: Option<Instant>,
    via: Via,
    side: Option<Side>,
    outcome: Option<Outcome>,
    fallback: Option<&'static str>,
    queue: VecDeque<(Via, Vec<u8>, SocketAddr)>,
    /// When each port's request last went out.
    last_sent: [Option<Instant>; 2],
    /// The plain request's answer, held briefly: the request with options
    /// went out at the same moment, and its answer is the better one.
    held: Option<(SocketAddr, Vec<u8>, Instant)>,
    /// Data of a held DATA 1, for [`Client::poll_stashed`].
    early: Option<Vec<u8>>,
    out: Vec<u8>,
    events: VecDeque<Event>,
    error: Option<TransferError>,
    failed: bool,
}

impl Client {
    /// A client about to send `req`.
    pub fn new(req: Request) -> Client {
        let packet = |options: &Options| {
            let wire = WireRequest {
                filename: req.filename.as_slice().into(),
                mode: req.mode,
                options: options.to_raw(),
            };
            if req.write {
                Packet::Wrq(wire).encode()
            } else {
                Packet::Rrq(wire).encode()
            }
        };
        let packets = [packet(&req.options), packet(&Options::default())];
        let mut queue = VecDeque::new();
        queue.push_back((WITH_OPTIONS, packets[0].clone(), req.server));
        Client {
            timer: RetransmitTimer::fixed(req.first_wait),
            packets,
            sent: [None; 2],
            resent: [false; 2],
            dead: [false; 2],
            timeouts: 0,
            deadline: None,
            via: WITH_OPTIONS,
            side: None,
            outcome: None,
            fallback: None,
            queue,
            last_sent: [None; 2],
            held: None,
            early: None,
            out: Vec::new(),
            events: VecDeque::new(),
            error: None,
            failed: false,
            req,
        }
    }

    /// The next datagram to send, and from which of our ports.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(Via, Transmit<'_>)> {
        if let Some((via, bytes, to)) = self.queue.pop_front() {
            if self.side.is_none() && to == self.req.server && bytes == self.packets[via] {
                if self.sent[via].is_some() {
                    self.resent[via] = true;
                } else {
                    self.sent[via] = Some(now);
                }
                self.last_sent[via] = Some(now);
                self.deadline = Some(now + self.timer.rto());
            }
            self.out = bytes;
            return Some((
                via,
                Transmit {
                    to,
                    bytes: &self.out,
                },
            ));
        }
        let via = self.via;
        let t = match self.side.as_mut()? {
            Side::Get(rx) => rx.poll_transmit(now),
            Side::Put(tx) => tx.poll_transmit(now),
        }?;
        Some((via, t))
    }

    /// When [`Client::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        match &self.side {
            None => match (self.deadline, &self.held) {
                (Some(d), Some((_, _, until))) => Some(d.min(*until)),
                (d, held) => d.or(held.as_ref().map(|h| h.2)),
            },
            Some(Side::Get(rx)) => rx.poll_timeout(),
            Some(Side::Put(tx)) => tx.poll_timeout(),
        }
    }

    /// Something for a trace.
    pub fn poll_event(&mut self) -> Option<Event> {
        let own = self.events.pop_front();
        own.or_else(|| Side::ask(&mut self.side, Receiver::poll_event, Sender::poll_event))
    }

    /// Does the transfer still listen on port `via`? The driver keeps
    /// reading it while this is true (a late answer to the losing request
    /// must get its ERROR).
    pub fn uses(&self, via: Via) -> bool {
        self.sent[via].is_some()
    }

    /// A datagram arrived on our port `via` from `from`. Returns the file
    /// data it carries when that is the next in order (downloads): write
    /// it, then whatever [`Client::poll_stashed`] hands out.
    pub fn handle<'d>(
        &mut self,
        via: Via,
        now: Instant,
        from: SocketAddr,
        datagram: &'d [u8],
    ) -> Option<&'d [u8]> {
        if self.failed && self.side.is_none() {
            return None;
        }
        if let Some(side) = &mut self.side {
            if via == self.via {
                return match side {
                    Side::Get(rx) => rx.handle(now, from, datagram),
                    Side::Put(tx) => {
                        tx.handle(now, from, datagram);
                        None
                    }
                };
            }
            // The losing request's transfer: tell the server to stop it.
            if from.ip() == self.req.server.ip() && !matches!(datagram, [0, 5, ..]) {
                let error = Packet::error(ErrorCode::NotDefined, "superseded by another request");
                self.queue.push_back((via, error, from));
                self.events
                    .push_back(Event::Ignored("answer to the losing request"));
            }
            return None;
        }
        if from.ip() != self.req.server.ip() {
            self.events.push_back(Event::Stray(from));
            self.queue.push_back((via, unknown_tid(), from));
            return None;
        }
        let with_options = !self.req.options.is_empty() && via == WITH_OPTIONS;
        match Packet::parse(datagram) {
            Ok(Packet::Oack(raw)) => {
                let asked = if with_options {
                    self.req.options
                } else {
                    Options::default()
                };
                match check_oack(&asked, &raw) {
                    Ok(granted) => self.start(via, now, from, granted),
                    Err(why) => {
                        self.queue.push_back((
                            via,
                            Packet::error(ErrorCode::OptionRefused, &why),
                            from,
                        ));
                        self.fail_request(TransferError::Protocol(format!(
                            "the server's option acknowledgement is not acceptable: {why}"
                        )));
                    }
                }
                None
            }
            Ok(Packet::Data { block: 1, .. } | Packet::Ack { block: 0 })
                if self.req.write == matches!(datagram, [0, 4, ..]) =>
            {
                if via == PLAIN && !self.req.options.is_empty() && !self.dead[WITH_OPTIONS] {
                    // Both requests went out together: give the one with
                    // options as long again as this answer took to come.
                    if self.held.is_none() {
                        let took = self.last_sent[PLAIN]
                            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                        let grace = (took * 2).clamp(HOLD_MIN, self.req.first_wait);
                        self.held = Some((from, datagram.to_vec(), now + grace));
                    }
                    return None;
                }
                self.start(via, now, from, Options::default());
                match &mut self.side {
                    Some(Side::Get(rx)) => rx.handle(now, from, datagram),
                    _ => None,
                }
            }
            Ok(Packet::Error {
                code: ErrorCode::OptionRefused,
                ..
            }) if with_options => {
                self.dead[WITH_OPTIONS] = true;
                self.fallback = Some("the server refused the options (ERROR 8)");
                if self.sent[PLAIN].is_none() {
                    self.queue
                        .push_back((PLAIN, self.packets[PLAIN].clone(), self.req.server));
                }
                None
            }
            Ok(Packet::Error { code, message }) => {
                self.fail_request(TransferError::Peer {
                    peer: "server",
                    code,
                    message: message.into_owned(),
                });
                None
            }
            Ok(_) => ignore(&mut self.events, "unexpected answer to the request"),
            Err(_) => ignore(&mut self.events, "malformed datagram"),
        }
    }

    /// The request on `via` was answered by `peer`: the transfer begins.
    fn start(&mut self, via: Via, now: Instant, peer: SocketAddr, granted: Options) {
        if let Some((from, _, _)) = self.held.take()
            && via != PLAIN
        {
            let error = Packet::error(ErrorCode::NotDefined, "superseded by another request");
            self.queue.push_back((PLAIN, error, from));
        }
        let mut params = Params::negotiated(&granted, self.req.retries, self.req.timeout);
        if self.req.write
            && self.req.options.utimeout.is_some()
            && granted.utimeout.is_none()
            && granted.timeout.is_none()
        {
            // An upload to a server that took no timer option: how soon we
            // resend our own DATA is ours to choose, and a fixed second per
            // lost block is what made uploads crawl. (Downloads keep the
            // fixed timer: a receiver's early repeats would make the
            // course's server skip a block.)
            params.timer = RetransmitTimer::adaptive(self.req.first_wait);
        }
        if let (Some(at), false) = (self.sent[via], self.resent[via]) {
            params.timer.sample(now.saturating_duration_since(at));
        }
        if via == PLAIN && self.fallback.is_none() {
            self.fallback = Some(
                "no answer to the request with options; a plain request from another port was answered",
            );
        }
        self.via = via;
        self.deadline = None;
        self.events.push_back(Event::Negotiated {
            options: granted,
            fallback: self.fallback,
        });
        self.outcome = Some(Outcome {
            options: granted,
            fallback: self.fallback,
            peer,
        });
        self.side = Some(if self.req.write {
            Side::Put(Sender::new(peer, "server", params, None, now))
        } else {
            let first = (!granted.is_empty()).then(|| Packet::ack(0).to_vec());
            Side::Get(Receiver::new(peer, "server", params, first, None, now))
        });
    }

    /// Call when `now` has reached [`Client::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.side {
            Some(Side::Get(rx)) => return rx.handle_timeout(now),
            Some(Side::Put(tx)) => return tx.handle_timeout(now),
            None => {}
        }
        if let Some((from, datagram, until)) = self.held.take() {
            if now < until {
                self.held = Some((from, datagram, until));
            } else {
                // No OACK came: the plain transfer it is (its round trip
                // includes the wait, so it is not measured).
                self.resent[PLAIN] = true;
                self.start(PLAIN, now, from, Options::default());
                if let Some(Side::Get(rx)) = &mut self.side {
                    self.early = rx.handle(now, from, &datagram).map(<[u8]>::to_vec);
                }
                return;
            }
        }
        if self.failed || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        let waited = self.timer.rto();
        self.timeouts += 1;
        self.timer.timed_out();
        if self.timeouts > self.req.retries {
            let waited = self
                .sent
                .iter()
                .flatten()
                .min()
                .map_or(Duration::ZERO, |&first| {
                    now.saturating_duration_since(first)
                });
            self.fail_request(TransferError::TimedOut {
                waiting_for: "answer to the request".into(),
                retries: self.timeouts - 1,
                waited,
            });
            return;
        }
        for via in [WITH_OPTIONS, PLAIN] {
            if self.sent[via].is_some() && !self.dead[via] {
                self.queue
                    .push_back((via, self.packets[via].clone(), self.req.server));
            }
        }
        // Only a second unanswered round suggests a server that ignores
        // options; one lost datagram is more likely, and the plain transfer,
        // should it win, runs at RFC 1350's pace.
        if !self.req.options.is_empty()
            && self.sent[PLAIN].is_none()
            && self.timeouts >= PLAIN_AFTER
        {
            self.queue
                .push_back((PLAIN, self.packets[PLAIN].clone(), self.req.server));
        }
        let what = if self.req.write { "WRQ" } else { "RRQ" };
        self.events.push_back(Event::Timeout {
            waited,
            resend: what.into(),
        });
    }

    fn fail_request(&mut self, error: TransferError) {
        self.failed = true;
        self.deadline = None;
        self.error = Some(error);
    }

    /// Room for the next block of an upload (see [`Sender::buffer`]).
    pub fn buffer(&mut self) -> Option<&mut [u8]> {
        match self.side.as_mut()? {
            Side::Put(tx) => tx.buffer(),
            Side::Get(_) => None,
        }
    }

    /// The block from [`Client::buffer`] holds `len` bytes.
    pub fn filled(&mut self, len: usize) {
        if let Some(Side::Put(tx)) = &mut self.side {
            tx.filled(len);
        }
    }

    /// A kept block of a download now in order (see [`Receiver::poll_stashed`]).
    pub fn poll_stashed(&mut self) -> Option<Vec<u8>> {
        if let Some(early) = self.early.take() {
            return Some(early);
        }
        match self.side.as_mut()? {
            Side::Get(rx) => rx.poll_stashed(),
            Side::Put(_) => None,
        }
    }

    /// Returns a buffer from [`Client::poll_stashed`].
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if let Some(Side::Get(rx)) = &mut self.side {
            rx.recycle(buf);
        }
    }

    /// The downloaded file is safe: send the final ACK and linger (see [`Receiver::confirm`]).
    pub fn confirm(&mut self, now: Instant, repeat: bool) {
        if let Some(Side::Get(rx)) = &mut self.side {
            rx.confirm(now, repeat);
        }
    }

    /// The download could not be kept: tell the server.
    pub fn reject(&mut self, why: &str) {
        if let Some(Side::Get(rx)) = &mut self.side {
            rx.reject(why);
        }
    }

    /// Ends the transfer with `error` (a local file error, Ctrl-C), telling the server.
    pub fn fail(&mut self, error: TransferError) {
        match &mut self.side {
            Some(Side::Get(rx)) => rx.fail(error),
            Some(Side::Put(tx)) => tx.fail(error),
            None => self.fail_request(error),
        }
    }

    /// A datagram from port `via` to `dest` met a closed port (ICMP port
    /// unreachable). Before any answer, a closed request port means no
    /// server listens there at all: say so now rather than after every retry.
    pub fn handle_unreachable(&mut self, via: Via, dest: SocketAddr) {
        match &mut self.side {
            Some(Side::Get(rx)) if via == self.via => rx.handle_unreachable(dest),
            Some(Side::Put(tx)) if via == self.via => tx.handle_unreachable(dest),
            Some(_) => {}
            None if unmapped(dest) == unmapped(self.req.server) => {
                self.fail_request(TransferError::PeerGone("server"));
            }
            None => {}
        }
    }

    /// Where the client stands.
    pub fn status(&self) -> Status {
        match &self.side {
            _ if self.failed => Status::Failed,
            None => Status::Running,
            Some(Side::Get(rx)) => rx.status(),
            Some(Side::Put(tx)) => tx.status(),
        }
    }

    /// Why it failed (once).
    pub fn take_error(&mut self) -> Option<TransferError> {
        let own = self.error.take();
        own.or_else(|| Side::ask(&mut self.side, Receiver::take_error, Sender::take_error))
    }

    /// The port whose request was answered (the other one's transfer is refused).
    pub fn via(&self) -> Via {
        self.via
    }

    /// Is this an upload (a write request)?
    pub fn writes(&self) -> bool {
        self.req.write
    }

    /// Was the request answered? (If not, there may be no server at all.)
    pub fn answered(&self) -> bool {
        self.outcome.is_some()
    }

    /// Rounds of requests sent so far (each round from both ports).
    pub fn requests_sent(&self) -> u32 {
        if self.failed {
            self.timeouts
        } else {
            self.timeouts + 1
        }
    }

    /// How the transfer is run, once the request was answered.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The transfer's settings, once the request was answered.
    pub fn params(&self) -> Option<&Params> {
        match self.side.as_ref()? {
            Side::Get(rx) => Some(rx.params()),
            Side::Put(tx) => Some(tx.params()),
        }
    }

    /// File bytes moved so far.
    pub fn bytes(&self) -> u64 {
        match &self.side {
            Some(Side::Get(rx)) => rx.stats().bytes,
            Some(Side::Put(tx)) => tx.stats().bytes,
            None => 0,
        }
    }

    /// The transfer's statistics (empty until the request is answered).
    pub fn stats(&self) -> Stats {
        match &self.side {
            Some(Side::Get(rx)) => rx.stats().clone(),
            Some(Side::Put(tx)) => tx.stats().clone(),
            None => Stats::default(),
        }
    }
}

/// Checks a server's OACK against what was `asked`: a server may lower
/// `blksize` and `windowsize`, never raise them or grant them unasked.
fn check_oack(asked: &Options, raw: &[RawOption<'_>]) -> Result<Options, String> {
    let granted = Options::from_raw(raw).map_err(|e| e.to_string())?;
    if let Some(b) = granted.blksize
        && asked.blksize.is_none_or(|a| b > a)
    {
        return Err(format!("blksize {b} was not asked for"));
    }
    if let Some(w) = granted.windowsize
        && asked.windowsize.is_none_or(|a| w > a)
    {
        return Err(format!("windowsize {w} was not asked for"));
    }
    Ok(granted)
}

/// What a server allows clients to negotiate.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Largest block size granted.
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Retransmissions before a transfer is given up.
    pub retries: u32,
    /// Retransmission timeout when the client negotiates none.
    pub timeout: Duration,
}

/// The server's answer to a request's options: what it grants, and the
/// transfer's settings. `file_size` is the size to announce as `tsize`
/// (read requests in octet mode). A bad option value is refused (ERROR 8).
pub fn grant(
    policy: &Policy,
    write: bool,
    mode: Mode,
    raw: &[RawOption<'_>],
    file_size: Option<u64>,
) -> Result<(Options, Params), OptionError> {
    let asked = Options::from_raw(raw)?;
    let granted = Options {
        blksize: asked.blksize.map(|b| b.min(policy.max_blksize)),
        windowsize: asked
            .windowsize
            .map(|w| w.min(policy.max_windowsize.max(1))),
        timeout: asked.timeout,
        utimeout: asked.utimeout,
        tsize: match (asked.tsize, write) {
            (Some(size), true) => Some(size),
            // netascii changes the size on the wire; announcing the file's size would be wrong.
            (Some(_), false) if mode == Mode::Octet => file_size,
            _ => None,
        },
    };
    let params = Params::negotiated(&granted, policy.retries, policy.timeout);
    Ok((granted, params))
}
