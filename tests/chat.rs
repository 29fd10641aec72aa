//! End-to-end tests of `chat listen` / `chat connect` (lessons 10 and 11): two
//! of our processes driven through pipes, plain sockets as peers, and the
//! notes' own turn-taking Python programs.

mod util;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use util::*;

fn chat(args: &[&str]) -> Command {
    cmd("chat", args)
}

/// `chat listen` on a free loopback port, plus its address.
fn listen(extra: &[&str]) -> (Proc, std::net::SocketAddr) {
    let mut args = vec!["listen", "0", "-b", "127.0.0.1"];
    args.extend_from_slice(extra);
    Proc::listening(chat(&args))
}

fn connect(addr: std::net::SocketAddr, extra: &[&str]) -> Proc {
    let target = addr.to_string();
    let mut args = vec!["connect", target.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn(chat(&args))
}

fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

fn recv_text(s: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).expect("datagram");
    text(&buf[..n])
}

#[test]
fn two_chats_talk_both_ways_and_bye_ends_both() {
    let (mut a, addr) = listen(&[]);
    let mut b = connect(addr, &[]);
    a.err.expect("connected");
    b.say("hi from B");
    assert_eq!(a.out.expect("hi from B"), "peer> hi from B");
    a.say("你好, B");
    a.say("second line before any answer");
    assert_eq!(b.out.expect("你好"), "peer> 你好, B");
    assert_eq!(b.out.next().unwrap(), "peer> second line before any answer");
    a.say("bye");
    assert!(b.wait().success());
    b.err.expect("the peer said bye");
    assert!(a.wait().success());
    a.err.expect("you said bye");
    assert!(!a.out.rest().iter().any(|l| l.contains("bye")));
}

#[test]
fn a_name_is_announced_and_used() {
    let (mut a, addr) = listen(&["--name", "alice"]);
    let mut b = connect(addr, &["--name", "小黑"]);
    b.say("hello");
    assert_eq!(a.out.expect("hello"), "小黑> hello");
    a.err.expect("peer is now known as 小黑");
    a.say("hi");
    assert_eq!(b.out.expect("hi"), "alice> hi");
    a.close_stdin();
    assert!(a.wait().success());
    assert!(b.wait().success());
    b.err.expect("the peer closed the connection");
}

#[test]
fn end_of_input_sends_what_was_read_then_ends_both() {
    let (mut a, addr) = listen(&[]);
    let mut b = connect(addr, &[]);
    b.say("one");
    b.say("two");
    b.close_stdin();
    assert!(b.wait().success());
    assert!(a.wait().success());
    assert_eq!(a.out.rest(), vec!["peer> one", "peer> two"]);
    a.err.expect("the peer closed the connection");
}

#[test]
fn a_chunk_without_newline_is_one_message_and_disconnect_exits_0() {
    let (mut a, addr) = listen(&[]);
    let s = util::connect(addr);
    (&s).write_all(b"no newline").unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> no newline");
    (&s).write_all(b"\x1b[2Jclear\tscreen\r\n").unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> \\x1b[2Jclear\tscreen");
    drop(s);
    assert!(a.wait().success());
    a.err.expect("the peer closed the connection");
}

#[test]
fn eol_none_and_crlf_on_the_wire() {
    for (eol, wire) in [
        ("none", &b"hello"[..]),
        ("crlf", b"hello\r\n"),
        ("lf", b"hello\n"),
    ] {
        let (mut a, addr) = listen(&["--eol", eol]);
        let mut s = util::connect(addr);
        a.err.expect("connected");
        a.say("hello");
        assert_eq!(read_n(&s, wire.len()), wire, "--eol {eol}");
        a.close_stdin();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "--eol {eol}: {rest:?}");
        drop(s);
        assert!(a.wait().success());
    }
}

