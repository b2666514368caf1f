//! Every WGSL kernel against the CPU's kernel on the inputs of the golden-vector test
//! (`tests/golden.rs`), on whatever adapter opens here (Mesa's lavapipe in CI).

use super::plan::{Args, Entry, flat, pack4};
use super::*;
use crate::model::sprite_q::{gemm, ops};
use crate::pipeline::ArtModel;

fn gpu() -> GpuDevice {
    GpuDevice::open_headless().unwrap_or_else(|e| {
        panic!("{e}: the GPU tests need a Vulkan driver (`cargo xtask setup` installs lavapipe)")
    })
}

fn model() -> ArtModel {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/models/kiln-sprite-q-v1.safetensors"
    );
    ArtModel::load(path).unwrap()
}

/// The golden test's pseudo-random inputs: `wide` (full-range words) and `acts` (activations).
fn inputs() -> (Vec<i32>, Vec<i32>) {
    let mut next = ops::xorshift32(0x2545_f491);
    let wide: Vec<i32> = (0..16384).map(|_| next() as i32 >> (next() % 24)).collect();
    let acts = wide
        .iter()
        .map(|&v| v.clamp(-ops::ACT_MAX, ops::ACT_MAX) >> 4)
        .collect();
    (wide, acts)
}

/// The golden test's digest.
fn digest(values: impl IntoIterator<Item = i32>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn args(n: [u32; 4], o: [u32; 8], i: [i32; 4]) -> Args {
    Args { n, o, i }
}

#[test]
fn mul_shift_kernel_equals_the_cpu() {
    let gpu = gpu();
    let (wide, _) = inputs();
    // The golden cases, then edges of every operand and shift.
    let mut cases: Vec<[i32; 3]> = (0..4096)
        .map(|i| [wide[i], wide[(i * 7 + 3) % 4096], (i % 63) as i32])
        .collect();
    let edges = [
        0,
        1,
        -1,
        0x7FFF,
        0x8000,
        -0x8000,
        0xFFFF,
        0x1_0000,
        i32::MAX,
        -i32::MAX,
        i32::MIN,
        1 << 30,
        -(1 << 30),
    ];
    for s in 0..=62 {
        for &a in &edges {
            for &m in &edges {
                cases.push([a, m, s]);
            }
        }
    }
    let work: Vec<i32> = cases
        .iter()
        .flatten()
        .copied()
        .chain(std::iter::repeat_n(0, cases.len()))
        .collect();
    let at = (3 * cases.len()) as u32;
    let out = gpu
        .probe(
            Entry::ProbeMulShift,
            args(
                [cases.len() as u32, 0, 0, 0],
                [0, at, 0, 0, 0, 0, 0, 0],
                [0; 4],
            ),
            flat(cases.len()),
            &[0],
            &work,
        )
        .unwrap();
    let got = &out[at as usize..];
    for (c, &g) in cases.iter().zip(got) {
        assert_eq!(g, ops::mul_shift(c[0], c[1], c[2] as u32), "mul_shift{c:?}");
    }
    assert_eq!(digest(got[..4096].iter().copied()), "630a433844995834");
}

#[test]
fn quantization_layer_norm_softmax_and_silu_kernels_equal_the_cpu() {
    let gpu = gpu();
    let model = model();
    let net = model.sprite_q_net().unwrap();
    let (exp, silu) = net.tables();
    let (wide, acts) = inputs();

    // Row quantization (activations stay below 2^30, as every activation of the network does).
    let rows: Vec<i32> = wide[..16 * 160]
        .iter()
        .map(|&v| v.clamp(-(1 << 30) + 1, (1 << 30) - 1))
        .collect();
    let at_words = rows.len() as u32;
    let at_exps = at_words + 16 * 40;
    let work: Vec<i32> = rows.iter().copied().chain([0; 16 * 41]).collect();
    let out = gpu
        .probe(
            Entry::QuantizeRows,
            args(
                [16, 160, 1, 0],
                [0, 160, at_words, at_exps, 0, 0, 0, 0],
                [0; 4],
            ),
            [1, 1, 1],
            &[0],
            &work,
        )
        .unwrap();
    let mut q = vec![0i8; 160];
    for r in 0..16 {
        let e = ops::quantize_row_i8(&rows[r * 160..][..160], &mut q);
        assert_eq!(out[(at_exps + r as u32) as usize], e, "row {r} exponent");
        let words: Vec<i32> = q
            .chunks_exact(4)
            .map(|c| pack4([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            &out[at_words as usize + r * 40..][..40],
            &words[..],
            "row {r}"
        );
    }

    // Layer norm with a modulation: 16 rows, one affine.
    let a: Vec<i32> = (0..160).map(|i| 4096 + acts[i] % 2000).collect();
    let c: Vec<i32> = (0..160).map(|i| acts[160 + i] % 9000).collect();
    let x = &acts[..16 * 160];
    let work: Vec<i32> = x
        .iter()
        .chain(&a)
        .chain(&c)
        .copied()
        .chain([0; 16 * 160])
        .collect();
    let (ao, co, dst) = (16 * 160, 17 * 160, 18 * 160);
    let out = gpu
        .probe(
            Entry::LayerNorm,
            args([16, 160, 16, 0], [0, dst, ao, co, 0, 0, 0, 0], [0; 4]),
            [1, 1, 1],
            &[0],
            &work,
        )
        .unwrap();
    let mut want = vec![0i32; 16 * 160];
    for r in 0..16 {
        ops::layer_norm(&x[r * 160..][..160], &a, &c, &mut want[r * 160..][..160]);
    }
    assert_eq!(&out[dst as usize..], &want[..], "layer norm");
    assert_eq!(digest(want), "1768d1644e157647");

    // Softmax rows of 64 and 128 scores (each of the n rows holds the same scores).
    let mut probs = Vec::new();
    for n in [64usize, 128] {
        let z: Vec<i32> = (0..n).map(|i| acts[i * 3] % 3000).collect();
        let work: Vec<i32> = z.iter().copied().cycle().take(n * n).collect();
        let out = gpu
            .probe(
                Entry::Softmax,
                args([n as u32, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0], [0; 4]),
                [(n as u32).div_ceil(64), 1, 1],
                exp,
                &work,
            )
            .unwrap();
        let mut p = vec![0u32; n];
        ops::softmax_q15(&z, exp, &mut p);
        let p: Vec<i32> = p.iter().map(|&v| v as i32).collect();
        for row in out.chunks_exact(n) {
            assert_eq!(row, &p[..], "softmax of {n}");
        }
        probs.extend(p);
    }
    assert_eq!(digest(probs), "a4da34d7c26f6a41");

    // SiLU through the table.
    let silu_in: Vec<i32> = acts.iter().map(|&v| v >> 6).collect();
    let len = silu_in.len();
    let work: Vec<i32> = silu_in
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, len))
        .collect();
    let out = gpu
        .probe(
            Entry::ProbeSilu,
            args(
                [len as u32, 0, 0, 0],
                [0, len as u32, 0, 0, 0, 0, 0, 0],
                [0; 4],
            ),
            flat(len),
            silu,
            &work,
        )
        .unwrap();
    let want: Vec<i32> = silu_in.iter().map(|&v| ops::silu(v, silu)).collect();
    assert_eq!(&out[len..], &want[..], "SiLU");
    assert_eq!(digest(want), "16954202afd03573");
}

#[test]
fn linear_layer_and_whole_network_equal_the_cpu() {
    let gpu = gpu();
    let model = model();
    let net = model.sprite_q_net().unwrap();
    let (_, acts) = inputs();
    let uploaded = GpuSpriteQ::upload(&gpu, net).unwrap();

    // Block 0's fc1 over 64 rows, through the two kernels a linear layer is.
    let fc1 = net.block_fc1(0).unwrap();
    let x: Vec<i32> = acts[..64 * 160].iter().map(|&v| v >> 4).collect();
    let want = fc1.forward(gemm::Kernel::Scalar, &x, 64, ops::ACT_MAX);
    let params = Params::of(net);
    let words = 64 * 40u32;
    let (at_words, at_exps, at_out) = (64 * 160, 64 * 160 + words, 64 * 160 + words + 64);
    let work: Vec<i32> = x
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, (words + 64 + 64 * 640) as usize))
        .collect();
    let quantized = gpu
        .probe(
            Entry::QuantizeRows,
            args(
                [64, 160, 1, 0],
                [0, 160, at_words, at_exps, 0, 0, 0, 0],
                [0; 4],
            ),
            [1, 1, 1],
            &params.data,
            &work,
        )
        .unwrap();
    let lin = params.block_fc1(0);
    let out = gpu
        .probe(
            Entry::Linear,
            args(
                [64, 40, 640, 0],
                [
                    at_words, at_exps, lin.w, lin.bias, lin.mult, lin.shift, at_out, 0,
                ],
                [ops::ACT_MAX, 0, 0, 0],
            ),
            [10, 64, 1],
            &params.data,
            &quantized,
        )
        .unwrap();
    assert_eq!(&out[at_out as usize..], &want[..], "block 0 fc1");
    assert_eq!(digest(want), "f5bf8be907b58366");

    // One whole denoiser evaluation (both rows) at t = 500, and a 64×32 one.
    let img: Vec<i32> = acts[..3 * 32 * 32].iter().map(|&v| v >> 3).collect();
    let prompt = net.prompt_features("a glowing green potion");
    let empty = net.prompt_features("");
    let [u, c] = uploaded
        .forward(net, &img, 32, 32, 500, [&empty, &prompt])
        .unwrap();
    let [cu, cc] = net.forward(gemm::Kernel::active(), &img, 32, 32, 500, [&empty, &prompt]);
    assert_eq!(u, cu, "unconditional row");
    assert_eq!(c, cc, "conditional row");
    assert_eq!(digest(u.into_iter().chain(c)), "d6bde1c76724dce7");
    let img: Vec<i32> = acts[..3 * 64 * 32].iter().map(|&v| v >> 5).collect();
    let dusk = net.prompt_features("a desert at dusk with two moons");
    let gpu_rows = uploaded
        .forward(net, &img, 64, 32, 999, [&empty, &dusk])
        .unwrap();
    let cpu_rows = net.forward(gemm::Kernel::active(), &img, 64, 32, 999, [&empty, &dusk]);
    assert_eq!(gpu_rows, cpu_rows, "64×32 at t = 999");
}

