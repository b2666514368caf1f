//! Training is seeded and resumable: a run split across two sittings, or run on 1 or 2 threads,
//! writes the same weights as one uninterrupted run; the result loads and paints.

mod common;

use common::*;
use kiln_nftgen::{ArtModel, Control, GenerationRequest};

/// Runs `nftgen train --out <dir>/<name> --preset tiny --warmup 1 <extra>` and returns the
/// model file it wrote.
fn train_tiny(dir: &std::path::Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--out",
        path_str(&out),
        "--preset",
        "tiny",
        "--warmup",
        "1",
    ];
    args.extend_from_slice(extra);
    assert_success(&nftgen(&args, &[]));
    out.join("kiln-sprite.safetensors")
}

#[test]
fn split_and_threaded_runs_give_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, steps: &str, threads: &str| {
        let out = dir.path().join(name);
        let r = nftgen(
            &[
                "train",
                "--out",
                path_str(&out),
                "--steps",
                steps,
                "--preset",
                "tiny",
                "--batch",
                "4",
                "--ema-start",
                "2",
            ],
            &[("RAYON_NUM_THREADS", threads)],
        );
        assert_success(&r);
        out.join("kiln-sprite.safetensors")
    };
    // The moving average starts at step 2, before the split at step 3, so it must survive the
    // checkpoint too.
    let whole = run("whole", "6", "2");
    run("split", "3", "2");
    let split = run("split", "6", "1");
    let one = run("one-thread", "6", "1");
    let bytes = std::fs::read(&whole).unwrap();
    assert_eq!(bytes, std::fs::read(&split).unwrap(), "resumed run differs");
    assert_eq!(bytes, std::fs::read(&one).unwrap(), "1-thread run differs");
    let csv = std::fs::read_to_string(dir.path().join("split/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    // The model file holds the moving average, not the last weights.
    let ckpt = candle_core::safetensors::load(
        dir.path().join("whole/checkpoint.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let exported = candle_core::safetensors::load(&whole, &candle_core::Device::Cpu).unwrap();
    let name = "blocks.0.mlp.fc1.weight";
    let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&exported[name]), flat(&ckpt[&format!("ema.{name}")]));
    assert_ne!(flat(&exported[name]), flat(&ckpt[name]));
    let model = ArtModel::load(&whole).unwrap();
    assert!(model.check_size(64, 32).is_ok() && model.check_size(64, 64).is_err());
    let art = model
        .generate(
            &GenerationRequest::new("a glowing green potion", 1).steps(3),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!(art.record.model.id, "kiln-sprite-tiny-trained");
}

#[test]
fn quantization_aware_fine_tuning_starts_from_a_model_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let mut args = vec!["--batch", "4", "--ema-start", "2"];
        args.extend_from_slice(extra);
        train_tiny(dir.path(), name, &args)
    };
    let base = train("base", &["--steps", "1"]);
    let from = path_str(&base).to_string();
    let whole = train("whole", &["--steps", "4", "--from", &from, "--qat"]);
    train("split", &["--steps", "2", "--from", &from, "--qat"]);
    // The second sitting resumes the checkpoint: quantization-aware training was stored there.
    let split = train("split", &["--steps", "4"]);
    let plain = train("plain", &["--steps", "4", "--from", &from]);
    let bytes = std::fs::read(&whole).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(&split).unwrap(),
        "resumed QAT run differs"
    );
    assert_ne!(
        bytes,
        std::fs::read(&plain).unwrap(),
        "fake quantization changed nothing"
    );
    assert_ne!(bytes, std::fs::read(&base).unwrap(), "nothing was trained");
    // The fine-tuned file exports to the integer model like any kiln-sprite.
    let q = dir.path().join("q.safetensors");
    let r = nftgen(
        &[
            "quantize",
            "--from",
            path_str(&whole),
            "--out",
            path_str(&q),
        ],
        &[],
    );
    assert_success(&r);
    let art = ArtModel::load(&q)
        .unwrap()
        .generate(
            &GenerationRequest::new("a glowing green potion", 1).steps(2),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!(art.record.pipeline, "kiln-pipeline/2");
}

