//! Scenarios 1, 2 and 7: TCP bulk from a pipe, 1000 clients doing round trips, and start-up time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::harness::{
    MIB_S, Metric, Outcome, PATIENCE, Pinned, Plan, Process, Proto, Trial, course_server,
    cpu_seconds, mib, our_server, peak_rss, peer_cmd, peer_server, run_timed, sh, start,
    thread_cpu_seconds, tree_rss, trial_with,
};
use crate::{Config, bin};

/// Time `head -c BYTES /dev/zero | CLIENT` until the server has it all (it exits
/// after its one connection).
fn pipe_into(bytes: u64, mut server: Process, client: &str) -> Result<Trial, String> {
    let started = Instant::now();
    let mut c = sh(&format!("head -c {bytes} /dev/zero | {client}"));
    c.stdin(Stdio::null()).stdout(Stdio::null());
    let mut p = start(c)?;
    p.finish(PATIENCE)?;
    server.finish(PATIENCE)?;
    Ok(Trial::new(mib(bytes) / started.elapsed().as_secs_f64()))
}

/// Scenario 1: bulk bytes from a pipe, client to server.
pub fn bulk(cfg: &Config) -> Vec<Outcome> {
    let bytes: u64 = if cfg.full { 2 << 30 } else { 1 << 30 };
    let mut plan = Plan::new(
        "1 TCP bulk",
        format!("{} MiB from a pipe", bytes >> 20),
        MIB_S,
    );
    let ours = "tcp-client → tcp-server --sink";
    let client = bin("tcp-client");
    plan.ours(ours, move |_| {
        let (server, addr) = our_server("tcp-server", &["--sink", "--once"])?;
        let cmd = format!("{} {} {}", client.display(), addr.ip(), addr.port());
        pipe_into(bytes, server, &cmd)
    });
    plan.peer("nc", "nc -N → nc -l", ours, Some(1.5), move |_| {
        let (server, addr) = peer_server(Proto::Tcp, "nc", |p| format!("-l 127.0.0.1 {p}"))?;
        pipe_into(
            bytes,
            server,
            &format!("nc -N {} {}", addr.ip(), addr.port()),
        )
    });
    plan.peer("socat", "socat → socat", ours, Some(1.0), move |_| {
        let listen = |p| format!("-u TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr STDOUT");
        let (server, addr) = peer_server(Proto::Tcp, "socat", listen)?;
        pipe_into(bytes, server, &format!("socat -u STDIN TCP:{addr}"))
    });
    vec![plan.measure(cfg.rounds)]
}

/// Connect, giving up on an attempt after 50 ms and trying again at once.
/// Servers with a short listen queue (ncat's is 10) drop the SYNs of a burst, and
/// the kernel resends a dropped SYN only after a second: a fresh attempt instead
/// connects as soon as the server has accepted the earlier ones. Setup is not timed.
fn connect_paced(addr: SocketAddr) -> Result<TcpStream, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && Instant::now() < deadline => {}
            Err(e) => return Err(format!("connect {addr}: {e}")),
        }
    }
}

/// `clients` connections to `addr`, each having done one untimed round trip of
/// `msg` (waiting for `reply_len` bytes), non-blocking and registered with
/// `epoll` under their index. The clock of a scenario starts after this, once
/// every client is being served (accepted, its thread or process started), so
/// the figures are the steady state, not the server's start-up.
pub fn connect_all(
    addr: SocketAddr,
    clients: usize,
    msg: &[u8],
    reply_len: usize,
    epoll: &Epoll,
) -> Result<Vec<TcpStream>, String> {
    let mut streams = Vec::with_capacity(clients);
    let setup = Instant::now();
    for i in 0..clients {
        let s = connect_paced(addr)?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        (&s).write_all(msg).map_err(|e| format!("send: {e}"))?;
        (&s).read_exact(&mut vec![0u8; reply_len])
            .map_err(|e| format!("first reply: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        epoll
            .add(&s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .map_err(|e| e.to_string())?;
        streams.push(s);
    }
    eprintln!(
        "      connected {clients} in {:.2} s",
        setup.elapsed().as_secs_f64()
    );
    Ok(streams)
}

/// The highest resident memory of a process tree, sampled every 100 ms in a
/// thread of its own until [`PeakRss::stop`].
pub struct PeakRss {
    pid: u32,
    done: Arc<AtomicBool>,
    sampler: thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut most = 0;
                while !done.load(Ordering::Relaxed) {
                    most = most.max(tree_rss(pid));
                    thread::sleep(Duration::from_millis(100));
                }
                most
            })
        };
        PeakRss { pid, done, sampler }
    }

    /// MiB.
    pub fn stop(self) -> f64 {
        self.done.store(true, Ordering::Relaxed);
        let most = self.sampler.join().unwrap_or(0).max(peak_rss(self.pid));
        most as f64 / (1024.0 * 1024.0)
    }
}

