//! End-to-end tests of tftp-serve, tftp-get and tftp-put (lesson 12): interop with
//! tftp-hpa, tftpd-hpa, atftp, curl, busybox and the notes' own Python scripts, the
//! command lines' behaviour, and the server's safety rules, driven with hand-built packets.

mod util;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use socktools::tftp::client;
use socktools::tftp::packet::Request;
use socktools::tftp::{Mode, Packet};
use tempfile::TempDir;
use util::*;

/// A file of about 1.5 MiB whose last block is partial for every block size used here.
const BIG: usize = (3 << 19) + 777;

// --- Files and directories ------------------------------------------------------

/// A temporary directory holding `files` (names may contain `/`).
fn dir_with(files: &[(&str, &[u8])]) -> TempDir {
    let dir = TempDir::new().unwrap();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
    }
    dir
}

/// Names in `dir`, sorted (hidden temporary files included).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The file at `path` holds exactly `want` (without printing megabytes on failure).
fn assert_file(path: &Path, want: &[u8]) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "{}: {} bytes, expected {}; first difference at {first_diff:?}",
        path.display(),
        got.len(),
        want.len()
    );
}

/// Polls `done` until it holds, for at most `TIMEOUT`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Text with `\n`, `\r\n`, lone `\r`s and `\r\r`, long enough for conversions to
/// straddle block boundaries, ending in a lone `\r`.
fn netascii_sample() -> Vec<u8> {
    let mut t = String::new();
    for i in 0..3000 {
        t.push_str(&format!("line {i}\n"));
        if i % 7 == 0 {
            t.push_str("dos line\r\n");
        }
        if i % 11 == 0 {
            t.push_str("bare\rcr\r\r\n\n");
        }
    }
    t.push('\r');
    t.into_bytes()
}

// --- Running programs -----------------------------------------------------------

/// One of our binaries, run in `cwd` with nothing on stdin.
fn tool(name: &str, args: &[&str], cwd: &Path) -> Output {
    let mut c = cmd(name, args);
    c.current_dir(cwd);
    run(c, b"")
}

/// A peer program run in `cwd`; it must exit 0.
fn peer(program: &str, args: &[&str], cwd: &Path) -> Output {
    let mut c = peer_cmd(program);
    c.args(args).current_dir(cwd);
    let out = run(c, b"");
    succeeded(&out);
    out
}

/// tftp-serve on `root`, any free port on 127.0.0.1, with `flags`.
fn serve(root: &Path, flags: &[&str]) -> Process {
    serve_on("127.0.0.1", root, flags)
}

/// tftp-serve on `root`, any free port on `bind`, with `flags`.
fn serve_on(bind: &str, root: &Path, flags: &[&str]) -> Process {
    let root = root.to_str().unwrap();
    let mut c = cmd("tftp-serve", &[root, "--port", "0", "--bind", bind]);
    c.args(flags);
    Process::serving(c)
}

/// [`served`] with `--allow-write`, for a test of peer program `peer`; None
/// (skip the test) if it is not installed.
fn served_to(peer: &str, files: &[(&str, &[u8])]) -> Option<(TempDir, Process, TempDir)> {
    have_peer(peer).then(|| served(files, &["--allow-write"]))
}

/// A file's bytes, the directory serving it, the server, a work directory.
type BigServed = (Vec<u8>, TempDir, Process, TempDir);

/// `big.bin` ([`BIG`] bytes of noise from `seed`) [`served_to`] peer `peer`.
fn big_file_for(peer: &str, seed: u64) -> Option<BigServed> {
    let big = noise(BIG, seed);
    let (root, srv, work) = served_to(peer, &[("big.bin", &big)])?;
    Some((big, root, srv, work))
}

/// A directory holding `files`, tftp-serve on it with `flags`, and an empty work directory.
fn served(files: &[(&str, &[u8])], flags: &[&str]) -> (TempDir, Process, TempDir) {
    let root = dir_with(files);
    let srv = serve(root.path(), flags);
    (root, srv, TempDir::new().unwrap())
}

/// tftp-get with `args`, run in `cwd`, succeeds and leaves exactly `want` in `cwd/local`.
fn fetch(cwd: &Path, args: &[&str], local: &str, want: &[u8]) {
    succeeded(&tool("tftp-get", args, cwd));
    assert_file(&cwd.join(local), want);
}

/// tftp-put with `args`, run in `cwd`, succeeds and leaves exactly `want` at `dest`.
fn upload(cwd: &Path, args: &[&str], dest: &Path, want: &[u8]) {
    succeeded(&tool("tftp-put", args, cwd));
    assert_file(dest, want);
}

// --- Packets by hand ------------------------------------------------------------

/// An RRQ (or WRQ) packet.
fn request(write: bool, name: &[u8], mode: Mode, options: &[(&str, &str)]) -> Vec<u8> {
    let req = Request {
        filename: Cow::Borrowed(name),
        mode,
        options: options
            .iter()
            .map(|(n, v)| (Cow::Borrowed(n.as_bytes()), Cow::Borrowed(v.as_bytes())))
            .collect(),
    };
    if write {
        Packet::Wrq(req).encode()
    } else {
        Packet::Rrq(req).encode()
    }
}

/// A plain octet read request, as the notes' client sends it.
fn rrq(name: &str) -> Vec<u8> {
    request(false, name.as_bytes(), Mode::Octet, &[])
}

/// A plain octet write request.
fn wrq(name: &str) -> Vec<u8> {
    request(true, name.as_bytes(), Mode::Octet, &[])
}

/// A DATA packet.
fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
    Packet::Data { block, data: bytes }.encode()
}

/// The code and message of an ERROR packet, or `None` for any other packet.
fn error_of(bytes: &[u8]) -> Option<(u16, String)> {
    match Packet::parse(bytes) {
        Ok(Packet::Error { code, message }) => Some((code.code(), message.into_owned())),
        _ => None,
    }
}

/// The message of the first ERROR that comes to `sock`, other packets passed over.
fn next_error_message(sock: &UdpSocket) -> String {
    loop {
        if let Some((_, message)) = error_of(&recv_from(sock).0) {
            return message;
        }
    }
}

/// The block number of an ACK.
fn ack_of(bytes: &[u8]) -> Option<u16> {
    match Packet::parse(bytes) {
        Ok(Packet::Ack { block }) => Some(block),
        _ => None,
    }
}

/// Asks the server at `addr` for `f.bin` from `sock` and waits for DATA 1;
/// returns the transfer ID it came from.
fn request_file(sock: &UdpSocket, addr: SocketAddr) -> SocketAddr {
    sock.send_to(&rrq("f.bin"), addr).unwrap();
    let (first, tid) = recv_from(sock);
    assert!(
        matches!(Packet::parse(&first), Ok(Packet::Data { block: 1, .. })),
        "{first:?}"
    );
    tid
}

