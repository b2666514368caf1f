//! kiln-sprite-q (`kiln-pipeline/2`) on the shipped integer weights: the same PNG bytes with
//! SIMD on and off, on one and two threads and in another process; the creator in the picture;
//! samplers; model files from strangers.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{assert_one_line_error, assert_success, nftgen, path_str};
#[cfg(feature = "gpu")]
use kiln_nftgen::{ArtBackend, Backend, png_io};
use kiln_nftgen::{
    ArtModel, Control, CreatorAddress, GenerateError, GenerationRequest, ModelError, RequestError,
    SchedulerKind,
};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/kiln-sprite-q.safetensors")
}

fn alice() -> CreatorAddress {
    "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        .parse()
        .unwrap()
}

fn bob() -> CreatorAddress {
    "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
        .parse()
        .unwrap()
}

#[test]
fn png_bytes_identical_with_simd_off_one_and_two_threads_and_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let model = ArtModel::load(shipped()).unwrap();
    for (i, (prompt, size, scheduler)) in [
        ("a glowing cyan key", "32x32", "ddim"),
        ("the sea at night in the rain", "64x32", "euler"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut files = Vec::new();
        for (tag, env) in [
            ("default", vec![]),
            ("scalar", vec![("KILN_ART_SIMD", "off")]),
            ("one-thread", vec![("RAYON_NUM_THREADS", "1")]),
            ("two-threads", vec![("RAYON_NUM_THREADS", "2")]),
            (
                "scalar-one-thread",
                vec![("KILN_ART_SIMD", "off"), ("RAYON_NUM_THREADS", "1")],
            ),
        ] {
            let out = dir.path().join(format!("{i}-{tag}.png"));
            let run = nftgen(
                &[
                    "generate",
                    "--prompt",
                    prompt,
                    "--seed",
                    "11",
                    "--steps",
                    "6",
                    "--size",
                    size,
                    "--scheduler",
                    scheduler,
                    "--creator",
                    &alice().to_string(),
                    "--out",
                    path_str(&out),
                ],
                &env,
            );
            assert_success(&run);
            files.push((tag, std::fs::read(&out).unwrap()));
        }
        for (tag, bytes) in &files[1..] {
            assert!(*bytes == files[0].1, "{prompt}: {tag} differs from default");
        }
        // And this process paints the same pixels as the others.
        let png = kiln_nftgen::png_io::read(&dir.path().join(format!("{i}-default.png"))).unwrap();
        assert_eq!(png.record.pipeline, "kiln-pipeline/2");
        let here = model
            .regenerate(&png.record, &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(here.rgba, png.rgba);
    }
}

#[test]
fn the_creator_is_part_of_the_picture() {
    let model = ArtModel::load(shipped()).unwrap();
    let paint = |c: Option<CreatorAddress>| {
        let mut req = GenerationRequest::new("a gold helmet", 5).steps(8);
        req.creator = c;
        model.generate(&req, &mut |_| Control::Continue).unwrap()
    };
    let (a, b, none) = (paint(Some(alice())), paint(Some(bob())), paint(None));
    assert_ne!(a.content_hash, b.content_hash);
    assert_ne!(a.content_hash, none.content_hash);
    assert_ne!(b.content_hash, none.content_hash);
    // Alice's recipe with Bob's address written in (what a copier would mint) paints Bob's
    // picture, not Alice's: the copied attribution does not reproduce her image.
    let mut copied = a.record.clone();
    copied.creator = Some(bob());
    let again = model
        .regenerate(&copied, &mut |_| Control::Continue)
        .unwrap();
    assert_ne!(again.content_hash, a.content_hash);
    assert_eq!(again.content_hash, b.content_hash);
    // The zero address is the same as no creator.
    assert_eq!(
        paint(Some(CreatorAddress([0; 20]))).content_hash,
        none.content_hash
    );
}

/// The GPU backend (WGSL kernels through wgpu; Mesa's lavapipe in CI) paints the CPU's pixels:
/// items and scenes, several seeds and creators, DDIM and Euler. The PNGs differ only in the
/// record's `backend` field, which says where each was painted.
#[test]
#[cfg(feature = "gpu")]
fn the_gpu_paints_the_same_png_bytes_as_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = ArtModel::load(shipped()).unwrap();
    let mut gpu = ArtModel::load(shipped()).unwrap();
    assert_eq!(gpu.select_backend(ArtBackend::Gpu).unwrap(), Backend::Wgpu);
    let cases = [
        GenerationRequest::new("a glowing green potion", 1).creator(alice()),
        GenerationRequest::new("a blue shield", 2)
            .steps(6)
            .creator(bob()),
        GenerationRequest::new("a gold ring", 3)
            .steps(5)
            .scheduler(SchedulerKind::Euler),
        GenerationRequest::new("the sea at night with one moon", 4)
            .size(64, 32)
            .steps(6)
            .creator(alice()),
        GenerationRequest::new("a forest at dawn in fog", 5)
            .size(64, 32)
            .steps(4)
            .guidance(6.0)
            .negative("snow")
            .scheduler(SchedulerKind::Euler),
    ];
    for (i, req) in cases.iter().enumerate() {
        let on_cpu = cpu.generate(req, &mut |_| Control::Continue).unwrap();
        let on_gpu = gpu.generate(req, &mut |_| Control::Continue).unwrap();
        assert_eq!(on_cpu.record.backend, Backend::Cpu);
        assert_eq!(on_gpu.record.backend, Backend::Wgpu);
        assert_eq!(
            on_gpu.content_hash, on_cpu.content_hash,
            "case {i}: {}",
            req.prompt
        );
        assert!(on_gpu.rgba == on_cpu.rgba, "case {i}: pixels differ");
        // The same PNG bytes once the record names the same backend.
        let mut relabelled = on_gpu.clone();
        relabelled.record.backend = Backend::Cpu;
        relabelled.recipe_hash = relabelled.record.recipe_hash();
        let (a, b) = (dir.path().join("cpu.png"), dir.path().join("gpu.png"));
        png_io::write(&a, &on_cpu).unwrap();
        png_io::write(&b, &relabelled).unwrap();
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "case {i}: PNG bytes"
        );
        // Each re-runs on the other backend.
        let back = cpu
            .regenerate(&on_gpu.record, &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(back.content_hash, on_gpu.content_hash);
    }
    // Cancelling between GPU steps stops the run, and the model paints again afterwards.
    let req = GenerationRequest::new("a red axe", 9).steps(6);
    let err = gpu
        .generate(&req, &mut |p| {
            if p.step == 2 {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::Cancelled {
                completed: 2,
                total: 6
            }
        ),
        "{err}"
    );
    let again = gpu.generate(&req, &mut |_| Control::Continue).unwrap();
    let want = cpu.generate(&req, &mut |_| Control::Continue).unwrap();
    assert_eq!(again.content_hash, want.content_hash);
}

/// `nftgen generate --backend gpu|cpu|auto`: the same picture, the record naming the backend;
/// `auto` passes a software rasterizer over for the CPU kernels; an unknown backend is refused.
#[test]
#[cfg(feature = "gpu")]
fn nftgen_generate_takes_a_backend() {
    let dir = tempfile::tempdir().unwrap();
    let run = |backend: &str| {
        let out = dir.path().join(format!("{backend}.png"));
        let o = nftgen(
            &[
                "generate",
                "--prompt",
                "a green bow",
                "--seed",
                "8",
                "--steps",
                "5",
                "--creator",
                "none",
                "--backend",
                backend,
                "--json",
                "--out",
                path_str(&out),
            ],
            &[],
        );
        assert_success(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            v["record"]["backend"].as_str().unwrap().to_string(),
            v["content_hash"].as_str().unwrap().to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (gpu, gpu_hash, gpu_log) = run("gpu");
    let (cpu, cpu_hash, _) = run("cpu");
    assert_eq!((gpu.as_str(), cpu.as_str()), ("wgpu", "cpu"));
    assert_eq!(gpu_hash, cpu_hash);
    assert!(gpu_log.contains("painting on the GPU"), "{gpu_log}");
    let (auto, auto_hash, _) = run("auto");
    assert_eq!(auto_hash, cpu_hash);
    eprintln!("--backend auto chose {auto}");
    let o = nftgen(
        &[
            "generate",
            "--prompt",
            "a green bow",
            "--seed",
            "8",
            "--backend",
            "tpu",
            "--out",
            path_str(&dir.path().join("x.png")),
        ],
        &[],
    );
    // clap's usage error: the reason, then a pointer to --help.
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("unknown backend `tpu` (auto, cpu or gpu)"),
        "{stderr}"
    );
}

/// A GPU that is lost mid-way (here: its device destroyed) gives a typed error, never a panic;
/// the model then paints the same picture on the CPU.
#[test]
#[cfg(feature = "gpu")]
fn a_lost_gpu_is_a_typed_error_and_the_cpu_takes_over() {
    let gpu = kiln_nftgen::gpu::GpuDevice::open_headless().unwrap();
    let mut model = ArtModel::load(shipped()).unwrap();
    model.use_gpu(&gpu).unwrap();
    let req = GenerationRequest::new("a silver key", 11).steps(4);
    let first = model.generate(&req, &mut |_| Control::Continue).unwrap();
    gpu.wgpu_device().destroy();
    let err = model
        .generate(&req, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(matches!(err, GenerateError::Gpu(_)), "{err:?}");
    eprintln!("after the device was destroyed: {err}");
    model.select_backend(ArtBackend::Cpu).unwrap();
    let on_cpu = model.generate(&req, &mut |_| Control::Continue).unwrap();
    assert_eq!(on_cpu.content_hash, first.content_hash);
    assert_eq!(on_cpu.record.backend, Backend::Cpu);
    // A model that is not kiln-sprite-q cannot take the GPU backend.
    let mut f32_model = ArtModel::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/kiln-sprite.safetensors"),
    )
    .unwrap();
    let err = f32_model.select_backend(ArtBackend::Gpu).unwrap_err();
    assert!(err.to_string().contains("kiln-pipeline/2"), "{err}");
}

#[test]
fn samplers_guidance_and_refusals() {
    let model = ArtModel::load(shipped()).unwrap();
    let go = |req: GenerationRequest| model.generate(&req, &mut |_| Control::Continue);
    let base = GenerationRequest::new("a blue shield", 3)
        .steps(6)
        .creator(alice());
    let ddim = go(base.clone()).unwrap();
    // DDIM and Euler are one step on the integer state (RECIPE.md §9.7): same pixels.
    let euler = go(base.clone().scheduler(SchedulerKind::Euler)).unwrap();
    assert_eq!(euler.rgba, ddim.rgba);
    assert_ne!(euler.recipe_hash, ddim.recipe_hash);
    assert!(matches!(
        go(base.clone().scheduler(SchedulerKind::EulerAncestral)),
        Err(GenerateError::Request(RequestError::Unsupported { .. }))
    ));
    for other in [
        base.clone().guidance(1.0),
        base.clone().steps(7),
        base.clone().negative("red"),
        GenerationRequest::new("a blue shield", 4)
            .steps(6)
            .creator(alice()),
    ] {
        assert_ne!(
            go(other.clone()).unwrap().content_hash,
            ddim.content_hash,
            "{other:?}"
        );
    }
    let pixels = &ddim.rgba;
    assert!(
        pixels.chunks(4).any(|p| p[..3] != pixels[..3]),
        "flat image"
    );
    // A pipeline/1 record is refused by the integer model (and named).
    let mut v1 = ddim.record.clone();
    v1.pipeline = kiln_nftgen::PIPELINE.into();
    let err = model
        .regenerate(&v1, &mut |_| Control::Continue)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kiln-pipeline/1") && err.contains("kiln-pipeline/2"),
        "{err}"
    );
}

/// Rewrites one tensor of the shipped file (same dtype and shape) or changes its dtype.
fn tampered(
    dir: &Path,
    name: &str,
    edit: &dyn Fn(&mut Vec<u8>),
    dtype: Option<safetensors::Dtype>,
) -> PathBuf {
    let bytes = std::fs::read(shipped()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    for t in owned.iter_mut().filter(|t| t.0 == name) {
        edit(&mut t.3);
        if let Some(d) = dtype {
            t.1 = d;
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta: Option<HashMap<String, String>> = meta.metadata().clone();
    let path = dir.join(format!("{}.safetensors", name.replace('.', "_")));
    std::fs::write(&path, safetensors::serialize(views, meta).unwrap()).unwrap();
    path
}

/// A tensor to tamper with, how, an optional new dtype, and a word the error must contain.
type Tamper<'a> = (
    &'a str,
    &'a dyn Fn(&mut Vec<u8>),
    Option<safetensors::Dtype>,
    &'a str,
);

#[test]
fn crafted_model_files_are_typed_errors_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [Tamper<'_>; 4] = [
        ("blocks.0.mlp.fc1.weight", &|b| b[3] = 0x80, None, "−128"),
        (
            "blocks.2.attn.qkv.shift",
            &|b| b[..4].copy_from_slice(&7i32.to_le_bytes()),
            None,
            "outside 31..=54",
        ),
        (
            "tables.exp",
            &|b| b[..4].copy_from_slice(&5i32.to_le_bytes()),
            None,
            "tables.exp",
        ),
        (
            "time.table",
            &|_| {},
            Some(safetensors::Dtype::U16),
            "stores it as I16",
        ),
    ];
    for (name, edit, dtype, needle) in cases {
        let path = tampered(dir.path(), name, edit, dtype);
        let err = ArtModel::load(&path).unwrap_err();
        assert!(
            matches!(err, ModelError::BadConfig { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(needle), "{name}: {msg}");
        let out = nftgen(
            &[
                "generate",
                "--prompt",
                "a red sword",
                "--seed",
                "1",
                "--model",
                path_str(&path),
                "--out",
                path_str(&dir.path().join("x.png")),
                "--creator",
                "none",
            ],
            &[],
        );
        assert_one_line_error(&out, name);
        assert!(!dir.path().join("x.png").exists());
    }
}
