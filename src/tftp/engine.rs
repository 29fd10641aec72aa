//! The driver of the TFTP state machines: one loop that moves datagrams between real sockets and a [`super::proto`] machine, and blocks between a file and it.
//!
//! Every protocol decision (windows, retransmission, duplicates, strays)
//! is made by the machines in [`super::proto`]; this loop only does what
//! they cannot: it reads the clock, waits on the sockets, reads and writes
//! the file, and says what happened on `--trace`. `tftp-get`, `tftp-put`
//! and `tftp-serve` all run their transfers through [`drive`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::packet::DATA_HEADER;
use super::proto::negotiate::Via;
use super::proto::{self, Client, Event, Receiver, Sender, Status, Transmit};
use crate::addr::display_addr;
use crate::output::Log;

pub use super::proto::{Params, Stats, TransferError};

/// Largest datagram we may receive (65507 bytes over IPv4, a little more over IPv6).
const MAX_DATAGRAM: usize = 65536;

/// How often a blocked wait looks at the abort flag.
const ABORT_POLL: Duration = Duration::from_millis(100);

/// What the driver needs of a machine: the common face of [`Sender`],
/// [`Receiver`] and [`Client`] (whose `via` picks one of the client's two
/// ports; the others have one).
pub trait Machine {
    /// The next datagram to send.
    fn transmit(&mut self, now: Instant) -> Option<(Via, Transmit<'_>)>;
    /// When [`Machine::timeout`] is due.
    fn deadline(&self) -> Option<Instant>;
    /// The deadline passed.
    fn timeout(&mut self, now: Instant);
    /// A datagram arrived on port `via`; returns file data to write now.
    fn datagram<'d>(
        &mut self,
        via: Via,
        now: Instant,
        from: SocketAddr,
        bytes: &'d [u8],
    ) -> Option<&'d [u8]>;
    /// A kept block now in order, to write next.
    fn stashed(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// A buffer from [`Machine::stashed`], written.
    fn recycle(&mut self, _buf: Vec<u8>) {}
    /// Room for the next block to send.
    fn buffer(&mut self) -> Option<&mut [u8]> {
        None
    }
    /// The block from [`Machine::buffer`] holds this many bytes.
    fn filled(&mut self, _len: usize) {}
    /// ICMP port unreachable came back on port `via`.
    /// A datagram sent from port `via` to `dest` met a closed port.
    fn unreachable(&mut self, via: Via, dest: SocketAddr);
    /// Something for the trace.
    fn event(&mut self) -> Option<Event>;
    /// Where it stands.
    fn status(&self) -> Status;
    /// Why it failed.
    fn error(&mut self) -> Option<TransferError>;
    /// End it, telling the peer.
    fn abort(&mut self, error: TransferError);
    /// The peer, once known.
    fn peer(&self) -> Option<SocketAddr>;
    /// File bytes moved so far.
    fn bytes(&self) -> u64;
    /// Has the peer answered from its transfer ID (see [`Sender::proven`])?
    fn proven(&self) -> bool {
        true
    }
    /// A receiver's file is safe: the final ACK may go out (see [`Receiver::confirm`]).
    fn confirm(&mut self, _now: Instant, _repeat: bool) {}
}

/// What every machine answers with its own method of the same meaning.
macro_rules! machine_basics {
    () => {
        fn deadline(&self) -> Option<Instant> {
            self.poll_timeout()
        }
        fn timeout(&mut self, now: Instant) {
            self.handle_timeout(now)
        }
        fn event(&mut self) -> Option<Event> {
            self.poll_event()
        }
        fn status(&self) -> Status {
            Self::status(self)
        }
        fn error(&mut self) -> Option<TransferError> {
            self.take_error()
        }
        fn abort(&mut self, error: TransferError) {
            self.fail(error)
        }
    };
}

/// The methods [`Sender`] and [`Receiver`] answer alike: one port, a known peer.
macro_rules! one_port_machine {
    () => {
        machine_basics!();
        fn transmit(&mut self, now: Instant) -> Option<(Via, Transmit<'_>)> {
            self.poll_transmit(now).map(|t| (0, t))
        }
        fn unreachable(&mut self, _: Via, dest: SocketAddr) {
            self.handle_unreachable(dest)
        }
        fn peer(&self) -> Option<SocketAddr> {
            Some(Self::peer(self))
        }
        fn bytes(&self) -> u64 {
            self.stats().bytes
        }
        fn proven(&self) -> bool {
            Self::proven(self)
        }
    };
}

/// What a machine that reads the file ([`Sender`], an upload's [`Client`])
/// answers: where the next block goes.
macro_rules! reading_machine {
    () => {
        fn buffer(&mut self) -> Option<&mut [u8]> {
            Self::buffer(self)
        }
        fn filled(&mut self, len: usize) {
            Self::filled(self, len)
        }
    };
}

/// What a machine that writes the file ([`Receiver`], a download's
/// [`Client`]) answers: blocks kept for later, and when the file is safe.
macro_rules! writing_machine {
    () => {
        fn stashed(&mut self) -> Option<Vec<u8>> {
            self.poll_stashed()
        }
        fn recycle(&mut self, buf: Vec<u8>) {
            Self::recycle(self, buf)
        }
        fn confirm(&mut self, now: Instant, repeat: bool) {
            Self::confirm(self, now, repeat)
        }
    };
}

impl Machine for Sender {
    one_port_machine!();
    reading_machine!();
    fn datagram<'d>(
        &mut self,
        _: Via,
        now: Instant,
        from: SocketAddr,
        b: &'d [u8],
    ) -> Option<&'d [u8]> {
        self.handle(now, from, b);
        None
    }
}

