//! End-to-end tests of `chat listen` / `chat connect` (lessons 10 and 11): two
//! of our processes driven through pipes, plain sockets as peers, and the
//! notes' own turn-taking Python programs.

mod util;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::Duration;

use util::*;

fn chat(args: &[&str]) -> Command {
    cmd("chat", args)
}

/// `chat listen` on a free loopback port, plus its address.
fn listen(extra: &[&str]) -> (Process, std::net::SocketAddr) {
    let p = Process::listening(server_cmd("chat listen", extra));
    let addr = p.addr();
    (p, addr)
}

/// `chat listen`, and a plain socket (with timeouts) as its peer.
fn listen_to_socket(extra: &[&str]) -> (Process, TcpStream) {
    let (p, addr) = listen(extra);
    (p, util::connect(addr))
}

/// The socket peer leaves: chat ends, with exit 0.
fn hang_up(chat: &mut Process, s: TcpStream) {
    drop(s);
    assert!(chat.wait().success());
}

/// `speaker` types `line`; the next line `listener` shows is `shown`.
fn turn(speaker: &mut Process, line: &str, listener: &mut Process, shown: &str) {
    speaker.say(line);
    let next = listener.out().next();
    assert_eq!(next.as_deref(), Some(shown), "after {line:?}");
}

/// `first` ends, then `then`, both with exit 0.
fn both_end(first: &mut Process, then: &mut Process) {
    assert!(first.wait().success(), "{}", first.what);
    assert!(then.wait().success(), "{}", then.what);
}

/// `chat --udp listen` on a free loopback port.
fn listen_udp(extra: &[&str]) -> Process {
    Process::listening(server_cmd("chat --udp listen", extra))
}

fn connect(addr: std::net::SocketAddr, extra: &[&str]) -> Process {
    let target = addr.to_string();
    let mut args = vec!["connect", target.as_str()];
    args.extend_from_slice(extra);
    Process::spawn(chat(&args))
}

fn recv_text(s: &UdpSocket) -> String {
    text(&recv_from(s).0)
}

#[test]
fn two_chats_talk_both_ways_and_bye_ends_both() {
    let (mut a, addr) = listen(&[]);
    let mut b = connect(addr, &[]);
    a.err().expect("connected");
    turn(&mut b, "hi from B", &mut a, "peer> hi from B");
    a.say("你好, B");
    a.say("second line before any answer");
    assert_eq!(b.out().expect("你好"), "peer> 你好, B");
    assert_eq!(
        b.out().next().unwrap(),
        "peer> second line before any answer"
    );
    a.say("bye");
    assert!(b.wait().success());
    b.err().expect("the peer said bye");
    assert!(a.wait().success());
    a.err().expect("you said bye");
    assert!(!a.out().rest().iter().any(|l| l.contains("bye")));
}

#[test]
fn a_name_is_announced_and_used() {
    let (mut a, addr) = listen(&["--name", "alice"]);
    let mut b = connect(addr, &["--name", "小黑"]);
    turn(&mut b, "hello", &mut a, "小黑> hello");
    a.err().expect("peer is now known as 小黑");
    turn(&mut a, "hi", &mut b, "alice> hi");
    a.close_stdin();
    both_end(&mut a, &mut b);
    b.err().expect("the peer closed the connection");
}

#[test]
fn end_of_input_sends_what_was_read_then_ends_both() {
    let (mut a, addr) = listen(&[]);
    let mut b = connect(addr, &[]);
    b.say("one");
    b.say("two");
    b.close_stdin();
    both_end(&mut b, &mut a);
    assert_eq!(a.out().rest(), vec!["peer> one", "peer> two"]);
    a.err().expect("the peer closed the connection");
}

#[test]
fn a_chunk_without_newline_is_one_message_and_disconnect_exits_0() {
    let (mut a, s) = listen_to_socket(&[]);
    send_all(&s, b"no newline");
    assert_eq!(a.out().next().unwrap(), "peer> no newline");
    send_all(&s, b"\x1b[2Jclear\tscreen\r\n");
    assert_eq!(a.out().next().unwrap(), "peer> \\x1b[2Jclear\tscreen");
    hang_up(&mut a, s);
    a.err().expect("the peer closed the connection");
}

#[test]
fn eol_none_and_crlf_on_the_wire() {
    for (eol, wire) in [
        ("none", &b"hello"[..]),
        ("crlf", b"hello\r\n"),
        ("lf", b"hello\n"),
    ] {
        let (mut a, mut s) = listen_to_socket(&["--eol", eol]);
        a.err().expect("connected");
        a.say("hello");
        assert_eq!(read_n(&s, wire.len()), wire, "--eol {eol}");
        a.close_stdin();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "--eol {eol}: {rest:?}");
        hang_up(&mut a, s);
    }
}

