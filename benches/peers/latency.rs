//! Scenario 2b: round-trip latency of 1000 TCP clients at a fixed offered load (open loop), measured from each request's scheduled send time.
//!
//! In a closed loop (scenario 2) every client waits for its reply before it
//! asks again, so a server that stalls is simply asked less, and the latency
//! of the requests that were never sent is hidden ("coordinated omission").
//! Here the requests follow a timetable that does not depend on the server:
//! together the clients offer `rate` round trips a second, client `i` sending
//! its `k`-th request at `(k × clients + i) ÷ rate` seconds. A client still
//! waiting for a reply sends its next request as soon as that reply is in
//! (one request in flight per connection, as wrk2 does, so servers that answer
//! each `recv` once are measured fairly), and every latency counts from the
//! time the timetable said, however late the request actually went out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent};

use crate::Config;
use crate::harness::{Metric, Outcome, Pinned, Plan, Trial, cpu_seconds};
use crate::tcp::{ECHO_SERVERS, EchoServer, MSG, connect_all, quantile_ms};

/// The offered load of one trial.
#[derive(Clone, Copy)]
struct Load {
    clients: usize,
    /// Round trips a second, all clients together.
    rate: f64,
    /// Run on the timetable but not measured: the server's threads and the
    /// kernel's buffers settle.
    warm: Duration,
    /// Measured.
    window: Duration,
}

/// How long after the timetable's end the replies still due are waited for. A
/// server that cannot keep up is not waited for to the end: what is still
/// unanswered then counts with the latency it has reached (a lower bound).
const DRAIN: Duration = Duration::from_secs(3);

/// One connection's place in the timetable.
struct Client {
    stream: TcpStream,
    /// Bytes of the current reply read so far.
    have: usize,
    /// The number of its next request not yet sent (its `k`).
    next: u64,
    /// The scheduled time (ns after the start) of the request awaiting its reply.
    in_flight: Option<u64>,
    /// When its next request could go out: its scheduled time, or the previous
    /// reply's arrival if that was later. How far past this it actually goes
    /// out is the generator's own lateness.
    free_at: u64,
}