/// A v1 model grows into the second data set: the new words get rows, training visits every
/// group (a six-step cycle: items and props, sheets, tiles, scenes), and the result paints a
/// character sheet and a tile at their sizes and quantizes like any kiln-sprite.
#[test]
fn a_v1_model_grows_into_the_second_data_set_and_paints_sheets_and_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let mut args = vec!["--batch", "2"];
        args.extend_from_slice(extra);
        train_tiny(dir.path(), name, &args)
    };
    let base = train("base", &["--steps", "1"]);
    let v2 = train(
        "v2",
        &[
            "--steps",
            "6",
            "--from",
            path_str(&base),
            "--data-set",
            "v2",
        ],
    );
    let model = ArtModel::load(&v2).unwrap();
    for (w, h) in [(48, 64), (16, 16), (32, 32), (64, 32)] {
        assert!(model.check_size(w, h).is_ok(), "{w}x{h}");
    }
    let sheet = model
        .generate(
            &GenerationRequest::new("a blacksmith in red with brown hair", 1)
                .size(48, 64)
                .steps(2),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!((sheet.width, sheet.height), (48, 64));
    let csv = std::fs::read_to_string(dir.path().join("v2/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    // `--only GROUP` fine-tunes on one kind of picture (of the second data set only).
    let tiles = train(
        "tiles",
        &[
            "--steps",
            "2",
            "--from",
            path_str(&v2),
            "--data-set",
            "v2",
            "--only",
            "tile",
        ],
    );
    assert!(tiles.is_file());
    let out_dir = dir.path().join("no-only");
    let refused = nftgen(
        &["train", "--out", path_str(&out_dir), "--only", "sheet"],
        &[],
    );
    assert_one_line_error(&refused, "--only is for --data-set v2");
    let q = dir.path().join("q.safetensors");
    assert_success(&nftgen(
        &["quantize", "--from", path_str(&v2), "--out", path_str(&q)],
        &[],
    ));
    // `nftgen generate --sheet` writes the sheet and its atlas layout, `--tile` the tile and a
    // tiled preview; a model without those sizes is refused with what it cannot paint.
    let sheet_png = dir.path().join("guard.png");
    let args = |out: &std::path::Path, kind: &'static str, model: &str| {
        let p = path_str(out).to_string();
        let m = model.to_string();
        move || {
            nftgen(
                &[
                    "generate",
                    "--prompt",
                    "a guard in blue with black hair",
                    "--seed",
                    "3",
                    "--steps",
                    "2",
                    "--creator",
                    "none",
                    "--backend",
                    "cpu",
                    kind,
                    "--out",
                    &p,
                    "--model",
                    &m,
                ],
                &[],
            )
        }
    };
    assert_success(&args(&sheet_png, "--sheet", path_str(&q))());
    let atlas: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("guard.png.atlas.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            atlas["frame"].as_u64(),
            atlas["columns"].as_u64(),
            atlas["rows"].as_u64()
        ),
        (Some(16), Some(3), Some(4))
    );
    assert_eq!(atlas["directions"][3], "up");
    let painted = kiln_nftgen::png_io::read(&sheet_png).unwrap();
    assert_eq!((painted.width, painted.height), (48, 64));
    assert_success(&args(&dir.path().join("t.png"), "--tile", path_str(&q))());
    assert!(dir.path().join("t.png.tiled.png").is_file());
    // A model of the first data set (kiln-sprite-q-v1.1) paints no sheets.
    let v1 = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/models/kiln-sprite-q-v1.1.safetensors");
    let refused = args(&dir.path().join("no.png"), "--sheet", path_str(&v1))();
    assert_one_line_error(&refused, "does not paint character sheets");
    assert!(!dir.path().join("no.png").exists());

    // The integer model carries Kiln's palette: every pixel is one of its colours, on the CPU
    // and on the GPU alike.
    let mut q = ArtModel::load(&q).unwrap();
    let request = GenerationRequest::new("a grass tile", 1)
        .size(16, 16)
        .steps(2);
    let tile = q.generate(&request, &mut |_| Control::Continue).unwrap();
    assert_eq!(tile.rgba.len(), 16 * 16 * 4);
    let palette = kiln_nftgen::data::palette::PALETTE;
    assert!(
        tile.rgba
            .chunks(4)
            .all(|p| palette.iter().any(|e| e[..] == *p))
    );
    q.select_backend(kiln_nftgen::ArtBackend::Gpu).unwrap();
    let on_gpu = q.generate(&request, &mut |_| Control::Continue).unwrap();
    assert_eq!(on_gpu.rgba, tile.rgba);
}

#[test]
fn eval_prints_the_quality_figures() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_sprite(dir.path(), "m.safetensors", 1);
    // On random weights a small run checks the plumbing: the judge is reliable and the figures
    // are there and in range (the trained model's figures are the release gate).
    let r = nftgen(
        &[
            "eval",
            "--model",
            path_str(&model),
            "--prompts",
            "4",
            "--steps",
            "2",
            "--compare",
            "8",
        ],
        &[],
    );
    // Random weights fail the gates: exit code 3, the figures still printed as one JSON line, and
    // one stderr line per failed gate.
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("gate failed: "), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["prompts"], 4);
    assert_eq!(v["passed"], false);
    let gates = v["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 6, "{v}");
    assert!(gates.iter().any(|g| g["passed"] == false), "{v}");
    for key in ["item_class", "item_colour", "scene_terrain", "scene_time"] {
        let x = v[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!(
        v["judge_accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.as_f64().unwrap() >= 0.9)
    );
    assert_eq!(
        v["distinct_of_16"], 16,
        "random weights still give 16 distinct images"
    );
    assert!(v["nearest_training_distance"].as_f64().unwrap() > 0.0);
    assert!(v["training_nearest_median"].as_f64().unwrap() > 0.0);
}
