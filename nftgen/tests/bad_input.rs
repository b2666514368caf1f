//! Bad input gives a typed error (library) or one line and a non-zero exit (CLI), and never
//! leaves a PNG behind.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::*;
use kiln_nftgen::sprite::{self, SpriteConfig};
use kiln_nftgen::{ArtModel, Control, GenerateError, GenerationRequest, ModelError, RequestError};

#[test]
fn cli_rejects_bad_requests_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_sprite(dir.path(), "m.safetensors", 1);
    let out = dir.path().join("out.png");
    let m = path_str(&model);
    let o = path_str(&out);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--prompt", "  ", "--seed", "1"], "prompt is empty"),
        (
            vec!["--prompt", "x", "--seed", "1", "--steps", "0"],
            "steps must be between 1 and 1000",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--steps", "100000"],
            "steps must be between",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--size", "0x0"],
            "zero side",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--size", "48x48"],
            "supported: 32x32, 64x32, 64x64",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--size", "big"],
            "not WIDTHxHEIGHT",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--guidance", "NaN"],
            "guidance must be",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--scheduler", "plms"],
            "unknown scheduler",
        ),
        (
            vec!["--prompt", "x", "--seed", "1", "--creator", "0x12"],
            "creator address",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["generate", "--model", m, "--out", o];
        full.extend(args);
        assert_one_line_error(&nftgen(&full, &[]), needle);
        assert!(!out.exists(), "{full:?} left a file");
    }
    let long = "x".repeat(1001);
    assert_one_line_error(
        &nftgen(
            &[
                "generate", "--model", m, "--out", o, "--prompt", &long, "--seed", "1",
            ],
            &[],
        ),
        "at most 1000",
    );
    let missing_dir = dir.path().join("nope/out.png");
    assert_one_line_error(
        &nftgen(
            &[
                "generate",
                "--model",
                m,
                "--out",
                path_str(&missing_dir),
                "--prompt",
                "x",
                "--seed",
                "1",
            ],
            &[],
        ),
        "does not exist",
    );
    let no_model = dir.path().join("absent.safetensors");
    assert_one_line_error(
        &nftgen(
            &[
                "generate",
                "--model",
                path_str(&no_model),
                "--out",
                o,
                "--prompt",
                "x",
                "--seed",
                "1",
            ],
            &[],
        ),
        "model not found",
    );
    assert!(!out.exists());
    // Nothing else was left in the directory (no temporary files).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn weights(seed: u64) -> (SpriteConfig, HashMap<String, Tensor>) {
    let cfg = SpriteConfig::tiny();
    let w = sprite::random_weights(&cfg, seed).unwrap();
    (cfg, w)
}

