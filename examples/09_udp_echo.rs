//! Lesson 09 — UDP echo server and client (notes 001 §3.1.3). The server returns
//! every datagram to whoever sent it ("收到哪个客户端的信息，就返回给哪个客户端");
//! the client sends each line you type, prints `返回的数据是: …`, and stops after
//! sending `exit`.
//!
//! Run the server in one terminal and the client in another (PORT defaults to
//! 8090 like the notes; the server's 0 picks a free port, shown by its first
//! stderr line `listening on ADDR`):
//!
//! ```text
//! cargo run --example 09_udp_echo -- server [PORT] [--lib]
//! cargo run --example 09_udp_echo -- client [HOST PORT] [--lib]
//! cargo run --example 09_udp_echo -- server 8090
//! cargo run --example 09_udp_echo -- client 127.0.0.1 8090
//! ```
//!
//! Start two or three clients: each gets its own echoes, because the server never
//! ties its socket to one client. Step by step it does what the Python does, with
//! `std::net::UdpSocket`; with `--lib` each side is one library call instead —
//! `socktools::udp::server::serve` (what `udp-echo serve` runs) and `socktools::udp::client::send`
//! (what `udp-echo send HOST PORT` runs). The other side can also be:
//!
//! ```text
//! cargo run --bin udp-echo -- serve 8090         # server: prints [ADDR] text for each datagram
//! cargo run --bin udp-echo -- send 127.0.0.1 8090  # client: lines from stdin, stops after exit
//! python3 server.py / client.py   # the notes' scripts, with their IP set to 127.0.0.1
//! nc -u 127.0.0.1 8090            # client: type lines
//! ```

// 0. 导入模块 — import what we need (Python: `from socket import *`).
use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use socktools::addr::{self, Family, Target, describe_io, display_addr, parse_port};
use socktools::codec::TextDecoder;
use socktools::net::{ListenSpec, is_transient, udp_socket};
use socktools::output::{Io, Log, Output, Verbosity};
use socktools::shutdown::Shutdown;
use socktools::udp::datagram::DatagramReader;
use socktools::udp::{self, client, server};

const USAGE: &str = "usage: 09_udp_echo server [PORT] [--lib]
       09_udp_echo client [HOST PORT] [--lib]   (default 127.0.0.1 8090)";

/// How long the client waits for each echo. The notes' client waits forever
/// ("一定可以从服务器接收到返回过来的数据" — it will surely come back); over UDP it
/// may not, and then a program should say so instead of hanging.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the command line asked for.
enum Role {
    Server(u16),
    Client(Target),
}

