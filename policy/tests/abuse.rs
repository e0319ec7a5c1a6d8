//! Hostile policy files: refused quickly, with bounded memory, never a panic;
//! and the fuzz corpus replayed (plus seeded mutations) on stable Rust, so CI
//! exercises the fuzz target even without nightly and cargo-fuzz.

use std::path::PathBuf;

use curfew_policy::{Policy, PolicyError};

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/policy"
    ));
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_replays_without_panic() {
    let c = corpus();
    assert!(c.len() >= 8, "corpus has {} files", c.len());
    for (_, bytes) in &c {
        curfew_policy::fuzzing::policy(bytes);
    }
    // The examples in the corpus are valid; the broken seeds are not.
    let valid = c
        .iter()
        .filter(|(_, b)| Policy::parse(std::str::from_utf8(b).unwrap(), "x").is_ok())
        .count();
    assert!(
        valid >= 4 && valid < c.len(),
        "{valid} of {} valid",
        c.len()
    );
}

/// A small deterministic mutation fuzzer (xorshift), 6,000 inputs (the real
/// fuzzer, scripts/fuzz, runs far more).
#[test]
fn seeded_mutations_never_panic() {
    let seeds = corpus();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tokens: &[&[u8]] = &[
        b": ",
        b"\n",
        b"  ",
        b"- ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"&a ",
        b"*a",
        b"!!str ",
        b"\"",
        b"'",
        b"2h",
        b"-1",
        b"1.5",
        b"99999999999999999999s",
        b"version: 1\n",
        b"rules:\n",
        b"\t",
        b"\xff",
    ];
    for i in 0..6_000 {
        let (_, seed) = &seeds[i % seeds.len()];
        let mut data = seed.clone();
        for _ in 0..1 + next() % 4 {
            let pos = if data.is_empty() {
                0
            } else {
                (next() as usize) % data.len()
            };
            match next() % 4 {
                0 => {
                    data.remove(pos.min(data.len().saturating_sub(1)).min(data.len()));
                }
                1 => data.insert(pos, next() as u8),
                2 => {
                    let t = tokens[(next() as usize) % tokens.len()];
                    data.splice(pos..pos, t.iter().copied());
                }
                _ => {
                    let end = (pos + (next() as usize) % 16).min(data.len());
                    data.drain(pos..end);
                }
            }
            if data.is_empty() {
                data.push(b'\n');
            }
        }
        curfew_policy::fuzzing::policy(&data);
    }
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from("version: 1\nbanner:\n  text: &a0 \"lol\"\nx0: &x0 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    match Policy::parse(&text, "laughs.yaml") {
        Err(PolicyError::Invalid { diagnostics }) => assert!(!diagnostics.is_empty()),
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

#[test]
fn deep_nesting_is_refused() {
    for depth in [200usize, 10_000, 100_000] {
        let text = format!(
            "version: 1\nbanner: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(
            matches!(
                Policy::parse(&text, "deep.yaml"),
                Err(PolicyError::Invalid { .. })
            ),
            "depth {depth} accepted"
        );
        let text = format!(
            "version: 1\nx: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        );
        assert!(
            Policy::parse(&text, "deep.yaml").is_err(),
            "mapping depth {depth}"
        );
    }
}

#[test]
fn a_100_mb_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap(); // sparse: no disk used
    match Policy::load(&path) {
        Err(PolicyError::TooLarge { size, limit, .. }) => {
            assert_eq!(size, 100 * 1024 * 1024);
            assert_eq!(limit, 1024 * 1024);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_binary_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policy.yaml"
    ))
    .unwrap();
    let mut clear = 0;
    for cut in (1..full.len()).step_by(37) {
        let p = dir.path().join("cut.yaml");
        std::fs::write(&p, &full[..cut]).unwrap();
        match Policy::load(&p) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&p.display().to_string()), "{msg}");
                clear += 1;
            }
        }
    }
    assert!(clear > 10, "truncations should mostly fail: {clear}");
    let p = dir.path().join("bin.yaml");
    std::fs::write(&p, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0]).unwrap();
    let e = Policy::load(&p).unwrap_err().to_string();
    assert!(e.contains("bin.yaml:1:"), "{e}");
}

/// Logins load the policy while an admin replaces it (by rename, the safe
/// way): every load sees one whole version, never a mix or a prefix.
#[test]
fn a_policy_replaced_during_loads_is_never_half_read() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let rules = |n: usize, inactivity: &str| {
        let mut t = format!("version: 1\nsession: {{ inactivity: {inactivity} }}\nrules:\n");
        for i in 0..n {
            t.push_str(&format!("  - name: r{i}\n    match: {{ users: [u{i}] }}\n    session: {{ inactivity: 5m }}\n"));
        }
        t
    };
    let a = rules(200, "10m");
    let b = rules(300, "20m");
    std::fs::write(&path, &a).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, dir, path) = (stop.clone(), dir.path().to_owned(), path.clone());
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tmp = dir.join(format!("tmp{i}"));
                std::fs::write(&tmp, if i.is_multiple_of(2) { &b } else { &a }).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                i += 1;
            }
            i
        })
    };
    let mut seen = [0usize; 2];
    for _ in 0..300 {
        let p = Policy::load(&path).unwrap();
        match (p.rules().len(), p.session.inactivity.as_secs()) {
            (200, 600) => seen[0] += 1,
            (300, 1200) => seen[1] += 1,
            other => panic!("half-read policy: {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = writer.join().unwrap();
    assert!(swaps > 10, "the writer barely ran ({swaps} swaps)");
    assert_eq!(seen[0] + seen[1], 300);
}
