//! The product page's snippet, then set / get / incr.
//!
//! ```sh
//! VDB_TOKEN=$(cat .velocity/data/auth-token) VDB_CA=.velocity/data/tls/ca.crt \
//! VDB_ENDPOINT=vdb://127.0.0.1:2005 cargo run --example quickstart
//! ```
//!
//! `VDB_ENDPOINT` only exists so that this example runs against a local
//! engine; the product page connects to `vdb://internal-v1`. Token and CA come
//! from `VDB_TOKEN` and `VDB_CA`, which `build()` reads by itself.
use velocity_sdk::{Client, SetOptions};

#[tokio::main]
async fn main() -> Result<(), velocity_sdk::Error> {
    let endpoint = std::env::var("VDB_ENDPOINT").unwrap_or_else(|_| "vdb://internal-v1".into());

    // The product page's snippet, kept as printed there.
    #[rustfmt::skip]
    let client = Client::builder()
      .endpoint(endpoint)
      .pool_size(16)
      .build().await?;

    client
        .set_with(
            "session:0xF1",
            serde_json::json!({"active": true}),
            SetOptions::new().ttl("2h"),
        )
        .await?;
    let session = client.get("session:0xF1").await?;
    println!("session:0xF1 = {session:?}");

    let hits = client.incr("counters:req_total", 1).await?;
    println!("counters:req_total = {hits}");
    Ok(())
}
