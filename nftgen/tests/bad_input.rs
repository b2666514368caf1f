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

/// A "PNG" that is a device or a FIFO has no size to check: it is refused as not a regular file
/// at once, instead of being read without end (`/dev/zero`) or blocking (a FIFO with no writer).
#[test]
fn non_regular_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [
        std::path::Path::new("/dev/zero"),
        dir.path(),
        fifo.as_path(),
    ] {
        let started = std::time::Instant::now();
        let err = kiln_nftgen::png_io::read(path).unwrap_err().to_string();
        assert!(
            err.contains("not a regular file"),
            "{}: {err}",
            path.display()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// A deterministic xorshift stream for the mutation fuzzers below (no seed from the clock: a
/// failure replays).
fn xorshift(mut state: u64) -> impl FnMut() -> usize {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    }
}

/// `bytes` mutated one of several ways: cut short, lengthened, a byte replaced, a bit flipped,
/// a run of bytes set to 0xff (huge length fields) or duplicated.
fn mutate(bytes: &[u8], next: &mut impl FnMut() -> usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + next() % 3 {
        if b.is_empty() {
            b.push(next() as u8);
        }
        let at = next() % b.len();
        match next() % 6 {
            0 => b.truncate(at),
            1 => {
                let extra: Vec<u8> = (0..1 + next() % 16).map(|_| next() as u8).collect();
                b.splice(at..at, extra);
            }
            2 => b[at] = next() as u8,
            3 => b[at] ^= 1 << (next() % 8),
            4 => {
                let end = (at + 4).min(b.len());
                b[at..end].fill(0xff);
            }
            _ => {
                let end = (at + 1 + next() % 32).min(b.len());
                let run = b[at..end].to_vec();
                b.splice(at..at, run);
            }
        }
    }
    b
}

/// The shipped model and the request whose recipe and picture the fuzzers below mutate.
fn fuzz_seed(steps: u32) -> (ArtModel, GenerationRequest) {
    let model = ArtModel::load(kiln_nftgen::default_model_path()).unwrap();
    let req = GenerationRequest::new("a golden crown", 3)
        .steps(steps)
        .creator(kiln_nftgen::CreatorAddress([0x11; 20]));
    (model, req)
}

/// Canonical recipe bytes from strangers (a PNG, a chain event), fuzzed: thousands of mutations
/// of a real recipe decode to a typed error or to a record — never a panic — and every record
/// that decodes encodes back to exactly the bytes it came from (the token id is the keccak256 of
/// those bytes: two spellings of one recipe would be two tokens).
#[test]
fn canonical_recipe_bytes_fuzzed_decode_to_errors_or_the_same_bytes() {
    let (model, req) = fuzz_seed(8);
    let base = model.record_for(&req).unwrap().canonical_bytes();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let started = std::time::Instant::now();
    let (mut ok, mut refused) = (0, 0);
    for case in 0..100_000 {
        let bytes = mutate(&base, &mut next);
        match kiln_nftgen::GenerationRecord::from_canonical_bytes(&bytes) {
            Ok(record) => {
                ok += 1;
                assert_eq!(record.canonical_bytes(), bytes, "case {case}");
            }
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    eprintln!("{ok} decoded, {refused} refused in {:?}", started.elapsed());
    assert!(ok > 100 && refused > 1000, "{ok} / {refused}");
}

/// PNG files from strangers, fuzzed: mutations of a real Kiln PNG (its chunks, lengths, CRCs,
/// the embedded record) decode to a typed error or a picture — never a panic — each within a
/// bounded time and allocation (the header's size is checked before pixels are allocated).
#[test]
fn kiln_pngs_fuzzed_decode_to_errors_never_panics() {
    let (model, req) = fuzz_seed(4);
    let art = model.generate(&req, &mut |_| Control::Continue).unwrap();
    let png = kiln_nftgen::png_io::encode(&art).unwrap();
    assert_eq!(
        kiln_nftgen::png_io::decode(&png).unwrap().record,
        art.record
    );
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let (mut ok, mut refused) = (0, 0);
    let started = std::time::Instant::now();
    for case in 0..20_000 {
        let bytes = mutate(&png, &mut next);
        let one = std::time::Instant::now();
        match kiln_nftgen::png_io::decode(&bytes) {
            Ok(p) => {
                ok += 1;
                assert_eq!(
                    p.rgba.len(),
                    4 * (p.width * p.height) as usize,
                    "case {case}"
                );
            }
            Err(_) => refused += 1,
        }
        assert!(
            one.elapsed() < std::time::Duration::from_secs(2),
            "case {case} took {:?}",
            one.elapsed()
        );
    }
    eprintln!("{ok} decoded, {refused} refused in {:?}", started.elapsed());
    assert!(refused > 100, "{ok} / {refused}");
}

/// Errors quote paths and text from files and the chain: the CLI shows their control
/// characters escaped, so a crafted name cannot drive the terminal.
#[test]
fn the_cli_error_line_shows_control_characters_escaped() {
    let out = nftgen(&["inspect", "/nonexistent/x\x1b[2K\rauthentic.png"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(err.contains("\\u{1b}"), "{err:?}");
}
