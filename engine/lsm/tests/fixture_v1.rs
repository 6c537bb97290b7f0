//! A data directory written by today's Python engine (tests/fixtures/v1-python, see its
//! README) opens with the same contents, and its replication position moves into the log.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use velocity_lsm::{Db, FsyncPolicy, LegacyPosition, Options, LEGACY_POSITION_KEY};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-python")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

struct Expected {
    records: Vec<(Vec<u8>, u8, Vec<u8>, i64)>,
    position: (u64, u64, u8),
    live_keys: u64,
}

fn expected() -> Expected {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("expected.json")).unwrap()).unwrap();
    let records = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                unhex(r["key"].as_str().unwrap()),
                r["kind"].as_u64().unwrap() as u8,
                unhex(r["value"].as_str().unwrap()),
                r["expire_at_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let p = &v["position"];
    Expected {
        records,
        position: (
            p["epoch"].as_u64().unwrap(),
            p["seq"].as_u64().unwrap(),
            p["flags"].as_u64().unwrap() as u8,
        ),
        live_keys: v["live_keys"].as_u64().unwrap(),
    }
}

fn opts(dir: &Path) -> Options {
    let mut o = Options::new(dir);
    o.fsync = FsyncPolicy::Always;
    // Fixed clock: the fixture's TTLs are absolute; compaction must not drop them on
    // the day this test runs.
    o.clock = std::sync::Arc::new(|| 0);
    o
}

#[test]
fn python_v1_data_dir_opens_with_the_same_contents_and_migrates() {
    let exp = expected();
    let tmp = TempDir::new("fixture");
    let dir = tmp.path().join("storage");
    copy_dir(&fixture().join("storage"), &dir);

    let db = Db::open(opts(&dir)).unwrap();
    let rec = db.recovery().clone();
    assert!(rec.migrated_from_v1);
    assert_eq!(
        rec.legacy_position,
        Some(LegacyPosition {
            epoch: exp.position.0,
            seq: exp.position.1,
            incomplete: exp.position.2 & 1 != 0
        })
    );
    assert!(rec.batches > 0, "the fixture has a WAL tail to replay");
    assert_eq!(db.last_seq(), (exp.position.0, exp.position.1));
    assert!(!db.needs_full_copy());

    let want: Vec<_> = exp
        .records
        .iter()
        .filter(|r| r.0 != LEGACY_POSITION_KEY)
        .cloned()
        .collect();
    assert_eq!(
        want.len() + 1,
        exp.records.len(),
        "the fixture holds the position record"
    );
    let check = |db: &Db| {
        let got: Vec<_> = db
            .scan_from(b"", usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, r)| (k.to_vec(), r.kind, r.value.to_vec(), r.expire_at_ms))
            .collect();
        assert_eq!(got, want);
        for (k, kind, v, exp_at) in &want {
            let r = db.get(k).unwrap().unwrap();
            assert_eq!(
                (r.kind, r.value.as_ref(), r.expire_at_ms),
                (*kind, v.as_slice(), *exp_at)
            );
        }
        assert_eq!(
            db.get(LEGACY_POSITION_KEY).unwrap(),
            None,
            "the hidden key left user data"
        );
        assert_eq!(db.len(), exp.live_keys - 1);
    };
    check(&db);
    // The log continues where the Python engine's position record said.
    let c = db.commit(1, vec![put("after:migration", "x")]).unwrap();
    assert_eq!(c.seq, exp.position.1 + 1);
    c.wait().unwrap();
    let raw: Vec<Bytes> = db.batches_since(exp.position.1).unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(velocity_lsm::batch::header(&raw[0]), Some((1, exp.position.1 + 1)));
    db.close().unwrap();

    // Now a version-2 directory: no version-1 file is left, and it reopens the same.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for n in &names {
        if let Some(rest) = n.strip_prefix("wal-") {
            let data = std::fs::read(dir.join(n)).unwrap();
            assert_eq!(u16::from_le_bytes([data[4], data[5]]), 2, "{n} is version 2 ({rest})");
        }
        if n.starts_with("MANIFEST-") {
            let data = std::fs::read(dir.join(n)).unwrap();
            assert_eq!(u32::from_le_bytes([data[8], data[9], data[10], data[11]]), 2);
        }
    }
    let db = Db::open(opts(&dir)).unwrap();
    assert!(!db.recovery().migrated_from_v1);
    assert_eq!(db.last_seq(), (1, exp.position.1 + 1));
    assert_eq!(get_str(&db, "after:migration").as_deref(), Some("x"));
    db.commit(1, vec![del("after:migration")]).unwrap();
    check(&db);
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    check(&db);
    db.close().unwrap();
}

#[test]
fn migration_interrupted_by_a_power_cut_is_redone() {
    use velocity_lsm::testing::{CrashMode, SimFs};
    let exp = expected();
    let fs = SimFs::new(SIM_ROOT);
    let dir = Path::new(SIM_ROOT).join("data/storage");
    velocity_lsm::fs::make_dirs(&fs, &dir).unwrap();
    for e in std::fs::read_dir(fixture().join("storage")).unwrap() {
        let e = e.unwrap();
        fs.write_file(&dir.join(e.file_name()), &std::fs::read(e.path()).unwrap())
            .unwrap();
    }
    let base = fs.op_count();
    // Count the operations a clean migration takes, then cut the power before each.
    let clean = fs.crash(CrashMode::SyncedOnly);
    let mut o = opts(&dir);
    o.fs = std::sync::Arc::new(clean.clone());
    drop(Db::open(o).unwrap());
    let total = clean.op_count();
    assert!(total > 5);
    let _ = base;
    for cut in 0..total {
        let f = fs.crash(CrashMode::SyncedOnly);
        f.power_off_after(cut);
        let mut o = opts(&dir);
        o.fs = std::sync::Arc::new(f.clone());
        drop(Db::open(o));
        let after = f.crash(CrashMode::SyncedOnly);
        let mut o = opts(&dir);
        o.fs = std::sync::Arc::new(after);
        let db = Db::open(o).unwrap_or_else(|e| panic!("cut before op {cut}: {e}"));
        assert_eq!(db.last_seq(), (exp.position.0, exp.position.1), "cut before op {cut}");
        let n = db.scan_from(b"", usize::MAX).unwrap().len();
        assert_eq!(n, exp.records.len() - 1, "cut before op {cut}");
        assert_eq!(db.get(LEGACY_POSITION_KEY).unwrap(), None);
    }
}
