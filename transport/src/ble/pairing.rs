//! Which of a peripheral's GATT streams make one link: a central's RX
//! writer and its TX subscription arrive as two separate events, in
//! either order, and other centrals' events may come between them. A
//! link is made only of two streams from the same device, so a stranger
//! who writes and never subscribes (or subscribes and never writes)
//! cannot have their half joined to a contact's.

use std::collections::VecDeque;

/// Halves waiting for their other half, per side: a few centrals
/// connecting at once. Past it the oldest is dropped.
pub const MAX_WAITING: usize = 4;

/// Readers (`R`) and writers (`W`) waiting for the other half from the
/// same device address.
#[derive(Debug)]
pub struct Pairing<R, W> {
    readers: VecDeque<(String, R)>,
    writers: VecDeque<(String, W)>,
}

impl<R, W> Default for Pairing<R, W> {
    fn default() -> Self {
        Pairing {
            readers: VecDeque::new(),
            writers: VecDeque::new(),
        }
    }
}

impl<R, W> Pairing<R, W> {
    /// A device's RX writer: both halves if its TX subscription waits.
    pub fn reader(&mut self, address: &str, reader: R) -> Option<(R, W)> {
        match take(&mut self.writers, address) {
            Some(writer) => Some((reader, writer)),
            None => {
                wait(&mut self.readers, address, reader);
                None
            }
        }
    }

    /// A device's TX subscription: both halves if its RX writer waits.
    pub fn writer(&mut self, address: &str, writer: W) -> Option<(R, W)> {
        match take(&mut self.readers, address) {
            Some(reader) => Some((reader, writer)),
            None => {
                wait(&mut self.writers, address, writer);
                None
            }
        }
    }

    /// Halves waiting, both sides.
    pub fn waiting(&self) -> usize {
        self.readers.len() + self.writers.len()
    }
}

fn take<T>(side: &mut VecDeque<(String, T)>, address: &str) -> Option<T> {
    let at = side
        .iter()
        .position(|(a, _)| a.eq_ignore_ascii_case(address))?;
    side.remove(at).map(|(_, t)| t)
}

/// Waits `half` for its other half; a newer half from the same device
/// replaces the older.
fn wait<T>(side: &mut VecDeque<(String, T)>, address: &str, half: T) {
    take(side, address);
    if side.len() == MAX_WAITING {
        side.pop_front();
    }
    side.push_back((address.to_owned(), half));
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AA:AA:AA:AA:AA:01";
    const B: &str = "BB:BB:BB:BB:BB:02";

    #[test]
    fn a_strangers_half_is_never_joined_to_a_contacts() {
        let mut p: Pairing<&str, &str> = Pairing::default();
        // A stranger writes and never subscribes; a contact subscribes
        // first, then writes.
        assert_eq!(p.reader(B, "stranger's writes"), None);
        assert_eq!(p.writer(A, "contact's notifications"), None);
        assert_eq!(
            p.reader(A, "contact's writes"),
            Some(("contact's writes", "contact's notifications"))
        );
        // The stranger's half still waits, alone.
        assert_eq!(p.waiting(), 1);
    }

    #[test]
    fn two_centrals_arriving_together_each_get_their_own_link() {
        let mut p: Pairing<u8, u8> = Pairing::default();
        assert_eq!(p.writer(A, 1), None);
        assert_eq!(p.writer(B, 2), None);
        assert_eq!(p.reader(&A.to_lowercase(), 10), Some((10, 1)));
        assert_eq!(p.reader(B, 20), Some((20, 2)));
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn halves_waiting_are_bounded_and_a_newer_one_replaces_the_older() {
        let mut p: Pairing<u32, u32> = Pairing::default();
        assert_eq!(p.reader(A, 1), None);
        assert_eq!(p.reader(A, 2), None);
        assert_eq!(p.waiting(), 1);
        assert_eq!(p.writer(A, 3), Some((2, 3)));
        for i in 0..100u32 {
            assert_eq!(p.reader(&format!("00:00:00:00:00:{i:02}"), i), None);
        }
        assert_eq!(p.waiting(), MAX_WAITING);
        // The newest still pair.
        assert_eq!(p.writer("00:00:00:00:00:99", 0), Some((99, 0)));
        assert_eq!(p.writer("00:00:00:00:00:00", 0), None);
    }
}