#[test]
fn gbk_both_ways() {
    let (mut a, s) = listen_to_socket(&["-e", "gbk"]);
    send_all(&s, b"\xc4\xe3\xba\xc3\n");
    assert_eq!(a.out().next().unwrap(), "peer> 你好");
    a.say("我是服务器");
    assert_eq!(
        read_n(&s, 11),
        b"\xce\xd2\xca\xc7\xb7\xfe\xce\xf1\xc6\xf7\n"
    );
    hang_up(&mut a, s);
}

#[test]
fn received_quit_word_ends_the_chat_and_extra_quit_words_work() {
    let (mut a, s) = listen_to_socket(&["--quit-word", "再见"]);
    send_all(&s, "first\n再见\nnot shown\n".as_bytes());
    assert!(a.wait().success());
    assert_eq!(a.out().rest(), vec!["peer> first"]);
    a.err().expect("the peer said 再见");
}

#[test]
fn only_one_peer_is_taken() {
    let (mut a, addr) = listen(&[]);
    let _first = util::connect(addr);
    a.err().expect("connected");
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
        a.out().expect("ping");
        let took = a.stop(sig);
        assert!(took < Duration::from_secs(5), "SIG{sig}: took {took:?}");
        let status = b.wait();
        assert!(status.success(), "SIG{sig}: peer's exit status {status:?}");
        b.err().expect("the peer closed the connection");
    }
}