impl Machine for Receiver {
    one_port_machine!();
    writing_machine!();
    fn datagram<'d>(
        &mut self,
        _: Via,
        now: Instant,
        from: SocketAddr,
        b: &'d [u8],
    ) -> Option<&'d [u8]> {
        self.handle(now, from, b)
    }
}

impl Machine for Client {
    machine_basics!();
    reading_machine!();
    writing_machine!();
    fn transmit(&mut self, now: Instant) -> Option<(Via, Transmit<'_>)> {
        self.poll_transmit(now)
    }
    fn datagram<'d>(
        &mut self,
        via: Via,
        now: Instant,
        from: SocketAddr,
        b: &'d [u8],
    ) -> Option<&'d [u8]> {
        self.handle(via, now, from, b)
    }
    fn unreachable(&mut self, via: Via, dest: SocketAddr) {
        self.handle_unreachable(via, dest)
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.outcome().map(|o| o.peer)
    }
    fn bytes(&self) -> u64 {
        self.bytes()
    }
}

/// `--trace`: one line per datagram sent or received and per timeout, with
/// the time since the start (lesson 12, and a stuck PXE boot).
#[derive(Clone)]
pub struct Trace {
    log: Log,
    start: Instant,
    prefix: String,
}

impl Trace {
    /// Trace lines into `log`, timed from `start`, each after `prefix`
    /// (`tftp-serve` puts the client's address there).
    pub fn new(log: Log, start: Instant, prefix: String) -> Trace {
        Trace { log, start, prefix }
    }

    fn line(&self, now: Instant, args: std::fmt::Arguments<'_>) {
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        self.log
            .always(format_args!("{}+{t:.6} {args}", self.prefix));
    }

    /// A datagram that goes out (`→`) or comes in (`←`); the address is
    /// shown when it is not the peer's transfer ID.
    fn datagram(
        &self,
        now: Instant,
        out: bool,
        addr: SocketAddr,
        peer: Option<SocketAddr>,
        bytes: &[u8],
    ) {
        let arrow = if out { "→" } else { "←" };
        let what = proto::describe(bytes);
        if peer == Some(addr) {
            self.line(now, format_args!("{arrow} {what}"));
        } else {
            self.line(now, format_args!("{arrow} {} {what}", display_addr(&addr)));
        }
    }

    fn event(&self, now: Instant, event: &Event) {
        match event {
            Event::Timeout { waited, resend } => self.line(
                now,
                format_args!("⟲ timeout after {}, resending {resend}", human(*waited)),
            ),
            Event::Stray(from) => self.line(
                now,
                format_args!(
                    "  stray datagram from {}: not this transfer",
                    display_addr(from)
                ),
            ),
            Event::Ignored(why) => self.line(now, format_args!("  ignored: {why}")),
            Event::Negotiated { options, fallback } => match fallback {
                Some(why) => self.line(now, format_args!("  options: {options} ({why})")),
                None => self.line(now, format_args!("  options: {options}")),
            },
        }
    }
}

