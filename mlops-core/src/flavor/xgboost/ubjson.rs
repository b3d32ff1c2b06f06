//! A serde reader of UBJSON (Universal Binary JSON), the binary form of XGBoost's JSON
//! model (`model.ubj`, MLflow's `model.xgb`), so one set of model structs reads both.
//!
//! XGBoost writes big-endian scalars, object keys as a length and bytes, and its large
//! arrays as typed, counted containers (`[$d#L<count>` then bare float32s), which this
//! reads without a marker per element. Counts are checked against the bytes left and
//! nesting is bounded, so a corrupt file is an error, never a huge allocation or a stack
//! overflow.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Containers nested deeper than this are refused.
const MAX_DEPTH: usize = 64;

/// Why a UBJSON document could not be read, with the byte offset.
#[derive(Debug)]
pub(crate) struct UbjsonError(String);

impl std::fmt::Display for UbjsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UbjsonError {}

impl de::Error for UbjsonError {
    fn custom<M: std::fmt::Display>(message: M) -> Self {
        Self(message.to_string())
    }
}

type Result<T> = std::result::Result<T, UbjsonError>;

/// Reads a `T` from a UBJSON document that holds exactly one value.
pub(crate) fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    let mut reader = Reader { bytes, at: 0, depth: 0 };
    let value = T::deserialize(&mut reader)?;
    reader.skip_noops();
    if reader.at != bytes.len() {
        return Err(reader.error("bytes after the document"));
    }
    Ok(value)
}

struct Reader<'de> {
    bytes: &'de [u8],
    at: usize,
    depth: usize,
}

