//! Golden values that minted tokens depend on. A change that alters any of these would turn
//! every token minted with that pipeline into `not_reproducible`: such a change needs a new
//! pipeline version, never an edit of these values.

use kiln_nftgen::{
    ArtBackend, ArtModel, Control, CreatorAddress, GenerationRequest, SchedulerKind,
};
use sha2::{Digest, Sha256};

/// SHA-256 of the shipped kiln-pipeline/1 weights (`assets/models/kiln-sprite.safetensors`).
const SPRITE_V1_SHA256: &str = "931f9a408c86541b05ff74247161bc74983ba2c89dd8efc3a14f58c4336d6099";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The creator the golden recipes are painted for (anvil's second dev account).
fn creator() -> CreatorAddress {
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        .parse()
        .unwrap()
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn shipped_pipeline_1_weights_are_pinned() {
    let bytes = std::fs::read(repo_file("assets/models/kiln-sprite.safetensors")).unwrap();
    assert_eq!(hex(&Sha256::digest(&bytes)), SPRITE_V1_SHA256);
}

/// The SIMD class that picks candle's f32 matrix kernels, which decide pipeline/1's last bits
/// (`RECIPE.md` §7): pipeline/1 images are pinned per class.
fn candle_kernel_class() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "x86_64-avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "x86_64-avx2";
        }
    }
    "other"
}

/// Pinned pipeline/1 content hashes per kernel class (see `pipeline_1_paints_its_golden_images`).
const PIPELINE_1_GOLDEN: &[(&str, [&str; 3])] = &[(
    "x86_64-avx512",
    [
        "0xa7a5d693d136f8e9ec6b77979b012c62a0950b974f4be11e9fa44b3aa771695c",
        "0xe0374f847f764c43f606b372dbaee2318167b2b40f96267cce3c134afe9e891a",
        "0xbc315758083aa6cea1a9c9c2c52ce59c94e57a2cd6b54cec24e7c840793ae663",
    ],
)];

/// Three kiln-pipeline/1 recipes on the shipped weights (an item with DDIM, a scene with
/// Euler, an item with Euler-ancestral and a creator) and the content hashes they paint.
/// Pipeline/1 is only bit-exact among CPUs whose candle kernels round alike, so the values are
/// pinned per kernel class; on a class with no pinned values the test still checks that the
/// images repeat, and says which values to pin.
#[test]
fn pipeline_1_paints_its_golden_images() {
    let model = ArtModel::load(repo_file("assets/models/kiln-sprite.safetensors")).unwrap();
    let creator = creator();
    let cases = [
        GenerationRequest::new("a glowing green potion", 7),
        GenerationRequest::new("a desert at dusk with two moons", 42)
            .size(64, 32)
            .scheduler(SchedulerKind::Euler)
            .steps(12),
        GenerationRequest::new("a red sword", 3)
            .scheduler(SchedulerKind::EulerAncestral)
            .steps(10)
            .guidance(4.5)
            .creator(creator),
    ];
    let mut got = Vec::new();
    for req in &cases {
        let art = model.generate(req, &mut |_| Control::Continue).unwrap();
        assert_eq!(art.record.pipeline, "kiln-pipeline/1");
        got.push(art.content_hash.to_string());
    }
    let class = candle_kernel_class();
    match PIPELINE_1_GOLDEN.iter().find(|(c, _)| *c == class) {
        Some((_, want)) => assert_eq!(got, want, "pipeline/1 images changed on {class}"),
        None => {
            let again = model
                .generate(&cases[0], &mut |_| Control::Continue)
                .unwrap();
            assert_eq!(again.content_hash.to_string(), got[0]);
            eprintln!("no pipeline/1 golden values for kernel class {class}: pin {got:?}");
        }
    }
}

/// SHA-256 of the shipped kiln-pipeline/2 weights: the default, kiln-sprite-q-v2
/// (`assets/models/kiln-sprite-q.safetensors`: the second data set, quantization-aware, with
/// the palette step); kiln-sprite-q-v1.1 (`kiln-sprite-q-v1.1.safetensors`, the
/// quantization-aware fine-tune of kiln-sprite v1) and kiln-sprite-q-v1
/// (`kiln-sprite-q-v1.safetensors`, the post-training export of kiln-sprite v1), which stay so
/// that their tokens verify.
const SPRITE_Q_SHA256: &str = "81aeb795969542019f767e0e6246082df10599a5384741ba7db0aa8527943285";
const SPRITE_Q_V1_1_SHA256: &str =
    "f1e32637a851f78d128b416dd277b49693561fad157e9088931c9f614ecb95b8";