/// `52 ms`, `1.0 s`, `250 µs`.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} µs", d.as_micros())
    }
}

/// The file side of a transfer.
pub enum FileSide<'a> {
    /// Blocks to send come from here.
    Source(&'a mut dyn Read),
    /// Blocks received go here.
    Sink(&'a mut dyn Write),
}

impl FileSide<'_> {
    /// The same file, borrowed again for a shorter while.
    pub fn reborrow(&mut self) -> FileSide<'_> {
        match self {
            FileSide::Source(r) => FileSide::Source(&mut **r),
            FileSide::Sink(w) => FileSide::Sink(&mut **w),
        }
    }
}

/// Where [`drive`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// When the transfer is done or failed, or a receiver has every byte
    /// (its caller makes the file safe before the final ACK goes out).
    Done,
    /// When the client's request is answered (the transfer's settings are known), or earlier.
    Answered,
}

/// The sockets of a transfer: one, or a client's two (the second opened
/// when the machine first sends from it).
pub struct Ports {
    sockets: [Option<UdpSocket>; 2],
    bind: SocketAddr,
    nonblocking: [bool; 2],
    /// Destinations an ICMP error called unreachable, told to the machine
    /// only once the datagrams that came before the error are read (see
    /// [`refused`]).
    unreachable: Vec<(Via, SocketAddr)>,
}

impl Ports {
    /// One socket, already open (a server's transfer socket).
    pub fn one(socket: UdpSocket) -> Ports {
        let bind = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ports {
            sockets: [Some(socket), None],
            bind,
            nonblocking: [false; 2],
            unreachable: Vec::new(),
        }
    }

    /// A client's ports, bound to `bind` (any port) when first used.
    pub fn client(bind: SocketAddr) -> io::Result<Ports> {
        let first = UdpSocket::bind(bind)?;
        Ok(Ports {
            sockets: [Some(first), None],
            bind,
            nonblocking: [false; 2],
            unreachable: Vec::new(),
        })
    }

    /// The socket of port `via`, if open.
    pub fn get(&self, via: Via) -> Option<&UdpSocket> {
        self.sockets.get(via)?.as_ref()
    }

    fn open(&mut self, via: Via) -> io::Result<&UdpSocket> {
        if self.sockets[via].is_none() {
            self.sockets[via] = Some(UdpSocket::bind(self.bind)?);
        }
        let socket = self.sockets[via].as_ref().expect("opened above");
        if !self.nonblocking[via] {
            crate::sys::report_unreachable(socket);
            // Read first, wait only when nothing is queued: in a window's
            // burst the next block is usually there already, and one system
            // call beats two.
            socket.set_nonblocking(true)?;
            self.nonblocking[via] = true;
        }
        Ok(socket)
    }
}

/// What can stop a transfer from outside: Ctrl-C, a server shutting down.
pub type Abort<'a> = Option<&'a AtomicBool>;

