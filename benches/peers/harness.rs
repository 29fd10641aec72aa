//! The measuring core of `cargo bench --bench peers`: rounds run A B A B …, medians, the table, and the process plumbing (free ports, readiness; processes are the tests' `Process`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use crate::util::{Process, find, peer_cmd};

/// Anything a bench step waits on gives up after this long, so a hung peer costs
/// one failed row, not a hung benchmark.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One run of one tool: the figure the table ranks (`value`) and any side figures.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    pub value: f64,
    pub extras: Vec<(&'static str, f64)>,
}

impl Trial {
    pub fn new(value: f64) -> Trial {
        Trial {
            value,
            extras: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, v: f64) -> Trial {
        self.extras.push((name, v));
        self
    }
}

/// What a scenario's `value` is, and which way is better.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub unit: &'static str,
    /// Throughputs: higher is better. Times (start-up): lower is better, and the
    /// ratio is turned around so that "≥ 1" always means "ours is at least as fast".
    pub higher_is_better: bool,
}

impl Metric {
    /// A throughput: higher is better.
    pub const fn rate(unit: &'static str) -> Metric {
        Metric {
            unit,
            higher_is_better: true,
        }
    }

    /// A time: lower is better.
    pub const fn time(unit: &'static str) -> Metric {
        Metric {
            unit,
            higher_is_better: false,
        }
    }
}

pub const MIB_S: Metric = Metric::rate("MiB/s");

/// A tool taking part in a scenario; `run` does one complete trial.
pub struct Contender<'a> {
    pub label: String,
    pub run: Box<dyn FnMut(usize) -> Result<Trial, String> + 'a>,
}

impl<'a> Contender<'a> {
    pub fn new(
        label: impl Into<String>,
        run: impl FnMut(usize) -> Result<Trial, String> + 'a,
    ) -> Contender<'a> {
        Contender {
            label: label.into(),
            run: Box::new(run),
        }
    }
}

/// "`figure` of ours should be `target`× that of `peer`" (or, with no target,
/// just report the ratio). The ratio is literal, ours ÷ peer: for a figure where
/// more is better the target is a floor, for one where less is better a ceiling.
#[derive(Debug, Clone)]
pub struct Pair {
    pub ours: String,
    pub peer: String,
    /// `value` (the figure the scenario ranks) or the name of an extra.
    pub figure: &'static str,
    pub higher_is_better: bool,
    pub target: Option<f64>,
    /// The load offered: compared only if both tools answered at least
    /// [`SUSTAINED`] of it (their ranked figure).
    pub offered: Option<f64>,
}

impl Pair {
    /// Does `ratio` (ours ÷ peer) meet `target`?
    fn meets(&self, ratio: f64, target: f64) -> bool {
        if self.higher_is_better {
            ratio >= target
        } else {
            ratio <= target
        }
    }
}

/// A fixed bound on a figure of ours (p99 latency, RSS, start-up time).
#[derive(Debug, Clone)]
pub struct Bound {
    pub tool: String,
    /// `value` or the name of an extra.
    pub figure: &'static str,
    pub max: f64,
    pub unit: &'static str,
}

/// Medians and spreads of one tool in one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    pub tool: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub extras: Vec<(&'static str, f64)>,
    pub failed: Option<String>,
}

/// Everything measured for one scenario.
pub struct Outcome {
    pub scenario: String,
    pub work: String,
    pub metric: Metric,
    pub rows: Vec<Row>,
    /// What did not take part, and why.
    pub skipped: Vec<(String, String)>,
    pub pairs: Vec<Pair>,
    pub bounds: Vec<Bound>,
    /// Lines printed under the tables (how the scenario was run).
    pub notes: Vec<String>,
}

