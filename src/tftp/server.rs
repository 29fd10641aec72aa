//! `tftp-serve`: answer read and write requests on one port, each transfer on a thread and a socket of its own.
//!
//! The course's server (lesson 12) reads a request on port 69, then serves
//! the whole file before it looks at the next request, so one slow client
//! blocks everyone. Here the request port only reads requests: each one
//! gets a new socket (a new port: the transfer ID) and a thread, as the
//! course's multi-threaded TCP server (lesson 04) does with connections.
//!
//! Safety rules, all from real servers' mistakes: every path stays inside
//! the served directory ([`super::fs::Root`]); writing is off unless asked
//! for, and an upload lands under its real name only once complete
//! ([`super::fs::AtomicFile`]); a hostile datagram on the request port gets
//! an ERROR no bigger than itself, or nothing, never a crash; and requests
//! that never answer cannot hold every slot (`make_room`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::engine::{self, FileSide, Ports, Stats, Trace, TransferError, Until};
use super::fs::{BUFFER_SIZE, PathError, Root};
use super::netascii::{NetasciiReader, NetasciiWriter};
use super::packet::{ErrorCode, MAX_BLKSIZE, Mode, Options, Packet, PacketError};
use super::proto::negotiate::{Policy, grant};
use super::proto::{Receiver, Sender};
use crate::addr::{Family, display_addr};
use crate::net::{ListenSpec, udp_socket};
use crate::output::{Io, Log};
use crate::shutdown::Shutdown;

/// How `tftp-serve` behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The directory served.
    pub root: Root,
    /// Accept write requests (uploads) of new files.
    pub allow_write: bool,
    /// Let uploads replace existing files.
    pub overwrite: bool,
    /// Largest upload accepted, in bytes.
    pub max_size: Option<u64>,
    /// Largest block size granted.
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Transfers at once; more are refused with "server busy" (after the
    /// oldest transfer whose client never answered has been stopped for
    /// them, if there is one).
    pub max_transfers: usize,
    /// Transfers at once from one IP address (`None`: no limit, since a
    /// classroom behind one NAT shares one address).
    pub max_per_client: Option<usize>,
    /// Retransmissions before a transfer is given up.
    pub retries: u32,
    /// Retransmission timeout when the client negotiates none.
    pub timeout: Duration,
    /// After Ctrl-C, how long running transfers may go on.
    pub grace: Duration,
    /// `--trace`: log every datagram of every transfer.
    pub trace: bool,
}

impl Config {
    /// Read-only serving of `root` with the usual limits.
    pub fn new(root: Root) -> Config {
        Config {
            root,
            allow_write: false,
            overwrite: false,
            max_size: None,
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_transfers: 256,
            max_per_client: None,
            retries: 6,
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(5),
            trace: false,
        }
    }
}

/// Totals printed when the server stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Transfers that completed.
    pub completed: u64,
    /// Transfers that failed or were refused.
    pub failed: u64,
    /// File bytes sent.
    pub bytes_sent: u64,
    /// File bytes received.
    pub bytes_received: u64,
}

/// State shared by the request loop and the transfer threads.
struct Shared {
    cfg: Config,
    log: Log,
    /// The running transfers, by client address and port. A request a
    /// client repeats (our first answer was lost) belongs to its transfer.
    clients: Mutex<HashMap<SocketAddr, Slot>>,
    /// Addresses whose clients answered lately, and when (see [`make_room`]).
    answered: Mutex<HashMap<IpAddr, Instant>>,
    summary: Mutex<Summary>,
    /// Where transfer sockets bind: the request socket's address, any port.
    spec: ListenSpec,
}

/// Receive buffer of the request port, in bytes.
const REQUEST_BUFFER: usize = 4 << 20;

/// How long an address that answered counts as one that answers.
const ANSWERED_FOR: Duration = Duration::from_secs(600);

/// At most this many addresses are remembered as having answered.
const ANSWERED_MAX: usize = 4096;

