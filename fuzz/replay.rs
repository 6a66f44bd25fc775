//! Stable-toolchain replay of the fuzz corpus, for CI (which has no nightly
//! and no cargo-fuzz): every seed in `fuzz/corpus/<target>/`, then a few
//! thousand mutations of them from a fixed seed, are passed to the same
//! check the fuzz target runs (`fuzz/checks/*.rs`); a panic fails the test
//! and names the input, which is also written out for `cargo fuzz run`.
//!
//! Seed names say what the entry point must do with them: `valid_*` are
//! accepted, `bad_*` refused; anything else (`crash_*`, minimised from a
//! fuzzer find, or `odd_*`) only must not panic.
//!
//! Included by the replay tests of graft-tensor, graft-merge and
//! graft-diffusion (`#[path = "../../../fuzz/replay.rs"] mod replay;`), so
//! it uses nothing outside std.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// How an input is laid out, so mutations can also reach past its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text (JSON or YAML).
    Text,
    /// A safetensors file: an 8-byte little-endian length, a JSON header,
    /// data. Half the mutations of the header rewrite the length to match,
    /// so they get past the length check into the header's validation.
    LengthPrefixed,
}

/// One input: where it came from and its bytes.
#[derive(Debug, Clone)]
pub struct Input {
    /// The seed's file name, or the mutations that made it.
    pub label: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What went wrong with one input.
#[derive(Debug)]
pub struct Failure {
    /// The input.
    pub input: Input,
    /// The panic message, or the broken expectation.
    pub message: String,
}

/// The seed corpus of `target`: `fuzz/corpus/<target>/`.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of `target`'s seed corpus, by name.
pub fn seeds(target: &str) -> Vec<Input> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the seed corpus {}: {e}", dir.display()));
    let mut seeds: Vec<Input> = entries
        .map(|e| {
            let path = e.expect("a corpus entry").path();
            Input {
                label: path
                    .file_name()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned(),
                bytes: std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
            }
        })
        .collect();
    assert!(!seeds.is_empty(), "{} holds no seeds", dir.display());
    seeds.sort_by(|a, b| a.label.cmp(&b.label));
    seeds
}

/// Runs `check` on every seed of `target` and on `count` mutations of them
/// (seeded: the same inputs every run), and panics naming every failure:
/// a panic in `check`, or a `valid_*` seed refused, or a `bad_*` seed
/// accepted (`check` returns whether the entry point accepted the input).
/// Failing inputs are written to `CARGO_TARGET_TMPDIR/fuzz_replay/`.
pub fn replay(target: &str, format: Format, count: usize, check: impl Fn(&[u8]) -> bool) {
    let seeds = seeds(target);
    let mut failures = Vec::new();
    for seed in &seeds {
        match run_one(&check, &seed.bytes) {
            Err(message) => failures.push(Failure {
                input: seed.clone(),
                message,
            }),
            Ok(accepted) => {
                let expected = if seed.label.starts_with("valid_") {
                    Some(true)
                } else if seed.label.starts_with("bad_") {
                    Some(false)
                } else {
                    None
                };
                if expected.is_some_and(|e| e != accepted) {
                    failures.push(Failure {
                        input: seed.clone(),
                        message: format!(
                            "the seed was {} but its name says it should be {}",
                            if accepted { "accepted" } else { "refused" },
                            if accepted { "refused" } else { "accepted" }
                        ),
                    });
                }
            }
        }
    }
    failures.extend(first_panic(
        mutations(&seeds, format, count, 0x0067_7261_6674),
        &check,
    ));
    if failures.is_empty() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz_replay");
    let _ = std::fs::create_dir_all(&dir);
    let mut report = format!("{target}: {} failing input(s)\n", failures.len());
    for (i, f) in failures.iter().enumerate() {
        let path = dir.join(format!("{target}-{i}"));
        let saved = match std::fs::write(&path, &f.input.bytes) {
            Ok(()) => format!(
                "saved as {} (`cargo fuzz run {target} {}` replays it)",
                path.display(),
                path.display()
            ),
            Err(e) => format!("not saved: {e}"),
        };
        report += &format!(
            "- {}: {}\n  {saved}\n  bytes: {}\n",
            f.input.label,
            f.message,
            excerpt(&f.input.bytes)
        );
    }
    panic!("{report}");
}

