//! Replication between real data planes over TCP (plaintext, --insecure): a
//! native primary and native replicas, stream version 2. Waits poll a
//! condition with a deadline (no fixed sleeps).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use velocity_core::replication::stream;
use velocity_core::{Server, Settings};
use velocity_proto::{body, fbs, frame, ErrorCode, Opcode};

fn settings(replica_of: Option<String>, sync: bool) -> Settings {
    let mut s = Settings {
        threads: 2,
        ..Settings::default()
    };
    s.repl.replica_of = replica_of;
    s.repl.sync = sync;
    s.repl.sync_timeout = Duration::from_secs(2);
    s
}

fn endpoint(s: &Server) -> String {
    format!("vdb://127.0.0.1:{}", s.port())
}

struct Client {
    io: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(s: &Server) -> Self {
        let io = TcpStream::connect(("127.0.0.1", s.port())).expect("connect");
        io.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Self { io, buf: Vec::new() }
    }

    fn call(&mut self, op: Opcode, flags: u8, b: &[u8]) -> (Opcode, Vec<u8>) {
        let mut out = Vec::new();
        frame::encode(op, flags, b, &mut out);
        self.io.write_all(&out).expect("write");
        loop {
            if let Some((f, used)) = frame::decode(&self.buf, 1 << 26).expect("frame") {
                let r = (f.opcode, f.body.to_vec());
                self.buf.drain(..used);
                return r;
            }
            let mut chunk = [0u8; 65536];
            let n = self.io.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn set(&mut self, k: &str, v: &str) -> (Opcode, Vec<u8>) {
        self.call(
            Opcode::SET,
            0,
            &body::set_request(
                k.as_bytes(),
                v.as_bytes(),
                fbs::ValueKind::String,
                0,
                fbs::SetCondition::Always,
            ),
        )
    }

    fn get(&mut self, k: &str, flags: u8) -> Result<Option<Vec<u8>>, (ErrorCode, String, String)> {
        let (op, b) = self.call(Opcode::GET, flags, &body::key_request(k.as_bytes()));
        if op == Opcode::ERROR {
            return Err(error(&b));
        }
        let r = body::decode::<fbs::GetResponse>(&b).expect("GetResponse");
        Ok(r.found()
            .then(|| r.value().map(|v| v.bytes().to_vec()).unwrap_or_default()))
    }
}

fn error(b: &[u8]) -> (ErrorCode, String, String) {
    let (code, msg, primary, _) = stream::decode_error(b);
    (code, msg, primary)
}

fn ok(r: (Opcode, Vec<u8>)) {
    assert_ne!(r.0, Opcode::ERROR, "error reply: {:?}", error(&r.1));
}

fn seq(s: &Server) -> u64 {
    s.shared().keyspace.store().log_position().1
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const STALE_OK: u8 = 1;

#[test]
fn a_replica_copies_follows_redirects_and_is_promoted() {
    let primary = Server::start(settings(None, false)).expect("primary");
    let mut c = Client::new(&primary);
    for i in 0..200 {
        ok(c.set(&format!("k{i}"), &format!("v{i}")));
    }
    // Joins late: a full copy at seq 200, then the stream.
    let replica = Server::start(settings(Some(endpoint(&primary)), false)).expect("replica");
    wait_until("the copy", || seq(&replica) == 200);
    for i in 200..300 {
        ok(c.set(&format!("k{i}"), &format!("v{i}")));
    }
    wait_until("the stream", || seq(&replica) == 300);
    let mut r = Client::new(&replica);
    assert_eq!(r.get("k5", STALE_OK).unwrap(), Some(b"v5".to_vec()));
    assert_eq!(r.get("k299", STALE_OK).unwrap(), Some(b"v299".to_vec()));
    // Linearizable reads and writes go to the primary.
    let (code, _, to) = r.get("k5", 0).unwrap_err();
    assert_eq!((code, to.as_str()), (ErrorCode::Redirect, endpoint(&primary).as_str()));
    let (op, b) = r.set("x", "y");
    assert_eq!((op, error(&b).0), (Opcode::ERROR, ErrorCode::Redirect));
    // Every write is redirected, STALE_OK or not; every read is served with STALE_OK.
    for op in [Opcode::PERSIST, Opcode::DEL, Opcode::EXPIRE] {
        let (got, b) = r.call(op, STALE_OK, &body::key_request(b"k5"));
        assert_eq!((got, error(&b).0), (Opcode::ERROR, ErrorCode::Redirect), "{op:?}");
    }
    for op in [Opcode::EXISTS, Opcode::TTL] {
        let (got, _) = r.call(op, STALE_OK, &body::key_request(b"k5"));
        assert_eq!(got, op.response(), "{op:?}");
    }
    assert_eq!(seq(&replica), 300, "the replica wrote nothing of its own");
    // HELLO says which role the node has.
    let (_, b) = r.call(Opcode::HELLO, 0, &body::hello_request("", "t", 0));
    assert_eq!(
        body::decode::<fbs::HelloResponse>(&b).unwrap().role(),
        fbs::Role::Replica
    );
    let info = replica.shared().repl.info(replica.shared());
    assert_eq!(
        (info["role"].as_str(), info["seq"].as_u64()),
        (Some("replica"), Some(300))
    );
    let pinfo = primary.shared().repl.info(primary.shared());
    assert_eq!(pinfo["replicas_connected"].as_u64(), Some(1));

    // PROMOTE: a new epoch; the former primary is fenced and follows it.
    let (op, b) = r.call(Opcode::PROMOTE, 0, &promote(0));
    assert_eq!(op, Opcode::PROMOTE.response());
    let pr = body::decode::<fbs::PromoteResponse>(&b).unwrap();
    assert_eq!((pr.epoch(), pr.seq()), (2, 300), "a new node is the primary of epoch 1");
    ok(r.set("after", "promotion"));
    wait_until("the old primary to step down and follow", || {
        !primary.shared().repl.is_primary() && seq(&primary) == 301
    });
    let (code, _, to) = c.get("after", 0).unwrap_err();
    assert_eq!((code, to), (ErrorCode::Redirect, endpoint(&replica)));
    assert_eq!(c.get("after", STALE_OK).unwrap(), Some(b"promotion".to_vec()));
    assert_eq!(primary.shared().repl.history(), vec![(1, 1), (2, 301)]);
    primary.stop(Duration::from_secs(1));
    replica.stop(Duration::from_secs(1));
}

fn promote(min_epoch: u64) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let root = fbs::PromoteRequest::create(&mut fbb, &fbs::PromoteRequestArgs { min_epoch });
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}

#[test]
fn sync_mode_waits_for_the_quorum_and_refuses_without_replicas() {
    let primary = Server::start(settings(None, true)).expect("primary");
    let mut c = Client::new(&primary);
    let (op, b) = c.set("a", "1");
    assert_eq!(op, Opcode::ERROR);
    assert_eq!(error(&b).0, ErrorCode::NotEnoughReplicas);
    assert_eq!(seq(&primary), 0, "nothing was written");
    let replica = Server::start(settings(Some(endpoint(&primary)), false)).expect("replica");
    wait_until("the replica to stream", || {
        primary.shared().repl.info(primary.shared())["replicas_connected"].as_u64() == Some(1)
    });
    for i in 0..50 {
        ok(c.set(&format!("s{i}"), "v"));
        // Acknowledged means the replica has it.
        assert!(seq(&replica) > i, "write {i} acknowledged before the replica had it");
    }
    // The replica goes: writes are refused at once, nothing written.
    replica.stop(Duration::from_secs(1));
    wait_until("the feed to end", || {
        primary.shared().repl.info(primary.shared())["replicas_connected"].as_u64() == Some(0)
    });
    let before = seq(&primary);
    assert_eq!(error(&c.set("b", "2").1).0, ErrorCode::NotEnoughReplicas);
    // A replica that streams but never acknowledges: a write waits for
    // sync_timeout, then its reply is NOT_ENOUGH_REPLICAS (outcome unknown).
    let mut silent = Client::new(&primary);
    let req = stream::SyncRequest {
        node_id: "silent".into(),
        endpoint: "vdb://127.0.0.1:1".into(),
        epoch: 1,
        seq: before,
        full: false,
        node_epoch: 0,
        stream_version: stream::STREAM_VERSION,
    };
    let (op, b) = silent.call(Opcode::REPL_SYNC, 0, &stream::sync_request(&req));
    assert_eq!(op, Opcode::REPL_SYNC.response());
    let resp = stream::decode_sync_response(&b).unwrap();
    assert_eq!((resp.full, resp.seq, resp.stream_version), (false, before, 2));
    wait_until("the silent replica to stream", || {
        primary.shared().repl.info(primary.shared())["replicas_connected"].as_u64() == Some(1)
    });
    let set = body::set_request(b"lost", b"v", fbs::ValueKind::String, 0, fbs::SetCondition::Always);
    let started = Instant::now();
    let (op, b) = c.call(Opcode::SET, 0, &set);
    let waited = started.elapsed();
    assert_eq!(
        (op, error(&b).0),
        (Opcode::ERROR, ErrorCode::NotEnoughReplicas),
        "{:?}",
        error(&b)
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "after {waited:?}"
    );
    // The batch went out on the stream as the store encoded it.
    assert_eq!(seq(&primary), before + 1);
    let mut frames = Vec::new();
    silent.io.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = silent.io.read(&mut chunk) {
        if n == 0 {
            break;
        }
        silent.buf.extend_from_slice(&chunk[..n]);
    }
    while let Some((f, used)) = frame::decode(&silent.buf, 1 << 20).unwrap() {
        frames.push((f.opcode, f.body.to_vec()));
        silent.buf.drain(..used);
    }
    let batches: Vec<_> = frames.iter().filter(|(op, _)| *op == Opcode::REPL_BATCHES).collect();
    assert_eq!(batches.len(), 1, "{frames:?}");
    let raws = stream::decode_batches(&batches[0].1, stream::STREAM_VERSION).unwrap();
    assert_eq!(
        raws,
        primary.shared().keyspace.store().raw_batches_since(before).unwrap()
    );
    primary.stop(Duration::from_secs(1));
}

#[test]
fn a_stream_version_1_replica_is_refused_naming_both_versions() {
    let primary = Server::start(settings(None, false)).expect("primary");
    let mut c = Client::new(&primary);
    let req = stream::SyncRequest {
        node_id: "py".into(),
        endpoint: "vdb://127.0.0.1:1".into(),
        epoch: 0,
        seq: 0,
        full: false,
        node_epoch: 0,
        stream_version: 0,
    };
    let (op, b) = c.call(Opcode::REPL_SYNC, 0, &stream::sync_request(&req));
    assert_eq!(op, Opcode::ERROR);
    let (code, msg, _) = error(&b);
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(msg.contains("version 1") && msg.contains("version 2"), "{msg}");
    primary.stop(Duration::from_secs(1));
}