impl<'de> Reader<'de> {
    fn error(&self, why: &str) -> UbjsonError {
        UbjsonError(format!("UBJSON at byte {}: {why}", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else { return Err(self.error("the document ends early")) };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_noops(&mut self) {
        while self.peek() == Some(b'N') {
            self.at += 1;
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// An integer after its marker, for lengths and counts.
    fn integer(&mut self, marker: u8) -> Result<i64> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => return Err(self.error(&format!("expected an integer marker, found `{}`", char::from(other)))),
        })
    }

    /// A length or count: a non-negative integer that fits in what is left of the
    /// document (each element takes at least one byte).
    fn length(&mut self) -> Result<usize> {
        let marker = self.byte()?;
        let value = self.integer(marker)?;
        let left = self.bytes.len() - self.at;
        usize::try_from(value)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| self.error(&format!("a length of {value} does not fit in the {left} bytes left")))
    }

    fn string(&mut self) -> Result<&'de str> {
        let len = self.length()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.error("a string is not UTF-8"))
    }

    /// A container's optional `$type` and `#count`.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>)> {
        let mut element = None;
        if self.peek() == Some(b'$') {
            self.at += 1;
            element = Some(self.byte()?);
            if self.peek() != Some(b'#') {
                return Err(self.error("a typed container needs a count"));
            }
        }
        let count = if self.peek() == Some(b'#') {
            self.at += 1;
            Some(self.length()?)
        } else {
            None
        };
        Ok((element, count))
    }

    fn value<V: Visitor<'de>>(&mut self, marker: u8, visitor: V) -> Result<V::Value> {
        match marker {
            b'Z' => visitor.visit_unit(),
            b'T' => visitor.visit_bool(true),
            b'F' => visitor.visit_bool(false),
            b'i' | b'I' | b'l' | b'L' => visitor.visit_i64(self.integer(marker)?),
            b'U' => visitor.visit_u8(self.byte()?),
            b'd' => visitor.visit_f32(f32::from_be_bytes(self.array()?)),
            b'D' => visitor.visit_f64(f64::from_be_bytes(self.array()?)),
            b'C' => visitor.visit_char(char::from(self.byte()?)),
            b'S' | b'H' => visitor.visit_borrowed_str(self.string()?),
            b'[' | b'{' => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.error("containers are nested too deeply"));
                }
                self.depth += 1;
                let (element, count) = self.container_header()?;
                let value = if marker == b'[' {
                    visitor.visit_seq(Elements { reader: &mut *self, element, count })
                } else {
                    visitor.visit_map(Elements { reader: &mut *self, element, count })
                };
                self.depth -= 1;
                value
            }
            other => Err(self.error(&format!("unknown marker `{}`", char::from(other)))),
        }
    }

    fn marker(&mut self) -> Result<u8> {
        self.skip_noops();
        self.byte()
    }
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = UbjsonError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let marker = self.marker()?;
        self.value(marker, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip_noops();
        if self.peek() == Some(b'Z') {
            self.at += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The elements of an array or the entries of an object: counted (`count`), possibly all
/// of one `element` type without markers, or running to the closing marker.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    element: Option<u8>,
    count: Option<usize>,
}

impl<'de> Elements<'_, 'de> {
    /// Whether another element follows, consuming the closing marker when not.
    fn more(&mut self, close: u8) -> Result<bool> {
        match &mut self.count {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => {
                self.reader.skip_noops();
                if self.reader.peek() == Some(close) {
                    self.reader.at += 1;
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }

    fn element<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value> {
        match self.element {
            Some(marker) => seed.deserialize(Typed { reader: &mut *self.reader, marker }),
            None => seed.deserialize(&mut *self.reader),
        }
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = UbjsonError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.more(b']')? {
            return Ok(None);
        }
        self.element(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.count
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = UbjsonError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.more(b'}')? {
            return Ok(None);
        }
        let key = self.reader.string()?;
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.element(seed)
    }
}

/// One element of a typed container: its marker is the container's.
struct Typed<'a, 'de> {
    reader: &'a mut Reader<'de>,
    marker: u8,
}

impl<'de> Deserializer<'de> for Typed<'_, 'de> {
    type Error = UbjsonError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.reader.value(self.marker, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.marker == b'Z' { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Doc {
        name: String,
        values: Vec<f32>,
        ids: Vec<i32>,
        flags: Vec<u8>,
        nested: BTreeMap<String, Option<i64>>,
    }

    fn key(out: &mut Vec<u8>, key: &str) {
        out.push(b'L');
        out.extend((key.len() as i64).to_be_bytes());
        out.extend(key.as_bytes());
    }

    fn document() -> Vec<u8> {
        let mut out = vec![b'{'];
        key(&mut out, "name");
        out.extend(b"SU\x05trees");
        key(&mut out, "values");
        out.extend(b"[$d#U\x02");
        out.extend(1.5f32.to_be_bytes());
        out.extend((-0.25f32).to_be_bytes());
        key(&mut out, "ids");
        out.extend(b"[#U\x02l");
        out.extend(7i32.to_be_bytes());
        out.extend(b"i\xff");
        key(&mut out, "flags");
        out.extend(b"[U\x01NU\x00]");
        key(&mut out, "nested");
        out.extend(b"{#U\x02");
        key(&mut out, "a");
        out.extend(b"Z");
        key(&mut out, "b");
        out.extend(b"I\x01\x00");
        out.push(b'}');
        out
    }

    #[test]
    fn typed_counted_and_open_containers_read_as_json_would() {
        let doc: Doc = from_slice(&document()).unwrap();
        assert_eq!(
            doc,
            Doc {
                name: "trees".into(),
                values: vec![1.5, -0.25],
                ids: vec![7, -1],
                flags: vec![1, 0],
                nested: BTreeMap::from([("a".into(), None), ("b".into(), Some(256))]),
            }
        );
    }

    #[test]
    fn truncated_and_lying_documents_are_errors() {
        let bytes = document();
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(from_slice::<Doc>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A count far beyond the document.
        let huge = b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff";
        let err = from_slice::<Vec<f32>>(huge).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let deep = vec![b'['; 10_000];
        assert!(from_slice::<serde::de::IgnoredAny>(&deep).unwrap_err().to_string().contains("nested too deeply"));
    }
}
