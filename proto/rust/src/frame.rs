//! Frames: `magic(4) opcode(1) flags(1) length(u64 LE) body(length) crc(u32 LE)`.
//!
//! The CRC-32 (IEEE, as zlib) covers the header and the body as sent. Header
//! checks run in this order, each on the first bytes that allow it: magic,
//! flags, length against the receiver's limit (so a 2^40-byte declaration is
//! refused after 14 bytes), then the CRC once the whole frame is there.

use crate::{FrameError, Opcode};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"VELO";
/// Bytes before the body.
pub const HEADER_LEN: usize = 14;
/// Bytes after the body (the CRC).
pub const TRAILER_LEN: usize = 4;
/// The default frame body limit (`max_frame_bytes`, 16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 16 * 1024 * 1024;
/// The default key limit (`max_key_bytes`, 64 KiB).
pub const DEFAULT_MAX_KEY_BYTES: u32 = 64 * 1024;
/// The default value limit (`max_value_bytes`, 8 MiB).
pub const DEFAULT_MAX_VALUE_BYTES: u32 = 8 * 1024 * 1024;

/// Flags bits 0-1: how a request may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Served by the primary only (0, the default).
    #[default]
    Linearizable = 0,
    /// A replica may answer, possibly behind the primary (1).
    StaleOk = 1,
}

/// Flags bits 2-3 value 1: the body is zstd-compressed.
pub const FLAG_ZSTD: u8 = 1 << 2;

/// The flags byte for a request with this consistency and no compression.
///
/// ```
/// use velocity_proto::frame::{flags, Consistency};
/// assert_eq!(flags(Consistency::StaleOk), 1);
/// ```
pub const fn flags(consistency: Consistency) -> u8 {
    consistency as u8
}

/// Checks a flags byte: reserved bits and values are a `PROTOCOL` error.
pub fn check_flags(flags: u8) -> Result<(), FrameError> {
    let consistency = flags & 0b11;
    let compression = (flags >> 2) & 0b11;
    if flags & 0xF0 != 0 || consistency > 1 || compression > 1 {
        return Err(FrameError::ReservedFlags(flags));
    }
    Ok(())
}

/// CRC-32 (IEEE 802.3 / zlib) of `bytes`.
///
/// ```
/// assert_eq!(velocity_proto::frame::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The opcode byte.
    pub opcode: Opcode,
    /// The flags byte (already checked).
    pub flags: u8,
    /// The body length N.
    pub body_len: u64,
}

impl Header {
    /// The whole frame's length: header, body and trailer.
    pub fn frame_len(&self) -> u64 {
        self.body_len + (HEADER_LEN + TRAILER_LEN) as u64
    }
}

/// Parses the first [`HEADER_LEN`] bytes of `buf`, or as many checks as the
/// bytes present allow: `Ok(None)` means "need more bytes".
pub fn parse_header(buf: &[u8], max_body: u64) -> Result<Option<Header>, FrameError> {
    let n = buf.len().min(4);
    if buf[..n] != MAGIC[..n] {
        let mut got = [0u8; 4];
        got[..n].copy_from_slice(&buf[..n]);
        return Err(FrameError::BadMagic(got));
    }
    if let Some(&f) = buf.get(5) {
        check_flags(f)?;
    }
    let Some(len_bytes) = buf.get(6..HEADER_LEN) else {
        return Ok(None);
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let body_len = u64::from_le_bytes(len);
    if body_len > max_body {
        return Err(FrameError::TooLarge {
            len: body_len,
            limit: max_body,
        });
    }
    Ok(Some(Header {
        opcode: Opcode(buf[4]),
        flags: buf[5],
        body_len,
    }))
}

/// One frame, borrowing its body from the receive buffer (no copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The opcode byte.
    pub opcode: Opcode,
    /// The flags byte (already checked).
    pub flags: u8,
    /// The body exactly as sent (compressed if the flags say so).
    pub body: &'a [u8],
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the frame and the number
/// of bytes it used. Never panics, whatever `buf` holds.
pub fn decode(buf: &[u8], max_body: u64) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(h) = parse_header(buf, max_body)? else {
        return Ok(None);
    };
    // body_len <= max_body, which a caller keeps within memory; still avoid overflow.
    let Ok(total) = usize::try_from(h.frame_len()) else {
        return Err(FrameError::TooLarge {
            len: h.body_len,
            limit: max_body,
        });
    };
    let Some(frame) = buf.get(..total) else {
        return Ok(None);
    };
    let (covered, trailer) = frame.split_at(total - TRAILER_LEN);
    let mut t = [0u8; 4];
    t.copy_from_slice(trailer);
    let trailer = u32::from_le_bytes(t);
    let computed = crc32(covered);
    if trailer != computed {
        return Err(FrameError::BadCrc { trailer, computed });
    }
    Ok(Some((
        Frame {
            opcode: h.opcode,
            flags: h.flags,
            body: &covered[HEADER_LEN..],
        },
        total,
    )))
}

/// Appends one frame to `out`.
///
/// Layout: magic, opcode, flags, body length (u64 LE), body, CRC-32 (u32 LE) of
/// everything before it; `out` grows by exactly `HEADER_LEN + body.len() + TRAILER_LEN`.
///
/// ```
/// use velocity_proto::{frame, Opcode};
/// let mut out = Vec::new();
/// frame::encode(Opcode::PING, 0, &[], &mut out);
/// assert_eq!(out.len(), frame::HEADER_LEN + frame::TRAILER_LEN);
/// ```
pub fn encode(opcode: Opcode, flags: u8, body: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + body.len() + TRAILER_LEN);
    let start = begin(out);
    out.extend_from_slice(body);
    end(out, start, opcode, flags);
    debug_assert_eq!(out.len() - start, HEADER_LEN + body.len() + TRAILER_LEN);
}

/// Starts a frame in place: appends a header placeholder and returns where the
/// frame starts. Write the body after it, then call [`end`].
///
/// A server writes its reply bodies straight into the connection's output
/// buffer this way, with no body copy.
///
/// ```
/// use velocity_proto::{frame, Opcode};
/// let mut out = Vec::new();
/// let start = frame::begin(&mut out);
/// out.extend_from_slice(b"body");
/// frame::end(&mut out, start, Opcode::PING.response(), 0);
/// let mut same = Vec::new();
/// frame::encode(Opcode::PING.response(), 0, b"body", &mut same);
/// assert_eq!(out, same);
/// ```
#[inline]
pub fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    start
}

/// Completes the frame [`begin`] started at `start`: everything after its header
/// is the body. Fills in the header, then appends the CRC-32 of header and body.
#[inline]
pub fn end(out: &mut Vec<u8>, start: usize, opcode: Opcode, flags: u8) {
    let body_len = (out.len() - start - HEADER_LEN) as u64;
    let head = &mut out[start..start + HEADER_LEN];
    head[..4].copy_from_slice(&MAGIC);
    head[4] = opcode.0;
    head[5] = flags;
    head[6..].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}
