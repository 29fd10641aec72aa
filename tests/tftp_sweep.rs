//! Seed sweep of real TFTP transfers through the lossy relay (5% loss and 5% late duplicates each way): our client and server with each other, with tftpd-hpa and with tftp-hpa's client; plus checks of the relay's port mapping.
//!
//! ```sh
//! cargo test --test tftp_sweep -- --nocapture                  # the whole sweep, 200 seeds each
//! SWEEP_ONLY=ours cargo test --test tftp_sweep sweep           # one pairing: ours | tftpd | hpa
//! SWEEP_SEEDS=50 cargo test --test tftp_sweep sweep            # seeds 1..=50
//! SWEEP_ONLY=tftpd SWEEP_SEED_LIST=17,42 cargo test --test tftp_sweep sweep   # replay
//! ```
//!
//! Other knobs: `SWEEP_DIR=get|put` (one direction), `SWEEP_LIMIT_SECS` (the per-transfer
//! bound for every pairing), `SWEEP_WORKERS` (parallel transfers for ours and tftpd,
//! default 8; tftp-hpa's client, which mostly sleeps on its timers, gets six times as
//! many), `SWEEP_VERBOSE=1` (`-v` for tftp-get/tftp-put), `SWEEP_TRACE=N` (how many of
//! the relay's last events a failing run prints, default 24).
//!
//! Each run's relay is seeded from its pairing, direction and seed: the n-th datagram
//! each way meets the same fate every time, so a seed replays (up to timing: a
//! retransmission that comes at a different moment shifts the datagrams after it).
//! Every run checks the exit code, the bytes (for a put, the server's copy) and a time
//! bound; a run past the bound is killed and counted as a hang.

mod util;

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use util::lossy::{Faults, Link, LossyProxy, SplitMix64, Stats, TraceEvent};
use util::{Process, bin, have_peer, have_tftpd, noise, peer_cmd, tftpd};

// --- The relay's port mapping ----------------------------------------------------

/// Read timeout of every socket in the relay checks: a datagram that should come
/// comes within microseconds, so this only bounds a failure.
const RECV: Duration = Duration::from_secs(5);

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(RECV)).unwrap();
    s
}

/// The next datagram on `s`, or a failure naming `what`.
#[track_caller]
fn recv(s: &UdpSocket, what: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: nothing arrived: {e}"));
    buf.truncate(n);
    (buf, from)
}

/// `msg`, sent from `sock` to `to`, arrives at `at` from `from`.
#[track_caller]
fn passes(sock: &UdpSocket, to: SocketAddr, msg: &[u8], at: &UdpSocket, from: SocketAddr) {
    sock.send_to(msg, to).unwrap();
    let what = String::from_utf8_lossy(msg);
    let (got, sender) = recv(at, &what);
    assert_eq!((got.as_slice(), sender), (msg, from), "{what}");
}