/// The first input on which `check` panics (at most one per run, so that a
/// bug hit by many mutations is reported once).
pub fn first_panic(
    inputs: impl IntoIterator<Item = Input>,
    check: &impl Fn(&[u8]) -> bool,
) -> Option<Failure> {
    inputs.into_iter().find_map(|input| {
        run_one(check, &input.bytes)
            .err()
            .map(|message| Failure { input, message })
    })
}

/// `check(bytes)`, with a panic turned into its message.
fn run_one(check: &impl Fn(&[u8]) -> bool, bytes: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| check(bytes))).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".into());
        format!("panicked: {message}")
    })
}

/// The start of `bytes`, escaped, for messages.
fn excerpt(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(240)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 240 {
        format!("\"{shown}\"... ({} bytes)", bytes.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// SplitMix64: a small, fixed pseudo-random sequence (no dependency, the
/// same on every platform and toolchain).
pub struct Rng(u64);

impl Rng {
    /// The sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `0..=n`: a position in a slice of length `n`.
    pub fn position(&mut self, n: usize) -> usize {
        self.below(n + 1)
    }
}

/// Numbers that break parsers: bounds of the integer types, the largest and
/// smallest floats, JSON's and YAML's spellings of NaN and infinity.
pub const EXTREMES: &[&str] = &[
    "-1",
    "0",
    "-0",
    "1",
    "0.0",
    "1e308",
    "-1e308",
    "1e309",
    "5e-324",
    "255",
    "256",
    "4294967295",
    "4294967296",
    "2305843009213693951",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "NaN",
    "nan",
    ".nan",
    ".inf",
    "-.inf",
    "inf",
    "Infinity",
    "1e",
    "0x10",
];

/// Bytes a mutation writes: delimiters and quotes of JSON and YAML, and
/// the bytes that bound integer and UTF-8 ranges.
const BYTES: &[u8] = b"\0\x01\x7f\x80\xff\"'{}[]:,-.&*<!|>#\n\t \\e0";

/// `count` mutations of `seeds`: each seed, picked at random, gets one to
/// four of bit flips, byte writes, inserts, deletes, duplications,
/// truncation, splicing with another seed, and numbers replaced by
/// [`EXTREMES`]. The same `seed` gives the same inputs.
pub fn mutations(
    seeds: &[Input],
    format: Format,
    count: usize,
    seed: u64,
) -> impl Iterator<Item = Input> + '_ {
    let mut rng = Rng::new(seed);
    (0..count).map(move |_| {
        let base = &seeds[rng.below(seeds.len())];
        let mut bytes = base.bytes.clone();
        let mut label = base.label.clone();
        for _ in 0..=rng.below(4) {
            let op = mutate(&mut rng, &mut bytes, seeds, format);
            label.push('+');
            label.push_str(op);
        }
        Input { label, bytes }
    })
}

/// One mutation of `bytes`, in place; returns its name.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Input], format: Format) -> &'static str {
    if format == Format::LengthPrefixed && rng.below(3) == 0 {
        return mutate_header(rng, bytes, seeds);
    }
    mutate_bytes(rng, bytes, seeds)
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Input]) -> &'static str {
    let len = bytes.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
            "flip"
        }
        1 if len > 0 => {
            let i = rng.below(len);
            bytes[i] = BYTES[rng.below(BYTES.len())];
            "set"
        }
        2 => {
            let i = rng.position(len);
            let b = if rng.below(2) == 0 {
                BYTES[rng.below(BYTES.len())]
            } else {
                rng.next_u64() as u8
            };
            bytes.insert(i, b);
            "insert"
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(16)).min(len);
            bytes.drain(start..end);
            "delete"
        }
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let chunk = bytes[start..end].to_vec();
            let at = rng.position(len);
            bytes.splice(at..at, chunk);
            "duplicate"
        }
        5 => {
            bytes.truncate(rng.position(len));
            "truncate"
        }
        6 if !seeds.is_empty() => {
            let other = &seeds[rng.below(seeds.len())].bytes;
            let cut = rng.position(len);
            let from = rng.position(other.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
            "splice"
        }
        _ => {
            if replace_number(rng, bytes) {
                "extreme"
            } else {
                bytes.push(b'0');
                "append"
            }
        }
    }
}

