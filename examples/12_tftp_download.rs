//! Lesson 12 — TFTP download 下载 (notes 001 §3.2): ask a TFTP server for a file
//! and save it as `client_<FILE>`, like the notes' client (§3.2.3).
//!
//! Three parts:
//!
//! * a. The read request (RRQ) built by hand, byte by byte, exactly as the notes'
//!   `struct.pack('!H%dsb5sb' % len(name), 1, name, 0, b'octet', 0)` builds it,
//!   printed in hex and the way Python prints bytes.
//! * b. The same request built with the library's `Packet::Rrq`: the same bytes.
//!   Then the request the library really sends, which adds options.
//! * c. The whole download with `socktools::tftp::client::get`: the request to the
//!   server's port, DATA blocks from a *new* port, an ACK for each, the end at the
//!   first short block, and the last ACK.
//!
//! Run (SERVER is HOST, HOST:PORT or [IPv6]:PORT; the port defaults to 69):
//!
//! ```text
//! cargo run --example 12_tftp_download -- SERVER FILE [--no-options]
//! cargo run --example 12_tftp_download -- 127.0.0.1:6969 test.jpg
//! ```
//!
//! First, in another terminal, start a TFTP server in a directory that holds
//! FILE — any of:
//!
//! ```text
//! cargo run --bin tftp-serve -- . --port 6969    # socktools' server: SERVER is 127.0.0.1:6969
//! sudo python3 server.py                         # the notes' server (§3.2.2), port 69: SERVER is 127.0.0.1
//! ```
//!
//! With `--no-options` the example sends the plain request of part a, exactly
//! like the notes' client: 512-byte blocks, one ACK per block.

// 0. 导入模块 — import what we need. Python needs `socket` and `struct`; here
//    `to_be_bytes` does the `struct.pack('!H', ...)` and socktools does the rest.
use std::borrow::Cow;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::process::ExitCode;

use socktools::addr::{self, Family};
use socktools::hex::{self, py_repr};
use socktools::tftp::client::{self, Progress};
use socktools::tftp::engine::TransferError;
use socktools::tftp::packet::{DATA_HEADER, DEFAULT_BLKSIZE, Request};
use socktools::tftp::{ErrorCode, Mode, Options, Packet};

const USAGE: &str = "usage: 12_tftp_download SERVER FILE [--no-options]
  SERVER  HOST, HOST:PORT or [IPv6]:PORT (port 69 unless given)
  FILE    the file to download; it is saved as client_FILE";

const OTHER_TERMINAL: &str =
    "First start a TFTP server in another terminal, in a directory that holds FILE:
  cargo run --bin tftp-serve -- . --port 6969
then run:
  cargo run --example 12_tftp_download -- 127.0.0.1:6969 FILE";

