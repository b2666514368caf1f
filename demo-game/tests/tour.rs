//! The demo's scripted tour, rendered for real on Mesa's software Vulkan (lavapipe): first in a
//! window under Xvfb, then — same village, a restart later — headless. Real SmolLM2, the
//! shipped kiln-sprite-q (v2: tiles, props, character sheets) and a real anvil.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Shot {
    width: usize,
    rgb: Vec<[u8; 3]>,
}

fn read_png(path: &Path) -> Shot {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Shot {
        width: info.width as usize,
        rgb,
    }
}

/// Distinct colours in the picture (a blank or single-colour frame has one or two).
fn colours(shot: &Shot) -> usize {
    let mut c: Vec<[u8; 3]> = shot.rgb.clone();
    c.sort_unstable();
    c.dedup();
    c.len()
}

/// Share of pixels that differ between two pictures of the same size.
fn difference(a: &Shot, b: &Shot) -> f64 {
    assert_eq!(a.rgb.len(), b.rgb.len());
    let differ = a.rgb.iter().zip(&b.rgb).filter(|(x, y)| x != y).count();
    differ as f64 / a.rgb.len() as f64
}

fn run_tour(out: &Path, data: &Path, under_xvfb: bool, fresh: bool, art_backend: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_kiln-demo");
    let mut cmd = if under_xvfb {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1280x800x24", bin]);
        c
    } else {
        let mut c = Command::new(bin);
        c.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        c
    };
    cmd.arg("--tour")
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data);
    if fresh {
        cmd.arg("--fresh");
    }
    cmd.args(["--art-backend", art_backend]);
    // A developer's own chain settings must never reach the tour (it would mint there).
    let output = cmd
        .env_remove("KILN_RPC_URL")
        .env_remove("KILN_PRIVATE_KEY")
        .env_remove("KILN_CONTRACT")
        .output()
        .expect("kiln-demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tour failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

fn transcript(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("transcript.json")).unwrap()).unwrap()
}

