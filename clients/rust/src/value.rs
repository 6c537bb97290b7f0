//! Typed values: how Rust values map to (kind, bytes) on the wire, exactly as
//! the Python SDK (`vproto/values.py`) maps Python values.
//!
//! | Rust                                  | kind   | bytes |
//! |---------------------------------------|--------|-------|
//! | `Vec<u8>`, `&[u8]`, `&[u8; N]`        | Bytes  | as is |
//! | `&str`, `String`                      | String | UTF-8 |
//! | `i64` (and smaller integers)          | Int    | 8 bytes, little-endian |
//! | `serde_json::Value`, `bool`, `f64`    | Json   | compact JSON, non-ASCII escaped like Python's `json.dumps` |

use std::borrow::Cow;
use std::io;

use velocity_proto::fbs::ValueKind;

use crate::{Error, Result};

/// A stored value with its type.
///
/// ```
/// use velocity_sdk::Value;
/// assert_eq!(Value::from("hi"), Value::String("hi".into()));
/// assert_eq!(Value::from(7).as_i64(), Some(7));
/// assert_eq!(Value::from(serde_json::json!({"a": 1})).as_json(), Some(&serde_json::json!({"a": 1})));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Opaque bytes (kind 0); also what unknown future kinds read back as.
    Bytes(Vec<u8>),
    /// UTF-8 text (kind 1).
    String(String),
    /// A signed 64-bit integer (kind 2).
    Int(i64),
    /// A JSON document (kind 3).
    Json(serde_json::Value),
}

impl Value {
    /// The wire kind of this value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(Value::from("a").kind(), Value::from(String::from("b")).kind());
    /// assert_ne!(Value::from("a").kind(), Value::from(&b"a"[..]).kind());
    /// ```
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Bytes(_) => ValueKind::Bytes,
            Self::String(_) => ValueKind::String,
            Self::Int(_) => ValueKind::Int,
            Self::Json(_) => ValueKind::Json,
        }
    }

    /// The bytes stored on the wire for this value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(&*Value::from(1).to_wire(), &[1, 0, 0, 0, 0, 0, 0, 0][..]);
    /// assert_eq!(&*Value::from(serde_json::json!({"é": [1, true]})).to_wire(), br#"{"\u00e9":[1,true]}"#);
    /// ```
    pub fn to_wire(&self) -> Cow<'_, [u8]> {
        match self {
            Self::Bytes(b) => Cow::Borrowed(b),
            Self::String(s) => Cow::Borrowed(s.as_bytes()),
            Self::Int(n) => Cow::Owned(n.to_le_bytes().to_vec()),
            Self::Json(j) => Cow::Owned(json_bytes(j)),
        }
    }

    /// Reads a value from its wire kind and bytes; unknown kinds come back as [`Value::Bytes`].
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(Value::from_wire(2, vec![255; 8]).unwrap(), Value::Int(-1));
    /// assert_eq!(Value::from_wire(9, vec![1]).unwrap(), Value::Bytes(vec![1]));
    /// assert!(Value::from_wire(2, vec![1]).is_err());
    /// ```
    pub fn from_wire(kind: u8, data: Vec<u8>) -> Result<Self> {
        match ValueKind(kind) {
            ValueKind::String => String::from_utf8(data).map(Self::String).map_err(|e| Error::BadValue {
                kind: "String",
                reason: e.to_string(),
            }),
            ValueKind::Int => <[u8; 8]>::try_from(data.as_slice())
                .map(|b| Self::Int(i64::from_le_bytes(b)))
                .map_err(|_| Error::BadValue {
                    kind: "Int",
                    reason: format!("{} bytes instead of 8", data.len()),
                }),
            ValueKind::Json => serde_json::from_slice(&data)
                .map(Self::Json)
                .map_err(|e| Error::BadValue {
                    kind: "Json",
                    reason: e.to_string(),
                }),
            _ => Ok(Self::Bytes(data)),
        }
    }

    /// The text of a String value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(Value::from("Ada").as_str(), Some("Ada"));
    /// assert_eq!(Value::from(1).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an Int value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(Value::Int(-5).as_i64(), Some(-5));
    /// assert_eq!(Value::from("5").as_i64(), None); // a String, not an Int
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes of a Bytes value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// assert_eq!(Value::from(vec![0u8, 1]).as_bytes(), Some(&[0u8, 1][..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The document of a Json value.
    ///
    /// ```
    /// use velocity_sdk::Value;
    /// let v = Value::from(serde_json::json!({"active": true}));
    /// assert_eq!(v.as_json().and_then(|j| j["active"].as_bool()), Some(true));
    /// ```
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Json(j) => Some(j),
            _ => None,
        }
    }
}

/// Compact JSON with non-ASCII escaped as `\uXXXX`: the bytes Python's
/// `json.dumps(v, separators=(",", ":"))` writes, so CAS on JSON values
/// compares equal across SDKs.
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    struct AsciiFormatter;
    impl serde_json::ser::Formatter for AsciiFormatter {
        fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                if c.is_ascii() {
                    continue;
                }
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
                start = i + c.len_utf8();
            }
            w.write_all(&fragment.as_bytes()[start..])
        }
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    // Serializing a serde_json::Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self { Self::Int(i64::from(n)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Self::String(s.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Self::Bytes(b.to_vec())
    }
}
impl<const N: usize> From<&[u8; N]> for Value {
    fn from(b: &[u8; N]) -> Self {
        Self::Bytes(b.to_vec())
    }
}
impl From<serde_json::Value> for Value {
    fn from(j: serde_json::Value) -> Self {
        Self::Json(j)
    }
}
/// `true`/`false` are JSON, as in the Python SDK (so they read back as booleans).
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Json(serde_json::Value::Bool(b))
    }
}
/// Floats are JSON numbers (non-finite floats become JSON `null`).
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Self::Json(serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
}
