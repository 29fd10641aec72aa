//! Lesson 07 — UDP send once (notes 001 §2.2 / §3.1.1, 004 p170): create a UDP
//! socket, `sendto` one datagram, print `发送完成`, close. No connection, no answer:
//! "sent" only means the datagram left this machine.
//!
//! The message is the MESSAGE arguments (joined by spaces) or, without any, a line
//! you type after the notes' prompt `请输入数据：`. It is sent in UTF-8, like the
//! notes' `.encode('utf-8')`.
//!
//! Run (HOST and PORT default to 127.0.0.1 8090; `HOST:PORT` and `[::1]:8090` work too):
//!
//! ```text
//! cargo run --example 07_udp_send -- [HOST PORT] [MESSAGE...] [--lib]
//! cargo run --example 07_udp_send -- 127.0.0.1 8090 你好
//! ```
//!
//! Step by step it does what the Python does, with `std::net::UdpSocket`; with
//! `--lib` it does the same with one library call, `socktools::udp::client::send` — what
//! `udp-echo send HOST PORT MESSAGE --no-wait` runs.
//!
//! First, in another terminal, start something that receives — any of:
//!
//! ```text
//! cargo run --bin udp-echo -- serve 8090                 # prints [ADDR] 你好 for every datagram
//! cargo run --example 08_udp_receive -- 8090             # lesson 08
//! python3 server.py      # the notes' receiver (001 §3.1.2) with its IP set to 127.0.0.1
//! nc -u -l 8090
//! ```
//!
//! Nothing running there? The send still "succeeds": UDP never finds out.

// 0. 导入模块 — import what we need (Python: `from socket import *`).
use std::io::{self, BufRead};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;

use socktools::addr::{self, AddrError, Family, Target, describe_io};
use socktools::hex::py_repr;
use socktools::output::{Log, Verbosity};
use socktools::udp::{self, client};

const USAGE: &str = "usage: 07_udp_send [HOST PORT] [MESSAGE...] [--lib]   (default 127.0.0.1 8090; no MESSAGE: type one)";

/// What the command line asked for.
struct Args {
    target: Target,
    message: Option<String>,
    lib: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("07_udp_send: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.lib {
        with_library(&args)
    } else {
        by_hand(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("07_udp_send: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The notes' script, step by step.
fn by_hand(args: &Args) -> Result<(), String> {
    // 2. 定义一个接收信息的目标 — the destination, Python's `('127.0.0.1', 8090)`.
    //    (Done first here: the socket's address family must match it.) A host name
    //    may stand for several addresses; we take the first, as `sendto` would.
    let dest = addr::resolve(&args.target, Family::Any).map_err(|e| e.to_string())?[0];

    // 1. 创建套接字 — `socket(AF_INET, SOCK_DGRAM)`. std has no "socket that is not
    //    bound yet": `UdpSocket::bind` creates and binds in one go. Port 0 asks the
    //    OS for any free port — exactly what Python's first `sendto` does behind
    //    the scenes. An IPv6 destination needs an IPv6 socket (`AF_INET6`).
    let local = if dest.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let client_socket = UdpSocket::bind(local).map_err(|e| describe_io(&e))?;
    let me = client_socket.local_addr().map_err(|e| describe_io(&e))?;
    println!("创建套接字 socket created, bound to {me} (the OS chose the port)");

    // 3. 准备数据，数据一定是字节数据 — the data must be bytes:
    //    `input('请输入数据：').encode('utf-8')`. A Rust `String` already is UTF-8,
    //    so its bytes are the encoded data.
    let text = match &args.message {
        Some(m) => m.clone(),
        None => read_line()?,
    };
    let datas = text.as_bytes();
    //    One datagram carries at most 65507 bytes over IPv4 (65535 minus the IP and
    //    UDP headers). Python would fail with "Message too long"; say it first.
    if datas.len() > udp::max_payload(&dest) {
        return Err(format!(
            "{} bytes do not fit in one UDP datagram (at most {})",
            datas.len(),
            udp::max_payload(&dest)
        ));
    }
    println!("准备数据 ({} bytes): {}", datas.len(), py_repr(datas));

    // 4. 发送数据 — `client_socket.sendto(datas, server_host_port)`. One call, one
    //    datagram: the receiver's one `recvfrom` gets exactly these bytes (UDP keeps
    //    message boundaries, unlike TCP in lesson 13).
    let n = client_socket
        .send_to(datas, dest)
        .map_err(|e| format!("cannot send to {dest}: {}", describe_io(&e)))?;
    println!("发送完成 — sent {n} bytes to {dest}");

    // 5. 关闭套接字，释放系统资源 — close the socket. Rust closes it when its owner
    //    goes out of scope; `drop` makes that moment visible.
    drop(client_socket);
    Ok(())
}

/// The same with the library: what `udp-echo send HOST PORT MESSAGE --no-wait` does.
fn with_library(args: &Args) -> Result<(), String> {
    let text = match &args.message {
        Some(m) => m.clone(),
        None => read_line()?,
    };
    let mut cfg = client::Config::default();
    // Lesson 07's sender does not wait for an answer.
    cfg.wait = None;
    // `send` resolves, creates the socket, encodes, checks the size and sends; the
    // log line `sent N bytes to ADDR` is its 发送完成.
    let log = Log::stderr(Verbosity::Normal);
    let summary = client::send(
        &args.target,
        &[text],
        io::empty(),
        &cfg,
        &mut io::stdout(),
        &log,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "发送完成 — {} datagram, {} bytes",
        summary.sent, summary.bytes_out
    );
    Ok(())
}

/// Python's `input('请输入数据：')`: the prompt, then one line without its line ending.
fn read_line() -> Result<String, String> {
    use std::io::Write;
    print!("请输入数据：");
    let _ = io::stdout().flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err("no input (Python's input() would raise EOFError)".into()),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
        Err(e) => Err(format!("reading stdin: {}", describe_io(&e))),
    }
}

/// `[HOST PORT] [MESSAGE...] [--lib]`; `Ok(None)` for `--help`.
fn parse_args(argv: Vec<String>) -> Result<Option<Args>, String> {
    let mut lib = false;
    let mut words = Vec::new();
    for arg in argv {
        match arg.as_str() {
            "--lib" => lib = true,
            "-h" | "--help" => return Ok(None),
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            _ => words.push(arg),
        }
    }
    let default = Target {
        host: "127.0.0.1".into(),
        port: 8090,
    };
    // Lesson 01: `127.0.0.1 8090`, `127.0.0.1:8090`, `[::1]:8090`, `::1 8090`.
    let (target, rest) = if words.is_empty() {
        (default, &words[..])
    } else {
        addr::parse_target_args(&words).map_err(|e: AddrError| e.to_string())?
    };
    let message = (!rest.is_empty()).then(|| rest.join(" "));
    Ok(Some(Args {
        target,
        message,
        lib,
    }))
}