const SPRITE_Q_V1_SHA256: &str = "f78f586a3741705f5d0001d5cc989d8501e2ba7eb71567ae5be8221a129d0ef1";
/// SHA-256 of the f32 weights each quantization-aware model was exported from (not shipped,
/// recorded in the file's config): v2's, then v1.1's.
const QAT_F32_SHA256: [(&str, &str, &str); 2] = [
    (
        "kiln-sprite-q.safetensors",
        "kiln-sprite-q-v2",
        "4271cc063412675d7308528e45bb63161580781edb9826b984e38afd126e6fc6",
    ),
    (
        "kiln-sprite-q-v1.1.safetensors",
        "kiln-sprite-q-v1.1",
        "f350c4e9cbf25db85600286cd3fb9167d4957edce3cc83653e7d27ed161f9de2",
    ),
];

#[test]
fn shipped_pipeline_2_weights_are_pinned_and_are_exports_of_f32_weights() {
    let sha = |name: &str| {
        let bytes = std::fs::read(repo_file(&format!("assets/models/{name}"))).unwrap();
        assert!(bytes.len() <= 5_000_000, "{name}: {} bytes", bytes.len());
        hex(&Sha256::digest(&bytes))
    };
    assert_eq!(sha("kiln-sprite-q.safetensors"), SPRITE_Q_SHA256);
    assert_eq!(sha("kiln-sprite-q-v1.1.safetensors"), SPRITE_Q_V1_1_SHA256);
    assert_eq!(sha("kiln-sprite-q-v1.safetensors"), SPRITE_Q_V1_SHA256);
    for (file, name, from) in QAT_F32_SHA256 {
        let model = ArtModel::load(repo_file(&format!("assets/models/{file}"))).unwrap();
        let cfg = model.sprite_q_net().unwrap().config();
        assert_eq!(cfg.name, name);
        assert_eq!(cfg.quantized_from.as_deref(), Some(from));
    }
    // v2 carries the 64-colour palette of its data set (its pictures are snapped to it); the
    // models of the first data set carry none.
    let v2 = ArtModel::load(repo_file("assets/models/kiln-sprite-q.safetensors")).unwrap();
    assert_eq!(
        v2.sprite_q_net().unwrap().config().palette.as_deref(),
        Some(&kiln_nftgen::data::palette::PALETTE[..])
    );
    // `nftgen quantize` of the shipped f32 weights writes exactly kiln-sprite-q-v1: the exporter
    // is pinned too.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.safetensors");
    kiln_nftgen::training::quantize::quantize_file(
        &repo_file("assets/models/kiln-sprite.safetensors"),
        &out,
        "kiln-sprite-q-v1",
    )
    .unwrap();
    assert_eq!(
        hex(&Sha256::digest(std::fs::read(&out).unwrap())),
        SPRITE_Q_V1_SHA256
    );
}

/// Three kiln-pipeline/2 recipes (an item with DDIM, a scene with Euler, an item with a
/// negative prompt and a creator) whose content hashes are pinned per shipped integer model.
fn pipeline_2_golden_cases() -> [GenerationRequest; 3] {
    [
        GenerationRequest::new("a glowing green potion", 7),
        GenerationRequest::new("a desert at dusk with two moons", 42)
            .size(64, 32)
            .scheduler(SchedulerKind::Euler)
            .steps(12),
        GenerationRequest::new("a red sword", 3)
            .steps(10)
            .guidance(4.5)
            .negative("blue")
            .creator(creator()),
    ]
}

/// The pinned content hashes of [`pipeline_2_golden_cases`]: (model file, hashes).
const PIPELINE_2_GOLDEN: [(&str, [&str; 3]); 3] = [
    (
        "kiln-sprite-q.safetensors",
        [
            "0x29323d4161f30312230e9077fbae0733f98bc08322d1fdd4f0b7ff2acfe5ba82",
            "0x799bbd73d93d9516862817002db2709d22124c180f6125b6c86cb2304c9fe630",
            "0x97966027f91d7380661c29e98ec099dec3c4d26595c62c5d82be72056217f977",
        ],
    ),
    (
        "kiln-sprite-q-v1.1.safetensors",
        [
            "0xf75c4e95cfae75f296e45d72d79072dd40c6ef479e7ada0dede1c806aac29eca",
            "0x7d99bad16ecbc0ff74df0da1458a90a033e6f003529437f69b1bc09b659a8bdd",
            "0x9c978bf4758c70df289ba679443d73ae9d27b9b90e96efc565ac7a6383c0d7b0",
        ],
    ),
    (
        "kiln-sprite-q-v1.safetensors",
        [
            "0xef42eb668cb8cd3cc5be8f37d6eff4edc5dec86bcd5b3317e1dd1dc3a6bf5a64",
            "0x8157a884030478ed7d60c9c7e6c659537d1ee95f5a59f59b6b3d6e3357a24165",
            "0x72016455e3a8eb4bbadda5c612a25bbb828d3ce96cb56eb465b73b6e01460a5e",
        ],
    ),
];

