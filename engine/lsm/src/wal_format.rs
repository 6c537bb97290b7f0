//! Write-ahead log layout (normative spec: docs/formats/wal.md).
//!
//! ```text
//! segment     := file_header record*
//! file_header := magic "VWAL" | version:u16 | reserved:u16 | segment_number:u64     (16 bytes)
//! record      := header_crc:u32 | length:u32 | type:u8 | payload_crc:u32 | payload[length]
//! header_crc  := CRC-32 (zlib) of the 9 bytes length | type | payload_crc
//! payload_crc := CRC-32 (zlib) of payload
//! version 1: type 1 BATCH,     payload := entry*                               (Python engine)
//! version 2: type 2 SEQ_BATCH, payload := epoch:u64 seq:u64 count:u32 entry{count}  (batch.rs)
//! ```

/// File magic.
pub const MAGIC: &[u8; 4] = b"VWAL";
/// Version written by the Python engine (unsequenced batches).
pub const VERSION_1: u16 = 1;
/// Version written by this crate (sequenced batches).
pub const VERSION_2: u16 = 2;
/// Size of the file header.
pub const FILE_HEADER_SIZE: usize = 16;
/// Size of a record header.
pub const RECORD_HEADER_SIZE: usize = 13;
/// Record type of a version-1 batch.
pub const TYPE_BATCH: u8 = 1;
/// Record type of a version-2 sequenced batch.
pub const TYPE_SEQ_BATCH: u8 = 2;
/// Sanity bound for a length read from disk.
pub const MAX_RECORD_BYTES: u32 = 1 << 31;

/// The 16-byte file header of a segment.
pub fn file_header(version: u16, segment: u64) -> [u8; FILE_HEADER_SIZE] {
    let mut out = [0u8; FILE_HEADER_SIZE];
    out[..4].copy_from_slice(MAGIC);
    out[4..6].copy_from_slice(&version.to_le_bytes());
    out[8..16].copy_from_slice(&segment.to_le_bytes());
    out
}

/// CRC-32 of the checked header bytes.
pub fn header_crc(length: u32, rtype: u8, payload_crc: u32) -> u32 {
    let mut b = [0u8; 9];
    b[..4].copy_from_slice(&length.to_le_bytes());
    b[4] = rtype;
    b[5..].copy_from_slice(&payload_crc.to_le_bytes());
    crc32fast::hash(&b)
}

/// Fill the 13-byte record header in `out[..13]` for the payload in `out[13..]`.
pub fn fill_record_header(out: &mut [u8], rtype: u8) {
    let payload = &out[RECORD_HEADER_SIZE..];
    let len = payload.len() as u32;
    let pcrc = crc32fast::hash(payload);
    let hcrc = header_crc(len, rtype, pcrc);
    out[..4].copy_from_slice(&hcrc.to_le_bytes());
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out[8] = rtype;
    out[9..13].copy_from_slice(&pcrc.to_le_bytes());
}

/// A whole record (header + payload) for `payload`.
pub fn encode_record(rtype: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; RECORD_HEADER_SIZE];
    out.extend_from_slice(payload);
    fill_record_header(&mut out, rtype);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_of_wal_md_version_1() {
        // SET "k" = "v" in segment 1, as written by the Python engine.
        assert_eq!(
            file_header(1, 1),
            [0x56, 0x57, 0x41, 0x4c, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        let payload = [1, 1, 0, 0, 0, b'k', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'v'];
        let rec = encode_record(TYPE_BATCH, &payload);
        assert_eq!(
            &rec[..13],
            &[0x90, 0xb4, 0x04, 0x12, 0x14, 0, 0, 0, 0x01, 0x37, 0x3e, 0x9c, 0xa5]
        );
    }

    #[test]
    fn worked_example_of_wal_md_version_2() {
        // SET "k" = "v" as batch 813 of epoch 2, in segment 3.
        assert_eq!(
            file_header(2, 3),
            [0x56, 0x57, 0x41, 0x4c, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]
        );
        let m = crate::Mutation::put(&b"k"[..], crate::Record::new(0, &b"v"[..]));
        let batch = crate::batch::encode_batch(2, 813, &[m]).unwrap();
        assert_eq!(
            &batch[..20],
            &[2, 0, 0, 0, 0, 0, 0, 0, 0x2d, 3, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        );
        let rec = encode_record(TYPE_SEQ_BATCH, &batch);
        assert_eq!(
            &rec[..13],
            &[0xaf, 0x1d, 0x01, 0xa7, 0x28, 0, 0, 0, 0x02, 0x96, 0x10, 0xa6, 0x0d]
        );
    }
}
