//! Replication in the core (docs/replication.md; stream: docs/formats/replication.md,
//! version 2): the node's role and epoch, the feeds of connected replicas
//! (primary, feed.rs), the follower (replica, follower.rs), the sync quorum,
//! and the role switches PROMOTE and REPLICA_OF. The native counterpart of
//! engine/velocity_engine/replication/manager.py. Under `--lease-name` the Lease
//! agent and the switchover stay in Python (native_lease.py drives lease.py and
//! switchover.py over the `Core`); lease.rs holds what the request path checks.
//!
//! Hot path cost: a request checks the role with one atomic load; a commit
//! wakes the feeds only when some exist, and waits for the quorum only in
//! sync mode.

pub mod feed;
pub mod follower;
pub mod lease;
pub mod state_file;
pub mod stream;
pub mod stream_v1;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;
use velocity_proto::{ErrorCode, Opcode};

use crate::error::{VError, VResult};
use crate::keyspace::Pending;
use crate::store::StoreError;

/// Opcodes that write (manager.py's WRITE_OPS; the client role's write table).
pub fn is_write(op: u8) -> bool {
    crate::auth::WRITES.contains(&Opcode(op))
}

/// Reads a replica redirects unless STALE_OK (manager.py's READ_OPS).
pub fn is_read(op: u8) -> bool {
    crate::auth::READS.contains(&Opcode(op))
}

const STALE_OK: u8 = 1;

/// Reads a primary can prove (read_proof.py): a read is answered until this long
/// after the send time of the newest heartbeat echoed by the needed replicas...
const READ_LEASE: Duration = Duration::from_secs(2);
/// ...and a replica takes no writes of another primary (nor its own after a
/// promotion) until this long after its last frame from the one it left.
const REPLICA_PROMISE: Duration = Duration::from_millis(2500);
/// A newly promoted sync primary answers "retry" while its replicas reconnect.
const PROMOTION_GRACE: Duration = Duration::from_secs(1);

/// The replication settings the shell hands over (config.py's names).
#[derive(Debug, Clone)]
pub struct ReplSettings {
    /// `vdb://HOST:PORT` to follow at start.
    pub replica_of: Option<String>,
    /// `async` or `sync`.
    pub sync: bool,
    pub sync_replicas: usize,
    pub sync_degrade: bool,
    pub sync_timeout: Duration,
    pub backlog_bytes: usize,
    /// This node's endpoint as others reach it (empty: from host and port).
    pub advertise: String,
    /// CA file the follower trusts for its primary (TLS).
    pub replica_ca: Option<std::path::PathBuf>,
    /// Token this node presents to its primary (replication role) and to a
    /// deposed primary it fences (admin role).
    pub replication_token: Option<String>,
    pub admin_token: Option<String>,
    /// The client token, presented to a primary that refuses the replication token
    /// (AUTH_FAILED): an engine from before token roles knew one token for everything.
    pub legacy_token: Option<String>,
    /// Where state.json lives (None: nothing persists, as in unit tests).
    pub data_dir: Option<std::path::PathBuf>,
    /// `--lease-name`: the shell's Lease agent decides the role (lease.rs).
    pub lease_name: Option<String>,
}

impl Default for ReplSettings {
    fn default() -> Self {
        Self {
            replica_of: None,
            sync: false,
            sync_replicas: 1,
            sync_degrade: false,
            sync_timeout: Duration::from_secs(5),
            backlog_bytes: crate::memlog::DEFAULT_BACKLOG_BYTES,
            advertise: String::new(),
            replica_ca: None,
            replication_token: None,
            admin_token: None,
            legacy_token: None,
            data_dir: None,
            lease_name: None,
        }
    }
}

/// Role, epoch and epoch history (replication.md section 1).
#[derive(Debug, Clone, Default)]
struct NodeState {
    primary_role: bool,
    /// The primary a replica follows ("" : none known).
    primary: String,
    epoch: u64,
    history: Vec<(u64, u64)>,
    /// Replicas that streamed from this node as the primary (state.json).
    replicas: Vec<String>,
    fenced_by: String,
    promotions: u64,
}

/// Replicas a primary must be in contact with to serve reads, and after a
/// restart to serve at all (read_proof.py's `confirmations_needed`).
fn confirmations_needed(s: &ReplSettings, known_replicas: usize) -> usize {
    if known_replicas == 0 {
        0
    } else if s.sync && !s.sync_degrade {
        s.sync_replicas
    } else {
        known_replicas / 2 + 1
    }
}

