//! Scenarios 4, 5 and 6: TFTP lock-step downloads against tftp-hpa, atftp and curl, option sweeps, and transfers through a lossy relay.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    Contender, MIB_S, Outcome, PATIENCE, Pair, Proc, Proto, Trial, data_file, find, free_port,
    measure, mib, pair, peer, run_timed, start_ours, start_peer,
};
use crate::lossy::{Faults, LossyProxy};
use crate::{Config, bin};

/// A TFTP client run: what to start to fetch `remote` from `server` into `local`.
type Client = Box<dyn Fn(SocketAddr, &str, &Path) -> Command>;

fn ours_get(flags: &'static [&'static str]) -> Client {
    Box::new(move |server, remote, local| {
        let mut c = Command::new(bin("tftp-get"));
        c.arg(server.to_string())
            .arg(remote)
            .arg("-o")
            .arg(local)
            .arg("-q")
            .args(flags);
        c
    })
}

fn tftp_hpa() -> Client {
    Box::new(|server, remote, local| {
        let mut c = Command::new("tftp");
        c.args([server.ip().to_string(), server.port().to_string()])
            .args(["-m", "binary", "-c", "get", remote])
            .arg(local);
        c
    })
}

fn curl() -> Client {
    Box::new(|server, remote, local| {
        let mut c = Command::new("curl");
        c.args(["-s", "--tftp-no-options", "-o"])
            .arg(local)
            .arg(format!("tftp://{server}/{remote}"));
        c
    })
}

fn atftp(blksize: Option<u32>) -> Client {
    Box::new(move |server, remote, local| {
        let mut c = Command::new("atftp");
        if let Some(b) = blksize {
            c.args(["--option", &format!("blksize {b}")]);
        }
        c.args(["-g", "-r", remote, "-l"])
            .arg(local)
            .args([server.ip().to_string(), server.port().to_string()]);
        c
    })
}

/// Fetch `remote` (of `len` bytes) once, check the copy's size, and give MiB/s.
fn fetch(
    client: &Client,
    server: SocketAddr,
    remote: &str,
    len: u64,
    out: &Path,
    limit: Duration,
) -> Result<Trial, String> {
    let _ = fs::remove_file(out);
    let took = run_timed(client(server, remote, out), limit)?;
    let got = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let _ = fs::remove_file(out);
    if got != len {
        return Err(format!("got {got} of {len} bytes"));
    }
    Ok(Trial::new(mib(len) / took.as_secs_f64()))
}

/// A directory only TFTP servers read: files in it are world-readable, because
/// tftpd-hpa started by root drops to `nobody`.
fn serve_dir(cfg: &Config, len: u64) -> (PathBuf, String) {
    let dir = cfg.scratch.join("tftproot");
    fs::create_dir_all(&dir).expect("create tftp root");
    let name = format!("data-{len}.bin");
    data_file(&dir, &name, len);
    set_mode(&cfg.scratch, 0o755);
    set_mode(&dir, 0o755);
    set_mode(&dir.join(&name), 0o644);
    (dir, name)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode));
}

