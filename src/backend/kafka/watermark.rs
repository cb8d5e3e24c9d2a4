//! The per-partition at-least-once bookkeeping of a group consumer.

use std::collections::{BTreeMap, BTreeSet};

/// At-least-once bookkeeping of one partition within one assignment: which handed-out offsets
/// are not acknowledged yet, and so the position that is safe to commit (the lowest
/// unacknowledged offset, or one past the highest handed out when all are acknowledged).
///
/// The position never passes an offset that was never handed out unless the broker showed it
/// does not exist ([`Watermark::absent`]): a jump in the offsets handed out leaves a hole that
/// holds the position until the hole's offsets are handed out or shown absent. Gaps are real
/// (compaction, transaction markers, retention), but so is a client that skipped offsets the
/// broker has; only a re-fetch tells the two apart.
///
/// A pure state machine; the consumer calls it under a lock and stores the positions it
/// returns. A nacked offset stays unacknowledged until it is handed out and acknowledged again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// Handed out and not acknowledged.
    outstanding: BTreeSet<i64>,
    /// Nacked and not handed out again yet (a subset of `outstanding`).
    nacked: BTreeSet<i64>,
    /// Ranges `start -> end` (exclusive) below `next` never handed out nor shown absent.
    holes: BTreeMap<i64, i64>,
    /// Ranges at or beyond `next` the broker showed to hold no offsets, so handing out the
    /// offset after one opens no hole.
    absent: BTreeMap<i64, i64>,
    /// One past the highest offset handed out.
    next: Option<i64>,
    /// The last position returned for storing (at first, the first offset handed out).
    stored: Option<i64>,
}