impl Outcome {
    fn row(&self, tool: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.tool == tool && r.failed.is_none())
    }

    /// Why `p` cannot be compared: a tool that did not sustain the load.
    fn not_comparable(&self, p: &Pair) -> Option<String> {
        let offered = p.offered?;
        [&p.ours, &p.peer].into_iter().find_map(|tool| {
            let got = self.figure(tool, "value")?;
            (got < offered * SUSTAINED).then(|| {
                format!(
                    "{tool} did not sustain the load: {} of {} {}",
                    num(got),
                    num(offered),
                    self.metric.unit
                )
            })
        })
    }

    /// ours ÷ peer, of the pair's figure.
    pub fn ratio(&self, p: &Pair) -> Option<f64> {
        let (a, b) = (
            self.figure(&p.ours, p.figure)?,
            self.figure(&p.peer, p.figure)?,
        );
        (a > 0.0 && b > 0.0).then(|| a / b)
    }

    /// `figure` (`value` or an extra's name) of `tool`'s row.
    fn figure(&self, tool: &str, figure: &str) -> Option<f64> {
        let row = self.row(tool)?;
        if figure == "value" {
            return Some(row.median);
        }
        row.extras
            .iter()
            .find(|(n, _)| *n == figure)
            .map(|(_, v)| *v)
    }
}

/// A scenario before it runs: who takes part, what is compared with what, and
/// which figures of ours have a bound.
pub struct Plan<'a> {
    scenario: String,
    work: String,
    metric: Metric,
    contenders: Vec<Contender<'a>>,
    skipped: Vec<(String, String)>,
    pairs: Vec<Pair>,
    bounds: Vec<Bound>,
    notes: Vec<String>,
}

