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