/// `epoch_of(s)`: the epoch that wrote batch `s` by the history (0 for none).
pub fn epoch_of(history: &[(u64, u64)], s: u64) -> u64 {
    if s == 0 {
        return 0;
    }
    history
        .iter()
        .rev()
        .find(|(_, start)| *start <= s)
        .map_or(0, |(e, _)| *e)
}

/// Log matching: a node at `(e, s)` holds exactly the batches `1..s` of a
/// primary whose last batch is `last` and whose history is `history`.
pub fn holds(history: &[(u64, u64)], pos: (u64, u64), last: u64) -> bool {
    pos.1 <= last && epoch_of(history, pos.1) == pos.0
}

/// A connected replica, as the primary sees it.
pub struct FeedState {
    pub node_id: String,
    pub endpoint: String,
    pub acked: AtomicU64,
    pub streaming: AtomicBool,
    pub connected: Instant,
    /// Send time of the newest heartbeat the replica echoed (read proofs).
    pub contact: Mutex<Option<Instant>>,
}

pub struct Replication {
    pub settings: ReplSettings,
    state: Mutex<NodeState>,
    /// Mirrors of the state for the request path.
    primary: AtomicBool,
    epoch: AtomicU64,
    /// A full copy is being installed: nothing is served from the data.
    pub incomplete: AtomicBool,
    endpoint: Mutex<String>,
    feeds: Mutex<HashMap<u64, Arc<FeedState>>>,
    feed_count: AtomicUsize,
    next_feed: AtomicU64,
    /// Bumped at each commit while feeds exist (feeds wait on it).
    pub log_tx: watch::Sender<u64>,
    /// The highest seq acknowledged by `sync_replicas` streaming replicas.
    quorum_tx: watch::Sender<u64>,
    /// Bumped when this node stops being the primary: feeds close, quorum waits fail.
    pub generation: watch::Sender<u64>,
    follower: Mutex<Option<follower::Handle>>,
    /// A primary back from its state file has not re-established its role yet.
    confirmed: AtomicBool,
    /// Sync mode without degrade: linearizable reads need contact with the quorum.
    read_proof: bool,
    /// The last frame from the primary this node followed (its promise runs from it).
    primary_contact: Mutex<Option<Instant>>,
    /// Writes (a new primary) and following (a replica) wait for the promise to end.
    writes_not_before: Mutex<Option<Instant>>,
    promoted_at: Mutex<Option<Instant>>,
    /// Lease mode: the Lease's validity, the handover fence, the admin queue.
    pub lease: Option<lease::LeaseMode>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Replication {
    /// The node's replication state: state.json if any (an error names the
    /// file), else a fresh primary of epoch 1; `replica_of` makes it a replica.
    pub fn new(settings: ReplSettings) -> Result<Self, String> {
        let saved = match &settings.data_dir {
            Some(d) => state_file::load(d)?,
            None => None,
        };
        let fresh = saved.is_none();
        let mut state = match saved {
            Some(s) => NodeState {
                primary_role: s.primary_role,
                primary: s.primary,
                epoch: s.epoch,
                history: s.history,
                replicas: s.replicas,
                ..NodeState::default()
            },
            // As state_file.py: a new node is the primary of epoch 1 from seq 1.
            None => NodeState {
                primary_role: true,
                epoch: 1,
                history: vec![(1, 1)],
                ..NodeState::default()
            },
        };
        if let Some(p) = &settings.replica_of {
            state.primary_role = false;
            state.primary = p.clone();
        }
        if settings.lease_name.is_some() && state.primary_role {
            // Only the Lease makes a primary: wait to hold it before taking writes.
            state.primary_role = false;
            state.primary.clear();
        }
        // Under a Lease, the Lease proves reads (lease.rs), not contact with the quorum.
        let read_proof = settings.sync && !settings.sync_degrade && settings.lease_name.is_none();
        let need = confirmations_needed(&settings, state.replicas.len());
        let confirmed = !(state.primary_role && !fresh && need > 0);
        let me = Self {
            primary: AtomicBool::new(state.primary_role),
            epoch: AtomicU64::new(state.epoch),
            confirmed: AtomicBool::new(confirmed),
            read_proof,
            primary_contact: Mutex::new(None),
            writes_not_before: Mutex::new(None),
            promoted_at: Mutex::new(None),
            incomplete: AtomicBool::new(false),
            endpoint: Mutex::new(settings.advertise.clone()),
            state: Mutex::new(state),
            feeds: Mutex::new(HashMap::new()),
            feed_count: AtomicUsize::new(0),
            next_feed: AtomicU64::new(1),
            log_tx: watch::channel(0).0,
            quorum_tx: watch::channel(0).0,
            generation: watch::channel(0).0,
            follower: Mutex::new(None),
            lease: settings.lease_name.clone().map(lease::LeaseMode::new),
            settings,
        };
        if fresh || me.settings.replica_of.is_some() {
            me.save(&lock(&me.state));
        }
        if !confirmed {
            eprintln!(
                "velocity-core: restarted as the primary of epoch {}: serving nothing until {need} of its \
                 replicas reconnect, or PROMOTE",
                me.epoch()
            );
        }
        Ok(me)
    }

    /// Writes state.json (a failure is logged: the role change itself stands).
    fn save(&self, st: &NodeState) {
        let Some(dir) = &self.settings.data_dir else {
            return;
        };
        let saved = state_file::Saved {
            primary_role: st.primary_role,
            primary: st.primary.clone(),
            epoch: st.epoch,
            history: st.history.clone(),
            replicas: st.replicas.clone(),
        };
        if let Err(e) = state_file::save(dir, &saved) {
            eprintln!("velocity-core: cannot write {}: {e}", state_file::path(dir).display());
        }
    }

    fn need(&self) -> usize {
        confirmations_needed(&self.settings, lock(&self.state).replicas.len())
    }

    /// Monotonic time until which this primary may answer linearizable reads.
    fn reads_provable_until(&self) -> Option<Instant> {
        let need = self.need();
        if !self.read_proof || need == 0 {
            return None;
        }
        let mut contacts: Vec<Instant> = lock(&self.feeds).values().filter_map(|f| *lock(&f.contact)).collect();
        contacts.sort_unstable_by(|a, b| b.cmp(a));
        Some(contacts.get(need - 1).map_or_else(Instant::now, |c| *c + READ_LEASE))
    }

    /// A replica echoed a heartbeat: maybe the restarted primary is confirmed now.
    pub fn on_echo(&self) {
        if self.confirmed.load(Ordering::Acquire) || !self.is_primary() {
            return;
        }
        let need = self.need();
        let live = lock(&self.feeds)
            .values()
            .filter(|f| lock(&f.contact).is_some())
            .count();
        if live >= need {
            self.confirmed.store(true, Ordering::Release);
            eprintln!(
                "velocity-core: primary of epoch {} again: {need} replica(s) reconnected",
                self.epoch()
            );
        }
    }

    /// Called once the server listens: the endpoint, and the follower if configured.
    pub fn start(&self, shared: &Arc<crate::server::Shared>) {
        {
            let mut ep = lock(&self.endpoint);
            if ep.is_empty() {
                let s = &shared.settings;
                let host = if matches!(s.host.as_str(), "0.0.0.0" | "::" | "") {
                    "127.0.0.1"
                } else {
                    s.host.as_str()
                };
                *ep = format!("vdb://{host}:{}", shared.port);
            }
        }
        if shared.keyspace.store().needs_full_copy() {
            // An interrupted full copy (migrated from the Python engine): serve no
            // reads and ask the primary for a whole copy.
            self.incomplete.store(true, Ordering::Release);
        }
        let primary = lock(&self.state).primary.clone();
        if !self.is_primary() && !primary.is_empty() {
            self.start_follower(shared.clone(), primary);
        }
    }

    /// Stops the follower (server stop).
    pub fn shutdown(&self) {
        self.stop_follower();
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn endpoint(&self) -> String {
        lock(&self.endpoint).clone()
    }

    pub fn is_primary(&self) -> bool {
        self.primary.load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn primary_endpoint(&self) -> String {
        lock(&self.state).primary.clone()
    }

    pub fn history(&self) -> Vec<(u64, u64)> {
        lock(&self.state).history.clone()
    }

    // -- the request path ------------------------------------------------------------

    /// The role check before a data opcode (manager.py's `_check` and `_gate`).
    pub fn check(&self, opcode: u8, flags: u8) -> VResult<()> {
        if self.is_primary() {
            let read = is_read(opcode);
            if (read && flags & 0b11 == STALE_OK) || !(read || is_write(opcode)) {
                return Ok(());
            }
            if !self.confirmed.load(Ordering::Acquire) {
                return Err(VError::new(
                    ErrorCode::Redirect,
                    format!(
                        "this node restarted as the primary of epoch {} and has not re-established its role: \
                         waiting for {} of its replicas to reconnect (or PROMOTE)",
                        self.epoch(),
                        self.need()
                    ),
                )
                .retry_after(100));
            }
            if read {
                if let Some(l) = &self.lease {
                    return l.check_read();
                }
                if let Some(until) = self.reads_provable_until() {
                    if Instant::now() >= until {
                        return Err(VError::new(
                            ErrorCode::Redirect,
                            format!(
                                "this primary cannot prove it is still the primary (it has not heard from {} \
                                 replica(s) in time): retry, or read with STALE_OK",
                                self.need()
                            ),
                        )
                        .retry_after(50));
                    }
                }
                return Ok(());
            }
            if let Some(at) = *lock(&self.writes_not_before) {
                let now = Instant::now();
                if now < at {
                    let wait = at - now;
                    return Err(VError::new(
                        ErrorCode::Redirect,
                        format!(
                            "new primary: writes start in {:.3}s, when the previous primary's read lease has \
                             surely run out",
                            wait.as_secs_f64()
                        ),
                    )
                    .retry_after((wait.as_millis() as u32).max(1)));
                }
            }
            if let Some(l) = &self.lease {
                l.check_write()?;
            }
            // A DEL stores nothing: refusing it would not protect an acknowledged write.
            if self.settings.sync && !self.settings.sync_degrade && opcode != Opcode::DEL.0 {
                let live = self.live();
                let need = self.settings.sync_replicas;
                let since = lock(&self.promoted_at)
                    .max(*lock(&self.writes_not_before))
                    .map(|t| t.elapsed());
                if live < need && since.is_some_and(|s| s < PROMOTION_GRACE) {
                    return Err(VError::new(
                        ErrorCode::Redirect,
                        format!("new primary: waiting for {need} replica(s) to connect"),
                    )
                    .retry_after(20));
                }
                if live < need {
                    return Err(VError::new(
                        ErrorCode::NotEnoughReplicas,
                        format!(
                            "sync replication needs {need} replica(s) to acknowledge writes and {live} {} \
                             connected; nothing was written",
                            if live == 1 { "is" } else { "are" }
                        ),
                    ));
                }
            }
            return Ok(());
        }
        if is_read(opcode) {
            if flags & 0b11 == STALE_OK && !self.incomplete.load(Ordering::Acquire) {
                return Ok(());
            }
        } else if !is_write(opcode) {
            return Ok(());
        }
        let p = self.primary_endpoint();
        let where_ = if p.is_empty() {
            "no primary is known (this node was deposed)".to_string()
        } else {
            format!("the primary is {p}")
        };
        let retry = if p.is_empty() { 50 } else { 0 };
        let mut e = VError::new(ErrorCode::Redirect, format!("this node is a replica; {where_}")).retry_after(retry);
        e.primary = p;
        Err(e)
    }

    /// After a commit: wake the feeds; in sync mode the reply waits for the quorum.
    pub fn committed(&self, seq: u64, pending: &mut Pending) {
        if self.feed_count.load(Ordering::Acquire) > 0 {
            self.log_tx.send_replace(seq);
        }
        if !self.settings.sync || !self.is_primary() {
            return;
        }
        if self.settings.sync_degrade && self.live() < self.settings.sync_replicas {
            return;
        }
        let mut quorum = self.quorum_tx.subscribe();
        let mut gen = self.generation.subscribe();
        let gen_now = *gen.borrow_and_update();
        let timeout = self.settings.sync_timeout;
        // The durability wait stays in `pending` beside this one (keyspace::Pending).
        pending.need_ack(seq, Box::pin(async move {
            let acked = async {
                tokio::select! {
                    r = quorum.wait_for(|q| *q >= seq) => r.map(|_| ()).map_err(|_| "the node stopped".to_string()),
                    _ = gen.wait_for(|g| *g != gen_now) => Err("this node stepped down; the write's fate is unknown".into()),
                }
            };
            match tokio::time::timeout(timeout, acked).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(StoreError::NotAcknowledged(why)),
                Err(_) => Err(StoreError::NotAcknowledged(format!(
                    "the write was not acknowledged by enough replicas within {}s; its outcome is unknown",
                    timeout.as_secs_f64()
                ))),
            }
        }));
    }

    // -- feeds ----------------------------------------------------------------------

    fn live(&self) -> usize {
        lock(&self.feeds)
            .values()
            .filter(|f| f.streaming.load(Ordering::Acquire))
            .count()
    }

    /// `holds`: the position the replica already holds (its REPL_SYNC position on a partial
    /// resync; 0 before a full copy). It counts as acknowledged from the start, as
    /// feed.py's `acked_seq = start_seq - 1`: a replica that reconnects while no write
    /// comes is then not reported behind, and a switchover to it does not wait for a write.
    pub fn register_feed(&self, node_id: &str, endpoint: &str, holds: u64) -> (u64, Arc<FeedState>) {
        let id = self.next_feed.fetch_add(1, Ordering::Relaxed);
        let f = Arc::new(FeedState {
            node_id: node_id.to_string(),
            endpoint: endpoint.to_string(),
            acked: AtomicU64::new(holds),
            streaming: AtomicBool::new(false),
            connected: Instant::now(),
            contact: Mutex::new(None),
        });
        let mut st = lock(&self.state);
        if !endpoint.is_empty() && !st.replicas.iter().any(|r| r == endpoint) && endpoint != self.endpoint() {
            st.replicas.push(endpoint.to_string());
            self.save(&st);
        }
        drop(st);
        lock(&self.feeds).insert(id, f.clone());
        self.feed_count.fetch_add(1, Ordering::AcqRel);
        (id, f)
    }

    pub fn drop_feed(&self, id: u64) {
        if lock(&self.feeds).remove(&id).is_some() {
            self.feed_count.fetch_sub(1, Ordering::AcqRel);
        }
        self.update_quorum();
    }

    /// Recomputes the quorum position from the streaming replicas' acks.
    pub fn update_quorum(&self) {
        let need = self.settings.sync_replicas.max(1);
        let mut acked: Vec<u64> = lock(&self.feeds)
            .values()
            .filter(|f| f.streaming.load(Ordering::Acquire))
            .map(|f| f.acked.load(Ordering::Acquire))
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let q = acked.get(need - 1).copied().unwrap_or(0);
        self.quorum_tx.send_if_modified(|cur| {
            let up = q > *cur;
            if up {
                *cur = q;
            }
            up
        });
    }

    // -- REPL_SYNC (primary side) ------------------------------------------------------

    /// Decides how a replica resumes; the reply body and the feed plan.
    pub fn sync(&self, req: &stream::SyncRequest, shared: &crate::server::Shared) -> VResult<(Vec<u8>, feed::Plan)> {
        let st = lock(&self.state);
        if !st.primary_role {
            let mut e = VError::new(
                ErrorCode::Redirect,
                format!(
                    "not the primary; follow {}",
                    if st.primary.is_empty() {
                        "(unknown)"
                    } else {
                        &st.primary
                    }
                ),
            )
            .retry_after(200);
            e.primary = st.primary.clone();
            return Err(e);
        }
        if req.node_epoch > st.epoch {
            let epoch = st.epoch;
            drop(st);
            self.fence(
                req.node_epoch,
                &format!(
                    "replica {} ({}) has seen epoch {}",
                    req.node_id, req.endpoint, req.node_epoch
                ),
                false,
            );
            return Err(VError::new(
                ErrorCode::StaleEpoch,
                format!(
                    "this primary was in epoch {epoch}, older than {}: it stopped taking writes",
                    req.node_epoch
                ),
            ));
        }
        let version = stream::negotiate(req.stream_version, &format!("{} ({})", req.node_id, req.endpoint))?;
        let store = shared.keyspace.store();
        // Before the copy is taken: every batch numbered after it carries its bytes.
        store.retain_log();
        let (_, last) = store.log_position();
        let resumable =
            !req.full && holds(&st.history, (req.epoch, req.seq), last) && store.raw_batches_since(req.seq).is_ok();
        let (seq, copy) = if resumable {
            (req.seq, None)
        } else {
            let (pos, records) = store
                .full_copy()
                .map_err(|e| VError::new(ErrorCode::Internal, e.to_string()))?;
            (pos.1, Some(records))
        };
        let body = stream::sync_response(&stream::SyncResponse {
            full: !resumable,
            epoch: st.epoch,
            seq,
            history: st.history.clone(),
            node_id: shared.settings.node_id.clone(),
            stream_version: version,
        });
        eprintln!(
            "velocity-core: replica {} ({}) connected at ({}, {}): {}",
            req.node_id,
            req.endpoint,
            req.epoch,
            req.seq,
            if resumable {
                "resuming from the backlog".to_string()
            } else {
                format!("full copy at seq {seq}")
            }
        );
        Ok((
            body,
            feed::Plan {
                node_id: req.node_id.clone(),
                endpoint: req.endpoint.clone(),
                from_seq: seq,
                copy,
                generation: *self.generation.borrow(),
            },
        ))
    }

    // -- role changes ------------------------------------------------------------------

    /// PROMOTE: become the primary of a new epoch above `min_epoch`; (epoch, seq).
    pub fn promote(&self, min_epoch: u64, shared: &Arc<crate::server::Shared>) -> VResult<(u64, u64)> {
        let (_, seq) = shared.keyspace.store().log_position();
        {
            let st = lock(&self.state);
            if st.primary_role && self.confirmed.load(Ordering::Acquire) && min_epoch < st.epoch {
                return Ok((st.epoch, seq));
            }
        }
        if self.incomplete.load(Ordering::Acquire) {
            return Err(VError::invalid(
                "cannot promote: this replica's first full copy has not finished",
            ));
        }
        self.stop_follower();
        if self.read_proof {
            // Whoever read from the primary we followed may still do so until our promise ends.
            *lock(&self.writes_not_before) = lock(&self.primary_contact).map(|c| c + REPLICA_PROMISE);
        }
        let (_, seq) = shared.keyspace.store().log_position();
        let mut st = lock(&self.state);
        let old_primary = std::mem::take(&mut st.primary);
        let epoch = st.epoch.max(min_epoch) + 1;
        // An epoch that never wrote anything is superseded by the next one (position.py).
        while st.history.last().is_some_and(|(_, s)| *s > seq) {
            st.history.pop();
        }
        st.history.push((epoch, seq + 1));
        st.epoch = epoch;
        st.primary_role = true;
        st.fenced_by.clear();
        st.promotions += 1;
        st.replicas.clear();
        self.save(&st);
        self.confirmed.store(true, Ordering::Release);
        *lock(&self.promoted_at) = Some(Instant::now());
        self.epoch.store(epoch, Ordering::Release);
        self.primary.store(true, Ordering::Release);
        self.quorum_tx.send_replace(seq);
        drop(st);
        eprintln!("velocity-core: promoted to primary of epoch {epoch} at seq {seq}");
        // With a Lease, a deposed primary fences itself (its agent sees the new holder).
        if !old_primary.is_empty() && self.lease.is_none() {
            follower::spawn_fencer(shared.clone(), old_primary, epoch);
        }
        Ok((epoch, seq))
    }

    /// REPLICA_OF: follow `primary` (empty: fence, keep streaming); the epoch after.
    pub fn replica_of(&self, primary: &str, epoch: u64, shared: &Arc<crate::server::Shared>) -> VResult<u64> {
        let own = self.epoch();
        if epoch != 0 && epoch < own {
            return Err(VError::new(
                ErrorCode::StaleEpoch,
                format!("REPLICA_OF from epoch {epoch}, but this node has seen epoch {own}"),
            ));
        }
        if primary.is_empty() {
            if self.is_primary() {
                self.fence(own, "fenced for a switchover (REPLICA_OF without a primary)", true);
            }
            return Ok(self.epoch());
        }
        if primary == self.endpoint() {
            return Err(VError::invalid(format!(
                "{primary} is this node: use PROMOTE to make it the primary"
            )));
        }
        self.follow(primary, epoch.max(own), &format!("REPLICA_OF epoch {epoch}"), shared);
        Ok(self.epoch())
    }

    fn follow(&self, primary: &str, epoch: u64, reason: &str, shared: &Arc<crate::server::Shared>) {
        let mut st = lock(&self.state);
        let was_primary = st.primary_role;
        let same = !was_primary && st.primary == primary && lock(&self.follower).is_some();
        st.primary_role = false;
        st.primary = primary.to_string();
        st.epoch = st.epoch.max(epoch);
        self.epoch.store(st.epoch, Ordering::Release);
        self.primary.store(false, Ordering::Release);
        self.save(&st);
        drop(st);
        // Feeds close, sync-mode replies still waiting fail (never acknowledged).
        self.generation.send_modify(|g| *g += 1);
        if !same {
            self.stop_follower();
            self.start_follower(shared.clone(), primary.to_string());
        }
        eprintln!("velocity-core: now a replica of {primary} (epoch {epoch}): {reason}");
    }

    /// Stop taking writes now; wait to be told whom to follow.
    fn fence(&self, epoch: u64, reason: &str, keep_feeds: bool) {
        let mut st = lock(&self.state);
        st.primary_role = false;
        st.primary.clear();
        st.epoch = st.epoch.max(epoch);
        st.fenced_by = reason.to_string();
        self.epoch.store(st.epoch, Ordering::Release);
        self.primary.store(false, Ordering::Release);
        self.save(&st);
        drop(st);
        if !keep_feeds {
            self.generation.send_modify(|g| *g += 1);
        }
        eprintln!("velocity-core: fenced: {reason}; writes are refused until a primary is set (REPLICA_OF)");
    }

    /// The Lease agent's fence (manager.py's `fence_for_lease`): a primary stops
    /// taking writes and reads; `keep_feeds` keeps streaming to the replicas (a
    /// switchover's target catches up). A node already fenced that keeps no feeds
    /// closes the ones it kept (a switchover that ends, a shutdown).
    pub fn lease_fence(&self, reason: &str, keep_feeds: bool) {
        if self.is_primary() {
            self.fence(self.epoch(), reason, keep_feeds);
        } else if !keep_feeds {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// The connected replicas for the switchover: (id, endpoint, streaming, acked seq).
    pub fn links(&self) -> Vec<(u64, String, bool, u64)> {
        let mut v: Vec<_> = lock(&self.feeds)
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    f.endpoint.clone(),
                    f.streaming.load(Ordering::Acquire),
                    f.acked.load(Ordering::Acquire),
                )
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether a sync-mode write waits for replicas' acknowledgements (switchover.py's
    /// `settle_quorum`): the quorum position is behind the log.
    pub fn sync_pending(&self, seq: u64) -> bool {
        self.settings.sync
            && self.is_primary()
            && !(self.settings.sync_degrade && self.live() < self.settings.sync_replicas)
            && *self.quorum_tx.borrow() < seq
    }

    /// A node that learned of a newer epoch steps down (the fencer).
    pub fn step_down_for(&self, epoch: u64, reason: &str) {
        self.fence(epoch, reason, false);
    }

    /// The follower adopts its primary's epoch and history.
    pub fn adopt(&self, epoch: u64, history: Vec<(u64, u64)>) {
        let mut st = lock(&self.state);
        if st.epoch >= epoch && st.history == history {
            return;
        }
        st.epoch = st.epoch.max(epoch);
        st.history = history;
        self.epoch.store(st.epoch, Ordering::Release);
        self.save(&st);
    }

    /// The follower was redirected to another primary.
    pub fn redirected(&self, primary: &str) {
        let mut st = lock(&self.state);
        if !st.primary_role {
            st.primary = primary.to_string();
            self.save(&st);
        }
    }

    fn start_follower(&self, shared: Arc<crate::server::Shared>, primary: String) {
        // A different primary: not before the previous one's readers are safe.
        let not_before = if self.read_proof {
            lock(&self.primary_contact).map(|c| c + REPLICA_PROMISE)
        } else {
            None
        };
        let h = follower::spawn(shared, primary, not_before);
        *lock(&self.follower) = Some(h);
    }

    fn stop_follower(&self) {
        let h = lock(&self.follower).take();
        if let Some(h) = h {
            if let Some(c) = h.last_contact() {
                let mut pc = lock(&self.primary_contact);
                *pc = Some(pc.map_or(c, |p| p.max(c)));
            }
            h.stop();
        }
    }

    // -- introspection -----------------------------------------------------------------

    /// INFO's `replication` section (manager.py's `info`, minus the Lease fields).
    pub fn info(&self, shared: &crate::server::Shared) -> Value {
        let store = shared.keyspace.store();
        let (pe, seq) = store.log_position();
        let (bytes, first, last) = store.backlog_span();
        let st = lock(&self.state).clone();
        let feeds: Vec<Arc<FeedState>> = lock(&self.feeds).values().cloned().collect();
        let (lag_records, lag_seconds) = if st.primary_role {
            feeds
                .iter()
                .map(|f| {
                    let n = seq.saturating_sub(f.acked.load(Ordering::Acquire));
                    (
                        n,
                        if n > 0 {
                            f.connected.elapsed().as_secs_f64()
                        } else {
                            0.0
                        },
                    )
                })
                .fold((0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
        } else {
            lock(&self.follower).as_ref().map_or((0, 0.0), |h| h.lag(seq))
        };
        // A replica following a Python primary speaks version 1 (the upgrade path).
        let stream_version = match lock(&self.follower).as_ref().map(|h| h.stream_version()) {
            Some(v) if !st.primary_role && v != 0 => v,
            _ => stream::STREAM_VERSION,
        };
        let mut d = json!({
            "role": if st.primary_role { "primary" } else { "replica" },
            "epoch": st.epoch,
            "seq": seq,
            "position": {"epoch": pe, "seq": seq},
            "history": st.history.iter().map(|(e, s)| json!([e, s])).collect::<Vec<_>>(),
            "endpoint": self.endpoint(),
            "mode": if self.settings.sync { "sync" } else { "async" },
            "sync_replicas": if self.settings.sync { self.settings.sync_replicas } else { 0 },
            "sync_degrade": self.settings.sync_degrade,
            "backlog": {"bytes": bytes, "first_seq": first, "last_seq": last},
            "lag_records": lag_records,
            "lag_seconds": (lag_seconds * 1000.0).round() / 1000.0,
            "promotions": st.promotions,
            "lease": Value::Null,
            "fenced_by": st.fenced_by,
            "handover": "",
            "confirmed": self.confirmed.load(Ordering::Acquire),
            "switchover": Value::Null,
            "stream_version": stream_version,
        });
        if let Some(l) = &self.lease {
            let (lease, switchover) = l.info(st.primary_role);
            d["lease"] = lease;
            d["handover"] = json!(l.handover());
            d["switchover"] = switchover;
        }
        if st.primary_role {
            d["replicas_connected"] = json!(feeds.iter().filter(|f| f.streaming.load(Ordering::Acquire)).count());
            d["reads_provable_s"] = json!(self.reads_provable_until().map_or(-1.0, |t| {
                (t.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0).round() / 1000.0
            }));
            d["replicas"] = feeds
                .iter()
                .map(|f| {
                    let acked = f.acked.load(Ordering::Acquire);
                    json!({
                        "node_id": f.node_id,
                        "endpoint": f.endpoint,
                        "state": if f.streaming.load(Ordering::Acquire) { "streaming" } else { "full_copy" },
                        "acked_seq": acked,
                        "lag_records": seq.saturating_sub(acked),
                    })
                })
                .collect();
        } else {
            d["primary"] = json!(st.primary);
            d["incomplete"] = json!(self.incomplete.load(Ordering::Acquire));
            if let Some(h) = lock(&self.follower).as_ref() {
                d["link"] = h.info(seq);
            }
        }
        d
    }

    /// Handles the admin opcodes (PROMOTE, REPLICA_OF); the reply body.
    pub fn admin(&self, opcode: u8, body: &[u8], shared: &Arc<crate::server::Shared>) -> VResult<Vec<u8>> {
        match opcode {
            0x45 => {
                let min_epoch = stream::decode_promote(body)?;
                let (epoch, seq) = self.promote(min_epoch, shared)?;
                Ok(stream::promote_response(epoch, seq))
            }
            _ => {
                let (primary, epoch) = stream::decode_replica_of(body)?;
                let epoch = self.replica_of(&primary, epoch, shared)?;
                Ok(stream::replica_of_response(epoch))
            }
        }
    }

    /// A snapshot of the state for the Python shell (`Core.replication_state()`).
    pub fn state_summary(&self) -> (bool, String, u64, Vec<(u64, u64)>) {
        let st = lock(&self.state);
        (st.primary_role, st.primary.clone(), st.epoch, st.history.clone())
    }
}

impl crate::keyspace::CommitHook for Replication {
    fn epoch(&self) -> u64 {
        Replication::epoch(self)
    }

    fn writable(&self) -> bool {
        self.is_primary()
    }

    fn committed(&self, seq: u64, pending: &mut Pending) {
        Replication::committed(self, seq, pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_classes_match_the_python_engine() {
        let writes: Vec<u8> = (0..=255).filter(|&o| is_write(o)).collect();
        let reads: Vec<u8> = (0..=255).filter(|&o| is_read(o)).collect();
        assert_eq!(writes, vec![0x11, 0x12, 0x14, 0x15, 0x16, 0x18, 0x21]);
        assert_eq!(reads, vec![0x10, 0x13, 0x17, 0x20, 0x22]);
    }

    #[test]
    fn log_matching_follows_the_history() {
        let h = vec![(1, 1), (3, 10)];
        assert_eq!(epoch_of(&h, 0), 0);
        assert_eq!(epoch_of(&h, 9), 1);
        assert_eq!(epoch_of(&h, 10), 3);
        assert!(holds(&h, (1, 9), 12));
        assert!(holds(&h, (0, 0), 12));
        assert!(
            !holds(&h, (1, 10), 12),
            "batch 10 of epoch 1 diverged: the primary's is epoch 3"
        );
        assert!(!holds(&h, (3, 13), 12), "ahead of the primary");
        assert!(holds(&[], (0, 5), 5), "a primary that never promoted writes epoch 0");
    }
}
