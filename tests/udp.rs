//! End-to-end tests of udp-echo: lessons 07, 08 and 09 run as a user would, against the notes' own Python scripts too.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use util::*;

/// Nothing arrives within `ms` milliseconds.
fn assert_silent(s: &UdpSocket, ms: u64) {
    s.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
    let r = s.recv_from(&mut [0u8; 64]);
    assert!(r.is_err(), "expected nothing, got {r:?}");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// `udp-echo serve 0 --bind 127.0.0.1 ARGS…`.
fn serve(args: &[&str]) -> Process {
    Process::server("udp-echo serve", args)
}

/// `udp-echo send PEER ARGS…` (stdin `input`) against a socket of ours that
/// `talk`s on a thread: the run, what `talk` returned, and the socket's address.
fn send_to_peer<T: Send + 'static>(
    talk: impl FnOnce(UdpSocket) -> T + Send + 'static,
    args: &[&str],
    input: &[u8],
) -> (std::process::Output, T, SocketAddr) {
    let peer = udp_socket();
    let addr = peer.local_addr().unwrap();
    let server = thread::spawn(move || talk(peer));
    let out = send(addr, args, input);
    (out, server.join().unwrap(), addr)
}

/// `udp-echo send ADDR ARGS…` with `input` on stdin.
fn send(addr: SocketAddr, args: &[&str], input: &[u8]) -> std::process::Output {
    let addr = addr.to_string();
    let mut all = vec!["send", addr.as_str()];
    all.extend_from_slice(args);
    run(cmd("udp-echo", &all), input)
}

#[test]
fn lesson_09_send_lines_to_our_server_until_exit() {
    let mut srv = serve(&[]);
    let out = send(
        srv.addr(),
        &[],
        "我爱你\n你爱我\nexit\nnever sent\n".as_bytes(),
    );
    succeeded(&out);
    assert_eq!(text(&out.stdout), "我爱你\n你爱我\nexit\n");
    assert_eq!(text(&out.stderr), "");
    for m in ["我爱你", "你爱我", "exit"] {
        let line = srv.out().next().unwrap();
        assert!(line.starts_with("[127.0.0.1:"), "{line}");
        assert!(line.ends_with(&format!("] {m}")), "{line}");
    }
    srv.stop("INT");
    srv.err()
        .rest_with("received 3 datagrams (22 bytes) from 1 sender, sent 3 replies (22 bytes)");
}

#[test]
fn lesson_08_send_no_wait_into_the_notes_receiver() {
    let Some(mut py) = python_server("lesson08_udp_receive.py", &[]) else {
        return;
    };
    let addr = py.addr();
    let out = send(addr, &["我爱你", "--no-wait"], b"");
    succeeded(&out);
    assert_eq!(text(&out.stdout), "");
    // Lesson 07's 发送完成: sent, which is all UDP can tell.
    assert_eq!(text(&out.stderr), format!("sent 9 bytes to {addr}\n"));
    assert!(py.wait().success());
    let printed = py.out().rest();
    assert!(
        printed[0].starts_with(r"(b'\xe6\x88\x91\xe7\x88\xb1\xe4\xbd\xa0', ('127.0.0.1', "),
        "{printed:?}"
    );
    assert_eq!(printed[1], "我爱你");
}

#[test]
fn lesson_07_the_notes_sender_into_serve_count_1() {
    let mut srv = serve(&["--count", "1"]);
    let Some(mut py) = course_python("lesson07_udp_send.py") else {
        return;
    };
    py.args(["127.0.0.1", &srv.addr().port().to_string()]);
    let out = run(py, "我爱你\n".as_bytes());
    succeeded(&out);
    assert_eq!(text(&out.stdout), "请输入数据：发送完成\n");
    let line = srv.out().next().unwrap();
    assert!(
        line.starts_with("[127.0.0.1:") && line.ends_with("] 我爱你"),
        "{line}"
    );
    // --count 1: the server exits by itself after one datagram.
    assert!(srv.wait().success());
    srv.err()
        .rest_with("received 1 datagram (9 bytes) from 1 sender, sent 1 reply (9 bytes)");
}

