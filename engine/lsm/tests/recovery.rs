//! Recovery rules of docs/formats/wal.md: torn tails are cut, anything else refuses to start.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use velocity_lsm::batch::encode_batch;
use velocity_lsm::testing::SimFs;
use velocity_lsm::wal_format::{encode_record, file_header, TYPE_BATCH, TYPE_SEQ_BATCH};
use velocity_lsm::{Db, Error, FsyncPolicy, Mutation, Options, Record};

fn dir() -> PathBuf {
    Path::new(SIM_ROOT).join("data/storage")
}

fn opts_on(fs: &SimFs) -> Options {
    let mut o = sim_opts(fs);
    o.memtable_bytes = 1 << 20;
    o
}

/// A directory holding one v2 segment written by hand.
fn with_segments(segments: &[(u64, Vec<u8>)]) -> SimFs {
    let fs = SimFs::new(SIM_ROOT);
    velocity_lsm::fs::make_dirs(&fs, &dir()).unwrap();
    for (n, data) in segments {
        fs.write_file(&dir().join(velocity_lsm::filenames::wal_name(*n)), data)
            .unwrap();
    }
    fs
}

fn v2_record(seq: u64, key: &str) -> Vec<u8> {
    let b = encode_batch(1, seq, &[put(key, &format!("value-{seq}"))]).unwrap();
    encode_record(TYPE_SEQ_BATCH, &b)
}