fn main() -> ExitCode {
    let (role, lib) = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("09_udp_echo: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match (role, lib) {
        (Role::Server(port), false) => server(port),
        (Role::Server(port), true) => server_with_library(port),
        (Role::Client(target), false) => client(&target),
        (Role::Client(target), true) => client_with_library(&target),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("09_udp_echo: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The notes' echo server, step by step. Runs until Ctrl-C.
fn server(port: u16) -> Result<(), String> {
    // 1. 创建一个服务端的socket, 2. 定义服务器端的IP地址和端口号 — `('', 8090)`:
    //    "所有本机IP都绑定，就使用''", every interface, 3. 绑定地址和端口 — bind.
    let socket_server = udp_socket(ListenSpec::any(port)).map_err(|e| e.to_string())?;
    let local = socket_server.local_addr().map_err(|e| describe_io(&e))?;
    eprintln!("listening on {}", display_addr(&local));

    // A 64 KiB buffer instead of the notes' 1024 bytes: a longer datagram would be
    // cut, and an echo server would send back only its first 1024 bytes.
    let mut reader = DatagramReader::new();
    loop {
        // 4. 接受客户端发送过来的数据 — `data = recvfrom(1024)`: one datagram and
        //    the address it came from. The next one may come from someone else.
        let data = match reader.recv_from(&socket_server) {
            Ok(d) => d,
            // Some systems report an ICMP "port unreachable" about an earlier
            // echo (its client had already quit) on the next recvfrom. That is
            // news about the past, not a reason to stop serving everyone else.
            Err(e) if is_transient(&e) => {
                eprintln!("recvfrom: {} (ignored)", describe_io(&e));
                continue;
            }
            Err(e) => return Err(format!("recvfrom failed: {}", describe_io(&e))),
        };

        // 5. 服务器收到数据之后，原封不动返回，而且是收到哪个客户端的信息，就返回给
        //    哪个客户端 — send the bytes back unchanged, to the address they came
        //    from: `sendto(data[0], data[1])`. The socket is never connect()ed to
        //    one client, so every client gets its own echo.
        if let Err(e) = socket_server.send_to(data.payload, data.from) {
            eprintln!(
                "sendto {}: {} (the next datagram is served anyway)",
                display_addr(&data.from),
                describe_io(&e)
            );
        }
        //    `print(data[0].decode('utf-8'))` — with the sender in front, since many
        //    may talk to us at once. A fresh decoder per datagram: each is whole.
        let text = TextDecoder::new(encoding_rs::UTF_8).decode(data.payload, true);
        println!("[{}] {text}", display_addr(&data.from));
    }
    // 6. 关闭套接字 — the loop never ends; Ctrl-C ends the process and the OS
    //    closes the socket, as with the notes' `while True`.
}

/// The notes' echo client, step by step.
fn client(target: &Target) -> Result<(), String> {
    // 2. 定义一个接收信息的目标 — `server_host_port = ('127.0.0.1', 8090)`.
    let server_host_port = addr::resolve(target, Family::Any).map_err(|e| e.to_string())?[0];

    // 1. 创建套接字 — a UDP socket of the destination's family, on any free port.
    let any = if server_host_port.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let client_socket = UdpSocket::bind(any).map_err(|e| describe_io(&e))?;
    //    `settimeout` (lesson 14): wait at most this long in recv_from.
    client_socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(|e| describe_io(&e))?;

    let mut reader = DatagramReader::new();
    let stdin = io::stdin();
    loop {
        // 3. 准备数据 — `input('请输入数据：').encode('utf-8')`.
        print!("请输入数据：");
        let _ = io::stdout().flush();
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| describe_io(&e))?
            == 0
        {
            println!();
            break; // end of input (Ctrl-D): Python's input() would raise EOFError
        }
        let datas = line.trim_end_matches(['\r', '\n']);

        // 4. 发送数据 — `sendto(datas, server_host_port)`.
        client_socket
            .send_to(datas.as_bytes(), server_host_port)
            .map_err(|e| format!("cannot send to {server_host_port}: {}", describe_io(&e)))?;

        // 5. 接收并打印 — `recvfrom(1024)[0].decode('utf-8')`. Our socket is not
        //    connected, so anyone may send to it: a datagram from another address
        //    is not the echo, and we keep waiting for the real one.
        loop {
            match reader.recv_from(&client_socket) {
                Ok(d) if d.from == server_host_port => {
                    let text = TextDecoder::new(encoding_rs::UTF_8).decode(d.payload, true);
                    println!("返回的数据是: {text}");
                    break;
                }
                Ok(d) => println!("(from {}, not the server: ignored)", display_addr(&d.from)),
                Err(e) => {
                    // A timeout (or "connection refused": nobody at that port).
                    println!(
                        "没有返回 — no echo within {} s: {}",
                        REPLY_TIMEOUT.as_secs(),
                        describe_io(&e)
                    );
                    break;
                }
            }
        }
        //    `if datas.decode('utf-8') == 'exit': break` — after printing its echo.
        if datas == "exit" {
            break;
        }
    }
    // 6. 关闭套接字，释放系统资源.
    drop(client_socket);
    Ok(())
}

/// The server with the library: what `udp-echo serve PORT` runs.
fn server_with_library(port: u16) -> Result<(), String> {
    let socket = udp_socket(ListenSpec::any(port)).map_err(|e| e.to_string())?;
    let shutdown = Shutdown::new();
    shutdown.install_ctrlc().map_err(|e| e.to_string())?;
    // Echo by default; Ctrl-C stops it and prints a summary (datagrams, bytes, senders).
    let io = Io::new(Output::stdout(), Log::stderr(Verbosity::Normal));
    server::serve(socket, &server::Config::default(), io, &shutdown).map_err(|e| e.to_string())?;
    Ok(())
}

/// The client with the library: what `udp-echo send HOST PORT` runs — stdin lines,
/// one datagram each, every echo printed, stop after `exit`.
fn client_with_library(target: &Target) -> Result<(), String> {
    let summary = client::send(
        target,
        &[],
        // Read on a thread of its own (replies are shown while you type): the
        // reader must be Send, which a locked stdin is not.
        io::BufReader::new(io::stdin()),
        &client::Config::default(),
        &mut io::stdout(),
        &Log::stderr(Verbosity::Normal),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "sent {} datagrams, {} echoes came back",
        summary.sent, summary.replies
    );
    summary.check().map_err(|e| e.to_string())
}

/// `server [PORT] [--lib]` or `client [HOST PORT] [--lib]`; `Ok(None)` for `--help`.
fn parse_args(argv: Vec<String>) -> Result<Option<(Role, bool)>, String> {
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
    let role = match words.split_first() {
        Some((w, rest)) if w == "server" => match rest {
            [] => Role::Server(udp::DEFAULT_PORT),
            // Lesson 01: a port is a number from 0 to 65535.
            [p] => Role::Server(parse_port(p).map_err(|e| e.to_string())?),
            _ => return Err("server takes at most a PORT".into()),
        },
        Some((w, rest)) if w == "client" => {
            if rest.is_empty() {
                Role::Client(Target {
                    host: "127.0.0.1".into(),
                    port: udp::DEFAULT_PORT,
                })
            } else {
                let (target, extra) = addr::parse_target_args(rest).map_err(|e| e.to_string())?;
                if let Some(x) = extra.first() {
                    return Err(format!("unexpected argument {x:?}"));
                }
                Role::Client(target)
            }
        }
        _ => return Err("say server or client".into()),
    };
    Ok(Some((role, lib)))
}
