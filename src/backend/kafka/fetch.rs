//! Which offsets a partition's fetch skipped, and whether the broker has them.
//!
//! A Kafka fetch from an offset inside a record batch must return that whole batch (the client
//! drops the records before the offset); some Kafka-protocol brokers return only the batches
//! that start at or after it, so a fetch that starts inside a batch skips the rest of that batch.
//! librdkafka starts fetches inside batches often: on resuming a paused partition (at the
//! application's position), after a seek, and at a committed offset after a rebalance.
//!
//! [`Continuity`] follows the offsets received on one partition. When they jump, the partition
//! is fetched again from the offset expected, then from ever further back (doubling, down to
//! where the contiguous run began, at most [`SEARCH_BACK`] offsets), dropping what was received
//! already, until the expected offset arrives or a fetch that starts early enough jumps over it
//! too: only then are the offsets between taken as absent (compaction, transaction markers,
//! retention). A pure state machine; the consumer calls it under a lock and performs the seeks.

/// How far back of the expected offset a search fetches at most: past any record batch a
/// producer writes.
pub const SEARCH_BACK: i64 = 1 << 12;

/// A search for `expected` under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Search {
    /// The offset that should come next.
    expected: i64,
    /// The search never fetches from before this.
    floor: i64,
    /// How far before `expected` the current fetch started.
    back: i64,
}

/// What to do with a message just received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it out. `absent`: a fetch showed the broker has no offsets in `from..to` before it.
    Take {
        /// Offsets the broker showed do not exist, `(from, to)`.
        absent: Option<(i64, i64)>,
    },
    /// Received already: a search fetched it again.
    Drop,
    /// Offsets before it were skipped: drop it and fetch again from this offset.
    Seek(i64),
}

/// The offsets received on one partition in one assignment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Continuity {
    /// The offset the next message should have, once anything was received.
    next: Option<i64>,
    /// The first offset of the run of contiguous offsets that ends at `next`.
    run_start: Option<i64>,
    search: Option<Search>,
}

impl Continuity {
    /// Fetching starts again at `offset` (a rewind, or a committed offset after an
    /// assignment): that offset should come first; a search may go back to `floor`.
    pub fn expect(&mut self, offset: i64, floor: i64) {
        self.search = Some(Search {
            expected: offset,
            floor: floor.min(offset),
            back: 0,
        });
        self.next = None;
    }

    /// Nothing arrived for a while although the broker holds offsets from the one expected on:
    /// the fetch may have started inside the last batch and skipped the rest of it, with no
    /// later message to show the jump. Returns where to fetch from next, further back each time
    /// it is called, or `None` when there is nothing to look for or the search went as far back
    /// as it may.
    pub fn stalled(&mut self) -> Option<i64> {
        let search = match self.search.as_mut() {
            Some(search) => search,
            None => {
                let expected = self.next?;
                self.search.insert(Search {
                    expected,
                    floor: self.run_start.unwrap_or(expected),
                    back: 0,
                })
            }
        };
        let from = search.expected - search.back;
        if from <= search.floor || search.back >= SEARCH_BACK {
            self.search = None;
            return None;
        }
        search.back = (search.back * 2).max(1);
        Some((search.expected - search.back).max(search.floor))
    }

    /// Whether the broker holds offsets, up to `end`, from the one expected next on.
    pub fn behind(&self, end: i64) -> bool {
        let expected = self.search.map(|s| s.expected).or(self.next);
        expected.is_some_and(|expected| expected < end)
    }

    /// Judges the message at `offset`, the next one received on the partition. An offset below
    /// the one expected was received before and is dropped: only a rewind ([`Self::expect`])
    /// hands offsets out again.
    pub fn received(&mut self, offset: i64) -> Verdict {
        let mut absent = None;
        if let Some(search) = self.search.as_mut() {
            if offset < search.expected {
                return Verdict::Drop;
            }
            if offset > search.expected {
                let from = search.expected - search.back;
                if from > search.floor && search.back < SEARCH_BACK {
                    search.back = (search.back * 2).max(1);
                    return Verdict::Seek((search.expected - search.back).max(search.floor));
                }
                absent = Some((search.expected, offset));
            }
            self.search = None;
        } else if self.next.is_some_and(|next| offset < next) {
            return Verdict::Drop;
        } else if let Some(expected) = self.next.filter(|next| offset > *next) {
            self.search = Some(Search {
                expected,
                floor: self.run_start.unwrap_or(expected),
                back: 0,
            });
            return Verdict::Seek(expected);
        }
        if self.next != Some(offset) {
            self.run_start = Some(offset);
        }
        self.next = Some(offset + 1);
        Verdict::Take { absent }
    }
}

