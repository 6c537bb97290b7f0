//! One request in, one reply frame out: the checks every request passes, in the
//! order dispatch.py applies them, then the opcode's handler.
//!
//! Order: flags (reserved bits are a fatal `PROTOCOL`), unknown opcode
//! (`UNKNOWN_OPCODE`, not fatal), the session's role (`NOAUTH` before HELLO,
//! fatal; `PERMISSION_DENIED` after), then decompression (never before a
//! successful HELLO, never beyond the frame limit), then the handler. A handler
//! checks its arguments (empty or oversize key, oversize value, Int length)
//! before the keyspace runs the command.
//!
//! A [`Dispatcher`] belongs to one connection (one worker thread); what it shares
//! with other connections lives in [`Shared`].

use std::sync::Arc;

use velocity_proto::frame::{self, check_flags, HEADER_LEN};
use velocity_proto::{ErrorCode, Opcode, FEATURE_ZSTD, PROTOCOL_VERSION};

use crate::auth::{permissions, Permissions, Role, EVERYTHING, UNAUTHENTICATED};
use crate::codec;
use crate::error::{VError, VResult};
use crate::keyspace::{CasOutcome, MsetEntry, Pending, KIND_INT};
use crate::server::Shared;
use crate::settings::Settings;

/// Replies above this many bytes are compressed for a session that accepts zstd.
pub const COMPRESSION_THRESHOLD: usize = 1024;
/// Bytes an MGET reply entry adds beyond its key and value.
pub const MGET_ENTRY_OVERHEAD: usize = 64;
/// Flags value of a zstd-compressed body.
const FLAG_ZSTD: u8 = 1 << 2;

/// Opcodes with a handler (the Python dispatcher's table, replication included).
const HANDLED: [bool; 256] = {
    let mut t = [false; 256];
    let ops: [u8; 22] = [
        0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x20, 0x21, 0x22, 0x30, 0x31, 0x40,
        0x43, 0x44, 0x45, 0x46,
    ];
    let mut i = 0;
    while i < ops.len() {
        t[ops[i] as usize] = true;
        i += 1;
    }
    t
};

/// The protocol's name of an opcode (`GET`), or `opcode 0x7e`.
pub fn opcode_name(op: u8) -> std::borrow::Cow<'static, str> {
    let name = match op {
        0x01 => "HELLO",
        0x02 => "PING",
        0x03 => "INFO",
        0x10 => "GET",
        0x11 => "SET",
        0x12 => "DEL",
        0x13 => "EXISTS",
        0x14 => "INCR",
        0x15 => "EXPIRE",
        0x16 => "PERSIST",
        0x17 => "TTL",
        0x18 => "CAS",
        0x20 => "MGET",
        0x21 => "MSET",
        0x22 => "SCAN",
        0x30 => "SNAPSHOT_BEGIN",
        0x31 => "SNAPSHOT_READ",
        0x40 => "REPL_SYNC",
        0x41 => "REPL_SNAPSHOT",
        0x42 => "REPL_BATCHES",
        0x43 => "REPL_HEARTBEAT",
        0x44 => "REPL_ACK",
        0x45 => "PROMOTE",
        0x46 => "REPLICA_OF",
        0xFF => "ERROR",
        other => return format!("opcode 0x{other:02x}").into(),
    };
    name.into()
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Session {
    pub authed: bool,
    pub zstd: bool,
    pub role: Option<Role>,
    pub allowed: &'static Permissions,
    pub client_name: String,
}

impl Session {
    /// A new connection's session: with `--insecure` it may run everything at once.
    pub fn new(insecure: bool) -> Self {
        Self {
            authed: insecure,
            zstd: false,
            role: None,
            allowed: if insecure { &EVERYTHING } else { &UNAUTHENTICATED },
            client_name: String::new(),
        }
    }
}

/// Appends one frame's header placeholder; [`end_frame`] fills it in
/// (`velocity_proto::frame::begin`).
#[inline]
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    frame::begin(out)
}

