//! Chunked merging equals the whole-segment merge bit for bit, whatever the chunk size.

use graft_merge::chunked::{ChunkModel, SliceSource, Source, merge_chunked};
use graft_merge::{
    Compat, MergeParams, Method, ModelValues, PcbParams, Rescale, TrimRule, merge_segment,
};
use graft_tensor::testing::proptest_config;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        2 => Just(0.5f32),
        1 => Just(-0.5f32),
        6 => -3.0f32..3.0,
    ]
}

fn methods() -> Vec<(Method, MergeParams)> {
    let mk = MergeParams {
        seed: 7,
        ..MergeParams::default()
    };
    let paper = MergeParams {
        compat: Compat::Paper,
        seed: 7,
        ..MergeParams::default()
    };
    let reference = MergeParams {
        trim_rule: TrimRule::Reference,
        ..mk.clone()
    };
    let mut v = vec![
        (Method::Linear, mk.clone()),
        (
            Method::TaskArithmetic,
            MergeParams {
                lambda: 0.7,
                ..mk.clone()
            },
        ),
        (Method::Ties, mk.clone()),
        (Method::Ties, paper.clone()),
        (Method::Ties, reference),
        (Method::DareTies, mk.clone()),
        (Method::DareTies, paper.clone()),
        (
            Method::Pcb(PcbParams {
                keep_ratio: 0.3,
                clamp_ratio: 0.1,
                ..PcbParams::default()
            }),
            mk.clone(),
        ),
    ];
    for rescale in [
        Rescale::InverseKeep,
        Rescale::L1,
        Rescale::L2,
        Rescale::Linf,
        Rescale::None,
    ] {
        v.push((
            Method::DareLinear,
            MergeParams {
                rescale: Some(rescale),
                ..mk.clone()
            },
        ));
    }
    v
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn chunk_size_changes_no_bit(
        n in 1usize..40,
        raw in prop::collection::vec(prop::collection::vec(value(), 40), 4),
        densities in prop::collection::vec(prop_oneof![Just(1.0f64), Just(0.5), Just(0.3), Just(0.05)], 3),
        chunk in 1usize..48,
    ) {
        let base: Vec<f32> = raw[0][..n].to_vec();
        let xs: Vec<Vec<f32>> = raw[1..].iter().map(|x| x[..n].to_vec()).collect();
        let ids = ["m-a", "m-b", "m-c"];
        for (method, params) in methods() {
            let base_arg: Option<&[f32]> = if method == Method::Linear { None } else { Some(&base) };
            let deltas: Vec<ModelValues> = ids.iter().zip(&xs).zip(&densities)
                .map(|((id, x), &d)| ModelValues { id: id.to_string(), weight: 1.0, density: d, values: x })
                .collect();
            let whole = merge_segment(&method, &params, "layer.w", base_arg, &deltas);
            let sources: Vec<SliceSource> = xs.iter().map(|x| SliceSource(x)).collect();
            let models: Vec<ChunkModel> = ids.iter().zip(&sources).zip(&densities)
                .map(|((id, src), &d)| ChunkModel { id: id.to_string(), weight: 1.0, density: d, source: src })
                .collect();
            let base_source = SliceSource(&base);
            let mut out = Vec::new();
            let base_src: Option<&dyn Source> = if method == Method::Linear { None } else { Some(&base_source) };
            let chunked = merge_chunked(&method, &params, "layer.w", base_src, &models, chunk, &mut |c: &[f32]| {
                out.extend_from_slice(c);
                Ok(())
            });
            match (whole, chunked) {
                (Ok(w), Ok(())) => {
                    prop_assert_eq!(w.len(), out.len());
                    prop_assert!(w.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{:?} {:?} chunk {}: {:?} vs {:?}", method, params.compat, chunk, w, out);
                }
                (Err(_), Err(_)) => {}
                (w, c) => prop_assert!(false, "{:?}: whole {:?} vs chunked {:?}", method, w.map(|_| ()), c),
            }
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(48))]

    /// The streamed PCB (radix-selected quantiles, any chunk size) equals the
    /// in-memory PCB (sorted quantiles) bit for bit, for every inter-balancing.
    #[test]
    fn streamed_pcb_equals_the_in_memory_pcb(
        n in 1usize..40,
        raw in prop::collection::vec(prop::collection::vec(value(), 40), 4),
        keep in prop_oneof![Just(1.0f64), Just(0.5), Just(0.2), Just(0.05)],
        clamp in prop_oneof![Just(0.0f64), Just(0.01), Just(0.2)],
        chunk in 1usize..48,
        lambda in prop_oneof![Just(1.0f32), Just(0.7)],
    ) {
        let base: Vec<f32> = raw[0][..n].to_vec();
        let xs: Vec<Vec<f32>> = raw[1..].iter().map(|x| x[..n].to_vec()).collect();
        let ids = ["m-a", "m-b", "m-c"];
        let weights = [1.0f32, 0.6, 1.3];
        for inter in [graft_merge::InterBalance::Reference, graft_merge::InterBalance::NormalizedSum, graft_merge::InterBalance::Pairwise] {
            let pcb = PcbParams { keep_ratio: keep, clamp_ratio: clamp, inter };
            let params = MergeParams { lambda, ..MergeParams::default() };
            let deltas: Vec<ModelValues> = ids.iter().zip(&xs).zip(weights)
                .map(|((id, x), w)| ModelValues { id: id.to_string(), weight: w, density: 1.0, values: x })
                .collect();
            let whole = graft_merge::merge_pcb_in_memory(&pcb, &params, "layer.w", Some(&base), &deltas).unwrap();
            let sources: Vec<SliceSource> = xs.iter().map(|x| SliceSource(x)).collect();
            let models: Vec<ChunkModel> = ids.iter().zip(&sources).zip(weights)
                .map(|((id, src), w)| ChunkModel { id: id.to_string(), weight: w, density: 1.0, source: src })
                .collect();
            let base_source = SliceSource(&base);
            let mut out = Vec::new();
            merge_chunked(&Method::Pcb(pcb), &params, "layer.w", Some(&base_source), &models, chunk, &mut |c: &[f32]| {
                out.extend_from_slice(c);
                Ok(())
            }).unwrap();
            prop_assert_eq!(whole.len(), out.len());
            prop_assert!(whole.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{:?} chunk {}: {:?} vs {:?}", inter, chunk, whole, out);
        }
    }
}
