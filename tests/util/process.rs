//! The one process wrapper of the tests and the bench: a child killed when dropped (also when a test fails), its output read as lines with a timeout, servers' `listening on ADDR`, and where a peer program is installed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Generous bound for anything a test waits on: long enough for a loaded CI
/// machine, short enough that a hang fails instead of stalling the suite.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Where `cmd` is installed: on PATH, or in an sbin directory a plain user's
/// PATH often lacks (`in.tftpd` lives in /usr/sbin); an absolute or relative
/// path is taken as it is, if it exists.
pub fn find(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Path::new(cmd).exists().then(|| cmd.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// A command running peer program `program` from where [`find`] finds it
/// (as it is, if nowhere: then starting it fails and says so).
pub fn peer_cmd(program: &str) -> Command {
    Command::new(find(program).unwrap_or_else(|| program.into()))
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
                // Once nobody listens the pipe is still drained, so the
                // child never blocks on a full pipe.
                let _ = tx.send(text);
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

    /// Every remaining line (as [`Lines::rest`]), joined; they must contain
    /// `needle` somewhere.
    pub fn rest_with(&mut self, needle: &str) -> String {
        let all = self.rest().join("\n");
        assert!(all.contains(needle), "no {needle:?} in:\n{all}");
        all
    }

    /// Every line so far, without waiting for more.
    pub fn so_far(&mut self) -> &[String] {
        loop {
            match self.rx.try_recv() {
                Ok(line) => self.seen.push(line),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return &self.seen,
            }
        }
    }
}

/// `TOOL [SUBCOMMAND] 0 --bind 127.0.0.1 FLAGS…`: one of our servers on a
/// free loopback port (`tool`: `tcp-server`, `udp-echo serve`, `chat room`…).
pub fn server_cmd(tool: &str, flags: &[&str]) -> Command {
    let mut words = tool.split_whitespace();
    let mut c = Command::new(super::bin(words.next().expect("a tool")));
    c.args(words).args(["0", "--bind", "127.0.0.1"]).args(flags);
    c
}

/// All of `pipe`, read to the end on a thread.
pub fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        pipe.read_to_end(&mut v).expect("read a pipe to its end");
        v
    })
}

/// A child process, killed and reaped when dropped (also when a test fails).
/// A piped stdin is kept here for [`Process::say`]; stdout and stderr are read
/// as [`Lines`] or left in `child` for the caller, as each constructor says.
pub struct Process {
    pub child: Child,
    /// The command line, for messages.
    pub what: String,
    pub stdin: Option<ChildStdin>,
    out: Option<Lines>,
    err: Option<Lines>,
    addr: Option<SocketAddr>,
    /// Signals and the final kill go to its whole process group.
    group: bool,
    /// How often a wait looks whether it has exited.
    poll: Duration,
}

impl Process {
    /// Start `cmd` with the streams it was given; piped stdout and stderr stay
    /// in `child`. The error names the command.
    pub fn start(mut cmd: Command) -> Result<Process, String> {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        Ok(Process {
            stdin: child.stdin.take(),
            child,
            what,
            out: None,
            err: None,
            addr: None,
            group: false,
            // Coarse enough to cost nothing; some tests' timing (a server's
            // state right after a transfer) has always had this much slack.
            poll: Duration::from_millis(10),
        })
    }

    /// [`Process::start`] in a process group of its own (a shell and what it
    /// runs), which signals and the final kill reach as a whole.
    pub fn start_group(mut cmd: Command) -> Result<Process, String> {
        cmd.process_group(0);
        let mut p = Process::start(cmd)?;
        p.group = true;
        Ok(p)
    }