#[test]
fn lesson_09_the_notes_client_against_our_server() {
    let mut srv = serve(&[]);
    let Some(mut py) = course_python("lesson09_udp_echo_client.py") else {
        return;
    };
    py.args(["127.0.0.1", &srv.addr().port().to_string()]);
    let out = run(py, "我爱你\n你爱我\nexit\n".as_bytes());
    succeeded(&out);
    assert_eq!(
        text(&out.stdout),
        "请输入数据：返回的数据是: 我爱你\n请输入数据：返回的数据是: 你爱我\n请输入数据：返回的数据是: exit\n"
    );
    for m in ["我爱你", "你爱我", "exit"] {
        assert!(srv.out().next().unwrap().ends_with(&format!("] {m}")));
    }
}

#[test]
fn lesson_09_our_send_against_the_notes_echo_server() {
    let Some(mut py) = python_server("lesson09_udp_echo_server.py", &[]) else {
        return;
    };
    let addr = py.addr();
    let out = send(addr, &[], "我爱你\n你爱我\nexit\n".as_bytes());
    succeeded(&out);
    assert_eq!(text(&out.stdout), "我爱你\n你爱我\nexit\n");
    for m in ["我爱你", "你爱我", "exit"] {
        assert_eq!(py.out().next().as_deref(), Some(m));
    }
}

#[test]
fn every_sender_gets_its_own_answer() {
    // The nc -u -l bug: a connected server socket hears only its first peer.
    let mut srv = serve(&[]);
    let socks: Vec<UdpSocket> = (0..3).map(|_| udp_socket()).collect();
    for round in 0..2 {
        for (i, s) in socks.iter().enumerate() {
            s.send_to(format!("client {i} round {round}").as_bytes(), srv.addr())
                .unwrap();
        }
        for (i, s) in socks.iter().enumerate() {
            assert_eq!(
                recv_from(s),
                (format!("client {i} round {round}").into_bytes(), srv.addr())
            );
        }
    }
    // And several udp-echo clients at once.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let addr = srv.addr();
            thread::spawn(move || send(addr, &[&format!("process {i}")], b""))
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.join().unwrap();
        succeeded(&out);
        assert_eq!(text(&out.stdout), format!("process {i}\n"));
    }
    for _ in 0..10 {
        srv.out().next().expect("a line per datagram");
    }
    srv.stop("INT");
    assert!(srv.err().rest().join("\n").contains("from 7 senders"));
}

