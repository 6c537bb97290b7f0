//! The connection rules of docs/formats/protocol.md against `Conn` over an
//! in-memory stream (no sockets, no TLS): probation before HELLO, roles, the
//! wrong-token delay, limits, timeouts, fatal errors after the replies owed,
//! backpressure, zstd, and the drain at shutdown.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::LocalSet;
use velocity_core::auth::Role;
use velocity_core::conn::{Conn, Worker};
use velocity_core::memory::MemoryStore;
use velocity_core::server::Shared;
use velocity_core::Settings;
use velocity_proto::{body, fbs, frame, ErrorCode, Opcode};

const TOKEN: &str = "client-token-0123456789abcdef";
const READONLY: &str = "readonly-token-0123456789abcdef";

fn settings(insecure: bool) -> Settings {
    Settings {
        insecure,
        tokens: if insecure {
            Vec::new()
        } else {
            vec![(Role::Client, TOKEN.into()), (Role::Readonly, READONLY.into())]
        },
        frame_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(400),
        ..Settings::default()
    }
}

struct Server {
    shared: Arc<Shared>,
    drain: watch::Sender<bool>,
    drain_rx: watch::Receiver<bool>,
}

impl Server {
    fn new(s: Settings) -> Self {
        let shared = Arc::new(Shared::new(s, Box::new(MemoryStore::new()), 0, 1).expect("shared"));
        let (drain, drain_rx) = watch::channel(false);
        Self {
            shared,
            drain,
            drain_rx,
        }
    }

    /// A new connection served on this (local) task set; `buffer` bytes fit in each direction.
    fn connect(&self, buffer: usize) -> Client {
        let w = Rc::new(Worker {
            shared: self.shared.clone(),
            stats: self.shared.workers[0].clone(),
            drain: self.drain_rx.clone(),
        });
        let (client, server) = tokio::io::duplex(buffer);
        let peer = "127.0.0.1:9".parse().expect("addr");
        tokio::task::spawn_local(Conn::new(w, server, peer).run());
        Client {
            io: client,
            buf: Vec::new(),
        }
    }
}

struct Client {
    io: DuplexStream,
    buf: Vec<u8>,
}

type Reply = (u8, u8, Vec<u8>);

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("send");
    }

    async fn request(&mut self, op: Opcode, body: &[u8]) {
        let mut f = Vec::new();
        frame::encode(op, 0, body, &mut f);
        self.send(&f).await;
    }

    /// The next frame, or None at EOF.
    async fn read(&mut self) -> Option<Reply> {
        loop {
            if let Some((f, used)) = frame::decode(&self.buf, 1 << 30).expect("a valid frame") {
                let r = (f.opcode.0, f.flags, f.body.to_vec());
                self.buf.drain(..used);
                return Some(r);
            }
            let mut chunk = vec![0u8; 1 << 16];
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut chunk))
                .await
                .expect("no reply within 5 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn reply(&mut self) -> Reply {
        self.read().await.expect("a reply, not EOF")
    }

    async fn error(&mut self) -> (ErrorCode, String) {
        let (op, _, b) = self.reply().await;
        assert_eq!(op, 0xFF, "expected an ERROR frame");
        let e = body::decode::<fbs::ErrorResponse>(&b).expect("ErrorResponse");
        (
            ErrorCode::from_u16(e.code()),
            e.message().unwrap_or_default().to_string(),
        )
    }

    async fn closed(&mut self) -> bool {
        self.read().await.is_none()
    }

    async fn hello(&mut self, token: &str, features: u32) -> Reply {
        self.request(Opcode::HELLO, &body::hello_request(token, "test", features))
            .await;
        self.reply().await
    }
}

fn set(key: &[u8], value: &[u8]) -> Vec<u8> {
    body::set_request(key, value, fbs::ValueKind::String, 0, fbs::SetCondition::Always)
}

fn local<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    LocalSet::new().block_on(&rt, f);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    local(async {
        let srv = Server::new(settings(true));
        let mut c = srv.connect(1 << 20);
        let mut batch = Vec::new();
        for i in 0..100u32 {
            frame::encode(
                Opcode::SET,
                0,
                &set(format!("k{i}").as_bytes(), &i.to_le_bytes()),
                &mut batch,
            );
            frame::encode(Opcode::INCR, 0, &body::incr_request(b"n", 2), &mut batch);
        }
        for i in 0..100u32 {
            frame::encode(
                Opcode::GET,
                0,
                &body::key_request(format!("k{i}").as_bytes()),
                &mut batch,
            );
        }
        c.send(&batch).await;
        for i in 0..100i64 {
            assert_eq!(c.reply().await.0, 0x91);
            let (op, _, b) = c.reply().await;
            assert_eq!(op, 0x94);
            assert_eq!(body::decode::<fbs::IncrResponse>(&b).unwrap().value(), 2 * (i + 1));
        }
        for i in 0..100u32 {
            let (op, _, b) = c.reply().await;
            assert_eq!(op, 0x90);
            let g = body::decode::<fbs::GetResponse>(&b).unwrap();
            assert_eq!(g.value().unwrap().bytes(), i.to_le_bytes());
        }
    });
}

