//! A bounds-checked, zero-copy FlatBuffers table reader for request bodies.
//!
//! The same checks as the Python engine's reader (proto/python/vproto/reader.py),
//! so both data planes accept and refuse the same bodies: every offset is checked
//! against the body before it is followed, fields are located through the vtable,
//! and anything out of range is a `PROTOCOL` error (not fatal: the framing is
//! intact). Unlike the generated verifier it checks only the fields a request
//! reads and does not insist on alignment, which keeps the hot path to a handful
//! of comparisons. Byte vectors and strings are returned as slices of the body.
//!
//! An empty body reads as a table whose fields all hold their defaults.
//!
//! Errors are [`BodyError`]s whose `reason` is the Python reader's message, word
//! for word (it travels in the ErrorResponse); the decoders of [`crate::server`]
//! name the table. Nothing is allocated unless the body is refused, except the
//! `Vec` that [`Table::tables`] returns.
//!
//! ```
//! use velocity_proto::{body, reader::Table};
//! let b = body::incr_request(b"counter", -5);
//! let t = Table::root(&b).unwrap();
//! assert_eq!((t.bytes(0).unwrap(), t.i64(1, 1).unwrap()), (&b"counter"[..], -5));
//! ```

use crate::BodyError;

/// What the reader returns: the value, or why the body is refused.
pub type ReadResult<T> = Result<T, BodyError>;

/// The `table` of a reader error until a decoder names it ([`BodyError::in_table`]).
pub const UNNAMED: &str = "FlatBuffer";

fn refuse(reason: impl Into<String>) -> BodyError {
    BodyError {
        table: UNNAMED,
        reason: reason.into(),
    }
}

/// One table inside `buf`, its vtable already checked.
///
/// Borrows the body; every slice it returns is a slice of that body (no copy).
/// Fields are named by their slot, the index of the field in its table in
/// `proto/velocity.fbs` (deprecated fields keep their slot).
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vt: usize,
    vtlen: usize,
    objlen: usize,
}

fn u16_at(buf: &[u8], p: usize) -> u16 {
    u16::from_le_bytes([buf[p], buf[p + 1]])
}

fn u32_at(buf: &[u8], p: usize) -> u32 {
    u32::from_le_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]])
}

fn i64_at(buf: &[u8], p: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[p..p + 8]);
    i64::from_le_bytes(b)
}

impl<'a> Table<'a> {
    /// The root table of a body (`Table::EMPTY`-like when the body is empty).
    pub fn root(buf: &'a [u8]) -> ReadResult<Self> {
        if buf.is_empty() {
            return Ok(Self {
                buf,
                pos: 0,
                vt: 0,
                vtlen: 0,
                objlen: 0,
            });
        }
        if buf.len() < 4 {
            return Err(refuse(format!(
                "body of {} bytes is too short for a FlatBuffer",
                buf.len()
            )));
        }
        Self::at(buf, u32_at(buf, 0) as usize)
    }

    /// The table at absolute position `pos`.
    pub fn at(buf: &'a [u8], pos: usize) -> ReadResult<Self> {
        let n = buf.len();
        if pos.checked_add(4).is_none_or(|end| end > n) {
            return Err(refuse(format!("table offset {pos} outside body of {n} bytes")));
        }
        let soff = u32_at(buf, pos) as i32 as i64;
        let vt = pos as i64 - soff;
        if vt < 0 || vt + 4 > n as i64 {
            return Err(refuse(format!("vtable offset {vt} outside body of {n} bytes")));
        }
        let vt = vt as usize;
        let vtlen = u16_at(buf, vt) as usize;
        let objlen = u16_at(buf, vt + 2) as usize;
        if vtlen < 4 || vtlen & 1 != 0 || vt + vtlen > n || objlen < 4 || pos + objlen > n {
            return Err(refuse("malformed vtable"));
        }
        Ok(Self {
            buf,
            pos,
            vt,
            vtlen,
            objlen,
        })
    }

    /// Absolute position of field `slot` of `size` bytes, or 0 when absent.
    fn field(&self, slot: usize, size: usize) -> ReadResult<usize> {
        let o = 4 + 2 * slot;
        if o >= self.vtlen {
            return Ok(0);
        }
        let off = u16_at(self.buf, self.vt + o) as usize;
        if off == 0 {
            return Ok(0);
        }
        if off < 4 || off + size > self.objlen {
            return Err(refuse(format!("field {slot} lies outside its table")));
        }
        Ok(self.pos + off)
    }

    /// A `ubyte`/enum field.
    pub fn u8(&self, slot: usize, default: u8) -> ReadResult<u8> {
        let p = self.field(slot, 1)?;
        Ok(if p == 0 { default } else { self.buf[p] })
    }