/// Waits for ACK `block` on `sock`; returns its sender.
fn expect_ack(sock: &UdpSocket, block: u16) -> SocketAddr {
    let (answer, from) = recv_from(sock);
    assert_eq!(ack_of(&answer), Some(block), "{answer:?}");
    from
}

/// Sends `packet` to the server at `addr` and checks that the answer is ERROR
/// `code`, with nothing before it (no DATA, no OACK) and nothing after it.
/// Returns the error message.
fn expect_error(addr: SocketAddr, packet: &[u8], code: u16) -> String {
    let sock = udp_socket();
    sock.send_to(packet, addr).unwrap();
    let (answer, _) = recv_from(&sock);
    let (got, message) = error_of(&answer)
        .unwrap_or_else(|| panic!("expected ERROR {code}, got {:?}", Packet::parse(&answer)));
    assert_eq!(got, code, "ERROR {got} ({message}) instead of ERROR {code}");
    sock.set_nonblocking(true).unwrap();
    let after = sock.recv_from(&mut [0u8; 600]);
    assert!(
        matches!(&after, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "something came after the ERROR: {after:?}"
    );
    message
}

/// Finishes a lock-step (512-byte, no options) download from transfer ID `tid`
/// whose first DATA was `first`: ACKs every block, returns the file.
fn finish_lockstep(sock: &UdpSocket, tid: SocketAddr, first: Vec<u8>) -> Vec<u8> {
    let mut file = Vec::new();
    let mut expected = 1u16;
    let mut packet = first;
    loop {
        let Ok(Packet::Data { block, data }) = Packet::parse(&packet) else {
            panic!("expected DATA {expected}, got {:?}", Packet::parse(&packet));
        };
        // A repeated block is ACKed again too, in case our ACK was slow.
        sock.send_to(&Packet::ack(block), tid).unwrap();
        if block == expected {
            file.extend_from_slice(data);
            if data.len() < 512 {
                return file;
            }
            expected += 1;
        }
        let (next, from) = recv_from(sock);
        assert_eq!(from, tid);
        packet = next;
    }
}

// --- 1. Other clients against tftp-serve ---------------------------------------

#[test]
fn tftp_hpa_client_gets_binary_and_netascii_and_puts() {
    // 2 MiB is a multiple of 512: the transfer ends with an empty block.
    let big = noise(2 << 20, 1);
    let notes = netascii_sample();
    let files = [("big.bin", &big[..]), ("notes.txt", &notes)];
    let Some((root, srv, work)) = served_to("tftp", &files) else {
        return;
    };
    let port = srv.addr().port().to_string();
    let hpa = |args: &[&str]| {
        peer(
            "tftp",
            &[&["127.0.0.1", &port][..], args].concat(),
            work.path(),
        )
    };

    hpa(&["-m", "binary", "-c", "get", "big.bin", "big.bin"]);
    assert_file(&work.path().join("big.bin"), &big);
    // netascii, tftp-hpa's default: \r\n and \r\0 on the wire, the original on disk.
    hpa(&["-m", "netascii", "-c", "get", "notes.txt", "notes.txt"]);
    assert_file(&work.path().join("notes.txt"), &notes);
    hpa(&["-m", "binary", "-c", "put", "big.bin", "up.bin"]);
    assert_file(&root.path().join("up.bin"), &big);
}

#[test]
fn atftp_gets_with_big_blocks_and_window_and_puts() {
    let Some((big, root, mut srv, work)) = big_file_for("atftp", 2) else {
        return;
    };
    let port = srv.addr().port().to_string();
    peer(
        "atftp",
        &[
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "big.bin",
            "-l",
            "got.bin",
            "127.0.0.1",
            &port,
        ],
        work.path(),
    );
    assert_file(&work.path().join("got.bin"), &big);
    srv.err().expect("options: blksize=1468 windowsize=8");
    peer(
        "atftp",
        &["-p", "-r", "up.bin", "-l", "got.bin", "127.0.0.1", &port],
        work.path(),
    );
    assert_file(&root.path().join("up.bin"), &big);
}

#[test]
fn curl_gets_with_and_without_options_and_puts() {
    let Some((big, root, mut srv, work)) = big_file_for("curl", 3) else {
        return;
    };
    let url = format!("tftp://{}/big.bin", srv.addr());
    for (local, flags) in [
        ("default.bin", &[][..]),
        ("plain.bin", &["--tftp-no-options"][..]),
        ("big-blocks.bin", &["--tftp-blksize", "8192"][..]),
    ] {
        let args = [&["-sS", &url, "-o", local][..], flags].concat();
        peer("curl", &args, work.path());
        assert_file(&work.path().join(local), &big);
    }
    srv.err().expect("blksize=8192");
    let up = format!("tftp://{}/up.bin", srv.addr());
    peer("curl", &["-sS", "-T", "plain.bin", &up], work.path());
    assert_file(&root.path().join("up.bin"), &big);
}

#[test]
fn busybox_tftp_gets_and_puts_with_blksize() {
    let Some((big, root, srv, work)) = big_file_for("busybox", 4) else {
        return;
    };
    let port = srv.addr().port().to_string();
    let bb = |dir: &str, remote: &str| {
        let args = [
            "tftp",
            dir,
            "-r",
            remote,
            "-l",
            "got.bin",
            "-b",
            "1468",
            "127.0.0.1",
            &port,
        ];
        peer("busybox", &args, work.path())
    };
    bb("-g", "big.bin");
    assert_file(&work.path().join("got.bin"), &big);
    bb("-p", "up.bin");
    assert_file(&root.path().join("up.bin"), &big);
}

// --- 2. Our clients against tftpd-hpa ------------------------------------------

#[test]
fn our_clients_against_tftpd_hpa() {
    if !have_tftpd() {
        return;
    }
    let big = noise(BIG, 5);
    let notes = netascii_sample();
    let root = dir_with(&[("big.bin", &big), ("notes.txt", &notes)]);
    let server = tftpd(root.path(), true);
    let addr = server.addr().to_string();
    let work = TempDir::new().unwrap();
    for (local, flags) in [
        ("default.bin", &[][..]),
        ("plain.bin", &["--no-options"][..]),
        ("lockstep.bin", &["-B", "512", "-W", "1"][..]),
    ] {
        let args = [&[&addr, "big.bin", "-o", local][..], flags].concat();
        fetch(work.path(), &args, local, &big);
    }
    let args = [&addr, "notes.txt", "-m", "netascii", "-o", "notes.txt"];
    fetch(work.path(), &args, "notes.txt", &notes);
    let args = [&addr, "default.bin", "uploaded.bin"];
    upload(work.path(), &args, &root.path().join("uploaded.bin"), &big);

    let before = listing(work.path());
    let out = tool("tftp-get", &[&addr, "missing.bin"], work.path());
    failed(&out, 1, "server error 1");
    assert_eq!(listing(work.path()), before, "no missing.bin, no .part");
}

// --- 3. The notes' Python scripts ----------------------------------------------

#[test]
fn our_client_falls_back_for_notes_python_server() {
    let Some(mut py) = course_python("lesson12_tftp_server.py") else {
        return;
    };
    let file = noise((1 << 20) + 300, 6);
    let root = dir_with(&[("lesson.bin", &file)]);
    // It serves files from its cwd; its stdout (a line per ACK) is not needed.
    py.current_dir(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let py = Process::serve(py, false);
    let addr = py.addr().to_string();
    let work = TempDir::new().unwrap();
    // No flags: the server ignores our request with options; we must ask again without.
    let started = Instant::now();
    fetch(work.path(), &[&addr, "lesson.bin"], "lesson.bin", &file);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    // Its "file not found" is ERROR 5 "error", as the notes wrote it.
    let out = tool("tftp-get", &[&addr, "missing.bin"], work.path());
    failed(
        &out,
        1,
        "server error 5 (unknown transfer ID): error (the course's server sends this for a missing file)",
    );
    assert_eq!(listing(work.path()), ["lesson.bin"]);
}

#[test]
fn notes_python_client_downloads_from_our_server() {
    if !have_peer("python3") {
        return;
    }
    let file = noise((1 << 20) + 100, 7);
    let (_root, mut srv, _) = served(&[("lesson.bin", &file)], &[]);
    let port = srv.addr().port().to_string();
    let notes_client = |name: &str| {
        let work = TempDir::new().unwrap();
        let mut py = course_python("lesson12_tftp_client.py").expect("python3");
        py.args(["127.0.0.1", &port, name]).current_dir(work.path());
        let out = run(py, b"");
        succeeded(&out);
        let saved = fs::read(work.path().join(format!("client_{name}"))).unwrap();
        (text(&out.stdout), saved)
    };
    let (said, saved) = notes_client("missing.bin");
    assert!(said.contains("你要下载的文件不存在"), "{said}");
    assert!(saved.is_empty());
    for _ in 0..2 {
        let (said, saved) = notes_client("lesson.bin");
        assert!(said.contains("客户端下载成功"), "{said}");
        assert!(saved == file, "client_lesson.bin: {} bytes", saved.len());
        // It never ACKs the last block; the server goes on serving meanwhile...
    }
    // ...and, after a few tries, counts the file as sent rather than failed.
    srv.err().expect("sent (final ACK never came)");
    srv.err().expect("sent (final ACK never came)");
}

// --- 4. Command lines -----------------------------------------------------------

#[test]
fn get_to_stdout_writes_the_file_and_nothing_else() {
    let file = noise(BIG, 8);
    let (_root, srv, work) = served(&[("f.bin", &file)], &[]);
    let out = tool(
        "tftp-get",
        &[&srv.addr().to_string(), "f.bin", "-o", "-"],
        work.path(),
    );
    succeeded(&out);
    assert!(out.stdout == file, "stdout: {} bytes", out.stdout.len());
    assert!(listing(work.path()).is_empty());
}

#[test]
fn get_saves_under_the_remote_base_name_in_cwd() {
    let file = noise(50_000, 9);
    let (_root, srv, work) = served(&[("sub/x.bin", &file)], &[]);
    let args = [&srv.addr().to_string(), "sub/x.bin"];
    fetch(work.path(), &args, "x.bin", &file);
    assert_eq!(listing(work.path()), ["x.bin"]);
}

#[test]
fn failed_get_leaves_existing_local_file_untouched() {
    let work = dir_with(&[("keep.bin", b"precious")]);
    // File not found.
    let root = TempDir::new().unwrap();
    let srv = serve(root.path(), &[]);
    let out = tool(
        "tftp-get",
        &[&srv.addr().to_string(), "missing.bin", "-o", "keep.bin"],
        work.path(),
    );
    failed(&out, 1, "server error 1");
    assert_eq!(listing(work.path()), ["keep.bin"]);
    assert_file(&work.path().join("keep.bin"), b"precious");

    // A server that dies mid-transfer: it sends DATA 1, takes ACK 1, then is gone.
    let request_port = udp_socket();
    let addr = request_port.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (_request, client) = recv_from(&request_port);
        let tid = udp_socket();
        tid.send_to(&data(1, &[7u8; 512]), client).unwrap();
        expect_ack(&tid, 1);
    });
    let started = Instant::now();
    let args = [&addr, "f.bin", "-o", "keep.bin", "-t", "1", "-r", "1"];
    let out = tool("tftp-get", &args, work.path());
    server.join().unwrap();
    // Its closed port answers the client's next ACK with ICMP "port unreachable",
    // which only the fast path hears (sys::report_unreachable); the portable
    // one gives up after its resend.
    let why = if cfg!(feature = "portable") {
        "timed out: no DATA block 2"
    } else {
        "the server went away"
    };
    failed(&out, 1, why);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(listing(work.path()), ["keep.bin"], "no keep.bin.part");
    assert_file(&work.path().join("keep.bin"), b"precious");
}

