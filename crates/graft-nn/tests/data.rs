//! Data sets: loaders, seeded splits and batches.

use graft_nn::Dataset;
use graft_nn::data::{digits, digits_from, mnist_5k};
use graft_tensor::tch::{Device, Kind, Tensor};
use std::collections::HashSet;
use std::io::Write;

fn labels(d: &Dataset) -> Vec<i64> {
    Vec::<i64>::try_from(&d.labels).unwrap()
}

#[test]
fn real_data_sets_have_their_published_sizes() {
    let d = digits().unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(d.input_shape(), [1, 8, 8]);
    assert!(d.inputs.max().double_value(&[]) <= 1.0 && d.inputs.min().double_value(&[]) >= 0.0);
    let m = mnist_5k().unwrap();
    assert_eq!(m.len(), 5000);
    assert_eq!(m.input_shape(), [1, 28, 28]);
    let counts = m.labels.bincount::<Tensor>(None, 10);
    assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![500; 10]);
}

#[test]
fn split_is_a_stratified_partition_fixed_by_the_seed() {
    // Tag each example with its index so the parts can be traced back.
    let n = 300;
    let inputs = Tensor::arange(n, (Kind::Float, Device::Cpu)).unsqueeze(1);
    let labels_t = Tensor::arange(n, (Kind::Int64, Device::Cpu)).fmod(3);
    let d = Dataset::new(inputs, labels_t, 3, "tagged").unwrap();
    let s = d.split(0.6, 0.2, 9).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (180, 60, 60));
    let ids = |p: &Dataset| -> Vec<i64> {
        Vec::<f32>::try_from(&p.inputs.flatten(0, -1))
            .unwrap()
            .iter()
            .map(|&x| x as i64)
            .collect()
    };
    let all: HashSet<i64> = [ids(&s.train), ids(&s.val), ids(&s.test)]
        .concat()
        .into_iter()
        .collect();
    assert_eq!(
        all.len(),
        n as usize,
        "parts must be disjoint and cover everything"
    );
    for part in [&s.train, &s.val, &s.test] {
        let l = labels(part);
        for c in 0..3 {
            assert_eq!(
                l.iter().filter(|&&x| x == c).count() * 3,
                l.len(),
                "class {c} balance"
            );
        }
    }
    let again = d.split(0.6, 0.2, 9).unwrap();
    assert_eq!(ids(&s.train), ids(&again.train));
    let other = d.split(0.6, 0.2, 10).unwrap();
    assert_ne!(ids(&s.train), ids(&other.train));
    assert!(d.split(0.9, 0.2, 0).is_err());
}

#[test]
fn shuffled_batches_cover_every_example_once() {
    let d = digits().unwrap();
    let mut seen = 0;
    let mut total = Tensor::zeros([10], (Kind::Int64, Device::Cpu));
    for (xs, ys) in d.batches(100, Some(3)).unwrap() {
        assert_eq!(xs.size()[0], ys.size()[0]);
        seen += ys.size()[0];
        total += ys.bincount::<Tensor>(None, 10);
    }
    assert_eq!(seen, 1797);
    assert!(total.equal(&d.labels.bincount::<Tensor>(None, 10)));
    assert_eq!(d.batch_count(100), 18);
    assert!(d.batches(0, None).is_err());
    let only = d.with_classes(&[3, 7]).unwrap();
    assert!(labels(&only).iter().all(|&l| l == 3 || l == 7));
}

#[test]
fn bad_files_and_labels_give_errors_that_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let good_row = vec!["1"; 65].join(",");
    writeln!(gz, "{good_row}\n1,2,3").unwrap();
    gz.finish().unwrap();
    let err = digits_from(&path).unwrap_err().to_string();
    assert!(
        err.contains("broken.csv.gz") && err.contains("line 2"),
        "{err}"
    );
    let err = Dataset::new(
        Tensor::zeros([2, 1], (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[0i64, 5]),
        3,
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("0..=5") && err.contains("0..3"), "{err}");
}