impl<'a> Plan<'a> {
    pub fn new(scenario: impl Into<String>, work: String, metric: Metric) -> Plan<'a> {
        Plan {
            scenario: scenario.into(),
            work,
            metric,
            contenders: Vec::new(),
            skipped: Vec::new(),
            pairs: Vec::new(),
            bounds: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A tool of ours, run by `run`.
    pub fn ours(
        &mut self,
        label: impl Into<String>,
        run: impl FnMut(usize) -> Result<Trial, String> + 'a,
    ) {
        self.contenders.push(Contender::new(label, run));
    }

    /// A peer program: taking part if `cmd` is installed (listed as skipped if
    /// not), and compared with our `against` on the ranked figure: ours ÷ it
    /// should reach `target` (at least, or at most where less is better).
    pub fn peer(
        &mut self,
        cmd: &str,
        label: &str,
        against: &str,
        target: Option<f64>,
        run: impl FnMut(usize) -> Result<Trial, String> + 'a,
    ) {
        if peer(cmd) {
            self.contenders.push(Contender::new(label, run));
            self.compare(against, label, target);
        } else {
            self.skip(cmd);
        }
    }

    /// Compare two contenders on the ranked figure: ours ÷ `other` should reach
    /// `target` (at least, or at most where less is better).
    pub fn compare(&mut self, ours: &str, other: &str, target: Option<f64>) {
        let higher_is_better = self.metric.higher_is_better;
        self.pairs.push(Pair {
            ours: ours.into(),
            peer: other.into(),
            figure: "value",
            higher_is_better,
            target,
            offered: None,
        });
    }

    /// Compare two contenders on an extra where less is better (a latency, CPU
    /// time): ours ÷ `other` should be at most `ceiling`, if both sustained the
    /// load `offered`. Does nothing if `other` is not taking part.
    pub fn compare_lower(
        &mut self,
        figure: &'static str,
        ours: &str,
        other: &str,
        ceiling: f64,
        offered: Option<f64>,
    ) {
        if self.contenders.iter().any(|c| c.label == other) {
            self.pairs.push(Pair {
                ours: ours.into(),
                peer: other.into(),
                figure,
                higher_is_better: false,
                target: Some(ceiling),
                offered,
            });
        }
    }

    /// A line for under the tables, saying how this scenario was run.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// Something that cannot take part because a program is missing.
    pub fn skip(&mut self, what: impl Into<String>) {
        self.skip_because(what, "not installed");
    }

    /// Something left out of this run for another reason.
    pub fn skip_because(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.skipped.push((what.into(), why.into()));
    }

    /// `figure` (`value` or an extra's name) of `tool` should be at most `max`.
    pub fn bound(&mut self, tool: &str, figure: &'static str, max: f64, unit: &'static str) {
        self.bounds.push(Bound {
            tool: tool.into(),
            figure,
            max,
            unit,
        });
    }

    /// Run every contender `rounds` times after one warm-up each, interleaved
    /// (A B C, B C A, …) so a slow minute on this shared machine hits all tools alike.
    pub fn measure(mut self, rounds: usize) -> Outcome {
        eprintln!("== {}: {}", self.scenario, self.work);
        let n = self.contenders.len();
        let mut samples: Vec<Vec<Trial>> = vec![Vec::new(); n];
        let mut failed: Vec<Option<String>> = vec![None; n];
        for round in 0..=rounds {
            // Each round starts one tool later (A B C, B C A, C A B, …): what one
            // tool leaves behind (a thousand processes exiting, sockets closing)
            // then falls on every tool in turn, not always on the same one.
            for k in 0..n {
                let i = (k + round) % n;
                let c = &mut self.contenders[i];
                if failed[i].is_some() {
                    continue;
                }
                let started = Instant::now();
                match (c.run)(round) {
                    Ok(t) => {
                        eprintln!(
                            "   {:<28} round {round}{}: {:.2} {} ({:.2} s)",
                            c.label,
                            if round == 0 { " (warm-up)" } else { "" },
                            t.value,
                            self.metric.unit,
                            started.elapsed().as_secs_f64()
                        );
                        if round > 0 {
                            samples[i].push(t);
                        }
                    }
                    Err(e) => {
                        eprintln!("   {:<28} round {round}: FAILED: {e}", c.label);
                        failed[i] = Some(e);
                    }
                }
            }
        }
        let rows = self
            .contenders
            .iter()
            .zip(samples)
            .zip(failed)
            .map(|((c, s), f)| summarize(&c.label, &s, f))
            .collect();
        Outcome {
            scenario: self.scenario,
            work: self.work,
            metric: self.metric,
            rows,
            skipped: self.skipped,
            pairs: self.pairs,
            bounds: self.bounds,
            notes: self.notes,
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn summarize(tool: &str, trials: &[Trial], failed: Option<String>) -> Row {
    let mut values: Vec<f64> = trials.iter().map(|t| t.value).collect();
    let mut extras: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for t in trials {
        for (k, v) in &t.extras {
            if !extras.contains_key(k) {
                order.push(*k);
            }
            extras.entry(k).or_default().push(*v);
        }
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Row {
        tool: tool.into(),
        median: median(&mut values),
        min,
        max,
        extras: order
            .into_iter()
            .map(|k| (k, median(extras.get_mut(k).expect("key seen"))))
            .collect(),
        failed,
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The results as Markdown: one table of every tool's figures, one of targets.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    s.push_str("| scenario | tool | median | min–max | other medians | ours ÷ this |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for o in outcomes {
        let mut first = true;
        for r in &o.rows {
            let scen = if first {
                format!("{} ({})", o.scenario, o.work)
            } else {
                String::new()
            };
            first = false;
            let ratio = o
                .pairs
                .iter()
                .find(|p| p.peer == r.tool && p.target.is_some())
                .or_else(|| o.pairs.iter().find(|p| p.peer == r.tool))
                .and_then(|p| {
                    let what = match p.figure {
                        "value" => String::new(),
                        f => format!("{f} "),
                    };
                    if let Some(why) = o.not_comparable(p) {
                        return Some(format!("– ({why})"));
                    }
                    o.ratio(p).map(|x| format!("{x:.2}× {what}({})", p.ours))
                })
                .unwrap_or_default();
            match &r.failed {
                Some(e) => {
                    let _ = writeln!(s, "| {scen} | {} | failed: {e} | | | |", r.tool);
                }
                None => {
                    let extras = r
                        .extras
                        .iter()
                        .map(|(k, v)| format!("{k} {}", num(*v)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let _ = writeln!(
                        s,
                        "| {scen} | {} | {} {} | {}–{} | {extras} | {ratio} |",
                        r.tool,
                        num(r.median),
                        o.metric.unit,
                        num(r.min),
                        num(r.max),
                    );
                }
            }
        }
        for (what, why) in &o.skipped {
            let _ = writeln!(s, "| | {what} | skipped: {why} | | | |");
        }
    }
    s.push_str("\n| scenario | target | measured | |\n|---|---|---|---|\n");
    for o in outcomes {
        for p in o.pairs.iter().filter(|p| p.target.is_some()) {
            let want = p.target.expect("filtered");
            let (got, verdict) = match (o.not_comparable(p), o.ratio(p)) {
                (Some(why), _) => ("–".into(), format!("not compared: {why}")),
                (None, Some(x)) => (
                    format!("{x:.2}×"),
                    (if p.meets(x, want) { "met" } else { "MISSED" }).into(),
                ),
                (None, None) => ("–".into(), "not measured".into()),
            };
            let figure = match p.figure {
                "value" => String::new(),
                f => format!(" {f}"),
            };
            let sign = if p.higher_is_better { "≥" } else { "≤" };
            let _ = writeln!(
                s,
                "| {} | {}{figure} {sign} {want}× {} | {got} | {verdict} |",
                o.scenario, p.ours, p.peer
            );
        }
        for b in &o.bounds {
            let (got, verdict) = match o.figure(&b.tool, b.figure) {
                Some(x) => (
                    format!("{} {}", num(x), b.unit),
                    if x <= b.max { "met" } else { "MISSED" },
                ),
                None => ("–".into(), "not measured"),
            };
            let _ = writeln!(
                s,
                "| {} | {} {} ≤ {} {} | {got} | {verdict} |",
                o.scenario,
                b.tool,
                b.figure,
                num(b.max),
                b.unit
            );
        }
    }
    let mut notes: Vec<&String> = Vec::new();
    for n in outcomes.iter().flat_map(|o| &o.notes) {
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    if !notes.is_empty() {
        s.push('\n');
    }
    for n in notes {
        let _ = writeln!(s, "{n}");
    }
    s
}

// ---------------------------------------------------------------------------
// Processes

/// The share of an offered load a tool must answer to have sustained it.
pub const SUSTAINED: f64 = 0.99;

/// Set by `--ours-only`: every peer counts as missing (for profiling our side).
pub static OURS_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How often a wait looks whether a process has exited: often enough for
/// start-up times of a few milliseconds.
const POLL: Duration = Duration::from_micros(200);

/// Start `cmd` as it was set up, waited for every [`POLL`].
pub fn start(cmd: Command) -> Result<Process, String> {
    Ok(Process::start(cmd)?.polling(POLL))
}

/// Does this run measure peer `cmd`: installed, and not turned off by `--ours-only`?
pub fn peer(cmd: &str) -> bool {
    !OURS_ONLY.load(std::sync::atomic::Ordering::Relaxed) && find(cmd).is_some()
}

/// The CPU servers are started on while a [`Pinned`] lives; `usize::MAX`: any.
static SERVER_CPU: AtomicUsize = AtomicUsize::new(usize::MAX);

/// While this lives, the load generator (the calling thread) runs on one core
/// and every server started by [`start_ours`] or [`start_peer`] on another, so
/// neither steals the other's core; `sched_setaffinity`, undone on drop.
pub struct Pinned {
    saved: CpuSet,
    pub generator: usize,
    pub server: usize,
}

impl Pinned {
    /// The first two CPUs this process may use; `None` (and nothing pinned)
    /// on a machine with one.
    pub fn new() -> Option<Pinned> {
        let saved = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let mut cpus = (0..CpuSet::count()).filter(|&c| saved.is_set(c).unwrap_or(false));
        let (generator, server) = (cpus.next()?, cpus.next()?);
        only_on(generator).ok()?;
        SERVER_CPU.store(server, Ordering::Relaxed);
        eprintln!("   load generator on CPU {generator}, servers on CPU {server}");
        Some(Pinned {
            saved,
            generator,
            server,
        })
    }

    /// The line under the tables that says so (scenarios 2, 2b and 3 pin).
    pub fn note(pinned: &Option<Pinned>) -> String {
        match pinned {
            Some(p) => format!(
                "Scenarios 2, 2b and 3: the load generator ran on CPU {} and the server (every \
                 thread and child) on CPU {} (`sched_setaffinity`).",
                p.generator, p.server
            ),
            None => "Scenarios 2, 2b and 3: not pinned (one CPU).".into(),
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        SERVER_CPU.store(usize::MAX, Ordering::Relaxed);
        let _ = sched_setaffinity(Pid::from_raw(0), &self.saved);
    }
}

/// Pin the calling thread to `cpu`.
fn only_on(cpu: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)
}

/// Run `spawn` on the servers' CPU if a [`Pinned`] lives: a child inherits the
/// affinity of the thread that forks it, and its threads and children inherit
/// its own, so the whole server stays on that core. First wait until that core
/// is quiet: the server of the trial before may still be exiting there (a
/// thousand threads, or ncat's thousand `cat` processes), and its teardown
/// would be counted against this one.
fn on_server_cpu<T>(spawn: impl FnOnce() -> T) -> T {
    let cpu = SERVER_CPU.load(Ordering::Relaxed);
    let back = (cpu != usize::MAX)
        .then(|| sched_getaffinity(Pid::from_raw(0)).ok())
        .flatten();
    if back.is_some() {
        wait_quiet(cpu);
        let _ = only_on(cpu);
    }
    let out = spawn();
    if let Some(back) = back {
        let _ = sched_setaffinity(Pid::from_raw(0), &back);
    }
    out
}

/// Busy and all jiffies of `cpu` so far, from `/proc/stat`.
fn cpu_jiffies(cpu: usize) -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|l| l.starts_with(&format!("cpu{cpu} ")))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let all: u64 = f.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    let idle = f.get(3)? + f.get(4)?;
    Some((all - idle, all))
}

/// Wait (up to 5 s) until `cpu` has been at most 5% busy for 200 ms.
fn wait_quiet(cpu: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut was = cpu_jiffies(cpu);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        let now = cpu_jiffies(cpu);
        if let (Some((b0, a0)), Some((b1, a1))) = (was, now)
            && (b1 - b0) * 20 <= (a1 - a0).max(1)
        {
            return;
        }
        was = now;
    }
    eprintln!("      CPU {cpu} still busy after 5 s; starting anyway");
}

/// Run one trial against `server` (`f` gets its address and pid), then stop the
/// server and every process it started, and wait until they are all gone. A
/// server killed by its `Process` alone can leave its children behind: ncat's
/// thousand relays and `cat`s exit over a second or two as their sockets
/// close, and that storm of exits landed on the next trial's server.
pub fn trial_with(
    (server, addr): (Process, SocketAddr),
    f: impl FnOnce(SocketAddr, u32) -> Result<Trial, String>,
) -> Result<Trial, String> {
    let trial = f(addr, server.pid());
    let pids = tree(server.pid());
    let big = tree_rss(server.pid()) > BIG_EXIT;
    for &p in &pids[1..] {
        let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
    }
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if big {
        thread::sleep(AFTER_BIG_EXIT);
    }
    trial
}

/// A server tree this big (ncat's thousand processes: 2.8 GiB counted per
/// process) leaves work behind it after its exit: without a wait, the server of
/// the next trial stalled for 100 ms and more a second or two into its run (p99
/// at 20 000 round trips/s went from 1 ms to 80–140 ms in every round that
/// followed ncat), most likely this VM handing the freed memory back to its
/// host (free page reporting). So the next trial waits that long.
const BIG_EXIT: u64 = 256 << 20;
const AFTER_BIG_EXIT: Duration = Duration::from_secs(3);

/// Is `pid` still there (and not a zombie waiting to be reaped)?
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Our server `TOOL [SUBCOMMAND] 0 --bind 127.0.0.1 -q FLAGS…`, as [`start_ours`].
pub fn our_server(tool: &str, flags: &[&str]) -> Result<(Process, SocketAddr), String> {
    start_ours(crate::util::server_cmd(
        tool,
        &[&["-q"][..], flags].concat(),
    ))
}

/// One of the course's Python servers, as [`start_ours`].
pub fn course_server(script: &str) -> Result<(Process, SocketAddr), String> {
    let mut c = peer_cmd("python3");
    c.arg(crate::course_script(script));
    start_ours(c)
}

/// Start one of our servers (stdout to /dev/null) and read the address from its
/// first stderr line, `listening on ADDR`; the rest of stderr is drained
/// (and dropped) so a chatty log can never block it.
pub fn start_ours(mut cmd: Command) -> Result<(Process, SocketAddr), String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut p = on_server_cpu(|| Process::try_serve(cmd, false))?.polling(POLL);
    p.discard_output();
    let addr = p.addr();
    Ok((p, addr))
}

#[derive(Clone, Copy, PartialEq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A port on 127.0.0.1 that is free right now, for peers that cannot be asked for
/// port 0 and tell us what they got.
pub fn free_port(proto: Proto) -> u16 {
    match proto {
        Proto::Tcp => TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port()),
        Proto::Udp => UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port()),
    }
    .expect("bind 127.0.0.1:0")
}

/// Is something bound to 127.0.0.1:`port` (listening, for TCP)? Read from the
/// kernel's socket tables, so no probe traffic disturbs the peer under test.
fn bound(proto: Proto, port: u16) -> bool {
    let table = match proto {
        Proto::Tcp => "/proc/net/tcp",
        Proto::Udp => "/proc/net/udp",
    };
    let Ok(text) = fs::read_to_string(table) else {
        return false;
    };
    let want = format!(":{port:04X}");
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && (proto == Proto::Udp || f[3] == "0A")
    })
}

