//! The fuzz targets' checks as regular tests (`cargo test --features std`).
//!
//! Runs every input under `tests/fuzz_regressions/<target>/` (crashes the
//! fuzzers found, minimised, kept forever) and every seed under
//! `fuzz/corpus/<target>/` through the same checks the fuzz targets apply
//! (`fuzz/src/lib.rs`, included here so the test needs neither nightly nor
//! libFuzzer). A new finding becomes a test by copying its artifact into
//! `tests/fuzz_regressions/<target>/`.

// Helpers outside #[test] functions count as non-test code for clippy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};

use fota::result::{FOTA_ERR_FLASH, FOTA_ERR_TOO_LARGE, FOTA_NO_UPDATE, FOTA_OK};

fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn run_all(target: &str, check: fn(&[u8])) {
    let mut n = 0;
    for dir in ["tests/fuzz_regressions", "fuzz/corpus"] {
        for path in inputs(dir, target) {
            let data = fs::read(&path).unwrap();
            eprintln!("{target}: {}", path.display());
            check(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no inputs for {target}");
}

#[test]
fn head_inputs() {
    run_all("head", harness::check_head);
}

#[test]
fn chunked_inputs() {
    run_all("chunked", harness::check_chunked);
}

#[test]
fn url_inputs() {
    run_all("url", harness::check_url);
}

#[test]
fn session_inputs() {
    run_all("session", |d| {
        harness::check_session(d);
    });
}

#[test]
fn mcuboot_inputs() {
    run_all("mcuboot", |d| {
        harness::check_mcuboot(d);
    });
}

/// The signed seeds (made by imgtool with fuzz/keys/mcuboot-test.pem) are
/// committed, the unsigned one is refused: the fuzzer starts from both.
#[test]
fn mcuboot_seeds_reach_their_outcomes() {
    for (name, code) in [("signed-small", 0), ("signed-counter", 0), ("unsigned", 10)] {
        let data = std::fs::read(format!("fuzz/corpus/mcuboot/{name}")).unwrap();
        assert_eq!(harness::check_mcuboot(&data), code, "{name}");
    }
}

/// The session seeds reach the outcomes they were written for, so the
/// fuzzer starts from successful downloads, resumes and faults.
#[test]
fn session_seeds_reach_their_outcomes() {
    let expect = [
        ("nginx-c3k.bin", FOTA_OK),
        ("httpserver-b1k.bin", FOTA_OK),
        ("chunked-c3k.bin", FOTA_OK),
        ("chunked-close-b1k.bin", FOTA_OK),
        ("nginx-404", FOTA_NO_UPDATE),
        ("resume-206", FOTA_OK),
        ("resume-200", FOTA_OK),
        ("resume-416", FOTA_OK),
        ("redirect", FOTA_OK),
        ("granular-small-reads", FOTA_OK),
        ("chunked-wouldblock", FOTA_OK),
        ("too-large", FOTA_ERR_TOO_LARGE),
        ("fault-write", FOTA_ERR_FLASH),
        ("fault-busy", FOTA_OK),
        ("fault-end", FOTA_ERR_FLASH),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/session");
    for (name, code) in expect {
        let data = fs::read(dir.join(name)).unwrap();
        assert_eq!(harness::check_session(&data), code, "{name}");
    }
}

/// The reference chunked decoder agrees with the library on hand-picked
/// edge cases (the fuzz target compares them on everything else).
#[test]
fn reference_chunked_decoder() {
    use harness::{ref_chunked, ChunkEnd};
    assert_eq!(
        ref_chunked(b"5\r\nhello\r\n0\r\n\r\nX"),
        (b"hello".to_vec(), ChunkEnd::Done(15))
    );
    assert_eq!(
        ref_chunked(b"5\r\nhel"),
        (b"hel".to_vec(), ChunkEnd::Incomplete)
    );
    assert_eq!(
        ref_chunked(b"5\r\nhelloX"),
        (b"hello".to_vec(), ChunkEnd::Error)
    );
    assert_eq!(ref_chunked(b"0\nT: 1\n\n"), (Vec::new(), ChunkEnd::Done(8)));
    for input in [
        &b"5;a=\"b\"\r\nhello\r\n0\r\n\r\n"[..],
        b"1 \t;x\r\na\r\n0\r\n\r\n",
    ] {
        harness::check_chunked(&[&[0u8][..], input].concat());
    }
}