    /// A `bool` field (any non-zero byte is true).
    pub fn bool(&self, slot: usize) -> ReadResult<bool> {
        Ok(self.u8(slot, 0)? != 0)
    }

    /// A `ushort` field.
    pub fn u16(&self, slot: usize, default: u16) -> ReadResult<u16> {
        let p = self.field(slot, 2)?;
        Ok(if p == 0 { default } else { u16_at(self.buf, p) })
    }

    /// A `uint` field.
    pub fn u32(&self, slot: usize, default: u32) -> ReadResult<u32> {
        let p = self.field(slot, 4)?;
        Ok(if p == 0 { default } else { u32_at(self.buf, p) })
    }

    /// A `long` field.
    pub fn i64(&self, slot: usize, default: i64) -> ReadResult<i64> {
        let p = self.field(slot, 8)?;
        Ok(if p == 0 { default } else { i64_at(self.buf, p) })
    }

    /// Position of the vector an offset field points at, or None when absent.
    fn deref(&self, slot: usize) -> ReadResult<Option<usize>> {
        let p = self.field(slot, 4)?;
        if p == 0 {
            return Ok(None);
        }
        let target = p + u32_at(self.buf, p) as usize;
        if target + 4 > self.buf.len() {
            return Err(refuse(format!("field {slot} points outside the body")));
        }
        Ok(Some(target))
    }

    fn vector(&self, slot: usize, elem: usize) -> ReadResult<Option<(usize, usize)>> {
        let Some(v) = self.deref(slot)? else {
            return Ok(None);
        };
        let count = u32_at(self.buf, v) as usize;
        let start = v + 4;
        if count
            .checked_mul(elem)
            .and_then(|len| start.checked_add(len))
            .is_none_or(|end| end > self.buf.len())
        {
            return Err(refuse(format!("vector in field {slot} runs past the body")));
        }
        Ok(Some((start, count)))
    }

    /// A `[ubyte]` field; empty when absent.
    pub fn bytes(&self, slot: usize) -> ReadResult<&'a [u8]> {
        Ok(match self.vector(slot, 1)? {
            Some((start, count)) => &self.buf[start..start + count],
            None => &[],
        })
    }

    /// A `string` field; empty when absent; invalid UTF-8 is an error.
    pub fn string(&self, slot: usize) -> ReadResult<&'a str> {
        std::str::from_utf8(self.bytes(slot)?).map_err(|_| refuse(format!("field {slot} is not valid UTF-8")))
    }

    /// A vector of tables, each checked.
    pub fn tables(&self, slot: usize) -> ReadResult<Vec<Table<'a>>> {
        let Some((start, count)) = self.vector(slot, 4)? else {
            return Ok(Vec::new());
        };
        (0..count)
            .map(|i| {
                let p = start + 4 * i;
                Table::at(self.buf, p + u32_at(self.buf, p) as usize)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{body, ErrorCode};

    #[test]
    fn reads_what_the_reference_encoder_wrote() {
        let b = body::incr_request(b"counter", -5);
        let t = Table::root(&b).unwrap();
        assert_eq!(t.bytes(0).unwrap(), b"counter");
        assert_eq!(t.i64(1, 1).unwrap(), -5);
        assert_eq!(t.i64(7, 9).unwrap(), 9, "a slot beyond the vtable is absent");
    }

    #[test]
    fn empty_body_reads_defaults() {
        let t = Table::root(&[]).unwrap();
        assert_eq!(t.bytes(0).unwrap(), b"");
        assert_eq!(t.i64(1, 1).unwrap(), 1);
        assert!(t.tables(0).unwrap().is_empty());
    }

    #[test]
    fn out_of_range_offsets_are_protocol_errors() {
        for bad in [
            &b"\x01"[..],
            b"\xff\xff\xff\x7f\0\0\0\0\0\0\0\0\0\0\0\0",
            b"\x0c\0\0\0\0\0\0\0",
            b"\x04\0\0\0\x00\x00\x00\x80",
        ] {
            let err = Table::root(bad).and_then(|t| t.bytes(0).map(|_| ()));
            let err = err.unwrap_err();
            assert_eq!(err.code(), ErrorCode::Protocol);
            assert_eq!(err.table, UNNAMED);
        }
    }

    #[test]
    fn a_vector_running_past_the_body_is_refused() {
        let mut b = body::key_request(b"abcd");
        let n = b.len();
        b[n - 8] = 200; // the key's length
        let t = Table::root(&b).unwrap();
        assert!(t.bytes(0).is_err());
    }
}