#[test]
fn relay_gives_each_server_port_and_each_client_port_a_port_of_its_own() {
    // The server's request port, and a second port as a transfer ID would be.
    let request_port = socket();
    let transfer_port = socket();
    let relay = LossyProxy::start(
        request_port.local_addr().unwrap(),
        Faults::none(),
        Faults::none(),
        1,
    );
    let (c1, c2) = (socket(), socket());

    // Client 1's first datagram goes to the relay's front address, and reaches the
    // request port from a relay port (not from the client's own).
    c1.send_to(b"c1 request", relay.addr()).unwrap();
    let (got, back1) = recv(&request_port, "c1's request at the server");
    assert_eq!(got, b"c1 request");
    assert_ne!(back1, c1.local_addr().unwrap());

    // The server answers from both its ports: the client sees two distinct relay
    // ports, the request port's being the front address.
    request_port.send_to(b"from request port", back1).unwrap();
    let (got, front_req) = recv(&c1, "the request port's answer at c1");
    assert_eq!(
        (got.as_slice(), front_req),
        (&b"from request port"[..], relay.addr())
    );
    transfer_port.send_to(b"from transfer port", back1).unwrap();
    let (got, front_xfer) = recv(&c1, "the transfer port's datagram at c1");
    assert_eq!(got, b"from transfer port");
    assert_ne!(front_xfer, front_req, "two server ports, two relay ports");
    assert_ne!(
        front_xfer.port(),
        transfer_port.local_addr().unwrap().port()
    );

    // What the client sends to each front port reaches the server port it stands
    // for, from the same back port.
    passes(&c1, front_xfer, b"to transfer port", &transfer_port, back1);
    passes(&c1, front_req, b"to request port", &request_port, back1);

    // A second client socket is a second port to the server.
    c2.send_to(b"c2 request", relay.addr()).unwrap();
    let (got, back2) = recv(&request_port, "c2's request at the server");
    assert_eq!(got, b"c2 request");
    assert_ne!(back2, back1, "two client ports, two relay ports");
    // Answers to each back port go to its own client, from the right front port.
    passes(&transfer_port, back2, b"to c2", &c2, front_xfer);
    passes(&request_port, back1, b"to c1 again", &c1, front_req);

    // Another host writing to a back port is ignored: client 1's next datagram is
    // the server's, sent after the stranger's to the same relay socket.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.set_read_timeout(Some(RECV)).unwrap();
    stranger.send_to(b"stranger", back1).unwrap();
    transfer_port.send_to(b"after stranger", back1).unwrap();
    let (got, _) = recv(&c1, "the datagram after the stranger's");
    assert_eq!(got, b"after stranger");

    let stats = relay.stats();
    assert_eq!(
        (stats.client_ports, stats.server_ports),
        (2, 2),
        "{stats:?}"
    );
    assert_eq!(stats.to_server.received, 4, "{stats:?}");
    assert_eq!(stats.to_client.received, 5, "{stats:?}");
}

#[test]
fn relay_adds_well_under_a_millisecond_on_a_quiet_path() {
    let server = socket();
    let relay = LossyProxy::start(
        server.local_addr().unwrap(),
        Faults::none(),
        Faults::none(),
        2,
    );
    let client = socket();
    let mut round_trips = Vec::new();
    for i in 0..200u32 {
        let start = Instant::now();
        client.send_to(&i.to_be_bytes(), relay.addr()).unwrap();
        let (got, back) = recv(&server, "ping at the server");
        server.send_to(&got, back).unwrap();
        let (got, _) = recv(&client, "pong at the client");
        round_trips.push(start.elapsed());
        assert_eq!(got, i.to_be_bytes());
    }
    round_trips.sort();
    let median = round_trips[round_trips.len() / 2];
    eprintln!(
        "relay round trip (two forwardings): median {median:?}, max {:?}",
        round_trips.last().unwrap()
    );
    // Two forwardings plus the test's own sends and receives; generous, because other
    // tests (the sweep) may be loading both cores meanwhile.
    assert!(
        median < Duration::from_millis(2),
        "median round trip {median:?}"
    );
}

#[test]
fn relay_sends_late_duplicates_late_and_never_duplicates_requests() {
    let server = socket();
    let max_delay = Duration::from_millis(20);
    let every = Faults::loss_and_late_dups(0.0, 1.0, max_delay);
    let relay = LossyProxy::start(server.local_addr().unwrap(), every, every, 3);
    let client = socket();
    // A request (RRQ) is not duplicated, a DATA packet is, a little later.
    client
        .send_to(b"\x00\x01name\x00octet\x00", relay.addr())
        .unwrap();
    let (_, back) = recv(&server, "the RRQ");
    let data = b"\x00\x03\x00\x01hello";
    let sent = Instant::now();
    server.send_to(data, back).unwrap();
    let (got, _) = recv(&client, "DATA");
    assert_eq!(got, data);
    let (got, _) = recv(&client, "the late copy of DATA");
    let late = sent.elapsed();
    assert_eq!(got, data);
    assert!(
        late < max_delay + Duration::from_millis(500),
        "copy after {late:?}"
    );
    // The server got the RRQ once: the next thing it sees is this ACK.
    client.send_to(b"\x00\x04\x00\x01", relay.addr()).unwrap();
    let (got, _) = recv(&server, "the ACK");
    assert_eq!(got, b"\x00\x04\x00\x01");
    let (got, _) = recv(&server, "the ACK's late copy");
    assert_eq!(got, b"\x00\x04\x00\x01");
    let stats = relay.stats();
    assert_eq!(stats.to_client.late_duplicated, 1, "{stats:?}");
    assert_eq!(stats.to_server.late_duplicated, 1, "{stats:?}");
}

