//! CRC-32, HMAC-SHA256, timestamp and URI helpers against published vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aigw_shared::aws::crc32::{crc32, Crc32};
use aigw_shared::aws::hmac::{constant_time_eq, hex, hmac_sha256, sha256_hex};
use aigw_shared::aws::uri::{canonical_path, canonical_query, percent_decode, uri_encode};
use aigw_shared::aws::{AmzDate, PathMode};

#[test]
fn crc32_matches_the_standard_check_value() {
    // The CRC-32/ISO-HDLC catalogue check value of "123456789".
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // The event-stream vector's empty-message prelude (total 16, headers 0).
    assert_eq!(crc32(&[0, 0, 0, 0x10, 0, 0, 0, 0]), 0x05C2_48EB);
}

#[test]
fn crc32_is_the_same_however_the_input_is_split() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let whole = crc32(&data);
    for cut in [0, 1, 7, 500, 999, 1000] {
        let mut c = Crc32::new();
        c.update(&data[..cut]);
        c.update(&data[cut..]);
        assert_eq!(c.finish(), whole, "cut at {cut}");
    }
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    // Test case 1.
    assert_eq!(
        hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    // Test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block size.
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn sha256_hex_of_the_empty_body_is_the_well_known_digest() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn constant_time_eq_compares_contents_and_lengths() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}

#[test]
fn amz_date_round_trips_through_unix_seconds() {
    let d = AmzDate::parse("20150830T123600Z").unwrap();
    assert_eq!(d.unix_seconds(), 1_440_938_160);
    assert_eq!(d.to_string(), "20150830T123600Z");
    assert_eq!(d.date_stamp(), "20150830");
    assert_eq!(
        AmzDate::from_unix_seconds(0).to_string(),
        "19700101T000000Z"
    );
    assert_eq!(
        AmzDate::from_unix_seconds(951_782_400).to_string(),
        "20000229T000000Z"
    );
    for s in [0i64, 86_399, 86_400, 1_709_164_800, 4_102_444_799] {
        let d = AmzDate::from_unix_seconds(s);
        assert_eq!(AmzDate::parse(&d.to_string()), Some(d));
    }
}

#[test]
fn amz_date_rejects_malformed_and_impossible_times() {
    for bad in [
        "",
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "20150230T000000Z",
        "20150830T246000Z",
        "2015083+T123600Z",
        "20150830T12360ÿZ",
        "20190229T000000Z",
    ] {
        assert_eq!(AmzDate::parse(bad), None, "{bad:?}");
    }
    assert!(AmzDate::parse("20200229T235959Z").is_some());
}

#[test]
fn uri_encoding_keeps_only_unreserved_characters() {
    assert_eq!(uri_encode(b"a-._~Z9 /:%", true), "a-._~Z9%20%2F%3A%25");
    assert_eq!(uri_encode(b"a/b", false), "a/b");
    assert_eq!(percent_decode("a%3Ab%zz%4"), b"a:b%zz%4");
    assert_eq!(percent_decode("a+b"), b"a+b");
}

#[test]
fn canonical_paths_are_normalized_and_encoded() {
    let n = PathMode::Normalized;
    assert_eq!(canonical_path("", n), "/");
    assert_eq!(canonical_path("/", n), "/");
    assert_eq!(canonical_path("//example//", n), "/example/");
    assert_eq!(canonical_path("/a/./b/../c", n), "/a/c");
    assert_eq!(canonical_path("/a/b/..", n), "/a/");
    assert_eq!(canonical_path("/../..", n), "/");
    assert_eq!(
        canonical_path("/model/x%3A0/invoke", n),
        "/model/x%253A0/invoke"
    );
    assert_eq!(canonical_path("a b", PathMode::S3), "/a%20b");
}

#[test]
fn canonical_queries_are_sorted_and_strictly_encoded() {
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    assert_eq!(canonical_query("flag&x="), "flag=&x=");
    assert_eq!(canonical_query("k=a%20b+c/d"), "k=a%20b%2Bc%2Fd");
    assert_eq!(canonical_query("&&k=v&"), "k=v");
}