/// Makes a device node `path` (character device `major`:`minor`) where the
/// system allows it (as root); false elsewhere.
fn make_device(path: &Path, major: u64, minor: u64) -> bool {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    mknod(
        path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(major, minor),
    )
    .is_ok()
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

#[test]
fn get_onto_a_device_writes_into_it_and_fails_when_it_is_full() {
    let (_root, srv, work) = served(&[("q.bin", &noise(256 << 10, 30))], &[]);
    let addr = srv.addr().to_string();
    let dir = work.path();
    // Device nodes of our own in a scratch directory (as root), and links to
    // the system's: a bug here replaces these, never /dev/null itself.
    let nodes = make_device(&dir.join("full"), 1, 7) && make_device(&dir.join("null"), 1, 3);
    if !nodes {
        eprintln!("note: cannot make device nodes here (not root); testing through symlinks only");
    }
    symlink("/dev/full", dir.join("full-link")).unwrap();
    symlink("/dev/null", dir.join("null-link")).unwrap();
    let (fulls, nulls): (&[&str], &[&str]) = if nodes {
        (&["full", "full-link"], &["null", "null-link"])
    } else {
        (&["full-link"], &["null-link"])
    };
    for local in fulls {
        let out = tool("tftp-get", &[&addr, "q.bin", "-o", local, "-q"], dir);
        let err = failed(
            &out,
            1,
            &format!("cannot write {local}: no space left on device"),
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for local in nulls {
        succeeded(&tool("tftp-get", &[&addr, "q.bin", "-o", local, "-q"], dir));
    }
    if nodes {
        assert!(is_char_device(&dir.join("full")) && is_char_device(&dir.join("null")));
    }
    let mut names = vec!["full-link", "null-link"];
    if nodes {
        names.extend(["full", "null"]);
    }
    names.sort();
    assert_eq!(listing(dir), names, "nothing else was created");
    assert!(is_char_device(Path::new("/dev/null")));
}

#[test]
fn get_into_a_fifo_feeds_its_reader() {
    let file = noise(300_000, 31);
    let (_root, srv, work) = served(&[("f.bin", &file)], &[]);
    let fifo = work.path().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        thread::spawn(move || fs::read(fifo).unwrap())
    };
    succeeded(&tool(
        "tftp-get",
        &[&srv.addr().to_string(), "f.bin", "-o", "pipe", "-q"],
        work.path(),
    ));
    assert!(reader.join().unwrap() == file, "the reader got other bytes");
    assert_eq!(listing(work.path()), ["pipe"]);
}

#[test]
fn get_never_writes_through_a_planted_temporary_name() {
    let (_root, srv, work) = served(&[("dl.bin", b"downloaded")], &[]);
    let dir = work.path();
    fs::write(dir.join("v.txt"), b"victim").unwrap();
    // The old fixed temporary names, planted as links to another file.
    symlink("v.txt", dir.join("dl.bin.part")).unwrap();
    symlink("v.txt", dir.join(".dl.bin.part")).unwrap();
    succeeded(&tool(
        "tftp-get",
        &[&srv.addr().to_string(), "dl.bin", "-q"],
        dir,
    ));
    assert_file(&dir.join("v.txt"), b"victim");
    assert_file(&dir.join("dl.bin"), b"downloaded");
}

#[test]
fn concurrent_gets_to_one_name_each_install_a_whole_file() {
    let a = noise(400_000, 32);
    let b = noise(400_000, 33);
    let (_root, srv, work) = served(&[("a.bin", &a), ("b.bin", &b)], &[]);
    let addr = srv.addr().to_string();
    for round in 0..10 {
        let gets: Vec<_> = ["a.bin", "b.bin"]
            .into_iter()
            .map(|remote| {
                let mut c = cmd("tftp-get", &[&addr, remote, "-o", "out.bin", "-q"]);
                c.current_dir(work.path()).stdin(Stdio::null());
                Process::new(c)
            })
            .collect();
        for mut get in gets {
            let status = get.wait();
            assert!(status.success(), "round {round}: {status:?}");
        }
        let got = fs::read(work.path().join("out.bin")).unwrap();
        assert!(
            got == a || got == b,
            "round {round}: a mix of both downloads"
        );
        assert_eq!(listing(work.path()), ["out.bin"], "round {round}");
    }
}

/// A server that sends DATA 1 of a longer file and then nothing: the
/// download stays in progress until the client is stopped.
fn stalling_server() -> (
    String,
    thread::JoinHandle<UdpSocket>,
    std::sync::mpsc::Receiver<()>,
) {
    let request_port = udp_socket();
    let addr = request_port.local_addr().unwrap().to_string();
    let (acked, acked_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        let (_request, client) = recv_from(&request_port);
        let tid = udp_socket();
        tid.send_to(&data(1, &[7u8; 512]), client).unwrap();
        expect_ack(&tid, 1);
        acked.send(()).unwrap();
        tid
    });
    (addr, server, acked_rx)
}

#[test]
fn a_signal_during_get_removes_the_partial_file_and_tells_the_server() {
    for sig in ["INT", "TERM"] {
        let work = dir_with(&[("keep.bin", b"precious")]);
        let (addr, server, acked) = stalling_server();
        let mut get = cmd("tftp-get", &[&addr, "f.bin", "-o", "keep.bin", "-W", "1"]);
        get.current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut get = Process::new(get).read_lines();
        acked.recv_timeout(TIMEOUT).expect("no ACK 1");
        let tid = server.join().unwrap();
        let names = listing(work.path());
        assert_eq!(
            names.len(),
            2,
            "a temporary file beside keep.bin: {names:?}"
        );
        get.signal(sig);
        // The server hears why the client left...
        let message = next_error_message(&tid);
        assert!(message.contains("aborted"), "SIG{sig}: {message}");
        let status = get.wait();
        assert_eq!(status.code(), Some(130), "SIG{sig}");
        let stderr = get.err().rest().join("\n");
        assert!(
            stderr.contains("tftp-get: interrupted;"),
            "SIG{sig}: {stderr}"
        );
        // ...and nothing is left but what was there.
        assert_eq!(listing(work.path()), ["keep.bin"], "SIG{sig}");
        assert_file(&work.path().join("keep.bin"), b"precious");
    }
}

#[test]
fn usage_errors_exit_2() {
    let work = TempDir::new().unwrap();
    for (line, needle) in [
        ("tftp-get 127.0.0.1 x --blksize 4", "--blksize"),
        ("tftp-get 127.0.0.1 x --port 70000", "70000"),
        ("tftp-get 127.0.0.1", "<REMOTE>"),
        ("tftp-get", "<HOST>"),
        ("tftp-put 127.0.0.1", "<LOCAL>"),
        ("tftp-put 127.0.0.1 -", "needs a REMOTE name"),
        (
            "tftp-serve /nonexistent/dir --port 0",
            "cannot serve /nonexistent/dir",
        ),
        // tftp-hpa's habit: the port as an argument of its own.
        (
            "tftp-get 127.0.0.1 6969 test.jpg",
            "the port goes with the host: tftp-get 127.0.0.1:6969 test.jpg (or -p 6969)",
        ),
        ("tftp-get ::1 6969 test.jpg", "tftp-get [::1]:6969 test.jpg"),
        (
            "tftp-get 127.0.0.1 test.jpg copy.jpg",
            "unexpected argument \"copy.jpg\"; for the local name use -o copy.jpg",
        ),
        (
            "tftp-put 127.0.0.1 6969 test.jpg",
            "no file \"6969\" to send; the port goes with the host: tftp-put 127.0.0.1:6969 test.jpg",
        ),
        // The other servers' habit: the port first.
        (
            "tftp-serve 6969",
            "no directory \"6969\" to serve: unlike the other servers, tftp-serve takes the port as --port (tftp-serve --port 6969 .)",
        ),
        (
            "tftp-serve 6969 /srv/tftp",
            "tftp-serve takes one DIR, and the port as --port: tftp-serve --port 6969 /srv/tftp",
        ),
        // A number that is no port either: the same hint, and why not that number.
        (
            "tftp-serve 99999",
            "no directory \"99999\" to serve, and 99999 is not a valid port either (0-65535): unlike the other servers, tftp-serve takes the port as --port (tftp-serve --port 6969 .)",
        ),
        (
            "tftp-serve 99999 /srv/tftp",
            "tftp-serve takes one DIR, and the port as --port: tftp-serve --port 6969 /srv/tftp (99999 is not a valid port either way: 0-65535)",
        ),
        (
            "tftp-serve up down",
            "unexpected argument \"down\": tftp-serve serves one DIR",
        ),
    ] {
        let (name, args) = line.split_once(' ').unwrap_or((line, ""));
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = tool(name, &args, work.path());
        let err = failed(&out, 2, needle);
        assert!(out.stdout.is_empty(), "{name} {args:?}");
        // Ours: one line `NAME: what`. Clap's: an `error: what` line, then usage hints.
        let ours = err.starts_with(&format!("{name}: ")) && err.lines().count() == 1;
        assert!(ours || err.starts_with("error: "), "{name} {args:?}: {err}");
    }
    assert!(listing(work.path()).is_empty());
}

#[test]
fn unreachable_server_fails_in_seconds_naming_it() {
    // A server that never answers: a bound socket nobody reads.
    let silent = udp_socket();
    let addr = silent.local_addr().unwrap().to_string();
    let work = TempDir::new().unwrap();
    let started = Instant::now();
    let args = [&addr, "f.bin", "--timeout", "1", "--retries", "1"];
    let out = tool("tftp-get", &args, work.path());
    let err = failed(&out, 1, &addr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(listing(work.path()).is_empty());
}

#[test]
fn put_of_missing_file_fails_and_stdin_upload_works() {
    let root = TempDir::new().unwrap();
    let srv = serve(root.path(), &["--allow-write"]);
    let addr = srv.addr().to_string();
    let out = tool("tftp-put", &[&addr, "no-such-file.bin"], root.path());
    let err = failed(&out, 1, "no-such-file.bin");
    assert_eq!(err.lines().count(), 1, "{err}");

    let file = noise(BIG, 10);
    succeeded(&run(
        cmd("tftp-put", &[&addr, "-", "from-stdin.bin"]),
        &file,
    ));
    assert_file(&root.path().join("from-stdin.bin"), &file);
}

#[test]
fn block_numbers_roll_over_past_65535() {
    // 8-byte blocks: 67 500 of them, so block 65535 is followed by block 0.
    let file = noise(540_000, 19);
    let (root, srv, work) = served(&[("many.bin", &file)], &["--allow-write"]);
    let addr = srv.addr().to_string();
    fetch(
        work.path(),
        &[&addr, "many.bin", "-B", "8"],
        "many.bin",
        &file,
    );
    let args = [&addr, "many.bin", "back.bin", "-B", "8"];
    upload(work.path(), &args, &root.path().join("back.bin"), &file);
}

#[test]
fn ipv6_loopback() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("note: no IPv6 loopback here; skipping this test");
        return;
    }
    let file = noise(BIG, 20);
    let root = dir_with(&[("f.bin", &file)]);
    let srv = serve_on("::1", root.path(), &["--allow-write"]);
    assert_eq!(
        srv.addr().to_string(),
        format!("[::1]:{}", srv.addr().port())
    );
    let work = TempDir::new().unwrap();
    let args = [&srv.addr().to_string(), "f.bin", "-o", "a.bin"];
    fetch(work.path(), &args, "a.bin", &file);
    let port = srv.addr().port().to_string();
    let args = ["-6", "::1", "a.bin", "up.bin", "-p", &port];
    upload(work.path(), &args, &root.path().join("up.bin"), &file);
}