#[test]
fn ctrl_c_or_sigterm_while_waiting_for_a_peer_exits_0() {
    for sig in ["INT", "TERM"] {
        let (mut a, _) = listen(&[]);
        a.stop(sig);
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
    failed(&out, 2, "invalid --name");
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
    let mut a = listen_udp(&[]);
    let addr = a.addr();
    let mut b = connect(addr, &["--udp"]);
    turn(&mut b, "在吗?", &mut a, "peer> 在吗?");
    turn(&mut a, "在的, 请讲", &mut b, "peer> 在的, 请讲");
    b.say("bye");
    both_end(&mut b, &mut a);
    a.err().expect("the peer said bye");
}

#[test]
fn udp_datagrams_are_messages_answered_as_they_end() {
    let mut a = listen_udp(&[]);
    let addr = a.addr();
    a.say("too early");
    a.err().expect("nobody has written yet");
    // A datagram ending in \n (nc -u) gets answers ending in \n; one
    // without (the notes' programs, another chat) answers without.
    let first = udp_socket();
    first.send_to(b"one\n", addr).unwrap();
    assert_eq!(a.out().next().unwrap(), "peer> one");
    a.say("answer 1");
    assert_eq!(recv_text(&first), "answer 1\n");
    // Whoever wrote last gets the answer.
    let second = udp_socket();
    second.send_to("二".as_bytes(), addr).unwrap();
    assert_eq!(a.out().next().unwrap(), "peer> 二");
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
    let mut a = listen_udp(&["--name", "客服"]);
    let addr = a.addr();
    a.err().expect("over UDP --name only labels your own lines");
    for who in ["first", "second"] {
        let s = udp_socket();
        s.send_to(who.as_bytes(), addr).unwrap();
        a.out().expect(who);
        a.say(&format!("hello {who}"));
        assert_eq!(recv_text(&s), format!("hello {who}"));
    }
}

// --- The notes' own programs ------------------------------------------------------

/// One of the notes' programs, unbuffered, typed into: a server once it
/// listens, or a client of `server` on 127.0.0.1. None (skip the test)
/// without python3.
fn notes_program(script: &str, server: Option<std::net::SocketAddr>) -> Option<Process> {
    let mut c = course_python(script)?;
    Some(match server {
        None => Process::listening(c),
        Some(addr) => Process::spawn({
            c.args(["127.0.0.1", &addr.port().to_string()]);
            c
        }),
    })
}

/// Lesson 11, the learner's command with no flags: `chat connect HOST PORT`
/// against the notes' server. We speak first, bare (the server compares a
/// whole recv() with 'exit'), and even with `--name` it never sees a `/nick`.
#[test]
fn our_chat_against_the_notes_tcp_server() {
    for extra in [&[][..], &["--name", "bob"]] {
        let Some(mut py) = notes_program("lesson11_chat_server.py", None) else {
            return;
        };
        let port = py.addr().port().to_string();
        let mut args = vec!["connect", "127.0.0.1", port.as_str()];
        args.extend_from_slice(extra);
        let mut me = Process::spawn(chat(&args));
        me.say("你好, 我是客户端");
        assert_eq!(
            py.out().next().unwrap(),
            "客户端： 你好, 我是客户端",
            "{extra:?}"
        );
        turn(&mut py, "hello client", &mut me, "peer> hello client");
        turn(
            &mut me,
            "second message",
            &mut py,
            "send:客户端： second message",
        );
        py.say("ok");
        me.out().expect("ok");
        turn(&mut me, "exit", &mut py, "send:客户端： exit");
        assert_eq!(py.out().next().unwrap(), "客户端已经退出！");
        assert!(me.wait().success());
        me.err().expect("you said exit");
        py.signal("KILL");
    }
}

/// Lesson 11 the other way round: the notes' client speaks first, to
/// `chat listen` with no flags; our answers arrive bare, so its `exit` and its
/// display work, and `--name` is not sent to it.
#[test]
fn the_notes_tcp_client_against_our_chat() {
    for extra in [&[][..], &["--name", "alice"]] {
        let (mut me, addr) = listen(extra);
        let Some(mut py) = notes_program("lesson11_chat_client.py", Some(addr)) else {
            return;
        };
        turn(&mut py, "你好服务器", &mut me, "peer> 你好服务器");
        me.say("你好客户端");
        assert_eq!(
            py.out().next().unwrap(),
            "send:服务器： 你好客户端",
            "{extra:?}"
        );
        py.say("again");
        me.out().expect("again");
        turn(
            &mut me,
            "second answer",
            &mut py,
            "send:服务器： second answer",
        );
        py.say("exit");
        assert!(me.wait().success());
        me.err().expect("the peer said exit");
        assert!(py.wait().success());
    }
}

#[test]
fn our_udp_chat_against_the_notes_service_desk() {
    let Some(mut py) = notes_program("lesson10_udp_service.py", None) else {
        return;
    };
    let port = py.addr().port().to_string();
    let mut me = Process::spawn(chat(&[
        "--udp",
        "connect",
        "127.0.0.1",
        &port,
        "--name",
        "customer",
    ]));
    turn(
        &mut me,
        "我的订单到哪了?",
        &mut py,
        "客户说: 我的订单到哪了?",
    );
    py.out().expect("客户地址");
    turn(&mut py, "已经发货了", &mut me, "peer> 已经发货了");
    // End of input: we say bye, and the desk closes.
    me.close_stdin();
    assert_eq!(py.out().next().unwrap(), "回复什么给客户端:客户说: bye");
    py.out().expect("服务器端即将推出");
    both_end(&mut me, &mut py);
}

/// Lesson 10 with the learner's command, `chat --udp listen` (port 0 here
/// instead of the default 8888): the customer speaks first, `bye` ends both.
#[test]
fn the_notes_udp_customer_against_our_chat() {
    let mut me = listen_udp(&[]);
    let Some(mut py) = notes_program("lesson10_udp_customer.py", Some(me.addr())) else {
        return;
    };
    turn(&mut py, "你好", &mut me, "peer> 你好");
    me.say("您好, 有什么可以帮您?");
    assert_eq!(
        py.out().next().unwrap(),
        "客户说:客户端接收数据: 您好, 有什么可以帮您?"
    );
    py.say("bye");
    both_end(&mut py, &mut me);
    me.err().expect("the peer said bye");
}

// --- How lines end, and who is a chat ---------------------------------------------

/// With no `--eol`, lines go out bare until the peer sends a line ending, then
/// end as the peer's do: the notes' programs get bare lines, nc gets `\n`,
/// telnet `\r\n`.
#[test]
fn lines_end_as_the_peer_ends_them() {
    for (peer_line, ending) in [(&b"hi\n"[..], &b"\n"[..]), (b"hi\r\n", b"\r\n")] {
        let (mut a, s) = listen_to_socket(&[]);
        a.err().expect("connected");
        a.say("first");
        assert_eq!(read_n(&s, 5), b"first");
        send_all(&s, peer_line);
        assert_eq!(a.out().next().unwrap(), "peer> hi");
        a.say("second");
        let mut want = b"second".to_vec();
        want.extend_from_slice(ending);
        assert_eq!(read_n(&s, want.len()), want);
        hang_up(&mut a, s);
    }
}

/// What a chat sends to another chat, seen from a socket that says chat's
/// hello itself: the hello is urgent data, then `\n`-ended lines and the name.
#[test]
fn a_chat_is_told_the_name_and_gets_lines() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{MsgFlags, recv, send};
    let (mut a, s) = listen_to_socket(&["--name", "alice"]);
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
    hang_up(&mut a, s);
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
    succeeded(&out);
    assert_eq!(a.out().next().unwrap(), "bob> one");
    assert_eq!(a.out().next().unwrap(), "bob> two");
    assert_eq!(a.out().next().unwrap(), "bob> three");
    a.err().expect("peer is now known as bob");
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
    let mut nc = Process::spawn({
        let mut c = peer_cmd("nc");
        c.args(["127.0.0.1", &port]);
        c
    });
    turn(&mut nc, "hi from nc", &mut a, "peer> hi from nc");
    a.say("hello nc");
    turn(&mut a, "second", &mut nc, "hello nc");
    assert_eq!(nc.out().next().unwrap(), "second");
    a.say("bye");
    assert!(a.wait().success());
    nc.close_stdin();
    assert!(nc.wait().success());
    assert!(!nc.out().seen.iter().any(|l| l.contains("/nick")));
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

/// A person at an 80-column terminal ([`on_a_terminal`]), with the screen
/// chat draws (kept by a small terminal emulator).
struct Terminal {
    harness: Process,
}

impl Terminal {
    /// `chat ARGS` on a terminal; None (test skipped) without python3.
    fn start(args: &[&str]) -> Option<Terminal> {
        let harness = on_a_terminal(&[], "chat", args)?;
        Some(Terminal { harness })
    }

    /// `chat ARGS`, then `stty -a` on the same terminal (to see that chat put
    /// it back as it was); the exit code is chat's.
    fn start_then_stty(args: &[&str]) -> Option<Terminal> {
        if !have_peer("stty") {
            return None;
        }
        let then_stty = ["/bin/sh", "-c", r#""$0" "$@"; rc=$?; stty -a; exit $rc"#];
        let harness = on_a_terminal(&then_stty, "chat", args)?;
        Some(Terminal { harness })
    }

    /// Press keys (Python escapes: `\r` Enter, `\x1b[D` Left, `\x03` Ctrl-C).
    fn keys(&mut self, keys: &str) {
        self.harness.say(&format!("type {keys}"));
    }

    /// Wait until a row of the screen contains `text`.
    fn wait(&mut self, text: &str) {
        self.harness.say(&format!("wait {text}"));
        assert_eq!(self.harness.out().next().unwrap(), "seen");
    }

    fn read_rows(&mut self) -> Vec<String> {
        let head = self.harness.out().next().unwrap();
        let n: usize = head
            .strip_prefix("rows ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a screen: {head:?}"));
        (0..n)
            .map(|_| {
                let row = self.harness.out().next().unwrap();
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
        let code = self.harness.out().next().unwrap();
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
    send_all(&peer, b"incoming!\n");
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
    let (mut a, s) = listen_to_socket(&[]);
    send_all(&s, "ok\u{2028}me> I agree \u{202e}txt.exe\n".as_bytes());
    assert_eq!(
        a.out().next().unwrap(),
        "peer> ok\\u{2028}me> I agree \\u{202e}txt.exe"
    );
    send_all(&s, "/nick me\n".as_bytes());
    assert_eq!(a.out().next().unwrap(), "peer> /nick me");
    send_all(&s, "/nick b\u{200b}ob\n".as_bytes());
    assert_eq!(a.out().next().unwrap(), "peer> /nick b\\u{200b}ob");
    send_all(&s, "/nick 小明\n".as_bytes());
    send_all(&s, "你好 👩\u{200d}💻\n".as_bytes());
    assert_eq!(a.out().next().unwrap(), "小明> 你好 👩\u{200d}💻");
    hang_up(&mut a, s);
}

/// Issue 12: in a room, `chat` shows the room's lines as they come; a room
/// that relays invisible characters raw (not ours) still cannot reach the
/// terminal with them.
#[test]
fn room_lines_are_shown_with_invisible_characters_escaped() {
    let (mut a, s) = listen_to_socket(&[]);
    send_all(
        &s,
        "* welcome to the chat room, you are user-1 (x)\nbob> hi\u{2028}alice> send it \u{2067}to me\u{2069}\n"
            .as_bytes(),
    );
    assert!(
        a.out()
            .next()
            .unwrap()
            .starts_with("* welcome to the chat room")
    );
    assert_eq!(
        a.out().next().unwrap(),
        "bob> hi\\u{2028}alice> send it \\u{2067}to me\\u{2069}"
    );
    hang_up(&mut a, s);
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
        let mut chat = Process::new(c);
        let (peer, _) = listener.accept().unwrap();
        let peer: TcpStream = peer.into();
        peer.set_read_timeout(Some(TIMEOUT)).unwrap();
        chat.say("hi");
        chat.close_stdin();
        let mut got = Vec::new();
        let _ = (&peer).read_to_end(&mut got);
        drop(peer);
        chat.wait();
        assert_eq!(got, want, "{extra:?}");
    }
}
