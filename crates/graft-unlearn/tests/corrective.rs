//! The corrective setting's manipulations (spec §3 tests): the trigger
//! writes exactly its patch, labels flip as specified, the identified set
//! lies inside the manipulated one, and seeds pin everything.

use graft_nn::Dataset;
use graft_tensor::tch::{Device, Kind, Tensor};
use graft_tensor::testing::bitwise_equal;
use graft_unlearn::corrective::{Trigger, identified, interclass_swap, poison, split_identified};

fn images(n: i64) -> Dataset {
    let x =
        Tensor::arange(n * 64, (Kind::Float, Device::Cpu)).reshape([n, 1, 8, 8]) / (n * 64) as f64;
    let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(10);
    Dataset::new(x, y, 10, "grid").unwrap()
}

#[test]
fn trigger_writes_exactly_the_patch() {
    let d = images(5);
    let trig = Trigger {
        size: 2,
        value: 1.0,
    };
    let out = trig.apply(&d).unwrap();
    let changed = out.inputs.ne_tensor(&d.inputs);
    let want = Tensor::zeros([5, 1, 8, 8], (Kind::Bool, Device::Cpu));
    let _ = want.narrow(2, 6, 2).narrow(3, 6, 2).fill_(1);
    assert!(bitwise_equal(&changed, &want));
    assert_eq!(
        out.inputs
            .narrow(2, 6, 2)
            .narrow(3, 6, 2)
            .min()
            .double_value(&[]),
        1.0
    );
    assert!(bitwise_equal(&out.labels, &d.labels));
    assert!(
        trig.apply(
            &Dataset::new(
                Tensor::zeros([2, 64], (Kind::Float, Device::Cpu)),
                Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
                10,
                "flat"
            )
            .unwrap()
        )
        .is_err()
    );
}

#[test]
fn poisoning_is_seeded_and_touches_only_the_chosen_samples() {
    let d = images(40);
    let trig = Trigger {
        size: 2,
        value: 1.0,
    };
    let a = poison(&d, 7, &trig, 0, 3).unwrap();
    let b = poison(&d, 7, &trig, 0, 3).unwrap();
    let c = poison(&d, 7, &trig, 0, 4).unwrap();
    assert_eq!(a.indices, b.indices);
    assert_ne!(a.indices, c.indices);
    assert_eq!(a.indices.len(), 7);
    let labels: Vec<i64> = Vec::try_from(&a.train.labels).unwrap();
    let clean: Vec<i64> = Vec::try_from(&d.labels).unwrap();
    for i in 0..40 {
        let row_changed = a
            .train
            .inputs
            .get(i)
            .ne_tensor(&d.inputs.get(i))
            .any()
            .int64_value(&[])
            == 1;
        let chosen = a.indices.contains(&i);
        assert_eq!(row_changed, chosen, "sample {i}");
        assert_eq!(
            labels[i as usize],
            if chosen { 0 } else { clean[i as usize] },
            "sample {i}"
        );
    }
    assert!(poison(&d, 0, &trig, 0, 1).is_err());
    assert!(poison(&d, 3, &trig, 10, 1).is_err());
}

#[test]
fn interclass_swap_relabels_the_first_samples_of_each_class() {
    let d = images(60); // six of each class, in order 0..9 repeated
    let m = interclass_swap(&d, 3, 5, 2).unwrap();
    let labels: Vec<i64> = Vec::try_from(&m.train.labels).unwrap();
    assert_eq!(m.indices, vec![3, 5, 13, 15]);
    assert_eq!((labels[3], labels[13], labels[5], labels[15]), (5, 5, 3, 3));
    assert_eq!(
        (labels[23], labels[25]),
        (3, 5),
        "later samples keep their labels"
    );
    assert!(interclass_swap(&d, 3, 3, 1).is_err());
    assert!(interclass_swap(&d, 3, 5, 7).is_err());
}

#[test]
fn identified_sets_are_subsets_and_split_the_data() {
    let manipulated: Vec<i64> = (0..50).map(|i| i * 3).collect();
    for f in [0.1, 0.25, 0.5, 1.0] {
        let ids = identified(&manipulated, f, 9).unwrap();
        assert_eq!(ids.len(), (50.0 * f).round() as usize);
        assert!(ids.iter().all(|i| manipulated.contains(i)));
        assert_eq!(ids, identified(&manipulated, f, 9).unwrap());
    }
    assert_eq!(identified(&manipulated, 1.0, 1).unwrap(), manipulated);
    assert!(identified(&manipulated, 0.0, 1).is_err());
    let d = images(150);
    let (forget, retain) = split_identified(&d, &[3, 6]).unwrap();
    assert_eq!((forget.len(), retain.len()), (2, 148));
    assert!(split_identified(&d, &[150]).is_err());
}
