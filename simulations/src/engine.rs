//! The discrete-event core: a time-ordered queue with a sequence number to
//! break ties (so equal-time events run in the order they were scheduled),
//! and the run's single seeded RNG with the distributions the models use.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::units::Micros;

struct Entry<E> {
    time: Micros,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed: the heap pops the earliest time, then the lowest seq.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Pending events, earliest first.
pub struct Queue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> Queue<E> {
    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: Micros, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            time,
            seq: self.seq,
            event,
        });
    }

    /// The earliest event, if any is due at or before `until`.
    pub fn pop_until(&mut self, until: Micros) -> Option<(Micros, E)> {
        if self.heap.peek()?.time > until {
            return None;
        }
        self.heap.pop().map(|e| (e.time, e.event))
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The run's RNG: ChaCha20 from the seed, and nothing else random.
pub struct Rng(pub ChaCha20Rng);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        // Lemire's multiply-shift with rejection: unbiased.
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.0.next_u64();
            let m = u128::from(x) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform in [lo, hi].
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// Uniform real in [lo, hi].
    pub fn between_f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Exponential with the given mean (in microseconds), at least 1.
    pub fn exp(&mut self, mean: f64) -> Micros {
        let u = 1.0 - self.unit(); // (0, 1]
        ((-u.ln()) * mean).round().max(1.0) as Micros
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_schedule_order() {
        let mut q = Queue::default();
        q.push(5, 'b');
        q.push(3, 'a');
        q.push(5, 'c');
        q.push(9, 'd');
        let got: Vec<_> = std::iter::from_fn(|| q.pop_until(8)).collect();
        assert_eq!(got, vec![(3, 'a'), (5, 'b'), (5, 'c')]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn distributions_have_their_means() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let mean = (0..n).map(|_| r.exp(1000.0) as f64).sum::<f64>() / n as f64;
        assert!((mean - 1000.0).abs() < 15.0, "{mean}");
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_500..10_500).contains(c)),
            "{counts:?}"
        );
    }
}
