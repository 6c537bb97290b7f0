//! TTLs: a [`Duration`] or a string like `"2h"`, `"30s"`, `"1500ms"`, `"1h30m"`.

use std::time::Duration;

use crate::{Error, Result};

/// A time to live, converted to milliseconds when the request is sent.
///
/// Strings follow the Python SDK: a sequence of `<number><unit>` with units
/// `ms`, `s`, `m`, `h`, `d` (`"1h30m"`, `"1.5s"`), or a plain number of
/// seconds (`"90"`). A TTL must be positive.
///
/// ```
/// use std::time::Duration;
/// use velocity_sdk::Ttl;
/// assert_eq!(Ttl::from("1h30m").to_millis().unwrap(), 5_400_000);
/// assert_eq!(Ttl::from("1500ms").to_millis().unwrap(), 1_500);
/// assert_eq!(Ttl::from(Duration::from_secs(2)).to_millis().unwrap(), 2_000);
/// assert!(Ttl::from("soon").to_millis().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// A duration.
    Duration(Duration),
    /// A TTL string.
    Text(String),
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Self::Duration(d)
    }
}
impl From<&str> for Ttl {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}
impl From<String> for Ttl {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl Ttl {
    /// Milliseconds (> 0), or [`Error::InvalidArgument`].
    ///
    /// ```
    /// use velocity_sdk::Ttl;
    /// assert_eq!(Ttl::from("1h30m").to_millis().unwrap(), 5_400_000);
    /// assert!(Ttl::from(std::time::Duration::ZERO).to_millis().is_err());
    /// ```
    pub fn to_millis(&self) -> Result<i64> {
        let ms = match self {
            Self::Duration(d) => (d.as_nanos() as f64 / 1e6).round_ties_even(),
            Self::Text(t) => parse(t).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "cannot read TTL {t:?}: use e.g. 30s, 1500ms, 2h, 1h30m or seconds"
                ))
            })?,
        };
        if !(ms >= 1.0 && ms < i64::MAX as f64) {
            return Err(Error::InvalidArgument(format!("TTL must be positive, got {self:?}")));
        }
        Ok(ms as i64)
    }
}

fn number(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (digits(int) && digits(frac)).then(|| s.parse().ok()).flatten()
}

fn parse(text: &str) -> Option<f64> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(secs) = number(&text) {
        return Some((secs * 1000.0).round_ties_even());
    }
    let mut rest = text.as_str();
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n = number(&rest[..n_end])?;
        rest = &rest[n_end..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else {
            match rest.as_bytes().first()? {
                b's' => (1000.0, 1),
                b'm' => (60_000.0, 1),
                b'h' => (3_600_000.0, 1),
                b'd' => (86_400_000.0, 1),
                _ => return None,
            }
        };
        total += n * unit_ms;
        rest = &rest[len..];
    }
    Some(total.round_ties_even())
}