#[test]
fn reply_text_names_the_sender() {
    let srv = serve(&["--reply", "我是服务器, 你好客户端: {peer}"]);
    let s = udp_socket();
    s.send_to("你好".as_bytes(), srv.addr()).unwrap();
    let me = s.local_addr().unwrap();
    assert_eq!(
        text(&recv_from(&s).0),
        format!("我是服务器, 你好客户端: {me}")
    );
    let out = send(srv.addr(), &["你好"], b"");
    succeeded(&out);
    assert!(
        text(&out.stdout).starts_with("我是服务器, 你好客户端: 127.0.0.1:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn no_echo_only_prints() {
    let mut srv = serve(&["--no-echo"]);
    let s = udp_socket();
    s.send_to(b"only printed", srv.addr()).unwrap();
    assert!(srv.out().next().unwrap().ends_with("] only printed"));
    assert_silent(&s, 300);
    // Our client waiting for an answer that never comes: reported, exit 1.
    let out = send(srv.addr(), &["anyone?", "--wait", "0.3"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        // One failure, one line.
        "udp-echo: no reply to 1 of 1 datagram within 0.3 s\n"
    );
}

#[test]
fn reply_encoding_sends_gbk_text_back_as_utf8() {
    let mut srv = serve(&["--recv-encoding", "gbk", "--reply-encoding", "utf-8"]);
    let s = udp_socket();
    // 你好 in GBK, as NetAssist sends it
    assert_eq!(
        ask_udp(&s, srv.addr(), b"\xc4\xe3\xba\xc3"),
        "你好".as_bytes()
    );
    assert!(srv.out().next().unwrap().ends_with("] 你好"));
    // Same encoding both ways: untouched, even bytes that are not valid GBK.
    let srv = serve(&["-e", "gbk", "--reply-encoding", "gbk"]);
    assert_eq!(
        ask_udp(&s, srv.addr(), b"\xc4\xe3\x80\xff"),
        b"\xc4\xe3\x80\xff"
    );
}

#[test]
fn hex_dumps_on_both_sides() {
    let mut srv = serve(&["--hex"]);
    let out = send(srv.addr(), &["c4 e3 ba c3", "--send-hex", "--hex"], b"");
    succeeded(&out);
    assert_eq!(
        text(&out.stdout),
        "00000000  c4 e3 ba c3                                       |....|\n"
    );
    let line = srv.out().next().unwrap();
    assert!(
        line.starts_with("[127.0.0.1:") && line.contains("] 00000000  c4 e3 ba c3 "),
        "{line}"
    );
}

#[test]
fn a_lost_reply_exits_1_and_the_next_line_is_still_sent() {
    // A server that drops the first datagram, as a network may, and answers the second.
    let drops_one = |peer: UdpSocket| {
        let (first, _) = recv_from(&peer);
        let (second, from) = recv_from(&peer);
        peer.send_to(b"answer", from).unwrap();
        (first, second)
    };
    let (out, got, addr) = send_to_peer(drops_one, &["--wait", "1"], b"one\ntwo\n");
    assert_eq!(got, (b"one".to_vec(), b"two".to_vec()));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "answer\n");
    assert_eq!(
        text(&out.stderr),
        format!(
            "warning: no reply to line 1 from {addr} within 1 s\n\
             late reply from {addr}: counted for line 1\n\
             warning: no reply to line 2 from {addr} within 1 s\n\
             udp-echo: no reply to 1 of 2 datagrams within 1 s\n"
        )
    );
}

/// `udp-echo send ADDR ARGS…` (stdin `input`) against a server that answers the
/// first datagram only after `late` and the second 0.1 s after that.
fn send_to_a_slow_server(args: &[&str], input: &[u8], late: Duration) -> std::process::Output {
    let slow = move |peer: UdpSocket| {
        let (a, from) = recv_from(&peer);
        thread::sleep(late);
        peer.send_to(b"reply to a", from).unwrap();
        let (b, from) = recv_from(&peer);
        thread::sleep(Duration::from_millis(100));
        peer.send_to(b"reply to b", from).unwrap();
        (a, b)
    };
    let (out, got, _) = send_to_peer(slow, args, input);
    assert_eq!(got, (b"a".to_vec(), b"b".to_vec()));
    out
}

#[test]
fn a_reply_after_its_wait_is_shown_and_the_next_reply_is_still_waited_for() {
    // a's reply comes 2 s after a, half a second after its --wait; b (sent when
    // a's wait ended) is answered 0.1 s later, well within b's own wait. Both
    // replies came while the tool ran: both shown, nothing missing.
    let late = Duration::from_secs(2);
    let lines = thread::spawn(move || send_to_a_slow_server(&["--wait", "1.5"], b"a\nb\n", late));
    let args = send_to_a_slow_server(&["a", "b", "--wait", "1.5"], b"", late);
    for (out, what) in [(lines.join().unwrap(), "line 1"), (args, "message 1")] {
        let err = text(&out.stderr);
        assert_eq!(text(&out.stdout), "reply to a\nreply to b\n", "{err}");
        assert_eq!(out.status.code(), Some(0), "{err}");
        // Named when b is sent, then accounted for when it comes.
        assert!(
            err.starts_with(&format!("warning: no reply to {what} from 127.0.0.1:"))
                && err.contains(" within 1.5 s\nlate reply from 127.0.0.1:")
                && err.ends_with(&format!(": counted for {what}\n")),
            "{err}"
        );
    }
}

#[test]
fn no_reply_to_the_quit_word_is_not_a_failure() {
    let quits = |peer: UdpSocket| {
        let (_, from) = recv_from(&peer);
        peer.send_to(b"hi", from).unwrap();
        recv_from(&peer).0 // a server that quits on `bye` without answering it
    };
    let args = ["--wait", "1", "--quit-word", "bye"];
    let (out, got, _) = send_to_peer(quits, &args, b"hi\nbye\nlost\n");
    assert_eq!(got, b"bye");
    succeeded(&out);
    assert_eq!(text(&out.stdout), "hi\n");
}

#[test]
fn a_datagram_from_a_third_address_is_shown_with_its_address() {
    let third = udp_socket();
    let third_addr = third.local_addr().unwrap();
    let answer_after_a_third = move |peer: UdpSocket| {
        let (_, from) = recv_from(&peer);
        third.send_to(b"not the answer", from).unwrap();
        peer.send_to(b"the answer", from).unwrap();
    };
    let (out, (), _) = send_to_peer(answer_after_a_third, &["question"], b"");
    succeeded(&out);
    assert_eq!(
        text(&out.stdout),
        format!("[{third_addr}] not the answer\nthe answer\n")
    );
}

#[test]
fn repeat_interval_count_and_byte_exact_stdin() {
    let peer = udp_socket();
    let addr = peer.local_addr().unwrap();
    let out = send(
        addr,
        &["x", "--repeat", "3", "--interval", "10", "--no-wait"],
        b"",
    );
    succeeded(&out);
    for _ in 0..3 {
        assert_eq!(recv_from(&peer).0, b"x");
    }
    assert_eq!(text(&out.stderr).matches("sent 1 bytes to").count(), 3);

    // A stdin line that is not UTF-8 goes out exactly as it was, without its line ending.
    let out = send(addr, &["--no-wait"], b"\xff\xfe\xc4\r\n");
    assert!(out.status.success());
    assert_eq!(recv_from(&peer).0, b"\xff\xfe\xc4");

    let mut srv = serve(&["--count", "2"]);
    let (a, b) = (udp_socket(), udp_socket());
    a.send_to(b"1", srv.addr()).unwrap();
    b.send_to(b"2", srv.addr()).unwrap();
    assert_eq!(recv_from(&a).0, b"1");
    assert_eq!(recv_from(&b).0, b"2");
    assert!(srv.wait().success());
    assert!(srv.err().rest().join("\n").contains("from 2 senders"));
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let out = run(cmd("udp-echo", &["send", "127.0.0.1", "80a", "hi"]), b"");
    failed_saying(
        &out,
        2,
        "udp-echo: invalid port \"80a\": expected 0-65535\n",
    );

    let out = run(cmd("udp-echo", &["serve", "99999"]), b"");
    failed(&out, 2, "invalid port \"99999\"");

    let out = run(cmd("udp-echo", &["serve", "0", "--bind", "999.1.1.1"]), b"");
    failed_saying(&out, 2, "udp-echo: invalid host \"999.1.1.1\"\n");

    for args in [
        &["send", "127.0.0.1", "1", "x", "--encoding", "klingon"][..],
        &["serve", "0", "--reply-encoding", "klingon"],
        &["serve", "0", "--count", "0"],
        &["serve", "0", "--no-echo", "--reply", "x"],
        &["send", "127.0.0.1", "1", "x", "--bogus"],
        &["chat"],
    ] {
        let out = run(cmd("udp-echo", args), b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    let long = "x".repeat(65_508);
    let out = run(cmd("udp-echo", &["send", "127.0.0.1", "9", &long]), b"");
    failed_saying(
        &out,
        2,
        "udp-echo: message 1: 65508 bytes is more than one UDP datagram can carry (at most 65507 bytes to an IPv4 address)\n",
    );

    let out = run(
        cmd(
            "udp-echo",
            &[
                "send",
                "127.0.0.1",
                "9",
                "😀",
                "-e",
                "gbk",
                "--strict-encoding",
            ],
        ),
        b"",
    );
    failed(&out, 2, "'😀' (U+1F600)");

    // The kernel refuses a broadcast address without SO_BROADCAST: nothing is sent.
    let out = run(
        cmd("udp-echo", &["send", "255.255.255.255", "9", "hi"]),
        b"",
    );
    failed_saying(
        &out,
        1,
        "udp-echo: cannot send to 255.255.255.255:9: permission denied (sending to a broadcast address needs --broadcast)\n",
    );

    let taken = udp_socket();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(
        cmd("udp-echo", &["serve", &port, "--bind", "127.0.0.1"]),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    // The program holding the port is named (this test's, here).
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        text(&out.stderr),
        format!(
            "udp-echo: cannot listen on 127.0.0.1:{port}: address already in use ({} (pid {}) has UDP port {port} open; stop it or pick another port)\n",
            me.trim_end(),
            std::process::id()
        )
    );
}

/// SIGTERM (systemd, `docker stop`) stops it just as Ctrl-C does.
#[test]
fn ctrl_c_or_sigterm_stops_the_server_promptly_with_a_summary() {
    for sig in ["INT", "TERM"] {
        let mut srv = serve(&[]);
        let s = udp_socket();
        assert_eq!(ask_udp(&s, srv.addr(), b"abc"), b"abc");
        let took = srv.stop(sig);
        assert!(took < Duration::from_secs(5), "SIG{sig}: took {took:?}");
        let log = srv.err().rest();
        assert_eq!(
            log.last().map(String::as_str),
            Some("received 1 datagram (3 bytes) from 1 sender, sent 1 reply (3 bytes)"),
            "SIG{sig}: {log:?}"
        );
    }
}

#[test]
fn ipv6_loopback_and_dual_stack() {
    let srv = Process::serving(cmd("udp-echo", &["serve", "0"]));
    let port = srv.addr().port().to_string();
    let v4 = run(cmd("udp-echo", &["send", "127.0.0.1", &port, "four"]), b"");
    assert_eq!(text(&v4.stdout), "four\n", "{}", text(&v4.stderr));
    if UdpSocket::bind("[::1]:0").is_ok() {
        let v6 = run(
            cmd("udp-echo", &["send", &format!("[::1]:{port}"), "six"]),
            b"",
        );
        assert_eq!(text(&v6.stdout), "six\n", "{}", text(&v6.stderr));
        let v6 = run(cmd("udp-echo", &["send", "-6", "::1", &port, "six"]), b"");
        assert_eq!(text(&v6.stdout), "six\n", "{}", text(&v6.stderr));
    }
}

#[test]
fn nc_u_clients_each_get_their_echo() {
    if !have_peer("nc") {
        return;
    }
    let mut srv = serve(&[]);
    // Two nc -u clients, one after the other, from two ports: both answered.
    for line in ["hello from nc", "和另一个 nc"] {
        let mut nc = peer_cmd("nc");
        nc.args(["-u", "-w1", "127.0.0.1", &srv.addr().port().to_string()]);
        let out = run(nc, format!("{line}\n").as_bytes());
        assert_eq!(
            text(&out.stdout),
            format!("{line}\n"),
            "{}",
            text(&out.stderr)
        );
        assert!(srv.out().next().unwrap().ends_with(&format!("] {line}")));
    }
}

#[test]
fn serve_into_a_full_disk_fails_with_exit_1_and_answers_nothing() {
    let Some(full) = dev_full() else { return };
    let mut c = server_cmd("udp-echo serve", &[]);
    c.stdin(Stdio::null()).stdout(full);
    let mut srv = Process::serve(c, false);
    let s = udp_socket();
    s.send_to(b"lost?", srv.addr()).unwrap();
    let status = srv.wait();
    let log = srv.err().rest();
    assert_eq!(status.code(), Some(1), "{log:?}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("udp-echo: cannot write to stdout: No space left on device (os error 28)"),
        "{log:?}"
    );
    // A datagram that could not be shown is not echoed as if all were well.
    assert_silent(&s, 100);
}

#[test]
fn closed_stdout_pipe_stops_the_server_with_one_line_and_exit_0() {
    let mut srv = Process::server_raw_stdout("udp-echo serve", &[]);
    drop(srv.child.stdout.take());
    udp_socket().send_to(b"anyone?", srv.addr()).unwrap();
    let status = srv.wait();
    let log = srv.err().rest();
    assert!(status.success(), "{status:?} {log:?}");
    let said = count(&log, "stdout was closed");
    assert_eq!(said, 1, "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("udp-echo:")), "{log:?}");
}

/// Tell the pty driver `command` and check it says `answer`.
fn pty_step(term: &mut Process, command: &str, answer: &str) {
    term.say(command);
    let got = term.out().next().unwrap_or_default();
    assert_eq!(got, answer, "after {command:?}; saw {:?}", term.out().seen);
}

/// Lesson 08 with a person on the other end: our `udp-echo send` runs in a
/// (pseudo-)terminal.
#[test]
fn lesson_08_a_reply_typed_by_hand_after_the_wait_is_shown() {
    // The receiver is a person (004 p170: recvfrom, then input() the reply):
    // the answer comes after the 2 s the tool used to wait.
    let person = udp_socket();
    let addr = person.local_addr().unwrap().to_string();
    let Some(mut term) = on_a_terminal(&[], "udp-echo", &["send", &addr, "你好"]) else {
        return;
    };
    let (got, from) = recv_from(&person);
    assert_eq!(got, "你好".as_bytes());
    pty_step(
        &mut term,
        &format!("wait no reply from {addr} within 2 s; still listening (Enter or Ctrl-D stops)"),
        "seen",
    );
    person.send_to("我是接收方".as_bytes(), from).unwrap();
    pty_step(&mut term, "wait 我是接收方", "seen");
    // The reply came while it was running: shown, and a success.
    pty_step(&mut term, "exit", "exit 0");
}

#[test]
fn on_a_terminal_typing_lines_a_late_reply_is_shown_and_ctrl_d_ends() {
    let person = udp_socket();
    let addr = person.local_addr().unwrap().to_string();
    let send = |wait| on_a_terminal(&[], "udp-echo", &["send", &addr, "--wait", wait]);
    let Some(mut term) = send("0.5") else {
        return;
    };
    term.say(r"type 在吗\r");
    let (got, from) = recv_from(&person);
    assert_eq!(got, "在吗".as_bytes());
    pty_step(
        &mut term,
        "wait still listening (type the next line, or Ctrl-D to stop)",
        "seen",
    );
    person.send_to("在的".as_bytes(), from).unwrap();
    pty_step(&mut term, "wait 在的", "seen");
    term.say(r"type \x04");
    pty_step(&mut term, "exit", "exit 0");

    // Ctrl-D before any answer: the reply is missing, exit 1.
    let mut term = send("0.3").expect("python3 ran a moment ago");
    term.say(r"type 在吗\r");
    recv_from(&person);
    pty_step(&mut term, "wait still listening", "seen");
    term.say(r"type \x04");
    pty_step(&mut term, "wait no reply to 1 of 1 datagram", "seen");
    pty_step(&mut term, "exit", "exit 1");
}

#[test]
fn raw_100_kb_file_round_trips_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.bin");
    let data = noise(100_000, 13);
    std::fs::write(&file, &data).unwrap();
    let mut srv = Process::server_raw_stdout("udp-echo serve", &["--raw"]);
    let mut stdout = srv.child.stdout.take().unwrap();
    let collector = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    // The learner's command, `< file` and all.
    let out = run(
        {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                &format!(
                    "exec '{}' send {} --raw < '{}'",
                    bin("udp-echo").display(),
                    srv.addr(),
                    file.display()
                ),
            ]);
            c
        },
        b"",
    );
    succeeded(&out);
    assert!(out.stdout == data, "the echoes differ from the file");
    assert_eq!(text(&out.stderr), "");
    srv.stop("INT");
    assert!(
        collector.join().unwrap() == data,
        "serve --raw wrote other bytes"
    );
    // 97 datagrams of 1024 bytes and one of 672: nothing added or removed.
    srv.err().expect(
        "received 98 datagrams (100000 bytes) from 1 sender, sent 98 replies (100000 bytes)",
    );
}

#[test]
fn raw_one_way_with_no_echo_and_no_wait() {
    let data = noise(20_000, 17);
    let mut srv =
        Process::server_raw_stdout("udp-echo serve", &["--raw", "--no-echo", "--count", "40"]);
    let mut stdout = srv.child.stdout.take().unwrap();
    let collector = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let out = send(srv.addr(), &["--raw", "--no-wait", "--size", "500"], &data);
    succeeded(&out);
    assert_eq!(
        text(&out.stderr),
        format!("sent 40 datagrams (20000 bytes) to {}\n", srv.addr())
    );
    assert!(out.stdout.is_empty());
    assert!(srv.wait().success());
    assert!(
        collector.join().unwrap() == data,
        "serve --raw wrote other bytes"
    );
}

#[test]
fn raw_refuses_flags_that_would_change_the_bytes() {
    for (args, flag) in [
        (vec!["send", "127.0.0.1:9", "--raw", "--hex"], "--hex"),
        (
            vec!["send", "127.0.0.1:9", "--raw", "--send-hex"],
            "--send-hex",
        ),
        (
            vec!["send", "127.0.0.1:9", "--raw", "-e", "gbk"],
            "--encoding",
        ),
        (
            vec!["send", "127.0.0.1:9", "--raw", "--send-encoding", "big5"],
            "--send-encoding",
        ),
        (vec!["serve", "0", "--raw", "--hex"], "--hex"),
    ] {
        let out = run(cmd("udp-echo", &args), b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            format!("udp-echo: --raw passes bytes through unchanged; leave out {flag}\n")
        );
    }
    let out = run(
        cmd("udp-echo", &["send", "127.0.0.1:9", "--size", "10"]),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
}
