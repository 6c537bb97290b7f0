//! DATA_DIR/replication/state.json: the node's role, the primary it follows, the
//! highest epoch it has seen, its epoch history and the replicas that streamed
//! from it (docs/formats/replication.md section 6). The same file, version 1, as
//! engine/velocity_engine/replication/state_file.py writes, so a node keeps its
//! epoch when it moves between data planes. Written atomically (temp, fsync,
//! rename, fsync of the directory) and only when it changes.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use velocity_lsm::fs::{make_dirs, publish, RealFs};

const VERSION: u64 = 1;

/// What survives a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub primary_role: bool,
    pub primary: String,
    pub epoch: u64,
    pub history: Vec<(u64, u64)>,
    pub replicas: Vec<String>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("replication").join("state.json")
}

/// The saved state; `None` when the node never saved one.
pub fn load(data_dir: &Path) -> Result<Option<Saved>, String> {
    let p = path(data_dir);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
    };
    let bad = |why: &str| format!("{}: malformed ({why})", p.display());
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
        return Err(format!("{}: unsupported version {}", p.display(), v["version"]));
    }
    let primary_role = match v.get("role").and_then(Value::as_str) {
        Some("primary") => true,
        Some("replica") => false,
        other => return Err(bad(&format!("bad role {other:?}"))),
    };
    let epoch = v.get("epoch").and_then(Value::as_u64).ok_or_else(|| bad("epoch"))?;
    let history = v
        .get("history")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("history"))?
        .iter()
        .map(
            |e| match (e.get(0).and_then(Value::as_u64), e.get(1).and_then(Value::as_u64)) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(bad("history entry")),
            },
        )
        .collect::<Result<_, _>>()?;
    let replicas = v
        .get("replicas")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
        .unwrap_or_default();
    Ok(Some(Saved {
        primary_role,
        primary: v.get("primary").and_then(Value::as_str).unwrap_or_default().to_string(),
        epoch,
        history,
        replicas,
    }))
}

pub fn save(data_dir: &Path, s: &Saved) -> std::io::Result<()> {
    let p = path(data_dir);
    let doc = json!({
        "version": VERSION,
        "epoch": s.epoch,
        "history": s.history.iter().map(|(e, q)| json!([e, q])).collect::<Vec<_>>(),
        "role": if s.primary_role { "primary" } else { "replica" },
        "primary": s.primary,
        "replicas": s.replicas,
    });
    // velocity-lsm's file layer: private modes whatever the umask, a new directory's
    // entry synced, then temp + fsync + rename + fsync of the directory.
    let fs = RealFs;
    make_dirs(&fs, p.parent().unwrap_or(data_dir))?;
    publish(&fs, &p, format!("{doc}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_what_python_writes() {
        let dir = std::env::temp_dir().join(format!("velocity-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), None);
        fs::create_dir_all(dir.join("replication")).unwrap();
        // state_file.py's output.
        fs::write(
            path(&dir),
            r#"{"version": 1, "epoch": 3, "history": [[1, 1], [3, 812]], "role": "replica", "primary": "vdb://h:1", "replicas": []}"#,
        )
        .unwrap();
        let s = load(&dir).unwrap().unwrap();
        assert_eq!(
            (s.epoch, s.history.clone(), s.primary_role),
            (3, vec![(1, 1), (3, 812)], false)
        );
        let t = Saved {
            primary_role: true,
            primary: String::new(),
            epoch: 4,
            history: vec![(1, 1), (4, 900)],
            replicas: vec!["vdb://r:2".into()],
        };
        save(&dir, &t).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(t));
        let _ = fs::remove_dir_all(&dir);
    }
}
