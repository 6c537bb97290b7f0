//! TLS 1.3 client configuration (rustls with the `ring` provider).
//!
//! Trust: the CA given to the builder, else `VDB_CA`, else the operating
//! system's trust store (`rustls-native-certs`, the same store Python's
//! `ssl.create_default_context` uses, so a CA installed for the Python SDK works).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{Error, Result};

#[derive(Clone, Debug)]
pub(crate) enum Ca {
    File(PathBuf),
    Pem(Vec<u8>),
}

impl Ca {
    /// `VDB_CA` holds a path, or PEM text itself.
    pub(crate) fn from_env(v: OsString) -> Ca {
        match v.into_string() {
            Ok(s) if s.trim_start().starts_with("-----BEGIN") => Ca::Pem(s.into_bytes()),
            Ok(s) => Ca::File(s.into()),
            Err(os) => Ca::File(os.into()),
        }
    }
}

pub(crate) fn connector(ca: Option<&Ca>) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            let pem = match ca {
                Ca::File(p) => {
                    std::fs::read(p).map_err(|e| Error::InvalidArgument(format!("CA file {}: {e}", p.display())))?
                }
                Ca::Pem(b) => b.clone(),
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| Error::InvalidArgument(format!("CA PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::InvalidArgument("CA PEM holds no certificate".into()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| Error::InvalidArgument(format!("CA certificate: {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    // ring, not aws-lc-rs: it builds from crates.io sources without cmake or NASM.
    // rustls 0.23.48 deprecates it only for lacking post-quantum key exchange
    // (X25519 and the NIST curves remain, which the engine's TLS 1.3 offers).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::InvalidArgument(format!("TLS config: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