fn segment(n: u64, version: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = file_header(version, n).to_vec();
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

#[test]
fn a_torn_tail_at_every_offset_of_the_last_record_is_cut_off() {
    let records: Vec<Vec<u8>> = (1..=3).map(|s| v2_record(s, &format!("k{s}"))).collect();
    let full = segment(1, 2, &records);
    let two = full.len() - records[2].len();
    for cut in two..full.len() {
        let fs = with_segments(&[(1, full[..cut].to_vec())]);
        let db = Db::open(opts_on(&fs)).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(db.last_seq(), (1, 2), "cut {cut}");
        assert_eq!(get_str(&db, "k2").as_deref(), Some("value-2"));
        assert_eq!(get_str(&db, "k3"), None);
        let rec = db.recovery();
        assert_eq!(rec.torn_bytes, (cut - two) as u64, "cut {cut}");
        assert_eq!(
            db.commit(1, vec![put("k4", "x")]).unwrap().seq,
            3,
            "the log continues after the cut"
        );
        db.close().unwrap();
        let db = Db::open(opts_on(&fs)).unwrap();
        assert_eq!(db.last_seq(), (1, 3));
        assert_eq!(db.recovery().torn_bytes, 0, "the truncation was made durable");
    }
}

#[test]
fn zeros_to_the_end_are_a_torn_tail() {
    let mut data = segment(1, 2, &[v2_record(1, "a")]);
    data.extend_from_slice(&[0u8; 4096]);
    let fs = with_segments(&[(1, data)]);
    let db = Db::open(opts_on(&fs)).unwrap();
    assert_eq!(db.last_seq(), (1, 1));
    assert_eq!(db.recovery().torn_bytes, 4096);
}

#[test]
fn damage_in_the_middle_refuses_to_start_and_names_the_place() {
    let records: Vec<Vec<u8>> = (1..=3).map(|s| v2_record(s, "k")).collect();
    for (what, at) in [("payload", 16 + 13 + 25), ("length", 16 + 5)] {
        let mut data = segment(1, 2, &records);
        data[at] ^= 0x10;
        let fs = with_segments(&[(1, data)]);
        match Db::open(opts_on(&fs)) {
            Err(Error::Corruption { path, offset, reason }) => {
                assert!(path.ends_with("wal-000001.log"), "{what}");
                assert_eq!(offset, 16, "{what}: {reason}");
            }
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => panic!("{what}: opened a corrupt log"),
        }
    }
}

#[test]
fn check_reports_and_repair_keeps_the_longest_clean_prefix() {
    let records: Vec<Vec<u8>> = (1..=3).map(|s| v2_record(s, &format!("k{s}"))).collect();
    let mut data = segment(1, 2, &records);
    data[16 + records[0].len() + 20] ^= 0x10; // the second record's payload
    let fs = with_segments(&[(1, data), (2, segment(2, 2, &[v2_record(4, "k4")]))]);
    let report = velocity_lsm::check::check_dir(&fs, &dir(), false);
    assert!(!report.ok);
    let text = report.lines.join("\n");
    assert!(text.contains("CORRUPT (start-up refuses) at offset 76"), "{text}");
    assert!(
        text.contains("--repair would truncate wal-000001.log at 76 and delete 1 newer segment(s)"),
        "{text}"
    );
    let report = velocity_lsm::check::check_dir(&fs, &dir(), true);
    assert!(report.ok, "{}", report.lines.join("\n"));
    let db = Db::open(opts_on(&fs)).unwrap();
    assert_eq!(db.last_seq(), (1, 1));
    assert_eq!(dump(&db), vec![("k1".to_string(), "value-1".to_string())]);
}

#[test]
fn a_damaged_older_segment_is_corruption_even_at_its_end() {
    let older = segment(1, 2, &[v2_record(1, "a"), v2_record(2, "b")]);
    let cut = older[..older.len() - 3].to_vec();
    let fs = with_segments(&[(1, cut), (2, segment(2, 2, &[v2_record(3, "c")]))]);
    assert!(Db::open(opts_on(&fs)).unwrap_err().is_corruption());
}

#[test]
fn a_missing_segment_is_a_sequence_gap() {
    let fs = with_segments(&[
        (1, segment(1, 2, &[v2_record(1, "a")])),
        (3, segment(3, 2, &[v2_record(3, "c")])),
    ]);
    let e = Db::open(opts_on(&fs)).unwrap_err();
    assert!(e.to_string().contains("does not follow batch 1"), "{e}");
}

#[test]
fn unknown_versions_are_refused() {
    let fs = with_segments(&[(1, segment(1, 3, &[]))]);
    assert!(Db::open(opts_on(&fs))
        .unwrap_err()
        .to_string()
        .contains("unsupported WAL version 3"));
}

#[test]
fn a_python_wal_without_manifest_migrates_and_drops_its_torn_tail() {
    let mut payload = Vec::new();
    let rec = Record::new(1, &b"v1"[..]);
    velocity_lsm::entry_codec::encode_entry(&mut payload, b"old", Some(&rec));
    let pos = {
        let mut v = 7u64.to_le_bytes().to_vec();
        v.extend_from_slice(&41u64.to_le_bytes());
        v.push(0);
        Record::new(0, v)
    };
    velocity_lsm::entry_codec::encode_entry(&mut payload, velocity_lsm::LEGACY_POSITION_KEY, Some(&pos));
    let mut data = segment(5, 1, &[encode_record(TYPE_BATCH, &payload)]);
    data.extend_from_slice(&encode_record(TYPE_BATCH, &payload)[..10]);
    let fs = with_segments(&[(5, data)]);
    let db = Db::open(opts_on(&fs)).unwrap();
    assert!(db.recovery().migrated_from_v1);
    assert_eq!(db.recovery().torn_bytes, 10);
    assert_eq!(db.last_seq(), (7, 41));
    assert_eq!(dump(&db), vec![("old".to_string(), "v1".to_string())]);
    assert_eq!(db.len(), 1);
    assert_eq!(db.commit(7, vec![Mutation::delete("old")]).unwrap().seq, 42);
}

#[test]
fn leftovers_of_an_interrupted_flush_are_removed_at_start() {
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(opts_on(&fs)).unwrap();
    db.commit(1, vec![put("a", "1")]).unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    fs.write_file(&dir().join("table-000999.sst"), b"half a table").unwrap();
    fs.write_file(&dir().join(".MANIFEST-001000.tmp-1"), b"half a manifest")
        .unwrap();
    let db = Db::open(opts_on(&fs)).unwrap();
    let mut removed = db.recovery().removed_files.clone();
    removed.sort();
    assert_eq!(
        removed,
        vec![".MANIFEST-001000.tmp-1".to_string(), "table-000999.sst".to_string()]
    );
    assert_eq!(get_str(&db, "a").as_deref(), Some("1"));
    let _ = Arc::new(0);
    let _ = FsyncPolicy::No;
}

#[test]
fn a_damaged_table_is_reported_never_read_as_data() {
    let fs = SimFs::new(SIM_ROOT);
    let db = Db::open(opts_on(&fs)).unwrap();
    db.commit(
        1,
        (0..200).map(|i| put(&format!("k{i:04}"), &"v".repeat(100))).collect(),
    )
    .unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    use velocity_lsm::fs::FileSystem;
    let name = fs
        .list_dir(&dir())
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("table-"))
        .unwrap();
    let mut data = fs.contents(&dir().join(&name)).unwrap();
    data[5000] ^= 0xff; // inside the second data block
    fs.write_file(&dir().join(&name), &data).unwrap();
    let db = Db::open(opts_on(&fs)).unwrap();
    assert!(db.get(b"k0000").unwrap().is_some());
    let err = (0..200)
        .find_map(|i| db.get(format!("k{i:04}").as_bytes()).err())
        .expect("a lookup hits the bad block");
    assert!(err.is_corruption(), "{err}");
    assert!(db.scan_from(b"", usize::MAX).is_err());
}