/// Completes the frame begun at `start`: header, then the CRC of header and body
/// (`velocity_proto::frame::end`).
#[inline]
pub fn end_frame(out: &mut Vec<u8>, start: usize, opcode: u8, flags: u8) {
    frame::end(out, start, Opcode(opcode), flags);
}

/// Appends an ERROR frame for `e` (the message cut to 1024 characters).
pub fn push_error(out: &mut Vec<u8>, e: &VError) {
    let start = begin_frame(out);
    let message: std::borrow::Cow<'_, str> = match e.message.char_indices().nth(1024) {
        Some((at, _)) => e.message[..at].into(),
        None => e.message.as_str().into(),
    };
    codec::error_response(e.code.as_u16(), &message, &e.primary, e.retry_after_ms, out);
    end_frame(out, start, Opcode::ERROR.0, 0);
}

/// The request handler of one connection.
pub struct Dispatcher {
    pub session: Session,
    shared: Arc<Shared>,
    /// Durability the replies written since the last flush depend on.
    pub pending: Pending,
    /// Set by REPL_SYNC: the connection becomes a replication feed after its reply.
    pub feed: Option<crate::replication::feed::Plan>,
    /// Lease mode: an admin request handed to the shell; the connection answers
    /// nothing else until its reply (replication/lease.rs).
    pub parked: Option<crate::replication::lease::Parked>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    scratch: Vec<u8>,
}

impl Dispatcher {
    pub fn new(shared: Arc<Shared>) -> Self {
        let insecure = shared.settings.insecure;
        Self {
            session: Session::new(insecure),
            shared,
            pending: Pending::default(),
            feed: None,
            parked: None,
            compressor: None,
            decompressor: None,
            scratch: Vec::new(),
        }
    }

