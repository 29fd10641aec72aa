//! tftp-put: upload a file (or stdin) to a TFTP server (tftpd-hpa -c, atftpd, tftp-serve --allow-write).

// Flag help is clap text, not rustdoc: `[IPv6]:PORT` and `[ADDR]` are what the user types.
#![allow(rustdoc::broken_intra_doc_links)]

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use socktools::cli::{self, TftpArgs, TransferProgress};
use socktools::error::{Error, UsageError};
use socktools::output::Log;
use socktools::tftp::client;

const EXAMPLES: &str = "\
Examples:
  tftp-put 127.0.0.1:6969 report.pdf           upload as report.pdf
  tftp-put host build/app.bin firmware.bin     upload under another name
  tar c dir | tftp-put host - dir.tar          upload stdin";

#[derive(Parser)]
#[command(name = "tftp-put", version, about = "Upload a file over TFTP (the server must allow writes).", after_help = EXAMPLES)]
struct Args {
    /// Server: HOST, HOST:PORT, [IPv6]:PORT.
    host: String,

    /// Local file to send ('-' for stdin).
    local: String,

    /// Name on the server (default: the local file's name).
    remote: Option<String>,

    #[command(flatten)]
    tftp: TftpArgs,
}

fn run(args: Args, stop: &Arc<AtomicBool>) -> Result<(), Error> {
    let mut cfg = args.tftp.client_config(&args.host)?;
    cfg.abort = Some(Arc::clone(stop));
    let log = Log::stderr(args.tftp.verbosity());
    let remote = match (&args.remote, args.local.as_str()) {
        (Some(r), _) => r.clone(),
        (None, "-") => {
            return Err(UsageError(
                "uploading stdin needs a REMOTE name: tftp-put HOST - NAME".into(),
            )
            .into());
        }
        (None, local) => Path::new(local)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| UsageError(format!("\"{local}\" has no file name; give REMOTE")))?,
    };
    let (mut source, size): (Box<dyn Read>, Option<u64>) = if args.local == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let cannot = |e: io::Error| {
            Error::runtime(format!(
                "cannot read {}: {}",
                args.local,
                socktools::addr::describe_io(&e)
            ))
        };
        let file = File::open(&args.local).map_err(|e| match args.local.parse::<u16>() {
            // `tftp-put HOST 6969 FILE`: the port where LOCAL belongs.
            Ok(port) if e.kind() == io::ErrorKind::NotFound => Error::from(UsageError(format!(
                "no file \"{port}\" to send; the port goes with the host: tftp-put {} {}",
                cli::join_host_port(&args.host, port),
                args.remote.as_deref().unwrap_or("LOCAL")
            ))),
            _ => cannot(e),
        })?;
        let meta = file.metadata().map_err(cannot)?;
        if meta.is_dir() {
            return Err(Error::runtime(format!(
                "cannot read {}: it is a directory",
                args.local
            )));
        }
        let size = meta.is_file().then_some(meta.len());
        (Box::new(BufReader::with_capacity(64 * 1024, file)), size)
    };
    // After opening LOCAL (a fifo waits for its writer): from here Ctrl-C
    // stops the transfer and tells the server, which discards the upload.
    cli::stop_on_signals(stop, None)?;
    let mut progress = TransferProgress::new(args.tftp.verbosity());
    let report = client::put(&cfg, remote.as_bytes(), &mut source, size, &mut progress)?;
    progress.finish();
    log.info(format_args!("{}", report.summary("sent")));
    if !report.stats.confirmed {
        log.warn(format_args!("the server never acknowledged the last block; it probably has the file, but did not say so"));
    }
    if let Some(why) = report.fallback {
        log.verbose(format_args!("options dropped: {why}"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    match run(cli::parse::<Args>(), &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if stop.load(Ordering::SeqCst) => {
            cli::interrupted("tftp-put", "the server was told to discard the upload")
        }
        Err(e) => cli::report("tftp-put", &e),
    }
}
