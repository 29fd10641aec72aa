//! tftp-serve: lesson 12's TFTP server — serve a directory to any TFTP client, one thread per transfer.

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socktools::addr::{Family, parse_port};
use socktools::cli::{self, parse_seconds, parse_size};
use socktools::error::{Error, UsageError};
use socktools::net::{ListenSpec, udp_socket};
use socktools::output::{Io, Log, Output, Verbosity};
use socktools::shutdown::Shutdown;
use socktools::tftp::fs::Root;
use socktools::tftp::server;

const EXAMPLES: &str = "\
Examples:
  sudo tftp-serve /srv/tftp                    serve a directory on port 69, read-only
  tftp-serve --port 6969 .                     no root needed above port 1023
  tftp-serve up --port 6969 --allow-write      accept uploads of new files
  tftp-serve up --allow-write --overwrite --max-size 100M";

#[derive(Parser)]
#[command(name = "tftp-serve", version, about = "A TFTP server: serves DIR (read-only unless --allow-write), one thread per transfer; blksize, windowsize, tsize, timeout and utimeout options.", after_help = EXAMPLES)]
struct Args {
    /// Directory to serve; no request can reach outside it.
    #[arg(default_value = ".")]
    dir: PathBuf,

    // Not a flag: only there to explain `tftp-serve 6969 /srv/tftp`.
    #[arg(hide = true)]
    extra: Option<String>,

    /// Port for requests (0: any free port; the first stderr line says which).
    #[arg(short = 'p', long, default_value = "69", value_parser = parse_port)]
    port: u16,

    /// Listen on this address only (default: every interface, IPv4 and IPv6).
    #[arg(short = 'b', long, value_name = "ADDR")]
    bind: Option<String>,

    /// Accept uploads (write requests) of new files.
    #[arg(short = 'w', long)]
    allow_write: bool,

    /// Let uploads replace existing files (implies --allow-write).
    #[arg(long)]
    overwrite: bool,

    /// Largest upload accepted (suffixes K, M, G).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    max_size: Option<usize>,

    /// Largest block size granted.
    #[arg(long, default_value_t = 65464, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(8..=65464))]
    max_blksize: u16,

    /// Largest window granted.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    max_windowsize: u16,

    /// Transfers at once; more are told the server is busy (a transfer whose client never
    /// answered gives its place to a new request first).
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_transfers: u32,

    /// Transfers at once from one IP address (default: no limit, since a classroom behind one
    /// NAT shares an address).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_per_client: Option<u32>,

    /// Retransmission timeout in seconds when the client asks for none.
    #[arg(short = 't', long, default_value = "1", value_name = "SECS", value_parser = parse_seconds)]
    timeout: Duration,

    /// Retransmissions in a row before a transfer is given up.
    #[arg(short = 'r', long, default_value_t = 6, value_name = "N")]
    retries: u32,

    /// After Ctrl-C, how long running transfers may finish.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_seconds)]
    grace: Duration,

    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// Only errors and the listening line on stderr (no per-transfer lines).
    #[arg(short = 'q', long, conflicts_with_all = ["trace", "verbose"])]
    quiet: bool,

    /// One line per datagram of every transfer on stderr, after the client's address (lesson 12).
    #[arg(long)]
    trace: bool,

    /// -vv is --trace (the per-transfer summary lines are always there).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

fn run(args: Args) -> Result<(), Error> {
    let family = Family::from_flags(args.ipv4, args.ipv6);
    let spec = ListenSpec::parse(args.bind.as_deref(), args.port, family)?;
    if let Some(extra) = &args.extra {
        return Err(UsageError(match port_like(&args.dir) {
            Some(PortLike::Port(port)) => format!(
                "tftp-serve takes one DIR, and the port as --port: tftp-serve --port {port} {extra}"
            ),
            Some(PortLike::OutOfRange(n)) => format!(
                "tftp-serve takes one DIR, and the port as --port: tftp-serve --port 6969 {extra} ({n} is not a valid port either way: {PORTS})"
            ),
            None => format!("unexpected argument \"{extra}\": tftp-serve serves one DIR"),
        })
        .into());
    }
    let root = Root::new(&args.dir).map_err(|e| match port_like(&args.dir) {
        // Every other server takes the port first; here DIR comes first.
        Some(like) if e.kind() == io::ErrorKind::NotFound => {
            let dir = args.dir.display();
            UsageError(match like {
                PortLike::Port(port) => format!(
                    "no directory \"{dir}\" to serve: unlike the other servers, tftp-serve takes the port as --port (tftp-serve --port {port} .)"
                ),
                PortLike::OutOfRange(_) => format!(
                    "no directory \"{dir}\" to serve, and {dir} is not a valid port either ({PORTS}): unlike the other servers, tftp-serve takes the port as --port (tftp-serve --port 6969 .)"
                ),
            })
        }
        _ => UsageError(format!(
            "cannot serve {}: {}",
            args.dir.display(),
            socktools::addr::describe_io(&e)
        )),
    })?;
    if args.timeout < Duration::from_millis(1) {
        return Err(UsageError("--timeout must be above 0".into()).into());
    }
    let mut cfg = server::Config::new(root);
    cfg.allow_write = args.allow_write || args.overwrite;
    cfg.overwrite = args.overwrite;
    cfg.max_size = args.max_size.map(|n| n as u64);
    cfg.max_blksize = args.max_blksize;
    cfg.max_windowsize = args.max_windowsize;
    cfg.max_transfers = args.max_transfers as usize;
    cfg.max_per_client = args.max_per_client.map(|n| n as usize);
    cfg.timeout = args.timeout;
    cfg.retries = args.retries;
    cfg.grace = args.grace;
    cfg.trace = args.trace || args.verbose >= 2;
    let socket = udp_socket(spec).map_err(|e| {
        if e.error.kind() == io::ErrorKind::PermissionDenied && e.addr.port() < 1024 {
            Error::runtime(format!("cannot listen on port {}: permission denied (ports below 1024 need root; try --port 6969)", e.addr.port()))
        } else {
            e.into()
        }
    })?;
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc()?;
    let log = Log::stderr(if args.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    });
    let summary = server::serve(
        socket,
        &cfg,
        Io::new(Output::stdout(), log.clone()),
        &shutdown,
    )?;
    let total = summary.completed + summary.failed;
    log.info(format_args!(
        "served {total} transfer{} ({} failed), {} bytes sent, {} bytes received",
        if total == 1 { "" } else { "s" },
        summary.failed,
        summary.bytes_sent,
        summary.bytes_received
    ));
    Ok(())
}

/// What ports can be, for the hints below.
const PORTS: &str = "0-65535";

/// A DIR that is all digits, as a port is typed (`tftp-serve 6969`).
enum PortLike {
    /// A port number.
    Port(u16),
    /// Digits, but beyond 65535 (`tftp-serve 99999`): not a port either.
    OutOfRange(String),
}

/// DIR when it reads as a port number: [`PortLike`], or None.
fn port_like(dir: &std::path::Path) -> Option<PortLike> {
    let s = dir.to_str()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match parse_port(s) {
        Ok(port) => PortLike::Port(port),
        Err(_) => PortLike::OutOfRange(s.to_string()),
    })
}

fn main() -> ExitCode {
    match run(cli::parse::<Args>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::report("tftp-serve", &e),
    }
}