// --- 5. Process safety -----------------------------------------------------------

#[test]
fn paths_outside_the_root_are_refused() {
    let outside = dir_with(&[("secret.txt", b"secret")]);
    let root = dir_with(&[("inside.txt", b"inside")]);
    symlink(
        outside.path().join("secret.txt"),
        root.path().join("escape.txt"),
    )
    .unwrap();
    symlink(outside.path(), root.path().join("outdir")).unwrap();
    let srv = serve(root.path(), &["--allow-write"]);
    for name in [
        "../x",
        "/../../etc/passwd",
        "a/../../x",
        "..\\x",
        "..",
        "escape.txt",
        "outdir/secret.txt",
    ] {
        expect_error(srv.addr(), &rrq(name), 2);
    }
    let stray = format!("tftp-test-{}.bin", std::process::id());
    for name in [&format!("../{stray}"), "outdir/new.bin", "escape.txt"] {
        expect_error(srv.addr(), &wrq(name), 2);
    }
    assert!(!root.path().parent().unwrap().join(&stray).exists());
    assert_eq!(listing(outside.path()), ["secret.txt"]);
    assert_file(&outside.path().join("secret.txt"), b"secret");

    let work = TempDir::new().unwrap();
    let out = tool("tftp-get", &[&srv.addr().to_string(), "../x"], work.path());
    failed(&out, 1, "server error 2");
}