impl Shared {
    /// A client at `ip` answered from its transfer ID.
    fn note_answer(&self, ip: IpAddr) {
        let mut answered = lock(&self.answered);
        if answered.len() >= ANSWERED_MAX && !answered.contains_key(&ip) {
            answered.retain(|_, at| at.elapsed() < ANSWERED_FOR);
            if answered.len() >= ANSWERED_MAX {
                answered.clear();
            }
        }
        answered.insert(ip, Instant::now());
    }

    fn answered_lately(&self, ip: IpAddr) -> bool {
        lock(&self.answered)
            .get(&ip)
            .is_some_and(|at| at.elapsed() < ANSWERED_FOR)
    }
}

/// One running transfer, as the request loop sees it.
struct Slot {
    started: Instant,
    /// The client has answered from its port: its address is real.
    proven: Arc<AtomicBool>,
    /// Stop the transfer (shutdown, or its slot went to another client).
    stop: Arc<AtomicBool>,
}

/// What stops [`serve`]: the request socket failed. (A transfer that fails is
/// logged and counted in [`Summary::failed`]; it never stops the server.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading requests from the socket failed.
    #[error(transparent)]
    Socket(io::Error),
}

impl crate::error::Blame for Error {
    fn is_usage(&self) -> bool {
        false
    }
}

/// Serves requests arriving on `socket` until `shutdown` triggers, then
/// lets running transfers finish for `cfg.grace` and aborts the rest.
/// Logs `listening on ADDR` first. It writes files, never to `io.out`.
pub fn serve(
    socket: UdpSocket,
    cfg: &Config,
    io: Io,
    shutdown: &Shutdown,
) -> Result<Summary, Error> {
    let log = &io.log;
    let cfg = cfg.clone();
    let local = socket.local_addr().map_err(Error::Socket)?;
    log.always(format_args!("listening on {}", display_addr(&local)));
    let spec = ListenSpec {
        bind: (!local.ip().is_unspecified()).then_some(local.ip()),
        port: 0,
        family: if local.is_ipv4() {
            Family::V4
        } else {
            Family::Any
        },
    };
    let shared = Arc::new(Shared {
        cfg,
        log: log.clone(),
        clients: Mutex::new(HashMap::new()),
        answered: Mutex::new(HashMap::new()),
        summary: Mutex::new(Summary::default()),
        spec,
    });
    // Requests arrive in bursts (a classroom booting at once, or a flood
    // to make room against): room for a few thousand before the kernel
    // drops any. The kernel caps what it grants at net.core.rmem_max.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(REQUEST_BUFFER);
    // A UDP socket cannot be "shut down" to wake a blocked recv, so the
    // request loop wakes up every so often to look at the stop flag.
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(Error::Socket)?;
    let mut buf = vec![0u8; 65536];
    let mut threads: Vec<thread::JoinHandle<()>> = Vec::new();
    while !shutdown.is_triggered() {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if crate::net::is_transient(&e) => continue,
            Err(e) => return Err(Error::Socket(e)),
        };
        threads.retain(|t| !t.is_finished());
        if let Some(t) = dispatch(&shared, &socket, &buf[..n], from) {
            threads.push(t);
        }
    }
    drop(socket);
    let deadline = Instant::now() + shared.cfg.grace;
    let running = || lock(&shared.clients).len();
    if running() > 0 {
        log.info(format_args!(
            "stopping: waiting up to {:.0} s for {} transfer(s)",
            shared.cfg.grace.as_secs_f64(),
            running()
        ));
    }
    while running() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    for slot in lock(&shared.clients).values() {
        slot.stop.store(true, Ordering::SeqCst);
    }
    for t in threads {
        let _ = t.join();
    }
    let summary = *shared.summary.lock().unwrap_or_else(|e| e.into_inner());
    Ok(summary)
}