// --- The sweep -------------------------------------------------------------------

/// 5% dropped, and 5% sent again up to 20 ms later, each way.
fn path() -> Link {
    Faults::loss_and_late_dups(0.05, 0.05, Duration::from_millis(20))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pairing {
    /// tftp-get / tftp-put ↔ tftp-serve.
    Ours,
    /// tftp-get / tftp-put ↔ in.tftpd (tftpd-hpa).
    Tftpd,
    /// tftp (tftp-hpa's client) ↔ tftp-serve.
    Hpa,
}

impl Pairing {
    const ALL: [Pairing; 3] = [Pairing::Ours, Pairing::Tftpd, Pairing::Hpa];

    fn name(self) -> &'static str {
        match self {
            Pairing::Ours => "ours",
            Pairing::Tftpd => "tftpd",
            Pairing::Hpa => "hpa",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Pairing::Ours => "tftp-get/put ↔ tftp-serve",
            Pairing::Tftpd => "tftp-get/put ↔ in.tftpd",
            Pairing::Hpa => "tftp (hpa) ↔ tftp-serve",
        }
    }

    /// The longest one transfer may take before it is killed and counted as a hang.
    /// tftp-hpa's client retransmits only after 5 s of silence (every datagram it
    /// receives, even a duplicate ACK it ignores, restarts that timer) and gives up
    /// after five silent timeouts on one block (exit 69: a failure, not a hang). At
    /// 5% loss an upload of up to 33 blocks loses a few DATA packets, 5 s or more
    /// each, so it gets much more room.
    fn limit(self) -> Duration {
        if let Some(s) = env_u64("SWEEP_LIMIT_SECS") {
            return Duration::from_secs(s);
        }
        match self {
            Pairing::Ours | Pairing::Tftpd => Duration::from_secs(20),
            Pairing::Hpa => Duration::from_secs(60),
        }
    }

    /// File size for `seed`: our client and tftpd-hpa move 64–256 KiB, with exact
    /// multiples of 512 (65536, 262144) and of 1468 (146800) among them, so some
    /// transfers end with an empty block. tftp-hpa's client goes lock-step at 512
    /// bytes and waits on 1–5 s timers, so it gets 8–16 KiB, also with multiples of 512.
    fn size(self, seed: u64) -> usize {
        let r = SplitMix64(seed ^ 0x5eed_f11e).next_u64() as usize;
        match (self, seed % 5) {
            (Pairing::Hpa, 0) => 8192,
            (Pairing::Hpa, 1) => 16384,
            (Pairing::Hpa, _) => (8 << 10) + r % (8 << 10),
            (_, 0) => 65536,
            (_, 1) => 1468 * 100,
            (_, 2) => 262144,
            (_, _) => (64 << 10) + r % (192 << 10),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    Get,
    Put,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Get => "get",
            Direction::Put => "put",
        }
    }
}

/// One transfer to run.
#[derive(Clone, Copy, Debug)]
struct Job {
    pairing: Pairing,
    direction: Direction,
    seed: u64,
}

impl Job {
    /// The relay's seed: distinct for every pairing and direction, so their fault
    /// patterns differ, and fixed by the job, so a seed replays.
    fn relay_seed(&self) -> u64 {
        self.seed * 8 + (self.pairing as u64) * 2 + self.direction as u64
    }
}

/// What became of one job.
struct Outcome {
    job: Job,
    size: usize,
    secs: f64,
    verdict: Verdict,
    /// The first and last lines the client printed (stdout and stderr; failing runs only).
    output: Vec<String>,
    /// The file's name on the server.
    remote: String,
    /// The server's log lines about this file, gathered when the sweep ends (ours
    /// only: tftpd-hpa logs to syslog).
    server_log: Vec<String>,
    relay: Stats,
    /// The relay's latest events (failing runs only).
    trace: Vec<TraceEvent>,
}

enum Verdict {
    Ok,
    /// Exited in time, but not with 0, or with the wrong bytes.
    Failed(String),
    /// Killed at the time bound.
    Hang,
    /// Failed cleanly where the peer leaves no way to succeed (see `run`).
    PeerLimit(String),
}

