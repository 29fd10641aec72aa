//! README transcripts: parse README's fenced blocks and their `<!-- transcript: NAME -->` markers, run a scenario's steps through the real binaries as a terminal would show them, and compare with a documented normalizer.
//!
//! A scenario is a short script of [`Step`]s over named terminals. A terminal
//! whose name is a README marker is *shown*: each command it runs is the next
//! `$` line of that block, and what it printed (stdout and stderr through one
//! pipe, in the order written) becomes the block. Other terminals are hidden
//! peers: servers, clients, nc, the course's Python programs, or sockets held
//! by the test itself.
//!
//! README's commands use fixed ports (8080, 6969, …). A server started from
//! one runs on 127.0.0.1 port 0 instead (`0` replaces the port, `--bind
//! 127.0.0.1` is added), every later command gets the real port in place of
//! the README's, and the real port is written back as the README's in what is
//! shown, so README's text is literally what a run printed.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use encoding_rs::Encoding;
use nix::sys::signal::Signal;

use crate::util::{Process, TIMEOUT};

/// Marker of a block that is shown but cannot be run on loopback.
pub const ILLUSTRATIVE: &str = "illustrative";

// ---------------------------------------------------------------------------
// README blocks

/// One fenced block of README.
#[derive(Debug, Clone)]
pub struct Block {
    /// NAME of the `<!-- transcript: NAME -->` line just above the fence.
    pub name: Option<String>,
    /// What follows the opening ``` (`console`, `sh`, `text`, …).
    pub lang: String,
    /// Index (0-based) of the opening fence's line.
    pub fence: usize,
    /// The lines between the fences.
    pub body: Vec<String>,
}

impl Block {
    /// The block's commands: its lines that start with `$ `, without it.
    pub fn commands(&self) -> Vec<String> {
        self.body
            .iter()
            .filter_map(|l| l.strip_prefix("$ ").map(str::to_string))
            .collect()
    }

    /// The body as one text, each line ending in `\n`.
    pub fn text(&self) -> String {
        self.body.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// `<!-- transcript: NAME -->` → NAME.
pub fn marker(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("<!-- transcript:")?
        .strip_suffix("-->")
        .map(str::trim)
}

/// Every fenced block of a Markdown text, with the marker above it if any.
pub fn parse(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let fence = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j] == "```")
            .unwrap_or(lines.len());
        blocks.push(Block {
            name: fence
                .checked_sub(1)
                .and_then(|p| marker(lines[p]))
                .map(str::to_string),
            lang: lang.trim().to_string(),
            fence,
            body: lines[fence + 1..end.min(lines.len())]
                .iter()
                .map(|l| l.to_string())
                .collect(),
        });
        i = end + 1;
    }
    blocks
}

/// What is wrong with the markers: a console block without one, a name used
/// twice, an illustrative block the prose does not call illustrative. Line
/// numbers are 1-based, as an editor shows them.
pub fn marker_problems(readme: &str, blocks: &[Block]) -> Vec<String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for b in blocks {
        let line = b.fence + 1;
        match b.name.as_deref() {
            None if b.lang == "console" => problems.push(format!(
                "README.md:{line}: console block without a `<!-- transcript: NAME -->` line above it \
                 (add one and a scenario in tests/readme.rs, or `<!-- transcript: {ILLUSTRATIVE} -->` \
                 if it cannot run on loopback, and say so in the text)"
            )),
            None => {}
            Some(ILLUSTRATIVE) => {
                // The prose right around the block must tell the reader.
                let from = b.fence.saturating_sub(4);
                let to = (b.fence + b.body.len() + 5).min(lines.len());
                if !lines[from..to]
                    .iter()
                    .any(|l| !l.starts_with("<!--") && l.to_lowercase().contains("illustrative"))
                {
                    problems.push(format!(
                        "README.md:{line}: block marked {ILLUSTRATIVE}, but the text around it does not say it is illustrative"
                    ));
                }
            }
            Some(name) => {
                if let Some(first) = seen.insert(name, line) {
                    problems.push(format!(
                        "README.md:{line}: transcript {name:?} already marks the block at line {first}"
                    ));
                }
            }
        }
    }
    problems
}

