//! Disappearing-message timers (PROTOCOL.md §4.1): a TIMER message in a
//! conversation says how long the messages written after it last.

use crate::limits::Time;
use crate::DecodeError;

/// The shortest timer: 5 minutes.
pub const MIN_TIMER: Time = 5 * 60_000;
/// The longest timer: 366 days.
pub const MAX_TIMER: Time = 366 * 24 * 3_600_000;

/// The body of a TIMER message: how long messages last, or `None` for
/// messages that stay. Outside [`MIN_TIMER`]..=[`MAX_TIMER`] is an error.
pub fn encode_timer(lasts: Option<Time>) -> Result<Vec<u8>, DecodeError> {
    match lasts {
        None => Ok(0u64.to_be_bytes().to_vec()),
        Some(d) if (MIN_TIMER..=MAX_TIMER).contains(&d) => Ok(d.to_be_bytes().to_vec()),
        Some(_) => Err(DecodeError::Invalid(
            "a timer is between 5 minutes and 366 days, or off",
        )),
    }
}

/// Reads a TIMER body.
pub fn decode_timer(body: &[u8]) -> Result<Option<Time>, DecodeError> {
    let bytes: [u8; 8] = body
        .try_into()
        .map_err(|_| DecodeError::Invalid("a timer body is 8 bytes"))?;
    match u64::from_be_bytes(bytes) {
        0 => Ok(None),
        d if (MIN_TIMER..=MAX_TIMER).contains(&d) => Ok(Some(d)),
        _ => Err(DecodeError::Invalid(
            "a timer is between 5 minutes and 366 days, or off",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_round_trip_and_out_of_range_ones_are_refused() {
        for t in [None, Some(MIN_TIMER), Some(3_600_000), Some(MAX_TIMER)] {
            assert_eq!(decode_timer(&encode_timer(t).unwrap()).unwrap(), t);
        }
        assert!(encode_timer(Some(MIN_TIMER - 1)).is_err());
        assert!(encode_timer(Some(MAX_TIMER + 1)).is_err());
        assert!(decode_timer(&1u64.to_be_bytes()).is_err());
        assert!(decode_timer(&[0; 7]).is_err());
        assert!(decode_timer(&[0; 9]).is_err());
    }
}
