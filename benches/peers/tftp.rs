//! Scenarios 4, 5 and 6: TFTP lock-step downloads against tftp-hpa, atftp and curl, option sweeps, and transfers through a lossy relay.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    MIB_S, Outcome, PATIENCE, Plan, Process, Proto, Trial, data_file, free_port, mib, peer,
    peer_cmd, run_timed, start_ours, start_peer,
};
use crate::util::is_root;
use crate::util::lossy::{Faults, LossyProxy};
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
        let mut c = peer_cmd("tftp");
        c.args([server.ip().to_string(), server.port().to_string()])
            .args(["-m", "binary", "-c", "get", remote])
            .arg(local);
        c
    })
}

fn curl() -> Client {
    Box::new(|server, remote, local| {
        let mut c = peer_cmd("curl");
        c.args(["-s", "--tftp-no-options", "-o"])
            .arg(local)
            .arg(format!("tftp://{server}/{remote}"));
        c
    })
}

fn atftp(blksize: Option<u32>) -> Client {
    Box::new(move |server, remote, local| {
        let mut c = peer_cmd("atftp");
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

fn tftp_serve(dir: &Path) -> Result<(Process, SocketAddr), String> {
    let mut c = Command::new(bin("tftp-serve"));
    c.arg(dir).args(["-p", "0", "-b", "127.0.0.1", "-q"]);
    start_ours(c)
}

fn tftpd_hpa(dir: &Path) -> Result<(Process, SocketAddr), String> {
    let port = free_port(Proto::Udp);
    let mut c = peer_cmd("in.tftpd");
    c.args(["-L", "-s"])
        .arg(dir)
        .arg("-a")
        .arg(format!("127.0.0.1:{port}"));
    if is_root() {
        c.args(["-u", "nobody"]);
    }
    start_peer(c, Proto::Udp, port)
}

/// tftpd-hpa serving `dir`, if `needed_by` (its client in a scenario) and
/// in.tftpd are both installed.
fn tftpd_for(needed_by: &str, dir: &Path) -> Option<(Process, SocketAddr)> {
    (peer(needed_by) && peer("in.tftpd"))
        .then(|| tftpd_hpa(dir).ok())
        .flatten()
}

/// Scenario 4: plain RFC 1350 downloads, 512-byte blocks, one at a time.
pub fn lockstep(cfg: &Config) -> Vec<Outcome> {
    let len: u64 = if cfg.full { 64 << 20 } else { 8 << 20 };
    let (dir, name) = serve_dir(cfg, len);
    let work = format!("{} MiB, 512 B blocks, lock-step", len >> 20);

    // 4a: every client fetching from tftpd-hpa.
    let mut plan = Plan::new("4a TFTP get from tftpd-hpa", work.clone(), MIB_S);
    let tftpd = peer("in.tftpd").then(|| tftpd_hpa(&dir).ok()).flatten();
    if tftpd.is_none() {
        plan.skip("in.tftpd (tftpd-hpa): every client row needs it");
    }
    let server = tftpd.as_ref().map(|t| t.1);
    let ours = "tftp-get --no-options";
    let clients: [(&str, &str, Client); 4] = [
        (ours, "tftp-get", ours_get(&["--no-options"])),
        ("tftp (tftp-hpa)", "tftp", tftp_hpa()),
        ("curl --tftp-no-options", "curl", curl()),
        ("atftp", "atftp", atftp(None)),
    ];
    for (i, (label, cmd, client)) in clients.into_iter().enumerate() {
        let (name, out) = (name.clone(), cfg.scratch.join(format!("out-{i}")));
        let run = move |_| {
            let server = server.ok_or("tftpd-hpa did not start")?;
            fetch(&client, server, &name, len, &out, PATIENCE)
        };
        if i == 0 {
            plan.ours(label, run);
        } else {
            plan.peer(cmd, label, ours, Some(1.0), run);
        }
    }
    let mut outcomes = vec![plan.measure(cfg.rounds)];
    drop(tftpd);

    // 4b: our server and tftpd-hpa, with curl as the client.
    let mut plan = Plan::new("4b TFTP serve to curl", work, MIB_S);
    let ours_srv = tftp_serve(&dir);
    let hpa = tftpd_for("curl", &dir);
    if peer("curl") {
        let ours = "tftp-serve";
        let servers = [
            (ours, ours_srv.as_ref().map(|s| s.1).ok()),
            ("in.tftpd (tftpd-hpa)", hpa.as_ref().map(|s| s.1)),
        ];
        for (i, (label, addr)) in servers.into_iter().enumerate() {
            let (name, out) = (name.clone(), cfg.scratch.join(format!("out-serve-{i}")));
            let run = move |_| {
                let server = addr.ok_or(format!("{label} did not start"))?;
                fetch(&curl(), server, &name, len, &out, PATIENCE)
            };
            if i == 0 {
                plan.ours(label, run);
            } else {
                plan.peer("in.tftpd", label, ours, Some(1.0), run);
            }
        }
    } else {
        plan.skip("curl (the client of every 4b row)");
    }
    outcomes.push(plan.measure(cfg.rounds));
    drop((ours_srv, hpa));
    outcomes
}

/// Scenario 5: block sizes and windows, ours to ours, and atftp to tftpd-hpa.
pub fn options(cfg: &Config) -> Vec<Outcome> {
    let len: u64 = if cfg.full { 64 << 20 } else { 16 << 20 };
    let (dir, name) = serve_dir(cfg, len);
    let mut plan = Plan::new(
        "5 TFTP options",
        format!(
            "{} MiB, tftp-get ↔ tftp-serve, atftp ↔ tftpd-hpa",
            len >> 20
        ),
        MIB_S,
    );
    let ours_srv = tftp_serve(&dir);
    let ours_addr = ours_srv.as_ref().map(|s| s.1).ok();
    let tftpd = tftpd_for("atftp", &dir);
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
        plan.ours(label.clone(), move |_| {
            let server = ours_addr.ok_or("tftp-serve did not start")?;
            fetch(&client, server, &remote, len, &out, PATIENCE)
        });
        if w > 1 {
            continue;
        }
        let atftp_label = format!("atftp blksize {b}");
        match &tftpd {
            Some((_, addr)) => {
                let (addr, remote, out, client) = (
                    *addr,
                    name.clone(),
                    cfg.scratch.join(format!("out-opt-atftp-{i}")),
                    atftp(Some(b)),
                );
                plan.peer("atftp", &atftp_label, &label, Some(1.0), move |_| {
                    fetch(&client, addr, &remote, len, &out, PATIENCE)
                });
            }
            None => plan.skip(format!("{atftp_label} (needs atftp and in.tftpd)")),
        }
    }
    plan.compare("tftp-get -B 1468 -W 16", "tftp-get -B 1468 -W 1", Some(4.0));
    let out = plan.measure(cfg.rounds);
    drop((ours_srv, tftpd));
    vec![out]
}

/// Scenario 6: downloads through a relay that drops 3% and duplicates 3% of the
/// datagrams each way. Both tools get the same seed in a round, so the same faults.
/// The last rows (ours, and tftp-hpa in runs of up to 64 KiB) use a second relay:
/// 5% dropped and 5% duplicated late (0–20 ms after the original, so a copy can
/// arrive after the blocks that follow it) each way, with default flags.
pub fn loss(cfg: &Config) -> Vec<Outcome> {
    let len = cfg.loss_bytes;
    let (dir, name) = serve_dir(cfg, len);
    let mut plan = Plan::new(
        "6 TFTP under loss",
        format!("{} KiB, 3% dropped and 3% duplicated each way", len >> 10),
        MIB_S,
    );
    let faults = Faults {
        drop: 0.03,
        duplicate: 0.03,
        reorder: 0.0,
    };
    // tftp-hpa's 1 s timer costs about a second per lost packet.
    let limit = Duration::from_secs(60 + len / 100);
    let ours_srv = tftp_serve(&dir);
    let ours_addr = ours_srv.as_ref().map(|s| s.1).ok();
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
        plan.ours(label, move |round| {
            let server = ours_addr.ok_or("tftp-serve did not start")?;
            let relay = LossyProxy::start(server, faults, faults, round as u64);
            fetch(&client, relay.addr(), &name, len, &out, limit)
        });
    }
    let hpa = "tftp ↔ in.tftpd (tftp-hpa)";
    let tftpd = tftpd_for("tftp", &dir);
    match &tftpd {
        Some((_, addr)) => {
            let (addr, name, out, client) = (
                *addr,
                name.clone(),
                cfg.scratch.join("out-loss-hpa"),
                tftp_hpa(),
            );
            plan.peer("tftp", hpa, ours[0].0, Some(5.0), move |round| {
                let relay = LossyProxy::start(addr, faults, faults, round as u64);
                fetch(&client, relay.addr(), &name, len, &out, limit)
            });
            plan.compare(ours[1].0, hpa, Some(5.0));
        }
        None => plan.skip("tftp ↔ in.tftpd (needs tftp-hpa and tftpd-hpa)"),
    }

    // Late duplicates: a stale DATA or ACK turning up among newer ones.
    let late = Faults::loss_and_late_dups(0.05, 0.05, Duration::from_millis(20));
    let ours_late = "tftp-get ↔ tftp-serve (defaults), 5% lost + 5% late dups ≤ 20 ms";
    let (remote, out, client) = (
        name.clone(),
        cfg.scratch.join("out-loss-late"),
        ours_get(&[]),
    );
    plan.ours(ours_late, move |round| {
        let server = ours_addr.ok_or("tftp-serve did not start")?;
        let relay = LossyProxy::start(server, late, late, round as u64);
        fetch(&client, relay.addr(), &remote, len, &out, limit)
    });
    // tftp-hpa needs about 0.2 s per KiB through this relay (220 s a round for
    // the full run's 1 MiB), so it takes part only in runs of up to 64 KiB.
    const HPA_LATE_MAX: u64 = 64 << 10;
    let hpa_late = "tftp ↔ in.tftpd (tftp-hpa), 5% lost + 5% late dups ≤ 20 ms";
    match &tftpd {
        Some((_, addr)) if len <= HPA_LATE_MAX => {
            let (addr, remote, out, client) = (
                *addr,
                name.clone(),
                cfg.scratch.join("out-loss-late-hpa"),
                tftp_hpa(),
            );
            plan.peer("tftp", hpa_late, ours_late, None, move |round| {
                let relay = LossyProxy::start(addr, late, late, round as u64);
                fetch(&client, relay.addr(), &remote, len, &out, limit)
            });
        }
        Some(_) => plan.skip_because(
            hpa_late,
            format!(
                "minutes a round above {} KiB (--loss-bytes)",
                HPA_LATE_MAX >> 10
            ),
        ),
        // Listed as skipped above.
        None => {}
    }
    let out = plan.measure(cfg.rounds);
    drop((ours_srv, tftpd));
    vec![out]
}
