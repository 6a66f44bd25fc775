//! One input of the `safetensors_header` and `safetensors_index` targets:
//! the entry point is called, and what it accepts is checked against the
//! input, so that a wrong `Ok` fails as surely as a panic.
//!
//! Shared by the fuzz targets (`fuzz/fuzz_targets/`) and the stable replay
//! test `crates/graft-tensor/tests/fuzz_replay.rs`, which include this file.

use graft_tensor::Error;
use graft_tensor::safetensors::{parse_header, parse_index};
use std::collections::HashSet;
use std::path::Path;

/// `parse_header` on `data`, the bytes of a whole file. When it accepts
/// them: the length prefix and the header lie inside the input, the header
/// is a JSON object with one key per tensor (plus `__metadata__`), names are
/// unique, every tensor's size is a whole number of bytes that fits in a
/// `u64`, and the sizes add up to exactly the data section.
pub fn safetensors_header(data: &[u8]) -> bool {
    let specs = match parse_header(data, Path::new("fuzz.safetensors")) {
        Ok(specs) => specs,
        Err(err) => {
            check_truncated(data, &err);
            return false;
        }
    };
    let prefix: [u8; 8] = data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .expect("an accepted file has an 8-byte length prefix");
    let header_len = u64::from_le_bytes(prefix);
    let data_len = (data.len() as u64 - 8)
        .checked_sub(header_len)
        .expect("an accepted header lies inside the file");
    let header = &data[8..8 + header_len as usize];
    let json: serde_json::Value =
        serde_json::from_slice(header).expect("an accepted header is JSON");
    let object = json.as_object().expect("an accepted header is an object");
    let tensor_keys = object.keys().filter(|k| *k != "__metadata__").count();
    assert_eq!(
        tensor_keys,
        specs.len(),
        "every tensor of the header is returned once"
    );
    let mut names = HashSet::new();
    let mut total: u64 = 0;
    for spec in &specs {
        assert!(names.insert(spec.name.as_str()), "`{}` twice", spec.name);
        assert_ne!(spec.name, "__metadata__");
        let numel = spec
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .unwrap_or_else(|| panic!("`{}`: {:?} overflows", spec.name, spec.shape));
        let bits = numel
            .checked_mul(spec.dtype.bitsize() as u64)
            .unwrap_or_else(|| panic!("`{}`: bit count overflows", spec.name));
        assert_eq!(
            bits % 8,
            0,
            "`{}` is not a whole number of bytes",
            spec.name
        );
        assert_eq!(spec.nbytes() as u64, bits / 8, "`{}`: nbytes", spec.name);
        total = total
            .checked_add(bits / 8)
            .expect("the tensors' sizes add up without overflow");
    }
    assert_eq!(
        total, data_len,
        "the tensors' bytes must fill the data section exactly"
    );
    true
}

/// A `Truncated` error's sizes must make sense: the size it expects is
/// not the file's, and covers the end of every tensor the header declares
/// (a sum that wrapped past 2^64 would not).
fn check_truncated(data: &[u8], err: &Error) {
    let Error::Truncated {
        expected, actual, ..
    } = err
    else {
        return;
    };
    assert_eq!(*actual, data.len() as u64, "{err}");
    assert_ne!(expected, actual, "{err}");
    let Some(header) = data
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .and_then(|n| data.get(8..n.checked_add(8)?))
    else {
        return;
    };
    let Ok(serde_json::Value::Object(json)) = serde_json::from_slice(header) else {
        return;
    };
    for (name, info) in &json {
        if let Some(end) = info["data_offsets"][1].as_u64() {
            assert!(
                *expected >= end,
                "{err}: `{name}` ends at {end}, past the expected size"
            );
        }
    }
}

/// `parse_index` on `data` (as UTF-8, invalid sequences replaced). When it
/// accepts it: every file name is a plain name inside the checkpoint
/// directory, and the tensors listed are exactly the `weight_map` keys.
pub fn safetensors_index(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Ok(by_file) = parse_index(&text, Path::new("model.safetensors.index.json")) else {
        return false;
    };
    let json: serde_json::Value = serde_json::from_str(&text).expect("an accepted index is JSON");
    let map = json["weight_map"]
        .as_object()
        .expect("an accepted index has a weight_map object");
    let mut listed = 0;
    for (file, names) in &by_file {
        assert!(
            !file.is_empty()
                && !file.contains('/')
                && !file.contains('\\')
                && file != "."
                && file != "..",
            "`{file}` escapes the checkpoint directory"
        );
        assert!(!names.is_empty(), "`{file}` is listed with no tensor");
        for name in names {
            assert_eq!(map[name].as_str(), Some(file.as_str()), "`{name}`'s file");
        }
        listed += names.len();
    }
    assert_eq!(listed, map.len(), "every weight_map entry is listed once");
    true
}