/// The `q`-quantile of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    sorted_us[((sorted_us.len() - 1) as f64 * q) as usize] as f64 / 1000.0
}

/// The load generator of scenario 2: `clients` connections, each doing `trips`
/// lock-step round trips of `msg`, waiting for `reply_len` bytes each time.
/// Connections are made first (not timed), then all start at once. One thread
/// drives them all through epoll, so the generator needs a fraction of a core
/// and the server under test gets the rest.
fn round_trips(
    addr: SocketAddr,
    server_pid: u32,
    clients: usize,
    trips: usize,
    msg: &'static [u8],
    reply_len: usize,
) -> Result<Trial, String> {
    let epoll = Epoll::new(EpollCreateFlags::empty()).map_err(|e| e.to_string())?;
    let streams = connect_all(addr, clients, msg, reply_len, &epoll)?;
    let rss = PeakRss::start(server_pid);
    let (server_cpu, load_cpu) = (cpu_seconds(server_pid), thread_cpu_seconds());
    let started = Instant::now();
    // Per client: when its request went out, how much of the reply is in, trips done.
    let mut sent_at = vec![started; clients];
    let mut have = vec![0usize; clients];
    let mut done_trips = vec![0usize; clients];
    let mut lat: Vec<u32> = Vec::with_capacity(clients * trips);
    let send = |s: &TcpStream| -> Result<(), String> {
        // 64 bytes into an empty socket buffer always go out whole.
        match (&mut &*s).write(msg) {
            Ok(n) if n == msg.len() => Ok(()),
            Ok(n) => Err(format!("short send of {n} bytes")),
            Err(e) => Err(format!("send: {e}")),
        }
    };
    for (i, s) in streams.iter().enumerate() {
        sent_at[i] = Instant::now();
        send(s)?;
    }
    let mut finished = 0;
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = vec![0u8; reply_len.max(4096)];
    let result = (|| -> Result<(), String> {
        // A slow server may take long; one that stops answering is given up on.
        let mut last_reply = Instant::now();
        while finished < clients {
            if last_reply.elapsed() > PATIENCE {
                return Err(format!(
                    "no reply for {PATIENCE:?} ({finished} of {clients} clients done)"
                ));
            }
            let n = epoll
                .wait(&mut events, 1000u16)
                .map_err(|e| format!("epoll: {e}"))?;
            for ev in &events[..n] {
                let i = ev.data() as usize;
                let s = &streams[i];
                loop {
                    match (&mut &*s).read(&mut buf[..reply_len - have[i]]) {
                        Ok(0) => return Err(format!("server closed client {i}")),
                        Ok(k) => have[i] += k,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("reply: {e}")),
                    }
                    if have[i] == reply_len {
                        break;
                    }
                }
                if have[i] < reply_len {
                    continue;
                }
                last_reply = Instant::now();
                let us = sent_at[i].elapsed().as_micros().min(u32::MAX as u128) as u32;
                lat.push(us);
                have[i] = 0;
                done_trips[i] += 1;
                if done_trips[i] == trips {
                    finished += 1;
                    let _ = epoll.delete(s);
                } else {
                    sent_at[i] = Instant::now();
                    send(s)?;
                }
            }
        }
        Ok(())
    })();
    let elapsed = started.elapsed().as_secs_f64();
    let per_trip = 1e6 / (clients * trips) as f64;
    let server_us = (cpu_seconds(server_pid) - server_cpu) * per_trip;
    let load_us = (thread_cpu_seconds() - load_cpu) * per_trip;
    let rss = rss.stop();
    result?;
    lat.sort_unstable();
    Ok(Trial::new(lat.len() as f64 / elapsed)
        .with("p50 ms", quantile_ms(&lat, 0.50))
        .with("p99 ms", quantile_ms(&lat, 0.99))
        .with("RSS MiB", rss)
        .with("server CPU µs/trip", server_us)
        .with("load CPU µs/trip", load_us))
}

/// 64 bytes, valid UTF-8 (the Python server decodes and prints every message).
pub const MSG: &[u8; 64] = b"socktools benchmark round trip: 64 bytes of ASCII text, no NL..\n";

/// A server of scenarios 2 and 2b, so that both measure the same commands: its
/// label in the table, the peer program it needs (`None`: ours), how it starts
/// on 127.0.0.1, and how many bytes it answers each 64-byte message with.
#[derive(Clone, Copy)]
pub struct EchoServer {
    pub label: &'static str,
    pub program: Option<&'static str>,
    start: fn() -> Result<(Process, SocketAddr), String>,
    reply_len: usize,
}

