//! kiln-sprite on random weights: determinism (in process, across processes, 1 vs 2 threads),
//! provenance in PNG files, progress and cancellation.

mod common;

use common::*;
use kiln_nftgen::{ArtModel, Control, GenerateError, GenerationRequest, SchedulerKind, png_io};

#[test]
fn same_record_same_pixels_and_inputs_matter() {
    let dir = tempfile::tempdir().unwrap();
    let model = ArtModel::load(tiny_sprite(dir.path(), "m.safetensors", 1)).unwrap();
    let req = GenerationRequest::new("a glowing green potion", 7).steps(6);
    let a = model.generate(&req, &mut |_| Control::Continue).unwrap();
    let b = model.generate(&req, &mut |_| Control::Continue).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.rgba.len(), 32 * 32 * 4);
    assert!(
        a.rgba.chunks(4).any(|p| p[..3] != a.rgba[..3]),
        "image is one flat colour"
    );
    let again = model
        .regenerate(&a.record, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(again.rgba, a.rgba);
    assert_eq!(again.recipe_hash, a.recipe_hash);

    let variants = [
        GenerationRequest::new("a glowing green potion", 8).steps(6),
        GenerationRequest::new("a red sword", 7).steps(6),
        GenerationRequest::new("a glowing green potion", 7)
            .steps(6)
            .guidance(7.0),
        GenerationRequest::new("a glowing green potion", 7).steps(5),
        GenerationRequest::new("a glowing green potion", 7)
            .steps(6)
            .negative("blue"),
        GenerationRequest::new("a glowing green potion", 7)
            .steps(6)
            .scheduler(SchedulerKind::EulerAncestral),
    ];
    for v in variants {
        let other = model.generate(&v, &mut |_| Control::Continue).unwrap();
        assert_ne!(
            other.content_hash, a.content_hash,
            "{v:?} gave the same image"
        );
        assert_ne!(other.recipe_hash, a.recipe_hash);
    }
    // Wider scene art.
    let wide = model
        .generate(&req.clone().size(64, 32), &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(
        (wide.width, wide.height, wide.rgba.len()),
        (64, 32, 64 * 32 * 4)
    );
}

#[test]
fn png_bytes_identical_across_processes_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_sprite(dir.path(), "m.safetensors", 2);
    for (i, (scheduler, size)) in [("ddim", "32x32"), ("euler_a", "64x32"), ("euler", "64x64")]
        .into_iter()
        .enumerate()
    {
        let mut files = Vec::new();
        for threads in [None, Some("1"), Some("2")] {
            let out = dir.path().join(format!("{i}-{threads:?}.png"));
            let env: Vec<(&str, &str)> = threads
                .map(|t| ("RAYON_NUM_THREADS", t))
                .into_iter()
                .collect();
            let run = nftgen(
                &[
                    "generate",
                    "--prompt",
                    "a desert at dusk",
                    "--seed",
                    "99",
                    "--steps",
                    "8",
                    "--scheduler",
                    scheduler,
                    "--size",
                    size,
                    "--model",
                    path_str(&model),
                    "--creator",
                    "none",
                    "--out",
                    path_str(&out),
                    "--json",
                ],
                &env,
            );
            assert_success(&run);
            let line = String::from_utf8(run.stdout).unwrap();
            let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
            assert_eq!(v["record"]["scheduler"], scheduler);
            files.push(std::fs::read(&out).unwrap());
        }
        assert_eq!(
            files[0], files[1],
            "{scheduler}: default threads vs RAYON_NUM_THREADS=1"
        );
        assert_eq!(files[1], files[2], "{scheduler}: 1 vs 2 threads");
        // The library in this process gives the same file as the separate processes.
        let m = kiln_nftgen::ArtModel::load(&model).unwrap();
        let (w, h) = size.split_once('x').unwrap();
        let req = GenerationRequest::new("a desert at dusk", 99)
            .steps(8)
            .scheduler(scheduler.parse().unwrap())
            .size(w.parse().unwrap(), h.parse().unwrap());
        let art = m.generate(&req, &mut |_| Control::Continue).unwrap();
        assert_eq!(
            png_io::encode(&art).unwrap(),
            files[0],
            "{scheduler}: in-process bytes"
        );
    }
}