/// One datagram on the request port: start a transfer, or answer with an
/// ERROR (never to an ERROR: two servers must not bounce errors forever).
fn dispatch(
    shared: &Arc<Shared>,
    socket: &UdpSocket,
    bytes: &[u8],
    from: SocketAddr,
) -> Option<thread::JoinHandle<()>> {
    let refuse = |code: ErrorCode, message: &str| {
        let _ = socket.send_to(&Packet::error(code, message), from);
    };
    // What is not a request gets an ERROR no bigger than itself, or nothing:
    // from a forged source address, a bigger answer would make us an
    // amplifier aimed at someone else.
    let answer = |code: ErrorCode, message: &str| {
        if let Some(error) = error_within(code, message, bytes.len()) {
            let _ = socket.send_to(&error, from);
        }
    };
    let request = match Packet::parse(bytes) {
        Ok(Packet::Rrq(r)) => (false, r),
        Ok(Packet::Wrq(r)) => (true, r),
        Ok(Packet::Error { .. }) => return None,
        Ok(other) => {
            answer(
                ErrorCode::IllegalOperation,
                &format!("expected a request, got {:?}", other.opcode()),
            );
            return None;
        }
        Err(PacketError::UnknownMode(mode)) => {
            answer(
                ErrorCode::IllegalOperation,
                &format!("unknown transfer mode {mode:?}"),
            );
            return None;
        }
        Err(e) => {
            if bytes.len() >= 2 && bytes[..2] != [0, 5] {
                answer(
                    ErrorCode::IllegalOperation,
                    &format!("malformed request: {e}"),
                );
            }
            return None;
        }
    };
    let (write, r) = request;
    let request = OwnedRequest {
        write,
        filename: r.filename.into_owned(),
        mode: r.mode,
        options: r
            .options
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
    };
    let mut clients = lock(&shared.clients);
    if clients.contains_key(&from) {
        // The transfer already running for this port answers on its own timer.
        if shared.cfg.trace {
            shared.log.always(format_args!(
                "{} repeated request, absorbed by its running transfer",
                display_addr(&from)
            ));
        }
        return None;
    }
    // Told to the client, logged and counted; the table is unlocked first.
    let turn_away = |told: &str, why: String| {
        refuse(ErrorCode::NotDefined, told);
        shared
            .log
            .warn(format_args!("{}: refused, {why}", display_addr(&from)));
        lock(&shared.summary).failed += 1;
    };
    if let Some(limit) = shared.cfg.max_per_client
        && clients.keys().filter(|a| a.ip() == from.ip()).count() >= limit
    {
        drop(clients);
        turn_away(
            &format!("too many transfers from your address at once (at most {limit})"),
            format!(
                "already {limit} transfers from {} (--max-per-client)",
                from.ip()
            ),
        );
        return None;
    }
    let max = shared.cfg.max_transfers;
    let full = clients.len() >= max;
    // A stopped transfer leaves within a poll of its flag and holds its
    // slot until then: at most as many again may be on their way out.
    let stopped = if full && clients.len() < 2 * max {
        make_room(shared, &clients, from)
    } else {
        None
    };
    if full && stopped.is_none() {
        drop(clients);
        turn_away(
            "server busy, try again later",
            format!("{max} transfers running (--max-transfers)"),
        );
        return None;
    }
    let proven = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    clients.insert(
        from,
        Slot {
            started: Instant::now(),
            proven: Arc::clone(&proven),
            stop: Arc::clone(&stop),
        },
    );
    drop(clients);
    if let Some((addr, waited)) = stopped {
        shared.log.info(format_args!(
            "{}: transfer stopped after {:.1} s without an answer, to make room for {}",
            display_addr(&addr),
            waited.as_secs_f64(),
            display_addr(&from)
        ));
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("tftp-transfer".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let outcome = transfer(&worker, &request, from, &proven, &stop);
            // Logged and freed under one lock: a Ctrl-C that follows the line
            // finds no transfer to wait for, and the totals never come before it.
            let mut clients = lock(&worker.clients);
            if let Some(line) = outcome {
                worker.log.info(format_args!("{line}"));
            }
            clients.remove(&from);
        });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            lock(&shared.clients).remove(&from);
            refuse(ErrorCode::NotDefined, "server busy, try again later");
            shared
                .log
                .warn(format_args!("cannot start a transfer thread: {e}"));
            None
        }
    }
}