#[test]
fn a_directory_swapped_for_a_symlink_between_requests_leads_nowhere() {
    let outside = dir_with(&[("f.txt", b"secret")]);
    let root = dir_with(&[("sub/f.txt", b"inside")]);
    let srv = serve(root.path(), &["--allow-write"]);
    let work = TempDir::new().unwrap();
    fetch(
        work.path(),
        &[&srv.addr().to_string(), "sub/f.txt"],
        "f.txt",
        b"inside",
    );
    // A local user replaces the directory the server just served from.
    fs::rename(root.path().join("sub"), root.path().join("old")).unwrap();
    symlink(outside.path(), root.path().join("sub")).unwrap();
    expect_error(srv.addr(), &rrq("sub/f.txt"), 2);
    expect_error(srv.addr(), &wrq("sub/new.txt"), 2);
    assert_eq!(listing(outside.path()), ["f.txt"]);
}

#[test]
fn leading_slash_means_the_root() {
    let file = noise(3000, 11);
    let (_root, srv, work) = served(&[("sub/f", &file)], &[]);
    let args = [&srv.addr().to_string(), "/sub/f", "-o", "f"];
    fetch(work.path(), &args, "f", &file);
}

#[test]
fn uploads_need_allow_write_and_overwrite() {
    let root = dir_with(&[("exists.txt", b"original")]);
    let read_only = serve(root.path(), &[]);
    expect_error(read_only.addr(), &wrq("new.bin"), 2);

    let writable = serve(root.path(), &["--allow-write"]);
    expect_error(writable.addr(), &wrq("exists.txt"), 6);
    let work = dir_with(&[("new.txt", b"replacement")]);
    let put = |srv: &Process| {
        let args = [&srv.addr().to_string(), "new.txt", "exists.txt"];
        tool("tftp-put", &args, work.path())
    };
    failed(&put(&writable), 1, "server error 6");
    assert_eq!(listing(root.path()), ["exists.txt"]);
    assert_file(&root.path().join("exists.txt"), b"original");

    let overwrite = serve(root.path(), &["--overwrite"]);
    succeeded(&put(&overwrite));
    assert_eq!(listing(root.path()), ["exists.txt"]);
    assert_file(&root.path().join("exists.txt"), b"replacement");
}

