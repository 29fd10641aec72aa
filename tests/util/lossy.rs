//! Lossy UDP relay for TFTP tests: sits on loopback between one client and a server and drops, duplicates and reorders datagrams, seeded so a failing run replays.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest datagram a UDP socket can hand us; a smaller buffer would silently truncate.
const MAX_DATAGRAM: usize = 65535;

/// How long a relay thread blocks in `recv_from`: short, so it notices the stop flag
/// and releases a held datagram on time, and `Drop` returns within a few milliseconds.
const POLL: Duration = Duration::from_millis(1);

/// A datagram held back for reordering is sent anyway after this long without a
/// successor, so reordering alone never loses a transfer's last packet.
const HOLD: Duration = Duration::from_millis(1);

/// Fault probabilities for one direction, each in `0.0..=1.0`, decided per datagram.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Chance that a datagram is discarded.
    pub drop: f64,
    /// Chance that a forwarded datagram is sent twice.
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

    fn check(&self, what: &str) {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            // `contains` is false for NaN too.
            assert!(
                (0.0..=1.0).contains(&p),
                "{what}.{name} = {p} is not a probability in 0.0..=1.0"
            );
        }
    }
}

/// What happened to the datagrams going one way.
///
/// Every received datagram ends up forwarded or dropped, except at most one that is
/// being held for reordering: `received == forwarded + dropped` once traffic has been
/// quiet for a few milliseconds (`received - forwarded - dropped` is 0 or 1 while it is
/// not). A forwarded datagram counts once in `forwarded` even when it was also
/// duplicated; `duplicated` counts the extra copies sent, so the datagrams that
/// actually left are `forwarded + duplicated`. `reordered` counts datagrams that were
/// held back (they are also counted in `forwarded` once released).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionStats {
    /// Datagrams accepted from the sending side.
    pub received: u64,
    /// Datagrams passed on (once each, duplicates aside).
    pub forwarded: u64,
    /// Datagrams discarded by the `drop` fault.
    pub dropped: u64,
    /// Extra copies sent by the `duplicate` fault.
    pub duplicated: u64,
    /// Datagrams held back by the `reorder` fault.
    pub reordered: u64,
}

/// Counters for both directions. Counters are updated before the datagram is sent, so
/// once a peer has seen a datagram, `stats()` already accounts for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Client → server.
    pub to_server: DirectionStats,
    /// Server → client.
    pub to_client: DirectionStats,
}

/// A fault-injecting UDP relay for one TFTP session, on loopback.
///
/// The client sends its request to [`addr`](LossyProxy::addr) (the front socket); the
/// relay forwards it from a back socket to `server`. The server answers from a new port
/// (its transfer ID); the relay remembers the source of the latest datagram it accepted
/// on the back socket and sends all later client datagrams there. Everything the server
/// sends is passed to the client from the front socket, so to the client the server's
/// transfer ID is `addr()`. The client is whoever sent the latest datagram to the front
/// socket.
///
/// Only one client session per proxy: a second client, or a second request that the
/// server answers from yet another port, would be mixed into the same two addresses.
/// So a request (RRQ/WRQ) is never duplicated, and once the server has answered, a
/// retransmitted request is dropped (the client resends it when the server's first
/// answer was lost; the server's own retransmission of that answer then recovers, as
/// it would if the resent request were lost on a real network).
///
/// The back socket accepts datagrams only from the server's IP; others are ignored and
/// not counted. Datagrams from the server that arrive before any client has spoken are
/// ignored too (there is nobody to pass them to).
///
/// Dropping the proxy stops and joins its two threads within a few milliseconds.
pub struct LossyProxy {
    front_addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// State the two relay threads and `stats()` share.
struct Shared {
    stop: AtomicBool,
    /// The address the client addressed its request to; only its IP is used after the first reply.
    server: SocketAddr,
    /// Where client datagrams go: `server` until the first reply, then that reply's source.
    server_target: Mutex<SocketAddr>,
    /// Source of the latest datagram on the front socket.
    client: Mutex<Option<SocketAddr>>,
    /// One lock for all counters, so a snapshot is consistent.
    stats: Mutex<Stats>,
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    ToServer,
    ToClient,
}

impl LossyProxy {
    /// Start relaying to `server`, the server's request address (its port 69 equivalent).
    ///
    /// `to_server` / `to_client` are the faults applied in each direction; `seed` makes
    /// the random choices reproducible (each direction derives its own stream from it).
    /// Each datagram's fate depends only on the seed, its direction and how many
    /// datagrams went that way before it, so the same traffic gives the same faults.
    ///
    /// Both sockets are bound to port 0 on loopback (`127.0.0.1`, or `::1` for an IPv6
    /// server). Panics if a probability is outside `0.0..=1.0` or a socket cannot be set up.
    pub fn start(
        server: SocketAddr,
        to_server: Faults,
        to_client: Faults,
        seed: u64,
    ) -> LossyProxy {
        to_server.check("to_server");
        to_client.check("to_client");
        let local = match server {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        };
        let front = UdpSocket::bind(local).expect("lossy proxy: bind front socket");
        let back = UdpSocket::bind(local).expect("lossy proxy: bind back socket");
        for s in [&front, &back] {
            s.set_read_timeout(Some(POLL))
                .expect("lossy proxy: set read timeout");
        }
        let front_addr = front.local_addr().expect("lossy proxy: front address");

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            server,
            server_target: Mutex::new(server),
            client: Mutex::new(None),
            stats: Mutex::new(Stats::default()),
        });