/// Every slot is taken: stop the oldest transfer whose client has never
/// answered, so that `from` can have its slot; returns what was stopped.
///
/// A request costs one datagram and may come from a forged address, so an
/// unanswered transfer is the cheapest thing to give up. A flood of such
/// requests then only ever displaces its own kind: a client that answers
/// keeps its transfer. A request from an address that has recently answered
/// may displace any unanswered transfer; anyone else only one that has
/// waited a full timeout, so that a steady flood cannot stop a new client's
/// transfer in the moment before its first answer arrives.
fn make_room(
    shared: &Shared,
    clients: &HashMap<SocketAddr, Slot>,
    from: SocketAddr,
) -> Option<(SocketAddr, Duration)> {
    let patience = if shared.answered_lately(from.ip()) {
        Duration::ZERO
    } else {
        shared.cfg.timeout
    };
    let (addr, slot) = clients
        .iter()
        .filter(|(_, s)| !s.proven.load(Ordering::SeqCst) && !s.stop.load(Ordering::SeqCst))
        .filter(|(_, s)| s.started.elapsed() >= patience)
        .min_by_key(|(_, s)| s.started)?;
    slot.stop.store(true, Ordering::SeqCst);
    Some((*addr, slot.started.elapsed()))
}

/// An ERROR packet of at most `limit` bytes: `message` cut (at a character
/// boundary) to fit, or `None` when not even an empty message fits.
fn error_within(code: ErrorCode, message: &str, limit: usize) -> Option<Vec<u8>> {
    // Opcode, code, and the message's terminating NUL.
    let room = limit.checked_sub(5)?;
    let mut end = message.len().min(room);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Some(Packet::error(code, &message[..end]))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request copied out of the receive buffer, for its thread.
struct OwnedRequest {
    write: bool,
    filename: Vec<u8>,
    mode: Mode,
    options: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a transfer thread reports in its log line.
struct Outcome {
    stats: Stats,
    options: Options,
    /// When the data was all through (before lingering for a lost final ACK).
    done: Instant,
}

/// A transfer refused or failed: what to tell the client, and what to log.
struct Failure {
    code: ErrorCode,
    message: String,
    /// Already reported to the client by the engine.
    sent: bool,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            sent: false,
        }
    }
}

impl From<TransferError> for Failure {
    fn from(e: TransferError) -> Failure {
        Failure {
            code: ErrorCode::NotDefined,
            message: e.to_string(),
            sent: true,
        }
    }
}

fn path_failure(e: PathError) -> Failure {
    let code = match e {
        PathError::NotFound => ErrorCode::FileNotFound,
        PathError::Exists => ErrorCode::FileExists,
        _ => ErrorCode::AccessViolation,
    };
    Failure::new(code, e.to_string())
}