/// A mutation of a safetensors file's JSON header; the length prefix is
/// rewritten to match half the time. Falls back to a byte mutation when
/// the prefix does not fit the input.
fn mutate_header(rng: &mut Rng, bytes: &mut Vec<u8>, seeds: &[Input]) -> &'static str {
    let declared = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let Some(n) = declared.filter(|&n| n <= (bytes.len() - 8) as u64) else {
        return mutate_bytes(rng, bytes, seeds);
    };
    let n = n as usize;
    let mut header = bytes[8..8 + n].to_vec();
    let data = bytes[8 + n..].to_vec();
    let op = if rng.below(2) == 0 && replace_number(rng, &mut header) {
        "header-extreme"
    } else {
        mutate_bytes(rng, &mut header, seeds);
        "header-bytes"
    };
    let prefix = if rng.below(2) == 0 { header.len() } else { n };
    bytes.clear();
    bytes.extend_from_slice(&(prefix as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&data);
    op
}

/// Replaces one number in `bytes` (a run of digits, with its sign, point
/// and exponent) by one of [`EXTREMES`]; false when there is none.
fn replace_number(rng: &mut Rng, bytes: &mut Vec<u8>) -> bool {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = if i > 0 && bytes[i - 1] == b'-' {
                i - 1
            } else {
                i
            };
            while i < bytes.len() && (bytes[i].is_ascii_digit() || b".eE+-".contains(&bytes[i])) {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    if spans.is_empty() {
        return false;
    }
    let (start, end) = spans[rng.below(spans.len())];
    let extreme = EXTREMES[rng.below(EXTREMES.len())];
    bytes.splice(start..end, extreme.bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replay can fail: a check that panics on one byte pattern, found
    /// in a seed only after mutation, is reported, with the input.
    #[test]
    fn a_panicking_entry_point_is_caught() {
        let seeds = vec![
            Input {
                label: "a".into(),
                bytes: b"{\"weight\": 0.5, \"n\": 12}".to_vec(),
            },
            Input {
                label: "b".into(),
                bytes: b"models: [x, y]".to_vec(),
            },
        ];
        // Panics on the largest u64, which no seed holds but the mutations write.
        let fragile = |b: &[u8]| {
            if b.windows(20).any(|w| w == b"18446744073709551615") {
                panic!("overflow on u64::MAX");
            }
            true
        };
        assert!(first_panic(seeds.clone(), &fragile).is_none());
        let found = first_panic(mutations(&seeds, Format::Text, 2000, 1), &fragile)
            .expect("the mutations reach the panic");
        assert!(found.message.contains("overflow on u64::MAX"), "{found:?}");
        assert!(found.input.label.contains("extreme"), "{found:?}");
        // And `replay` itself fails on a panicking check over a real corpus.
        let corpus = std::fs::read_dir(corpus_dir(""))
            .expect("fuzz/corpus")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .find(|t| !seeds_of_empty(t))
            .expect("a target with seeds");
        let result = catch_unwind(|| {
            replay(&corpus, Format::Text, 10, |b: &[u8]| {
                assert!(b.is_empty(), "not empty");
                true
            })
        });
        let message = result.expect_err("replay reports the panic");
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted report");
        assert!(message.contains("panicked: not empty"), "{message}");
    }

    /// Mutations are the same on every run, and differ from their seeds.
    #[test]
    fn mutations_are_seeded_and_change_the_input() {
        let seeds = vec![Input {
            label: "s".into(),
            bytes: b"{\"a\": [1, 2.5e3, -7]}".to_vec(),
        }];
        let a: Vec<Input> = mutations(&seeds, Format::Text, 200, 7).collect();
        let b: Vec<Input> = mutations(&seeds, Format::Text, 200, 7).collect();
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.bytes == y.bytes && x.label == y.label)
        );
        let changed = a.iter().filter(|m| m.bytes != seeds[0].bytes).count();
        assert!(changed > 180, "only {changed} of 200 changed");
    }

    fn seeds_of_empty(target: &str) -> bool {
        std::fs::read_dir(corpus_dir(target)).map_or(true, |mut d| d.next().is_none())
    }
}
