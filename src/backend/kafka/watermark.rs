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
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use proptest::sample::Index;

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

    /// One step of a consumer and its broker.
    #[derive(Debug, Clone)]
    enum Op {
        /// The next fetched offset is handed out.
        HandOut,
        /// An unacknowledged offset is acknowledged.
        Ack(Index),
        /// An unacknowledged offset is nacked: the consumer rewinds to the offset `nack`
        /// returns and fetching resumes there, or at the log start if retention deleted it.
        Nack(Index),
        /// A second copy of an offset acknowledged before is acknowledged (which changes
        /// nothing) or nacked (which needs no rewind).
        Duplicate(Index, bool),
        /// Retention deletes more offsets from the start of the log.
        Retain(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::HandOut),
            3 => any::<Index>().prop_map(Op::Ack),
            1 => any::<Index>().prop_map(Op::Nack),
            1 => (any::<Index>(), any::<bool>()).prop_map(|(i, nack)| Op::Duplicate(i, nack)),
            1 => (1..4i64).prop_map(Op::Retain),
        ]
    }

    /// The broker and the consumer's view of the partition, kept as plainly as possible.
    struct Model {
        /// The next offset fetching hands out.
        fetch: i64,
        /// The first offset retention has not deleted.
        log_start: i64,
        /// One past the highest offset handed out.
        end: Option<i64>,
        /// Handed out and not acknowledged since.
        unacked: BTreeSet<i64>,
        /// Acknowledged at least once.
        acked: BTreeSet<i64>,
        /// Nacked and not handed out since.
        nacked: BTreeSet<i64>,
        /// The last position the watermark returned for storing.
        stored: Option<i64>,
    }

    impl Model {
        fn new(start: i64) -> Self {
            Model {
                fetch: start,
                log_start: start,
                end: None,
                unacked: BTreeSet::new(),
                acked: BTreeSet::new(),
                nacked: BTreeSet::new(),
                stored: None,
            }
        }

        /// Takes a position the watermark returned: it only ever moves forward.
        fn store(&mut self, returned: Option<i64>) -> Result<(), TestCaseError> {
            if let Some(p) = returned {
                prop_assert!(
                    self.stored.is_none_or(|s| p > s),
                    "{p} after {:?}",
                    self.stored
                );
                self.stored = Some(p);
            }
            Ok(())
        }

        fn step(&mut self, w: &mut Watermark, op: Op) -> Result<(), TestCaseError> {
            match op {
                Op::HandOut => {
                    let offset = self.fetch.max(self.log_start);
                    let again = w.hand_out(offset);
                    prop_assert_eq!(again, self.end.is_some_and(|end| offset < end));
                    self.stored.get_or_insert(offset);
                    self.unacked.insert(offset);
                    self.nacked.remove(&offset);
                    self.end = Some(self.end.map_or(offset + 1, |end| end.max(offset + 1)));
                    self.fetch = offset + 1;
                }
                Op::Ack(i) if !self.unacked.is_empty() => {
                    let offset = *i.get(&self.unacked.iter().copied().collect::<Vec<_>>());
                    self.unacked.remove(&offset);
                    self.nacked.remove(&offset);
                    self.acked.insert(offset);
                    self.store(w.ack(offset))?;
                }
                Op::Nack(i) if !self.unacked.is_empty() => {
                    let offset = *i.get(&self.unacked.iter().copied().collect::<Vec<_>>());
                    self.nacked.insert(offset);
                    let target = w.nack(offset);
                    prop_assert_eq!(target, self.nacked.first().copied(), "rewind target");
                    self.fetch = target.unwrap_or(offset).max(self.log_start);
                    let gone: Vec<i64> = self.nacked.range(..self.fetch).copied().collect();
                    for offset in gone {
                        self.nacked.remove(&offset);
                        self.unacked.remove(&offset);
                    }
                    self.store(w.resumed_at(self.fetch))?;
                }
                Op::Duplicate(i, nack) => {
                    let done: Vec<i64> = self.acked.difference(&self.unacked).copied().collect();
                    if done.is_empty() {
                        return Ok(());
                    }
                    let offset = *i.get(&done);
                    if nack {
                        prop_assert_eq!(
                            w.nack(offset),
                            None,
                            "no rewind for acknowledged {}",
                            offset
                        );
                    } else {
                        self.store(w.ack(offset))?;
                    }
                }
                Op::Retain(n) => self.log_start += n,
                _ => {}
            }
            Ok(())
        }

        /// The watermark's position is the lowest offset still out, else the end; what it
        /// returned for storing never passes an offset handed out and never acknowledged.
        fn check(&self, w: &Watermark) -> Result<(), TestCaseError> {
            prop_assert_eq!(w.position(), self.unacked.first().copied().or(self.end));
            prop_assert_eq!(w.in_flight(), self.unacked.len());
            if let (Some(stored), Some(first)) =
                (self.stored, self.unacked.difference(&self.acked).next())
            {
                prop_assert!(
                    stored <= *first,
                    "stored {} passes unacknowledged {}",
                    stored,
                    first
                );
            }
            if let (Some(stored), Some(end)) = (self.stored, self.end) {
                prop_assert!(stored <= end);
            }
            Ok(())
        }
    }

    proptest! {
        /// Any schedule of hand-outs, acks, nacks with rewinds, duplicates and retention, then
        /// everything acknowledged: the stored position reaches the end.
        #[test]
        fn stored_position_follows_the_model(
            start in 0..1000i64,
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let mut w = Watermark::default();
            let mut model = Model::new(start);
            for op in ops {
                model.step(&mut w, op)?;
                model.check(&w)?;
            }
            for offset in std::mem::take(&mut model.unacked) {
                model.acked.insert(offset);
                model.store(w.ack(offset))?;
            }
            model.check(&w)?;
            prop_assert_eq!(w.in_flight(), 0);
            prop_assert_eq!(model.stored, model.end, "everything acknowledged is stored");
        }
    }
}
