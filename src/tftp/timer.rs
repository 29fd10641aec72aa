//! When to retransmit: RFC 1350's fixed timer with exponential backoff, or a TCP-style timer adapted to the measured round-trip time.
//!
//! UDP may lose any datagram, so each side of a TFTP transfer waits a while
//! for an answer and then sends its last packet again. How long to wait is
//! the whole question. The RFCs wait whole seconds (the `timeout` option
//! counts in seconds), which on a LAN, where an answer takes a tenth of a
//! millisecond, turns every lost packet into a one-second stall.
//!
//! When the peer shows it can live with shorter timers (it accepted
//! tftp-hpa's `utimeout` option), we estimate the round-trip time the way
//! TCP does (RFC 6298: a smoothed average `srtt` and its variation
//! `rttvar`) and wait `srtt + 4·rttvar`, never less than [`MIN_RTO`]; the
//! negotiated timeout is only the first guess. Samples come only from packets
//! sent once (Karn's rule): for a retransmitted packet we cannot tell which
//! copy an answer belongs to.
//!
//! Either way, every timeout in a row doubles the wait (up to a cap) and
//! any progress resets it.

use std::time::Duration;

/// Floor of the adaptive timer. Loopback answers in tens of microseconds,
/// but a busy machine can take a few milliseconds to schedule the peer's
/// thread; waiting less than this would retransmit packets that are not lost.
pub const MIN_RTO: Duration = Duration::from_millis(2);

/// Longest single wait of the adaptive timer, however many timeouts in a row.
const ADAPTIVE_CAP: Duration = Duration::from_secs(1);

/// The fixed timer doubles at most this many times (1 s, 2 s, 4 s, 8 s, 8 s, ...).
const FIXED_MAX_DOUBLINGS: u32 = 3;

/// A retransmission timer.
#[derive(Debug, Clone)]
pub struct RetransmitTimer {
    base: Duration,
    adaptive: bool,
    srtt: Option<Duration>,
    min_rtt: Option<Duration>,
    rttvar: Duration,
    backoff: u32,
}

impl RetransmitTimer {
    /// RFC 1350's timer: wait `base`, doubling on each timeout in a row.
    pub fn fixed(base: Duration) -> RetransmitTimer {
        RetransmitTimer {
            base: base.max(Duration::from_millis(1)),
            adaptive: false,
            srtt: None,
            min_rtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
        }
    }

    /// A timer that follows the measured round-trip time, waiting `first`
    /// until it has a measurement.
    pub fn adaptive(first: Duration) -> RetransmitTimer {
        RetransmitTimer {
            adaptive: true,
            ..RetransmitTimer::fixed(first.max(MIN_RTO))
        }
    }

    /// Is this the adaptive timer?
    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The shortest round trip measured: what the path can do, whatever
    /// one slow answer (a lost packet answered on the peer's own retry) did
    /// to the average.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// How long to wait now for an answer.
    pub fn rto(&self) -> Duration {
        if !self.adaptive {
            return self.base * (1 << self.backoff.min(FIXED_MAX_DOUBLINGS));
        }
        let rto = match self.srtt {
            None => self.base,
            Some(srtt) => (srtt + (self.rttvar * 4).max(Duration::from_millis(1)))
                .clamp(MIN_RTO, ADAPTIVE_CAP.max(self.base)),
        };
        (rto * (1 << self.backoff.min(16))).min(ADAPTIVE_CAP.max(self.base))
    }

    /// A round-trip time measured on a packet that was sent only once.
    pub fn sample(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        // RFC 6298 section 2, with alpha = 1/8 and beta = 1/4.
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The wait ended without an answer.
    pub fn timed_out(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// The peer answered: waits go back to their normal length.
    pub fn progressed(&mut self) {
        self.backoff = 0;
    }

    /// The longest a receiver stays after its final ACK, to answer the final
    /// block again should the ACK be lost: about one of the sender's
    /// retransmission intervals. With the fixed timer that is the timeout;
    /// an adaptive sender retransmits within a few of our own RTOs. The
    /// receiver leaves sooner once the sender's transfer ID is seen closed
    /// (see [`super::proto::Receiver::confirm`]).
    pub fn linger(&self) -> Duration {
        if self.adaptive {
            (self.rto() * 4).clamp(Duration::from_millis(20), ADAPTIVE_CAP)
        } else {
            self.base
        }
    }

    /// The shortest time without progress after which giving up is allowed,
    /// for `retries` retransmissions. The fixed timer's waits already add up
    /// to more; the adaptive timer's waits are tiny, and a peer that is
    /// merely paused (a busy machine, a debugger) must not be given up on
    /// after a few milliseconds, so it gets at least a second per retry.
    pub fn patience(&self, retries: u32) -> Duration {
        if self.adaptive {
            Duration::from_secs(u64::from(retries))
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fixed_timer_doubles_to_a_cap_and_resets() {
        let mut t = RetransmitTimer::fixed(Duration::from_secs(1));
        let mut waits = vec![];
        for _ in 0..6 {
            waits.push(t.rto().as_secs());
            t.timed_out();
        }
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        t.progressed();
        assert_eq!(t.rto(), Duration::from_secs(1));
        t.sample(MS);
        assert_eq!(
            t.rto(),
            Duration::from_secs(1),
            "samples do not change the fixed timer"
        );
    }

    #[test]
    fn adaptive_timer_follows_the_round_trip_time() {
        let mut t = RetransmitTimer::adaptive(Duration::from_millis(50));
        assert_eq!(
            t.rto(),
            Duration::from_millis(50),
            "before any sample: the first guess"
        );
        for _ in 0..20 {
            t.sample(Duration::from_micros(100));
        }
        assert_eq!(t.rto(), MIN_RTO, "loopback-fast answers hit the floor");
        for _ in 0..50 {
            t.sample(Duration::from_millis(20));
        }
        let rto = t.rto();
        assert!(
            rto >= Duration::from_millis(20) && rto <= Duration::from_millis(50),
            "{rto:?}"
        );
        for _ in 0..50 {
            t.sample(Duration::from_millis(200));
        }
        let rto = t.rto();
        assert!(
            rto >= Duration::from_millis(200),
            "a slow path is waited for: {rto:?}"
        );
        for _ in 0..50 {
            t.sample(Duration::from_secs(3));
        }
        assert_eq!(t.rto(), ADAPTIVE_CAP, "capped");
    }

    #[test]
    fn adaptive_backoff_is_capped_and_patience_is_long() {
        let mut t = RetransmitTimer::adaptive(Duration::from_millis(10));
        t.sample(Duration::from_micros(50));
        let first = t.rto();
        t.timed_out();
        assert_eq!(t.rto(), first * 2);
        for _ in 0..40 {
            t.timed_out();
        }
        assert_eq!(t.rto(), ADAPTIVE_CAP);
        assert_eq!(t.patience(6), Duration::from_secs(6));
        assert_eq!(
            RetransmitTimer::fixed(Duration::from_secs(1)).patience(6),
            Duration::ZERO
        );
    }
}
