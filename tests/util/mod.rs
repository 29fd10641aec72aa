//! Test helpers: run the real binaries (servers on port 0, read back from `listening on ADDR`), with timeouts everywhere.
// Each test binary (and the bench, which includes this file) uses some of
// these helpers, never all.
#![allow(dead_code)]

pub mod lossy;
pub mod process;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use process::*;

/// Path of one of our binaries, as built by cargo for these tests.
pub fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "tcp-client" => env!("CARGO_BIN_EXE_tcp-client"),
        "tcp-server" => env!("CARGO_BIN_EXE_tcp-server"),
        "tftp-get" => env!("CARGO_BIN_EXE_tftp-get"),
        "tftp-put" => env!("CARGO_BIN_EXE_tftp-put"),
        "tftp-serve" => env!("CARGO_BIN_EXE_tftp-serve"),
        "chat" => env!("CARGO_BIN_EXE_chat"),
        "udp-echo" => env!("CARGO_BIN_EXE_udp-echo"),
        other => panic!("unknown binary {other}"),
    })
}

/// Is a peer program installed (where [`find`] looks)? If not: skip with a
/// note, or fail when `REQUIRE_PEERS=1` (CI installs them all).
pub fn have_peer(cmd: &str) -> bool {
    let found = find(cmd).is_some();
    if !found {
        if std::env::var("REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("peer program `{cmd}` is missing and REQUIRE_PEERS=1");
        }
        eprintln!("note: `{cmd}` is not installed; skipping this test");
    }
    found
}

/// Does this process run as root? (`/proc/self` belongs to the effective user.)
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Is tftpd-hpa (`in.tftpd`) usable? It must be installed, and it drops to
/// `nobody` after its chroot, which only root may do (as a plain user it
/// starts, then every transfer dies silently).
pub fn have_tftpd() -> bool {
    if !have_peer("in.tftpd") {
        return false;
    }
    let root = is_root();
    if !root {
        assert!(
            std::env::var("REQUIRE_PEERS").as_deref() != Ok("1"),
            "in.tftpd needs root and REQUIRE_PEERS=1"
        );
        eprintln!("note: in.tftpd needs root to switch to nobody; skipping this test");
    }
    root
}

/// `/dev/full` opened for writing, to stand for a full disk as a child's stdout
/// (every write fails with ENOSPC); None, with a note, where there is none.
pub fn dev_full() -> Option<std::fs::File> {
    match std::fs::OpenOptions::new().write(true).open("/dev/full") {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("note: cannot open /dev/full ({e}); skipping this test");
            None
        }
    }
}

/// Run a command to completion with `input` on stdin, killing it after `TIMEOUT`.
pub fn run(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Process::new(cmd);
    let mut stdin = p.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = p.collect_stdout();
    let err = collect(p.child.stderr.take().unwrap());
    let status = p.wait();
    let _ = feeder.join();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The run succeeded (else fail with what it printed).
pub fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The run failed with `code`, and its stderr mentions `needle`; returns stderr.
pub fn failed(out: &Output, code: i32, needle: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "no {needle:?} in {err:?}");
    err
}

/// `WRAPPER… TOOL ARGS…` (one of our binaries, `wrapper` being a shell
/// command line in front of it or nothing) in a pseudo-terminal:
/// tests/pty/type_in_chat.py types what it is told and keeps the screen, so
/// a test reads rows as a person would. None (skip the test) without python3.
pub fn on_a_terminal(wrapper: &[&str], tool: &str, args: &[&str]) -> Option<Process> {
    if !have_peer("python3") {
        return None;
    }
    let mut c = peer_cmd("python3");
    c.arg(format!(
        "{}/tests/pty/type_in_chat.py",
        env!("CARGO_MANIFEST_DIR")
    ))
    .args(wrapper)
    .arg(bin(tool))
    .args(args);
    Some(Process::spawn(c))
}

