//! Training is seeded and resumable: a run split across two sittings, or run on 1 or 2 threads,
//! writes the same weights as one uninterrupted run; the result loads and paints.

mod common;

use common::*;
use kiln_nftgen::{ArtModel, Control, GenerationRequest};

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
            ],
            &[("RAYON_NUM_THREADS", threads)],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        out.join("kiln-sprite.safetensors")
    };
    let whole = run("whole", "4", "2");
    run("split", "2", "2");
    let split = run("split", "4", "1");
    let one = run("one-thread", "4", "1");
    let bytes = std::fs::read(&whole).unwrap();
    assert_eq!(bytes, std::fs::read(&split).unwrap(), "resumed run differs");
    assert_eq!(bytes, std::fs::read(&one).unwrap(), "1-thread run differs");
    let csv = std::fs::read_to_string(dir.path().join("split/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
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
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["prompts"], 4);
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
}
