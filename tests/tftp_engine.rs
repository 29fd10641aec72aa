//! In-process tests of the TFTP engine, server and client: loss, duplication and reordering through a seeded relay, windows, rollover, the Sorcerer's Apprentice, stray transfer IDs.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use socktools::output::{Io, Log, Output, Verbosity};
use socktools::shutdown::Shutdown;
use socktools::tftp::client::{self, Report};
use socktools::tftp::fs::Root;
use socktools::tftp::packet::Request;
use socktools::tftp::server::{self, Summary};
use socktools::tftp::{ErrorCode, Mode, Packet};
use tempfile::{NamedTempFile, TempDir};
use util::lossy::{Faults, LossyProxy};
use util::{TIMEOUT, noise};

/// `tftp-serve` running on a thread, on 127.0.0.1 port 0, serving a temporary directory.
struct InProcessServer {
    dir: TempDir,
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<thread::JoinHandle<Summary>>,
    /// The server's stderr, in a file of its own (outside the served directory).
    log: NamedTempFile,
}

impl InProcessServer {
    fn start(configure: impl FnOnce(&mut server::Config)) -> InProcessServer {
        let dir = TempDir::new().unwrap();
        let mut cfg = server::Config::new(Root::new(dir.path()).unwrap());
        cfg.allow_write = true;
        cfg.overwrite = true;
        configure(&mut cfg);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let log = NamedTempFile::new().unwrap();
        let (stop, sink) = (shutdown.clone(), log.reopen().unwrap());
        let thread = thread::spawn(move || {
            let io = Io::new(
                Output::to_writer(std::io::sink()),
                Log::to_writer(sink, Verbosity::Normal),
            );
            server::serve(socket, &cfg, io, &stop).unwrap()
        });
        InProcessServer {
            dir,
            addr,
            shutdown,
            thread: Some(thread),
            log,
        }
    }

    fn put_file(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.path().join(name), data).unwrap();
    }

    fn read_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    /// Stop, and what the server logged.
    fn stop(mut self) -> (Summary, String) {
        self.shutdown.trigger();
        let summary = self.thread.take().unwrap().join().unwrap();
        (summary, std::fs::read_to_string(self.log.path()).unwrap())
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(server: SocketAddr, blksize: u16, windowsize: u16) -> client::Config {
    let mut cfg = client::Config::new(server);
    cfg.blksize = Some(blksize);
    cfg.windowsize = Some(windowsize);
    cfg
}

fn download(cfg: &client::Config, name: &str) -> (Vec<u8>, Report) {
    let mut got = Vec::new();
    let d = client::get(cfg, name.as_bytes(), &mut got, &mut ())
        .unwrap_or_else(|e| panic!("get {name}: {e}"));
    (got, d.confirm())
}

fn upload(cfg: &client::Config, name: &str, data: &[u8]) -> Report {
    client::put(
        cfg,
        name.as_bytes(),
        &mut &data[..],
        Some(data.len() as u64),
        &mut (),
    )
    .unwrap_or_else(|e| panic!("put {name}: {e}"))
}

#[track_caller]
fn assert_same(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "length");
    assert!(
        got == want,
        "contents differ at byte {:?}",
        got.iter().zip(want).position(|(a, b)| a != b)
    );
}

