//! Lossy UDP relay for TFTP tests: a NAT-like path on loopback between clients and a server that drops, duplicates (at once or late) and reorders datagrams, seeded so a failing run replays.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;

/// Largest datagram a UDP socket can hand us; a smaller buffer would silently truncate.
const MAX_DATAGRAM: usize = 65535;

/// A datagram held back for reordering is sent anyway after this long without a
/// successor, so reordering alone never loses a transfer's last packet.
const HOLD: Duration = Duration::from_millis(1);

/// How many of the latest events [`LossyProxy::trace`] keeps.
const TRACE_LEN: usize = 400;

/// How much of each datagram a trace event keeps: enough for a request's or an
/// OACK's usual options.
const TRACE_HEAD: usize = 96;

/// Longest the relay thread sleeps without looking at its stop flag. `Drop` wakes it
/// at once through its control socket; this is only a backstop.
const IDLE: Duration = Duration::from_millis(100);

/// Fault probabilities for one direction, each in `0.0..=1.0`, decided per datagram.
///
/// Kept to these three fields so struct literals keep compiling; the late duplicate
/// lives in [`Link`], which every `Faults` converts into.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Chance that a datagram is discarded.
    pub drop: f64,
    /// Chance that a forwarded datagram is sent twice, the copy right after it.
    pub duplicate: f64,
    /// Chance that a datagram is held back and sent right after the next one.
    pub reorder: f64,
}

impl Faults {
    /// No faults: a transparent relay.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// The same probability `p` for drop, duplicate and reorder.
    pub fn uniform(p: f64) -> Faults {
        Faults {
            drop: p,
            duplicate: p,
            reorder: p,
        }
    }

    /// Drops with probability `p_drop`; with probability `p_dup` a forwarded
    /// datagram is sent again after a random delay of up to `max_delay`
    /// (uniform in `0..=max_delay`). No immediate duplicates, no reordering.
    pub fn loss_and_late_dups(p_drop: f64, p_dup: f64, max_delay: Duration) -> Link {
        Faults {
            drop: p_drop,
            ..Faults::none()
        }
        .with_late_dups(p_dup, max_delay)
    }

    /// These faults plus late duplicates: probability `p`, delay up to `max_delay`.
    pub fn with_late_dups(self, p: f64, max_delay: Duration) -> Link {
        Link {
            faults: self,
            late_duplicate: p,
            dup_delay: max_delay,
            dup_requests: false,
        }
    }

    fn check(&self, what: &str) {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            check_probability(what, name, p);
        }
    }
}

/// Everything that can happen to the datagrams going one way: [`Faults`] plus
/// late duplicates. `LossyProxy::start` takes either (a `Faults` is a `Link`
/// without late duplicates).
#[derive(Clone, Copy, Debug, Default)]
pub struct Link {
    /// Drop, immediate duplicate, reorder.
    pub faults: Faults,
    /// Chance that a forwarded datagram is sent once more, `0..=dup_delay` later
    /// (decided independently of the immediate `faults.duplicate`).
    pub late_duplicate: f64,
    /// Longest delay of a late duplicate; each one's delay is uniform in `0..=dup_delay`.
    pub dup_delay: Duration,
    /// Whether requests (RRQ/WRQ from the client) may be duplicated too. Off by
    /// default: a duplicated request is a second transfer to the server, and some
    /// servers cannot take that (tftpd-hpa opens an uploaded file with `O_TRUNC`
    /// again, cutting the first transfer's data), so only ask for it on purpose.
    /// Requests are always subject to `drop` and `reorder`.
    pub dup_requests: bool,
}

impl From<Faults> for Link {
    fn from(faults: Faults) -> Link {
        Link {
            faults,
            ..Link::default()
        }
    }
}

impl Link {
    fn check(&self, what: &str) {
        self.faults.check(what);
        check_probability(what, "late_duplicate", self.late_duplicate);
    }
}

