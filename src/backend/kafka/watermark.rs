//! The per-partition at-least-once bookkeeping of a group consumer.

use std::collections::BTreeSet;

/// At-least-once bookkeeping of one partition within one assignment: which handed-out offsets
/// are not acknowledged yet, and so the position that is safe to commit (the lowest
/// unacknowledged offset, or one past the highest handed out when all are acknowledged).
///
/// A pure state machine; the consumer calls it under a lock and stores the positions it
/// returns. A nacked offset stays unacknowledged until it is handed out and acknowledged again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Handed out and not acknowledged.
    outstanding: BTreeSet<i64>,
    /// Nacked and not handed out again yet (a subset of `outstanding`).
    nacked: BTreeSet<i64>,
    /// One past the highest offset handed out.
    next: Option<i64>,
    /// The last position returned for storing (at first, the first offset handed out).
    stored: Option<i64>,
}

impl Watermark {
    /// Records that `offset` is handed out; returns whether an offset at or beyond it was
    /// handed out before in this assignment (this is a redelivery).
    pub fn hand_out(&mut self, offset: i64) -> bool {
        let again = self.next.is_some_and(|next| offset < next);
        // Before anything is acknowledged the position is where consuming started.
        self.stored.get_or_insert(offset);
        self.outstanding.insert(offset);
        self.nacked.remove(&offset);
        self.next = Some(self.next.map_or(offset + 1, |next| next.max(offset + 1)));
        again
    }

    /// Records an acknowledgement; returns the new position to commit when it moved forward.
    pub fn ack(&mut self, offset: i64) -> Option<i64> {
        self.outstanding.remove(&offset);
        self.nacked.remove(&offset);
        self.advance()
    }

    /// Records a nack; returns the offset the partition must be rewound to: the lowest nacked
    /// offset not handed out again yet (a rewind to a later one would skip it). `None` when the
    /// offset is no longer outstanding (another copy of it was acknowledged).
    pub fn nack(&mut self, offset: i64) -> Option<i64> {
        if !self.outstanding.contains(&offset) {
            return None;
        }
        self.nacked.insert(offset);
        self.nacked.first().copied()
    }

    /// After a rewind, fetching went on at `offset`: nacked offsets below it no longer exist on
    /// the broker (retention, compaction) and will never come back. Returns the new position to
    /// commit when it moved forward.
    pub fn resumed_at(&mut self, offset: i64) -> Option<i64> {
        let gone: Vec<i64> = self.nacked.range(..offset).copied().collect();
        for o in gone {
            self.nacked.remove(&o);
            self.outstanding.remove(&o);
        }
        self.advance()
    }