#[test]
fn noise_and_pixel_kernels_equal_the_cpu() {
    use crate::sampling::noise_q::{NORMAL_ICDF_Q12, initial_noise, noise_key, to_u8};
    let gpu = gpu();
    // The initial sample of a 64×32 scene, for two keys (with and without a creator).
    let creator: crate::CreatorAddress = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        .parse()
        .unwrap();
    let values = 3 * 64 * 32;
    for key in [noise_key(42, None), noise_key(42, Some(&creator))] {
        let mut work = vec![0i32; 8 + values];
        for (w, &k) in work.iter_mut().zip(&key[..4]) {
            *w = k as i32;
        }
        let out = gpu
            .probe(
                Entry::InitialNoise,
                args([values as u32, 0, 0, 0], [8, 0, 0, 0, 0, 0, 0, 0], [0; 4]),
                flat(values),
                &NORMAL_ICDF_Q12,
                &work,
            )
            .unwrap();
        assert_eq!(&out[8..], &initial_noise(&key, values)[..]);
        if key == noise_key(42, None) {
            // The golden test vectors (tests/golden.rs).
            assert_eq!(
                &out[8..14],
                &[56672, -99264, -35120, -31888, -14080, -35408]
            );
        }
    }

    // Pixels: every clamp edge and pseudo-random samples, three planes of 32×32.
    let (wide, _) = inputs();
    let plane = 32 * 32;
    let mut x: Vec<i32> = wide[..3 * plane].iter().map(|&v| v >> 12).collect();
    x[..8].copy_from_slice(&[-65537, -65536, -65535, -1, 0, 1, 65536, 65537]);
    let work: Vec<i32> = x
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, plane))
        .collect();
    let out = gpu
        .probe(
            Entry::Pixels,
            args(
                [plane as u32, 0, 0, 0],
                [0, 3 * plane as u32, 0, 0, 0, 0, 0, 0],
                [0; 4],
            ),
            flat(plane),
            &[0],
            &work,
        )
        .unwrap();
    for (p, &word) in out[3 * plane..].iter().enumerate() {
        let want = [
            to_u8(x[p]),
            to_u8(x[plane + p]),
            to_u8(x[2 * plane + p]),
            255,
        ];
        assert_eq!(word.to_le_bytes(), want, "pixel {p}");
    }

    // With a palette (a transparent key, a tie between two greys): each pixel takes its
    // nearest entry, alpha included, as the CPU's palette step does.
    let palette: [[u8; 4]; 6] = [
        [255, 0, 255, 0],
        [0, 0, 0, 255],
        [255, 255, 255, 255],
        [128, 128, 128, 255],
        [128, 128, 128, 200],
        [200, 40, 40, 255],
    ];
    let words: Vec<i32> = palette.iter().map(|e| i32::from_le_bytes(*e)).collect();
    let out = gpu
        .probe(
            Entry::Pixels,
            args(
                [plane as u32, palette.len() as u32, 0, 0],
                [0, 3 * plane as u32, 0, 0, 0, 0, 0, 0],
                [0; 4],
            ),
            flat(plane),
            &words,
            &work,
        )
        .unwrap();
    let mut used = std::collections::HashSet::new();
    for (p, &word) in out[3 * plane..].iter().enumerate() {
        let rgb = [to_u8(x[p]), to_u8(x[plane + p]), to_u8(x[2 * plane + p])];
        let want = palette[crate::model::sprite_q::ops::nearest_palette(&palette, rgb)];
        assert_eq!(word.to_le_bytes(), want, "pixel {p}");
        used.insert(want);
    }
    assert!(used.len() >= 4, "the samples reach {} entries", used.len());
    assert!(!used.contains(&palette[4]), "a tie goes to the lower index");
}