/// README with the bodies of some blocks replaced (`(fence line, new text)`).
pub fn rewrite(readme: &str, blocks: &[Block], new: &HashMap<usize, String>) -> String {
    let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
    let mut by_fence: Vec<&Block> = blocks
        .iter()
        .filter(|b| new.contains_key(&b.fence))
        .collect();
    by_fence.sort_by_key(|b| std::cmp::Reverse(b.fence));
    for b in by_fence {
        let body: Vec<String> = new[&b.fence].lines().map(str::to_string).collect();
        lines.splice(b.fence + 1..b.fence + 1 + b.body.len(), body);
    }
    let mut out = lines.join("\n");
    if readme.ends_with('\n') {
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Normalizer

/// A transcript with what must differ from run to run replaced by
/// placeholders; everything else is kept, so it must match exactly:
///
/// - a port of 10000 or more written after a colon (`127.0.0.1:46718`):
///   clients' ephemeral ports and servers started on port 0. They become
///   `:<port N>`, numbered in order of first appearance, so one client keeps
///   one number throughout a block. README's fixed ports (8080, 6969, …) are
///   below 10000 and stay as they are.
/// - durations and speeds of transfers: `in 0.01 s` → `in <secs> s`,
///   `74.0 MiB/s` → `<rate>`, `rtt 531.9µs` → `rtt <rtt>`;
/// - the time at the start of a trace line, `+0.000182` → `+<t>`;
/// - how many blocks a TFTP transfer sent again (`, 7 retransmitted`, left
///   out when none): on a loaded machine an ACK can come later than the timer
///   adapted to loopback's round trip expects;
/// - `--timestamps` times (`08:07:00.699` → `<time>`) and process ids
///   (`pid 20729` → `pid <pid>`).
///
/// (A server the test binds to 127.0.0.1 where README's command has none,
/// and the real ports of servers, are not normalized but mapped back to the
/// README's by the runner, so a rewritten README shows `listening on
/// [::]:8080`.)
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut ports: Vec<&str> = Vec::new();
    let mut i = 0;
    'scan: while i < text.len() {
        let rest = &text[i..];
        let word_start = out.is_empty() || out.ends_with([' ', '\n', '(', '\t']);
        if let Some(digits) = rest.strip_prefix(':').map(digits_len) {
            let num = &rest[1..1 + digits];
            let next = rest[1 + digits..].chars().next();
            if digits == 5
                && num
                    .parse::<u32>()
                    .is_ok_and(|p| (10000..=65535).contains(&p))
                && !matches!(next, Some('0'..='9' | '.'))
            {
                let k = match ports.iter().position(|p| *p == num) {
                    Some(k) => k,
                    None => {
                        ports.push(num);
                        ports.len() - 1
                    }
                };
                out.push_str(&format!(":<port {}>", k + 1));
                i += 1 + digits;
                continue;
            }
        }
        if let Some(n) = rest.strip_prefix(", ").map(digits_len).filter(|&n| n > 0)
            && rest[2 + n..].starts_with(" retransmitted")
        {
            i += 2 + n + " retransmitted".len();
            continue;
        }
        if word_start {
            if let Some(n) = rest.strip_prefix("pid ").map(digits_len).filter(|&n| n > 0) {
                out.push_str("pid <pid>");
                i += 4 + n;
                continue;
            }
            if clock_len(rest) {
                out.push_str("<time>");
                i += "HH:MM:SS.mmm".len();
                continue;
            }
            if let Some(n) = rest.strip_prefix('+').and_then(float_len) {
                out.push_str("+<t>");
                i += 1 + n;
                continue;
            }
            if let Some(n) = rest.strip_prefix("in ").and_then(number_len)
                && rest[3 + n..].starts_with(" s")
            {
                out.push_str("in <secs> s");
                i += 3 + n + 2;
                continue;
            }
            if let Some(n) = rest.strip_prefix("rtt ").and_then(float_len) {
                for unit in ["ns", "µs", "ms", "s"] {
                    if rest[4 + n..].starts_with(unit) {
                        out.push_str("rtt <rtt>");
                        i += 4 + n + unit.len();
                        continue 'scan;
                    }
                }
            }
            if let Some(n) = number_len(rest) {
                for unit in [" B/s", " KiB/s", " MiB/s", " GiB/s"] {
                    if rest[n..].starts_with(unit) {
                        out.push_str("<rate>");
                        i += n + unit.len();
                        continue 'scan;
                    }
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn digits_len(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// `08:07:00.699`: a `--timestamps` time.
fn clock_len(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 12
        && b[..12].iter().enumerate().all(|(k, c)| match k {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// `12.5`: digits, a dot, digits.
fn float_len(s: &str) -> Option<usize> {
    let a = digits_len(s);
    let b = s[a..].strip_prefix('.').map(digits_len)?;
    (a > 0 && b > 0).then_some(a + 1 + b)
}

/// `12` or `12.5`.
fn number_len(s: &str) -> Option<usize> {
    float_len(s).or_else(|| Some(digits_len(s)).filter(|&n| n > 0))
}

/// Lines of `expected` and `actual` compared after normalizing, as a diff:
/// `-` README only, `+` this run only, two spaces both.
pub fn diff(expected: &str, actual: &str) -> String {
    let (ne, na) = (normalize(expected), normalize(actual));
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let (ke, ka): (Vec<&str>, Vec<&str>) = (ne.lines().collect(), na.lines().collect());
    // Longest common subsequence, table from the end.
    let mut lcs = vec![vec![0usize; ka.len() + 1]; ke.len() + 1];
    for i in (0..ke.len()).rev() {
        for j in (0..ka.len()).rev() {
            lcs[i][j] = if ke[i] == ka[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < ke.len() || j < ka.len() {
        if i < ke.len() && j < ka.len() && ke[i] == ka[j] {
            out += &format!("   {}\n", e[i]);
            i += 1;
            j += 1;
        } else if i < ke.len() && (j == ka.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!(" - {}\n", e[i]);
            i += 1;
        } else {
            out += &format!(" + {}\n", a[j]);
            j += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Scenarios

/// The next `$` line of the shown terminal's block.
pub const NEXT: &str = "";

/// One thing a scenario does. Terminals are named; a terminal named like a
/// README marker is shown, and its commands must be [`NEXT`].
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Start a server (stdin open, nothing typed) that stands for README port
    /// `.1`: on 127.0.0.1 port 0, then wait for its `listening on ADDR` line.
    Serve(&'static str, u16, &'static str),
    /// Start a program that keeps running, stdin a pipe to [`Step::Type`] into.
    Open(&'static str, &'static str),
    /// Run a command to its end, stdin empty.
    Run(&'static str, &'static str),
    /// [`Step::Run`] each `$` line left in shown block `.0`, one after another.
    Runs(&'static str),
    /// For each text of `.2`: [`Step::Run`] the next `$` line of shown block
    /// `.0`, then [`Step::Wait`] until server `.1` shows that text (what a
    /// server prints about each of its client's commands).
    RunSeen(&'static str, &'static str, &'static [&'static str]),
    /// Type a line (a newline is added) into an [`Step::Open`]ed program, or
    /// send it from a [`Step::Connect`]ed socket (as is: add `\r\n` yourself).
    Type(&'static str, &'static str),
    /// One turn of a conversation: [`Step::Type`] `.1` in `.0`, then
    /// [`Step::Wait`] until terminal `.2` shows it.
    Say(&'static str, &'static str, &'static str),
    /// End a program's stdin (Ctrl-D).
    Eof(&'static str),
    /// Wait until the terminal shows this text (after what earlier waits saw)
    /// and, from a program, the end of its line: it may write a line in pieces.
    /// (What a socket receives is matched as it comes: peers' replies often
    /// have no newline.)
    Wait(&'static str, &'static str),
    /// Ctrl-C: SIGINT to the program's process group, then wait for its end.
    CtrlC(&'static str),
    /// Wait for the program to end by itself (a socket: for the peer to close).
    Exit(&'static str),
    /// Hold the program (SIGSTOP, as `kill -STOP` does) until [`Step::Resume`].
    Pause(&'static str),
    Resume(&'static str),
    /// The screen stops here: the program is killed, and what it printed so far
    /// is the transcript (a server that keeps running).
    Kill(&'static str),
    /// A TCP connection from the test, to README port `.1`, its screen decoded
    /// with encoding `.2` (what NetAssist or a Python client would show), and
    /// what it types encoded so too; `gbk/utf-8` types GBK and shows UTF-8.
    Connect(&'static str, u16, &'static str),
    /// A socket client's visit: [`Step::Connect`] `.0` to README port `.1`
    /// with encoding `.2`, [`Step::Type`] `.3`, then [`Step::Wait`] until its
    /// screen shows `.4`.
    Ask(&'static str, u16, &'static str, &'static str, &'static str),
    /// Close a [`Step::Connect`]ed socket.
    Close(&'static str),
    /// [`Step::Close`] socket `.0`, then [`Step::Wait`] until server `.1`
    /// shows it `disconnected`.
    Hangup(&'static str, &'static str),
    /// A UDP socket standing for README port `.0` that never answers.
    Silent(u16),
    /// A TCP port free a moment ago stands for README port `.0`.
    Free(u16),
    /// A TCP server standing for README port `.0` that takes one client, reads
    /// until it stops sending, then sends all of it back in one write and closes.
    EchoAtEnd(u16),
    /// [`Step::Open`] on a terminal of its own (a pty, made by `script`), for
    /// what a tool does only when a person types at it.
    OpenTty(&'static str, &'static str),
    /// The [`Step::Silent`] socket for README port `.0` answers the datagram
    /// it received with `.1`, as the notes' receiver does who types a reply.
    Answer(u16, &'static str),
    /// README port `.0` is held only by a connection in TIME-WAIT, closed a
    /// moment ago by a server without SO_REUSEADDR (the notes' lesson 03).
    TimeWait(u16),
}

/// A file the scenario's directory starts with.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    Text(&'static str),
    /// Reproducible pseudo-random bytes of this length.
    Noise(usize),
    Dir,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The README blocks it produces (a terminal of the same name each).
    pub blocks: &'static [&'static str],
    /// Peer programs it needs (skipped without them, unless REQUIRE_PEERS=1).
    pub needs: &'static [&'static str],
    /// Files to create in its directory, where every program starts.
    pub files: &'static [(&'static str, Content)],
    /// Terminals that start in a subdirectory instead.
    pub cwd: &'static [(&'static str, &'static str)],
    /// Runs tried while the result differs from README, for transcripts that
    /// show what usually happens but depends on timing (say why in a comment).
    pub attempts: u32,
    pub steps: &'static [Step],
}

pub const SCENARIO: Scenario = Scenario {
    blocks: &[],
    needs: &[],
    files: &[],
    cwd: &[],
    attempts: 1,
    steps: &[],
};

/// A scenario producing README blocks `blocks` by `steps`; the rest as
/// [`SCENARIO`] until a method below says otherwise.
pub const fn shows(blocks: &'static [&'static str], steps: &'static [Step]) -> Scenario {
    Scenario {
        blocks,
        steps,
        ..SCENARIO
    }
}

impl Scenario {
    /// It needs these peer programs.
    pub const fn needs(mut self, peers: &'static [&'static str]) -> Scenario {
        self.needs = peers;
        self
    }

    /// Its directory starts with these files.
    pub const fn files(mut self, files: &'static [(&'static str, Content)]) -> Scenario {
        self.files = files;
        self
    }

    /// These terminals start in these subdirectories.
    pub const fn cwd(mut self, cwd: &'static [(&'static str, &'static str)]) -> Scenario {
        self.cwd = cwd;
        self
    }

    /// It is tried up to this many times while it differs from README.
    pub const fn attempts(mut self, attempts: u32) -> Scenario {
        self.attempts = attempts;
        self
    }
}

/// Bytes a program (or a socket) has shown so far, and whether it is done.
#[derive(Default)]
struct Screen {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Screen {
    fn spawn_reader(mut from: impl Read + Send + 'static) -> Arc<Screen> {
        let screen = Arc::new(Screen::default());
        let s = screen.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = from.read(&mut buf).unwrap_or(0);
                let mut st = s.state.lock().unwrap();
                if n == 0 {
                    st.1 = true;
                } else {
                    st.0.extend_from_slice(&buf[..n]);
                }
                s.changed.notify_all();
                if n == 0 {
                    break;
                }
            }
        });
        screen
    }

    /// Wait until `ok(bytes, done)`, or `TIMEOUT`: the bytes either way.
    fn wait_for(&self, ok: impl Fn(&[u8], bool) -> bool) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut st = self.state.lock().unwrap();
        while !ok(&st.0, st.1) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (st.0.clone(), false);
            }
            st = self.changed.wait_timeout(st, left).unwrap().0;
        }
        (st.0.clone(), true)
    }
}

/// A named terminal: the program it runs now (or a socket), its screen.
struct Term {
    screen: Arc<Screen>,
    /// How far [`Step::Wait`] has read, in bytes of the decoded screen.
    seen: usize,
    /// In a process group of its own, so that Ctrl-C reaches a pipeline whole.
    child: Option<Process>,
    socket: Option<TcpStream>,
    encoding: &'static Encoding,
    /// What a [`Step::Connect`]ed socket types in (NetAssist: GBK, while it
    /// shows what it receives as UTF-8).
    typed: &'static Encoding,
    /// `--bind 127.0.0.1` was added to its command: show `listening on [::]`.
    bound: bool,
    /// Exit code of its last command, for a later `echo $?`.
    status: i32,
}

impl Term {
    fn new() -> Term {
        Term {
            screen: Arc::new(Screen::default()),
            seen: 0,
            child: None,
            socket: None,
            encoding: encoding_rs::UTF_8,
            typed: encoding_rs::UTF_8,
            bound: false,
            status: 0,
        }
    }

    fn text(&self, bytes: &[u8]) -> String {
        self.encoding
            .decode_without_bom_handling(bytes)
            .0
            .replace("\r\n", "\n")
    }
}

/// What a scenario produced: marker → transcript (ports mapped back).
pub type Transcripts = HashMap<String, String>;

/// Runs one scenario: its directory, its terminals, the port map.
pub struct Runner {
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    course_dir: String,
    scenario: Scenario,
    /// README port → real port, in the order servers started.
    ports: Vec<(u16, u16)>,
    /// [`Step::Silent`] sockets by README port.
    udp: HashMap<u16, UdpSocket>,
    terms: HashMap<&'static str, Term>,
    pending: HashMap<&'static str, VecDeque<String>>,
    out: Transcripts,
    held: Vec<Box<dyn std::any::Any + Send>>,
}

impl Runner {
    /// `blocks`: README's blocks, for the `$` lines of the shown terminals.
    pub fn new(
        scenario: Scenario,
        blocks: &[Block],
        bin_dir: &Path,
        course_dir: &str,
    ) -> Result<Runner, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        for (i, (path, content)) in scenario.files.iter().enumerate() {
            let p = dir.path().join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{path}: {e}"))?;
            }
            match content {
                Content::Dir => std::fs::create_dir_all(&p),
                Content::Text(t) => std::fs::write(&p, t),
                Content::Noise(n) => std::fs::write(&p, crate::util::noise(*n, 7 + i as u64)),
            }
            .map_err(|e| format!("{path}: {e}"))?;
        }
        let mut pending = HashMap::new();
        for name in scenario.blocks {
            let block = blocks
                .iter()
                .find(|b| b.name.as_deref() == Some(name))
                .ok_or_else(|| {
                    format!("README has no block marked `<!-- transcript: {name} -->`")
                })?;
            pending.insert(*name, block.commands().into());
        }
        Ok(Runner {
            dir,
            bin_dir: bin_dir.to_path_buf(),
            course_dir: course_dir.to_string(),
            scenario,
            ports: Vec::new(),
            udp: HashMap::new(),
            terms: HashMap::new(),
            pending,
            out: HashMap::new(),
            held: Vec::new(),
        })
    }

    fn shown(&self, t: &str) -> bool {
        self.scenario.blocks.contains(&t)
    }

    /// Run every step; on error, say which step and what the terminals showed.
    pub fn run(mut self) -> Result<Transcripts, String> {
        for (k, step) in self.scenario.steps.iter().enumerate() {
            if let Err(e) = self.step(*step) {
                let mut msg = format!("step {} {step:?}: {e}", k + 1);
                for (name, t) in &self.terms {
                    let bytes = t.screen.state.lock().unwrap().0.clone();
                    msg += &format!("\n  [{name}] shows: {:?}", t.text(&bytes));
                }
                return Err(msg);
            }
        }
        for (name, t) in self.terms.iter_mut() {
            if t.child.is_some() && self.scenario.blocks.contains(name) {
                return Err(format!(
                    "terminal {name} still runs at the end: end it with Exit, CtrlC or Kill"
                ));
            }
        }
        for (name, left) in &self.pending {
            if !left.is_empty() {
                return Err(format!(
                    "block {name}: the scenario never runs `$ {}`",
                    left[0]
                ));
            }
        }
        Ok(std::mem::take(&mut self.out))
    }

    /// The command to run: the shown block's next line, or the one given.
    fn line(&mut self, t: &'static str, cmd: &'static str) -> Result<String, String> {
        if !self.shown(t) {
            if cmd == NEXT {
                return Err(format!("hidden terminal {t} needs a command"));
            }
            return Ok(cmd.replace("{course}", &self.course_dir));
        }
        if cmd != NEXT {
            return Err(format!("shown terminal {t} runs its block's lines (NEXT)"));
        }
        let line = self
            .pending
            .get_mut(t)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| format!("block {t} has no more `$` lines"))?;
        self.out
            .entry(t.to_string())
            .or_default()
            .push_str(&format!("$ {line}\n"));
        Ok(line)
    }

    /// The command to run ([`Runner::line`]) with the real ports in it.
    fn command(&mut self, t: &'static str, cmd: &'static str) -> Result<String, String> {
        let line = self.line(t, cmd)?;
        Ok(self.real_ports(&line))
    }

    /// README ports in `cmd` replaced by the real ones (the latest server's).
    fn real_ports(&self, cmd: &str) -> String {
        let mut seen = Vec::new();
        let mut cmd = cmd.to_string();
        for (readme, real) in self.ports.iter().rev() {
            if !seen.contains(readme) {
                seen.push(*readme);
                cmd = replace_number(&cmd, &readme.to_string(), &real.to_string());
            }
        }
        cmd
    }

    fn term(&mut self, t: &'static str) -> &mut Term {
        self.terms.entry(t).or_insert_with(Term::new)
    }

    fn spawn(&mut self, t: &'static str, cmd: &str, stdin: bool) -> Result<(), String> {
        let mut script = cmd.to_string();
        if script.contains("$?") {
            let status = self.term(t).status;
            script = format!("(exit {status}); {script}");
        } else if !script.contains(['|', ';', '&', '(']) {
            // The tool itself, not a shell, receives Ctrl-C and gives the exit code.
            script = format!("exec {script}");
        }
        let cwd = match self.scenario.cwd.iter().find(|(n, _)| *n == t) {
            Some((_, sub)) => self.dir.path().join(sub),
            None => self.dir.path().to_path_buf(),
        };
        let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let child = {
            let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
            let path = format!(
                "{}:{}",
                self.bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let mut c = Command::new("sh");
            c.args(["-c", &script])
                .current_dir(cwd)
                .env("PATH", path)
                .env("TZ", "UTC")
                .env("LC_ALL", "C.UTF-8")
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                // One pipe for both: the order a terminal would show.
                .stdout(Stdio::from(writer))
                .stderr(Stdio::from(writer2));
            Process::start_group(c)?
            // `c` and its copies of the pipe's write end are dropped here, so
            // the screen ends when the program does.
        };
        let term = self.term(t);
        term.screen = Screen::spawn_reader(reader);
        term.seen = 0;
        term.bound = false;
        term.child = Some(child);
        Ok(())
    }

    /// The program in `t` has ended or been stopped: reap it, and append what
    /// it showed to the transcript.
    fn finish(&mut self, t: &'static str, status: i32) -> Result<(), String> {
        let ports = self.ports.clone();
        let tmp = self.dir.path().display().to_string();
        let shown = self.shown(t);
        let term = self.term(t);
        term.status = status;
        let (bytes, done) = term.screen.wait_for(|_, done| done);
        // Only now: what is left of its process group (nothing, normally) is
        // killed with it, after the check that nothing holds the pipe.
        term.child = None;
        if !done {
            return Err("its output did not end (something still holds the pipe)".into());
        }
        let mut text = term.text(&bytes);
        if term.bound {
            text = text
                .replace("listening on 127.0.0.1:", "listening on [::]:")
                .replace("listen on 127.0.0.1:", "listen on [::]:");
        }
        for (readme, real) in ports {
            for form in [":", "-p ", "--port ", "port "] {
                text = replace_number(&text, &format!("{form}{real}"), &format!("{form}{readme}"));
            }
        }
        text = text.replace(&tmp, "/tmp/lesson");
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if shown {
            self.out.entry(t.to_string()).or_default().push_str(&text);
        }
        Ok(())
    }

    fn wait_exit(&mut self, t: &'static str) -> Result<i32, String> {
        let child = self
            .term(t)
            .child
            .as_mut()
            .ok_or_else(|| format!("{t} runs nothing"))?;
        let status = child.wait_for(TIMEOUT)?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    fn signal(&mut self, t: &'static str, sig: Signal) -> Result<(), String> {
        let child = self
            .term(t)
            .child
            .as_ref()
            .ok_or_else(|| format!("{t} runs nothing"))?;
        child.try_signal(sig).map_err(|e| format!("kill: {e}"))
    }

    fn step(&mut self, step: Step) -> Result<(), String> {
        match step {
            Step::Serve(t, port, cmd) => {
                let line = self.line(t, cmd)?;
                let (line, bound) = on_loopback(&line, port);
                self.spawn(t, &line, true)?;
                self.term(t).bound = bound;
                let term = self.term(t);
                let (bytes, ok) = term.screen.wait_for(|b, done| done || b.contains(&b'\n'));
                let first = String::from_utf8_lossy(&bytes);
                let first = first.lines().next().unwrap_or("");
                let addr = crate::util::parse_listening(first).ok_or_else(|| {
                    format!("{line:?} did not start (ok={ok}): first line {first:?}")
                })?;
                self.ports.push((port, addr.port()));
            }
            Step::Open(t, cmd) => {
                let line = self.command(t, cmd)?;
                self.spawn(t, &line, true)?;
            }
            Step::Run(t, cmd) => {
                let line = self.command(t, cmd)?;
                self.spawn(t, &line, false)?;
                let status = self.wait_exit(t)?;
                self.finish(t, status)?;
            }
            Step::Runs(t) => {
                if !self.shown(t) {
                    return Err(format!("Runs({t:?}): {t} is not a shown terminal"));
                }
                while self.pending.get(t).is_some_and(|left| !left.is_empty()) {
                    self.step(Step::Run(t, NEXT))?;
                }
            }
            Step::RunSeen(t, server, seen) => {
                for text in seen {
                    self.step(Step::Run(t, NEXT))?;
                    self.step(Step::Wait(server, text))?;
                }
            }
            Step::Ask(t, port, encoding, text, until) => {
                self.step(Step::Connect(t, port, encoding))?;
                self.step(Step::Type(t, text))?;
                self.step(Step::Wait(t, until))?;
            }
            Step::Say(t, text, to) => {
                self.step(Step::Type(t, text))?;
                self.step(Step::Wait(to, text))?;
            }
            Step::Hangup(t, server) => {
                self.step(Step::Close(t))?;
                self.step(Step::Wait(server, "disconnected"))?;
            }
            Step::Type(t, text) => {
                let term = self.term(t);
                if let Some(s) = term.socket.as_mut() {
                    let (bytes, _, _) = term.typed.encode(text);
                    s.write_all(&bytes).map_err(|e| format!("send: {e}"))?;
                } else {
                    let stdin = term
                        .child
                        .as_mut()
                        .and_then(|p| p.stdin.as_mut())
                        .ok_or("stdin is closed")?;
                    stdin
                        .write_all(format!("{text}\n").as_bytes())
                        .and_then(|_| stdin.flush())
                        .map_err(|e| format!("type: {e}"))?;
                }
            }
            Step::Eof(t) => {
                if let Some(p) = self.term(t).child.as_mut() {
                    p.close_stdin();
                }
            }
            Step::Wait(t, needle) => {
                let term = self.term(t);
                let enc = term.encoding;
                let from = term.seen;
                let decode =
                    move |b: &[u8]| enc.decode_without_bom_handling(b).0.replace("\r\n", "\n");
                let whole_line = term.socket.is_none();
                let shown = |s: &str| {
                    s.find(needle)
                        .is_some_and(|k| !whole_line || s[k + needle.len()..].contains('\n'))
                };
                let (bytes, ok) = term
                    .screen
                    .wait_for(|b, _| decode(b).get(from..).is_some_and(shown));
                if !ok {
                    return Err(format!("{needle:?} never showed"));
                }
                let text = decode(&bytes);
                term.seen = from + text[from..].find(needle).unwrap() + needle.len();
            }
            Step::CtrlC(t) => {
                self.signal(t, Signal::SIGINT)?;
                let status = self.wait_exit(t)?;
                self.finish(t, status)?;
            }
            Step::Exit(t) => {
                if self.term(t).socket.is_some() {
                    return self.close_socket(t, false);
                }
                let status = self.wait_exit(t)?;
                self.finish(t, status)?;
            }
            Step::Pause(t) => self.signal(t, Signal::SIGSTOP)?,
            Step::Resume(t) => self.signal(t, Signal::SIGCONT)?,
            Step::Kill(t) => {
                self.signal(t, Signal::SIGKILL)?;
                let status = self.wait_exit(t)?;
                self.finish(t, status)?;
            }
            Step::Connect(t, port, encoding) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], self.real_port(port)?));
                let s = TcpStream::connect_timeout(&addr, TIMEOUT)
                    .map_err(|e| format!("connect to {addr}: {e}"))?;
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                s.set_write_timeout(Some(TIMEOUT)).unwrap();
                let reader = s.try_clone().map_err(|e| e.to_string())?;
                let term = self.term(t);
                let label = |l: &str| {
                    Encoding::for_label(l.as_bytes()).ok_or_else(|| format!("unknown encoding {l}"))
                };
                let (typed, shown) = encoding.split_once('/').unwrap_or((encoding, encoding));
                term.typed = label(typed)?;
                term.encoding = label(shown)?;
                term.screen = Screen::spawn_reader(reader);
                term.seen = 0;
                term.socket = Some(s);
            }
            Step::Close(t) => self.close_socket(t, true)?,
            Step::Silent(port) => {
                let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                self.ports.push((port, s.local_addr().unwrap().port()));
                self.udp.insert(port, s);
            }
            Step::Answer(port, text) => {
                let s = self.udp.get(&port).ok_or("no silent socket there")?;
                let mut buf = [0u8; 2048];
                let (_, from) = s.recv_from(&mut buf).map_err(|e| format!("answer: {e}"))?;
                s.send_to(text.as_bytes(), from)
                    .map_err(|e| format!("answer: {e}"))?;
            }
            Step::TimeWait(port) => {
                let real = time_wait().map_err(|e| format!("TIME-WAIT: {e}"))?;
                self.ports.push((port, real));
            }
            Step::OpenTty(t, cmd) => {
                let line = self.command(t, cmd)?;
                let quoted = format!("'{}'", line.replace('\'', "'\\''"));
                self.spawn(t, &format!("script -qec {quoted} /dev/null"), true)?;
            }
            Step::Free(port) => {
                let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                self.ports.push((port, l.local_addr().unwrap().port()));
            }
            Step::EchoAtEnd(port) => {
                let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                self.ports.push((port, l.local_addr().unwrap().port()));
                l.set_nonblocking(true).unwrap();
                thread::spawn(move || {
                    let deadline = Instant::now() + TIMEOUT;
                    let mut s = loop {
                        match l.accept() {
                            Ok((s, _)) => break s,
                            Err(_) if Instant::now() < deadline => {
                                thread::sleep(Duration::from_millis(5))
                            }
                            Err(_) => return,
                        }
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(TIMEOUT)).unwrap();
                    let mut all = Vec::new();
                    if s.read_to_end(&mut all).is_ok() {
                        let _ = s.write_all(&all);
                    }
                });
            }
        }
        Ok(())
    }

    fn real_port(&self, readme: u16) -> Result<u16, String> {
        self.ports
            .iter()
            .rev()
            .find(|(r, _)| *r == readme)
            .map(|(_, real)| *real)
            .ok_or_else(|| format!("no server stands for port {readme}"))
    }

    /// Close our side (`now`) or wait for the peer to close, then show it.
    fn close_socket(&mut self, t: &'static str, now: bool) -> Result<(), String> {
        let term = self.term(t);
        let s = term.socket.take().ok_or("no connection")?;
        if now {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.finish(t, 0)
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Their processes are killed as they are dropped.
        for t in self.terms.values_mut() {
            if let Some(s) = t.socket.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Our servers, whose port and address the runner sets.
pub const TOOLS: &[&str] = &["tcp-server", "udp-echo", "chat", "tftp-serve"];

/// A server's README command made to run on 127.0.0.1 port 0: its port
/// (`port`, or the tool's default when the command names none) becomes 0,
/// and `--bind 127.0.0.1` is added unless it has a `--bind`. Also says
/// whether `--bind` was added.
pub fn on_loopback(cmd: &str, port: u16) -> (String, bool) {
    // Options go before any redirection, pipe or comment.
    let cut = [" >", " <", " |", " #"]
        .iter()
        .filter_map(|s| cmd.find(s))
        .min()
        .unwrap_or(cmd.len());
    let (head, tail) = cmd.split_at(cut);
    let head = head.trim_end();
    let words: Vec<&str> = head.split_whitespace().collect();
    if !TOOLS.contains(&words[0]) {
        // A peer program (the course's Python servers bind 127.0.0.1:0 themselves).
        return (cmd.to_string(), false);
    }
    let bound = !words.iter().any(|w| *w == "--bind" || *w == "-b");
    let mut line = head.to_string();
    if words.contains(&port.to_string().as_str()) {
        line = replace_number(&line, &port.to_string(), "0");
    } else if !words.contains(&"0") {
        line += if words[0] == "tftp-serve" {
            " --port 0"
        } else {
            " 0"
        };
    }
    if bound {
        line += " --bind 127.0.0.1";
    }
    (format!("{line}{tail}"), bound)
}

/// Replace `from` where it is a whole number (no digit on either side).
pub fn replace_number(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(k) = rest.find(from) {
        let before = rest[..k].chars().next_back();
        let after = rest[k + from.len()..].chars().next();
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        let starts_digit = from.starts_with(|c: char| c.is_ascii_digit());
        out.push_str(&rest[..k]);
        if (!starts_digit || !digit(before)) && !digit(after) {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = &rest[k + from.len()..];
    }
    out.push_str(rest);
    out
}

/// A port held only by TIME-WAIT: a listener without SO_REUSEADDR (std sets
/// it on Unix, so socket2) accepts a connection and closes it first, as the
/// notes' lesson 03 server does; the client reads the end and closes too.
fn time_wait() -> std::io::Result<u16> {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(1)?;
    let addr = listener.local_addr()?.as_socket().expect("an IP address");
    let client = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    client.set_read_timeout(Some(TIMEOUT))?;
    let (accepted, _) = listener.accept()?;
    drop(accepted);
    let mut rest = Vec::new();
    (&client).read_to_end(&mut rest)?;
    drop(client);
    drop(listener);
    Ok(addr.port())
}
