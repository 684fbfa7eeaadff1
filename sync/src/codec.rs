//! Byte-level reading and writing shared by every wire format.
//!
//! Integers are big-endian unless noted; variable-length integers are LEB128
//! (7 bits per byte, low group first) of at most 10 bytes, and the shortest
//! encoding is required so every value has exactly one encoding.

use crate::DecodeError;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Exactly `N` bytes from hex digits of either case; anything else (a
/// sign, a space, an odd or wrong length) is `None`.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

/// A cursor over bytes received from somewhere untrusted.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.u8()?;
            let low = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DecodeError::Varint);
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(DecodeError::Varint); // not the shortest form
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Varint)
    }

    /// A varint that must not exceed `max`; used for counts and lengths.
    pub(crate) fn len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        if v > max as u64 {
            return Err(DecodeError::TooLong { max });
        }
        Ok(v as usize)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Appends encoded values to a `Vec<u8>`.
pub(crate) trait Writer {
    fn put_varint(&mut self, v: u64);
}

impl Writer for Vec<u8> {
    fn put_varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.push(byte);
                return;
            }
            self.push(byte | 0x80);
        }
    }
}

/// Encoded length of a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_and_rejects_overlong() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            buf.put_varint(v);
            assert_eq!(buf.len(), varint_len(v));
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
        // 0 encoded in two bytes is not the shortest form.
        assert_eq!(
            Reader::new(&[0x80, 0x00]).varint(),
            Err(DecodeError::Varint)
        );
        // 11 continuation bytes.
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(DecodeError::Varint));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn hex_reads_back_and_only_hex_digits_are_taken() {
        let bytes = [0x0f, 0xa0, 0x00, 0xff];
        assert_eq!(hex(&bytes), "0fa000ff");
        assert_eq!(unhex::<4>("0fa000ff"), Some(bytes));
        assert_eq!(unhex::<4>("0FA000FF"), Some(bytes));
        // "+f" alone would parse as 0x0f with `u8::from_str_radix`.
        for bad in [
            "+fa000ff",
            "0fa000f",
            "0fa000ff00",
            " 0fa000f",
            "0fa0 0ff",
            "0fa000fg",
            "",
            "０fa000f",
        ] {
            assert_eq!(unhex::<4>(bad), None, "{bad:?}");
        }
    }
}
