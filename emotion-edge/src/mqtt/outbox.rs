//! Readings waiting for the broker: a bounded queue, oldest first, that keeps a reading
//! until the broker has acknowledged it (QoS 1's PUBACK), so a connection that drops
//! loses nothing: whatever was not acknowledged is sent again, in order, on the next one.
//! Pure bookkeeping (no network), tested here.

use std::collections::{HashMap, VecDeque};

/// One reading waiting to be sent or acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Unique among the readings queued (and their spool files), oldest lowest.
    pub id: u64,
    /// Its JSON.
    pub payload: String,
}

/// The queue and what the client was handed on this connection.
#[derive(Debug)]
pub struct Outbox {
    /// Oldest first; the first `handed` went to the client on this connection.
    queue: VecDeque<Queued>,
    handed: usize,
    capacity: usize,
    /// The publishes handed to the client, in order, until it says their packet ids:
    /// `Some(id)` a reading, `None` anything else (state, discovery, availability).
    awaiting_id: VecDeque<Option<u64>>,
    /// Packet id → reading, until its acknowledgement.
    in_flight: HashMap<u16, u64>,
    /// Readings the broker acknowledged.
    pub acknowledged: u64,
    /// Readings dropped because the queue was full.
    pub dropped_full: u64,
}

impl Outbox {
    /// An empty outbox that holds at most `capacity` readings (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            handed: 0,
            capacity: capacity.max(1),
            awaiting_id: VecDeque::new(),
            in_flight: HashMap::new(),
            acknowledged: 0,
            dropped_full: 0,
        }
    }

    /// Readings not yet acknowledged.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Adds a reading. When full, the oldest one not yet handed to the client is
    /// dropped (counted; its id returned): recent readings matter most.
    pub fn push(&mut self, reading: Queued) -> Option<u64> {
        let mut dropped = None;
        if self.queue.len() >= self.capacity {
            let at = if self.handed < self.queue.len() {
                self.handed
            } else {
                // All of it is in flight (a buffer smaller than the window): the oldest.
                self.handed -= 1;
                0
            };
            dropped = self.queue.remove(at).map(|q| q.id);
            self.dropped_full += 1;
        }
        self.queue.push_back(reading);
        dropped
    }

    /// The next reading to hand to the client, while fewer than `window` are in flight.
    pub fn next_to_send(&mut self, window: usize) -> Option<Queued> {
        if self.handed >= window.max(1) {
            return None;
        }
        let next = self.queue.get(self.handed).cloned()?;
        self.handed += 1;
        Some(next)
    }

    /// A publish was handed to the client: `Some(id)` for a reading.
    pub fn handed(&mut self, reading: Option<u64>) {
        self.awaiting_id.push_back(reading);
    }

    /// The client sent the next handed publish with packet id `packet` (it sends them
    /// in the order handed).
    pub fn sent(&mut self, packet: u16) {
        if let Some(Some(reading)) = self.awaiting_id.pop_front() {
            self.in_flight.insert(packet, reading);
        }
    }

    /// The broker acknowledged packet `packet`; the reading's id when it was one.
    pub fn acknowledged(&mut self, packet: u16) -> Option<u64> {
        let id = self.in_flight.remove(&packet)?;
        let at = self.queue.iter().position(|q| q.id == id)?;
        self.queue.remove(at);
        if at < self.handed {
            self.handed -= 1;
        }
        self.acknowledged += 1;
        Some(id)
    }

    /// The connection dropped: nothing is in flight any more, and every reading not
    /// acknowledged is sent again, oldest first, on the next connection.
    pub fn disconnected(&mut self) {
        self.handed = 0;
        self.awaiting_id.clear();
        self.in_flight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(id: u64) -> Queued {
        Queued {
            id,
            payload: format!("{{\"seq\":{id}}}"),
        }
    }

    /// Hands up to `window` readings, each with a state publish after it, and says
    /// their packet ids from `next_id` on; returns the numbers handed.
    fn send(outbox: &mut Outbox, window: usize, next_id: &mut u16) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(q) = outbox.next_to_send(window) {
            outbox.handed(Some(q.id));
            outbox.handed(None);
            sent.push(q.id);
        }
        for _ in 0..sent.len() * 2 {
            outbox.sent(*next_id);
            *next_id += 1;
        }
        sent
    }

    #[test]
    fn readings_leave_once_acknowledged_and_in_order() {
        let mut outbox = Outbox::new(10);
        for seq in 1..=5 {
            outbox.push(reading(seq));
        }
        let mut id = 1;
        assert_eq!(send(&mut outbox, 3, &mut id), [1, 2, 3]);
        assert_eq!(
            send(&mut outbox, 3, &mut id),
            Vec::<u64>::new(),
            "window full"
        );
        // Packet ids 1, 3, 5 are the readings; 2, 4, 6 their states.
        assert_eq!(outbox.acknowledged(2), None, "a state, not a reading");
        assert_eq!(outbox.acknowledged(1), Some(1));
        assert_eq!(send(&mut outbox, 3, &mut id), [4]);
        assert_eq!(outbox.len(), 4);
        assert_eq!(outbox.acknowledged, 1);
    }

    #[test]
    fn a_dropped_connection_sends_the_unacknowledged_again_oldest_first() {
        let mut outbox = Outbox::new(10);
        for seq in 1..=4 {
            outbox.push(reading(seq));
        }
        let mut id = 1;
        assert_eq!(send(&mut outbox, 8, &mut id), [1, 2, 3, 4]);
        assert_eq!(outbox.acknowledged(3), Some(2));
        outbox.disconnected();
        assert_eq!(
            outbox.acknowledged(1),
            None,
            "acks of the old connection are gone"
        );
        outbox.push(reading(5));
        let mut id = 1;
        assert_eq!(send(&mut outbox, 8, &mut id), [1, 3, 4, 5]);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_waiting_and_counts_it() {
        let mut outbox = Outbox::new(3);
        let mut id = 1;
        outbox.push(reading(1));
        assert_eq!(send(&mut outbox, 1, &mut id), [1], "1 is in flight");
        outbox.push(reading(2));
        outbox.push(reading(3));
        assert_eq!(outbox.push(reading(4)), Some(2), "the oldest not in flight");
        assert_eq!(outbox.push(reading(5)), Some(3));
        assert_eq!(outbox.dropped_full, 2);
        assert_eq!(outbox.acknowledged(1), Some(1));
        let mut rest = Vec::new();
        while let Some(q) = outbox.next_to_send(8) {
            rest.push(q.id);
        }
        assert_eq!(rest, [4, 5]);
    }

    #[test]
    fn a_one_reading_buffer_keeps_the_newest() {
        let mut outbox = Outbox::new(1);
        let mut id = 1;
        outbox.push(reading(1));
        send(&mut outbox, 4, &mut id);
        assert_eq!(outbox.push(reading(2)), Some(1));
        assert_eq!(outbox.acknowledged(1), None, "its ack finds nothing");
        assert_eq!(outbox.next_to_send(4).map(|q| q.id), Some(2));
    }
}