#[test]
fn nothing_but_hello_before_hello() {
    local(async {
        let srv = Server::new(settings(false));
        let mut c = srv.connect(1 << 20);
        c.request(Opcode::GET, &body::key_request(b"k")).await;
        assert_eq!(c.error().await.0, ErrorCode::NoAuth);
        assert!(c.closed().await);
        // An unknown opcode is answered and probation goes on.
        let mut c = srv.connect(1 << 20);
        c.request(Opcode(0x7E), &[]).await;
        assert_eq!(c.error().await.0, ErrorCode::UnknownOpcode);
        assert_eq!(c.hello(TOKEN, 0).await.0, 0x81);
        // A frame larger than a HELLO is refused from its header alone.
        let mut c = srv.connect(1 << 20);
        let mut head = Vec::from(frame::MAGIC);
        head.extend_from_slice(&[0x01, 0]);
        head.extend_from_slice(&5000u64.to_le_bytes());
        c.send(&head).await;
        let (code, msg) = c.error().await;
        assert_eq!(code, ErrorCode::Protocol);
        assert!(msg.contains("5000 bytes before HELLO"), "{msg}");
        assert!(c.closed().await);
        assert_eq!(srv.shared.counters.unauthenticated(), 0);
    });
}

#[test]
fn roles_and_a_second_hello() {
    local(async {
        let srv = Server::new(settings(false));
        let mut c = srv.connect(1 << 20);
        let (op, _, b) = c.hello(READONLY, 0).await;
        assert_eq!(op, 0x81);
        let h = body::decode::<fbs::HelloResponse>(&b).unwrap();
        assert_eq!((h.protocol_version(), h.role()), (1, fbs::Role::Primary));
        c.request(Opcode::SET, &set(b"k", b"v")).await;
        let (code, msg) = c.error().await;
        assert_eq!(code, ErrorCode::PermissionDenied);
        assert!(msg.contains("readonly token may not run SET"), "{msg}");
        c.request(Opcode::GET, &body::key_request(b"k")).await;
        assert_eq!(c.reply().await.0, 0x90, "not fatal, reads still work");
        assert_eq!(c.hello(TOKEN, 0).await.0, 0x81);
        c.request(Opcode::SET, &set(b"k", b"v")).await;
        assert_eq!(c.reply().await.0, 0x91, "the second HELLO's role applies");
        c.request(Opcode::PROMOTE, &[]).await;
        assert_eq!(c.error().await.0, ErrorCode::PermissionDenied);
        assert_eq!(srv.shared.counters.connections(), 1, "one slot, however many HELLOs");
    });
}

#[test]
fn a_wrong_token_is_answered_late_and_closes() {
    local(async {
        let srv = Server::new(settings(false));
        let t0 = Instant::now();
        for want_ms in [100u128, 200] {
            let mut c = srv.connect(1 << 20);
            let start = Instant::now();
            c.request(Opcode::HELLO, &body::hello_request("wrong-token-0123456789", "t", 0))
                .await;
            assert_eq!(c.error().await.0, ErrorCode::AuthFailed);
            assert!(start.elapsed().as_millis() >= want_ms);
            assert!(c.closed().await);
        }
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(srv.shared.counters.auth_failures(), 2);
        let mut c = srv.connect(1 << 20);
        let start = Instant::now();
        assert_eq!(c.hello(TOKEN, 0).await.0, 0x81);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "a right token is never delayed"
        );
    });
}

#[test]
fn limits_on_waiting_and_authenticated_connections_answer_busy() {
    local(async {
        let srv = Server::new(Settings {
            max_unauthenticated: 1,
            max_connections: 1,
            ..settings(false)
        });
        let mut a = srv.connect(1 << 20); // waits for HELLO: the one probation place
        let mut b = srv.connect(1 << 20);
        let (code, msg) = b.error().await;
        assert_eq!(code, ErrorCode::Busy);
        assert!(msg.contains("waiting to authenticate"), "{msg}");
        assert!(b.closed().await);
        assert_eq!(a.hello(TOKEN, 0).await.0, 0x81, "takes the one client slot");
        let mut d = srv.connect(1 << 20);
        d.request(Opcode::HELLO, &body::hello_request(TOKEN, "t", 0)).await;
        let (code, msg) = d.error().await;
        assert_eq!(code, ErrorCode::Busy, "BUSY instead of the HELLO reply");
        assert!(msg.contains("connection limit of 1"), "{msg}");
        assert!(d.closed().await);
        assert_eq!(srv.shared.counters.rejected_total(), 2);
    });
}