        // Two separate streams: how busy one direction is must not shift the other's faults.
        let mut master = SplitMix64(seed);
        let relays = [
            Relay {
                direction: Direction::ToServer,
                recv: front.try_clone().expect("lossy proxy: clone front socket"),
                send: back.try_clone().expect("lossy proxy: clone back socket"),
                faults: to_server,
                rng: SplitMix64(master.next_u64()),
                shared: Arc::clone(&shared),
            },
            Relay {
                direction: Direction::ToClient,
                recv: back,
                send: front,
                faults: to_client,
                rng: SplitMix64(master.next_u64()),
                shared: Arc::clone(&shared),
            },
        ];
        let threads = relays
            .into_iter()
            .map(|relay| {
                let name = match relay.direction {
                    Direction::ToServer => "lossy-to-server",
                    Direction::ToClient => "lossy-to-client",
                };
                thread::Builder::new()
                    .name(name.into())
                    .spawn(move || relay.run())
                    .expect("lossy proxy: spawn relay thread")
            })
            .collect();

        LossyProxy {
            front_addr,
            shared,
            threads,
        }
    }

    /// Where the client should send its request (and, to the client, the server's transfer ID).
    pub fn addr(&self) -> SocketAddr {
        self.front_addr
    }

    /// A consistent snapshot of the counters, readable while the relay runs.
    pub fn stats(&self) -> Stats {
        *lock(&self.shared.stats)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            // A relay thread panicking is a bug in this helper: surface it, unless the
            // test is already unwinding (a second panic would abort).
            if let Err(panic) = handle.join()
                && !thread::panicking()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A datagram waiting to be overtaken.
struct Held {
    data: Vec<u8>,
    duplicate: bool,
    since: Instant,
}

/// One direction of the relay, run on its own thread.
struct Relay {
    direction: Direction,
    recv: UdpSocket,
    send: UdpSocket,
    faults: Faults,
    rng: SplitMix64,
    shared: Arc<Shared>,
}

impl Relay {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut held: Option<Held> = None;
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.recv.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if self.accept(from) {
                        self.handle(&buf[..n], &mut held);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // E.g. ECONNREFUSED / WSAECONNRESET left by an ICMP port-unreachable for
                // an earlier send: about a past datagram, not this socket. Keep relaying.
                Err(_) => {}
            }
            if held.as_ref().is_some_and(|h| h.since.elapsed() >= HOLD) {
                let h = held.take().expect("checked above");
                let mut stats = lock(&self.shared.stats);
                let d = self.counters(&mut stats);
                d.forwarded += 1;
                d.duplicated += u64::from(h.duplicate);
                drop(stats);
                self.send(&h.data, h.duplicate);
            }
        }
    }

    /// Should a datagram from `from` be relayed? Also tracks the peers' addresses.
    fn accept(&self, from: SocketAddr) -> bool {
        match self.direction {
            Direction::ToServer => {
                *lock(&self.shared.client) = Some(from);
                true
            }
            Direction::ToClient => {
                // Loopback is shared with every local process: only the server's host counts.
                if from.ip() != self.shared.server.ip() || lock(&self.shared.client).is_none() {
                    return false;
                }
                // The server's transfer ID: where the client's datagrams go from now on.
                *lock(&self.shared.server_target) = from;
                true
            }
        }
    }

    /// Apply the faults to one received datagram.
    fn handle(&mut self, data: &[u8], held: &mut Option<Held>) {
        // Always draw all three, so a datagram's fate depends only on its position in
        // the stream, not on what happened to earlier ones or on the other probabilities.
        let drop_roll = self.rng.next_f64();
        let reorder_roll = self.rng.next_f64();
        let duplicate_roll = self.rng.next_f64();
        let duplicate = duplicate_roll < self.faults.duplicate;

        let mut stats = lock(&self.shared.stats);
        let d = self.counters(&mut stats);
        d.received += 1;
        if drop_roll < self.faults.drop {
            d.dropped += 1;
            return;
        }
        // A datagram arriving while another is held is the one that overtakes it, so it
        // is sent at once whatever its own reorder roll says.
        if held.is_none() && reorder_roll < self.faults.reorder {
            d.reordered += 1;
            *held = Some(Held {
                data: data.to_vec(),
                duplicate,
                since: Instant::now(),
            });
            return;
        }
        let released = held.take();
        d.forwarded += 1 + u64::from(released.is_some());
        d.duplicated +=
            u64::from(duplicate) + u64::from(released.as_ref().is_some_and(|h| h.duplicate));
        // Count before sending: a peer that has seen the datagram must see it in stats().
        drop(stats);
        self.send(data, duplicate);
        if let Some(h) = released {
            self.send(&h.data, h.duplicate);
        }
    }

    fn counters<'a>(&self, stats: &'a mut Stats) -> &'a mut DirectionStats {
        match self.direction {
            Direction::ToServer => &mut stats.to_server,
            Direction::ToClient => &mut stats.to_client,
        }
    }

    fn send(&self, data: &[u8], duplicate: bool) {
        let is_request = matches!(data, [0, 1 | 2, ..]);
        let to = match self.direction {
            Direction::ToServer if is_request => {
                if *lock(&self.shared.server_target) != self.shared.server {
                    return;
                }
                self.shared.server
            }
            Direction::ToServer => *lock(&self.shared.server_target),
            // accept() only lets server datagrams through once the client is known.
            Direction::ToClient => match *lock(&self.shared.client) {
                Some(client) => client,
                None => return,
            },
        };
        let duplicate = duplicate && !(is_request && self.direction == Direction::ToServer);
        for _ in 0..1 + usize::from(duplicate) {
            // A failed send is just one more lost datagram to a TFTP peer; never fatal.
            let _ = self.send.send_to(data, to);
        }
    }
}

/// Lock, ignoring poisoning: the data are plain counters and addresses, always valid,
/// and a panicking test thread must not take the relay down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for fault rolls,
/// and needs no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, so `roll < 1.0` always and `roll < 0.0` never.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
