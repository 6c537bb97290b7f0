//! Credentials, roles and the wrong-token throttle (protocol.md section 4.1,
//! docs/security.md; the native counterpart of auth.py and auth_throttle.py).
//!
//! A token is compared in constant time with every configured token, and all
//! of them are compared whatever matched first, so timing tells nothing about
//! which role a guess came close to.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use velocity_proto::Opcode;

/// The role a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Readonly,
    Replication,
    Admin,
}

impl Role {
    /// The name used in messages and settings.
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Readonly => "readonly",
            Role::Replication => "replication",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Role::Client, Role::Readonly, Role::Replication, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// A 256-entry table: `true` where the opcode may run.
pub type Permissions = [bool; 256];

const ANY: &[Opcode] = &[Opcode::HELLO, Opcode::PING, Opcode::INFO];
/// The data reads (also what a replica redirects unless STALE_OK: manager.py's READ_OPS).
pub(crate) const READS: &[Opcode] = &[Opcode::GET, Opcode::EXISTS, Opcode::TTL, Opcode::MGET, Opcode::SCAN];
/// The data writes (also manager.py's WRITE_OPS, what a replica redirects).
pub(crate) const WRITES: &[Opcode] = &[
    Opcode::SET,
    Opcode::DEL,
    Opcode::INCR,
    Opcode::EXPIRE,
    Opcode::PERSIST,
    Opcode::CAS,
    Opcode::MSET,
];
const REPL: &[Opcode] = &[
    Opcode::REPL_SYNC,
    Opcode::REPL_SNAPSHOT,
    Opcode::REPL_BATCHES,
    Opcode::REPL_HEARTBEAT,
    Opcode::REPL_ACK,
];
const ADMIN: &[Opcode] = &[
    Opcode::PROMOTE,
    Opcode::REPLICA_OF,
    Opcode::SNAPSHOT_BEGIN,
    Opcode::SNAPSHOT_READ,
];

const fn table(groups: &[&[Opcode]]) -> Permissions {
    let mut t = [false; 256];
    let mut g = 0;
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            t[groups[g][i].0 as usize] = true;
            i += 1;
        }
        g += 1;
    }
    t
}

/// What each role may run.
pub fn permissions(role: Role) -> &'static Permissions {
    static CLIENT: Permissions = table(&[ANY, READS, WRITES]);
    static READONLY: Permissions = table(&[ANY, READS]);
    static REPLICATION: Permissions = table(&[ANY, REPL]);
    static ADMIN_ALL: Permissions = table(&[ANY, READS, WRITES, REPL, ADMIN]);
    match role {
        Role::Client => &CLIENT,
        Role::Readonly => &READONLY,
        Role::Replication => &REPLICATION,
        Role::Admin => &ADMIN_ALL,
    }
}

/// Before HELLO (auth on): only HELLO passes the role check.
pub static UNAUTHENTICATED: Permissions = table(&[&[Opcode::HELLO]]);
/// `--insecure`: every opcode.
pub static EVERYTHING: Permissions = [true; 256];

/// The configured tokens (None: `--insecure`, no auth).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    tokens: Vec<(Role, Box<[u8]>)>,
}

impl Credentials {
    pub fn new(tokens: impl IntoIterator<Item = (Role, String)>) -> Self {
        Self {
            tokens: tokens
                .into_iter()
                .map(|(r, t)| (r, t.into_bytes().into_boxed_slice()))
                .collect(),
        }
    }

    /// The role whose token `given` is, compared in constant time against every token.
    pub fn role_of(&self, given: &str) -> Option<Role> {
        let given = given.as_bytes();
        let mut found = None;
        for (role, token) in &self.tokens {
            // ct_eq compares lengths first (like hmac.compare_digest), then every byte.
            let hit: bool = token.as_ref().ct_eq(given).into();
            if hit && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }
}

/// How long a wrong token waits for its answer (auth_throttle.py's numbers).
pub const BASE: Duration = Duration::from_millis(100);
pub const CAP: Duration = Duration::from_secs(2);
const FORGET: Duration = Duration::from_secs(60);
const GLOBAL_PER_S: u32 = 50;
const MAX_PEERS: usize = 4096;

#[derive(Default)]
struct ThrottleState {
    peers: HashMap<IpAddr, (u32, Instant)>,
    second: Option<Instant>,
    in_second: u32,
}

/// Per peer address the delay doubles with each failure (0.1 s, 0.2 s, ... up to
/// 2 s) and is forgotten after 60 s without one; while more than 50 failures a
/// second arrive from all peers together, every failure waits 2 s.
#[derive(Default)]
pub struct AuthThrottle {
    state: Mutex<ThrottleState>,
}

impl AuthThrottle {
    /// Records a failed HELLO from `peer`; returns the delay before answering it.
    pub fn failure(&self, peer: IpAddr, now: Instant) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let count = match st.peers.get(&peer) {
            Some(&(n, last)) if now.saturating_duration_since(last) <= FORGET => n + 1,
            _ => 1,
        };
        st.peers.insert(peer, (count, now));
        if st.peers.len() > MAX_PEERS {
            // Forget the address whose last failure is the oldest.
            if let Some(oldest) = st.peers.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k) {
                st.peers.remove(&oldest);
            }
        }
        let same_second = st
            .second
            .is_some_and(|s| now.saturating_duration_since(s) < Duration::from_secs(1));
        if !same_second {
            st.second = Some(now);
            st.in_second = 0;
        }
        st.in_second += 1;
        if st.in_second > GLOBAL_PER_S {
            return CAP;
        }
        let exp = count.saturating_sub(1).min(8);
        (BASE * 2u32.pow(exp)).min(CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tables() {
        let c = Credentials::new([
            (Role::Client, "client-token-0123456789".to_string()),
            (Role::Admin, "admin-token-0123456789".to_string()),
        ]);
        assert_eq!(c.role_of("client-token-0123456789"), Some(Role::Client));
        assert_eq!(c.role_of("admin-token-0123456789"), Some(Role::Admin));
        assert_eq!(c.role_of("client-token-012345678"), None);
        assert_eq!(c.role_of(""), None);
        assert!(permissions(Role::Client)[Opcode::SET.0 as usize]);
        assert!(!permissions(Role::Client)[Opcode::PROMOTE.0 as usize]);
        assert!(!permissions(Role::Readonly)[Opcode::INCR.0 as usize]);
        assert!(permissions(Role::Readonly)[Opcode::SCAN.0 as usize]);
        assert!(!permissions(Role::Replication)[Opcode::GET.0 as usize]);
        assert!(permissions(Role::Admin)[Opcode::SNAPSHOT_READ.0 as usize]);
        assert!(UNAUTHENTICATED[1] && !UNAUTHENTICATED[2]);
    }

    #[test]
    fn delays_double_per_peer_and_cap() {
        let t = AuthThrottle::default();
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let ms: Vec<u128> = (0..7)
            .map(|i| t.failure(peer, t0 + Duration::from_secs(2 * i)).as_millis())
            .collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            t.failure(peer, t0 + Duration::from_secs(200)).as_millis(),
            100,
            "forgotten"
        );
    }

    #[test]
    fn a_flood_from_everywhere_waits_the_cap() {
        let t = AuthThrottle::default();
        let t0 = Instant::now();
        let mut last = Duration::ZERO;
        for i in 0..60u32 {
            let peer = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            last = t.failure(peer, t0);
        }
        assert_eq!(last, CAP);
    }
}