#[test]
fn png_carries_the_record_and_detects_altered_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let model = ArtModel::load(tiny_sprite(dir.path(), "m.safetensors", 3)).unwrap();
    let req = GenerationRequest::new("a silver shield, night ✨", 5)
        .steps(3)
        .negative("blurry")
        .creator(
            "0x00000000000000000000000000000000000000aa"
                .parse()
                .unwrap(),
        );
    let art = model.generate(&req, &mut |_| Control::Continue).unwrap();
    let path = dir.path().join("a.png");
    png_io::write(&path, &art).unwrap();
    let back = png_io::read(&path).unwrap();
    assert_eq!(back.record, art.record);
    assert_eq!(back.rgba, art.rgba);
    assert!(back.pixels_match());
    let params = back.parameters.unwrap();
    assert!(
        params.starts_with(
            "a silver shield, night ?\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM"
        ),
        "{params}"
    );
    assert!(params.contains("Seed: 5, Size: 32x32"));
    // Other tools see that it is generated: the IPTC digital source type in the XMP packet.
    assert_eq!(
        back.digital_source_type.as_deref(),
        Some(png_io::TRAINED_ALGORITHMIC_MEDIA)
    );
    let bytes = std::fs::read(&path).unwrap();
    let xmp = png_io::xmp_packet(&art.record.pipeline);
    assert!(
        bytes.windows(xmp.len()).any(|w| w == xmp.as_bytes()),
        "the XMP packet is stored uncompressed, as XMP readers expect"
    );
    let ok = nftgen(&["inspect", path_str(&path), "--json"], &[]);
    assert!(ok.status.success());
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["pixels_match"], true);
    assert_eq!(v["record"]["prompt"], "a silver shield, night ✨");
    assert_eq!(v["recipe_hash"], art.recipe_hash.to_string());

    // One pixel changed, the old hash kept: inspect says so and exits 3.
    let mut altered = art.clone();
    altered.rgba[4 * 17] ^= 1;
    let bad = dir.path().join("altered.png");
    std::fs::write(&bad, png_io::encode(&altered).unwrap()).unwrap();
    assert!(!png_io::read(&bad).unwrap().pixels_match());
    let out = nftgen(&["inspect", path_str(&bad)], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DO NOT match"));

    // Not a Kiln PNG / not a PNG at all.
    let plain = dir.path().join("plain.png");
    let mut bytes = Vec::new();
    {
        let mut e = png::Encoder::new(&mut bytes, 1, 1);
        e.set_color(png::ColorType::Rgba);
        let mut w = e.write_header().unwrap();
        w.write_image_data(&[1, 2, 3, 4]).unwrap();
    }
    std::fs::write(&plain, bytes).unwrap();
    assert_one_line_error(
        &nftgen(&["inspect", path_str(&plain)], &[]),
        "no `kiln` record",
    );
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    assert_one_line_error(
        &nftgen(&["inspect", path_str(&junk)], &[]),
        "not a readable PNG",
    );
}

#[test]
fn progress_reports_every_step_and_cancel_stops() {
    let dir = tempfile::tempdir().unwrap();
    let model = ArtModel::load(tiny_sprite(dir.path(), "m.safetensors", 4)).unwrap();
    let req = GenerationRequest::new("a gem", 1).steps(7);
    let mut seen = Vec::new();
    model
        .generate(&req, &mut |p| {
            seen.push((p.step, p.total));
            Control::Continue
        })
        .unwrap();
    assert_eq!(seen, (1..=7).map(|s| (s, 7)).collect::<Vec<_>>());
    let err = model
        .generate(&req, &mut |p| {
            if p.step == 3 {
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
                completed: 3,
                total: 7
            }
        ),
        "{err}"
    );
}