#[test]
fn abandoned_upload_leaves_nothing_behind() {
    let root = TempDir::new().unwrap();
    let mut srv = serve(
        root.path(),
        &["--allow-write", "--timeout", "1", "--retries", "1"],
    );
    let sock = udp_socket();
    sock.send_to(&wrq("abandoned.bin"), srv.addr()).unwrap();
    let tid = expect_ack(&sock, 0);
    // The upload goes to a hidden temporary file, never to its real name.
    let names = listing(root.path());
    assert!(
        names.len() == 1 && names[0].starts_with(".abandoned.bin.") && names[0].ends_with(".part"),
        "{names:?}"
    );
    let hidden = format!("/{}", names[0]);
    expect_error(srv.addr(), &rrq(&hidden), 2);
    for block in 1..=3u16 {
        sock.send_to(&data(block, &[block as u8; 512]), tid)
            .unwrap();
        expect_ack(&sock, block);
    }
    // Silence. The server repeats ACK 3, then gives up and says so.
    let (code, _) = loop {
        let (packet, from) = recv_from(&sock);
        assert_eq!(from, tid);
        if let Some(error) = error_of(&packet) {
            break error;
        }
        assert_eq!(ack_of(&packet), Some(3));
    };
    assert_eq!(code, 0);
    wait_until("the temporary file is removed", || {
        listing(root.path()).is_empty()
    });
    srv.err().expect("WRQ \"abandoned.bin\" octet: failed");
}

#[test]
fn max_size_refuses_bigger_uploads() {
    let root = TempDir::new().unwrap();
    let srv = serve(root.path(), &["--allow-write", "--max-size", "1000"]);
    let addr = srv.addr().to_string();
    let work = dir_with(&[
        ("big.bin", &noise(5000, 12)),
        ("fits.bin", &noise(1000, 13)),
    ]);
    // Announced with tsize: refused at once.
    let out = tool("tftp-put", &[&addr, "big.bin"], work.path());
    failed(&out, 1, "server error 3");
    // From stdin, the size is not known up front: refused when it goes past.
    let mut c = cmd("tftp-put", &[&addr, "-", "big.bin"]);
    c.current_dir(work.path());
    failed(&run(c, &noise(5000, 12)), 1, "server error 3");
    wait_until("the refused upload is removed", || {
        listing(root.path()).is_empty()
    });
    succeeded(&tool("tftp-put", &[&addr, "fits.bin"], work.path()));
    assert_eq!(listing(root.path()), ["fits.bin"]);
}

#[test]
fn bad_modes_and_option_values_are_refused() {
    let root = dir_with(&[("f.txt", b"hello")]);
    let srv = serve(root.path(), &[]);
    expect_error(srv.addr(), &request(false, b"f.txt", Mode::Mail, &[]), 4);
    expect_error(srv.addr(), b"\0\x01f.txt\0klingon\0", 4);
    for (name, value) in [("blksize", "abc"), ("blksize", "4"), ("windowsize", "0")] {
        let bad = request(false, b"f.txt", Mode::Octet, &[(name, value)]);
        expect_error(srv.addr(), &bad, 8);
    }
}

#[test]
fn two_hundred_concurrent_downloads() {
    const CLIENTS: usize = 200;
    let file = Arc::new(noise(1 << 20, 14));
    let root = dir_with(&[("one.bin", &file)]);
    let srv = serve(root.path(), &["-q"]);
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (start, addr) = (Arc::clone(&start), srv.addr());
            thread::spawn(move || {
                let cfg = client::Config::new(addr);
                let mut got = Vec::with_capacity(1 << 20);
                start.wait();
                let download = client::get(&cfg, b"one.bin", &mut got, &mut ());
                download.map(|d| d.confirm()).map(|_| got)
            })
        })
        .collect();
    for c in clients {
        let got = c.join().unwrap().expect("download");
        assert!(got == *file, "a download differs: {} bytes", got.len());
    }
}

#[test]
fn concurrent_transfers_get_distinct_transfer_ids() {
    // 900 transfers at once, each stalled after its DATA 1: every one must have a
    // port (transfer ID) of its own, or packets of one reach the other.
    const TRANSFERS: usize = 900;
    let root = dir_with(&[("f.bin", &noise(2000, 21))]);
    let srv = serve(root.path(), &["-q", "--max-transfers", "1000"]);
    let mut seen = HashMap::new();
    let mut clients = Vec::with_capacity(TRANSFERS);
    for i in 0..TRANSFERS {
        let sock = udp_socket();
        let tid = request_file(&sock, srv.addr());
        if let Some(other) = seen.insert(tid.port(), i) {
            panic!(
                "transfers {other} and {i} (both running) share port {}",
                tid.port()
            );
        }
        clients.push(sock);
    }
}

#[test]
fn a_repeated_request_from_one_port_starts_one_transfer() {
    // What a client does when our OACK or first DATA is lost: it asks again
    // from the same port. The running transfer answers; no second one starts
    // (a second one would later send the client "ERROR 0 timed out").
    let root = dir_with(&[("f.bin", &noise(3000, 22))]);
    let srv = serve(root.path(), &["-q"]);
    for request in [
        rrq("f.bin"),
        request(false, b"f.bin", Mode::Octet, &[("blksize", "1024")]),
    ] {
        let sock = udp_socket();
        sock.send_to(&request, srv.addr()).unwrap();
        sock.send_to(&request, srv.addr()).unwrap();
        sock.send_to(&request, srv.addr()).unwrap();
        // Long enough for a second transfer's first packet and for the
        // first transfer's own retransmission (1 s) to show up.
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut tids = HashSet::new();
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            tids.insert(from);
        }
        assert_eq!(tids.len(), 1, "answers came from {tids:?}");
    }
}