/// Recipes only the second data set's model paints, with their pinned content hashes: a
/// character sheet (four directions × three frames, 48×64) and a seamless ground tile (16×16).
/// Both go through the palette step.
fn pipeline_2_v2_golden_cases() -> [(GenerationRequest, &'static str); 2] {
    [
        (
            GenerationRequest::new("a blacksmith in orange with black hair", 22)
                .sheet()
                .steps(6),
            "0x0479e7a975a4b8f1f10b5791c6ffa88f6f34adfa86850b7238b2b0317a1e64ba",
        ),
        (
            GenerationRequest::new("a cobblestone tile", 5).tile(),
            "0xe74a2c51bf2dcba876a07229f27cfb9cd30912c434b2aeb4ee36546d0f42b3b1",
        ),
    ]
}

/// Paints [`pipeline_2_v2_golden_cases`] with the default model on `backend` and checks them.
fn check_v2_golden(backend: ArtBackend) {
    let mut model = ArtModel::load(repo_file("assets/models/kiln-sprite-q.safetensors")).unwrap();
    model.select_backend(backend).unwrap();
    let (got, want): (Vec<String>, Vec<&str>) = pipeline_2_v2_golden_cases()
        .iter()
        .map(|(req, want)| {
            let art = model.generate(req, &mut |_| Control::Continue).unwrap();
            // Every pixel is a palette entry.
            for px in art.rgba.chunks_exact(4) {
                assert!(
                    kiln_nftgen::data::palette::PALETTE.contains(&[px[0], px[1], px[2], px[3]])
                );
            }
            (art.content_hash.to_string(), *want)
        })
        .unzip();
    assert_eq!(got, want, "{backend:?}");
}

/// Paints the golden cases with `file` on `backend` and returns their content hashes.
fn paint_golden(file: &str, backend: ArtBackend) -> Vec<String> {
    let mut model = ArtModel::load(repo_file(&format!("assets/models/{file}"))).unwrap();
    model.select_backend(backend).unwrap();
    pipeline_2_golden_cases()
        .iter()
        .map(|req| {
            let art = model.generate(req, &mut |_| Control::Continue).unwrap();
            assert_eq!(art.record.pipeline, "kiln-pipeline/2");
            art.content_hash.to_string()
        })
        .collect()
}

/// The golden recipes paint their pinned content hashes on this machine's CPU — the same on
/// every machine, so every machine that runs the tests checks them.
#[test]
fn pipeline_2_paints_its_golden_images_on_every_machine() {
    for (file, want) in PIPELINE_2_GOLDEN {
        assert_eq!(
            paint_golden(file, ArtBackend::Cpu),
            want,
            "{file} on the CPU"
        );
    }
    check_v2_golden(ArtBackend::Cpu);
}

/// The same golden images on the GPU backend (WGSL kernels through wgpu; Mesa's lavapipe here).
#[test]
#[cfg(feature = "gpu")]
fn pipeline_2_paints_its_golden_images_on_the_gpu() {
    for (file, want) in PIPELINE_2_GOLDEN {
        assert_eq!(
            paint_golden(file, ArtBackend::Gpu),
            want,
            "{file} on the GPU"
        );
    }
    check_v2_golden(ArtBackend::Gpu);
}

/// The first values of the integer noise stream (RECIPE.md §9.2): test vectors for other
/// implementations.
#[test]
fn integer_noise_test_vectors() {
    use kiln_nftgen::sampling::noise_q::{initial_noise, noise_key, uniform};
    let key = noise_key(42, None);
    let creator = creator();
    assert_eq!(
        key,
        [
            3684918353, 2936771759, 1400648490, 3117870434, 1387544821, 3578899027, 3139792249,
            1781687570
        ]
    );
    assert_eq!(uniform(&key, 0, 0), 3463406912);
    assert_eq!(
        initial_noise(&key, 6),
        [56672, -99264, -35120, -31888, -14080, -35408]
    );
    assert_eq!(
        initial_noise(&noise_key(42, Some(&creator)), 6),
        [12624, 102560, -38000, 9584, 9712, -13952]
    );
}

/// Digest of i32 values (little endian) for pinning kernel outputs.
fn digest(values: impl IntoIterator<Item = i32>) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    hex(&h.finalize()[..8])
}