    /// Offsets handed out and not acknowledged.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// The position that is safe to commit now, if anything was handed out.
    pub fn position(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.next)
    }

    fn advance(&mut self) -> Option<i64> {
        let position = self.position()?;
        if self.stored.is_some_and(|stored| stored >= position) {
            return None;
        }
        self.stored = Some(position);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::Watermark;

    #[test]
    fn acks_in_order_advance_one_by_one() {
        let mut w = Watermark::default();
        assert_eq!(w.position(), None);
        assert!(!w.hand_out(10));
        assert!(!w.hand_out(11));
        assert_eq!(w.ack(10), Some(11));
        assert_eq!(w.ack(11), Some(12));
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn a_gap_holds_the_position_until_filled() {
        let mut w = Watermark::default();
        for o in 0..4 {
            w.hand_out(o);
        }
        assert_eq!(w.ack(1), None, "0 is still out");
        assert_eq!(w.ack(3), None);
        assert_eq!(w.ack(0), Some(2), "2 is still out");
        assert_eq!(w.ack(2), Some(4));
    }

    #[test]
    fn nack_holds_the_position_and_the_redelivery_is_flagged() {
        let mut w = Watermark::default();
        w.hand_out(5);
        w.hand_out(6);
        assert_eq!(w.nack(5), Some(5));
        assert_eq!(w.ack(6), None);
        assert_eq!(w.position(), Some(5));
        assert!(w.hand_out(5), "a redelivery");
        assert!(w.hand_out(6), "a duplicate of an acknowledged offset");
        assert_eq!(w.ack(5), Some(6));
        assert_eq!(w.ack(6), Some(7));
    }

    #[test]
    fn nack_of_an_acknowledged_offset_needs_no_rewind() {
        let mut w = Watermark::default();
        w.hand_out(1);
        w.hand_out(1);
        assert_eq!(w.ack(1), Some(2));
        assert_eq!(w.nack(1), None);
    }

    #[test]
    fn a_later_nack_rewinds_to_the_earliest_nacked_offset() {
        let mut w = Watermark::default();
        for o in 0..4 {
            w.hand_out(o);
        }
        assert_eq!(w.nack(1), Some(1));
        // Rewound to 1, nothing fetched again yet, and 2 is nacked too.
        assert_eq!(w.nack(2), Some(1));
        assert_eq!(w.resumed_at(1), None);
        assert_eq!(w.position(), Some(0));
    }

    #[test]
    fn offsets_gone_from_the_broker_release_the_position() {
        let mut w = Watermark::default();
        w.hand_out(3);
        w.hand_out(4);
        assert_eq!(w.nack(3), Some(3));
        assert_eq!(w.nack(4), Some(3));
        assert_eq!(w.position(), Some(3));
        // After the rewind fetching went on at 9: 3 and 4 were deleted meanwhile.
        assert_eq!(w.resumed_at(9), Some(5));
        assert!(!w.hand_out(9));
        assert_eq!(w.position(), Some(9));
    }

    #[test]
    fn resuming_keeps_offsets_that_are_only_in_flight() {
        let mut w = Watermark::default();
        w.hand_out(1);
        w.hand_out(2);
        assert_eq!(w.nack(2), Some(2));
        assert_eq!(w.resumed_at(2), None);
        assert_eq!(w.position(), Some(1), "1 is in flight, not nacked");
    }

    /// A model check over random schedules of hand-outs, acks and nacks with rewinds: the
    /// stored position never passes an offset handed out and never acknowledged, never goes
    /// back, and reaches the end once everything is acknowledged.
    #[test]
    fn random_schedules_never_commit_past_an_unacked_offset() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next_random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let mut w = Watermark::default();
            let mut unacked: std::collections::BTreeSet<i64> = Default::default();
            // Acknowledged at least once: a rewind may hand these out again as duplicates.
            let mut done: std::collections::BTreeSet<i64> = Default::default();
            let mut fetch = 0i64;
            let mut stored: Option<i64> = None;
            for _ in 0..200 {
                match next_random(4) {
                    0 | 1 => {
                        w.hand_out(fetch);
                        unacked.insert(fetch);
                        fetch += 1;
                    }
                    2 if !unacked.is_empty() => {
                        let i = next_random(unacked.len() as u64) as usize;
                        let o = *unacked.iter().nth(i).unwrap();
                        unacked.remove(&o);
                        done.insert(o);
                        if let Some(p) = w.ack(o) {
                            assert!(stored.is_none_or(|s| p > s), "monotonic");
                            stored = Some(p);
                        }
                    }
                    3 if !unacked.is_empty() => {
                        let i = next_random(unacked.len() as u64) as usize;
                        let o = *unacked.iter().nth(i).unwrap();
                        if let Some(target) = w.nack(o) {
                            // Rewind: fetching goes on at the target.
                            fetch = target;
                            assert_eq!(w.resumed_at(target), None);
                        }
                    }
                    _ => {}
                }
                let never_acked = unacked.iter().find(|o| !done.contains(o));
                if let (Some(s), Some(first)) = (stored, never_acked) {
                    assert!(s <= *first, "stored {s} passes unacknowledged {first}");
                }
            }
            for o in std::mem::take(&mut unacked) {
                if let Some(p) = w.ack(o) {
                    stored = Some(p);
                }
            }
            assert_eq!(w.in_flight(), 0);
            assert_eq!(stored, w.position(), "everything acknowledged is stored");
        }
    }
}
