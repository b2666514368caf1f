//! The Stable Diffusion loader and pipeline on a tiny random checkpoint written in the real
//! diffusers layout and tensor names.

mod common;

use common::*;
use kiln_nftgen::{ArtModel, Control, GenerationRequest, ModelError, ModelFamily, sd};

#[test]
fn tiny_checkpoint_generates_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tiny-sd");
    sd::write_tiny_checkpoint(&ckpt).unwrap();
    let model = ArtModel::load(&ckpt).unwrap();
    assert_eq!(model.family(), ModelFamily::StableDiffusion);
    let req = GenerationRequest::new("a red potion", 11)
        .steps(3)
        .size(32, 32);
    let a = model.generate(&req, &mut |_| Control::Continue).unwrap();
    let b = model
        .regenerate(&a.record, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(a.rgba, b.rgba);
    assert!(
        a.rgba.chunks(4).any(|p| p[..3] != a.rgba[..3]),
        "flat image"
    );
    let c = model
        .generate(
            &GenerationRequest::new("a red potion", 12)
                .steps(3)
                .size(32, 32),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_ne!(a.content_hash, c.content_hash);
    assert!(model.check_size(30, 32).is_err());

    // Separate processes with 1 and 2 threads write the same PNG bytes as this process.
    let mut files = vec![kiln_nftgen::png_io::encode(&a).unwrap()];
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("sd-{threads}.png"));
        let run = nftgen(
            &[
                "generate",
                "--model",
                path_str(&ckpt),
                "--prompt",
                "a red potion",
                "--seed",
                "11",
                "--steps",
                "3",
                "--size",
                "32x32",
                "--creator",
                "none",
                "--out",
                path_str(&out),
            ],
            &[("RAYON_NUM_THREADS", threads)],
        );
        assert_success(&run);
        files.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(files[0], files[1]);
    assert_eq!(files[1], files[2]);
}

#[test]
fn broken_checkpoints_name_the_file_or_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tiny-sd");
    sd::write_tiny_checkpoint(&ckpt).unwrap();
    let unet = ckpt.join("unet/diffusion_pytorch_model.safetensors");
    let original = candle_core::safetensors::load(&unet, &candle_core::Device::Cpu).unwrap();

    let mut missing = original.clone();
    let victim = "down_blocks.0.attentions.0.proj_in.weight";
    assert!(missing.remove(victim).is_some(), "tensor name changed");
    candle_core::safetensors::save(&missing, &unet).unwrap();
    match ArtModel::load(&ckpt).unwrap_err() {
        ModelError::MissingTensor { tensor, path } => {
            assert_eq!(tensor, victim);
            assert_eq!(path, unet);
        }
        other => panic!("{other}"),
    }

    let mut wrong = original.clone();
    wrong.insert(
        "conv_in.weight".into(),
        candle_core::Tensor::zeros(
            (32, 3, 3, 3),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap(),
    );
    candle_core::safetensors::save(&wrong, &unet).unwrap();
    match ArtModel::load(&ckpt).unwrap_err() {
        ModelError::TensorShape {
            tensor,
            expected,
            actual,
            ..
        } => {
            assert_eq!(tensor, "conv_in.weight");
            assert_eq!((expected, actual), (vec![32, 4, 3, 3], vec![32, 3, 3, 3]));
        }
        other => panic!("{other}"),
    }
    candle_core::safetensors::save(&original, &unet).unwrap();
    assert!(ArtModel::load(&ckpt).is_ok());

    let vocab = ckpt.join("tokenizer/vocab.json");
    std::fs::rename(&vocab, dir.path().join("v.json")).unwrap();
    match ArtModel::load(&ckpt).unwrap_err() {
        ModelError::MissingFile { path } => assert_eq!(path, vocab),
        other => panic!("{other}"),
    }
    std::fs::rename(dir.path().join("v.json"), &vocab).unwrap();

    let cfg = ckpt.join("unet/config.json");
    std::fs::write(
        &cfg,
        r#"{"block_out_channels": "wide", "cross_attention_dim": 32}"#,
    )
    .unwrap();
    let err = ArtModel::load(&ckpt).unwrap_err();
    assert!(
        matches!(err, ModelError::BadConfig { .. })
            && err.to_string().contains("block_out_channels"),
        "{err}"
    );

    // The CLI reports it in one line.
    let out = dir.path().join("x.png");
    assert_one_line_error(
        &nftgen(
            &[
                "generate",
                "--model",
                path_str(&ckpt),
                "--prompt",
                "x",
                "--seed",
                "1",
                "--out",
                path_str(&out),
            ],
            &[],
        ),
        "block_out_channels",
    );
    assert!(!out.exists());
}