/// Start a peer server on 127.0.0.1:`port` and wait until the kernel shows it
/// bound: the process and its address.
pub fn start_peer(
    mut cmd: Command,
    proto: Proto,
    port: u16,
) -> Result<(Process, SocketAddr), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = on_server_cpu(|| start(cmd))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bound(proto, port) {
        if let Ok(Some(st)) = p.child.try_wait() {
            return Err(format!("{} exited with {st} before listening", p.what));
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not bind port {port}", p.what));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Peer `program` serving on a free port of 127.0.0.1, its arguments
/// `args(port)` split at spaces; as [`start_peer`].
pub fn peer_server(
    proto: Proto,
    program: &str,
    args: impl FnOnce(u16) -> String,
) -> Result<(Process, SocketAddr), String> {
    let port = free_port(proto);
    let mut c = peer_cmd(program);
    c.args(args(port).split_whitespace());
    start_peer(c, proto, port)
}

/// Run a command to completion (stdin and stdout to /dev/null), timed; it fails
/// if it takes longer than `limit`.
pub fn run_timed(mut cmd: Command, limit: Duration) -> Result<Duration, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let started = Instant::now();
    start(cmd)?.finish(limit)?;
    Ok(started.elapsed())
}

/// `sh -c SCRIPT` with stderr kept for the error message.
pub fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]).stderr(Stdio::null());
    c
}