fn our_server(dir: &Path) -> Result<(Proc, SocketAddr), String> {
    let mut c = Command::new(bin("tftp-serve"));
    c.arg(dir).args(["-p", "0", "-b", "127.0.0.1", "-q"]);
    start_ours(c)
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn tftpd_hpa(dir: &Path) -> Result<(Proc, SocketAddr), String> {
    let port = free_port(Proto::Udp);
    let mut c = Command::new(find("in.tftpd").ok_or("in.tftpd is not installed")?);
    c.args(["-L", "-s"])
        .arg(dir)
        .arg("-a")
        .arg(format!("127.0.0.1:{port}"));
    if is_root() {
        c.args(["-u", "nobody"]);
    }
    let p = start_peer(c, Proto::Udp, port)?;
    Ok((p, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Scenario 4: plain RFC 1350 downloads, 512-byte blocks, one at a time.
pub fn lockstep(cfg: &Config) -> Vec<Outcome> {
    let len: u64 = if cfg.full { 64 << 20 } else { 8 << 20 };
    let (dir, name) = serve_dir(cfg, len);
    let work = format!("{} MiB, 512 B blocks, lock-step", len >> 20);
    let mut outcomes = Vec::new();

    // Clients, all fetching from tftpd-hpa.
    let tftpd = peer("in.tftpd")
        .then_some(())
        .and_then(|_| tftpd_hpa(&dir).ok());
    let ours = "tftp-get --no-options";
    let mut clients: Vec<(&str, &str, Client)> =
        vec![(ours, "tftp-get", ours_get(&["--no-options"]))];
    clients.push(("tftp (tftp-hpa)", "tftp", tftp_hpa()));
    clients.push(("curl --tftp-no-options", "curl", curl()));
    clients.push(("atftp", "atftp", atftp(None)));
    let mut skipped = Vec::new();
    let mut pairs = Vec::new();
    let mut contenders = Vec::new();
    for (i, (label, cmd, client)) in clients.into_iter().enumerate() {
        if i > 0 && !peer(cmd) {
            skipped.push(cmd.to_string());
            continue;
        }
        if i > 0 {
            pairs.push(pair(ours, label, Some(1.0)));
        }
        let (server, name, out) = (
            tftpd.as_ref().map(|t| t.1),
            name.clone(),
            cfg.scratch.join(format!("out-{i}")),
        );
        contenders.push(Contender::new(label, move |_| {
            let server = server.ok_or("tftpd-hpa did not start")?;
            fetch(&client, server, &name, len, &out, PATIENCE)
        }));
    }
    if tftpd.is_none() {
        skipped.push("in.tftpd (tftpd-hpa): every client row needs it".into());
    }
    outcomes.push(measure(
        "4a TFTP get from tftpd-hpa",
        &work,
        MIB_S,
        cfg.rounds,
        contenders,
        skipped,
        pairs,
        Vec::new(),
    ));
    drop(tftpd);

    // Servers, with curl as the client.
    let mut skipped = Vec::new();
    let mut pairs = Vec::new();
    let mut contenders = Vec::new();
    if peer("curl") {
        let ours = "tftp-serve";
        let ours_srv = our_server(&dir);
        let ours_addr = ours_srv.as_ref().map(|s| s.1).ok();
        let (n1, o1) = (name.clone(), cfg.scratch.join("out-serve-ours"));
        contenders.push(Contender::new(ours, move |_| {
            let server = ours_addr.ok_or("tftp-serve did not start")?;
            fetch(&curl(), server, &n1, len, &o1, PATIENCE)
        }));
        let hpa = peer("in.tftpd")
            .then_some(())
            .and_then(|_| tftpd_hpa(&dir).ok());
        if let Some((_, addr)) = &hpa {
            let (addr, n2, o2) = (*addr, name.clone(), cfg.scratch.join("out-serve-hpa"));
            contenders.push(Contender::new("in.tftpd (tftpd-hpa)", move |_| {
                fetch(&curl(), addr, &n2, len, &o2, PATIENCE)
            }));
            pairs.push(pair(ours, "in.tftpd (tftpd-hpa)", Some(1.0)));
        } else {
            skipped.push("in.tftpd".into());
        }
        outcomes.push(measure(
            "4b TFTP serve to curl",
            &work,
            MIB_S,
            cfg.rounds,
            contenders,
            skipped,
            pairs,
            Vec::new(),
        ));
        drop((ours_srv, hpa));
    } else {
        skipped.push("curl (the client of 4b)".into());
        outcomes.push(measure(
            "4b TFTP serve to curl",
            &work,
            MIB_S,
            cfg.rounds,
            contenders,
            skipped,
            pairs,
            Vec::new(),
        ));
    }
    outcomes
}

/// Scenario 5: block sizes and windows, ours to ours, and atftp to tftpd-hpa.
pub fn options(cfg: &Config) -> Vec<Outcome> {
    let len: u64 = if cfg.full { 64 << 20 } else { 16 << 20 };
    let (dir, name) = serve_dir(cfg, len);
    let ours_srv = our_server(&dir);
    let ours_addr = ours_srv.as_ref().map(|s| s.1).ok();
    let tftpd = peer("atftp")
        .then_some(())
        .and_then(|_| tftpd_hpa(&dir).ok());
    let mut contenders = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    let mut skipped = Vec::new();
    const FLAGS: [(u32, u32, &[&str]); 8] = [
        (1468, 1, &["-B", "1468", "-W", "1"]),
        (1468, 4, &["-B", "1468", "-W", "4"]),
        (1468, 16, &["-B", "1468", "-W", "16"]),
        (1468, 64, &["-B", "1468", "-W", "64"]),
        (65464, 1, &["-B", "65464", "-W", "1"]),
        (65464, 4, &["-B", "65464", "-W", "4"]),
        (65464, 16, &["-B", "65464", "-W", "16"]),
        (65464, 64, &["-B", "65464", "-W", "64"]),
    ];
    for (i, (b, w, flags)) in FLAGS.into_iter().enumerate() {
        let label = format!("tftp-get -B {b} -W {w}");
        let (remote, out, client) = (
            name.clone(),
            cfg.scratch.join(format!("out-opt-{i}")),
            ours_get(flags),
        );
        contenders.push(Contender::new(label.clone(), move |_| {
            let server = ours_addr.ok_or("tftp-serve did not start")?;
            fetch(&client, server, &remote, len, &out, PATIENCE)
        }));
        if w == 1 {
            let peer = format!("atftp blksize {b}");
            if let Some((_, addr)) = &tftpd {
                let (addr, name, out, client) = (
                    *addr,
                    name.clone(),
                    cfg.scratch.join(format!("out-opt-atftp-{i}")),
                    atftp(Some(b)),
                );
                contenders.push(Contender::new(peer.clone(), move |_| {
                    fetch(&client, addr, &name, len, &out, PATIENCE)
                }));
                pairs.push(pair(&label, &peer, Some(1.0)));
            } else {
                skipped.push(format!("{peer} (atftp or tftpd-hpa)"));
            }
        }
    }
    pairs.push(pair(
        "tftp-get -B 1468 -W 16",
        "tftp-get -B 1468 -W 1",
        Some(4.0),
    ));
    let out = measure(
        "5 TFTP options",
        &format!(
            "{} MiB, tftp-get ↔ tftp-serve, atftp ↔ tftpd-hpa",
            len >> 20
        ),
        MIB_S,
        cfg.rounds,
        contenders,
        skipped,
        pairs,
        Vec::new(),
    );
    drop((ours_srv, tftpd));
    vec![out]
}

/// Scenario 6: downloads through a relay that drops 3% and duplicates 3% of the
/// datagrams each way. Both tools get the same seed in a round, so the same faults.
pub fn loss(cfg: &Config) -> Vec<Outcome> {
    let len = cfg.loss_bytes;
    let (dir, name) = serve_dir(cfg, len);
    let faults = Faults {
        drop: 0.03,
        duplicate: 0.03,
        reorder: 0.0,
    };
    // tftp-hpa's 1 s timer costs about a second per lost packet.
    let limit = Duration::from_secs(60 + len / 100);
    let ours_srv = our_server(&dir);
    let ours_addr = ours_srv.as_ref().map(|s| s.1).ok();
    let mut contenders = Vec::new();
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    let ours = [
        (
            "tftp-get ↔ tftp-serve -B 512 -W 1",
            &["-B", "512", "-W", "1"][..],
        ),
        ("tftp-get ↔ tftp-serve (defaults)", &[][..]),
    ];
    for (i, (label, flags)) in ours.into_iter().enumerate() {
        let (name, out, client) = (
            name.clone(),
            cfg.scratch.join(format!("out-loss-{i}")),
            ours_get(flags),
        );
        contenders.push(Contender::new(label, move |round| {
            let server = ours_addr.ok_or("tftp-serve did not start")?;
            let relay = LossyProxy::start(server, faults, faults, round as u64);
            fetch(&client, relay.addr(), &name, len, &out, limit)
        }));
    }
    let hpa = "tftp ↔ in.tftpd (tftp-hpa)";
    let tftpd = peer("tftp")
        .then_some(())
        .and_then(|_| tftpd_hpa(&dir).ok());
    if let Some((_, addr)) = &tftpd {
        let (addr, name, out, client) = (
            *addr,
            name.clone(),
            cfg.scratch.join("out-loss-hpa"),
            tftp_hpa(),
        );
        contenders.push(Contender::new(hpa, move |round| {
            let relay = LossyProxy::start(addr, faults, faults, round as u64);
            fetch(&client, relay.addr(), &name, len, &out, limit)
        }));
        pairs.push(pair(ours[0].0, hpa, Some(5.0)));
        pairs.push(pair(ours[1].0, hpa, Some(5.0)));
    } else {
        skipped.push("tftp or in.tftpd (tftp-hpa, tftpd-hpa)".into());
    }
    let out = measure(
        "6 TFTP under loss",
        &format!("{} KiB, 3% dropped and 3% duplicated each way", len >> 10),
        MIB_S,
        cfg.rounds,
        contenders,
        skipped,
        pairs,
        Vec::new(),
    );
    drop((ours_srv, tftpd));
    vec![out]
}