/// A server for one pairing, and its root directory.
struct Target {
    /// tftp-serve's stderr lines are kept (tftpd-hpa logs to syslog).
    server: Mutex<Process>,
    root: PathBuf,
    _dir: TempDir,
}

impl Target {
    /// `tftp-serve DIR --port 0 --allow-write --overwrite` on loopback.
    fn tftp_serve() -> Target {
        let dir = TempDir::new().unwrap();
        let root = dir.path().to_str().unwrap();
        let server = Process::serving(util::cmd(
            "tftp-serve",
            &[
                root,
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--allow-write",
                "--overwrite",
            ],
        ));
        Target::new(server, dir)
    }

    /// `in.tftpd -L -s DIR -c` on a free loopback port.
    fn tftpd() -> Target {
        let dir = TempDir::new().unwrap();
        Target::new(tftpd(dir.path(), true), dir)
    }

    fn new(server: Process, dir: TempDir) -> Target {
        Target {
            server: Mutex::new(server),
            root: dir.path().to_path_buf(),
            _dir: dir,
        }
    }
}

/// Runs one job against `target` in its own scratch directory under `work`.
fn run(job: Job, target: &Target, work: &Path) -> Outcome {
    let Job {
        pairing,
        direction,
        seed,
    } = job;
    let size = pairing.size(seed);
    let data = noise(size, job.relay_seed() | 1);
    let scratch = work.join(format!("{}-{}-{seed}", pairing.name(), direction.name()));
    fs::create_dir_all(&scratch).unwrap();
    let (remote, local) = match direction {
        Direction::Get => (format!("get-{seed}.bin"), "got.bin"),
        Direction::Put => (format!("up-{seed}.bin"), "put.bin"),
    };
    let (source, result) = match direction {
        // tftpd-hpa serves as `nobody`: files it reads must be world-readable.
        Direction::Get => (target.root.join(&remote), scratch.join(local)),
        Direction::Put => (scratch.join(local), target.root.join(&remote)),
    };
    fs::write(&source, &data).unwrap();
    fs::set_permissions(&source, fs::Permissions::from_mode(0o644)).unwrap();

    let server = target.server.lock().unwrap().addr();
    let relay = LossyProxy::start(server, path(), path(), job.relay_seed());
    let port = relay.addr().port().to_string();
    let mut cmd = match (pairing, direction) {
        (Pairing::Hpa, dir) => {
            let mut c = peer_cmd("tftp");
            c.args(["127.0.0.1", &port, "-m", "binary", "-c", dir.name()]);
            match dir {
                Direction::Get => c.args([&remote, local]),
                Direction::Put => c.args([local, &remote]),
            };
            c
        }
        (_, Direction::Get) => {
            let mut c = Command::new(bin("tftp-get"));
            c.args(["--port", &port, "127.0.0.1", &remote, "-o", local]);
            c.args(verbose());
            c
        }
        (_, Direction::Put) => {
            let mut c = Command::new(bin("tftp-put"));
            c.args(["--port", &port, "127.0.0.1", local, &remote]);
            c.args(verbose());
            c
        }
    };
    // Output to a file: nothing to drain while the transfer runs.
    let out_path = scratch.join("output.txt");
    let out = fs::File::create(&out_path).unwrap();
    cmd.current_dir(&scratch)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let start = Instant::now();
    let mut client = Process::new(cmd).polling(Duration::from_millis(2));
    let status = client.wait_for(pairing.limit()).ok();
    let secs = start.elapsed().as_secs_f64();
    let stats = relay.stats();
    let trace = relay.trace();
    drop(relay);

    let verdict = match status {
        None => Verdict::Hang,
        // in.tftpd answers a repeat of the last DATA once, then exits: when
        // its final ACK and that one answer are both lost (0.25% at 5% loss),
        // it has the whole file and no client can learn so. Ours then fails
        // cleanly, saying which ACK never came; anything else is a failure.
        Some(s)
            if !s.success()
                && pairing == Pairing::Tftpd
                && matches!(direction, Direction::Put)
                && fs::read(&result).is_ok_and(|got| got == data)
                && fs::read_to_string(&out_path).is_ok_and(|o| {
                    o.contains(&format!("no ACK of block {}", (size / 1468 + 1) as u16))
                        || o.contains(&format!("no ACK of block {}", (size / 512 + 1) as u16))
                }) =>
        {
            Verdict::PeerLimit(format!(
                "client failed cleanly ({s}); in.tftpd has the whole file but both its final ACKs were lost"
            ))
        }
        Some(s) if !s.success() => Verdict::Failed(format!("client failed: {s}")),
        Some(_) => match fs::read(&result) {
            Err(e) => Verdict::Failed(format!("{}: {e}", result.display())),
            Ok(got) if got != data => Verdict::Failed(format!(
                "exit 0 but {} holds {} bytes, expected {}; first difference at byte {:?}",
                result.display(),
                got.len(),
                data.len(),
                got.iter().zip(&data).position(|(a, b)| a != b)
            )),
            Ok(_) => Verdict::Ok,
        },
    };
    let ok = matches!(verdict, Verdict::Ok);
    let output = if ok {
        Vec::new()
    } else {
        excerpt(&fs::read(&out_path).unwrap_or_default())
    };
    if ok {
        // Keep the scratch space small while the sweep runs.
        let _ = fs::remove_dir_all(&scratch);
        let _ = fs::remove_file(target.root.join(&remote));
    }
    Outcome {
        job,
        size,
        secs,
        verdict,
        output,
        remote,
        server_log: Vec::new(),
        relay: stats,
        trace: if ok { Vec::new() } else { trace },
    }
}

