//! tftp-get: lesson 12's TFTP download — fetch a file from any TFTP server (tftpd-hpa, atftpd, the notes' Python server, tftp-serve).

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use socktools::addr::describe_io;
use socktools::cli::{self, TftpArgs, TransferProgress};
use socktools::error::{Error, UsageError};
use socktools::output::Log;
use socktools::tftp::client;
use socktools::tftp::local::LocalFile;
use socktools::tftp::proto::TransferError;

const EXAMPLES: &str = "\
Examples:
  tftp-get 192.168.1.15 test.jpg               download to ./test.jpg (lesson 12)
  tftp-get 127.0.0.1:6969 pxelinux.0 -o boot.0   another port, another local name
  tftp-get host notes.txt -o - | less          to stdout
  tftp-get host big.iso -B 65464 -W 64         bigger blocks and windows on a fast LAN
  tftp-get host file --no-options              plain RFC 1350 (512-byte blocks, lock-step)";

#[derive(Parser)]
#[command(name = "tftp-get", version, about = "Download a file over TFTP: asks for big blocks and windows, falls back to plain RFC 1350 when the server does not take options.", after_help = EXAMPLES)]
struct Args {
    /// Server: HOST, HOST:PORT, [IPv6]:PORT.
    host: String,

    /// File name on the server.
    remote: String,

    // Not an argument: only there to explain `tftp-get HOST 6969 FILE`.
    #[arg(hide = true)]
    extra: Option<String>,

    /// Where to write it (default: the remote name without its directories; '-' for stdout). A
    /// file appears only when complete; a device or fifo (such as /dev/null) is written into.
    #[arg(short = 'o', long, value_name = "LOCAL")]
    output: Option<PathBuf>,

    /// Flush LOCAL to disk before renaming it into place and acknowledging the last block
    /// (survives a power cut; costs about 8 ms per 16 MiB here).
    #[arg(long)]
    fsync: bool,

    #[command(flatten)]
    tftp: TftpArgs,
}

fn run(args: Args, stop: &Arc<AtomicBool>, in_place: &mut bool) -> Result<(), Error> {
    if let Some(extra) = &args.extra {
        return Err(UsageError(match args.remote.parse::<u16>() {
            Ok(port) => format!(
                "the port goes with the host: tftp-get {} {extra} (or -p {port})",
                cli::join_host_port(&args.host, port)
            ),
            Err(_) => format!("unexpected argument \"{extra}\"; for the local name use -o {extra}"),
        })
        .into());
    }
    let mut cfg = args.tftp.client_config(&args.host)?;
    cfg.abort = Some(Arc::clone(stop));
    let log = Log::stderr(args.tftp.verbosity());
    let local = match args.output {
        Some(path) => path,
        None => PathBuf::from(base_name(&args.remote).ok_or_else(|| {
            UsageError(format!(
                "\"{}\" has no file name to save under; give one with -o",
                args.remote
            ))
        })?),
    };
    let mut progress = TransferProgress::new(args.tftp.verbosity());
    let report = if local.as_os_str() == "-" {
        *in_place = true;
        cli::stop_on_signals(stop, None)?;
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
        let download = client::get(&cfg, args.remote.as_bytes(), &mut out, &mut progress)?;
        out.flush()?;
        download.confirm()
    } else {
        // Opened before the request goes out: a destination that cannot be
        // written is found before the server is bothered. Opening a fifo
        // waits for its reader, so the signal handler (which makes Ctrl-C
        // stop the transfer instead of the process) comes after.
        let mut file = LocalFile::create(&local, args.fsync)?;
        *in_place = file.in_place();
        cli::stop_on_signals(stop, file.temp_path())?;
        let download = client::get(&cfg, args.remote.as_bytes(), &mut file, &mut progress)
            .map_err(|e| match e {
                client::Error::Transfer(TransferError::File { error, .. }) => Error::runtime(
                    format!("cannot write {}: {}", local.display(), describe_io(&error)),
                ),
                other => other.into(),
            })?;
        if let Err(e) = file.commit() {
            download.reject("the client could not save the file");
            return Err(e.into());
        }
        download.confirm()
    };
    progress.finish();
    log.info(format_args!("{}", report.summary("received")));
    if let Some(why) = report.fallback {
        log.verbose(format_args!("options dropped: {why}"));
    }
    Ok(())
}

/// `dir/sub/file.bin` and `dir\file.bin` → `file.bin`.
fn base_name(remote: &str) -> Option<&str> {
    remote
        .rsplit(['/', '\\'])
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
}

fn main() -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    let mut in_place = false;
    match run(cli::parse::<Args>(), &stop, &mut in_place) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if stop.load(Ordering::SeqCst) => cli::interrupted(
            "tftp-get",
            if in_place {
                "the server was told; what was written so far is incomplete"
            } else {
                "the server was told, and no file was written or changed"
            },
        ),
        Err(e) => cli::report("tftp-get", &e),
    }
}