#[test]
fn a_client_that_vanishes_ends_its_transfer_at_once() {
    // Only the fast path hears ICMP "port unreachable" on an unconnected socket
    // (sys::report_unreachable); the portable one resends until its retries run out.
    if cfg!(feature = "portable") {
        eprintln!("note: --features portable hears no ICMP errors; skipping this test");
        return;
    }
    // The client takes two blocks, then closes its socket: the server's next
    // DATA meets a closed port, and ICMP "port unreachable" ends the transfer
    // now, not after 39 s of resending into the void.
    let root = dir_with(&[("f.bin", &noise(64 * 1024, 23))]);
    let mut srv = serve(root.path(), &[]);
    let sock = udp_socket();
    let tid = request_file(&sock, srv.addr());
    sock.send_to(&Packet::ack(1), tid).unwrap();
    let (second, _) = recv_from(&sock);
    assert!(matches!(
        Packet::parse(&second),
        Ok(Packet::Data { block: 2, .. })
    ));
    let started = Instant::now();
    drop(sock);
    let line = srv.err().expect("RRQ");
    assert!(line.contains("failed: the client went away"), "{line}");
    // Its first resend is due after 1 s; the ICMP answer to that one ends it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_closed_request_port_is_reported_at_once() {
    // As above: the portable path hears no "port unreachable" and retries for 32 s.
    if cfg!(feature = "portable") {
        eprintln!("note: --features portable hears no ICMP errors; skipping this test");
        return;
    }
    let work = dir_with(&[("up.bin", b"upload")]);
    for (name, args) in [
        ("tftp-get", &["f.bin"][..]),
        ("tftp-get", &["f.bin", "--no-options"][..]),
        ("tftp-put", &["up.bin"][..]),
    ] {
        // A port nothing listens on: Linux answers with ICMP port unreachable.
        let closed = udp_socket();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let started = Instant::now();
        let out = tool(name, &[&[addr.as_str()][..], args].concat(), work.path());
        let took = started.elapsed();
        eprintln!("{name} {args:?}: failed after {took:?}");
        let err = failed(
            &out,
            1,
            &format!("no TFTP server at {addr} (port unreachable)"),
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // Without the ICMP error it would be 32 s of retries.
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
    }
    assert_eq!(listing(work.path()), ["up.bin"]);
}

/// A request port that answers a download request with `answer`, sent from a
/// transfer ID of its own, then closes (as the course's server does).
fn answering_once(answer: Vec<Vec<u8>>) -> (String, thread::JoinHandle<()>) {
    let request_port = udp_socket();
    let addr = request_port.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (_request, client) = recv_from(&request_port);
        let tid = udp_socket();
        for datagram in answer {
            tid.send_to(&datagram, client).unwrap();
        }
    });
    (addr, server)
}

