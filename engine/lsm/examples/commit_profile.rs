//! A single committer under `everysec` for a fixed number of commits (for `perf record`).
use bytes::Bytes;
use velocity_lsm::{Db, FsyncPolicy, Mutation, Options, Record};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp/vlsm-prof".into()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = Options::new(&dir);
    o.fsync = FsyncPolicy::Everysec;
    let db = Db::open(o).unwrap();
    let value = Bytes::from(vec![b'v'; 64]);
    let keys: Vec<Bytes> = (0..100_000).map(|i| Bytes::from(format!("key:{i:012}"))).collect();
    let t0 = std::time::Instant::now();
    let n = 1_000_000;
    for i in 0..n {
        db.commit(
            1,
            vec![Mutation::put(
                keys[i % keys.len()].clone(),
                Record::new(0, value.clone()),
            )],
        )
        .unwrap();
    }
    let e = t0.elapsed();
    println!("{n} commits in {e:?}: {:.2} us each", e.as_secs_f64() * 1e6 / n as f64);
    let t0 = std::time::Instant::now();
    let mut found = 0;
    for i in 0..n {
        found += db.get(&keys[i % keys.len()]).unwrap().is_some() as usize;
    }
    let e = t0.elapsed();
    println!("{found} gets in {e:?}: {:.2} us each", e.as_secs_f64() * 1e6 / n as f64);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