#[cfg(test)]
mod tests {
    use super::{Continuity, Verdict::*};

    fn take(c: &mut Continuity, offsets: std::ops::Range<i64>) {
        for o in offsets {
            assert_eq!(c.received(o), Take { absent: None }, "offset {o}");
        }
    }

    #[test]
    fn contiguous_offsets_are_taken() {
        let mut c = Continuity::default();
        take(&mut c, 5..10);
    }

    #[test]
    fn a_skip_is_fetched_again_and_found() {
        let mut c = Continuity::default();
        take(&mut c, 30..33);
        assert_eq!(c.received(35), Seek(33));
        take(&mut c, 33..36);
    }

    #[test]
    fn a_fetch_inside_a_batch_that_skips_it_again_goes_back_until_it_does_not() {
        // The broker returns only batches starting at or after the fetch offset; 33 and 34 are
        // in the batch 31..35.
        let mut c = Continuity::default();
        take(&mut c, 28..33);
        assert_eq!(c.received(35), Seek(33));
        assert_eq!(
            c.received(35),
            Seek(32),
            "from 33 the batch is skipped again"
        );
        assert_eq!(c.received(35), Seek(31), "and from 32");
        assert_eq!(c.received(31), Drop, "received before");
        assert_eq!(c.received(32), Drop);
        take(&mut c, 33..36);
    }

    #[test]
    fn a_gap_every_fetch_jumps_over_is_absent() {
        let mut c = Continuity::default();
        take(&mut c, 10..12);
        assert_eq!(c.received(20), Seek(12));
        assert_eq!(c.received(20), Seek(11));
        assert_eq!(c.received(20), Seek(10), "back to where the run began");
        assert_eq!(c.received(10), Drop);
        assert_eq!(c.received(11), Drop);
        assert_eq!(
            c.received(20),
            Take {
                absent: Some((12, 20))
            }
        );
        take(&mut c, 21..23);
    }

    #[test]
    fn a_search_goes_back_no_further_than_its_limit() {
        let mut c = Continuity::default();
        take(&mut c, 0..10_000);
        let mut seeks = 0;
        let absent = loop {
            match c.received(20_000) {
                Seek(_) => seeks += 1,
                Take { absent } => break absent,
                Drop => unreachable!(),
            }
        };
        assert_eq!(absent, Some((10_000, 20_000)));
        assert_eq!(
            seeks, 14,
            "from the offset itself, then 1, 2, 4 … 4096 back"
        );
    }

    #[test]
    fn a_stalled_fetch_goes_back_for_the_tail_of_the_last_batch() {
        let mut c = Continuity::default();
        take(&mut c, 0..198);
        assert!(c.behind(200));
        assert_eq!(c.stalled(), Some(197));
        assert_eq!(c.stalled(), Some(196), "still nothing from 197");
        assert_eq!(c.received(196), Drop);
        assert_eq!(c.received(197), Drop);
        take(&mut c, 198..200);
        assert!(!c.behind(200));
    }

    #[test]
    fn what_a_finished_search_fetched_again_is_dropped() {
        let mut c = Continuity::default();
        take(&mut c, 0..2);
        assert!(c.behind(3));
        assert_eq!(c.stalled(), Some(1));
        assert_eq!(c.stalled(), Some(0));
        assert_eq!(c.stalled(), None, "back where the run began");
        assert_eq!(c.received(0), Drop, "received before the search");
        assert_eq!(c.received(1), Drop);
        take(&mut c, 2..3);
    }

    #[test]
    fn a_stall_with_nothing_received_looks_for_nothing() {
        let mut c = Continuity::default();
        assert!(!c.behind(10));
        assert_eq!(c.stalled(), None);
    }

    #[test]
    fn a_rewind_expects_its_offset_first() {
        let mut c = Continuity::default();
        take(&mut c, 0..8);
        c.expect(5, 0);
        assert_eq!(c.received(7), Seek(4), "the rewind skipped 5 and 6");
        assert_eq!(c.received(4), Drop);
        take(&mut c, 5..9);
    }

    #[test]
    fn a_rewind_past_retention_finds_the_log_start() {
        let mut c = Continuity::default();
        c.expect(5, 5);
        assert_eq!(
            c.received(9),
            Take {
                absent: Some((5, 9))
            }
        );
    }
}