    /// Handles one request and appends its reply frame to `out`. On an error
    /// nothing is appended: the caller answers with the error (and closes the
    /// connection when it is fatal).
    pub fn handle(&mut self, opcode: u8, flags: u8, body: &[u8], out: &mut Vec<u8>) -> VResult<()> {
        if flags != 0 {
            check_flags(flags).map_err(|e| VError::frame(flags_message(flags, &e)))?;
        }
        if !HANDLED[opcode as usize] {
            return Err(VError::new(
                ErrorCode::UnknownOpcode,
                format!("unknown opcode 0x{opcode:02x}"),
            ));
        }
        if !self.session.allowed[opcode as usize] {
            return Err(self.refuse(opcode));
        }
        // The role check: REDIRECT on a replica, NOT_ENOUGH_REPLICAS in sync mode.
        self.shared.repl.check(opcode, flags)?;
        let start = begin_frame(out);
        let result = if flags & FLAG_ZSTD != 0 {
            // Only after the role check, and never before login: a small
            // compressed frame must not turn into megabytes for a stranger.
            if !self.session.authed {
                out.truncate(start);
                return Err(VError::new(
                    ErrorCode::NoAuth,
                    "compressed frames are accepted only after a successful HELLO",
                ));
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let r = self
                .decompress(body, &mut scratch)
                .and_then(|()| self.run(opcode, &scratch, out));
            scratch.clear();
            if scratch.capacity() > 1 << 20 {
                scratch.shrink_to(64 * 1024);
            }
            self.scratch = scratch;
            r
        } else {
            self.run(opcode, body, out)
        };
        if let Err(e) = result {
            out.truncate(start);
            return Err(e);
        }
        if self.parked.is_some() {
            // The reply comes from the shell (conn.rs frames it when it arrives).
            out.truncate(start);
            return Ok(());
        }
        let mut reply_flags = 0;
        if self.session.zstd && out.len() - start - HEADER_LEN > COMPRESSION_THRESHOLD {
            reply_flags = self.compress_tail(out, start + HEADER_LEN);
        }
        end_frame(out, start, opcode | Opcode::RESPONSE_BIT, reply_flags);
        Ok(())
    }

    fn refuse(&self, opcode: u8) -> VError {
        let name = opcode_name(opcode);
        if !self.session.authed {
            return VError::new(
                ErrorCode::NoAuth,
                format!("send HELLO with a valid token before {name}"),
            );
        }
        let role = self.session.role.map_or("this", Role::name);
        VError::new(
            ErrorCode::PermissionDenied,
            format!("the {role} token may not run {name} (see docs/security.md: roles)"),
        )
    }

    fn decompress(&mut self, body: &[u8], into: &mut Vec<u8>) -> VResult<()> {
        let limit = self.shared.settings.max_frame_bytes;
        let size =
            zstd::zstd_safe::get_frame_content_size(body).map_err(|e| VError::body(format!("bad zstd body: {e}")))?;
        match size {
            Some(n) if n <= limit => {
                let d = match &mut self.decompressor {
                    Some(d) => d,
                    None => self.decompressor.insert(
                        zstd::bulk::Decompressor::new().map_err(|e| VError::new(ErrorCode::Internal, e.to_string()))?,
                    ),
                };
                into.reserve(n as usize);
                d.decompress_to_buffer(body, into)
                    .map_err(|e| VError::body(format!("bad zstd body: {e}")))?;
                Ok(())
            }
            other => Err(VError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "compressed body declares {} bytes; limit {limit} (sizes must be declared)",
                    other.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string())
                ),
            )),
        }
    }

    /// Compresses `out[from..]` in place; returns the reply flags (0 if it did not pay).
    fn compress_tail(&mut self, out: &mut Vec<u8>, from: usize) -> u8 {
        let c = match &mut self.compressor {
            Some(c) => c,
            None => match zstd::bulk::Compressor::new(1) {
                Ok(c) => self.compressor.insert(c),
                Err(_) => return 0,
            },
        };
        let mut packed = std::mem::take(&mut self.scratch);
        packed.clear();
        packed.reserve(zstd::zstd_safe::compress_bound(out.len() - from));
        let flags = match c.compress_to_buffer(&out[from..], &mut packed) {
            Ok(_) => {
                out.truncate(from);
                out.extend_from_slice(&packed);
                FLAG_ZSTD
            }
            Err(_) => 0,
        };
        packed.clear();
        self.scratch = packed;
        flags
    }

    // -- handlers ------------------------------------------------------------------

    fn run(&mut self, opcode: u8, body: &[u8], out: &mut Vec<u8>) -> VResult<()> {
        let shared = &*self.shared;
        let ks = &shared.keyspace;
        let s = &shared.settings;
        let pending = &mut self.pending;
        match Opcode(opcode) {
            Opcode::GET => {
                let key = codec::key_request(body)?;
                check_key(s, key)?;
                match ks.lookup(key, pending)? {
                    Some(rec) => codec::get_found(rec.kind, &rec.value, out),
                    None => codec::get_not_found(out),
                }
            }
            Opcode::SET => {
                let r = codec::set_request(body)?;
                check_key(s, r.key)?;
                check_value(s, r.value, r.kind)?;
                let applied = ks.set(r.key, r.kind, r.value, r.ttl_ms, r.condition, pending)?;
                codec::set_response(applied, out);
            }
            Opcode::INCR => {
                let (key, delta) = codec::incr_request(body)?;
                check_key(s, key)?;
                codec::incr_response(ks.incr(key, delta, pending)?, out);
            }
            Opcode::DEL => {
                let key = codec::key_request(body)?;
                check_key(s, key)?;
                codec::bool_response(ks.delete(key, pending)?, out);
            }
            Opcode::EXISTS => {
                let key = codec::key_request(body)?;
                check_key(s, key)?;
                codec::bool_response(ks.exists(key, pending)?, out);
            }
            Opcode::EXPIRE => {
                let (key, ttl_ms) = codec::expire_request(body)?;
                check_key(s, key)?;
                codec::bool_response(ks.expire(key, ttl_ms, pending)?, out);
            }
            Opcode::PERSIST => {
                let key = codec::key_request(body)?;
                check_key(s, key)?;
                codec::bool_response(ks.persist(key, pending)?, out);
            }
            Opcode::TTL => {
                let key = codec::key_request(body)?;
                check_key(s, key)?;
                codec::ttl_response(ks.ttl(key, pending)?, out);
            }
            Opcode::CAS => {
                let r = codec::cas_request(body)?;
                check_key(s, r.key)?;
                check_value(s, r.value, r.kind)?;
                let outcome = ks.cas(
                    r.key,
                    r.expected,
                    r.expected_kind,
                    r.expect_absent,
                    r.value,
                    r.kind,
                    r.ttl_ms,
                    pending,
                )?;
                match outcome {
                    CasOutcome::Applied => codec::cas_response(true, None, out),
                    CasOutcome::NotApplied(cur) => {
                        codec::cas_response(false, cur.as_ref().map(|r| (r.kind, r.value.as_ref())), out)
                    }
                }
            }
            Opcode::MGET => self.mget(body, out)?,
            Opcode::MSET => {
                let entries = codec::mset_request(body)?;
                if entries.is_empty() {
                    return Err(VError::invalid("MSET needs at least one entry"));
                }
                let mut checked = Vec::with_capacity(entries.len());
                for e in &entries {
                    check_key(s, e.key)?;
                    check_value(s, e.value, e.kind)?;
                    checked.push(MsetEntry {
                        key: e.key,
                        kind: e.kind,
                        value: e.value,
                        ttl_ms: e.ttl_ms,
                    });
                }
                ks.mset(&checked, pending)?;
                codec::bool_response(true, out);
            }
            Opcode::SCAN => {
                let r = codec::scan_request(body)?;
                let half = (s.max_frame_bytes / 2) as usize;
                let (keys, next) = ks.scan(r.prefix, r.cursor, r.count, half, pending)?;
                codec::scan_response(&keys, &next, out);
            }
            Opcode::SNAPSHOT_BEGIN => {
                codec::snapshot_begin_request(body)?;
                let (id, created_ms) = crate::snapshot::serve(shared)?.begin(ks.store())?;
                codec::snapshot_begin_response(&id, created_ms, out);
            }
            Opcode::SNAPSHOT_READ => {
                let r = codec::snapshot_read_request(body)?;
                let reply = crate::snapshot::serve(shared)?.read(r.snapshot_id, r.offset, r.max_bytes)?;
                codec::snapshot_read_response(reply.ready, reply.size, &reply.data, out);
            }
            Opcode::HELLO => self.hello(body, out)?,
            Opcode::PING => codec::ping_response(codec::ping_request(body)?, out),
            Opcode::INFO => {
                let section = codec::info_request(body)?;
                let json = crate::info::render(shared, section)?;
                codec::info_response(&json, out);
            }
            Opcode::REPL_SYNC => {
                let req = crate::replication::stream::decode_sync_request(body)?;
                let (reply, plan) = shared.repl.sync(&req, shared)?;
                out.extend_from_slice(&reply);
                self.feed = Some(plan);
            }
            Opcode::REPL_ACK | Opcode::REPL_HEARTBEAT => {
                return Err(VError::invalid(format!(
                    "{} belongs on a replication stream (after REPL_SYNC)",
                    opcode_name(opcode)
                )))
            }
            Opcode::PROMOTE | Opcode::REPLICA_OF if shared.repl.lease.is_some() => {
                // Under a Lease these change meaning (manager.py): the shell decides.
                // Checked here first, so that a malformed body never reaches Python.
                if opcode == Opcode::PROMOTE.0 {
                    crate::replication::stream::decode_promote(body)?;
                } else {
                    crate::replication::stream::decode_replica_of(body)?;
                }
                let lease = shared.repl.lease.as_ref().expect("lease mode");
                self.parked = Some((opcode, lease.admin.submit(opcode, body.to_vec())));
            }
            Opcode::PROMOTE | Opcode::REPLICA_OF => {
                let reply = shared.repl.admin(opcode, body, &self.shared)?;
                out.extend_from_slice(&reply);
            }
            other => {
                return Err(VError::new(
                    ErrorCode::UnknownOpcode,
                    format!(
                        "{} is not served by the native data plane yet (issue 13); \
                         run the engine with --data-plane python",
                        opcode_name(other.0)
                    ),
                ))
            }
        }
        Ok(())
    }

    fn mget(&mut self, body: &[u8], out: &mut Vec<u8>) -> VResult<()> {
        let keys = codec::mget_request(body)?;
        for k in &keys {
            check_key(&self.shared.settings, k)?;
        }
        let recs = self.shared.keyspace.mget(&keys, &mut self.pending)?;
        let size: usize = keys.iter().map(|k| k.len() + MGET_ENTRY_OVERHEAD).sum::<usize>()
            + recs.iter().flatten().map(|r| r.value.len()).sum::<usize>();
        let max = self.shared.settings.max_frame_bytes;
        if size as u64 > max {
            // Refused before encoding: a reply is never larger than a frame.
            return Err(VError::invalid(format!(
                "MGET of {} keys would reply with about {size} bytes, over the frame limit of \
                 {max}: ask for fewer keys per request",
                keys.len()
            )));
        }
        let entries: Vec<codec::MgetEntry<'_>> = keys
            .iter()
            .zip(&recs)
            .map(|(k, r)| (*k, r.as_ref().map(|r| (r.kind, r.value.as_ref()))))
            .collect();
        codec::mget_response(&entries, out);
        Ok(())
    }

    fn hello(&mut self, body: &[u8], out: &mut Vec<u8>) -> VResult<()> {
        let req = codec::hello_request(body)?;
        if req.protocol_version != PROTOCOL_VERSION {
            return Err(VError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "client speaks protocol {}; this server speaks {PROTOCOL_VERSION}",
                    req.protocol_version
                ),
            ));
        }
        if let Some(creds) = &self.shared.credentials {
            let Some(role) = creds.role_of(req.token) else {
                self.shared.counters.auth_failure();
                return Err(VError::new(ErrorCode::AuthFailed, "invalid token"));
            };
            self.session.role = Some(role);
            self.session.allowed = permissions(role);
        }
        self.session.authed = true;
        self.session.zstd = req.features & FEATURE_ZSTD != 0;
        self.session.client_name = req.client_name.chars().take(128).collect();
        let s = &self.shared.settings;
        codec::hello_response(
            &codec::HelloReply {
                server_version: &s.version,
                node_id: &s.node_id,
                // The role this node has now (protocol conformance: a replica says 1).
                role: u8::from(!self.shared.repl.is_primary()),
                max_frame_bytes: s.max_frame_bytes,
                max_key_bytes: s.max_key_bytes,
                max_value_bytes: s.max_value_bytes,
                features: if self.session.zstd { FEATURE_ZSTD } else { 0 },
            },
            out,
        );
        Ok(())
    }
}

