//! Protobuf wire-format primitives: varints, tags and field skipping.
//!
//! Everything here works on borrowed slices and reports malformed input as a
//! [`WireError`] with the byte offset where it went wrong; nothing panics.

use thiserror::Error;

/// Wire type of a length-delimited field (strings, bytes, messages, packed).
pub(crate) const LEN: u8 = 2;
pub(crate) const VARINT: u8 = 0;
const I64: u8 = 1;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const I32: u8 = 5;

/// Deepest message nesting the rewriter follows.
pub const MAX_DEPTH: u32 = 100;

/// Highest field number protobuf allows (2^29 - 1).
const MAX_FIELD: u64 = (1 << 29) - 1;

/// Malformed protobuf wire data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("truncated varint at byte {offset}")]
    TruncatedVarint { offset: usize },
    #[error("varint longer than 10 bytes at byte {offset}")]
    VarintOverflow { offset: usize },
    #[error("field at byte {offset} declares {len} bytes but only {available} remain")]
    LengthPastEnd {
        offset: usize,
        len: u64,
        available: usize,
    },
    #[error("invalid wire type {wire_type} at byte {offset}")]
    InvalidWireType { offset: usize, wire_type: u8 },
    #[error("invalid field number {field} at byte {offset}")]
    InvalidFieldNumber { offset: usize, field: u64 },
    #[error("field {field} at byte {offset} has wire type {found}, expected length-delimited")]
    WrongWireType {
        offset: usize,
        field: u32,
        found: u8,
    },
    #[error("end-group tag without a matching start-group at byte {offset}")]
    UnexpectedEndGroup { offset: usize },
    #[error("group started at byte {offset} is not closed")]
    UnterminatedGroup { offset: usize },
    #[error("nesting deeper than {limit} levels")]
    TooDeep { limit: u32 },
}

/// One field's key: number and wire type, plus where its bytes sit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    pub(crate) field: u32,
    pub(crate) wire_type: u8,
}

/// Reads a varint at `*pos`, advancing it.
#[inline]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    // Most keys and small lengths take one byte: that case stays inline at
    // every caller, the loop does not.
    if let Some(&b) = buf.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        return Ok(u64::from(b));
    }
    read_long_varint(buf, pos)
}

/// [`read_varint`] for a varint of more than one byte (or none at all).
#[inline(never)]
fn read_long_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(start + i) else {
            return Err(WireError::TruncatedVarint { offset: start });
        };
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(WireError::VarintOverflow { offset: start })
}

/// Appends `value` as a varint.
#[inline]
pub(crate) fn write_varint(mut value: u64, out: &mut impl bytes::BufMut) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Number of bytes `value` takes as a varint.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a field key at `*pos`.
#[inline]
pub(crate) fn read_tag(buf: &[u8], pos: &mut usize) -> Result<Tag, WireError> {
    let offset = *pos;
    let key = read_varint(buf, pos)?;
    let wire_type = (key & 7) as u8;
    let field = key >> 3;
    if field == 0 || field > MAX_FIELD {
        return Err(WireError::InvalidFieldNumber { offset, field });
    }
    if wire_type > I32 {
        return Err(WireError::InvalidWireType { offset, wire_type });
    }
    Ok(Tag {
        field: field as u32,
        wire_type,
    })
}

/// Reads a length prefix at `*pos` and returns the body it delimits.
#[inline]
pub(crate) fn read_len_delimited<'a>(
    buf: &'a [u8],
    pos: &mut usize,
) -> Result<&'a [u8], WireError> {
    let offset = *pos;
    let len = read_varint(buf, pos)?;
    let available = buf.len() - *pos;
    if len > available as u64 {
        return Err(WireError::LengthPastEnd {
            offset,
            len,
            available,
        });
    }
    let body = &buf[*pos..*pos + len as usize];
    *pos += len as usize;
    Ok(body)
}

/// Skips the value of a field whose tag was just read. Groups are skipped
/// recursively, counting against `depth_left`.
pub(crate) fn skip_value(
    buf: &[u8],
    pos: &mut usize,
    tag: Tag,
    depth_left: u32,
    limit: u32,
) -> Result<(), WireError> {
    let offset = *pos;
    match tag.wire_type {
        VARINT => {
            read_varint(buf, pos)?;
        }
        I64 => advance(buf, pos, 8)?,
        I32 => advance(buf, pos, 4)?,
        LEN => {
            read_len_delimited(buf, pos)?;
        }
        START_GROUP => {
            if depth_left == 0 {
                return Err(WireError::TooDeep { limit });
            }
            loop {
                if *pos >= buf.len() {
                    return Err(WireError::UnterminatedGroup { offset });
                }
                let inner = read_tag(buf, pos)?;
                if inner.wire_type == END_GROUP {
                    if inner.field != tag.field {
                        return Err(WireError::UnexpectedEndGroup { offset: *pos });
                    }
                    break;
                }
                skip_value(buf, pos, inner, depth_left - 1, limit)?;
            }
        }
        // END_GROUP outside a group
        _ => return Err(WireError::UnexpectedEndGroup { offset }),
    }
    Ok(())
}

