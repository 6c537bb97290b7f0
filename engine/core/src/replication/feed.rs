//! The primary's side of one replica's stream (feed.py's counterpart): the
//! connection that sent REPL_SYNC becomes this loop once the ReplSyncResponse
//! is written. It sends the full copy (if any) in chunks of about 256 KiB,
//! then the log's batches as the store encoded them, a heartbeat at least every
//! 0.5 s, and reads REPL_ACK and heartbeat echoes. It ends when the replica
//! goes, the node stops being the primary (generation), the backlog no longer
//! holds the replica's next batch (it reconnects for a full copy), or the
//! server drains.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use velocity_proto::{frame, Opcode};

use super::stream;
use crate::server::Shared;
use crate::store::{Key, Record};

const HEARTBEAT: Duration = Duration::from_millis(500);
const SNAPSHOT_CHUNK: usize = 256 * 1024;
/// Batches per REPL_BATCHES frame, in bytes (a frame stays far below the frame limit).
const BATCHES_FRAME: usize = 1 << 20;
/// Heartbeats remembered for matching echoes (replication.md: the last 64).
const SENT_KEPT: usize = 64;

/// What REPL_SYNC decided.
pub struct Plan {
    pub node_id: String,
    pub endpoint: String,
    /// Batches after this one follow (after the copy, if any).
    pub from_seq: u64,
    pub copy: Option<Vec<(Key, Record)>>,
    /// The node's generation when the plan was made: a step-down since ends the feed.
    pub generation: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn send<S: AsyncWrite + Unpin>(w: &mut S, op: Opcode, body: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 32);
    frame::encode(op, 0, body, &mut out);
    w.write_all(&out).await?;
    w.flush().await
}

/// Runs the feed until it ends; `leftover` holds bytes read after REPL_SYNC.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    leftover: Vec<u8>,
    plan: Plan,
    shared: Arc<Shared>,
    mut drain: watch::Receiver<bool>,
) {
    let repl = shared.repl.clone();
    let (id, state) = repl.register_feed(
        &plan.node_id,
        &plan.endpoint,
        if plan.copy.is_some() { 0 } else { plan.from_seq },
    );
    let mut generation = repl.generation.subscribe();
    let mut log = repl.log_tx.subscribe();
    let why = feed(
        stream,
        leftover,
        plan,
        &shared,
        &state,
        &mut generation,
        &mut log,
        &mut drain,
    )
    .await;
    repl.drop_feed(id);
    eprintln!(
        "velocity-core: replica {} ({}) stream ended at acked seq {}: {why}",
        state.node_id,
        state.endpoint,
        state.acked.load(Ordering::Acquire)
    );
}

#[allow(clippy::too_many_arguments)]
async fn feed<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut rbuf: Vec<u8>,
    plan: Plan,
    shared: &Shared,
    state: &super::FeedState,
    generation: &mut watch::Receiver<u64>,
    log: &mut watch::Receiver<u64>,
    drain: &mut watch::Receiver<bool>,
) -> String {
    let repl = &shared.repl;
    let store = shared.keyspace.store();
    if *generation.borrow_and_update() != plan.generation {
        return "this node stepped down".into();
    }
    let mut next = plan.from_seq;
    let mut last_hb = 0u64;
    // The last heartbeats sent (time_ms, when): an echo proves contact as of its send time.
    let mut sent: std::collections::VecDeque<(u64, Instant)> = std::collections::VecDeque::new();
    let mut heartbeat = |seq: u64, sent: &mut std::collections::VecDeque<(u64, Instant)>| {
        let t = now_ms().max(last_hb + 1);
        last_hb = t;
        if sent.len() == SENT_KEPT {
            sent.pop_front();
        }
        sent.push_back((t, Instant::now()));
        stream::heartbeat_body(repl.epoch(), seq, t)
    };
    // The copy, then a first heartbeat, before anything is read from the replica.
    if let Some(records) = plan.copy {
        let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK + 1024);
        let n = records.len();
        for (i, (k, r)) in records.iter().enumerate() {
            stream::pack_record(k, r, &mut chunk);
            let last = i + 1 == n;
            if chunk.len() >= SNAPSHOT_CHUNK || last {
                if let Err(e) = send(stream, Opcode::REPL_SNAPSHOT, &stream::snapshot_body(&chunk, last)).await {
                    return format!("write failed during the full copy: {e}");
                }
                chunk.clear();
                // Let the worker's other connections run between chunks.
                tokio::task::yield_now().await;
            }
        }
        if n == 0 {
            if let Err(e) = send(stream, Opcode::REPL_SNAPSHOT, &stream::snapshot_body(&[], true)).await {
                return format!("write failed during the full copy: {e}");
            }
        }
    }
    state.streaming.store(true, Ordering::Release);
    repl.update_quorum();
    let max = shared.settings.max_frame_bytes;
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut payload = Vec::new();
    loop {
        // Everything the log holds past `next` (a commit meanwhile bumps `log`).
        log.borrow_and_update();
        match store.raw_batches_since(next) {
            Ok(batches) => {
                for raw in &batches {
                    stream::pack_batch(raw, &mut payload);
                    next += 1;
                    if payload.len() >= BATCHES_FRAME {
                        if let Err(e) = send(stream, Opcode::REPL_BATCHES, &stream::batches_body(&payload)).await {
                            return format!("write failed: {e}");
                        }
                        payload.clear();
                    }
                }
                if !payload.is_empty() {
                    if let Err(e) = send(stream, Opcode::REPL_BATCHES, &stream::batches_body(&payload)).await {
                        return format!("write failed: {e}");
                    }
                    payload.clear();
                }
            }
            Err(e) => return format!("the replica fell behind the backlog ({e}); it reconnects for a full copy"),
        }
        // Frames from the replica already buffered.
        loop {
            match frame::decode(&rbuf, max) {
                Ok(Some((f, used))) => {
                    match f.opcode {
                        Opcode::REPL_ACK => match stream::decode_ack(f.body) {
                            Ok(seq) => {
                                state.acked.fetch_max(seq, Ordering::AcqRel);
                                repl.update_quorum();
                            }
                            Err(e) => return format!("bad REPL_ACK: {}", e.message),
                        },
                        // An echo: contact as of the echoed heartbeat's send time.
                        Opcode::REPL_HEARTBEAT => match stream::decode_heartbeat(f.body) {
                            Ok((_, _, t)) => {
                                while let Some((stamp, at)) = sent.pop_front() {
                                    if stamp == t {
                                        let mut c = state.contact.lock().unwrap_or_else(|e| e.into_inner());
                                        if c.is_none_or(|c| at > c) {
                                            *c = Some(at);
                                        }
                                        drop(c);
                                        repl.on_echo();
                                        break;
                                    }
                                }
                            }
                            Err(e) => return format!("bad heartbeat echo: {}", e.message),
                        },
                        other => return format!("unexpected opcode 0x{:02x} on a replication stream", other.0),
                    }
                    rbuf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => return format!("broken frame from the replica: {e}"),
            }
        }
        rbuf.reserve(16 * 1024);
        tokio::select! {
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) => return "the replica closed the connection".into(),
                Err(e) => return format!("read failed: {e}"),
                Ok(_) => {}
            },
            _ = log.changed() => {}
            _ = ticker.tick() => {
                let seq = next;
                if let Err(e) = send(stream, Opcode::REPL_HEARTBEAT, &heartbeat(seq, &mut sent)).await {
                    return format!("write failed: {e}");
                }
            }
            _ = generation.changed() => return "this node stopped being the primary".into(),
            _ = drain.wait_for(|d| *d) => return "the server is shutting down".into(),
        }
    }
}