/// The first and last few non-empty lines of a client's output.
fn excerpt(text: &[u8]) -> Vec<String> {
    const EACH: usize = 4;
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() <= 2 * EACH {
        return lines.into_iter().map(String::from).collect();
    }
    let mut out: Vec<String> = lines[..EACH].iter().map(|l| l.to_string()).collect();
    out.push(format!("… ({} lines)", lines.len() - 2 * EACH));
    out.extend(lines[lines.len() - EACH..].iter().map(|l| l.to_string()));
    out
}

/// tftp-serve's log lines about `remote` (it logs each transfer when it ends).
fn server_lines(target: &Target, remote: &str) -> Vec<String> {
    let quoted = format!("\"{remote}\"");
    let mut server = target.server.lock().unwrap();
    let mut lines: Vec<String> = server
        .err()
        .so_far()
        .iter()
        .filter(|l| l.contains(&quoted))
        .cloned()
        .collect();
    if lines.len() > 4 {
        lines.drain(..lines.len() - 4);
    }
    lines
}

/// How many of the relay's last events a failing run's report shows on stderr
/// (`SWEEP_TRACE`, default 24).
fn trace_lines() -> usize {
    env_u64("SWEEP_TRACE").map_or(24, |n| n as usize)
}

/// `-v` for our clients when `SWEEP_VERBOSE=1`, to see more of a failing seed.
fn verbose() -> &'static [&'static str] {
    if std::env::var("SWEEP_VERBOSE").as_deref() == Ok("1") {
        &["-v"]
    } else {
        &[]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The seeds to run: `SWEEP_SEED_LIST=a,b,c`, else `1..=SWEEP_SEEDS` (default 200).
fn seeds() -> Vec<u64> {
    if let Ok(list) = std::env::var("SWEEP_SEED_LIST") {
        return list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("bad seed {s:?} in SWEEP_SEED_LIST"))
            })
            .collect();
    }
    (1..=env_u64("SWEEP_SEEDS").unwrap_or(200)).collect()
}

/// Runs `jobs` on `workers` threads, each taking the next job from a shared counter.
fn run_pool(
    jobs: &[Job],
    workers: usize,
    targets: &[(Pairing, Target)],
    work: &Path,
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..workers.min(jobs.len()) {
            s.spawn(|| {
                while let Some(&job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let target = &targets.iter().find(|(p, _)| *p == job.pairing).unwrap().1;
                    let outcome = run(job, target, work);
                    if !matches!(outcome.verdict, Verdict::Ok) {
                        eprintln!("{}", describe(&outcome, trace_lines()));
                    }
                    done.lock().unwrap().push(outcome);
                }
            });
        }
    });
    done.into_inner().unwrap()
}