/// One trial: the timetable at `load` against the server at `addr`. No
/// memory sampler runs meanwhile, unlike scenario 2: it shares the generator's
/// core, and walking ncat's two thousand processes every 100 ms made the
/// generator send 4 ms late (p99) in ncat's trials only.
fn open_loop(
    addr: SocketAddr,
    server_pid: u32,
    load: Load,
    reply_len: usize,
) -> Result<Trial, String> {
    let epoll = Epoll::new(EpollCreateFlags::empty()).map_err(|e| e.to_string())?;
    let streams = connect_all(addr, load.clients, MSG, reply_len, &epoll)?;
    let mut clients: Vec<Client> = streams
        .into_iter()
        .map(|stream| Client {
            stream,
            have: 0,
            next: 0,
            in_flight: None,
            free_at: 0,
        })
        .collect();
    let n = load.clients as u64;
    let period_ns = 1e9 / load.rate;
    // Request k of client i, in ns after the start.
    let due = |i: usize, k: u64| ((k * n + i as u64) as f64 * period_ns) as u64;
    let warm_ns = load.warm.as_nanos() as u64;
    let end_ns = warm_ns + load.window.as_nanos() as u64;
    let in_window = |t: u64| (warm_ns..end_ns).contains(&t);
    // Clients whose next request is not sent yet, soonest first.
    let mut waiting: BinaryHeap<Reverse<(u64, usize)>> = (0..clients.len())
        .map(|i| Reverse((due(i, 0), i)))
        .collect();

    let expected = (load.rate * load.window.as_secs_f64()) as usize;
    let mut lat_us: Vec<u32> = Vec::with_capacity(expected + expected / 4);
    let mut lag_us: Vec<u32> = Vec::with_capacity(expected + expected / 4);
    let (mut answered, mut answered_in_window, mut pending) = (0u64, 0u64, 0usize);
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = vec![0u8; reply_len];
    let server_cpu = cpu_seconds(server_pid);
    let t0 = Instant::now();
    let ns = |t: Instant| t.duration_since(t0).as_nanos() as u64;
    let result = (|| -> Result<(), String> {
        loop {
            let now = ns(Instant::now());
            while let Some(&Reverse((d, i))) = waiting.peek() {
                if d > now {
                    break;
                }
                waiting.pop();
                let c = &mut clients[i];
                // 64 bytes into a socket with nothing else in flight go out whole.
                match c.stream.write(MSG) {
                    Ok(k) if k == MSG.len() => {}
                    Ok(k) => return Err(format!("short send of {k} bytes")),
                    Err(e) => return Err(format!("send: {e}")),
                }
                c.in_flight = Some(d);
                c.next += 1;
                pending += 1;
                if in_window(d) {
                    lag_us.push(micros(now - d.max(c.free_at)));
                }
            }
            if waiting.is_empty() && pending == 0 {
                return Ok(());
            }
            if now > end_ns + DRAIN.as_nanos() as u64 {
                // Everything scheduled and not answered counts as answered now.
                for (i, c) in clients.iter().enumerate() {
                    let owed = c
                        .in_flight
                        .into_iter()
                        .chain((c.next..).map(|k| due(i, k)).take_while(|&d| d < end_ns));
                    for d in owed.filter(|&d| in_window(d)) {
                        lat_us.push(micros(now - d));
                    }
                }
                eprintln!(
                    "      {pending} requests in flight and more queued {:?} after the timetable ended",
                    DRAIN
                );
                return Ok(());
            }
            // Never sleeping: the generator has its own core, and a thread that
            // sleeps wakes tens of microseconds late (an inter-processor
            // interrupt, in a VM a trip through the hypervisor) and pays for
            // the wake-up in CPU. Those would be counted against the server.
            let ready = epoll
                .wait(&mut events, 0u16)
                .map_err(|e| format!("epoll: {e}"))?;
            for ev in &events[..ready] {
                let i = ev.data() as usize;
                let c = &mut clients[i];
                loop {
                    match c.stream.read(&mut buf[..reply_len - c.have]) {
                        Ok(0) => return Err(format!("server closed client {i}")),
                        Ok(k) => c.have += k,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("reply: {e}")),
                    }
                    if c.have == reply_len {
                        break;
                    }
                }
                if c.have < reply_len {
                    continue;
                }
                let Some(d) = c.in_flight.take() else {
                    return Err(format!("client {i}: a reply to nothing"));
                };
                c.have = 0;
                pending -= 1;
                answered += 1;
                let at = ns(Instant::now());
                if in_window(d) {
                    lat_us.push(micros(at - d));
                }
                if in_window(at) {
                    answered_in_window += 1;
                }
                let next = due(i, c.next);
                c.free_at = at;
                if next < end_ns {
                    waiting.push(Reverse((next, i)));
                }
            }
        }
    })();
    let per_trip = 1e6 / answered.max(1) as f64;
    let server_us = (cpu_seconds(server_pid) - server_cpu) * per_trip;
    result?;
    if lat_us.is_empty() {
        return Err("no request was scheduled in the measured window".into());
    }
    lat_us.sort_unstable();
    lag_us.sort_unstable();
    // Shown, not tabled: a generator that falls behind its timetable would
    // blame the server for its own delays, and this says whether it did.
    if !lag_us.is_empty() {
        eprintln!(
            "      p99 {:.2} ms; requests sent late by p99 {:.3} ms, p99.9 {:.3} ms (the generator)",
            quantile_ms(&lat_us, 0.99),
            quantile_ms(&lag_us, 0.99),
            quantile_ms(&lag_us, 0.999)
        );
    }
    Ok(
        Trial::new(answered_in_window as f64 / load.window.as_secs_f64())
            .with("p50 ms", quantile_ms(&lat_us, 0.50))
            .with("p99 ms", quantile_ms(&lat_us, 0.99))
            .with("p99.9 ms", quantile_ms(&lat_us, 0.999))
            .with("server CPU µs/trip", server_us),
    )
}

/// Nanoseconds as whole microseconds.
fn micros(ns: u64) -> u32 {
    (ns / 1000).min(u32::MAX as u64) as u32
}

/// Scenario 2b: the servers of scenario 2 at fixed offered loads.
pub fn fixed_load(cfg: &Config) -> Vec<Outcome> {
    let (warm, window) = if cfg.full {
        (Duration::from_secs(2), Duration::from_secs(10))
    } else {
        (Duration::from_secs(1), Duration::from_secs(3))
    };
    let pinned = Pinned::new();
    let mut out = Vec::new();
    for &rate in &cfg.rates {
        let load = Load {
            clients: 1000,
            rate,
            warm,
            window,
        };
        let scenario = format!("2b TCP at {rate:.0} trips/s");
        let work = format!(
            "1000 clients, open loop, 64 B, {} s after {} s warm-up",
            window.as_secs(),
            warm.as_secs()
        );
        let mut plan = Plan::new(scenario, work, Metric::rate("trips/s"));
        let [us, peers @ ..] = ECHO_SERVERS;
        let ours = us.label;
        let run = move |s: EchoServer| {
            move |_: usize| s.trial(|addr, pid, reply| open_loop(addr, pid, load, reply))
        };
        plan.ours(ours, run(us));
        for s in peers {
            let program = s.program.expect("a peer");
            plan.peer(program, s.label, ours, None, run(s));
            plan.compare_lower("p99 ms", ours, s.label, 0.5, Some(rate));
        }
        if rate >= 20_000.0 {
            plan.bound(ours, "p99 ms", 2.0, "ms");
        }
        plan.note(Pinned::note(&pinned));
        out.push(plan.measure(cfg.rounds));
    }
    out
}