    /// [`Process::start`], failing the test if it cannot.
    pub fn new(cmd: Command) -> Process {
        Process::start(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Read its piped stdout and stderr (those still in `child`) as lines.
    pub fn read_lines(mut self) -> Process {
        self.out = self.child.stdout.take().map(Lines::spawn);
        self.err = self.child.stderr.take().map(Lines::spawn);
        self
    }

    /// Start `cmd` with all three standard streams piped, stdout and stderr read as lines.
    pub fn spawn(mut cmd: Command) -> Process {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Process::new(cmd).read_lines()
    }

    /// Start a server command whose stdin and stdout the caller has chosen;
    /// its first stderr line must be `listening on ADDR`. A piped stdout is
    /// read as lines if `line_stdout`, else left in `child`.
    pub fn try_serve(mut cmd: Command, line_stdout: bool) -> Result<Process, String> {
        cmd.stderr(Stdio::piped());
        let mut p = Process::start(cmd)?;
        let raw = if line_stdout {
            None
        } else {
            p.child.stdout.take()
        };
        p = p.read_lines();
        p.child.stdout = raw;
        let first = p
            .err()
            .next()
            .ok_or_else(|| format!("{} printed nothing on stderr", p.what))?;
        let addr = parse_listening(&first).ok_or_else(|| {
            format!(
                "{}: first stderr line is not `listening on ADDR`: {first:?}",
                p.what
            )
        })?;
        Ok(p.at(loopback(addr)))
    }

    /// [`Process::try_serve`], failing the test if the server does not start.
    pub fn serve(cmd: Command, line_stdout: bool) -> Process {
        Process::try_serve(cmd, line_stdout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server-like command with all three streams piped (a chat that is
    /// typed into, a course script), once it has said where it listens.
    pub fn listening(mut cmd: Command) -> Process {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        Process::serve(cmd, true)
    }

    /// Our server `TOOL [SUBCOMMAND] 0 --bind 127.0.0.1 FLAGS…` on a free
    /// loopback port (`tool`: `tcp-server`, `udp-echo serve`, `chat room`…),
    /// stdin closed, stdout read as lines.
    pub fn server(tool: &str, flags: &[&str]) -> Process {
        Process::server_with(tool, flags, Stdio::null(), true)
    }

    /// [`Process::server`] with a piped stdin (in `stdin`).
    pub fn server_with_stdin(tool: &str, flags: &[&str]) -> Process {
        Process::server_with(tool, flags, Stdio::piped(), true)
    }

    /// [`Process::server`] with its stdout left in `child` for the caller.
    pub fn server_raw_stdout(tool: &str, flags: &[&str]) -> Process {
        Process::server_with(tool, flags, Stdio::null(), false)
    }

    /// Server command `cmd` with stdin closed and stdout read as lines.
    pub fn serving(mut cmd: Command) -> Process {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        Process::serve(cmd, true)
    }

    fn server_with(tool: &str, flags: &[&str], stdin: Stdio, line_stdout: bool) -> Process {
        let mut c = server_cmd(tool, flags);
        c.stdin(stdin).stdout(Stdio::piped());
        Process::serve(c, line_stdout)
    }

    /// The same process, its waits looking every `poll` whether it has exited
    /// (the bench times start-ups of a few milliseconds).
    pub fn polling(mut self, poll: Duration) -> Process {
        self.poll = poll;
        self
    }

    /// The same process, known to listen on `addr`.
    pub fn at(mut self, addr: SocketAddr) -> Process {
        self.addr = Some(addr);
        self
    }

    /// Where it listens (on loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| panic!("{} has not said where it listens", self.what))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdout lines.
    pub fn out(&mut self) -> &mut Lines {
        let what = &self.what;
        self.out
            .as_mut()
            .unwrap_or_else(|| panic!("the stdout of {what} is not read as lines"))
    }

    /// Its stderr lines.
    pub fn err(&mut self) -> &mut Lines {
        let what = &self.what;
        self.err
            .as_mut()
            .unwrap_or_else(|| panic!("the stderr of {what} is not read as lines"))
    }

    /// Stop keeping what it prints (it is still read, so it never blocks on a
    /// full pipe): for a long-running server nobody reads.
    pub fn discard_output(&mut self) {
        self.out = None;
        self.err = None;
    }

    /// Its raw stdout, read to the end on a thread.
    pub fn collect_stdout(&mut self) -> thread::JoinHandle<Vec<u8>> {
        collect(self.child.stdout.take().expect("stdout is piped and raw"))
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
        self.signal("INT");
    }

    /// Send signal `name`: `INT` as Ctrl-C does, `TERM` as systemd and `docker stop` do.
    pub fn signal(&self, name: &str) {
        let sig: Signal = format!("SIG{name}")
            .parse()
            .unwrap_or_else(|_| panic!("no signal SIG{name}"));
        self.try_signal(sig)
            .unwrap_or_else(|e| panic!("kill -{name} {}: {e}", self.what));
    }

    /// Send `sig` (to the whole group, for [`Process::start_group`]).
    pub fn try_signal(&self, sig: Signal) -> nix::Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32);
        if self.group {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        }
    }

    /// Send signal `name` and wait for a clean exit (status 0): how long it took.
    pub fn stop(&mut self, name: &str) -> Duration {
        let start = Instant::now();
        self.signal(name);
        let status = self.wait();
        assert!(status.success(), "SIG{name}: exit status {status:?}");
        start.elapsed()
    }

    /// Its exit status once it exits, at most `limit` from now; past that it
    /// is killed and the error says so.
    pub fn wait_for(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                self.kill();
                return Err(format!("{} did not finish in {limit:?}", self.what));
            }
            thread::sleep(self.poll);
        }
    }

    /// Wait for exit (bounded by `TIMEOUT`).
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_for(TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wait for it to exit by itself, at most `limit`; a non-zero exit is an error.
    pub fn finish(&mut self, limit: Duration) -> Result<(), String> {
        match self.wait_for(limit)? {
            st if st.success() => Ok(()),
            st => Err(format!("{} exited with {st}", self.what)),
        }
    }

    fn kill(&mut self) {
        if self.group {
            let _ = self.try_signal(Signal::SIGKILL);
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
