use super::*;

#[test]
fn varint_round_trip_and_len() {
    for v in [
        0u64,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u32::MAX as u64,
        u64::MAX,
    ] {
        let mut out = Vec::new();
        write_varint(v, &mut out);
        assert_eq!(out.len(), varint_len(v), "len of {v}");
        let mut pos = 0;
        assert_eq!(read_varint(&out, &mut pos), Ok(v));
        assert_eq!(pos, out.len());
    }
}

#[test]
fn malformed_varints_are_errors() {
    let mut pos = 0;
    assert_eq!(
        read_varint(&[0x80, 0x80], &mut pos),
        Err(WireError::TruncatedVarint { offset: 0 })
    );
    let mut pos = 0;
    assert_eq!(
        read_varint(&[0xff; 11], &mut pos),
        Err(WireError::VarintOverflow { offset: 0 })
    );
}

#[test]
fn groups_are_skipped_and_checked() {
    // field 5 start-group, field 1 varint 7, field 5 end-group
    let buf = [0x2b, 0x08, 0x07, 0x2c];
    let mut pos = 0;
    let tag = read_tag(&buf, &mut pos).unwrap();
    skip_value(&buf, &mut pos, tag, 10, 10).unwrap();
    assert_eq!(pos, buf.len());
    // unterminated
    let buf = [0x2b, 0x08, 0x07];
    let mut pos = 0;
    let tag = read_tag(&buf, &mut pos).unwrap();
    assert!(matches!(
        skip_value(&buf, &mut pos, tag, 10, 10),
        Err(WireError::UnterminatedGroup { .. })
    ));
    // nested groups beyond the depth limit
    let mut deep = vec![0x2b; 20];
    deep.extend([0x2c; 20]);
    let mut pos = 0;
    let tag = read_tag(&deep, &mut pos).unwrap();
    assert_eq!(
        skip_value(&deep, &mut pos, tag, 5, 5),
        Err(WireError::TooDeep { limit: 5 })
    );
}

#[test]
fn a_nested_varint_is_set_and_nothing_else_moves() {
    // outer { 1: inner { 8: limits { 1: 2097152, 2: 131072 } }, 2: "keep" }
    let mut limits = Vec::new();
    write_varint(1 << 3, &mut limits);
    write_varint(2_097_152, &mut limits);
    write_varint(2 << 3, &mut limits);
    write_varint(131_072, &mut limits);
    let mut inner = Vec::new();
    write_len_field(1, b"default", &mut inner);
    write_len_field(8, &limits, &mut inner);
    let mut outer = Vec::new();
    write_len_field(1, &inner, &mut outer);
    write_len_field(2, b"keep", &mut outer);

    let patched = set_varint_at(&outer, &[1, 8], 1, 52_428_800).unwrap();
    let inner2 = last_len_field(&patched, 1).unwrap();
    assert_eq!(last_len_field(inner2, 1), Some(b"default".as_slice()));
    let limits2 = last_len_field(inner2, 8).unwrap();
    let mut values = Vec::new();
    for f in Fields::new(limits2, 1) {
        let (tag, v) = f.unwrap();
        let mut pos = 0;
        values.push((tag.field, read_varint(v, &mut pos).unwrap()));
    }
    assert_eq!(values, [(2, 131_072), (1, 52_428_800)]);
    assert_eq!(last_len_field(&patched, 2), Some(b"keep".as_slice()));
    // No limits message: nothing to change.
    assert_eq!(set_varint_at(&outer, &[1, 9], 1, 5), None);
}