#[test]
fn replies_owed_before_a_bad_frame_go_out_first() {
    local(async {
        let srv = Server::new(settings(true));
        for bad in ["crc", "magic", "flags"] {
            let mut c = srv.connect(1 << 20);
            let mut batch = Vec::new();
            for i in 0..3u8 {
                frame::encode(Opcode::PING, 0, &body::ping_request(&[i]), &mut batch);
            }
            let mut broken = Vec::new();
            frame::encode(Opcode::PING, 0, &body::ping_request(b"x"), &mut broken);
            match bad {
                "crc" => *broken.last_mut().unwrap() ^= 0xFF,
                "magic" => broken[..4].copy_from_slice(b"NOPE"),
                _ => {
                    broken.clear();
                    frame::encode(Opcode::PING, 0x10, &[], &mut broken);
                }
            }
            batch.extend_from_slice(&broken);
            frame::encode(Opcode::PING, 0, &[], &mut batch); // after the bad one: never answered
            c.send(&batch).await;
            for i in 0..3u8 {
                let (op, _, b) = c.reply().await;
                assert_eq!(op, 0x82);
                let p = body::decode::<fbs::PingResponse>(&b).unwrap();
                assert_eq!(p.payload().unwrap().bytes(), [i]);
            }
            let want = if bad == "crc" {
                ErrorCode::BadCrc
            } else {
                ErrorCode::Protocol
            };
            assert_eq!(c.error().await.0, want, "{bad}");
            assert!(c.closed().await, "{bad}");
        }
    });
}

#[test]
fn an_oversize_frame_is_refused_from_its_header() {
    local(async {
        let srv = Server::new(Settings {
            max_frame_bytes: 64 * 1024,
            ..settings(true)
        });
        let mut c = srv.connect(1 << 20);
        let mut head = Vec::from(frame::MAGIC);
        head.extend_from_slice(&[0x11, 0]);
        head.extend_from_slice(&u64::MAX.to_le_bytes());
        c.send(&head).await;
        let (code, msg) = c.error().await;
        assert_eq!(code, ErrorCode::FrameTooLarge);
        assert!(msg.contains("65536"), "{msg}");
        assert!(c.closed().await);
    });
}

#[test]
fn malformed_bodies_and_bad_arguments_are_not_fatal() {
    local(async {
        let srv = Server::new(Settings {
            max_key_bytes: 8,
            max_value_bytes: 16,
            ..settings(true)
        });
        let mut c = srv.connect(1 << 20);
        let cases: Vec<(Opcode, Vec<u8>, ErrorCode)> = vec![
            (Opcode::GET, vec![1], ErrorCode::Protocol),
            (
                Opcode::SET,
                b"\xff\xff\xff\x7f\0\0\0\0\0\0\0\0".to_vec(),
                ErrorCode::Protocol,
            ),
            (Opcode::GET, body::key_request(b""), ErrorCode::InvalidArgument),
            (Opcode::GET, body::key_request(b"123456789"), ErrorCode::KeyTooLarge),
            (Opcode::SET, set(b"k", &[0; 17]), ErrorCode::ValueTooLarge),
            (
                Opcode::SET,
                body::set_request(b"k", b"1234", fbs::ValueKind::Int, 0, fbs::SetCondition::Always),
                ErrorCode::InvalidArgument,
            ),
            (
                Opcode::SET,
                body::set_request(b"k", b"v", fbs::ValueKind::String, -1, fbs::SetCondition::Always),
                ErrorCode::InvalidArgument,
            ),
            (
                Opcode::SCAN,
                body::scan_request(b"", b"", 10_001),
                ErrorCode::InvalidArgument,
            ),
            (Opcode::MSET, body::mset_request(&[]), ErrorCode::InvalidArgument),
            (Opcode(0x7E), Vec::new(), ErrorCode::UnknownOpcode),
            (Opcode::SNAPSHOT_READ, vec![1], ErrorCode::Protocol),
        ];
        for (op, b, want) in &cases {
            c.request(*op, b).await;
            assert_eq!(c.error().await.0, *want, "{op:?}");
        }
        c.request(Opcode::PING, &[]).await;
        let (op, _, b) = c.reply().await;
        assert_eq!(op, 0x82);
        assert_eq!(b.len(), 12, "an empty PING is answered with the encoded empty table");
        let errors: u64 = srv.shared.totals().errors.iter().sum();
        assert_eq!(errors, cases.len() as u64);
    });
}

