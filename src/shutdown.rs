//! One shared "please stop" signal for Ctrl-C, that also wakes threads blocked in `accept`/`recv`.
//!
//! Setting a flag is not enough: a thread blocked in `accept()` or `recv()` never looks
//! at it. So besides the flag, whoever blocks registers a *waker* — typically "shut this
//! socket down" — and [`Shutdown::trigger`] runs them all. On Linux `shutdown()` on a
//! listening socket makes a blocked `accept()` return at once, and on a connected socket
//! it makes a blocked `recv()` return 0, exactly as if the peer had closed (lesson 03).

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

type Waker = Box<dyn Fn() + Send>;

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker>>,
}

/// A cloneable stop signal shared by every thread of a tool.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

/// Keeps a waker registered; dropping it unregisters (the socket is gone, nothing to wake).
#[must_use = "the waker is unregistered when this guard is dropped"]
pub struct WakerGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for WakerGuard {
    fn drop(&mut self) {
        lock(&self.inner.wakers).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A waker that panicked must not stop the others from running.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shutdown {
    /// A signal that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trigger this signal on Ctrl-C (SIGINT), SIGTERM (systemd, `docker stop`) and SIGHUP.
    #[cfg(feature = "cli")]
    pub fn install_ctrlc(&self) -> Result<(), ctrlc::Error> {
        let me = self.clone();
        ctrlc::set_handler(move || me.trigger())
    }

    /// Has a stop been asked for?
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Ask everyone to stop, and wake whoever is blocked.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        for waker in lock(&self.inner.wakers).values() {
            waker();
        }
    }

    /// Run `waker` on trigger (at once if the signal was already triggered).
    pub fn on_trigger(&self, waker: impl Fn() + Send + 'static) -> WakerGuard {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.wakers).insert(id, Box::new(waker));
        // Checked after inserting, so a trigger racing with us cannot be missed.
        if self.is_triggered()
            && let Some(w) = lock(&self.inner.wakers).get(&id)
        {
            w();
        }
        WakerGuard {
            inner: self.inner.clone(),
            id,
        }
    }

    /// Make a blocked `accept()` on `listener` return when triggered.
    pub fn wake_listener(&self, listener: &TcpListener) -> std::io::Result<WakerGuard> {
        let sock = socket2::Socket::from(listener.try_clone()?);
        Ok(self.on_trigger(move || {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }))
    }

    /// Make a blocked `recv()` on `stream` return 0 (end of stream) when triggered.
    pub fn wake_stream(&self, stream: &TcpStream) -> std::io::Result<WakerGuard> {
        let s = stream.try_clone()?;
        Ok(self.on_trigger(move || {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::{Duration, Instant};

    #[test]
    fn trigger_wakes_blocked_accept() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sd = Shutdown::new();
        let _g = sd.wake_listener(&listener).unwrap();
        let sd2 = sd.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let r = listener.accept();
            (r.is_err(), start.elapsed())
        });
        // Whether the thread is already blocked or not yet, accept must fail: a
        // shut-down listening socket refuses every later accept too.
        sd2.trigger();
        let (was_err, waited) = t.join().unwrap();
        assert!(was_err, "accept should fail after shutdown");
        assert!(waited < Duration::from_secs(5));
        assert!(sd.is_triggered());
    }

    #[test]
    fn trigger_wakes_blocked_recv() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (_server_side, _) = listener.accept().unwrap();
        let sd = Shutdown::new();
        let _g = sd.wake_stream(&client).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            (&client).read(&mut buf).unwrap_or(usize::MAX)
        });
        sd.trigger();
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn late_registration_runs_at_once_and_guard_unregisters() {
        let sd = Shutdown::new();
        sd.trigger();
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let g = sd.on_trigger(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(g);
        sd.trigger();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