fn advance(buf: &[u8], pos: &mut usize, n: usize) -> Result<(), WireError> {
    let available = buf.len() - *pos;
    if n > available {
        return Err(WireError::LengthPastEnd {
            offset: *pos,
            len: n as u64,
            available,
        });
    }
    *pos += n;
    Ok(())
}

/// Appends a length-delimited field: key, length, body.
#[inline]
pub(crate) fn write_len_field(field: u32, body: &[u8], out: &mut Vec<u8>) {
    write_varint(u64::from(field) << 3 | u64::from(LEN), out);
    write_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// Size of a length-delimited field with a body of `len` bytes.
#[inline]
pub(crate) fn len_field_size(field: u32, len: usize) -> usize {
    varint_len(u64::from(field) << 3 | u64::from(LEN)) + varint_len(len as u64) + len
}

/// Iterates over the fields of one message, yielding `(tag, value bytes)`;
/// for length-delimited fields the value is the body without its prefix.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: u32,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8], limit: u32) -> Self {
        Fields { buf, pos: 0, limit }
    }
}

/// [`Fields`], each with the whole field's bytes (key included) as well:
/// for rebuilding a message with some fields replaced.
pub(crate) struct RawFields<'a>(Fields<'a>);

impl<'a> RawFields<'a> {
    pub(crate) fn new(buf: &'a [u8], limit: u32) -> Self {
        RawFields(Fields::new(buf, limit))
    }
}

impl<'a> Iterator for RawFields<'a> {
    type Item = Result<(Tag, &'a [u8], &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.0.pos;
        let item = self.0.next()?;
        let buf = self.0.buf;
        let end = self.0.pos;
        Some(item.map(|(tag, value)| (tag, value, &buf[start..end])))
    }
}

/// The length-delimited fields 1 and 2 of a two-field message (a map
/// entry's key and value, an `Any`'s type URL and value): the last of each,
/// empty when absent.
pub(crate) fn len_pair(bytes: &[u8], limit: u32) -> Result<(&[u8], &[u8]), WireError> {
    let (mut one, mut two): (&[u8], &[u8]) = (&[], &[]);
    for f in Fields::new(bytes, limit) {
        let (tag, v) = f?;
        match (tag.field, tag.wire_type) {
            (1, LEN) => one = v,
            (2, LEN) => two = v,
            _ => {}
        }
    }
    Ok((one, two))
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(Tag, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let res = (|| {
            let tag = read_tag(self.buf, &mut self.pos)?;
            if tag.wire_type == LEN {
                return Ok((tag, read_len_delimited(self.buf, &mut self.pos)?));
            }
            let start = self.pos;
            skip_value(self.buf, &mut self.pos, tag, self.limit, self.limit)?;
            Ok((tag, &self.buf[start..self.pos]))
        })();
        if res.is_err() {
            self.pos = self.buf.len();
        }
        Some(res)
    }
}

/// `message` with varint field `field` of the message at `path` (a chain
/// of length-delimited fields, every occurrence followed) set to `value`;
/// every other byte as it was. `None` when a message on the path is absent
/// (nothing to change) or the bytes do not parse.
pub fn set_varint_at(message: &[u8], path: &[u32], field: u32, value: u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len() + 10);
    let mut found = false;
    for f in RawFields::new(message, MAX_DEPTH) {
        let (tag, body, raw) = f.ok()?;
        match path.split_first() {
            None if tag.field == field && tag.wire_type == VARINT => {}
            Some((&first, rest)) if tag.field == first && tag.wire_type == LEN => {
                if let Some(inner) = set_varint_at(body, rest, field, value) {
                    write_len_field(first, &inner, &mut out);
                    found = true;
                } else {
                    out.extend_from_slice(raw);
                }
            }
            _ => out.extend_from_slice(raw),
        }
    }
    if path.is_empty() {
        write_varint(u64::from(field) << 3 | u64::from(VARINT), &mut out);
        write_varint(value, &mut out);
        found = true;
    }
    found.then_some(out)
}

/// The last occurrence of top-level string field `number` in `message` (the
/// value protobuf parsers keep), without parsing anything else; `None` when
/// absent, not UTF-8, or the bytes before it do not parse.
pub fn top_level_string(message: &[u8], number: u32) -> Option<&str> {
    last_len_field(message, number).and_then(|v| std::str::from_utf8(v).ok())
}

/// The last occurrence of top-level length-delimited field `number` (the
/// value a parser keeps for a singular field); `None` when absent or the
/// bytes before it do not parse.
pub fn last_len_field(message: &[u8], number: u32) -> Option<&[u8]> {
    let mut found = None;
    for field in Fields::new(message, MAX_DEPTH) {
        let (tag, value) = field.ok()?;
        if tag.field == number && tag.wire_type == LEN {
            found = Some(value);
        }
    }
    found
}
#[cfg(test)]
mod tests;
