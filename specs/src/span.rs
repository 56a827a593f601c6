//! Source positions that survive parsing, so every later error can point at the policy text.

use std::borrow::Cow;

use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// Where a value stands in the policy file: 1-based line and column, and the byte range when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub line: u32,
    pub column: u32,
    /// Byte offset into the file text.
    pub offset: usize,
    /// Length in bytes (at least 1 when rendered).
    pub len: usize,
}

impl Span {
    /// Builds a span from serde-saphyr's location. Byte offsets are present for string input,
    /// which is the only input we parse.
    fn from_location(loc: serde_saphyr::Location) -> Self {
        let span = loc.span();
        Span {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            offset: span.byte_offset().unwrap_or(0) as usize,
            len: span.byte_len().unwrap_or(1) as usize,
        }
    }

    /// A span for a line and column alone (errors that carry no byte range).
    pub fn at(text: &str, line: u32, column: u32) -> Self {
        let offset = offset_of(text, line, column);
        Span {
            line,
            column,
            offset,
            len: 1,
        }
    }
}

/// Byte offset of a 1-based line/column (columns counted in characters, as serde-saphyr does).
pub(crate) fn offset_of(text: &str, line: u32, column: u32) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let col = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map_or(l.trim_end_matches('\n').len(), |(b, _)| b);
            return offset + col;
        }
        offset += l.len();
    }
    text.len()
}

impl From<serde_saphyr::Location> for Span {
    fn from(loc: serde_saphyr::Location) -> Self {
        Span::from_location(loc)
    }
}

/// A parsed value with the place it was written. The JSON Schema of `Sp<T>` is the schema of `T`:
/// spans are an implementation detail editors never see.
#[derive(Debug, Clone)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Sp<T> {}
impl<T: PartialOrd> PartialOrd for Sp<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Sp<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Sp {
            value: spanned.value,
            span: spanned.referenced.into(),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}
