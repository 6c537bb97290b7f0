//! Power cuts before every file operation of a workload of commits (appendfsync always),
//! flushes and compactions. After each cut: start-up succeeds, the database holds exactly
//! the first L batches for some L at or above every batch acknowledged before the cut
//! (never a gap, never half a batch), and it keeps working.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use velocity_lsm::testing::{CrashMode, SimFs};
use velocity_lsm::{Db, Mutation};

#[derive(Clone)]
enum Step {
    Commit(Vec<Mutation>),
    Flush,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn plan(seed: u64, n: usize) -> Vec<Step> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::new();
    for i in 0..n {
        let roll = r.next(100);
        let key = |r: &mut Rng| format!("key:{:02}", r.next(25));
        let val = |r: &mut Rng| format!("{i}:{}", "v".repeat(10 + r.next(200) as usize));
        out.push(match roll {
            0..=69 => Step::Commit(vec![put(&key(&mut r), &val(&mut r))]),
            70..=84 => Step::Commit(vec![del(&key(&mut r))]),
            85..=94 => Step::Commit((0..3).map(|_| put(&key(&mut r), &val(&mut r))).collect()),
            _ => Step::Flush,
        });
    }
    out
}

/// Model state after each batch: states[s] = contents after the first s batches.
fn model(steps: &[Step]) -> Vec<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    let mut states = vec![m.clone()];
    for s in steps {
        if let Step::Commit(muts) = s {
            for mu in muts {
                match mu {
                    Mutation::Put { key, record } => {
                        m.insert(
                            String::from_utf8(key.to_vec()).unwrap(),
                            String::from_utf8(record.value.to_vec()).unwrap(),
                        );
                    }
                    Mutation::Delete { key } => {
                        m.remove(&String::from_utf8(key.to_vec()).unwrap());
                    }
                }
            }
            states.push(m.clone());
        }
    }
    states
}

/// Run until the first error; returns (acknowledged, issued) batch counts.
fn run(fs: &SimFs, steps: &[Step]) -> (u64, u64) {
    let Ok(db) = Db::open(sim_opts(fs)) else { return (0, 0) };
    let (mut acked, mut issued) = (0, 0);
    for s in steps {
        match s {
            Step::Commit(muts) => {
                let Ok(c) = db.commit(1, muts.clone()) else { break };
                issued = c.seq;
                if c.wait().is_err() {
                    break;
                }
                acked = c.seq;
            }
            Step::Flush => {
                if db.flush().is_err() {
                    break;
                }
            }
        }
    }
    drop(db);
    (acked, issued)
}

fn check(image: SimFs, states: &[BTreeMap<String, String>], acked: u64, issued: u64, what: &str) {
    let mut o = sim_opts(&image);
    o.fs = Arc::new(image.clone());
    let db = Db::open(o.clone()).unwrap_or_else(|e| panic!("{what}: start-up failed: {e}"));
    let (_, l) = db.last_seq();
    assert!(
        l >= acked && l <= issued,
        "{what}: holds {l} batches, acknowledged {acked}, issued {issued}"
    );
    let got: BTreeMap<String, String> = dump(&db).into_iter().collect();
    assert_eq!(
        got, states[l as usize],
        "{what}: contents are not those of the first {l} batches"
    );
    assert_eq!(db.len(), got.len() as u64, "{what}: key count");
    // It keeps working across a flush and a restart.
    db.commit(1, vec![put("after", "cut")]).unwrap().wait().unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    let db = Db::open(o).unwrap_or_else(|e| panic!("{what}: second start-up failed: {e}"));
    assert_eq!(get_str(&db, "after").as_deref(), Some("cut"), "{what}");
    assert_eq!(db.last_seq().1, l + 1, "{what}");
}

fn cuts(mode: fn(u64) -> CrashMode, stride: u64, seed: u64) {
    let steps = plan(seed, 120);
    let states = model(&steps);
    let clean = SimFs::new(SIM_ROOT);
    let (acked, _) = run(&clean, &steps);
    assert_eq!(acked as usize + 1, states.len());
    let total = clean.op_count();
    assert!(total > 300, "the workload makes {total} file operations");
    let t0 = std::time::Instant::now();
    let mut cut = 0;
    while cut < total + 5 {
        let fs = SimFs::new(SIM_ROOT);
        fs.power_off_after(cut);
        let t1 = std::time::Instant::now();
        let (acked, issued) = run(&fs, &steps);
        let t2 = std::time::Instant::now();
        if std::env::var("VELOCITY_POWER_CUT_TRACE").is_ok() {
            eprintln!("cut {cut}: run {:?}", t2 - t1);
        }
        check(
            fs.crash(mode(cut)),
            &states,
            acked,
            issued,
            &format!("cut before op {cut}"),
        );
        cut += stride;
    }
    eprintln!("{total} operations, cuts every {stride}: {:?}", t0.elapsed());
}

#[test]
fn power_cut_before_every_operation_keeps_exactly_the_synced_prefix() {
    let stride = std::env::var("VELOCITY_POWER_CUT_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    cuts(|_| CrashMode::SyncedOnly, stride, 7);
}

#[test]
fn power_cut_with_random_unsynced_tails_and_directory_orders() {
    let stride = std::env::var("VELOCITY_POWER_CUT_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    cuts(|cut| CrashMode::Tails { seed: cut + 1 }, stride, 11);
}