impl EchoServer {
    /// Start it, run `f(addr, pid, reply_len)`, and stop it, as [`trial_with`].
    pub fn trial(
        self,
        f: impl FnOnce(SocketAddr, u32, usize) -> Result<Trial, String>,
    ) -> Result<Trial, String> {
        trial_with((self.start)()?, |addr, pid| f(addr, pid, self.reply_len))
    }
}

/// Ours first, then the course's threaded server and ncat.
pub const ECHO_SERVERS: [EchoServer; 3] = [
    EchoServer {
        label: "tcp-server --echo",
        program: None,
        start: || our_server("tcp-server", &["--echo"]),
        reply_len: MSG.len(),
    },
    EchoServer {
        label: "python3 lesson04_server.py",
        program: Some("python3"),
        start: || course_server("lesson04_server.py"),
        // What it answers to every message.
        reply_len: "ok, 问题正在处理中...".len(),
    },
    EchoServer {
        label: "ncat -l -k --exec /bin/cat",
        program: Some("ncat"),
        start: || {
            let echo = |p| format!("-l -k -m 2000 127.0.0.1 {p} --exec /bin/cat");
            peer_server(Proto::Tcp, "ncat", echo)
        },
        reply_len: MSG.len(),
    },
];

/// Scenario 2: a thread-per-client server under 1000 clients.
pub fn many_clients(cfg: &Config) -> Vec<Outcome> {
    let clients = 1000;
    let trips = if cfg.full { 200 } else { 20 };
    let work = format!("{clients} clients × {trips} round trips of 64 B");
    let mut plan = Plan::new("2 TCP 1000 clients", work, Metric::rate("trips/s"));
    let [us, python, ncat] = ECHO_SERVERS;
    let ours = us.label;
    let run = move |s: EchoServer| {
        move |_: usize| {
            s.trial(|addr, pid, reply| round_trips(addr, pid, clients, trips, MSG, reply))
        }
    };
    plan.ours(ours, run(us));
    for (s, target) in [(python, 10.0), (ncat, 1.0)] {
        let program = s.program.expect("a peer");
        plan.peer(program, s.label, ours, Some(target), run(s));
    }
    plan.bound(ours, "p99 ms", 10.0, "ms");
    plan.bound(ours, "RSS MiB", 64.0, "MiB");
    let pinned = Pinned::new();
    plan.note(Pinned::note(&pinned));
    vec![plan.measure(cfg.rounds)]
}

/// Median milliseconds of `runs` runs of `once`.
fn median_ms(
    runs: usize,
    mut once: impl FnMut() -> Result<Duration, String>,
) -> Result<Trial, String> {
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        ms.push(once()?.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Trial::new(ms[runs / 2]))
}

/// Spawn `cmd` with `input` on stdin and time it until it exits.
fn timed_with_input(mut cmd: Command, input: &[u8]) -> Result<Duration, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut p = start(cmd)?;
    let mut stdin = p.stdin.take().expect("piped");
    stdin.write_all(input).map_err(|e| e.to_string())?;
    drop(stdin);
    p.finish(PATIENCE)?;
    Ok(started.elapsed())
}

/// Scenario 7: how long a tool takes to start, and to do one message's round trip.
pub fn startup(cfg: &Config) -> Vec<Outcome> {
    const RUNS: usize = 21;
    let mut plan = Plan::new(
        "7 start-up",
        format!("median of {RUNS} runs per round"),
        Metric::time("ms"),
    );
    let help = "tcp-client --help";
    let one = "tcp-client, one message";
    let server = our_server("tcp-server", &["--echo"]);
    let addr = server.as_ref().map(|s| s.1).ok();
    plan.ours(help, |_| {
        median_ms(RUNS, || {
            let mut c = Command::new(bin("tcp-client"));
            c.arg("--help");
            run_timed(c, PATIENCE)
        })
    });
    plan.ours(one, move |_| {
        let addr = addr.ok_or("tcp-server did not start")?;
        median_ms(RUNS, || {
            let mut c = Command::new(bin("tcp-client"));
            c.args([addr.ip().to_string(), addr.port().to_string()]);
            timed_with_input(c, b"hi\n")
        })
    });
    plan.peer("nc", "nc -N, one message", one, None, move |_| {
        let addr = addr.ok_or("tcp-server did not start")?;
        median_ms(RUNS, || {
            let mut c = peer_cmd("nc");
            c.arg("-N")
                .args([addr.ip().to_string(), addr.port().to_string()]);
            timed_with_input(c, b"hi\n")
        })
    });
    plan.bound(help, "value", 5.0, "ms");
    plan.bound(one, "value", 5.0, "ms");
    let out = plan.measure(cfg.rounds);
    drop(server);
    vec![out]
}
