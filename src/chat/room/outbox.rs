//! The outgoing queue: bounded in bytes, one per member (and one for the transcript).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A queue of byte messages bounded in bytes, with one consumer that waits.
///
/// Bounded in bytes, not messages: 1000 one-line messages and one 8 KiB paste
/// cost what they weigh. Messages are `Arc<[u8]>`: a broadcast encoded once
/// sits in every queue that needs it without being copied.
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    ready: Condvar,
    limit: usize,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<[u8]>>,
    bytes: usize,
    closed: bool,
}

/// Why [`Outbox::push`] did not take a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Over the limit: the consumer is not keeping up.
    Full,
    /// Closed: the member is leaving.
    Closed,
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            limit,
        }
    }

    /// Queue `item`; never waits. An empty queue takes any one message, so a
    /// limit below the longest message cannot lock everyone out.
    pub(super) fn push(&self, item: Arc<[u8]>) -> Result<(), Refused> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(Refused::Closed);
        }
        if !q.items.is_empty() && q.bytes + item.len() > self.limit {
            return Err(Refused::Full);
        }
        q.bytes += item.len();
        q.items.push_back(item);
        self.ready.notify_one();
        Ok(())
    }

    /// Take no more; what is queued is still delivered.
    pub(super) fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_all();
    }

    /// Take no more and forget what is queued.
    pub(super) fn abort(&self) {
        let mut q = lock(&self.queue);
        q.closed = true;
        q.items.clear();
        q.bytes = 0;
        self.ready.notify_all();
    }

    /// Wait for messages and append them to `batch` (at least one, then more
    /// while they fit in `max`). `false` once the queue is closed and empty.
    pub(super) fn next_batch(&self, batch: &mut Vec<u8>, max: usize) -> bool {
        let mut q = lock(&self.queue);
        while q.items.is_empty() {
            if q.closed {
                return false;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        while let Some(front) = q.items.front() {
            if !batch.is_empty() && batch.len() + front.len() > max {
                break;
            }
            batch.extend_from_slice(front);
            q.bytes -= front.len();
            q.items.pop_front();
        }
        true
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked must not take the room down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_is_bounded_in_bytes() {
        let q = Outbox::new(10);
        let item = |n: usize| -> Arc<[u8]> { vec![b'x'; n].into() };
        // An empty queue takes one message of any size...
        assert_eq!(q.push(item(50)), Ok(()));
        assert_eq!(q.push(item(1)), Err(Refused::Full));
        let mut batch = Vec::new();
        assert!(q.next_batch(&mut batch, 100));
        assert_eq!(batch.len(), 50);
        // ...then up to the limit.
        for _ in 0..5 {
            assert_eq!(q.push(item(2)), Ok(()));
        }
        assert_eq!(q.push(item(1)), Err(Refused::Full));
        batch.clear();
        assert!(q.next_batch(&mut batch, 5));
        assert_eq!(batch.len(), 4, "batches stop before the batch limit");
        q.close();
        assert_eq!(q.push(item(1)), Err(Refused::Closed));
        batch.clear();
        assert!(q.next_batch(&mut batch, 100), "closed queues still drain");
        assert_eq!(batch.len(), 6);
        assert!(!q.next_batch(&mut batch, 100));
    }
}