#[test]
fn gbk_both_ways() {
    let (mut a, addr) = listen(&["-e", "gbk"]);
    let s = util::connect(addr);
    (&s).write_all(b"\xc4\xe3\xba\xc3\n").unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> 你好");
    a.say("我是服务器");
    assert_eq!(
        read_n(&s, 11),
        b"\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7\n"
    );
    drop(s);
    assert!(a.wait().success());
}

#[test]
fn received_quit_word_ends_the_chat_and_extra_quit_words_work() {
    let (mut a, addr) = listen(&["--quit-word", "再见"]);
    let s = util::connect(addr);
    (&s).write_all("first\n再见\nnot shown\n".as_bytes())
        .unwrap();
    assert!(a.wait().success());
    assert_eq!(a.out.rest(), vec!["peer> first"]);
    a.err.expect("the peer said 再见");
}

#[test]
fn only_one_peer_is_taken() {
    let (mut a, addr) = listen(&[]);
    let _first = util::connect(addr);
    a.err.expect("connected");
    let second = TcpStream::connect_timeout(&addr, TIMEOUT);
    assert!(second.is_err(), "a second peer was accepted");
}

/// SIGTERM (systemd, `docker stop`) ends a chat just as Ctrl-C does.
#[test]
fn ctrl_c_or_sigterm_ends_both_sides() {
    for sig in ["INT", "TERM"] {
        let (mut a, addr) = listen(&[]);
        let mut b = connect(addr, &[]);
        b.say("ping");
        a.out.expect("ping");
        let started = Instant::now();
        a.signal(sig);
        let status = a.wait();
        assert!(status.success(), "SIG{sig}: exit status {status:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "SIG{sig}: took {took:?}");
        let status = b.wait();
        assert!(status.success(), "SIG{sig}: peer's exit status {status:?}");
        b.err.expect("the peer closed the connection");
    }
}

#[test]
fn ctrl_c_or_sigterm_while_waiting_for_a_peer_exits_0() {
    for sig in ["INT", "TERM"] {
        let (mut a, _) = listen(&[]);
        a.signal(sig);
        let status = a.wait();
        assert!(status.success(), "SIG{sig}: exit status {status:?}");
    }
}

#[test]
fn usage_and_runtime_errors() {
    let out = run(chat(&["listen", "99999"]), b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        chat(&["connect", "127.0.0.1", "1", "--name", "two words"]),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid --name"),
        "{}",
        text(&out.stderr)
    );
    // A port nobody listens on: refused.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let out = run(chat(&["connect", "127.0.0.1", &port]), b"");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("chat: "), "{err}");
}

// --- UDP (lesson 10) ------------------------------------------------------------

#[test]
fn udp_chats_talk_and_bye_ends_both() {
    let (mut a, addr) = Proc::listening(chat(&["--udp", "listen", "0", "-b", "127.0.0.1"]));
    let mut b = connect(addr, &["--udp"]);
    b.say("在吗?");
    assert_eq!(a.out.expect("在吗"), "peer> 在吗?");
    a.say("在的, 请讲");
    assert_eq!(b.out.expect("请讲"), "peer> 在的, 请讲");
    b.say("bye");
    assert!(b.wait().success());
    assert!(a.wait().success());
    a.err.expect("the peer said bye");
}

#[test]
fn udp_datagrams_are_messages_answered_as_they_end() {
    let (mut a, addr) = Proc::listening(chat(&["--udp", "listen", "0", "-b", "127.0.0.1"]));
    a.say("too early");
    a.err.expect("nobody has written yet");
    // A datagram ending in \n (nc -u) gets answers ending in \n; one
    // without (the notes' programs, another chat) answers without.
    let first = udp_socket();
    first.send_to(b"one\n", addr).unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> one");
    a.say("answer 1");
    assert_eq!(recv_text(&first), "answer 1\n");
    // Whoever wrote last gets the answer.
    let second = udp_socket();
    second.send_to("二".as_bytes(), addr).unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> 二");
    a.say("answer 2");
    assert_eq!(recv_text(&second), "answer 2");
    // End of input says bye, since UDP has no close.
    a.close_stdin();
    assert_eq!(recv_text(&second), "bye");
    assert!(a.wait().success());
}

/// Over UDP nothing tells another chat from the notes' programs (there is no
/// second channel for a hello): `--name` is never sent, and says so.
#[test]
fn udp_never_sends_a_name() {
    let (mut a, addr) = Proc::listening(chat(&[
        "--udp",
        "listen",
        "0",
        "-b",
        "127.0.0.1",
        "--name",
        "客服",
    ]));
    a.err.expect("over UDP --name only labels your own lines");
    for who in ["first", "second"] {
        let s = udp_socket();
        s.send_to(who.as_bytes(), addr).unwrap();
        a.out.expect(who);
        a.say(&format!("hello {who}"));
        assert_eq!(recv_text(&s), format!("hello {who}"));
    }
}

// --- The notes' own programs ------------------------------------------------------

fn python(script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-u").arg(course_script(script)).args(args);
    c
}

/// Lesson 11, the learner's command with no flags: `chat connect HOST PORT`
/// against the notes' server. We speak first, bare (the server compares a
/// whole recv() with 'exit'), and even with `--name` it never sees a `/nick`.
#[test]
fn our_chat_against_the_notes_tcp_server() {
    if !have_peer("python3") {
        return;
    }
    for extra in [&[][..], &["--name", "bob"]] {
        let (mut py, addr) = Proc::listening(python("lesson11_chat_server.py", &[]));
        let port = addr.port().to_string();
        let mut args = vec!["connect", "127.0.0.1", port.as_str()];
        args.extend_from_slice(extra);
        let mut me = Proc::spawn(chat(&args));
        me.say("你好, 我是客户端");
        assert_eq!(
            py.out.next().unwrap(),
            "客户端： 你好, 我是客户端",
            "{extra:?}"
        );
        py.say("hello client");
        assert_eq!(me.out.expect("hello client"), "peer> hello client");
        me.say("second message");
        assert_eq!(py.out.next().unwrap(), "send:客户端： second message");
        py.say("ok");
        me.out.expect("ok");
        me.say("exit");
        assert_eq!(py.out.next().unwrap(), "send:客户端： exit");
        assert_eq!(py.out.next().unwrap(), "客户端已经退出！");
        assert!(me.wait().success());
        me.err.expect("you said exit");
        py.signal("KILL");
    }
}

/// Lesson 11 the other way round: the notes' client speaks first, to
/// `chat listen` with no flags; our answers arrive bare, so its `exit` and its
/// display work, and `--name` is not sent to it.
#[test]
fn the_notes_tcp_client_against_our_chat() {
    if !have_peer("python3") {
        return;
    }
    for extra in [&[][..], &["--name", "alice"]] {
        let (mut me, addr) = listen(extra);
        let port = addr.port().to_string();
        let mut py = Proc::spawn(python("lesson11_chat_client.py", &["127.0.0.1", &port]));
        py.say("你好服务器");
        assert_eq!(me.out.expect("你好服务器"), "peer> 你好服务器");
        me.say("你好客户端");
        assert_eq!(
            py.out.next().unwrap(),
            "send:服务器： 你好客户端",
            "{extra:?}"
        );
        py.say("again");
        me.out.expect("again");
        me.say("second answer");
        assert_eq!(py.out.next().unwrap(), "send:服务器： second answer");
        py.say("exit");
        assert!(me.wait().success());
        me.err.expect("the peer said exit");
        assert!(py.wait().success());
    }
}

#[test]
fn our_udp_chat_against_the_notes_service_desk() {
    if !have_peer("python3") {
        return;
    }
    let (mut py, addr) = Proc::listening(python("lesson10_udp_service.py", &[]));
    let port = addr.port().to_string();
    let mut me = Proc::spawn(chat(&[
        "--udp",
        "connect",
        "127.0.0.1",
        &port,
        "--name",
        "customer",
    ]));
    me.say("我的订单到哪了?");
    assert_eq!(py.out.next().unwrap(), "客户说: 我的订单到哪了?");
    py.out.expect("客户地址");
    py.say("已经发货了");
    assert_eq!(me.out.expect("发货"), "peer> 已经发货了");
    // End of input: we say bye, and the desk closes.
    me.close_stdin();
    assert_eq!(py.out.next().unwrap(), "回复什么给客户端:客户说: bye");
    py.out.expect("服务器端即将推出");
    assert!(me.wait().success());
    assert!(py.wait().success());
}

/// Lesson 10 with the learner's command, `chat --udp listen` (port 0 here
/// instead of the default 8888): the customer speaks first, `bye` ends both.
#[test]
fn the_notes_udp_customer_against_our_chat() {
    if !have_peer("python3") {
        return;
    }
    let (mut me, addr) = Proc::listening(chat(&["--udp", "listen", "0", "-b", "127.0.0.1"]));
    let port = addr.port().to_string();
    let mut py = Proc::spawn(python("lesson10_udp_customer.py", &["127.0.0.1", &port]));
    py.say("你好");
    assert_eq!(me.out.expect("你好"), "peer> 你好");
    me.say("您好, 有什么可以帮您?");
    assert_eq!(
        py.out.next().unwrap(),
        "客户说:客户端接收数据: 您好, 有什么可以帮您?"
    );
    py.say("bye");
    assert!(py.wait().success());
    assert!(me.wait().success());
    me.err.expect("the peer said bye");
}

// --- How lines end, and who is a chat ---------------------------------------------

/// With no `--eol`, lines go out bare until the peer sends a line ending, then
/// end as the peer's do: the notes' programs get bare lines, nc gets `\n`,
/// telnet `\r\n`.
#[test]
fn lines_end_as_the_peer_ends_them() {
    for (peer_line, ending) in [(&b"hi\n"[..], &b"\n"[..]), (b"hi\r\n", b"\r\n")] {
        let (mut a, addr) = listen(&[]);
        let s = util::connect(addr);
        a.err.expect("connected");
        a.say("first");
        assert_eq!(read_n(&s, 5), b"first");
        (&s).write_all(peer_line).unwrap();
        assert_eq!(a.out.next().unwrap(), "peer> hi");
        a.say("second");
        let mut want = b"second".to_vec();
        want.extend_from_slice(ending);
        assert_eq!(read_n(&s, want.len()), want);
        drop(s);
        assert!(a.wait().success());
    }
}

/// What a chat sends to another chat, seen from a socket that says chat's
/// hello itself: the hello is urgent data, then `\n`-ended lines and the name.
#[test]
fn a_chat_is_told_the_name_and_gets_lines() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{MsgFlags, recv, send};
    let (mut a, addr) = listen(&["--name", "alice"]);
    let s = util::connect(addr);
    let fd = s.as_raw_fd();
    // Its hello: one byte of urgent data, which a plain read() skips.
    let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLPRI)];
    assert_eq!(poll(&mut fds, PollTimeout::from(20_000u16)), Ok(1));
    let mut byte = [9u8];
    assert_eq!(recv(fd, &mut byte, MsgFlags::MSG_OOB), Ok(1));
    assert_eq!(byte, [0], "chat's hello");
    // Nothing is told before we say our own hello.
    a.say("unframed");
    assert_eq!(read_n(&s, 8), b"unframed");
    assert_eq!(send(fd, &[0], MsgFlags::MSG_OOB), Ok(1));
    assert_eq!(read_n(&s, 12), b"/nick alice\n");
    a.say("one");
    a.say("two");
    assert_eq!(read_n(&s, 8), b"one\ntwo\n");
    drop(s);
    assert!(a.wait().success());
}

