//! Paint art in-game, headless: an item, a character's walk sheet (with its texture-atlas layout)
//! and a seamless ground tile, on the CPU, each written as a Kiln PNG that carries its recipe;
//! then the app exits.
//!
//! ```sh
//! cargo run -p bevy_kiln --example paint -- [OUT_DIR]
//! ```
//!
//! The same prompt, seed and creator paint the same pixels on every machine: run it twice and
//! compare the content hashes.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy_kiln::prelude::*;

/// What to paint: (file name, prompt, kind, seed).
const PICTURES: [(&str, &str, ArtKind, u64); 3] = [
    ("potion.png", "a glowing green potion", ArtKind::Item, 42),
    (
        "guard.png",
        "a guard in blue with black hair",
        ArtKind::Sheet,
        3,
    ),
    ("stones.png", "a cobblestone tile", ArtKind::Tile, 5),
];

#[derive(Resource)]
struct Out(PathBuf);

#[derive(Component)]
struct Easel(&'static str);

fn main() -> AppExit {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kiln-paint"));
    std::fs::create_dir_all(&out).expect("the output folder can be created");
    App::new()
        .add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(10))),
            AssetPlugin::default(),
            // Painting only, on the CPU (`ArtBackend::Auto` would take a hardware GPU).
            ArtPlugin {
                backend: ArtBackend::Cpu,
                ..default()
            },
        ))
        .insert_resource(Out(out))
        .add_systems(Startup, paint)
        .add_systems(Update, save)
        .run()
}

fn paint(mut commands: Commands, mut paint: MessageWriter<GenerateArt>, wallet: Res<KilnWallet>) {
    for (file, prompt, kind, seed) in PICTURES {
        let easel = commands.spawn(Easel(file)).id();
        paint.write(GenerateArt {
            prompt: prompt.into(),
            kind,
            seed,
            creator: wallet.0,
            requester: easel,
        });
    }
}

fn save(
    mut ready: MessageReader<ArtReady>,
    mut failed: MessageReader<ArtFailed>,
    easels: Query<&Easel>,
    out: Res<Out>,
    mut done: Local<usize>,
    mut exit: MessageWriter<AppExit>,
) {
    for r in ready.read() {
        let file = out
            .0
            .join(easels.get(r.requester).map_or("art.png", |e| e.0));
        bevy_kiln::kiln_nftgen::png_io::write(&file, &r.art).expect("the PNG can be written");
        println!(
            "painted {:?} ({}x{}{}): {} -> {}",
            r.record.prompt,
            r.art.width,
            r.art.height,
            if r.atlas.is_some() {
                ", with an atlas"
            } else {
                ""
            },
            r.content_hash,
            file.display()
        );
        *done += 1;
    }
    for f in failed.read() {
        eprintln!("painting failed: {}", f.reason);
        exit.write(AppExit::error());
    }
    if *done == PICTURES.len() {
        exit.write(AppExit::Success);
    }
}
