//! kiln-sprite-q (`kiln-pipeline/2`) on the shipped integer weights: the same PNG bytes with
//! SIMD on and off, on one and two threads and in another process; the creator in the picture;
//! samplers; model files from strangers.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{assert_one_line_error, assert_success, nftgen, path_str};
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