/// A process and all its descendants. Only the main thread's children are
/// followed (servers here fork from it, if at all): walking every thread of a
/// 1000-thread server each time would cost the machine more than the
/// measurement is worth.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        all.push(p);
        if let Ok(k) = fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            todo.extend(k.split_whitespace().filter_map(|s| s.parse::<u32>().ok()));
        }
    }
    all
}

/// Resident memory of a process and all its descendants, in bytes.
pub fn tree_rss(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
        .map(|status| status_kib(&status, "VmRSS:") * 1024)
        .sum()
}

/// CPU time a process and its descendants have used so far, every thread of
/// each, in seconds. Read from each thread's `schedstat` (nanoseconds): the
/// 10 ms ticks of `/proc/PID/stat` would round a thousand short-lived `cat`
/// processes to nothing.
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut ns = 0.0;
    for p in tree(pid) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Some(v) = fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            {
                ns += v;
            }
        }
    }
    ns / 1e9
}

/// CPU time the calling thread has used so far, in seconds (nanosecond
/// precision): what the load generator itself costs.
pub fn thread_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Peak resident memory of one process (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| status_kib(&s, "VmHWM:") * 1024)
        .unwrap_or(0)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A file of `len` bytes that do not compress or repeat in any way a transfer could
/// exploit (xorshift), written once per size into `dir`.
pub fn data_file(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    if fs::metadata(&path).map(|m| m.len()).ok() == Some(len) {
        return path;
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len;
    let mut buf = Vec::with_capacity(len as usize);
    while (buf.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len as usize);
    fs::write(&path, &buf).expect("write data file");
    path
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One line saying what machine the figures come from.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mem = fs::read_to_string("/proc/meminfo")
        .map(|m| status_kib(&m, "MemTotal:") as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {cores} cores ({cpu}), {mem:.0} GiB, Linux {}",
        kernel.trim()
    )
}