fn check_probability(what: &str, name: &str, p: f64) {
    // `contains` is false for NaN too.
    assert!(
        (0.0..=1.0).contains(&p),
        "{what}.{name} = {p} is not a probability in 0.0..=1.0"
    );
}

/// What happened to the datagrams going one way.
///
/// Every received datagram ends up forwarded or dropped, except at most one that is
/// being held for reordering: `received == forwarded + dropped` once traffic has been
/// quiet for a few milliseconds (`received - forwarded - dropped` is 0 or 1 while it is
/// not). A forwarded datagram counts once in `forwarded` even when it was also
/// duplicated; `duplicated` counts the extra copies sent at once and `late_duplicated`
/// the extra copies sent later, so the datagrams that actually left are
/// `forwarded + duplicated + late_duplicated`. `reordered` counts datagrams that were
/// held back (they are also counted in `forwarded` once released).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionStats {
    /// Datagrams accepted from the sending side.
    pub received: u64,
    /// Datagrams passed on (once each, duplicates aside).
    pub forwarded: u64,
    /// Datagrams discarded by the `drop` fault.
    pub dropped: u64,
    /// Extra copies sent right away by the `duplicate` fault.
    pub duplicated: u64,
    /// Extra copies sent after a delay by the `late_duplicate` fault (counted when sent;
    /// one still waiting when the relay is dropped is never sent).
    pub late_duplicated: u64,
    /// Datagrams held back by the `reorder` fault.
    pub reordered: u64,
}

/// Counters for both directions, and how many ports the relay has mapped. Counters
/// are updated before the datagram is sent, so once a peer has seen a datagram,
/// `stats()` already accounts for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Client → server.
    pub to_server: DirectionStats,
    /// Server → client.
    pub to_client: DirectionStats,
    /// Distinct client source addresses seen (one relay back socket each).
    pub client_ports: usize,
    /// Distinct server ports seen or addressed (one relay front socket each; the
    /// request port is the first).
    pub server_ports: usize,
}

/// A fault-injecting UDP relay on loopback that behaves like a NAT on the path
/// between clients and one server host.
///
/// * Front side (towards the clients): one socket per server port. The first one,
///   [`addr`](LossyProxy::addr), stands for the server's request port (`server`);
///   the others are opened as the server answers from new ports (transfer IDs). So a
///   client sees the server's ports as distinct relay ports, exactly as many as the
///   server uses, and a datagram a client sends to the front port standing for
///   server port `P` goes to `P`.
/// * Back side (towards the server): one socket per client source address, opened
///   on that client's first datagram. So two client sockets look like two ports to
///   the server, and the server's answers to that back port go to that client,
///   from the front port standing for the server port they came from.
///
/// Mappings are never forgotten while the relay lives. Datagrams from hosts other
/// than the server's (on the back side) or the first client's (on the front side) are
/// ignored and not counted. Requests (RRQ/WRQ) are never duplicated unless
/// [`Link::dup_requests`] says so; a client's own retransmitted requests pass like
/// any other datagram.
///
/// All sockets are served by one thread blocked in `ppoll`, so a quiet path adds
/// only the few microseconds of a wake-up and a copy. Dropping the proxy wakes and
/// joins that thread at once.
pub struct LossyProxy {
    front_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Sends one datagram to the relay thread's control socket to wake it for `Drop`.
    waker: UdpSocket,
    control_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

/// State shared by the relay thread, `stats()` and `Drop`.
struct Shared {
    stop: AtomicBool,
    /// One lock for all counters, so a snapshot is consistent.
    stats: Mutex<Stats>,
    /// The latest `TRACE_LEN` events, oldest first.
    trace: Mutex<VecDeque<TraceEvent>>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Direction {
    ToServer = 0,
    ToClient = 1,
}

impl LossyProxy {
    /// Start relaying to `server`, the server's request address (its port 69 equivalent).
    ///
    /// `to_server` / `to_client` are the faults applied in each direction (a
    /// [`Faults`] or a [`Link`]); `seed` makes the random choices reproducible (each
    /// direction derives its own stream from it). Each datagram's fate depends only on
    /// the seed, its direction and how many datagrams went that way before it, so the
    /// same traffic gives the same faults.
    ///
    /// Sockets are bound to port 0 on loopback (`127.0.0.1`, or `::1` for an IPv6
    /// server). Panics if a probability is outside `0.0..=1.0` or a socket cannot be set up.
    pub fn start(
        server: SocketAddr,
        to_server: impl Into<Link>,
        to_client: impl Into<Link>,
        seed: u64,
    ) -> LossyProxy {
        let (to_server, to_client) = (to_server.into(), to_client.into());
        to_server.check("to_server");
        to_client.check("to_client");
        let local = loopback_any(server);
        let front = bind(local, "front socket");
        let front_addr = front.local_addr().expect("lossy proxy: front address");
        let control = bind(local, "control socket");
        let control_addr = control.local_addr().expect("lossy proxy: control address");
        let waker = UdpSocket::bind(local).expect("lossy proxy: bind waker socket");
        let waker_addr = waker.local_addr().expect("lossy proxy: waker address");

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: Mutex::new(Stats {
                server_ports: 1,
                ..Stats::default()
            }),
            trace: Mutex::new(VecDeque::with_capacity(TRACE_LEN)),
        });

