//! Lesson 10 — the UDP "customer service" chat (notes 004 p171): the service
//! desk binds a port and waits; a customer sends a line with `sendto`, the desk
//! prints it with the sender's address and answers with `sendto(data, addr)`;
//! they take turns until one of them says `bye`.
//!
//! Run the desk in one terminal and the customer in another:
//!
//! ```text
//! cargo run --example 10_udp_chat -- desk [PORT]            # default 8888
//! cargo run --example 10_udp_chat -- customer 127.0.0.1 8888
//! ```
//!
//! Either side also works with the notes' own Python programs, and with
//! `chat --udp listen 8888` / `chat --udp connect 127.0.0.1 8888`, the full-duplex
//! version where both people may type at any time.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;

use socktools::addr::{display_addr, parse_port};

const USAGE: &str = "usage: 10_udp_chat desk [PORT] | 10_udp_chat customer HOST PORT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["desk"] => desk(8888),
        ["desk", port] => match parse_port(port) {
            Ok(p) => desk(p),
            Err(e) => return usage(&e.to_string()),
        },
        ["customer", host, port] => match parse_port(port) {
            Ok(p) => customer(host, p),
            Err(e) => return usage(&e.to_string()),
        },
        _ => return usage("expected desk or customer"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("10_udp_chat: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("10_udp_chat: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// One line typed by the user, without its newline; None at end of input.
fn ask(prompt: &str) -> io::Result<Option<String>> {
    print!("{prompt}");
    io::stdout().flush()?;
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// The service desk (客服人员).
fn desk(port: u16) -> io::Result<()> {
    // recv_socket = socket(AF_INET, SOCK_DGRAM); recv_socket.bind(('127.0.0.1', 8888))
    // UDP has no listen() and no accept(): binding is all a "server" does.
    let socket = UdpSocket::bind(("0.0.0.0", port))?;
    eprintln!("listening on {}", socket.local_addr()?);
    // A datagram can be up to 64 KiB; the notes' recvfrom(1024) would cut a
    // longer one off without a word.
    let mut buf = vec![0u8; 65536];
    loop {
        // recv_data, addr = recv_socket.recvfrom(1024): the data AND who sent it,
        // because without a connection the address is the only way to answer.
        let (n, addr) = socket.recv_from(&mut buf)?;
        let said = String::from_utf8_lossy(&buf[..n]);
        println!("客户说: {said}");
        println!("客户地址: {}", display_addr(&addr));
        if said == "bye" {
            println!("服务器端即将退出");
            return Ok(());
        }
        let Some(reply) = ask("回复什么给客户端: ")? else {
            return Ok(());
        };
        // recv_socket.sendto(data.encode('UTF-8'), addr)
        socket.send_to(reply.as_bytes(), addr)?;
    }
}

/// The customer (客户咨询者).
fn customer(host: &str, port: u16) -> io::Result<()> {
    let desk: SocketAddr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{host} has no address")))?;
    // send_socket = socket(AF_INET, SOCK_DGRAM): no bind needed, the first
    // sendto picks a free port for us (the desk sees it in addr).
    let socket = UdpSocket::bind(if desk.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    loop {
        let Some(line) = ask("客户说: ")? else {
            // Nothing tells the desk we left unless we say so: UDP has no close.
            socket.send_to(b"bye", desk)?;
            return Ok(());
        };
        socket.send_to(line.as_bytes(), desk)?;
        if line == "bye" {
            println!("客户端发起结束");
            return Ok(());
        }
        let mut buf = vec![0u8; 65536];
        let (n, addr) = socket.recv_from(&mut buf)?;
        println!("客户端接收数据: {}", String::from_utf8_lossy(&buf[..n]));
        println!("服务器端地址: {}", display_addr(&addr));
    }
}