/// What the command line asked for.
struct Args {
    server: String,
    name: String,
    no_options: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\n\n{OTHER_TERMINAL}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(msg) => {
            // Bad input is the user's mistake, not a crash: one line, exit code 2.
            eprintln!("12_tftp_download: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("12_tftp_download: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // 1. 输入文件名 — the file name (`input('请输入文件名字:')` in the notes). A
    //    socket carries bytes: `file_name.encode('utf-8')`.
    let name = args.name.as_bytes();

    // 2. 定义服务器的地址和端口号 — the server's address, `host_port = (ip, 69)`.
    //    69 is TFTP's well-known port, where a server waits for requests.
    let server = resolve(&args.server)?;
    println!("服务器地址 host_port = {server}");

    // ===== a. the request packet by hand =====
    println!("\n===== a. 请求的数据包 — the read request, built by hand like struct.pack =====");
    // 3. 请求的数据包 — '!H%dsb5sb': `!` big-endian ("network byte order"), `H` a
    //    2-byte unsigned opcode (1 = read request, 下载), `%ds` the name's bytes,
    //    `b` one byte 0 that ends the name, `5s` the mode b'octet' (bytes as they
    //    are), `b` a 0 that ends the mode.
    let mut by_hand = Vec::new();
    by_hand.extend_from_slice(&1u16.to_be_bytes()); // H: opcode 1 → 00 01
    by_hand.extend_from_slice(name); //                  %ds: the file name
    by_hand.push(0); //                                   b: 0
    by_hand.extend_from_slice(b"octet"); //               5s: the mode
    by_hand.push(0); //                                   b: 0
    println!(
        "struct.pack('!H{}sb5sb', 1, {}, 0, b'octet', 0)",
        name.len(),
        py_repr(name)
    );
    println!("  = {} ({} bytes)", py_repr(&by_hand), by_hand.len());
    print!("{}", hex::dump(&by_hand));

    // ===== b. the same with the library =====
    println!("\n===== b. 同一个请求, 用 Packet::Rrq — the same request with the library =====");
    let request = Packet::Rrq(Request {
        filename: Cow::Borrowed(name),
        mode: Mode::Octet,
        options: Vec::new(),
    });
    let by_library = request.encode();
    println!("Packet::Rrq(..).encode() = {}", py_repr(&by_library));
    if by_library != by_hand {
        return Err("the two requests differ (a bug in the library)".into());
    }
    println!("equal to the bytes of part a: {}", by_library == by_hand);
    //    And back: what a server sees when it parses those bytes.
    match Packet::parse(&by_hand).map_err(|e| e.to_string())? {
        Packet::Rrq(r) => println!(
            "Packet::parse(part a) = Rrq: filename {}, mode {}, {} options",
            py_repr(&r.filename),
            r.mode,
            r.options.len()
        ),
        other => return Err(format!("parsed as {:?}, not an RRQ", other.opcode())),
    }

    //    What the library really sends, unless --no-options: the same request
    //    followed by `name\0value\0` option pairs (RFC 2347). `blksize` asks for
    //    bigger blocks than 512, `windowsize` for several blocks per ACK, `tsize 0`
    //    for the file's size, `utimeout` for a short retransmission timer. A server
    //    that knows options answers with an OACK (opcode 6) listing those it
    //    accepts; one that does not simply ignores them and sends DATA 1.
    //    The notes' Python server is stricter: it only answers a request whose
    //    last 7 bytes are b'\x00octet\x00', so it never answers this one. The
    //    library then asks again, after one timeout, without options.
    let mut cfg = client::Config::new(server);
    cfg.no_options = args.no_options;
    if args.no_options {
        println!("--no-options: the library sends exactly these bytes, like the notes' client");
    } else {
        let options = Options {
            blksize: cfg.blksize,
            windowsize: cfg.windowsize,
            tsize: Some(0),
            utimeout: cfg.utimeout.map(|d| d.as_micros() as u64),
            timeout: None,
        };
        let with_options = Packet::Rrq(Request {
            filename: Cow::Borrowed(name),
            mode: Mode::Octet,
            options: options.to_raw(),
        })
        .encode();
        println!(
            "what the library sends ({} bytes, options {options}):",
            with_options.len()
        );
        println!("  {}", py_repr(&with_options));
    }

    // ===== c. the download =====
    println!("\n===== c. 下载 — the download with socktools::tftp::client::get =====");
    // 4. 创建一个空白文件，准备接收服务器发过来的数据 — create the local file. The
    //    notes open it with 'ab' (append), so a second download is appended to the
    //    first; `File::create` starts from an empty file instead. Only the last
    //    part of FILE is used: `dir/a.txt` is saved as `client_a.txt`.
    let local = format!("client_{}", base_name(&args.name));
    let mut file = File::create(&local).map_err(|e| {
        format!(
            "cannot create {local}: {}",
            socktools::addr::describe_io(&e)
        )
    })?;

    // 5. 客户端的socket, 把数据包发送到服务器, 然后循环接收 — `client::get` does what
    //    the notes' `while True` loop does:
    //    * it creates a UDP socket; the OS gives it a free port (a client does not bind);
    //    * it sends the request to SERVER (port 69, or the one given);
    //    * the answer comes from a NEW port: the server opened a socket just for
    //      this transfer (the notes' server: `new_socket = socket(...)`), so that
    //      its port 69 stays free for other clients' requests. That address, the
    //      *transfer ID*, is where every ACK goes (`s.sendto(ack_package,
    //      (server_ip, server_port))`); a packet from any other port is answered
    //      with ERROR 5 and otherwise ignored.
    //    * each DATA (opcode 3, block number, then up to 512 bytes) is written to
    //      the file and acknowledged with an ACK (opcode 4, same block number), so
    //      the server knows it arrived — UDP itself never tells. A lost DATA or
    //      ACK is sent again after a timeout; a duplicate is not written twice.
    //    * a DATA shorter than 516 bytes (4 header + 512 data; 4 + blksize when
    //      options were accepted) is the last one: the server had no more. A file
    //      whose size is a multiple of 512 ends with a DATA of 0 data bytes.
    //    * an ERROR (opcode 5) ends it: `服务器返回：你要下载的文件不存在！`.
    let mut progress = ShowSize;
    let download = match client::get(&cfg, name, &mut file, &mut progress) {
        Ok(download) => download,
        Err(e) => {
            // Do not leave a half-written (or empty) file behind.
            drop(file);
            let _ = fs::remove_file(&local);
            return Err(explain(&e));
        }
    };

    let report = download.report();
    println!(
        "服务器从新的端口回答 — request sent to {server}, answered from {}",
        report.peer
    );
    match report.fallback {
        Some(why) => println!("options dropped: {why}"),
        None if report.options.is_empty() => {
            println!("no options: 512-byte blocks, one ACK per block (RFC 1350, as in the notes)")
        }
        None => println!("the server accepted (OACK): {}", report.options),
    }
    let blksize = u64::from(report.options.blksize.unwrap_or(DEFAULT_BLKSIZE));
    let stats = &report.stats;
    if stats.blocks > 0 {
        let n = stats.blocks;
        let last = stats.bytes.saturating_sub((n - 1) * blksize);
        println!(
            "DATA blocks 1 to {n}, {} bytes; block {n} carried {last} bytes: a {}-byte datagram < {} → 意味着文件接收完了",
            stats.bytes,
            last as usize + DATA_HEADER,
            blksize as usize + DATA_HEADER,
        );
    }

    // 6. 保存文件, 然后发送最后一个 ACK — save the file, *then* acknowledge the last
    //    block. The notes' client stops at the short block without an ACK; that
    //    works only with the notes' server, which does not wait for one. Any other
    //    server (tftp-serve, tftpd-hpa) waits for ACK of the last block: without
    //    it, it cannot tell "the client has the file" from "my last DATA was
    //    lost", sends the block again and again, and finally logs the transfer as
    //    failed. So the last ACK means "I have it all, safely": we make sure the
    //    file is on disk first, and if it cannot be saved we send an ERROR instead.
    //    `confirm` sends the ACK and waits a moment, in case the ACK is lost and
    //    the last DATA comes again.
    if let Err(e) = file.sync_all() {
        download.reject("the client could not save the file");
        return Err(format!(
            "cannot save {local}: {}",
            socktools::addr::describe_io(&e)
        ));
    }
    let report = download.confirm();
    println!("sent the last ACK (block {})", report.stats.blocks);

    // 7. 释放资源 — close the file and the socket: both close when dropped; the
    //    socket already was, inside `confirm`.
    drop(file);
    println!("客户端下载成功 — saved as {local}");
    println!("{}", report.summary("received"));
    Ok(())
}

/// Prints the file size when the server announces it (`tsize`), which happens
/// after the answer to the request and before the first block is written.
struct ShowSize;

impl Progress for ShowSize {
    fn start(&mut self, total: Option<u64>) {
        match total {
            Some(n) => println!("tsize: the server says the file has {n} bytes"),
            None => println!("(no tsize: the file's size is known only at its last block)"),
        }
    }
}

/// One line for a failed download; the notes' words for a server ERROR.
fn explain(e: &client::Error) -> String {
    match e {
        client::Error::Transfer(TransferError::Peer { code, message, .. }) => {
            let mut line = format!(
                "服务器返回 ERROR {} ({}): {message}",
                code.code(),
                code.description()
            );
            if *code == ErrorCode::FileNotFound {
                line.push_str(" — 你要下载的文件不存在！");
            } else if *code == ErrorCode::UnknownTransferId && message == "error" {
                // struct.pack('!HH5sb', 5, 5, b'error', 0)
                line.push_str(" — the notes' server sends this when the file does not exist");
            }
            line
        }
        client::Error::NoAnswer { .. } => format!("{e}\n{OTHER_TERMINAL}"),
        _ => e.to_string(),
    }
}

/// `HOST`, `HOST:PORT` or `[IPv6]:PORT` → one address; port 69 unless given.
fn resolve(server: &str) -> Result<SocketAddr, String> {
    let target = addr::parse_host_or_target(server, 69).map_err(|e| e.to_string())?;
    let addrs = addr::resolve(&target, Family::Any).map_err(|e| e.to_string())?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{server}: no address"))
}

/// `dir/sub/file.bin` and `dir\file.bin` → `file.bin`.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// `SERVER FILE [--no-options]`.
fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut no_options = false;
    let mut words = Vec::new();
    for arg in argv {
        match arg.as_str() {
            "--no-options" => no_options = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            _ => words.push(arg),
        }
    }
    let [server, name] = <[String; 2]>::try_from(words)
        .map_err(|words| format!("expected SERVER and FILE, got {} arguments", words.len()))?;
    if matches!(base_name(&name), "" | "." | "..") {
        return Err(format!("{name:?} has no file name to save under"));
    }
    Ok(Args {
        server,
        name,
        no_options,
    })
}