        // Two separate streams: how busy one direction is must not shift the other's faults.
        let mut master = SplitMix64(seed);
        let lanes = [
            Lane::new(to_server, SplitMix64(master.next_u64())),
            Lane::new(to_client, SplitMix64(master.next_u64())),
        ];
        let relay = Relay {
            server,
            local,
            client_host: None,
            fronts: vec![Front {
                socket: front,
                server_port: server.port(),
            }],
            front_of_port: HashMap::from([(server.port(), 0)]),
            backs: Vec::new(),
            back_of_client: HashMap::new(),
            lanes,
            timers: BinaryHeap::new(),
            next_timer: 0,
            control,
            waker: waker_addr,
            started: Instant::now(),
            shared: Arc::clone(&shared),
        };
        let thread = thread::Builder::new()
            .name("lossy-relay".into())
            .spawn(move || relay.run())
            .expect("lossy proxy: spawn relay thread");

        LossyProxy {
            front_addr,
            shared,
            waker,
            control_addr,
            thread: Some(thread),
        }
    }

    /// Where the client should send its request: the relay's stand-in for the
    /// server's request port.
    pub fn addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// A consistent snapshot of the counters, readable while the relay runs.
    pub fn stats(&self) -> Stats {
        *lock(&self.shared.stats)
    }

    /// The latest few hundred things the relay did, oldest first: which datagram
    /// (decoded as TFTP when it looks like TFTP), which way, between which ports,
    /// and what became of it. For the report of a failing or hanging transfer.
    pub fn trace(&self) -> Vec<TraceEvent> {
        lock(&self.shared.trace).iter().cloned().collect()
    }
}

/// One entry of [`LossyProxy::trace`].
#[derive(Clone, Debug)]
pub struct TraceEvent {
    /// Time since the relay started.
    pub at: Duration,
    /// Client → server (else server → client).
    pub to_server: bool,
    /// The client's port (its own, not the relay's).
    pub client_port: u16,
    /// The server's port: the request port or a transfer ID.
    pub server_port: u16,
    /// The datagram's length.
    pub len: usize,
    /// Its first bytes (up to `TRACE_HEAD`).
    pub head: Vec<u8>,
    /// What the relay did with it.
    pub fate: Fate,
}

/// What the relay did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Sent on; `duplicate`: twice in a row; `late`: a copy is due this much later.
    Forwarded {
        duplicate: bool,
        late: Option<Duration>,
    },
    /// Discarded.
    Dropped,
    /// Held back, to be sent after the next datagram (or `HOLD` later).
    Held,
    /// A held datagram, sent now.
    Released,
    /// The late copy of an earlier datagram, sent now.
    LateCopy,
}