/// Runs `machine` over `ports` until `until`; blocks come from or go to
/// `io`. The machine's error comes back as `Err`. `progress` is told the
/// bytes moved whenever they change, and once when the peer first answers
/// ([`Machine::proven`]).
pub fn drive(
    machine: &mut dyn Machine,
    ports: &mut Ports,
    mut io: Option<FileSide<'_>>,
    until: Until,
    abort: Abort<'_>,
    trace: Option<&Trace>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut reported = 0;
    let mut proven = machine.proven();
    loop {
        let now = Instant::now();
        if let Some(FileSide::Source(source)) = &mut io {
            while let Some(slot) = machine.buffer() {
                match read_full(*source, slot) {
                    Ok(n) => machine.filled(n),
                    Err(error) => machine.abort(TransferError::File {
                        what: "read error",
                        error,
                    }),
                }
            }
        }
        send_all(machine, ports, now, trace)?;
        match machine.status() {
            Status::Running | Status::Lingering => {}
            Status::Complete | Status::Done => return Ok(()),
            Status::Failed => {
                return Err(machine
                    .error()
                    .unwrap_or(TransferError::Protocol("transfer failed".into())));
            }
        }
        if until == Until::Answered && machine.peer().is_some() {
            return Ok(());
        }
        if abort.is_some_and(|a| a.load(Ordering::Relaxed)) {
            machine.abort(TransferError::Aborted);
            continue;
        }
        match receive(ports, &mut buf) {
            Ok(Some((via, n, from))) => {
                // The time it arrived, not the loop's: round trips are measured from it.
                let now = Instant::now();
                if let Some(trace) = trace {
                    trace.datagram(now, false, from, machine.peer(), &buf[..n]);
                }
                if let Some(data) = machine.datagram(via, now, from, &buf[..n]) {
                    write_block(machine, &mut io, data);
                    while let Some(kept) = machine.stashed() {
                        write_block(machine, &mut io, &kept);
                        machine.recycle(kept);
                    }
                }
                let bytes = machine.bytes();
                if bytes != reported || !proven && machine.proven() {
                    reported = bytes;
                    proven = true;
                    progress(bytes);
                }
                continue;
            }
            Ok(None) if !ports.unreachable.is_empty() => {
                for (via, dest) in std::mem::take(&mut ports.unreachable) {
                    machine.unreachable(via, dest);
                }
                continue;
            }
            Ok(None) => {}
            Err((via, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                refused(ports, via);
                continue;
            }
            Err((_, e)) => return Err(TransferError::Socket(e)),
        }
        let Some(deadline) = machine.deadline() else {
            // Nothing to wait for (the machine is idle); should not happen while running.
            return Err(machine
                .error()
                .unwrap_or(TransferError::Protocol("transfer stalled".into())));
        };
        if now >= deadline {
            machine.timeout(now);
            // A timeout can hand over data too (a client's held DATA 1).
            while let Some(kept) = machine.stashed() {
                write_block(machine, &mut io, &kept);
                machine.recycle(kept);
            }
            events(machine, now, trace);
            continue;
        }
        let sockets: Vec<&UdpSocket> = ports.sockets.iter().flatten().collect();
        crate::sys::wait_readable_any(&sockets, (deadline - now).min(ABORT_POLL))
            .map_err(TransferError::Socket)?;
    }
}

/// Writes one block to the sink; a failure ends the transfer (ERROR to the peer).
fn write_block(machine: &mut dyn Machine, io: &mut Option<FileSide<'_>>, data: &[u8]) {
    if let Some(FileSide::Sink(sink)) = io
        && let Err(error) = sink.write_all(data)
    {
        machine.abort(TransferError::File {
            what: "write error",
            error,
        });
    }
}

fn events(machine: &mut dyn Machine, now: Instant, trace: Option<&Trace>) {
    while let Some(event) = machine.event() {
        if let Some(trace) = trace {
            trace.event(now, &event);
        }
    }
}

/// Sends everything the machine queued.
fn send_all(
    machine: &mut dyn Machine,
    ports: &mut Ports,
    now: Instant,
    trace: Option<&Trace>,
) -> Result<(), TransferError> {
    events(machine, now, trace);
    let peer = machine.peer();
    while let Some((via, t)) = machine.transmit(now) {
        if let Some(trace) = trace {
            trace.datagram(now, true, t.to, peer, t.bytes);
        }
        let socket = ports.open(via).map_err(TransferError::Socket)?;
        loop {
            match socket.send_to(t.bytes, t.to) {
                Ok(_) => break,
                // A full send buffer drains as the kernel hands datagrams on.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::sys::wait_writable(socket, ABORT_POLL).map_err(TransferError::Socket)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error about an earlier datagram, reported now
                // instead of sending this one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused(ports, via);
                    break;
                }
                Err(e) if crate::net::is_transient(&e) => break,
                Err(e) => return Err(TransferError::Socket(e)),
            }
        }
    }
    events(machine, now, trace);
    Ok(())
}

