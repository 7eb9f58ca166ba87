//! Runs the fuzz harness over the seed corpus and the crash regressions
//! (`fuzz/corpus/decode/`, `fuzz/regressions/`), so a past crash stays fixed
//! without the fuzzer installed.

#![allow(clippy::unwrap_used)]

#[allow(dead_code, clippy::unwrap_used)]
#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn run_dir(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "md") {
            let data = std::fs::read(&path).unwrap();
            harness::run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let n = run_dir(&root.join("corpus/decode")) + run_dir(&root.join("regressions"));
    assert!(n > 0, "no fuzz inputs found");
}

#[test]
fn harness_smoke() {
    for setup in 0u8..=255 {
        let mut data = vec![setup];
        data.extend_from_slice(
            b"\nSEND\ndestination:/q\nk:a\\cb\n\nhi\0\r\nMESSAGE\ncontent-length:2\n\n\0\0\0",
        );
        harness::run(&data);
    }
}
