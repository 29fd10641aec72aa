//! Lesson 11 — the TCP "QQ" chat (notes 001 §3.3.3, 004 p168–169), made full
//! duplex. The notes' programs take turns: `input()` blocks, then `recv()`
//! blocks, so nobody can say two things in a row. Here each side runs two
//! threads, one per direction, as real chat programs do:
//!
//! - the main thread reads what you type and `send`s it;
//! - a second thread waits in `recv` and prints whatever arrives, whenever.
//!
//! `exit` or `bye` (typed or received) ends the chat; so does either side
//! closing. Run one side in each terminal:
//!
//! ```text
//! cargo run --example 11_tcp_chat -- server [PORT]        # default 8008
//! cargo run --example 11_tcp_chat -- client 127.0.0.1 8008
//! ```
//!
//! Messages go out without a newline, exactly as the notes' programs send them,
//! so either side also talks to the notes' Python server or client. The `chat`
//! tool does the same with names, encodings, UDP and a room, and needs no flag
//! for the notes' programs either: `chat listen 8008` / `chat connect
//! 127.0.0.1 8008` send lines bare until the peer shows it wants `\n` (nc,
//! another chat, a room).

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

use socktools::addr::{display_addr, parse_port};

const USAGE: &str = "usage: 11_tcp_chat server [PORT] | 11_tcp_chat client HOST PORT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stream = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server"] => serve(8008),
        ["server", port] => match parse_port(port) {
            Ok(p) => serve(p),
            Err(e) => return usage(&e.to_string()),
        },
        ["client", host, port] => match parse_port(port) {
            // client_socket.connect(('192.168.1.15', 8008))
            Ok(p) => TcpStream::connect((host, p)),
            Err(e) => return usage(&e.to_string()),
        },
        _ => return usage("expected server or client"),
    };
    match stream.and_then(chat) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("11_tcp_chat: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("11_tcp_chat: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// bind(('', 8008)), listen(1), accept(): wait for the one person to chat with.
fn serve(port: u16) -> io::Result<TcpStream> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    eprintln!("listening on {}", listener.local_addr()?);
    let (stream, addr) = listener.accept()?;
    eprintln!("{} connected", display_addr(&addr));
    Ok(stream)
}

fn is_quit(text: &str) -> bool {
    matches!(text.trim(), "exit" | "bye")
}

fn chat(stream: TcpStream) -> io::Result<()> {
    // The receiving direction gets its own thread and its own handle to the
    // same socket (try_clone duplicates the descriptor, not the connection).
    let incoming = stream.try_clone()?;
    let receiver = thread::spawn(move || receive(incoming));

    let mut out = &stream;
    for line in io::stdin().lock().lines() {
        let line = line?;
        // client_socket.send(send_data.encode('utf-8')): no newline, as the notes do.
        out.write_all(line.as_bytes())?;
        if is_quit(&line) {
            break;
        }
    }
    // Done talking (typed exit, or Ctrl-D): shutdown(SHUT_WR) tells the peer,
    // whose recv() now returns b''. The receiver keeps printing until the peer
    // closes its side too, so no last words are lost.
    stream.shutdown(Shutdown::Write)?;
    let _ = receiver.join();
    Ok(())
}

fn receive(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        // recv_data = client_socket.recv(1024)
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                eprintln!("the peer left");
                break;
            }
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        if is_quit(&text) {
            eprintln!("the peer said {}", text.trim());
            break;
        }
        println!("peer: {text}");
    }
    // The chat is over for us too. The main thread may be blocked reading the
    // keyboard, and nothing can interrupt a blocked read of stdin, so end the
    // whole program from here (the `chat` tool does the same when it returns).
    let _ = stream.shutdown(Shutdown::Both);
    std::process::exit(0);
}
