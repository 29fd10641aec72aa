//! `cargo bench --bench peers`: socktools side by side with nc, socat, ncat, tftp-hpa, atftp, curl and the course's Python scripts, on loopback, in one run.
//!
//! Every scenario starts its servers on loopback, runs each tool once to warm up and
//! then `--rounds` times interleaved, each round starting one tool later (A B C,
//! B C A, …), and prints one Markdown table of medians and ratios on stdout;
//! progress goes to stderr. Peers that are not installed are listed as skipped.
//! Scenarios 2, 2b and 3 run the load generator and the server on different cores.
//!
//! ```sh
//! cargo bench --bench peers                   # quick: about 7 minutes on 2 cores
//! cargo bench --bench peers -- --full         # the issue's full sizes
//! cargo bench --bench peers -- --only 1,2b    # some scenarios
//! cargo bench --bench peers -- --only 2b --rates 10000   # other offered loads
//! cargo bench --bench peers -- --ours-only    # no peers (to profile our side)
//! ```

mod harness;
mod latency;
mod tcp;
mod tftp;
mod udp;
/// The tests' helpers: our binaries' and the course scripts' paths, the
/// `listening on` line, the lossy relay.
#[path = "../../tests/util/mod.rs"]
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

/// What this run measures and how big.
pub struct Config {
    pub full: bool,
    pub rounds: usize,
    pub only: Option<Vec<String>>,
    /// Bytes through the lossy relay in scenario 6 (tftp-hpa needs about 0.1 s per
    /// KiB there, so the issue's 4 MiB takes ~7 minutes a round).
    pub loss_bytes: u64,
    /// Scratch directory for files and servers' roots.
    pub scratch: PathBuf,
    /// Scenario 2b's offered loads, round trips a second (`--rates`).
    pub rates: Vec<f64>,
}

impl Config {
    fn wants(&self, id: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == id))
    }
}

pub use util::{bin, course_script};

fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * mult)
}

const USAGE: &str = "usage: cargo bench --bench peers -- [--full] [--ours-only] [--rounds N] [--only 1,2,2b,…] [--loss-bytes SIZE] [--rates 5000,20000]";

fn parse_args() -> Result<Config, String> {
    let mut full = false;
    let mut rounds = 5;
    let mut only = None;
    let mut loss_bytes = None;
    let mut rates = vec![5_000.0, 20_000.0];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--full" => full = true,
            "--ours-only" => harness::OURS_ONLY.store(true, std::sync::atomic::Ordering::Relaxed),
            "--bench" => {} // cargo passes this to every bench target
            "--rounds" => {
                rounds = value("a number")?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--rounds takes a whole number ≥ 1")?
            }
            "--only" => {
                let list: Vec<String> = value("a list")?.split(',').map(String::from).collect();
                if let Some(bad) = list.iter().find(|x| !SCENARIOS.iter().any(|s| s.0 == *x)) {
                    return Err(format!(
                        "--only: no scenario {bad:?}; there are {}",
                        SCENARIOS.map(|s| s.0).join(", ")
                    ));
                }
                only = Some(list);
            }
            "--loss-bytes" => {
                loss_bytes = Some(
                    parse_size(&value("a size")?).ok_or("--loss-bytes takes a size like 64K")?,
                )
            }
            "--rates" => {
                let list: Result<Vec<f64>, _> =
                    value("a list")?.split(',').map(str::parse).collect();
                rates = list
                    .ok()
                    .filter(|l| l.iter().all(|&r| r >= 1.0))
                    .ok_or("--rates takes round trips a second like 5000,20000")?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let scratch = std::env::temp_dir().join(format!("socktools-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    Ok(Config {
        full,
        rounds,
        only,
        loss_bytes: loss_bytes.unwrap_or(if full { 1 << 20 } else { 32 << 10 }),
        scratch,
        rates,
    })
}

type Scenario = fn(&Config) -> Vec<harness::Outcome>;

/// Every scenario, in the order they run, by the id `--only` takes.
const SCENARIOS: [(&str, Scenario); 8] = [
    ("1", tcp::bulk),
    ("2", tcp::many_clients),
    ("2b", latency::fixed_load),
    ("3", udp::echo),
    ("4", tftp::lockstep),
    ("5", tftp::options),
    ("6", tftp::loss),
    ("7", tcp::startup),
];

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peers: {e}");
            return ExitCode::from(2);
        }
    };
    let mut outcomes = Vec::new();
    for (id, run) in SCENARIOS {
        if cfg.wants(id) {
            outcomes.extend(run(&cfg));
        }
    }
    let _ = std::fs::remove_dir_all(&cfg.scratch);
    println!("{}", harness::report(&outcomes));
    println!("{}", harness::machine());
    ExitCode::SUCCESS
}
