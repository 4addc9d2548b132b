//! The event bus: every event gets the next sequence number, is kept in a
//! bounded backlog, and goes to every subscriber. A subscriber that names
//! the last `seq` it saw first gets what it missed (or `Resync` when that is
//! no longer kept), then live events, with no gap and no duplicate: the
//! backlog is read and the live channel joined under one lock.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;
use topology::events::{Event, EventKind};

/// Events kept for pages that reconnect.
pub const BACKLOG: usize = 4096;

pub struct EventBus {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
}

struct Inner {
    next: u64,
    backlog: VecDeque<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        EventBus {
            inner: Mutex::new(Inner {
                next: 1,
                backlog: VecDeque::new(),
            }),
            tx,
        }
    }

    /// Publishes an event; returns its sequence number.
    pub fn publish(&self, kind: EventKind) -> u64 {
        let mut inner = self.inner.lock().expect("not poisoned");
        let event = Event {
            seq: inner.next,
            kind,
        };
        inner.next += 1;
        if inner.backlog.len() == BACKLOG {
            inner.backlog.pop_front();
        }
        inner.backlog.push_back(event.clone());
        let _ = self.tx.send(event.clone());
        event.seq
    }

    /// The last sequence number given out (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().expect("not poisoned").next - 1
    }

    /// Everything after `since`, then a receiver of what follows.
    pub fn subscribe(&self, since: u64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let inner = self.inner.lock().expect("not poisoned");
        let rx = self.tx.subscribe();
        let oldest = inner.backlog.front().map(|e| e.seq).unwrap_or(inner.next);
        let missed = if since + 1 < oldest && since < inner.next - 1 {
            vec![Event {
                seq: since,
                kind: EventKind::Resync,
            }]
        } else {
            inner
                .backlog
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect()
        };
        (missed, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(i: usize) -> EventKind {
        EventKind::Activity {
            lab: "l".into(),
            message: i.to_string(),
        }
    }

    #[tokio::test]
    async fn a_late_subscriber_catches_up_without_gap_or_duplicate() {
        let bus = EventBus::new();
        for i in 0..5 {
            bus.publish(activity(i));
        }
        let (missed, mut rx) = bus.subscribe(2);
        assert_eq!(missed.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        bus.publish(activity(5));
        assert_eq!(rx.recv().await.unwrap().seq, 6);
        let (missed, _) = bus.subscribe(6);
        assert!(missed.is_empty());
    }

    #[test]
    fn too_old_a_seq_asks_for_a_resync() {
        let bus = EventBus::new();
        for i in 0..BACKLOG + 10 {
            bus.publish(activity(i));
        }
        let (missed, _) = bus.subscribe(3);
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].kind, EventKind::Resync);
        let (missed, _) = bus.subscribe(0);
        assert_eq!(
            missed[0].kind,
            EventKind::Resync,
            "a new page starts from the lab state, not from seq 0"
        );
    }
}