/// Port `via` reported "connection refused": some datagram it sent met a
/// closed port. The error queue says which destinations (see
/// [`crate::sys::report_unreachable`]); a connected socket's is its peer.
fn refused(ports: &mut Ports, via: Via) {
    let Some(socket) = ports.get(via) else { return };
    let mut dests = crate::sys::unreachable_destinations(socket);
    if dests.is_empty()
        && let Ok(peer) = socket.peer_addr()
    {
        dests.push(peer);
    }
    // Not told to the machine yet: Linux reports the error before the
    // datagrams already queued, and one of those may be the peer's ERROR
    // saying why it left ("file too large"), which is the better message.
    ports
        .unreachable
        .extend(dests.into_iter().map(|d| (via, d)));
}

/// A datagram waiting on port `.0`: its length and its sender.
type Received = (Via, usize, SocketAddr);

/// One datagram from any open port, without waiting.
fn receive(ports: &mut Ports, buf: &mut [u8]) -> Result<Option<Received>, (Via, io::Error)> {
    for via in 0..2 {
        if ports.sockets[via].is_none() {
            continue;
        }
        let socket = ports.open(via).map_err(|e| (via, e))?;
        loop {
            match socket.recv_from(buf) {
                Ok((n, from)) => return Ok(Some((via, n, from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error about something we sent (see `refused`).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err((via, e));
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => return Err((via, e)),
            }
        }
    }
    Ok(None)
}

/// After a receiver's file is safe: the final ACK, and the linger (see
/// [`Receiver::confirm`]). The socket is connected to the peer first, so
/// that Linux reports ICMP "port unreachable" when the sender has closed
/// its transfer ID, which ends the linger at once.
pub fn linger(machine: &mut dyn Machine, ports: &mut Ports, via: Via, trace: Option<&Trace>) {
    let connected = match (ports.get(via), machine.peer()) {
        (Some(socket), Some(peer)) => socket.connect(peer).is_ok(),
        _ => false,
    };
    machine.confirm(Instant::now(), connected);
    let _ = drive(machine, ports, None, Until::Done, None, trace, &mut |_| {});
}

/// Makes the socket's kernel buffers big enough for a whole window, so a
/// burst of W blocks is not dropped by a full receive queue. The kernel
/// caps the size (`net.core.rmem_max`); what it grants is what we get.
pub(crate) fn size_buffers(socket: &UdpSocket, blksize: usize, windowsize: u16) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::packet::{Options, Packet};
    use std::thread;

    /// A receiver whose last block (7) has arrived, on a socket of its own, talking to `sender`.
    fn complete_receiver(sender: SocketAddr, srtt: bool) -> (Receiver, Ports) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let now = Instant::now();
        let opts = Options {
            blksize: Some(8),
            utimeout: srtt.then_some(20),
            ..Options::default()
        };
        let params = Params::negotiated(&opts, 6, Duration::from_millis(300));
        let mut rx = Receiver::new(sender, "server", params, None, None, now);
        for block in 1..=7u16 {
            let len = if block == 7 { 3 } else { 8 };
            let data = Packet::Data {
                block,
                data: &[0; 8][..len],
            }
            .encode();
            rx.handle(now, sender, &data);
        }
        while rx.poll_transmit(now).is_some() {}
        assert!(matches!(rx.status(), Status::Complete));
        (rx, Ports::one(socket))
    }

    #[test]
    fn linger_ends_when_the_sender_closes_its_transfer_id() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let peer = sender.local_addr().unwrap();
        // The sender gets the final ACK and is done: its socket closes.
        let done = thread::spawn(move || {
            let mut buf = [0u8; 16];
            let (n, _) = sender.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        let (mut rx, mut ports) = complete_receiver(peer, true);
        let started = Instant::now();
        linger(&mut rx, &mut ports, 0, None);
        let took = started.elapsed();
        assert_eq!(done.join().unwrap(), Packet::ack(7));
        assert!(matches!(rx.status(), Status::Done));
        assert!(
            took < Duration::from_millis(150),
            "the closed transfer ID ended the linger: {took:?}"
        );
    }

    #[test]
    fn linger_without_a_sender_ends_at_once() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = sender.local_addr().unwrap();
        drop(sender);
        let (mut rx, mut ports) = complete_receiver(peer, false);
        let started = Instant::now();
        linger(&mut rx, &mut ports, 0, None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