#[test]
fn broken_weights_are_typed_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    std::fs::write(
        p("junk.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00garbage",
    )
    .unwrap();
    assert!(matches!(
        ArtModel::load(p("junk.safetensors")),
        Err(ModelError::NotSafetensors { .. })
    ));

    let good = tiny_sprite(dir.path(), "good.safetensors", 1);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = ArtModel::load(p("cut.safetensors")).unwrap_err();
    assert!(matches!(err, ModelError::NotSafetensors { .. }), "{err}");

    let (cfg, w) = weights(1);
    candle_core::safetensors::save(&w, p("noconfig.safetensors")).unwrap();
    let err = ArtModel::load(p("noconfig.safetensors")).unwrap_err();
    assert!(err.to_string().contains("not a kiln-sprite file"), "{err}");

    let mut missing = w.clone();
    missing.remove("blocks.1.attn.qkv.weight");
    sprite::save(&p("missing.safetensors"), &cfg, &missing).unwrap();
    match ArtModel::load(p("missing.safetensors")).unwrap_err() {
        ModelError::MissingTensor { tensor, .. } => assert_eq!(tensor, "blocks.1.attn.qkv.weight"),
        other => panic!("{other}"),
    }

    let mut wrong = w.clone();
    wrong.insert(
        "patch_out.weight".into(),
        Tensor::zeros((5, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    sprite::save(&p("shape.safetensors"), &cfg, &wrong).unwrap();
    match ArtModel::load(p("shape.safetensors")).unwrap_err() {
        ModelError::TensorShape {
            tensor,
            expected,
            actual,
            ..
        } => {
            assert_eq!(tensor, "patch_out.weight");
            assert_eq!((expected, actual), (vec![48, 64], vec![5, 64]));
        }
        other => panic!("{other}"),
    }

    let mut bad_cfg = cfg.clone();
    bad_cfg.heads = 5;
    sprite::save(&p("badcfg.safetensors"), &bad_cfg, &w).unwrap();
    let err = ArtModel::load(p("badcfg.safetensors")).unwrap_err();
    assert!(
        matches!(err, ModelError::BadConfig { .. }) && err.to_string().contains("heads"),
        "{err}"
    );

    // NaN weights load (shapes are right) but generation refuses to make an image.
    let mut nan = w.clone();
    nan.insert(
        "patch_out.bias".into(),
        Tensor::from_vec(vec![f32::NAN; 48], 48, &Device::Cpu).unwrap(),
    );
    sprite::save(&p("nan.safetensors"), &cfg, &nan).unwrap();
    let model = ArtModel::load(p("nan.safetensors")).unwrap();
    let err = model
        .generate(&GenerationRequest::new("a gem", 1).steps(2), &mut |_| {
            Control::Continue
        })
        .unwrap_err();
    assert!(matches!(err, GenerateError::NonFinite), "{err}");
    let out = p("nan.png");
    assert_one_line_error(
        &nftgen(
            &[
                "generate",
                "--model",
                path_str(&p("nan.safetensors")),
                "--out",
                path_str(&out),
                "--prompt",
                "x",
                "--seed",
                "1",
                "--steps",
                "2",
            ],
            &[],
        ),
        "non-finite",
    );
    assert!(!out.exists());

    // Re-running a record on other weights is refused.
    let other = ArtModel::load(&good).unwrap();
    let art = other
        .generate(&GenerationRequest::new("a gem", 1).steps(2), &mut |_| {
            Control::Continue
        })
        .unwrap();
    let err = model
        .regenerate(&art.record, &mut |_| Control::Continue)
        .unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::Request(RequestError::ModelMismatch { .. })
        ),
        "{err}"
    );
}

/// A PNG chunk: length, type, data, CRC-32 (ISO 3309, as PNG uses it).
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in kind.iter().chain(data) {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

/// Files from strangers: a ~60-byte PNG whose header declares 4096 × 2147483647 pixels is
/// refused before anything is allocated for it (the decoder used to allocate from the header and
/// abort the process); a PNG with two `kiln` records is refused (the last used to win).
#[test]
fn crafted_pngs_are_refused_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ihdr = 4096u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&2_147_483_647u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.extend(chunk(b"IHDR", &ihdr));
    // A few bytes of zlib data: a stored block holding one filter byte.
    bomb.extend(chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xff, 0x00],
    ));
    bomb.extend(chunk(b"IEND", &[]));
    assert!(bomb.len() < 100);
    let refused = kiln_nftgen::png_io::decode(&bomb);
    assert!(
        matches!(refused, Err(kiln_nftgen::PngError::TooLarge(_))),
        "{refused:?}"
    );
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, &bomb).unwrap();
    assert_one_line_error(
        &nftgen(&["inspect", path_str(&path)], &[]),
        "declares 4096×2147483647 pixels",
    );

    // Two records in one file: a genuine Kiln PNG with a second `kiln` chunk spliced in
    // before its image data.
    let model = ArtModel::load(tiny_sprite(dir.path(), "m.safetensors", 1)).unwrap();
    let art = model
        .generate(
            &GenerationRequest::new("a red sword", 1).steps(2),
            &mut |_| Control::Continue,
        )
        .unwrap();
    let good = kiln_nftgen::png_io::encode(&art).unwrap();
    assert!(kiln_nftgen::png_io::decode(&good).is_ok());
    let idat = good.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
    let mut other = art.record.clone();
    other.prompt = "a blue sword".into();
    let mut itxt = b"kiln\0\0\0\0\0".to_vec();
    itxt.extend_from_slice(other.canonical_json().as_bytes());
    let mut twice = good[..idat].to_vec();
    twice.extend(chunk(b"iTXt", &itxt));
    twice.extend_from_slice(&good[idat..]);
    assert!(matches!(
        kiln_nftgen::png_io::decode(&twice),
        Err(kiln_nftgen::PngError::Duplicate { count: 2, .. })
    ));
    let path = dir.path().join("twice.png");
    std::fs::write(&path, &twice).unwrap();
    assert_one_line_error(
        &nftgen(&["inspect", path_str(&path)], &[]),
        "2 `kiln` chunks",
    );
}

/// A prompt is anyone's text: escape sequences in it are printed escaped, so a crafted recipe
/// cannot rewrite the terminal (e.g. erase a line and print "authentic" over it).
#[test]
fn inspect_prints_strangers_text_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let model = ArtModel::load(tiny_sprite(dir.path(), "m.safetensors", 1)).unwrap();
    let art = model
        .generate(
            &GenerationRequest::new("a red sword\x1b[2K\r\x1b[32mauthentic\x07", 1).steps(2),
            &mut |_| Control::Continue,
        )
        .unwrap();
    let path = dir.path().join("art.png");
    kiln_nftgen::png_io::write(&path, &art).unwrap();
    let out = nftgen(&["inspect", path_str(&path)], &[]);
    assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\x07'));
    assert!(
        text.contains(r"a red sword\u{1b}[2K\u{d}\u{1b}[32mauthentic\u{7}"),
        "{text}"
    );
}