/// 8 MiB each way through a relay that drops, duplicates and reorders 10% of
/// datagrams in each direction.
fn lossy_round_trip(blksize: u16, windowsize: u16, seed: u64) {
    let server = InProcessServer::start(|_| {});
    let data = noise(8 << 20, seed);
    server.put_file("big.bin", &data);
    let faults = Faults::uniform(0.10);
    let proxy = LossyProxy::start(server.addr, faults, faults, seed);
    let cfg = config(proxy.addr(), blksize, windowsize);
    let (got, report) = download(&cfg, "big.bin");
    eprintln!(
        "download, windowsize {windowsize}: {}",
        report.summary("received")
    );
    assert_same(&got, &data);
    assert_eq!(report.options.windowsize, Some(windowsize));
    assert!(
        report.stats.retransmits > 0 || report.stats.duplicates > 0,
        "the relay did interfere"
    );
    drop(proxy);

    let proxy = LossyProxy::start(server.addr, faults, faults, seed + 1);
    let cfg = config(proxy.addr(), blksize, windowsize);
    let report = upload(&cfg, "up.bin", &data);
    eprintln!(
        "upload, windowsize {windowsize}: {}",
        report.summary("sent")
    );
    drop(proxy);
    assert_same(&server.read_file("up.bin"), &data);
    let (summary, log) = server.stop();
    assert_eq!(summary.bytes_received, data.len() as u64);
    assert_eq!((summary.completed, summary.failed), (2, 0));
    assert!(
        log.contains("RRQ \"big.bin\" octet: sent 8388608 bytes"),
        "{log}"
    );
    assert!(
        log.contains("WRQ \"up.bin\" octet: received 8388608 bytes"),
        "{log}"
    );
}

#[test]
fn lossy_lock_step_8_mib_both_ways() {
    // Big blocks: at 10% loss each way a lock-step transfer loses one round
    // trip in five, and each costs a timeout; fewer blocks keep the test quick.
    lossy_round_trip(8192, 1, 11);
}

#[test]
fn lossy_windowed_8_mib_both_ways() {
    lossy_round_trip(1468, 16, 12);
}

/// A raw client socket for driving the server packet by packet.
fn raw_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn rrq(name: &str) -> Vec<u8> {
    Packet::Rrq(Request {
        filename: name.as_bytes().into(),
        mode: Mode::Octet,
        options: vec![],
    })
    .encode()
}

/// Receives one datagram, or `None` after the socket's timeout.
fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 70000];
    let (n, from) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some((buf, from))
}

#[test]
fn duplicate_acks_never_make_the_sender_send_twice() {
    // The Sorcerer's Apprentice: if a sender answered every ACK with DATA, an
    // ACK sent twice would make every later block go out twice.
    let server = InProcessServer::start(|cfg| cfg.timeout = Duration::from_secs(5));
    let data = noise(50 * 512 + 100, 7);
    server.put_file("f", &data);
    let s = raw_socket();
    s.send_to(&rrq("f"), server.addr).unwrap();
    let mut got = Vec::new();
    let mut data_packets = 0;
    let mut tid = None;
    loop {
        let (packet, from) = recv(&s).expect("DATA within the timeout");
        assert_eq!(*tid.get_or_insert(from), from, "one transfer ID");
        let Ok(Packet::Data { block, data: chunk }) = Packet::parse(&packet) else {
            panic!("not DATA: {packet:?}")
        };
        data_packets += 1;
        assert_eq!(
            usize::from(block),
            got.len() / 512 + 1,
            "blocks in order, none repeated"
        );
        got.extend_from_slice(chunk);
        // Every ACK twice.
        s.send_to(&Packet::ack(block), from).unwrap();
        s.send_to(&Packet::ack(block), from).unwrap();
        if chunk.len() < 512 {
            break;
        }
    }
    assert_same(&got, &data);
    assert_eq!(data_packets, 51);
    assert!(recv(&s).is_none(), "nothing more after the final ACK");
}

