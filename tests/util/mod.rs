//! Test helpers: run the real binaries (servers on port 0, read back from `listening on ADDR`), with timeouts everywhere.
#![allow(dead_code)]

pub mod lossy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits on: long enough for a loaded CI
/// machine, short enough that a hang fails instead of stalling the suite.
pub const TIMEOUT: Duration = Duration::from_secs(20);

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

/// Is a peer program installed? If not: skip with a note, or fail when
/// `REQUIRE_PEERS=1` (CI installs them all).
pub fn have_peer(cmd: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("peer program `{cmd}` is missing and REQUIRE_PEERS=1");
        }
        eprintln!("note: `{cmd}` is not installed; skipping this test");
    }
    found
}

/// Is tftpd-hpa (`in.tftpd`) usable? It must be installed, and it drops to
/// `nobody` after its chroot, which only root may do (as a plain user it
/// starts, then every transfer dies silently).
pub fn have_tftpd() -> bool {
    use std::os::unix::fs::MetadataExt;
    if !have_peer("in.tftpd") {
        return false;
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        assert!(
            std::env::var("REQUIRE_PEERS").as_deref() != Ok("1"),
            "in.tftpd needs root and REQUIRE_PEERS=1"
        );
        eprintln!("note: in.tftpd needs root to switch to nobody; skipping this test");
    }
    root
}

/// Lines of a child's pipe, read on a thread and handed over a channel, so a
/// test can wait for one with a timeout.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn spawn(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                if tx.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or None at end of stream or after `TIMEOUT`.
    pub fn next(&mut self) -> Option<String> {
        let line = self.rx.recv_timeout(TIMEOUT).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Wait for a line containing `needle`; panic with what was seen if it never comes.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line containing {needle:?}; saw {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stream ended without {needle:?}; saw {:?}", self.seen)
                }
            }
        }
    }

    /// Every remaining line until the stream ends (bounded by `TIMEOUT`).
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

/// A server binary running on port 0; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Lines,
    pub stdout: Option<Lines>,
}

impl Server {
    /// Start `name` with `args` (which should ask for port 0), stdin closed.
    pub fn start(name: &str, args: &[&str]) -> Server {
        Self::start_with(name, args, Stdio::null(), true)
    }

    /// Start with a piped stdin (take it from `child.stdin`).
    pub fn start_with_stdin(name: &str, args: &[&str]) -> Server {
        Self::start_with(name, args, Stdio::piped(), true)
    }

    /// Start with stdout left for the caller to read from `child.stdout` as bytes.
    pub fn start_raw_stdout(name: &str, args: &[&str]) -> Server {
        Self::start_with(name, args, Stdio::null(), false)
    }

    fn start_with(name: &str, args: &[&str], stdin: Stdio, line_stdout: bool) -> Server {
        let mut cmd = Command::new(bin(name));
        cmd.args(args).stdin(stdin).stdout(Stdio::piped());
        Self::start_command(cmd, line_stdout)
    }

    /// Start a server command prepared by the caller (a `sh -c 'ulimit …; exec …'`,
    /// a stdout of its choosing); stderr is piped here. A piped stdout is read
    /// as lines if `line_stdout`, else left in `child.stdout`.
    pub fn start_command(mut cmd: Command, line_stdout: bool) -> Server {
        let name = format!("{:?}", cmd.get_program());
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("start server");
        let mut stderr = Lines::spawn(child.stderr.take().unwrap());
        let stdout = if line_stdout {
            child.stdout.take().map(Lines::spawn)
        } else {
            None
        };
        let first = stderr.next().unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{name} printed nothing on stderr")
        });
        let addr = parse_listening(&first)
            .unwrap_or_else(|| panic!("first stderr line is not `listening on ADDR`: {first:?}"));
        Server {
            child,
            addr: loopback(addr),
            stderr,
            stdout,
        }
    }

    /// The server's stdout lines.
    pub fn out(&mut self) -> &mut Lines {
        self.stdout.as_mut().expect("stdout is read raw")
    }

    /// Send SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        sigint(&self.child);
    }

    /// Send signal `name`: `INT` as Ctrl-C does, `TERM` as systemd and `docker stop` do.
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Wait for exit (bounded by `TIMEOUT`).
    pub fn wait(&mut self) -> ExitStatus {
        wait_timeout(&mut self.child, TIMEOUT).expect("server did not exit in time")
    }
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

/// Send SIGINT to a child, as Ctrl-C does.
pub fn sigint(child: &Child) {
    signal(child, "INT");
}

/// Send signal `name` (`INT`, `TERM`, …) to a child.
pub fn signal(child: &Child, name: &str) {
    // The shell's built-in kill: no procps needed on a bare machine.
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -{name} {}", child.id())])
        .status()
        .expect("run sh")
        .success();
    assert!(ok, "kill -{name} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `listening on 127.0.0.1:5000` → the address.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("listening on ")?.trim().parse().ok()
}

/// A wildcard address (`[::]:P`, `0.0.0.0:P`) is reached on loopback.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Poll a child for exit until `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().ok()? {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Run a command to completion with `input` on stdin, killing it after `TIMEOUT`.
pub fn run(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_timeout(&mut child, TIMEOUT).expect("command did not finish in time");
    let _ = feeder.join();
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
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

/// A peer program's process, killed when dropped (also when a test fails).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Path of one of the notes' scripts kept under tests/course.
pub fn course_script(name: &str) -> String {
    format!("{}/tests/course/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Start one of the notes' Python servers (python3 SCRIPT), which prints
/// `listening on ADDR` on stderr first: the process, its address, its stdout
/// and the rest of its stderr.
pub fn python_server(script: &str) -> (KillOnDrop, SocketAddr, Lines, Lines) {
    let mut py = KillOnDrop(
        Command::new("python3")
            .arg(course_script(script))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = Lines::spawn(py.0.stderr.take().unwrap());
    let out = Lines::spawn(py.0.stdout.take().unwrap());
    let addr = parse_listening(&err.expect("listening on")).unwrap();
    (py, addr, out, err)
}

/// An interactive process: lines go in through `say`, stdout and stderr come
/// back as [`Lines`]. Killed when dropped.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub out: Lines,
    pub err: Lines,
}

impl Proc {
    /// Start `cmd` with all three standard streams piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        Proc {
            stdin: child.stdin.take(),
            out: Lines::spawn(child.stdout.take().unwrap()),
            err: Lines::spawn(child.stderr.take().unwrap()),
            child,
        }
    }

    /// Start a server-like command and read its `listening on ADDR` line.
    pub fn listening(cmd: Command) -> (Proc, SocketAddr) {
        let mut p = Proc::spawn(cmd);
        let line = p.err.expect("listening on");
        let addr = parse_listening(&line).unwrap_or_else(|| panic!("bad line {line:?}"));
        (p, loopback(addr))
    }

    /// Type a line (a newline is added).
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to stdin");
        stdin.flush().unwrap();
    }

    /// Close stdin (Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Send SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        sigint(&self.child);
    }

    /// Send signal `name`: `INT` as Ctrl-C does, `TERM` as systemd and `docker stop` do.
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Wait for exit (bounded by `TIMEOUT`).
    pub fn wait(&mut self) -> ExitStatus {
        wait_timeout(&mut self.child, TIMEOUT).expect("process did not exit in time")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