impl Watermark {
    /// Records that `offset` is handed out; returns whether an offset at or beyond it was
    /// handed out before in this assignment (this is a redelivery). An offset past the end
    /// opens a hole over what lies between, unless that was shown absent.
    pub fn hand_out(&mut self, offset: i64) -> bool {
        let filled = take_range(&mut self.holes, offset, offset + 1);
        let again = !filled && self.next.is_some_and(|next| offset < next);
        if let Some(next) = self.next.filter(|next| offset > *next) {
            let mut from = next;
            for (start, end) in overlapping(&self.absent, next, offset) {
                if start > from {
                    self.holes.insert(from, start);
                }
                from = from.max(end);
            }
            if from < offset {
                self.holes.insert(from, offset);
            }
        }
        take_range(&mut self.absent, i64::MIN, offset + 1);
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

    /// The broker showed that `from..to` holds no offsets: fetching from `from` went on at
    /// `to` (retention, compaction or a transaction marker took them). Nacked offsets and holes
    /// there will never come back. Returns the new position to commit when it moved forward.
    pub fn absent(&mut self, from: i64, to: i64) -> Option<i64> {
        if from >= to {
            return None;
        }
        let gone: Vec<i64> = self.nacked.range(from..to).copied().collect();
        for o in gone {
            self.nacked.remove(&o);
            self.outstanding.remove(&o);
        }
        take_range(&mut self.holes, from, to);
        let ahead = self.next.map_or(from, |next| from.max(next));
        if ahead < to {
            take_range(&mut self.absent, ahead, to);
            self.absent.insert(ahead, to);
        }
        self.advance()
    }

    /// The first offset below the end that was never handed out nor shown absent.
    pub fn first_hole(&self) -> Option<i64> {
        self.holes.keys().next().copied()
    }

    /// Offsets handed out and not acknowledged.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// The position that is safe to commit now, if anything was handed out.
    pub fn position(&self) -> Option<i64> {
        [
            self.outstanding.first().copied(),
            self.first_hole(),
            self.next,
        ]
        .into_iter()
        .flatten()
        .min()
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

/// The ranges of `ranges` that overlap `from..to`, in order.
fn overlapping(ranges: &BTreeMap<i64, i64>, from: i64, to: i64) -> Vec<(i64, i64)> {
    ranges
        .iter()
        .filter(|(start, end)| **start < to && **end > from)
        .map(|(start, end)| (*start, *end))
        .collect()
}

/// Removes `from..to` from `ranges`, splitting the ranges it cuts; returns whether any of it
/// was there.
fn take_range(ranges: &mut BTreeMap<i64, i64>, from: i64, to: i64) -> bool {
    let cut = overlapping(ranges, from, to);
    for (start, end) in &cut {
        ranges.remove(start);
        if *start < from {
            ranges.insert(*start, from);
        }
        if *end > to {
            ranges.insert(to, *end);
        }
    }
    !cut.is_empty()
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
        assert_eq!(w.absent(1, 1), None);
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
        // After the rewind fetching went on at 9: 3 to 8 were deleted meanwhile.
        assert_eq!(w.absent(3, 9), Some(5));
        assert!(!w.hand_out(9));
        assert_eq!(w.position(), Some(9));
    }

    #[test]
    fn resuming_keeps_offsets_that_are_only_in_flight() {
        let mut w = Watermark::default();
        w.hand_out(1);
        w.hand_out(2);
        assert_eq!(w.nack(2), Some(2));
        assert_eq!(w.absent(2, 2), None);
        assert_eq!(w.position(), Some(1), "1 is in flight, not nacked");
    }

    #[test]
    fn a_skipped_offset_holds_the_position_until_handed_out() {
        let mut w = Watermark::default();
        w.hand_out(32);
        w.hand_out(34);
        assert_eq!(w.first_hole(), Some(33));
        assert_eq!(w.ack(32), Some(33));
        assert_eq!(w.ack(34), None, "33 was never handed out");
        assert!(!w.hand_out(33), "filling a hole is not a redelivery");
        assert_eq!(w.first_hole(), None);
        assert_eq!(w.ack(33), Some(35));
    }

    #[test]
    fn a_hole_the_broker_shows_absent_releases_the_position() {
        let mut w = Watermark::default();
        w.hand_out(10);
        w.hand_out(15);
        assert_eq!(w.ack(10), Some(11));
        assert_eq!(w.ack(15), None);
        assert_eq!(w.absent(11, 15), Some(16));
    }

    #[test]
    fn offsets_shown_absent_ahead_open_no_hole() {
        let mut w = Watermark::default();
        w.hand_out(10);
        assert_eq!(w.absent(11, 20), None, "10 is still out");
        assert!(!w.hand_out(20));
        assert_eq!(w.first_hole(), None);
        assert_eq!(w.ack(10), Some(20));
        assert_eq!(w.ack(20), Some(21));
    }

    #[test]
    fn a_hole_partly_shown_absent_keeps_the_rest() {
        let mut w = Watermark::default();
        w.hand_out(0);
        assert_eq!(w.absent(1, 3), None);
        w.hand_out(6);
        assert_eq!(
            w.first_hole(),
            Some(3),
            "3..6 were neither handed out nor absent"
        );
        assert_eq!(w.ack(0), Some(3));
        w.hand_out(4);
        assert_eq!(w.absent(3, 4), Some(4), "4 is out");
        assert_eq!(w.ack(4), Some(5), "5 is a hole");
        assert_eq!(w.absent(5, 6), Some(6), "6 is still out");
        assert_eq!(w.ack(6), Some(7));
    }

    /// One step of a consumer and its broker.
    #[derive(Debug, Clone)]
    enum Op {
        /// The next fetched offset is handed out; when retention deleted it, the consumer's
        /// re-fetch shows the broker no longer has what lies before the log start.
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
        /// The client skips offsets the broker has, past everything handed out.
        Skip(i64),
        /// The consumer fetches again from the first skipped offset.
        Refetch,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::HandOut),
            3 => any::<Index>().prop_map(Op::Ack),
            1 => any::<Index>().prop_map(Op::Nack),
            1 => (any::<Index>(), any::<bool>()).prop_map(|(i, nack)| Op::Duplicate(i, nack)),
            1 => (1..4i64).prop_map(Op::Retain),
            1 => (1..4i64).prop_map(Op::Skip),
            1 => Just(Op::Refetch),
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
        /// On the broker, below `end`, and never handed out: what the client skipped.
        skipped: BTreeSet<i64>,
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
                skipped: BTreeSet::new(),
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

        /// Fetching from `from` went on at `to`: the broker has nothing in between.
        fn absent(&mut self, w: &mut Watermark, from: i64, to: i64) -> Result<(), TestCaseError> {
            let gone: Vec<i64> = self.nacked.range(from..to).copied().collect();
            for offset in gone {
                self.nacked.remove(&offset);
                self.unacked.remove(&offset);
            }
            self.skipped.retain(|o| !(from..to).contains(o));
            self.store(w.absent(from, to))
        }

        fn hand_out(&mut self, w: &mut Watermark, offset: i64) -> Result<(), TestCaseError> {
            let again = w.hand_out(offset);
            let filled = self.skipped.remove(&offset);
            prop_assert_eq!(again, !filled && self.end.is_some_and(|end| offset < end));
            self.stored.get_or_insert(offset);
            self.unacked.insert(offset);
            self.nacked.remove(&offset);
            self.end = Some(self.end.map_or(offset + 1, |end| end.max(offset + 1)));
            self.fetch = offset + 1;
            Ok(())
        }

        fn step(&mut self, w: &mut Watermark, op: Op) -> Result<(), TestCaseError> {
            match op {
                Op::HandOut => {
                    if self.fetch < self.log_start {
                        self.absent(w, self.fetch, self.log_start)?;
                        self.fetch = self.log_start;
                    }
                    self.hand_out(w, self.fetch)?;
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
                    let target = target.unwrap_or(offset);
                    self.fetch = target.max(self.log_start);
                    self.absent(w, target, self.fetch)?;
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
                Op::Skip(n) if self.end.is_some_and(|end| self.fetch >= end) => {
                    self.skipped.extend(self.fetch..self.fetch + n);
                    self.fetch += n;
                }
                Op::Refetch => {
                    if let Some(first) = self.skipped.first() {
                        self.fetch = *first;
                    }
                }
                _ => {}
            }
            Ok(())
        }

        /// The watermark's position is the lowest offset still out or skipped, else the end;
        /// what it returned for storing never passes an offset handed out and never
        /// acknowledged, nor one the broker has and the consumer never handed out.
        fn check(&self, w: &Watermark) -> Result<(), TestCaseError> {
            // A skip shows only once something past it is handed out.
            let hole = self
                .end
                .and_then(|end| self.skipped.range(..end).next().copied());
            let lowest = self.unacked.first().copied().into_iter().chain(hole).min();
            prop_assert_eq!(w.position(), lowest.or(self.end));
            prop_assert_eq!(w.first_hole(), hole);
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
            if let (Some(stored), Some(first)) = (self.stored, self.skipped.first()) {
                prop_assert!(
                    stored <= *first,
                    "stored {} passes skipped {}",
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
        /// Any schedule of hand-outs, acks, nacks with rewinds, duplicates, retention and
        /// skipped offsets, then the skipped ones fetched again and everything acknowledged:
        /// the stored position reaches the end.
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
            while let Some(first) = model.skipped.first().copied() {
                if first < model.log_start {
                    model.absent(&mut w, first, model.log_start)?;
                } else {
                    model.hand_out(&mut w, first)?;
                }
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