#[test]
fn error_5_to_a_request_says_it_is_the_course_servers_missing_file() {
    let work = TempDir::new().unwrap();
    // The notes' server: `struct.pack('!HH5sb', 5, 5, b'error', 0)`.
    let (addr, server) = answering_once(vec![b"\0\x05\0\x05error\0".to_vec()]);
    let out = tool("tftp-get", &[&addr, "missing.bin"], work.path());
    server.join().unwrap();
    let err = failed(
        &out,
        1,
        "tftp-get: server error 5 (unknown transfer ID): error (the course's server sends this for a missing file)",
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Other errors to a request, and ERROR 5 in the middle of a transfer, are what they say.
    let not_found = Packet::error(socktools::tftp::packet::ErrorCode::FileNotFound, "nope");
    let (addr, server) = answering_once(vec![not_found]);
    let out = tool("tftp-get", &[&addr, "missing.bin"], work.path());
    server.join().unwrap();
    let err = failed(&out, 1, "server error 1 (file not found): nope");
    assert!(!err.contains("course"), "{err}");
    let (addr, server) = answering_once(vec![data(1, &[1; 512]), b"\0\x05\0\x05error\0".to_vec()]);
    let out = tool("tftp-get", &[&addr, "f.bin", "--no-options"], work.path());
    server.join().unwrap();
    let err = failed(&out, 1, "server error 5 (unknown transfer ID): error");
    assert!(!err.contains("course"), "{err}");
    assert!(listing(work.path()).is_empty());
}

#[test]
fn second_server_on_a_taken_port_fails() {
    let root = TempDir::new().unwrap();
    let first = serve(root.path(), &[]);
    let port = first.addr().port().to_string();
    let dir = root.path().to_str().unwrap();
    let mut second = Process::spawn(cmd(
        "tftp-serve",
        &[dir, "--port", &port, "--bind", "127.0.0.1"],
    ));
    let line = second.err().next().unwrap_or_default();
    assert!(line.contains("address already in use"), "{line:?}");
    let status = second.wait();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn random_datagrams_do_not_hurt_the_server() {
    let file = noise(300_000, 15);
    let (_root, mut srv, work) = served(&[("f.bin", &file)], &["-q"]);
    let pool = noise(1 << 20, 16);
    let senders: Vec<UdpSocket> = (0..4).map(|_| udp_socket()).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let mut datagram = Vec::with_capacity(65507);
    let mut sent = 0;
    for i in 0..100_000usize {
        let len = if i % 10_000 == 0 {
            65507
        } else {
            next() % 1501
        };
        let at = next() % (pool.len() - len);
        datagram.clear();
        datagram.extend_from_slice(&pool[at..at + len]);
        match i % 1000 {
            // Now and then a well-formed request for a name that is not there.
            0 => {
                datagram = request(
                    i % 2000 == 0,
                    format!("../nope-{i}").as_bytes(),
                    Mode::Octet,
                    &[],
                )
            }
            1 => datagram = rrq(&format!("nope-{i}")),
            // Often a valid opcode in front of garbage.
            _ if len >= 2 && i % 4 == 0 => datagram[..2].copy_from_slice(&[0, (next() % 7) as u8]),
            _ => {}
        }
        if senders[i % senders.len()]
            .send_to(&datagram, srv.addr())
            .is_ok()
        {
            sent += 1;
        }
    }
    assert!(sent > 99_000, "only {sent} datagrams could be sent");
    fetch(
        work.path(),
        &[&srv.addr().to_string(), "f.bin"],
        "f.bin",
        &file,
    );
    assert!(srv.child.try_wait().unwrap().is_none(), "tftp-serve died");
}

#[test]
fn garbage_on_the_request_port_gets_no_bigger_answer() {
    let root = dir_with(&[("f.txt", b"hello")]);
    let srv = serve(root.path(), &["-q"]);
    let sock = udp_socket();
    let garbage = [
        &b"\0\x01"[..],
        b"\0\x04\0\x01",
        b"\0\x03\0\x01",
        b"\0\x01abc",
        b"\0\x09nonsense",
        b"\0\x01f.txt\0klingon\0",
        b"\0\x03\0\x01 a DATA block sent to the request port",
    ];
    for datagram in garbage {
        sock.send_to(datagram, srv.addr()).unwrap();
    }
    // A well-formed request last: once its answer is here, every answer to
    // the garbage before it has been sent.
    sock.send_to(&rrq("f.txt"), srv.addr()).unwrap();
    let mut answers = Vec::new();
    loop {
        let (answer, _) = recv_from(&sock);
        if matches!(Packet::parse(&answer), Ok(Packet::Data { .. })) {
            break;
        }
        answers.push(answer);
    }
    // Nothing to the three datagrams too short for an ERROR (2 and 4 bytes);
    // the rest get one each, no bigger than what was sent, in order.
    let sent = garbage.iter().map(|g| g.len()).filter(|&n| n >= 5);
    assert_eq!(answers.len(), sent.clone().count(), "{answers:?}");
    for (answer, limit) in answers.iter().zip(sent) {
        assert!(error_of(answer).is_some(), "{answer:?}");
        assert!(
            answer.len() <= limit,
            "{} bytes answer {limit}",
            answer.len()
        );
    }
}

/// 257 requests from one host, each from its own port, none ever answered:
/// the table of 256 transfers is full of clients that never answer.
fn flood(server: SocketAddr) -> Vec<UdpSocket> {
    let silent: Vec<UdpSocket> = (0..257).map(|_| udp_socket()).collect();
    for sock in &silent {
        sock.send_to(&rrq("f.bin"), server).unwrap();
    }
    // Answered (DATA 1, or busy), so the server has read them all. A burst
    // may overflow a receive buffer: what got no answer asks again, as any
    // client would.
    for sock in &silent {
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let answered = (0..10).any(|_| {
            sock.recv_from(&mut [0u8; 1600]).is_ok() || {
                sock.send_to(&rrq("f.bin"), server).unwrap();
                false
            }
        });
        assert!(answered, "no answer to a request");
    }
    silent
}

#[test]
fn silent_requests_cannot_lock_out_a_real_client() {
    let file = noise(200_000, 34);
    let (_root, mut srv, work) = served(&[("f.bin", &file)], &[]);
    let addr = srv.addr().to_string();
    let get = || tool("tftp-get", &[&addr, "f.bin", "-q"], work.path());
    let _silent = flood(srv.addr());
    // A new client: retried once a second while told "busy", as a patient
    // user would; a transfer that has waited a full timeout gives way to it.
    let started = Instant::now();
    let mut tries = 1;
    loop {
        let out = get();
        if out.status.success() {
            break;
        }
        let err = text(&out.stderr);
        assert!(err.contains("busy"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still busy after 5 s"
        );
        thread::sleep(Duration::from_secs(1));
        tries += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(tries <= 3, "{tries} tries");
    assert_file(&work.path().join("f.bin"), &file);
    srv.err().expect("to make room for");
    // Now this address has answered: after another flood its next download
    // starts at once.
    let _silent = flood(srv.addr());
    succeeded(&get());
}

#[test]
fn max_per_client_caps_transfers_from_one_address() {
    let (_root, srv, _work) = served(
        &[("f.bin", &noise(100_000, 35))],
        &["--max-per-client", "2"],
    );
    let socks: Vec<UdpSocket> = (0..3).map(|_| udp_socket()).collect();
    for sock in &socks[..2] {
        request_file(sock, srv.addr());
    }
    let message = expect_error(srv.addr(), &rrq("f.bin"), 0);
    assert!(
        message.contains("too many transfers from your address"),
        "{message}"
    );
}

// --- 6. Ctrl-C -----------------------------------------------------------------

#[test]
fn sigterm_stops_an_upload_tells_the_client_and_removes_its_file() {
    let root = TempDir::new().unwrap();
    let mut srv = serve(root.path(), &["--allow-write", "--grace", "1"]);
    let sock = udp_socket();
    sock.send_to(&wrq("up.bin"), srv.addr()).unwrap();
    let tid = expect_ack(&sock, 0);
    sock.send_to(&data(1, &[1; 512]), tid).unwrap();
    expect_ack(&sock, 1);
    let names = listing(root.path());
    assert!(
        names.len() == 1 && names[0].starts_with(".up.bin."),
        "{names:?}"
    );
    // The uploader stalls; systemd (or docker stop) stops the server.
    srv.signal("TERM");
    srv.err()
        .expect("stopping: waiting up to 1 s for 1 transfer(s)");
    let message = next_error_message(&sock);
    assert!(message.contains("aborted"), "{message}");
    let status = srv.wait();
    assert!(status.success(), "{status:?}");
    assert!(
        listing(root.path()).is_empty(),
        "{:?}",
        listing(root.path())
    );
    srv.err().rest_with("served 1 transfer (1 failed)");
}

#[test]
fn ctrl_c_lets_running_transfers_finish_then_exits_with_summary() {
    let slow = noise(512 * 6 + 100, 17);
    let root = dir_with(&[("slow.bin", &slow), ("stalled.bin", &noise(5000, 18))]);
    let grace = Duration::from_secs(2);
    let mut srv = serve(root.path(), &["--grace", "2"]);
    // Two lock-step downloads under way: one we will finish, one we never ACK.
    let (finisher, stalled) = (udp_socket(), udp_socket());
    finisher.send_to(&rrq("slow.bin"), srv.addr()).unwrap();
    stalled.send_to(&rrq("stalled.bin"), srv.addr()).unwrap();
    let (first, tid) = recv_from(&finisher);
    recv_from(&stalled);

    let interrupted = Instant::now();
    srv.interrupt();
    srv.err()
        .expect("stopping: waiting up to 2 s for 2 transfer(s)");
    // The running transfer may still finish...
    assert_eq!(finish_lockstep(&finisher, tid, first), slow);
    // ...the stalled transfer is aborted when the grace period ends...
    let message = next_error_message(&stalled);
    assert!(message.contains("aborted"), "{message}");
    let status = srv
        .wait_for(grace + Duration::from_secs(5))
        .expect("tftp-serve did not exit after the grace period");
    let took = interrupted.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= grace && took < grace + Duration::from_secs(5),
        "{took:?}"
    );
    // ...and the summary counts both.
    srv.err().rest_with(&format!(
        "served 2 transfers (1 failed), {} bytes sent, 0 bytes received",
        slow.len()
    ));
}