#[test]
fn a_half_frame_times_out_and_so_does_a_missing_hello() {
    local(async {
        let srv = Server::new(settings(false));
        let mut c = srv.connect(1 << 20);
        let start = Instant::now();
        let (code, msg) = c.error().await;
        assert_eq!(
            (code, msg.as_str()),
            (ErrorCode::Timeout, "no HELLO within the handshake timeout")
        );
        assert!(start.elapsed() >= Duration::from_millis(400));
        assert!(c.closed().await);
        let mut c = srv.connect(1 << 20);
        assert_eq!(c.hello(TOKEN, 0).await.0, 0x81);
        let mut f = Vec::new();
        frame::encode(Opcode::SET, 0, &set(b"half", b"v"), &mut f);
        let start = Instant::now();
        c.send(&f[..f.len() / 2]).await;
        let (code, msg) = c.error().await;
        assert_eq!((code, msg.as_str()), (ErrorCode::Timeout, "incomplete frame for 0.3s"));
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(c.closed().await);
    });
}

#[test]
fn a_trickling_but_progressing_client_is_not_cut_off() {
    local(async {
        let srv = Server::new(settings(true));
        let mut c = srv.connect(1 << 20);
        for i in 0..6u8 {
            let mut f = Vec::new();
            frame::encode(Opcode::PING, 0, &body::ping_request(&[i]), &mut f);
            c.send(&f[..7]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.send(&f[7..]).await;
            assert_eq!(c.reply().await.0, 0x82);
        }
    });
}

#[test]
fn a_client_that_does_not_read_stops_its_pipeline() {
    local(async {
        let srv = Server::new(Settings {
            write_buffer_high_bytes: 128 * 1024,
            ..settings(true)
        });
        let mut c = srv.connect(64 * 1024);
        let big = vec![7u8; 100 * 1024];
        c.request(Opcode::SET, &set(b"big", &big)).await;
        assert_eq!(c.reply().await.0, 0x91);
        let mut batch = Vec::new();
        for _ in 0..50 {
            frame::encode(Opcode::GET, 0, &body::key_request(b"big"), &mut batch);
        }
        c.send(&batch).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let served = srv.shared.totals().requests[0x10];
        assert!(served <= 3, "{served} GETs run while nobody read their replies");
        for _ in 0..50 {
            let (op, _, b) = c.reply().await;
            assert_eq!(op, 0x90);
            let g = body::decode::<fbs::GetResponse>(&b).unwrap();
            assert_eq!(g.value().unwrap().len(), big.len());
        }
    });
}

#[test]
fn zstd_in_and_out() {
    local(async {
        let srv = Server::new(settings(true));
        let mut c = srv.connect(1 << 22);
        let (_, _, b) = c.hello("", velocity_proto::FEATURE_ZSTD).await;
        assert_eq!(body::decode::<fbs::HelloResponse>(&b).unwrap().features(), 1);
        let value = vec![b'z'; 200_000];
        let packed = zstd::bulk::compress(&set(b"z", &value), 1).unwrap();
        let mut f = Vec::new();
        frame::encode(Opcode::SET, frame::FLAG_ZSTD, &packed, &mut f);
        c.send(&f).await;
        assert_eq!(c.reply().await.0, 0x91);
        c.request(Opcode::GET, &body::key_request(b"z")).await;
        let (op, flags, b) = c.reply().await;
        assert_eq!((op, flags), (0x90, frame::FLAG_ZSTD));
        let plain = zstd::bulk::decompress(&b, 1 << 20).unwrap();
        let g = body::decode::<fbs::GetResponse>(&plain).unwrap();
        assert_eq!(g.value().unwrap().bytes(), &value[..]);
        c.request(Opcode::GET, &body::key_request(b"missing")).await;
        assert_eq!(c.reply().await.1, 0, "small replies stay plain");
        // A body that would decompress beyond the frame limit: refused, fatal.
        let bomb = zstd::bulk::compress(&vec![0u8; 17 << 20], 1).unwrap();
        let mut f = Vec::new();
        frame::encode(Opcode::SET, frame::FLAG_ZSTD, &bomb, &mut f);
        c.send(&f).await;
        assert_eq!(c.error().await.0, ErrorCode::FrameTooLarge);
        assert!(c.closed().await);
    });
}

#[test]
fn a_drain_closes_authenticated_connections_after_their_replies() {
    local(async {
        let srv = Server::new(settings(false));
        let mut a = srv.connect(1 << 20);
        assert_eq!(a.hello(TOKEN, 0).await.0, 0x81);
        let mut waiting = srv.connect(1 << 20);
        a.request(Opcode::PING, &[]).await;
        assert_eq!(a.reply().await.0, 0x82);
        srv.drain.send(true).unwrap();
        assert!(a.closed().await, "closed without an ERROR frame");
        assert!(waiting.closed().await, "a connection on probation is dropped");
        let mut late = srv.connect(1 << 20);
        assert_eq!(late.error().await.0, ErrorCode::ShuttingDown);
    });
}
