//! The eviction vote's data structure: the resident blocks bucketed by their holder masks,
//! and the choice of a victim. It knows nothing of candidates or shadows: the governor
//! computes the masks and the weight of each (`governor.rs`).

use std::collections::VecDeque;

use kplug_engine::hash::FastMap;

/// The eviction vote: every resident block sits in the bucket of its *holder mask* (bit
/// `b` set when eviction candidate `by_bit[b]`'s shadow holds it), in the order it entered
/// that bucket. The victim comes from the non-empty buckets whose holders weigh least, then
/// hold fewest, and is the oldest of their heads. A block changes bucket only when a shadow
/// takes or drops it (at most two per shadow per request), so the cost is O(candidates)
/// per request plus a sort of the buckets when the weights change. Entries left behind in a bucket's queue are stale and
/// skipped; a bucket's queue is purged when it holds more than twice its live blocks.
#[derive(Default)]
pub(super) struct Votes {
    seq: u64,
    pub(super) of: FastMap<u64, (u64, u64)>,
    pub(super) buckets: FastMap<u64, Bucket>,
    /// (weight, holders, mask) of every bucket, lightest first.
    order: Vec<(f64, u32, u64)>,
    pub(super) dirty: bool,
}

#[derive(Default)]
pub(super) struct Bucket {
    queue: VecDeque<(u64, u64)>,
    pub(super) live: usize,
}

impl Votes {
    pub(super) fn mask(&self, key: u64) -> Option<u64> {
        self.of.get(&key).map(|e| e.0)
    }

    pub(super) fn set(&mut self, key: u64, mask: u64) {
        if let Some(&(m, _)) = self.of.get(&key) {
            if m == mask {
                return;
            }
            self.buckets.get_mut(&m).expect("bucket of a block").live -= 1;
        }
        self.seq += 1;
        self.of.insert(key, (mask, self.seq));
        if !self.buckets.contains_key(&mask) {
            self.dirty = true;
        }
        let b = self.buckets.entry(mask).or_default();
        b.queue.push_back((self.seq, key));
        b.live += 1;
        if b.queue.len() > 2 * b.live + 64 {
            let of = &self.of;
            b.queue.retain(|(s, k)| of.get(k) == Some(&(mask, *s)));
        }
    }

    pub(super) fn drop(&mut self, key: u64) {
        if let Some((m, _)) = self.of.remove(&key) {
            self.buckets.get_mut(&m).expect("bucket of a block").live -= 1;
        }
    }

    /// The block to evict, forgotten: from the lightest non-empty buckets, those held by
    /// the fewest candidates (with one candidate weighing, the others' agreement breaks the
    /// tie: a block nobody holds goes before one that four policies keep), and among those
    /// the oldest.
    pub(super) fn victim(&mut self, weight: impl Fn(u64) -> f64) -> Option<u64> {
        if self.dirty {
            let mut order: Vec<(f64, u32, u64)> = self
                .buckets
                .keys()
                .map(|m| (weight(*m), m.count_ones(), *m))
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            self.order = order;
            self.dirty = false;
        }
        let mut i = 0;
        while i < self.order.len() {
            let (w, n) = (self.order[i].0, self.order[i].1);
            // The oldest live head among the buckets of that weight and holder count.
            let mut best: Option<(u64, u64)> = None;
            while i < self.order.len() && self.order[i].0 == w && self.order[i].1 == n {
                let m = self.order[i].2;
                i += 1;
                let b = self.buckets.get_mut(&m).expect("ordered bucket");
                if b.live == 0 {
                    b.queue.clear();
                    continue;
                }
                // Stale heads go; a live bucket has a valid entry.
                while let Some(&(s, k)) = b.queue.front() {
                    if self.of.get(&k) == Some(&(m, s)) {
                        break;
                    }
                    b.queue.pop_front();
                }
                let (s, _) = *b.queue.front().expect("a live bucket has a valid entry");
                if best.is_none_or(|(bs, _)| s < bs) {
                    best = Some((s, m));
                }
            }
            if let Some((_, m)) = best {
                let b = self.buckets.get_mut(&m).expect("ordered bucket");
                let (_, k) = b.queue.pop_front().expect("checked");
                self.of.remove(&k);
                b.live -= 1;
                return Some(k);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Votes;

    #[test]
    fn the_vote_evicts_the_lightest_holders_oldest_first() {
        // Two candidates: bit 0 weighs 1, bit 1 weighs 0.25.
        let weight = |m: u64| (m & 1) as f64 + ((m >> 1) & 1) as f64 * 0.25;
        let mut v = Votes::default();
        v.set(10, 0b11);
        v.set(11, 0b01);
        v.set(12, 0b10);
        v.set(13, 0b00);
        v.set(14, 0b10);
        // Held by nobody first, then by the light candidate (oldest first), then the heavy.
        assert_eq!(v.victim(weight), Some(13));
        assert_eq!(v.victim(weight), Some(12));
        // A block that changes holders moves to the back of its new bucket.
        v.set(11, 0b10);
        assert_eq!(v.victim(weight), Some(14));
        assert_eq!(v.victim(weight), Some(11));
        v.drop(10);
        assert_eq!(v.victim(weight), None);
    }

    #[test]
    fn equal_weights_go_by_holder_count_then_age() {
        // activate(j): every mask without j's bit weighs 0. Blocks fewer candidates hold go
        // first; among as many holders, oldest first whatever the masks.
        let weight = |_m: u64| 0.0;
        let mut v = Votes::default();
        v.set(20, 0b100);
        v.set(21, 0b010);
        v.set(22, 0b000);
        v.set(23, 0b110);
        v.set(24, 0b100);
        assert_eq!(v.victim(weight), Some(22));
        assert_eq!(v.victim(weight), Some(20));
        assert_eq!(v.victim(weight), Some(21));
        assert_eq!(v.victim(weight), Some(24));
        assert_eq!(v.victim(weight), Some(23));
        assert_eq!(v.victim(weight), None);
    }

    #[test]
    fn stale_entries_are_purged() {
        let mut v = Votes::default();
        for round in 0..1000u64 {
            v.set(1, round % 2);
            v.set(2, 1 - round % 2);
        }
        assert!(v.buckets.values().all(|b| b.queue.len() <= 2 * b.live + 65));
        assert_eq!(v.of.len(), 2);
    }
}