/// Runs one transfer, counts it in the summary, and returns its log line
/// (None: it could not start, and said so).
fn transfer(
    shared: &Shared,
    request: &OwnedRequest,
    peer: SocketAddr,
    proven: &AtomicBool,
    stop: &AtomicBool,
) -> Option<String> {
    let started = Instant::now();
    let socket = match udp_socket(shared.spec) {
        Ok(s) => s,
        Err(e) => {
            shared.log.warn(format_args!(
                "{}: cannot open a transfer socket: {e}",
                display_addr(&peer)
            ));
            return None;
        }
    };
    let trace = shared.cfg.trace.then(|| {
        Trace::new(
            shared.log.clone(),
            started,
            format!("{} ", display_addr(&peer)),
        )
    });
    let mut ports = Ports::one(socket);
    let mut run = Run {
        shared,
        request,
        peer,
        ports: &mut ports,
        trace: trace.as_ref(),
        proven,
        stop,
    };
    let result = if request.mode == Mode::Mail {
        Err(Failure::new(
            ErrorCode::IllegalOperation,
            "mail mode is not supported",
        ))
    } else if request.write {
        run.receive()
    } else {
        run.send()
    };
    let what = if request.write { "WRQ" } else { "RRQ" };
    let name = String::from_utf8_lossy(&request.filename);
    let head = format!("{} {what} {:?} {}", display_addr(&peer), name, request.mode);
    let mut summary = lock(&shared.summary);
    Some(match result {
        Ok(Outcome {
            stats,
            options,
            done,
        }) => {
            let secs = done.duration_since(started).as_secs_f64();
            summary.completed += 1;
            if request.write {
                summary.bytes_received += stats.bytes;
            } else {
                summary.bytes_sent += stats.bytes;
            }
            drop(summary);
            let verb = match (request.write, stats.confirmed) {
                (true, _) => "received",
                (false, true) => "sent",
                (false, false) => "sent (final ACK never came)",
            };
            format!(
                "{head}: {verb} {} bytes in {secs:.2} s ({:.1} MiB/s), options: {options}{}",
                stats.bytes,
                stats.bytes as f64 / 1048576.0 / secs.max(1e-6),
                stats.notes(),
            )
        }
        Err(f) => {
            summary.failed += 1;
            drop(summary);
            if !f.sent
                && let Some(socket) = ports.get(0)
            {
                let _ = socket.send_to(&Packet::error(f.code, &f.message), peer);
            }
            format!("{head}: failed: {}", f.message)
        }
    })
}

/// The server's side of a transfer: the policy, the negotiation, and the state machine on the transfer socket.
struct Run<'a> {
    shared: &'a Shared,
    request: &'a OwnedRequest,
    peer: SocketAddr,
    ports: &'a mut Ports,
    trace: Option<&'a Trace>,
    /// Set once the client answers (see [`make_room`]).
    proven: &'a AtomicBool,
    stop: &'a AtomicBool,
}