/// Piped lines from one chat to another arrive as separate lines: the first
/// line waits for the other's hello, so they are `\n`-ended, not glued.
#[test]
fn two_chats_frame_piped_lines() {
    let (mut a, addr) = listen(&["--name", "alice"]);
    let target = addr.to_string();
    let out = run(
        chat(&["connect", &target, "--name", "bob"]),
        b"one\ntwo\nthree\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(a.out.next().unwrap(), "bob> one");
    assert_eq!(a.out.next().unwrap(), "bob> two");
    assert_eq!(a.out.next().unwrap(), "bob> three");
    a.err.expect("peer is now known as bob");
    assert!(a.wait().success());
}

/// nc is not a chat: it never sees a /nick, and once it has sent a line our
/// lines end with \n like its own.
#[test]
fn nc_gets_no_name_and_lines_like_its_own() {
    if !have_peer("nc") {
        return;
    }
    let (mut a, addr) = listen(&["--name", "alice"]);
    let port = addr.port().to_string();
    let mut nc = Proc::spawn({
        let mut c = Command::new("nc");
        c.args(["127.0.0.1", &port]);
        c
    });
    nc.say("hi from nc");
    assert_eq!(a.out.next().unwrap(), "peer> hi from nc");
    a.say("hello nc");
    a.say("second");
    assert_eq!(nc.out.next().unwrap(), "hello nc");
    assert_eq!(nc.out.next().unwrap(), "second");
    a.say("bye");
    assert!(a.wait().success());
    nc.close_stdin();
    assert!(nc.wait().success());
    assert!(!nc.out.seen.iter().any(|l| l.contains("/nick")));
}

// --- Ports, help -------------------------------------------------------------------

/// The notes' ports: UDP chat 8888 (lesson 10), TCP chat 8008 (lesson 11).
/// Shown either by listening there or by failing to, if the port is taken.
#[test]
fn each_subcommand_shows_only_its_flags_with_examples() {
    let help = |args: &[&str]| {
        let out = run(chat(args), b"");
        assert!(out.status.success(), "{args:?}");
        text(&out.stdout)
    };
    let room = help(&["room", "--help"]);
    for flag in [
        "--udp",
        "--name",
        "--eol",
        "--quit-word",
        "--hex",
        "--send-hex",
        "--send-encoding",
        "--recv-encoding",
        "--strict-encoding",
        "--timeout",
    ] {
        assert!(
            !room.contains(flag),
            "chat room --help shows {flag}:\n{room}"
        );
    }
    for flag in [
        "--encoding",
        "-4",
        "-6",
        "--bind",
        "--max-users",
        "--verbose",
    ] {
        assert!(room.contains(flag), "chat room --help lacks {flag}");
    }
    for sub in ["listen", "connect"] {
        let h = help(&[sub, "--help"]);
        assert!(h.contains("Examples:\n  chat"), "chat {sub} --help:\n{h}");
        for flag in ["--udp", "--name", "--eol", "--encoding", "--hex"] {
            assert!(h.contains(flag), "chat {sub} --help lacks {flag}");
        }
    }
    assert!(help(&["listen", "--help"]).contains("8888 with --udp"));
    assert!(help(&["connect", "--help"]).contains("--timeout"));
    assert!(!help(&["listen", "--help"]).contains("--timeout"));
    // --udp and the others are refused where they do not apply, by clap, exit 2.
    for args in [
        &["room", "--hex"][..],
        &["--udp", "room"],
        &["room", "--name", "x"],
        &["room", "-vv"],
    ] {
        let out = run(chat(args), b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = run(chat(&["room", "--version"]), b"");
    assert!(
        text(&out.stdout).starts_with(&format!("chat-room {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        text(&out.stdout)
    );
}

// --- On a terminal --------------------------------------------------------------

/// A person at an 80-column terminal: tests/pty/type_in_chat.py runs `chat` in
/// a pseudo-terminal, types keys, and keeps the screen chat draws (with a
/// small terminal emulator), so a test reads rows as a person would.
struct Terminal {
    harness: Proc,
}

impl Terminal {
    /// `chat ARGS` on a terminal; None (test skipped) without python3.
    fn start(args: &[&str]) -> Option<Terminal> {
        if !have_peer("python3") {
            return None;
        }
        let mut c = Command::new("python3");
        c.arg(format!(
            "{}/tests/pty/type_in_chat.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(bin("chat"))
        .args(args);
        Some(Terminal {
            harness: Proc::spawn(c),
        })
    }

    /// `chat ARGS`, then `stty -a` on the same terminal (to see that chat put
    /// it back as it was); the exit code is chat's.
    fn start_then_stty(args: &[&str]) -> Option<Terminal> {
        if !have_peer("python3") || !have_peer("stty") {
            return None;
        }
        let mut c = Command::new("python3");
        c.arg(format!(
            "{}/tests/pty/type_in_chat.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["/bin/sh", "-c", r#""$0" "$@"; rc=$?; stty -a; exit $rc"#])
        .arg(bin("chat"))
        .args(args);
        Some(Terminal {
            harness: Proc::spawn(c),
        })
    }

    /// Press keys (Python escapes: `\r` Enter, `\x1b[D` Left, `\x03` Ctrl-C).
    fn keys(&mut self, keys: &str) {
        self.harness.say(&format!("type {keys}"));
    }

    /// Wait until a row of the screen contains `text`.
    fn wait(&mut self, text: &str) {
        self.harness.say(&format!("wait {text}"));
        assert_eq!(self.harness.out.next().unwrap(), "seen");
    }

    fn read_rows(&mut self) -> Vec<String> {
        let head = self.harness.out.next().unwrap();
        let n: usize = head
            .strip_prefix("rows ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a screen: {head:?}"));
        (0..n)
            .map(|_| {
                let row = self.harness.out.next().unwrap();
                row.strip_prefix("| ").unwrap_or(&row).to_string()
            })
            .collect()
    }

    /// The screen's rows, down to the last non-blank one.
    fn rows(&mut self) -> Vec<String> {
        self.harness.say("rows");
        self.read_rows()
    }

    /// Wait for chat to exit: its exit code and last screen.
    fn exit(&mut self) -> (String, Vec<String>) {
        self.harness.say("exit");
        let code = self.harness.out.next().unwrap();
        (code, self.read_rows())
    }
}

/// A listener for `chat connect` on a terminal, and the connection it accepts.
fn terminal_peer() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

fn accept(listener: &std::net::TcpListener) -> TcpStream {
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    peer
}

/// The issue-13 screen: at 80 columns, 40 Chinese characters after `me> `
/// wrap onto a second row; a message that arrives meanwhile is printed above
/// the whole line, and neither row is left behind. Then the cursor keys:
/// Left, Right, Home, End edit the line, Up recalls the previous one.
#[test]
fn on_a_terminal_a_wrapped_line_survives_messages_and_cursor_keys_work() {
    let (listener, addr) = terminal_peer();
    let Some(mut term) = Terminal::start(&["connect", &addr]) else {
        return;
    };
    let peer = accept(&listener);
    term.wait("connected to");
    let connected = format!("connected to {addr}");
    let typed: String = "汉字".repeat(20);
    let chars: Vec<char> = typed.chars().collect();
    // "me> " is 4 columns, each character 2: 38 of them fill the first row.
    let first_row = format!("me> {}", chars[..38].iter().collect::<String>());
    let second_row: String = chars[38..].iter().collect();
    term.keys(&typed);
    term.wait(&second_row);
    assert_eq!(
        term.rows(),
        [connected.clone(), first_row.clone(), second_row.clone()]
    );
    (&peer).write_all(b"incoming!\n").unwrap();
    term.wait("peer> incoming!");
    assert_eq!(
        term.rows(),
        [
            connected.clone(),
            "peer> incoming!".to_string(),
            first_row.clone(),
            second_row.clone()
        ]
    );
    // The peer ends its lines with \n (like nc), so ours do too now.
    term.keys(r"\r");
    let wire = format!("{typed}\n");
    assert_eq!(text(&read_n(&peer, wire.len())), wire);
    // a, c, Left, b: abc.
    term.keys(r"ac\x1b[Db\r");
    assert_eq!(read_n(&peer, 4), b"abc\n");
    // y, z, Home, x, End, !: xyz!.
    term.keys(r"yz\x1b[Hx\x1b[F!\r");
    assert_eq!(read_n(&peer, 5), b"xyz!\n");
    // Up: the previous line again.
    term.keys(r"\x1b[A\r");
    assert_eq!(read_n(&peer, 5), b"xyz!\n");
    // 1, 3, Left, Left, Right, 2: 123.
    term.keys(r"13\x1b[D\x1b[D\x1b[C2\r");
    assert_eq!(read_n(&peer, 4), b"123\n");
    // Typed ahead, several lines at once (keys that come between two lines
    // are not echoed by the terminal: no ^[[A on screen).
    term.keys(r"one\rtwo\r\x1b[A\r");
    assert_eq!(read_n(&peer, 12), b"one\ntwo\ntwo\n");
    let rows = term.rows();
    // Only the fast path keeps the terminal quiet between two lines (termios,
    // sys::quiet_terminal); std cannot, so the terminal echoes keys typed ahead.
    if !cfg!(feature = "portable") {
        assert_eq!(
            rows[4..],
            [
                "me> abc", "me> xyz!", "me> xyz!", "me> 123", "me> one", "me> two", "me> two",
                "me>"
            ],
            "{rows:#?}"
        );
    }
    // The peer leaves while we are typing: the closing line is a line of its own.
    term.keys("半句话");
    term.wait("me> 半句话");
    drop(peer);
    let (code, rows) = term.exit();
    assert_eq!(code, "exit 0");
    assert_eq!(
        rows[rows.len() - 2..],
        ["me> 半句话", "the peer closed the connection"],
        "{rows:#?}"
    );
}

/// Closing lines land on their own line, never after the half-typed one
/// (Ctrl-C: `interrupted; chat over`; the peer's `bye`); an empty prompt is
/// taken back rather than left above them; a typed quit word stays as typed.
#[test]
fn on_a_terminal_closing_lines_have_a_line_of_their_own() {
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "半句话",
            r"\x03",
            &["小明> 半句话", "interrupted; chat over"],
        ),
        (
            "半句话",
            "peer: bye",
            &["小明> 半句话", "the peer said bye; chat over"],
        ),
        (
            "",
            "peer: bye",
            &["connected to", "the peer said bye; chat over"],
        ),
        ("", r"\x04", &["connected to", "end of input; chat over"]),
        ("bye", r"\r", &["小明> bye", "you said bye; chat over"]),
    ];
    for (typed, then, tail) in cases {
        let (listener, addr) = terminal_peer();
        let Some(mut term) = Terminal::start_then_stty(&["connect", &addr, "--name", "小明"])
        else {
            return;
        };
        let peer = accept(&listener);
        term.wait("connected to");
        term.keys(typed);
        term.wait(format!("小明> {typed}").trim_end());
        match then.strip_prefix("peer: ") {
            Some(words) => (&peer).write_all(words.as_bytes()).unwrap(),
            None => term.keys(then),
        }
        let (code, rows) = term.exit();
        assert_eq!(code, "exit 0", "{typed} {then}");
        let last = rows.iter().position(|r| r == tail[1]);
        // Only the fast path can make the line editor's read return when the
        // peer ends the chat (a signal to its thread, sys::interrupt_thread):
        // the portable one leaves the editor (and its empty prompt, and its
        // raw terminal) as they are.
        let editor_stopped = !(cfg!(feature = "portable") && then.starts_with("peer: "));
        let left_prompt = |row: &str| !editor_stopped && row.starts_with("小明>");
        assert!(
            last.is_some_and(
                |i| i > 0 && (rows[i - 1].starts_with(tail[0]) || left_prompt(&rows[i - 1]))
            ),
            "{typed} {then}: {rows:#?}"
        );
        // The terminal is as chat found it: echo and line editing back on.
        let stty: Vec<&str> = rows[last.unwrap() + 1..]
            .iter()
            .flat_map(|r| r.split([' ', ';']))
            .collect();
        for mode in ["echo", "icanon", "icrnl", "isig"] {
            assert!(
                stty.contains(&mode) || !editor_stopped,
                "{typed} {then}: no {mode} in {stty:?}"
            );
        }
        // Not a chat: the name was never sent, only what was typed.
        drop(listener);
        let mut rest = Vec::new();
        let _ = (&peer).read_to_end(&mut rest);
        let sent = if then == r"\r" { typed } else { "" };
        assert_eq!(text(&rest), sent, "{typed} {then}");
    }
}

/// Issue 12: what a peer sends is shown with invisible and direction-changing
/// characters escaped, so a peer cannot fake a line of ours or of anyone else;
/// nor take our own name (`me> ` starts the lines we type) or an invisible one.
#[test]
fn a_peer_cannot_hide_characters_or_take_our_name() {
    let (mut a, addr) = listen(&[]);
    let s = util::connect(addr);
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    (&s).write_all("ok\u{2028}me> I agree \u{202e}txt.exe\n".as_bytes())
        .unwrap();
    assert_eq!(
        a.out.next().unwrap(),
        "peer> ok\\u{2028}me> I agree \\u{202e}txt.exe"
    );
    (&s).write_all("/nick me\n".as_bytes()).unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> /nick me");
    (&s).write_all("/nick b\u{200b}ob\n".as_bytes()).unwrap();
    assert_eq!(a.out.next().unwrap(), "peer> /nick b\\u{200b}ob");
    (&s).write_all("/nick 小明\n".as_bytes()).unwrap();
    (&s).write_all("你好 👩\u{200d}💻\n".as_bytes()).unwrap();
    assert_eq!(a.out.next().unwrap(), "小明> 你好 👩\u{200d}💻");
    drop(s);
    assert!(a.wait().success());
}

/// Issue 12: in a room, `chat` shows the room's lines as they come; a room
/// that relays invisible characters raw (not ours) still cannot reach the
/// terminal with them.
#[test]
fn room_lines_are_shown_with_invisible_characters_escaped() {
    let (mut a, addr) = listen(&[]);
    let s = util::connect(addr);
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    (&s).write_all(
        "* welcome to the chat room, you are user-1 (x)\nbob> hi\u{2028}alice> send it \u{2067}to me\u{2069}\n"
            .as_bytes(),
    )
    .unwrap();
    assert!(
        a.out
            .next()
            .unwrap()
            .starts_with("* welcome to the chat room")
    );
    assert_eq!(
        a.out.next().unwrap(),
        "bob> hi\\u{2028}alice> send it \\u{2067}to me\\u{2069}"
    );
    drop(s);
    assert!(a.wait().success());
}

/// What a peer behind a network that clears TCP's urgent flag would see:
/// the hello as a NUL in front of the first line (here SO_OOBINLINE puts it
/// inline). `--no-hello` sends only what was typed.
#[test]
fn no_hello_sends_only_what_was_typed() {
    for (extra, want) in [(None, &b"\0hi"[..]), (Some("--no-hello"), b"hi")] {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.set_out_of_band_inline(true).unwrap();
        listener
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(1).unwrap();
        let port = listener
            .local_addr()
            .unwrap()
            .as_socket()
            .unwrap()
            .port()
            .to_string();
        let mut args = vec!["connect", "127.0.0.1", &port];
        args.extend(extra);
        let mut c = chat(&args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let (peer, _) = listener.accept().unwrap();
        let peer: TcpStream = peer.into();
        peer.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hi\n").unwrap();
        drop(stdin);
        let mut got = Vec::new();
        let _ = (&peer).read_to_end(&mut got);
        drop(peer);
        wait_timeout(&mut child, TIMEOUT).expect("chat ends");
        assert_eq!(got, want, "{extra:?}");
    }
}