/// The run failed with `code`, and its stderr is exactly `stderr`.
pub fn failed_saying(out: &Output, code: i32, stderr: &str) {
    assert_eq!(text(&out.stderr), stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
}

/// How many of `lines` contain `needle`.
pub fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// One of our binaries as a command.
pub fn cmd(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin(name));
    c.args(args);
    c
}

/// A client socket with read/write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Write all of `msg` to `s`.
pub fn send_all(mut s: &TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("send");
}

/// Send `msg` and read `n` bytes of answer.
pub fn ask(s: &TcpStream, msg: &[u8], n: usize) -> Vec<u8> {
    send_all(s, msg);
    read_n(s, n)
}

/// Send `msg` and expect the same bytes back, as from an echo server.
pub fn echoes(s: &TcpStream, msg: &[u8]) {
    assert!(ask(s, msg, msg.len()) == msg, "the echo differs");
}

/// A loopback UDP socket whose reads and writes give up after `TIMEOUT`.
pub fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// The next datagram on `s` and its sender.
pub fn recv_from(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                buf.truncate(n);
                return (buf, from);
            }
            // A wait with a timeout can end in EINTR even without a signal
            // handler (after a stop and continue of the process, say): wait on.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("no datagram in time: {e}"),
        }
    }
}

/// Send datagram `msg` from `s` to `to`; the answer.
pub fn ask_udp(s: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    s.send_to(msg, to).expect("send a datagram");
    recv_from(s).0
}

/// Read until the peer closes.
pub fn read_all(mut s: &TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read to end");
    v
}

/// Read exactly `n` bytes.
pub fn read_n(mut s: &TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("read_exact");
    v
}

/// Pseudo-random bytes (xorshift), reproducible, no dependency.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Text of a byte vector, for assertions.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Path of one of the notes' scripts kept under tests/course.
pub fn course_script(name: &str) -> String {
    format!("{}/tests/course/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// One of the notes' programs kept under tests/course, unbuffered
/// (`python3 -u SCRIPT`); None (skip the test) without python3.
pub fn course_python(script: &str) -> Option<Command> {
    if !have_peer("python3") {
        return None;
    }
    let mut c = peer_cmd("python3");
    c.arg("-u").arg(course_script(script));
    Some(c)
}

/// One of the notes' Python servers (python3 SCRIPT ARGS), which prints
/// `listening on ADDR` on stderr first; its stdout is read as lines. None
/// (skip the test) without python3.
pub fn python_server(script: &str, args: &[&str]) -> Option<Process> {
    let mut c = course_python(script)?;
    c.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
    Some(Process::serve(c, true))
}

/// tftpd-hpa (`in.tftpd -L`) serving `root` on a free loopback port, once it
/// answers; with `create`, uploads of new files are allowed (`-c`).
///
/// It serves as `nobody`, so the directory is opened up (0755, or 0777 for
/// uploads) and its files made world-readable: a `TempDir` is 0700.
pub fn tftpd(root: &Path, create: bool) -> Process {
    let mode = if create { 0o777 } else { 0o755 };
    fs::set_permissions(root, fs::Permissions::from_mode(mode)).unwrap();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut last = String::new();
    for _attempt in 0..10 {
        // A free port: bind, read it, let it go (in.tftpd has no "port 0"). Another
        // process may take it meanwhile: then in.tftpd exits, and we try another.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut c = peer_cmd("in.tftpd");
        c.args(["-L", "-u", "nobody", "-s"])
            .arg(root)
            .args(["-a", &addr.to_string()])
            .args(create.then_some("-c"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = Process::new(c).at(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = process.child.try_wait().unwrap() {
                last = format!("in.tftpd on {addr} exited at start: {status}");
                break;
            }
            // Ready once it answers a request (ERROR 1 for this name).
            probe
                .send_to(b"\x00\x01readiness-probe\x00octet\x00", addr)
                .unwrap();
            if probe.recv_from(&mut [0u8; 600]).is_ok() {
                return process;
            }
            last = format!("in.tftpd never answered on {addr}");
        }
    }
    panic!("could not start in.tftpd: {last}");
}