fn check_tour(out: &Path, t: &Value) -> Vec<PathBuf> {
    assert_eq!(t["ok"], true, "{t:#}");
    let conversations = t["conversations"].as_array().unwrap();
    for name in ["Bram", "Mira", "Sela"] {
        let c = conversations
            .iter()
            .find(|c| c["npc"] == name)
            .unwrap_or_else(|| panic!("no reply from {name}: {t:#}"));
        assert!(!c["say"].as_str().unwrap().trim().is_empty(), "{c}");
        assert_eq!(c["fallback"], false, "{name} answered from the model: {c}");
    }
    let minted = t["minted"]["token_id"].as_str().expect("a minted token");
    assert_eq!(t["verification"]["token_id"], minted);
    assert_eq!(t["verification"]["verdict"], "authentic", "{t:#}");

    let shots: Vec<PathBuf> = t["screenshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(shots.len(), 7, "{shots:?}");
    let pictures: Vec<Shot> = shots.iter().map(|p| read_png(p)).collect();
    for (path, shot) in shots.iter().zip(&pictures) {
        assert_eq!(shot.width, 960, "{}", path.display());
        assert!(
            colours(shot) > 200,
            "{} is (nearly) blank: {} colours",
            path.display(),
            colours(shot)
        );
    }
    for i in 0..pictures.len() {
        for j in i + 1..pictures.len() {
            let d = difference(&pictures[i], &pictures[j]);
            assert!(
                d > 0.002,
                "{} and {} are the same scene ({:.4}% of pixels differ)",
                shots[i].display(),
                shots[j].display(),
                d * 100.0
            );
        }
    }
    // Each villager on screen is a painted sprite: its region of the picture holds a picture
    // (many colours, none covering most of it), not a flat placeholder.
    let sprites = t["sprites"].as_array().expect("sprite regions");
    for name in ["Bram", "Mira", "Sela"] {
        assert!(
            sprites.iter().any(|s| s["npc"] == name),
            "{name} is on screen in some screenshot: {sprites:?}"
        );
    }
    for s in sprites {
        let shot = &pictures[shots
            .iter()
            .position(|p| p.file_stem().unwrap() == s["shot"].as_str().unwrap())
            .unwrap()];
        let r: Vec<usize> = s["rect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().max(0.0) as usize)
            .collect();
        let height = shot.rgb.len() / shot.width;
        let mut counts = std::collections::HashMap::new();
        for y in r[1].min(height)..r[3].min(height) {
            for x in r[0].min(shot.width)..r[2].min(shot.width) {
                *counts.entry(shot.rgb[y * shot.width + x]).or_insert(0usize) += 1;
            }
        }
        let total: usize = counts.values().sum();
        let most = counts.values().copied().max().unwrap_or(0);
        assert!(
            counts.len() >= 8 && most * 10 < total * 9,
            "{s}: {} colours, the commonest covers {most} of {total} pixels",
            counts.len()
        );
    }
    assert!(out.join("transcript.txt").is_file());
    shots
}

#[test]
fn the_tour_talks_paints_mints_and_verifies_then_a_restart_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("village");

    // First start, in a window under Xvfb: the village is painted and cached.
    let first_out = dir.path().join("first");
    let stdout = run_tour(&first_out, &data, true, true, "auto");
    assert!(stdout.contains("screenshots and transcript in"), "{stdout}");
    let first = transcript(&first_out);
    assert_eq!(first["headless"], false);
    // The renderer runs on lavapipe, a software rasterizer: `auto` paints on the CPU kernels.
    assert_eq!(
        first["art_device"]["backend"], "cpu",
        "{}",
        first["art_device"]
    );
    check_tour(&first_out, &first);
    // The first start painted the village (behind the painting screen).
    assert_eq!(first["village"]["painted"], 24, "{}", first["village"]);
    assert_eq!(first["village"]["from_cache"], 0);
    for name in ["grass", "forge", "altar", "player", "bram", "mira", "sela"] {
        assert!(
            data.join("village-art")
                .join(format!("{name}.png"))
                .is_file()
        );
    }
    let save: Value =
        serde_json::from_slice(&std::fs::read(data.join("save.json")).unwrap()).unwrap();
    assert_eq!(save["gallery"].as_array().unwrap().len(), 1);
    assert_eq!(save["gallery"][0]["verdict"], "authentic");
    for name in ["Bram", "Mira", "Sela"] {
        assert_eq!(save["memories"][name]["turns"].as_array().unwrap().len(), 1);
        assert_eq!(save["transcripts"][name].as_array().unwrap().len(), 2);
    }
    let inventory = save["inventory"].as_array().unwrap().len();

    // A restart, headless this time: conversations go on where they stopped, the gallery
    // keeps the first token and gains a second, the village comes from the cache.
    let second_out = dir.path().join("second");
    let scenery_before = std::fs::metadata(data.join("village-art/bram.png"))
        .unwrap()
        .modified()
        .unwrap();
    // This time the altar paints on the GPU the game renders with (`gpu` takes lavapipe too):
    // the same pixels, so the token still verifies on the chain worker's CPU.
    run_tour(&second_out, &data, false, false, "gpu");
    let second = transcript(&second_out);
    assert_eq!(second["headless"], true);
    assert_eq!(
        second["art_device"]["backend"], "wgpu",
        "{}",
        second["art_device"]
    );
    assert_eq!(second["art_device"]["shared_with_renderer"], true);
    check_tour(&second_out, &second);
    // The restart checked the cached pictures' records and painted nothing.
    assert_eq!(second["village"]["from_cache"], 24, "{}", second["village"]);
    assert_eq!(second["village"]["painted"], 0);
    assert_ne!(second["minted"]["token_id"], first["minted"]["token_id"]);
    let save: Value =
        serde_json::from_slice(&std::fs::read(data.join("save.json")).unwrap()).unwrap();
    let gallery = save["gallery"].as_array().unwrap();
    assert_eq!(gallery.len(), 2);
    assert_eq!(gallery[0]["token_id"], first["minted"]["token_id"]);
    assert!(gallery.iter().all(|g| g["verdict"] == "authentic"));
    for name in ["Bram", "Mira", "Sela"] {
        assert_eq!(
            save["memories"][name]["turns"].as_array().unwrap().len(),
            2,
            "{name} remembers the first conversation"
        );
        assert_eq!(save["transcripts"][name].as_array().unwrap().len(), 4);
    }
    assert!(save["inventory"].as_array().unwrap().len() >= inventory);
    assert_eq!(
        std::fs::metadata(data.join("village-art/bram.png"))
            .unwrap()
            .modified()
            .unwrap(),
        scenery_before,
        "the cached sheet was reused"
    );
}
