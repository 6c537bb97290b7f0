//! A V-Proto server that stores nothing: HELLO, GET and SET answered with
//! canned replies (a GET always finds a 64-byte value). It costs a fraction of
//! a microsecond per request, so a client driving it on its own CPU is the
//! limit: that measures the client's ceiling (the Rust SDK's against vbench's).
//!
//! Run as `bench-rust --null-server PORT` (the benchmark starts it pinned to CPU 0).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use velocity_proto::{fbs, flatbuffers, frame, Opcode};

fn get_reply(value_len: usize) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let value = fbb.create_vector(&vec![b'v'; value_len]);
    let root = fbs::GetResponse::create(
        &mut fbb,
        &fbs::GetResponseArgs {
            found: true,
            kind: fbs::ValueKind::Bytes,
            value: Some(value),
        },
    );
    fbb.finish_minimal(root);
    let mut out = Vec::new();
    frame::encode(Opcode::GET.response(), 0, fbb.finished_data(), &mut out);
    out
}

fn set_reply() -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let root = fbs::SetResponse::create(&mut fbb, &fbs::SetResponseArgs { applied: true });
    fbb.finish_minimal(root);
    let mut out = Vec::new();
    frame::encode(Opcode::SET.response(), 0, fbb.finished_data(), &mut out);
    out
}

fn hello_reply() -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let version = fbb.create_string("null");
    let root = fbs::HelloResponse::create(
        &mut fbb,
        &fbs::HelloResponseArgs {
            protocol_version: velocity_proto::PROTOCOL_VERSION,
            server_version: Some(version),
            ..Default::default()
        },
    );
    fbb.finish_minimal(root);
    let mut out = Vec::new();
    frame::encode(Opcode::HELLO.response(), 0, fbb.finished_data(), &mut out);
    out
}

struct Replies {
    hello: Vec<u8>,
    get: Vec<u8>,
    set: Vec<u8>,
}

async fn serve(mut s: TcpStream, replies: &Replies) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        while let Ok(Some((f, used))) = frame::decode(&buf[pos..], frame::DEFAULT_MAX_FRAME_BYTES) {
            pos += used;
            out.extend_from_slice(match f.opcode {
                Opcode::HELLO => &replies.hello,
                Opcode::SET => &replies.set,
                _ => &replies.get,
            });
        }
        buf.drain(..pos);
        if s.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// Serves on 127.0.0.1:`port` until killed (one thread).
pub fn run(port: u16, value_len: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let replies: &'static Replies = Box::leak(Box::new(Replies {
            hello: hello_reply(),
            get: get_reply(value_len),
            set: set_reply(),
        }));
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let Ok((s, _)) = listener.accept().await else { continue };
            tokio::spawn(serve(s, replies));
        }
    });
}