#[test]
fn stray_transfer_ids_get_error_5_and_the_transfer_goes_on() {
    let server = InProcessServer::start(|_| {});
    let data = noise(3 * 512 + 7, 8);
    server.put_file("f", &data);
    let s = raw_socket();
    let stray = raw_socket();
    s.send_to(&rrq("f"), server.addr).unwrap();
    let mut got = Vec::new();
    loop {
        let (packet, tid) = recv(&s).expect("DATA");
        let Ok(Packet::Data { block, data: chunk }) = Packet::parse(&packet) else {
            panic!("not DATA")
        };
        got.extend_from_slice(chunk);
        // Someone else writes to the transfer's port.
        stray.send_to(&Packet::ack(block), tid).unwrap();
        let (answer, _) = recv(&stray).expect("an answer to the stray packet");
        assert!(
            matches!(
                Packet::parse(&answer),
                Ok(Packet::Error {
                    code: ErrorCode::UnknownTransferId,
                    ..
                })
            ),
            "{answer:?}"
        );
        s.send_to(&Packet::ack(block), tid).unwrap();
        if chunk.len() < 512 {
            break;
        }
    }
    assert_same(&got, &data);
}

#[test]
fn block_numbers_roll_over() {
    let server = InProcessServer::start(|_| {});
    // 1 MiB in 8-byte blocks: 131073 blocks, past 65535 twice.
    let small = noise(1 << 20, 9);
    server.put_file("small-blocks", &small);
    let (got, report) = download(&config(server.addr, 8, 16), "small-blocks");
    assert_same(&got, &small);
    assert_eq!(report.stats.blocks, 131073);
    let report = upload(&config(server.addr, 8, 16), "small-up", &small);
    assert_eq!(report.stats.blocks, 131073);
    assert_same(&server.read_file("small-up"), &small);
    // Over 32 MiB at RFC 1350's 512 bytes.
    let big = noise(33 << 20, 10);
    server.put_file("big", &big);
    let (got, report) = download(&config(server.addr, 512, 64), "big");
    assert_eq!(report.options.blksize, Some(512));
    assert_same(&got, &big);
}

#[test]
fn every_block_size_and_window_completes() {
    let server = InProcessServer::start(|_| {});
    let data = noise((3 << 20) + 123, 11);
    server.put_file("f", &data);
    for blksize in [512, 1468, 8192, 65464] {
        for windowsize in [1, 4, 16, 64] {
            let cfg = config(server.addr, blksize, windowsize);
            let (got, report) = download(&cfg, "f");
            assert_eq!(report.options.blksize, Some(blksize));
            assert_eq!(report.options.windowsize, Some(windowsize));
            assert_same(&got, &data);
            let name = format!("up-{blksize}-{windowsize}");
            upload(&cfg, &name, &data);
            assert_same(&server.read_file(&name), &data);
            assert!(
                report.elapsed < TIMEOUT,
                "blksize {blksize} windowsize {windowsize}: {}",
                report.summary("got")
            );
        }
    }
}

/// 1 MiB in windows of 16 through a relay that loses 10% each way (the
/// issue's seeds 7–11): the server sent 750–1140 blocks again before the
/// receiver kept blocks past a gap; now the DATA it sends stay under 1.5 per
/// block delivered.
#[test]
fn windowed_recovery_resends_little_over_real_sockets() {
    for seed in 7..=11 {
        let server = InProcessServer::start(|_| {});
        let data = noise(1 << 20, seed);
        server.put_file("one.bin", &data);
        let faults = Faults {
            drop: 0.10,
            duplicate: 0.0,
            reorder: 0.0,
        };
        let proxy = LossyProxy::start(server.addr, faults, faults, seed);
        let cfg = config(proxy.addr(), 1468, 16);
        let (got, _) = download(&cfg, "one.bin");
        assert_same(&got, &data);
        drop(proxy);
        let (_, log) = server.stop();
        let line = log.lines().find(|l| l.contains("RRQ")).unwrap_or_default();
        let resent: u64 = line
            .split(", ")
            .find_map(|part| part.strip_suffix(" retransmitted"))
            .map_or(0, |n| n.parse().unwrap());
        let blocks = (data.len() / 1468 + 1) as u64;
        eprintln!("seed {seed}: {resent} resent for {blocks} blocks");
        assert!(
            (blocks + resent) * 2 < blocks * 3,
            "seed {seed}: {resent} resent for {blocks} blocks: {line}"
        );
    }
}