/// An empty or oversize key (dispatch.py's `_key`).
fn check_key(s: &Settings, key: &[u8]) -> VResult<()> {
    if key.is_empty() {
        return Err(VError::invalid("key must not be empty"));
    }
    let max = s.max_key_bytes as usize;
    if key.len() > max {
        return Err(VError::new(
            ErrorCode::KeyTooLarge,
            format!("key of {} bytes exceeds the limit of {max}", key.len()),
        ));
    }
    Ok(())
}

/// An oversize value, or an Int that is not 8 bytes (dispatch.py's `_value`).
fn check_value(s: &Settings, value: &[u8], kind: u8) -> VResult<()> {
    let max = s.max_value_bytes as usize;
    if value.len() > max {
        return Err(VError::new(
            ErrorCode::ValueTooLarge,
            format!("value of {} bytes exceeds the limit of {max}", value.len()),
        ));
    }
    if kind == KIND_INT && value.len() != 8 {
        // An Int is exactly 8 bytes (protocol.md, "Values"): storing anything
        // else would make a later INCR or GET fail far from the cause.
        return Err(VError::invalid(format!(
            "an Int value must be 8 bytes, got {}",
            value.len()
        )));
    }
    Ok(())
}

fn flags_message(flags: u8, _e: &velocity_proto::FrameError) -> String {
    let consistency = flags & 0b11;
    let compression = (flags >> 2) & 0b11;
    if flags & 0xF0 != 0 {
        format!("reserved flag bits set: 0x{flags:02x}")
    } else if consistency > 1 {
        format!("unknown consistency level {consistency}")
    } else {
        format!("unknown compression {compression}")
    }
}
