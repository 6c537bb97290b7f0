//! `vdb://host[:port]` endpoints.

use std::fmt;

use crate::{Error, Result};

/// A server address, parsed from `vdb://host[:port]` (port 2005 by default).
///
/// ```
/// use velocity_sdk::Endpoint;
/// let e = Endpoint::parse("vdb://internal-v1").unwrap();
/// assert_eq!((e.host(), e.port()), ("internal-v1", 2005));
/// assert_eq!(Endpoint::parse("vdb://[::1]:7000").unwrap().to_string(), "vdb://[::1]:7000");
/// assert!(Endpoint::parse("http://x").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses `vdb://host[:port]` (the scheme may be omitted).
    ///
    /// ```
    /// let e = velocity_sdk::Endpoint::parse("db.example:7000").unwrap();
    /// assert_eq!(e.to_string(), "vdb://db.example:7000");
    /// ```
    pub fn parse(url: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("endpoint {url:?} is not vdb://HOST[:PORT]"));
        let rest = url.strip_prefix("vdb://").unwrap_or(url);
        if rest.contains("://") || rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => velocity_proto::DEFAULT_PORT,
        };
        if host.is_empty() || host.contains(':') && !rest.starts_with('[') {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The host name or IP address.
    ///
    /// ```
    /// assert_eq!(velocity_sdk::Endpoint::parse("vdb://[::1]").unwrap().host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    ///
    /// ```
    /// assert_eq!(velocity_sdk::Endpoint::parse("vdb://internal-v1").unwrap().port(), 2005);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "vdb://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "vdb://{}:{}", self.host, self.port)
        }
    }
}