/// One failing run, for the log and the assertion message.
/// One failing run, with the last `trace` events the relay saw.
fn describe(o: &Outcome, trace: usize) -> String {
    let why = match &o.verdict {
        Verdict::Ok => "ok".to_string(),
        Verdict::Failed(why) => why.clone(),
        Verdict::Hang => format!("HANG: killed after {:.1} s", o.secs),
        Verdict::PeerLimit(why) => format!("peer limit: {why}"),
    };
    let mut s = format!(
        "{} {} seed {} ({} bytes, {:.1} s): {why}",
        o.job.pairing.name(),
        o.job.direction.name(),
        o.job.seed,
        o.size,
        o.secs
    );
    for line in &o.output {
        s.push_str(&format!("\n    client: {line}"));
    }
    for line in &o.server_log {
        s.push_str(&format!("\n    server: {line}"));
    }
    let (up, down) = (o.relay.to_server, o.relay.to_client);
    s.push_str(&format!(
        "\n    relay: to server {} received / {} dropped / {} late dups, to client {} / {} / {}; {} client ports, {} server ports",
        up.received, up.dropped, up.late_duplicated, down.received, down.dropped, down.late_duplicated,
        o.relay.client_ports, o.relay.server_ports
    ));
    let skip = o.trace.len().saturating_sub(trace);
    if trace > 0 && !o.trace.is_empty() {
        s.push_str(&format!(
            "\n    relay's last {} events (c: client port, s: server port):",
            o.trace.len() - skip
        ));
    }
    for event in &o.trace[skip..] {
        s.push_str(&format!("\n      {event}"));
    }
    s
}

