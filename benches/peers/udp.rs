//! Scenario 3: UDP echo with a window of datagrams in flight, against the course's Python echo server and socat.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

use crate::Config;
use crate::harness::{
    Metric, Outcome, Pinned, Plan, Proto, Trial, course_server, cpu_seconds, our_server,
    peer_server, thread_cpu_seconds, trial_with,
};

const PAYLOAD: usize = 64;

/// Send `total` datagrams of 64 bytes keeping `window` in flight; count the echoes.
/// An echo that has not come within `LOST` is counted lost and its place in the
/// window reused, so a lossy server slows the run down but never hangs it.
///
/// The generator must cost less than the servers it measures, or every server
/// looks as fast as the generator. One `send` and one `recv` per datagram made it
/// the bottleneck, so it works in batches: one `sendmmsg` fills the window, and
/// one `recvmmsg` takes every echo that has arrived (waiting only for the first).
fn echo_load(addr: SocketAddr, server_pid: u32, total: u64, window: u64) -> Result<Trial, String> {
    const LOST: Duration = Duration::from_millis(200);
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.connect(addr).map_err(|e| e.to_string())?;
    // The wait for the first echo of a `recvmmsg` (recvmmsg's own timeout
    // argument is only checked between datagrams, so it cannot be used).
    s.set_read_timeout(Some(LOST)).map_err(|e| e.to_string())?;
    let fd = s.as_raw_fd();
    let slots = window as usize;
    let msg = [b'u'; PAYLOAD];
    // The socket is connected: no destination address per datagram.
    let to: Vec<Option<SockaddrStorage>> = vec![None; slots];
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(slots, None);
    // One buffer per echo, each big enough for the whole window merged into one.
    let mut bufs = vec![vec![0u8; PAYLOAD * slots]; slots];
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(slots, None);
    let (mut sent, mut answered, mut lost) = (0u64, 0u64, 0u64);
    let (server_cpu, load_cpu) = (cpu_seconds(server_pid), thread_cpu_seconds());
    let started = Instant::now();
    while answered + lost < total {
        let room = (window - (sent - answered - lost)).min(total - sent) as usize;
        if room > 0 {
            let out = vec![[IoSlice::new(&msg)]; room];
            let none: [ControlMessage; 0] = [];
            match sendmmsg(
                fd,
                &mut send_headers,
                &out,
                &to[..room],
                none,
                MsgFlags::empty(),
            ) {
                Ok(done) => sent += done.count() as u64,
                // The kernel's queue is full for a moment: wait for echoes instead.
                Err(Errno::EAGAIN | Errno::ENOBUFS | Errno::EINTR) => {}
                Err(e) => return Err(format!("sendmmsg: {e}")),
            }
        }
        let mut iovs: Vec<[IoSliceMut; 1]> =
            bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        // MSG_WAITFORONE: block (up to LOST) for the first echo, then take only
        // what is already there.
        match recvmmsg(
            fd,
            &mut recv_headers,
            &mut iovs,
            MsgFlags::MSG_WAITFORONE,
            None,
        ) {
            // A peer that reads its echo back through a pipe may merge datagrams:
            // count payloads, not datagrams.
            Ok(echoes) => {
                let payloads: usize = echoes.map(|m| (m.bytes / PAYLOAD).max(1)).sum();
                answered = (answered + payloads as u64).min(sent - lost);
            }
            Err(Errno::EAGAIN) => lost += sent - answered - lost,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("recvmmsg: {e}")),
        }
        // Losses are counted, not waited for; a server that loses many is done with.
        if lost * 100 > total {
            return Err(format!("{lost} of {total} echoes lost"));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_datagram = 1e6 / total as f64;
    let server_us = (cpu_seconds(server_pid) - server_cpu) * per_datagram;
    let load_us = (thread_cpu_seconds() - load_cpu) * per_datagram;
    Ok(Trial::new(server_us)
        .with("dgrams/s", total as f64 / elapsed)
        .with("lost", lost as f64)
        .with("load CPU µs/dgram", load_us))
}

/// Scenario 3. The figure compared is the server's CPU time per datagram: the
/// throughput is capped by the load generator (it needs about as much CPU per
/// datagram as the fastest server), so it would say little about the server.
pub fn echo(cfg: &Config) -> Vec<Outcome> {
    let total: u64 = if cfg.full { 200_000 } else { 50_000 };
    let window = 32;
    let work = format!("{total} datagrams of 64 B, {window} in flight");
    let mut plan = Plan::new("3 UDP echo, server CPU", work, Metric::time("µs/dgram"));
    let ours = "udp-echo serve";
    plan.ours(ours, move |_| {
        trial_with(our_server("udp-echo serve", &[])?, |addr, pid| {
            echo_load(addr, pid, total, window)
        })
    });
    let python = "python3 lesson09_udp_echo_server.py";
    plan.peer("python3", python, ours, Some(0.3), move |_| {
        trial_with(
            course_server("lesson09_udp_echo_server.py")?,
            |addr, pid| echo_load(addr, pid, total, window),
        )
    });
    // socat's fastest echo: one process bound to the first sender, echoing through a
    // pipe. `-b 64` keeps each read from the pipe to one payload so datagrams are not
    // merged. (`UDP-RECVFROM:P,fork EXEC:cat` forks a process per datagram and
    // manages a few hundred a second.)
    let label = "socat -b 64 UDP-LISTEN PIPE";
    plan.peer("socat", label, ours, Some(0.3), move |_| {
        let pipe = |p| format!("-b 64 UDP-LISTEN:{p},bind=127.0.0.1 PIPE");
        trial_with(peer_server(Proto::Udp, "socat", pipe)?, |addr, pid| {
            echo_load(addr, pid, total, window)
        })
    });
    let pinned = Pinned::new();
    plan.note(Pinned::note(&pinned));
    vec![plan.measure(cfg.rounds)]
}