impl fmt::Display for TraceEvent {
    /// `+   12.345 ms c:40000 → s:6969  RRQ f.bin octet blksize 1468 …   forwarded`
    /// (`→` client to server, `←` server to client; the ports are the client's and
    /// the server's own, not the relay's).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = if self.to_server { "→" } else { "←" };
        write!(
            f,
            "+{:9.3} ms c:{} {arrow} s:{:<5} {:<40} ",
            self.at.as_secs_f64() * 1e3,
            self.client_port,
            self.server_port,
            describe_tftp(&self.head, self.len)
        )?;
        match self.fate {
            Fate::Forwarded { duplicate, late } => {
                write!(f, "forwarded")?;
                if duplicate {
                    write!(f, " twice")?;
                }
                if let Some(d) = late {
                    write!(f, ", late copy in {:.1} ms", d.as_secs_f64() * 1e3)?;
                }
                Ok(())
            }
            Fate::Dropped => write!(f, "DROPPED"),
            Fate::Held => write!(f, "held back"),
            Fate::Released => write!(f, "released"),
            Fate::LateCopy => write!(f, "late copy"),
        }
    }
}

/// A short description of a TFTP packet from its first bytes.
fn describe_tftp(head: &[u8], len: usize) -> String {
    let u16_at = |i: usize| head.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let strings = |from: usize| -> String {
        let text: Vec<String> = head
            .get(from..)
            .unwrap_or_default()
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let mut t = text.join(" ");
        if len > head.len() {
            t.push('…');
        }
        t
    };
    match (u16_at(0), u16_at(2)) {
        (Some(1), _) => format!("RRQ {}", strings(2)),
        (Some(2), _) => format!("WRQ {}", strings(2)),
        (Some(3), Some(block)) => format!("DATA {block} ({} bytes)", len - 4),
        (Some(4), Some(block)) => format!("ACK {block}"),
        (Some(5), Some(code)) => format!("ERROR {code} {}", strings(4)),
        (Some(6), _) => format!("OACK {}", strings(2)),
        _ => format!("{len} bytes, not TFTP"),
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // If this send fails the thread still sees the flag within `IDLE`.
        let _ = self.waker.send_to(b"stop", self.control_addr);
        if let Some(handle) = self.thread.take() {
            // The relay thread panicking is a bug in this helper: surface it, unless the
            // test is already unwinding (a second panic would abort).
            if let Err(panic) = handle.join()
                && !thread::panicking()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

fn loopback_any(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    }
}

/// A non-blocking socket on `local`.
fn bind(local: SocketAddr, what: &str) -> UdpSocket {
    let s = UdpSocket::bind(local).unwrap_or_else(|e| panic!("lossy proxy: bind {what}: {e}"));
    s.set_nonblocking(true)
        .unwrap_or_else(|e| panic!("lossy proxy: {what} non-blocking: {e}"));
    s
}

/// A relay socket facing the clients, standing for one server port.
struct Front {
    socket: UdpSocket,
    server_port: u16,
}

/// A relay socket facing the server, standing for one client address.
struct Back {
    socket: UdpSocket,
    client: SocketAddr,
}

/// Which relay socket a datagram leaves from.
#[derive(Clone, Copy, Debug)]
enum Via {
    Front(usize),
    Back(usize),
}

/// Where one datagram goes: out of `via`, to `to`; and, for the trace, the client's
/// and the server's port it is between.
#[derive(Clone, Copy, Debug)]
struct Route {
    via: Via,
    to: SocketAddr,
    client_port: u16,
    server_port: u16,
}

/// A datagram waiting to be overtaken.
struct Held {
    data: Vec<u8>,
    route: Route,
    /// Send an extra copy right after it.
    duplicate: bool,
    /// Send an extra copy this long after it.
    late: Option<Duration>,
    since: Instant,
}

/// A late duplicate waiting for its time. Ordered by due time, then by the order
/// they were scheduled (`seq`), so equal due times keep their order.
struct Timer {
    due: Instant,
    seq: u64,
    direction: Direction,
    route: Route,
    data: Vec<u8>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction's faults, random stream and reorder slot.
struct Lane {
    link: Link,
    rng: SplitMix64,
    held: Option<Held>,
}

impl Lane {
    fn new(link: Link, rng: SplitMix64) -> Lane {
        Lane {
            link,
            rng,
            held: None,
        }
    }
}

/// The relay thread's state: every socket and mapping.
struct Relay {
    /// The server's request address.
    server: SocketAddr,
    /// Loopback, port 0, in the server's family: where new sockets are bound.
    local: SocketAddr,
    /// The clients' host, fixed by the first datagram on the front side.
    client_host: Option<IpAddr>,
    fronts: Vec<Front>,
    front_of_port: HashMap<u16, usize>,
    backs: Vec<Back>,
    back_of_client: HashMap<SocketAddr, usize>,
    /// Indexed by `Direction as usize`.
    lanes: [Lane; 2],
    timers: BinaryHeap<Reverse<Timer>>,
    next_timer: u64,
    control: UdpSocket,
    /// The only address whose datagrams on `control` count.
    waker: SocketAddr,
    /// Time zero of the trace.
    started: Instant,
    shared: Arc<Shared>,
}

impl Relay {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut ready: Vec<bool> = Vec::new();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let wait = self.next_deadline().map_or(IDLE, |due| {
                due.saturating_duration_since(Instant::now()).min(IDLE)
            });
            self.wait_readable(wait, &mut ready);
            if ready[0] {
                self.drain_control(&mut buf);
            }
            let fronts = self.fronts.len();
            for (i, &r) in ready[1..].iter().enumerate() {
                if !r {
                    continue;
                }
                if i < fronts {
                    self.drain(Via::Front(i), &mut buf);
                } else {
                    self.drain(Via::Back(i - fronts), &mut buf);
                }
            }
            self.fire_timers();
        }
    }

    /// Blocks until a socket is readable or `wait` passes; `ready[0]` is the control
    /// socket, then the fronts, then the backs.
    fn wait_readable(&self, wait: Duration, ready: &mut Vec<bool>) {
        let mut fds: Vec<PollFd> = std::iter::once(&self.control)
            .chain(self.fronts.iter().map(|f| &f.socket))
            .chain(self.backs.iter().map(|b| &b.socket))
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = TimeSpec::from_duration(wait);
        ready.clear();
        match nix::poll::ppoll(&mut fds, Some(timeout), None) {
            Ok(_) => ready.extend(fds.iter().map(|fd| {
                // POLLERR too: a pending ICMP error is read (and dropped) by recv_from.
                fd.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP)
                })
            })),
            // EINTR and the like: look again on the next round.
            Err(_) => ready.resize(fds.len(), false),
        }
    }

    fn drain_control(&mut self, buf: &mut [u8]) {
        // Only the proxy's own waker may stop the relay; anything else is noise.
        while let Ok((_, from)) = recv(&self.control, buf) {
            if from == self.waker {
                self.shared.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Reads every datagram queued on one socket.
    fn drain(&mut self, via: Via, buf: &mut [u8]) {
        loop {
            let socket = match via {
                Via::Front(i) => &self.fronts[i].socket,
                Via::Back(i) => &self.backs[i].socket,
            };
            let (n, from) = match recv(socket, buf) {
                Ok(got) => got,
                Err(Drained) => return,
            };
            let data = &buf[..n];
            match via {
                Via::Front(i) => {
                    // Loopback is shared with every local process: one client host only.
                    if *self.client_host.get_or_insert(from.ip()) != from.ip() {
                        continue;
                    }
                    let server_port = self.fronts[i].server_port;
                    let to = SocketAddr::new(self.server.ip(), server_port);
                    let via = self.back_for(from);
                    let route = Route {
                        via,
                        to,
                        client_port: from.port(),
                        server_port,
                    };
                    self.handle(Direction::ToServer, data, route);
                }
                Via::Back(i) => {
                    if from.ip() != self.server.ip() {
                        continue;
                    }
                    let to = self.backs[i].client;
                    let via = self.front_for(from.port());
                    let route = Route {
                        via,
                        to,
                        client_port: to.port(),
                        server_port: from.port(),
                    };
                    self.handle(Direction::ToClient, data, route);
                }
            }
        }
    }

    /// The back socket for client address `client`, opened on first use.
    fn back_for(&mut self, client: SocketAddr) -> Via {
        if let Some(&i) = self.back_of_client.get(&client) {
            return Via::Back(i);
        }
        self.backs.push(Back {
            socket: bind(self.local, "back socket"),
            client,
        });
        let i = self.backs.len() - 1;
        self.back_of_client.insert(client, i);
        lock(&self.shared.stats).client_ports = self.backs.len();
        Via::Back(i)
    }

    /// The front socket standing for server port `port`, opened on first use.
    fn front_for(&mut self, port: u16) -> Via {
        if let Some(&i) = self.front_of_port.get(&port) {
            return Via::Front(i);
        }
        self.fronts.push(Front {
            socket: bind(self.local, "front socket"),
            server_port: port,
        });
        let i = self.fronts.len() - 1;
        self.front_of_port.insert(port, i);
        lock(&self.shared.stats).server_ports = self.fronts.len();
        Via::Front(i)
    }

    /// Apply one direction's faults to a received datagram.
    fn handle(&mut self, direction: Direction, data: &[u8], route: Route) {
        let lane = &mut self.lanes[direction as usize];
        // Always draw all five, so a datagram's fate depends only on its position in
        // the stream, not on what happened to earlier ones or on the other probabilities.
        let drop_roll = lane.rng.next_f64();
        let reorder_roll = lane.rng.next_f64();
        let duplicate_roll = lane.rng.next_f64();
        let late_roll = lane.rng.next_f64();
        let delay_roll = lane.rng.next_f64();
        let link = lane.link;
        let may_dup = link.dup_requests
            || !(direction == Direction::ToServer && matches!(data, [0, 1 | 2, ..]));
        let duplicate = may_dup && duplicate_roll < link.faults.duplicate;
        let late = (may_dup && late_roll < link.late_duplicate)
            .then(|| link.dup_delay.mul_f64(delay_roll));

        let mut stats = lock(&self.shared.stats);
        let d = counters(&mut stats, direction);
        d.received += 1;
        if drop_roll < link.faults.drop {
            d.dropped += 1;
            drop(stats);
            self.record(direction, data, route, Fate::Dropped);
            return;
        }
        // A datagram arriving while another is held is the one that overtakes it, so it
        // is sent at once whatever its own reorder roll says.
        if lane.held.is_none() && reorder_roll < link.faults.reorder {
            d.reordered += 1;
            lane.held = Some(Held {
                data: data.to_vec(),
                route,
                duplicate,
                late,
                since: Instant::now(),
            });
            drop(stats);
            self.record(direction, data, route, Fate::Held);
            return;
        }
        let released = lane.held.take();
        d.forwarded += 1 + u64::from(released.is_some());
        d.duplicated +=
            u64::from(duplicate) + u64::from(released.as_ref().is_some_and(|h| h.duplicate));
        // Count before sending: a peer that has seen the datagram must see it in stats().
        drop(stats);
        self.record(direction, data, route, Fate::Forwarded { duplicate, late });
        self.send(direction, data, route, duplicate, late);
        if let Some(h) = released {
            self.record(direction, &h.data, h.route, Fate::Released);
            self.send(direction, &h.data, h.route, h.duplicate, h.late);
        }
    }

    fn record(&self, direction: Direction, data: &[u8], route: Route, fate: Fate) {
        let event = TraceEvent {
            at: self.started.elapsed(),
            to_server: direction == Direction::ToServer,
            client_port: route.client_port,
            server_port: route.server_port,
            len: data.len(),
            head: data[..data.len().min(TRACE_HEAD)].to_vec(),
            fate,
        };
        let mut trace = lock(&self.shared.trace);
        if trace.len() == TRACE_LEN {
            trace.pop_front();
        }
        trace.push_back(event);
    }

    /// Sends a datagram (twice if `duplicate`) and schedules its late copy.
    fn send(
        &mut self,
        direction: Direction,
        data: &[u8],
        route: Route,
        duplicate: bool,
        late: Option<Duration>,
    ) {
        for _ in 0..1 + usize::from(duplicate) {
            self.send_now(data, route);
        }
        if let Some(delay) = late {
            self.next_timer += 1;
            self.timers.push(Reverse(Timer {
                due: Instant::now() + delay,
                seq: self.next_timer,
                direction,
                route,
                data: data.to_vec(),
            }));
        }
    }

    fn send_now(&self, data: &[u8], route: Route) {
        let socket = match route.via {
            Via::Front(i) => &self.fronts[i].socket,
            Via::Back(i) => &self.backs[i].socket,
        };
        // A failed send (a full buffer, say) is one more lost datagram to a TFTP peer;
        // never fatal.
        let _ = socket.send_to(data, route.to);
    }

    /// When the relay next has something to do without any datagram arriving.
    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse(t)| t.due);
        let held = self
            .lanes
            .iter()
            .filter_map(|l| l.held.as_ref().map(|h| h.since + HOLD));
        timer.into_iter().chain(held).min()
    }

    /// Sends late duplicates that are due and held datagrams that waited long enough.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        for direction in [Direction::ToServer, Direction::ToClient] {
            let lane = &mut self.lanes[direction as usize];
            if lane.held.as_ref().is_some_and(|h| now >= h.since + HOLD) {
                let h = lane.held.take().expect("checked above");
                let mut stats = lock(&self.shared.stats);
                let d = counters(&mut stats, direction);
                d.forwarded += 1;
                d.duplicated += u64::from(h.duplicate);
                drop(stats);
                self.record(direction, &h.data, h.route, Fate::Released);
                self.send(direction, &h.data, h.route, h.duplicate, h.late);
            }
        }
        while self.timers.peek().is_some_and(|Reverse(t)| t.due <= now) {
            let Reverse(t) = self.timers.pop().expect("peeked");
            counters(&mut lock(&self.shared.stats), t.direction).late_duplicated += 1;
            self.record(t.direction, &t.data, t.route, Fate::LateCopy);
            self.send_now(&t.data, t.route);
        }
    }
}

fn counters(stats: &mut Stats, direction: Direction) -> &mut DirectionStats {
    match direction {
        Direction::ToServer => &mut stats.to_server,
        Direction::ToClient => &mut stats.to_client,
    }
}

/// Nothing more to read on a socket for now.
struct Drained;

/// One datagram from a non-blocking socket. Errors other than "nothing queued" (an
/// ECONNREFUSED left by an ICMP port-unreachable for an earlier send, say) are about
/// a past datagram, not this socket: they are skipped.
fn recv(socket: &UdpSocket, buf: &mut [u8]) -> Result<(usize, SocketAddr), Drained> {
    loop {
        match socket.recv_from(buf) {
            Ok(got) => return Ok(got),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(Drained),
            Err(_) => {}
        }
    }
}

/// Lock, ignoring poisoning: the data are plain counters, always valid, and a
/// panicking test thread must not take the relay down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for fault rolls,
/// and needs no dependency. The seed is the state.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, so `roll < 1.0` always and `roll < 0.0` never.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
