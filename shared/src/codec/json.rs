//! The JSON codec: strict in what it writes, lenient in what it reads.
//!
//! This module knows JSON and Gson, not packets: the packet and its payloads describe their
//! own members with its writer and lenient readers (`packet/wire.rs`, `packet/payload.rs`), so
//! the dependency runs one way, from `packet` to `codec`.
//!
//! Writing follows §1.2 byte for byte: the reference's key order, `null` members left out,
//! compact output, and Gson's HTML-safe escapes (`<>&='` as `\u003c`…). Reading follows §1.3:
//! any key order, unknown keys ignored, missing and `null` keys as the Java zero values, numbers
//! accepted for strings and numeric strings for integers, as Gson's lenient reader does.

use serde::de::DeserializeOwned;

/// Why a packet or payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body was empty or only white space.
    #[error("empty packet body")]
    Empty,
    /// The body was the JSON literal `null`, which the reference reads as "no packet".
    #[error("packet body is JSON null")]
    Null,
    /// The body was valid JSON but not an object.
    #[error("packet body is not a JSON object")]
    NotAnObject,
    /// The body was not valid UTF-8 JSON, or a field had a type that cannot be coerced.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Checks that `body` holds a JSON object before serde sees it: serde would also accept an
/// array for a struct, which Gson does not.
fn expect_object(body: &[u8]) -> Result<(), DecodeError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(DecodeError::Empty),
        Some(b'{') => Ok(()),
        Some(b'n') if serde_json::from_slice::<()>(body).is_ok() => Err(DecodeError::Null),
        Some(_) => Err(DecodeError::NotAnObject),
    }
}

/// Decodes one JSON object (a packet body or a payload document) into `T`, whose fields use
/// the `lenient` readers.
pub(crate) fn decode_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    expect_object(body)?;
    Ok(serde_json::from_slice(body)?)
}

/// Builds a JSON object as a `String` with `fill` adding its members.
pub(crate) fn object_string(fill: impl FnOnce(&mut JsonWriter<'_>)) -> String {
    let mut out = Vec::with_capacity(64);
    let mut w = JsonWriter::begin(&mut out);
    fill(&mut w);
    w.end();
    String::from_utf8(out).expect("the encoder writes only UTF-8")
}

/// Writes one compact JSON object in Gson's style; members are written in call order and
/// `None` strings are left out.
pub(crate) struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonWriter<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        let mut digits = [0u8; 20];
        let mut n = value.unsigned_abs();
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if value < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&digits[i..]);
    }

    pub(crate) fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.key(key);
            write_escaped(self.out, value);
        }
    }

    /// Closes the object.
    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

/// Bytes that may need an escape: controls, `"`, `\`, Gson's HTML-safe `<>&='`, and 0xE2 (the
/// lead byte of U+2028/U+2029). Everything else is copied as it is, a run at a time.
const MAY_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    let specials = *b"\"\\<>&='";
    let mut i = 0;
    while i < specials.len() {
        table[specials[i] as usize] = true;
        i += 1;
    }
    table[0xE2] = true;
    table
};

/// Writes `s` as a quoted JSON string with Gson's HTML-safe escaping (§1.2).
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !MAY_ESCAPE[usize::from(b)] {
            i += 1;
            continue;
        }
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\t' => Some(b"\\t"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            b'=' => Some(b"\\u003d"),
            b'\'' => Some(b"\\u0027"),
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                Some(if bytes[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                })
            }
            _ => None,
        };
        if let Some(escape) = escape {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(escape);
            i += if b == 0xE2 { 3 } else { 1 };
            start = i;
        } else if b < 0x20 {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
            i += 1;
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Field deserializers with Gson's lenient coercions (§1.3).
pub(crate) mod lenient {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserializer, Visitor};

    /// A string field: strings, numbers (as written) and booleans are accepted; `null` is
    /// absent; objects and arrays are errors.
    pub(crate) fn opt_string<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: From<String>,
    {
        struct V<T>(PhantomData<T>);
        impl<T: From<String>> Visitor<'_> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Some(T::from(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Some(T::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Some(T::from(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(T::from(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Some(T::from(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Some(T::from(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(PhantomData))
    }

    /// A boolean field: `true`/`false`, or a string read as Java's `parseBoolean` does
    /// (`"true"` in any case is true, anything else false); `null` is false; numbers are errors.
    pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
                Ok(v.eq_ignore_ascii_case("true"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
                Ok(false)
            }
        }
        d.deserialize_any(V)
    }

    /// A 64-bit integer field: integers, floats with no fraction, and strings holding either;
    /// `null` is 0.
    pub(crate) fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
                integral(v).ok_or_else(|| E::custom("not an integer"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                let v = v.trim();
                v.parse::<i64>()
                    .ok()
                    .or_else(|| v.parse::<f64>().ok().and_then(integral))
                    .ok_or_else(|| E::custom("not an integer"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
                Ok(0)
            }
        }
        d.deserialize_any(V)
    }

    /// An optional 64-bit integer field, with the coercions of [`i64()`]: missing or `null`
    /// is `None`.
    pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                i64(d).map(Some)
            }
        }
        d.deserialize_option(V)
    }

    /// A 32-bit integer field, with the coercions of [`i64()`] and a range check.
    pub(crate) fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        let v = i64(d)?;
        i32::try_from(v).map_err(|_| de::Error::custom("integer out of range"))
    }

    fn integral(v: f64) -> Option<i64> {
        // The bounds are exact powers of two, so the casts below cannot saturate.
        (v.fract() == 0.0 && v >= -(2f64.powi(63)) && v < 2f64.powi(63)).then_some(v as i64)
    }
}
