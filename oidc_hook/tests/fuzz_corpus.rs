//! The token_hook fuzz corpus replayed on stable Rust, with seeded
//! mutations, so CI exercises the fuzz target even without cargo-fuzz.

#[test]
fn token_hook_corpus_and_mutations_never_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/token_hook");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5);
    let outcomes: Vec<&str> = seeds
        .iter()
        .map(|s| curfew_oidc::fuzzing::token_hook(s))
        .collect();
    assert!(outcomes.contains(&"allowed"), "{outcomes:?}");
    assert!(outcomes.contains(&"unparsed"), "{outcomes:?}");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let tokens: &[&[u8]] = &[
        b"null",
        b"\"\"",
        b"[]",
        b"{}",
        b"-1",
        b"1e999",
        b"18446744073709551616",
        b"\"\\u0000\"",
        b"\"wheel\"",
        b"\"refresh_token\"",
        b",",
        b":",
    ];
    for i in 0..3_000 {
        let mut d = seeds[i % seeds.len()].clone();
        for _ in 0..1 + next() % 3 {
            let pos = (next() as usize) % (d.len() + 1);
            match next() % 3 {
                0 if !d.is_empty() => {
                    d.remove(pos.min(d.len() - 1));
                }
                1 => d.insert(pos, next() as u8),
                _ => {
                    let t = tokens[(next() as usize) % tokens.len()];
                    d.splice(pos..pos, t.iter().copied());
                }
            }
        }
        curfew_oidc::fuzzing::token_hook(&d);
    }
}