#[test]
fn sweep() {
    let only = std::env::var("SWEEP_ONLY").ok();
    let pairings: Vec<Pairing> = match only.as_deref() {
        None | Some("") | Some("all") => Pairing::ALL.to_vec(),
        Some(name) => vec![
            *Pairing::ALL
                .iter()
                .find(|p| p.name() == name)
                .unwrap_or_else(|| panic!("SWEEP_ONLY={name:?}: expected ours, tftpd or hpa")),
        ],
    };
    let directions: Vec<Direction> = match std::env::var("SWEEP_DIR").as_deref() {
        Ok("get") => vec![Direction::Get],
        Ok("put") => vec![Direction::Put],
        _ => vec![Direction::Get, Direction::Put],
    };
    let mut targets = Vec::new();
    for &p in &pairings {
        let available = match p {
            Pairing::Ours => true,
            Pairing::Tftpd => have_tftpd(),
            Pairing::Hpa => have_peer("tftp"),
        };
        if !available {
            eprintln!("note: skipping the {} pairing", p.label());
            continue;
        }
        let target = match p {
            Pairing::Tftpd => Target::tftpd(),
            Pairing::Ours | Pairing::Hpa => Target::tftp_serve(),
        };
        targets.push((p, target));
    }
    let seeds = seeds();
    let jobs = |wanted: &dyn Fn(Pairing) -> bool| -> Vec<Job> {
        let mut jobs = Vec::new();
        for &seed in &seeds {
            for (pairing, _) in &targets {
                for &direction in &directions {
                    if wanted(*pairing) {
                        jobs.push(Job {
                            pairing: *pairing,
                            direction,
                            seed,
                        });
                    }
                }
            }
        }
        jobs
    };
    let fast = jobs(&|p| p != Pairing::Hpa);
    let slow = jobs(&|p| p == Pairing::Hpa);
    let workers = env_u64("SWEEP_WORKERS").unwrap_or(8).max(1) as usize;
    let work = TempDir::new().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "sweep: {} seeds, {} transfers ({} with tftp-hpa's client) on {workers}+{} workers; 5% loss and 5% late duplicates (≤ 20 ms) each way",
        seeds.len(),
        fast.len() + slow.len(),
        slow.len(),
        workers * 6
    );
    let started = Instant::now();
    let mut outcomes = thread::scope(|s| {
        let slow = s.spawn(|| run_pool(&slow, workers * 6, &targets, work.path()));
        let mut outcomes = run_pool(&fast, workers, &targets, work.path());
        outcomes.extend(slow.join().unwrap());
        outcomes
    });
    let total = started.elapsed();
    outcomes.sort_by_key(|o| (o.job.pairing as u8, o.job.direction as u8, o.job.seed));
    for o in outcomes
        .iter_mut()
        .filter(|o| !matches!(o.verdict, Verdict::Ok))
    {
        if o.job.pairing != Pairing::Tftpd {
            let target = &targets.iter().find(|(p, _)| *p == o.job.pairing).unwrap().1;
            o.server_log = server_lines(target, &o.remote);
        }
    }

    let mut table = format!(
        "\nsweep finished in {:.1} s\n{:<28} {:<4} {:>5} {:>8} {:>6} {:>8} {:>8}  failing seeds\n",
        total.as_secs_f64(),
        "pairing",
        "dir",
        "runs",
        "failures",
        "hangs",
        "median s",
        "max s"
    );
    let mut failures = Vec::new();
    for (pairing, _) in &targets {
        for &direction in &directions {
            let group: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.job.pairing == *pairing && o.job.direction == direction)
                .collect();
            if group.is_empty() {
                continue;
            }
            let mut secs: Vec<f64> = group.iter().map(|o| o.secs).collect();
            secs.sort_by(f64::total_cmp);
            let failed: Vec<&&Outcome> = group
                .iter()
                .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
                .collect();
            let hung: Vec<&&Outcome> = group
                .iter()
                .filter(|o| matches!(o.verdict, Verdict::Hang))
                .collect();
            let seeds_of = |v: &[&&Outcome], tag: &str| -> Vec<String> {
                v.iter().map(|o| format!("{}{tag}", o.job.seed)).collect()
            };
            let mut bad = seeds_of(&failed, "");
            bad.extend(seeds_of(&hung, "(hang)"));
            table.push_str(&format!(
                "{:<28} {:<4} {:>5} {:>8} {:>6} {:>8.2} {:>8.2}  {}\n",
                pairing.label(),
                direction.name(),
                group.len(),
                failed.len(),
                hung.len(),
                secs[secs.len() / 2],
                secs[secs.len() - 1],
                bad.join(",")
            ));
            failures.extend(
                group
                    .into_iter()
                    .filter(|o| matches!(o.verdict, Verdict::Failed(_) | Verdict::Hang)),
            );
        }
    }
    let _ = writeln!(std::io::stderr(), "{table}");
    let limited: Vec<String> = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::PeerLimit(_)))
        .map(|o| describe(o, 0))
        .collect();
    if !limited.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "not counted as failures (the peer's limit, the client said so):\n{}",
            limited.join("\n")
        );
    }
    if failures.is_empty() {
        return;
    }
    // The message shows a few runs of every failing pairing and direction, those
    // that failed outright before those that hung; stderr above has them all.
    let mut shown: Vec<&Outcome> = Vec::new();
    for (pairing, _) in &targets {
        for &direction in &directions {
            let mut group: Vec<&Outcome> = failures
                .iter()
                .copied()
                .filter(|o| o.job.pairing == *pairing && o.job.direction == direction)
                .collect();
            group.sort_by_key(|o| matches!(o.verdict, Verdict::Hang));
            shown.extend(group.into_iter().take(2));
        }
    }
    let details: Vec<String> = shown.iter().map(|o| describe(o, 6)).collect();
    if failures.len() > details.len() {
        let all: Vec<String> = failures.iter().map(|o| describe(o, 0)).collect();
        let _ = writeln!(std::io::stderr(), "all failing runs:\n{}", all.join("\n"));
    }
    let mut replay = Vec::new();
    for (pairing, _) in &targets {
        let mut seeds: Vec<u64> = failures
            .iter()
            .filter(|o| o.job.pairing == *pairing)
            .map(|o| o.job.seed)
            .collect();
        if seeds.is_empty() {
            continue;
        }
        seeds.sort_unstable();
        seeds.dedup();
        let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
        replay.push(format!(
            "SWEEP_ONLY={} SWEEP_SEED_LIST={} cargo test --test tftp_sweep sweep -- --nocapture",
            pairing.name(),
            list.join(",")
        ));
    }
    let more = match failures.len() - details.len() {
        0 => String::new(),
        n => format!("\n… and {n} more (all listed on stderr above)"),
    };
    panic!(
        "{} of {} transfers failed or hung through the lossy relay (5% loss, 5% late duplicates each way)\n{table}{}{more}\nreplay with:\n  {}",
        failures.len(),
        outcomes.len(),
        details.join("\n"),
        replay.join("\n  ")
    );
}