/// Every integer kernel on fixed inputs, with every dot-product kernel this CPU has (scalar,
/// AVX2, AVX-512 VNNI): the golden vectors a GPU or another implementation must reproduce.
#[test]
fn integer_kernels_match_their_golden_vectors() {
    use kiln_nftgen::model::sprite_q::{gemm, ops};
    // kiln-sprite-q-v1: its vectors stay fixed whatever model becomes the default.
    let model = ArtModel::load(repo_file("assets/models/kiln-sprite-q-v1.safetensors")).unwrap();
    let net = model.sprite_q_net().unwrap();
    let (exp, silu) = net.tables();
    let mut state = 0x2545_f491u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let wide: Vec<i32> = (0..16384).map(|_| next() as i32 >> (next() % 24)).collect();
    let mut out = Vec::new();
    // mul_shift over products, shifts 0..=62.
    out.push(digest((0..4096).map(|i| {
        ops::mul_shift(wide[i], wide[(i * 7 + 3) % 4096], (i % 63) as u32)
    })));
    // Row quantization.
    let mut q = vec![0i8; 160];
    let mut rows = Vec::new();
    for r in 0..16 {
        let e = ops::quantize_row_i8(&wide[r * 160..][..160], &mut q);
        rows.push(e);
        rows.extend(q.iter().map(|&v| v as i32));
    }
    out.push(digest(rows));
    // Layer norm with a modulation.
    let acts: Vec<i32> = wide
        .iter()
        .map(|&v| v.clamp(-ops::ACT_MAX, ops::ACT_MAX) >> 4)
        .collect();
    let a: Vec<i32> = (0..160).map(|i| 4096 + acts[i] % 2000).collect();
    let c: Vec<i32> = (0..160).map(|i| acts[160 + i] % 9000).collect();
    let mut ln = vec![0i32; 160];
    let mut lns = Vec::new();
    for r in 0..16 {
        ops::layer_norm(&acts[r * 160..][..160], &a, &c, &mut ln);
        lns.extend_from_slice(&ln);
    }
    out.push(digest(lns));
    // Softmax rows of 64 and 128 scores.
    let mut probs = Vec::new();
    for n in [64usize, 128] {
        let z: Vec<i32> = (0..n).map(|i| acts[i * 3] % 3000).collect();
        let mut p = vec![0u32; n];
        ops::softmax_q15(&z, exp, &mut p);
        for k in gemm::Kernel::available() {
            let mut pk = vec![0u32; n];
            ops::softmax_q15_with(k, &z, exp, &mut pk);
            assert_eq!(pk, p, "{k:?} softmax");
        }
        probs.extend(p.iter().map(|&v| v as i32));
    }
    out.push(digest(probs));
    let silu_in: Vec<i32> = acts.iter().map(|&v| v >> 6).collect();
    out.push(digest(silu_in.iter().map(|&v| ops::silu(v, silu))));
    for k in gemm::Kernel::available() {
        let mut sk = silu_in.clone();
        ops::silu_in_place(k, &mut sk, silu);
        assert_eq!(digest(sk), out[4], "{k:?} SiLU");
    }
    // A linear layer of the shipped model, with each dot-product kernel.
    let fc1 = net.block_fc1(0).unwrap();
    let x: Vec<i32> = acts[..64 * 160].iter().map(|&v| v >> 4).collect();
    let by_kernel: Vec<String> = gemm::Kernel::available()
        .into_iter()
        .map(|k| digest(fc1.forward(k, &x, 64, ops::ACT_MAX)))
        .collect();
    assert!(
        by_kernel.iter().all(|d| *d == by_kernel[0]),
        "SIMD and scalar differ: {by_kernel:?}"
    );
    out.push(by_kernel[0].clone());
    // One whole denoiser evaluation (both rows) at t = 500.
    let img: Vec<i32> = acts[..3 * 32 * 32].iter().map(|&v| v >> 3).collect();
    let prompt = net.prompt_features("a glowing green potion");
    let empty = net.prompt_features("");
    for k in gemm::Kernel::available() {
        let [u, c] = net.forward(k, &img, 32, 32, 500, [&empty, &prompt]);
        let d = digest(u.into_iter().chain(c));
        if out.len() == 6 {
            out.push(d);
        } else {
            assert_eq!(out[6], d, "SIMD and scalar forward passes differ");
        }
    }
    assert_eq!(
        out,
        [
            "630a433844995834", // mul_shift
            "b41bb5015b523848", // row quantization
            "1768d1644e157647", // layer norm + modulation
            "a4da34d7c26f6a41", // softmax
            "16954202afd03573", // SiLU table
            "f5bf8be907b58366", // linear layer (block 0 fc1)
            "d6bde1c76724dce7", // one denoiser evaluation
        ]
    );
}