impl Run<'_> {
    /// Reads the options of the request and decides what the server grants.
    /// `file_size` is the size to announce (read requests) or `None`.
    fn negotiate(
        &self,
        file_size: Option<u64>,
    ) -> Result<(Options, super::proto::Params), Failure> {
        let cfg = &self.shared.cfg;
        let policy = Policy {
            max_blksize: cfg.max_blksize,
            max_windowsize: cfg.max_windowsize,
            retries: cfg.retries,
            timeout: cfg.timeout,
        };
        let raw: Vec<_> = self
            .request
            .options
            .iter()
            .map(|(n, v)| (Cow::Borrowed(&n[..]), Cow::Borrowed(&v[..])))
            .collect();
        let (granted, params) = grant(
            &policy,
            self.request.write,
            self.request.mode,
            &raw,
            file_size,
        )
        .map_err(|e| Failure::new(ErrorCode::OptionRefused, e.to_string()))?;
        if let Some(socket) = self.ports.get(0) {
            engine::size_buffers(socket, params.blksize, params.windowsize);
        }
        Ok((granted, params))
    }

    fn drive(
        &mut self,
        machine: &mut dyn engine::Machine,
        io: Option<FileSide<'_>>,
        until: Until,
    ) -> Result<(), TransferError> {
        engine::drive(
            machine,
            self.ports,
            io,
            until,
            Some(self.stop),
            self.trace,
            &mut |_| {
                if !self.proven.swap(true, Ordering::SeqCst) {
                    self.shared.note_answer(self.peer.ip());
                }
            },
        )
    }

    /// A read request: send the file.
    fn send(&mut self) -> Result<Outcome, Failure> {
        let shared = self.shared;
        let file = shared
            .cfg
            .root
            .open(&self.request.filename)
            .map_err(path_failure)?;
        let size = file.metadata().ok().map(|m| m.len());
        let (options, params) = self.negotiate(size)?;
        let oack = (!options.is_empty()).then(|| Packet::Oack(options.to_raw()).encode());
        let mut tx = Sender::new(self.peer, "client", params, oack, Instant::now());
        let mut file = BufReader::with_capacity(BUFFER_SIZE, file);
        let mut text;
        let source: &mut dyn io::Read = if self.request.mode == Mode::Netascii {
            text = NetasciiReader::new(file);
            &mut text
        } else {
            &mut file
        };
        self.drive(&mut tx, Some(FileSide::Source(source)), Until::Done)?;
        Ok(Outcome {
            stats: tx.stats().clone(),
            options,
            done: Instant::now(),
        })
    }

    /// A write request: receive the file under a temporary name, rename it
    /// into place, and only then send the final ACK.
    fn receive(&mut self) -> Result<Outcome, Failure> {
        let cfg = &self.shared.cfg;
        if !cfg.allow_write {
            return Err(Failure::new(
                ErrorCode::AccessViolation,
                "uploads are disabled (tftp-serve --allow-write enables them)",
            ));
        }
        // Created now, under a temporary name: a failure from here on
        // drops it, which removes it.
        let mut file = cfg
            .root
            .create(&self.request.filename, cfg.overwrite)
            .map_err(path_failure)?;
        let (options, params) = self.negotiate(None)?;
        if let (Some(size), Some(limit)) = (options.tsize, cfg.max_size)
            && size > limit
        {
            return Err(Failure::new(
                ErrorCode::DiskFull,
                format!("file of {size} bytes exceeds the limit of {limit} bytes"),
            ));
        }
        let first = if options.is_empty() {
            Packet::ack(0).to_vec()
        } else {
            Packet::Oack(options.to_raw()).encode()
        };
        let mut rx = Receiver::new(
            self.peer,
            "client",
            params,
            Some(first),
            cfg.max_size,
            Instant::now(),
        );
        if self.request.mode == Mode::Netascii {
            let mut text = NetasciiWriter::new(&mut file);
            self.drive(&mut rx, Some(FileSide::Sink(&mut text)), Until::Done)?;
            if let Err(e) = text.finish() {
                return Err(self.fail(&mut rx, e));
            }
        } else {
            self.drive(&mut rx, Some(FileSide::Sink(&mut file)), Until::Done)?;
        }
        if let Err(e) = file.commit(cfg.overwrite) {
            return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                Failure::new(ErrorCode::FileExists, "file already exists")
            } else {
                self.fail(&mut rx, e)
            });
        }
        let done = Instant::now();
        engine::linger(&mut rx, self.ports, 0, self.trace);
        Ok(Outcome {
            stats: rx.stats().clone(),
            options,
            done,
        })
    }

    /// The upload could not be written: ERROR to the client, and the failure.
    fn fail(&mut self, rx: &mut Receiver, error: io::Error) -> Failure {
        rx.fail(TransferError::File {
            what: "write error",
            error,
        });
        match self.drive(rx, None, Until::Done) {
            Err(e) => Failure::from(e),
            Ok(()) => Failure::new(ErrorCode::NotDefined, "write error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_never_outgrows_the_datagram_it_answers() {
        assert_eq!(error_within(ErrorCode::IllegalOperation, "x", 2), None);
        assert_eq!(error_within(ErrorCode::IllegalOperation, "x", 4), None);
        assert_eq!(
            error_within(ErrorCode::IllegalOperation, "malformed", 5).unwrap(),
            b"\0\x05\0\x04\0"
        );
        assert_eq!(
            error_within(ErrorCode::IllegalOperation, "malformed", 8).unwrap(),
            b"\0\x05\0\x04mal\0"
        );
        // Cut at a character boundary: "文" is 3 bytes, and 2 fit.
        assert_eq!(
            error_within(ErrorCode::NotDefined, "a文", 8).unwrap(),
            b"\0\x05\0\0a\0"
        );
        let full = error_within(ErrorCode::NotDefined, "short", 600).unwrap();
        assert_eq!(full, Packet::error(ErrorCode::NotDefined, "short"));
        for limit in 0..40 {
            let sent = error_within(ErrorCode::NotDefined, "expected a request, got Ack", limit);
            assert!(sent.is_none_or(|e| e.len() <= limit), "{limit}");
        }
    }
}
