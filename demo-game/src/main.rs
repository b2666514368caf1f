//! Kiln's demo village: walk (arrows or WASD), press E beside an NPC to talk to them, press E
//! at the altar to paint an item from a description, M to mint it on the local chain, G for
//! the gallery of minted art (V re-verifies every token).
//!
//! `kiln-demo --tour` plays a scripted tour instead (talk to each NPC, paint, mint, verify) and
//! writes screenshots and a transcript; with no display it runs headless.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]
// Systems declare their world access as parameters and queries; many and long is normal there.
#![allow(clippy::too_many_arguments, clippy::type_complexity)]

mod app;
mod gameplay;
mod save;
mod screens;
mod tour;
mod ui;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy::window::ExitCondition;
use bevy::winit::{UpdateMode, WinitPlugin, WinitSettings};
use bevy_kiln::{ArtBackend, ArtPlugin, ChainPlugin, KilnPlugins, NpcPlugin};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "kiln-demo", about = "Kiln's demo village")]
struct Cli {
    /// Play the scripted tour (talk to each NPC, paint, mint, verify) and exit.
    #[arg(long)]
    tour: bool,
    /// Render without a window even when a display is present.
    #[arg(long)]
    headless: bool,
    /// Where the tour writes screenshots and its transcript.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
    /// Where the game keeps its save, painted scenery, minted art and local chain
    /// [default: `<out>/village` for the tour, else `$KILN_DATA_DIR` or Kiln's data directory].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Start from a clean village: stop the data directory's local node, then delete the save,
    /// minted art, journal and local chain there (painted scenery, chain.toml and other files
    /// are kept).
    #[arg(long)]
    fresh: bool,
    /// Where the art is painted: `auto` (the GPU the game renders with, when it is a hardware
    /// GPU; else the CPU), `cpu`, or `gpu` (the renderer's GPU even when it is a software
    /// rasterizer). Every choice paints the same pixels.
    #[arg(long, default_value = "auto")]
    art_backend: ArtBackend,
    /// The game's `assets/` folder (personas, older art models) [default: found as Bevy finds it:
    /// `$BEVY_ASSET_ROOT/assets`, else `$CARGO_MANIFEST_DIR/assets`, else next to the
    /// executable; `cargo xtask demo` and the repository's cargo config point it at `assets/`].
    #[arg(long)]
    assets: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let launched = std::time::Instant::now();
    let cli = Cli::parse();
    let display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    let headless = cli.headless || !display;
    let tour = cli.tour || !display;
    if !display {
        println!("kiln-demo: no display found, so the scripted tour runs headless");
    }
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None if tour => cli.out.join("village"),
        None => kiln_nftgen::chain::default_data_dir(),
    };
    if cli.fresh && cli.data_dir.is_none() && !tour {
        // Kiln's shared data directory holds the player's minted art and chain journal.
        anyhow::bail!(
            "--fresh would clear Kiln's data directory {}; name the directory to clear with --data-dir",
            data_dir.display()
        );
    }
    if cli.fresh {
        // The local node first (another process may run it), then Kiln's own files and the
        // save; the painted scenery (it only depends on the model), `chain.toml` and anything
        // else stay.
        kiln_nftgen::chain::clear_data_dir(&data_dir, &[save::SAVE_FILE])
            .with_context(|| format!("cannot clear {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::create_dir_all(&cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    let chain = kiln_nftgen::chain::ChainConfig::load(&data_dir)
        .context("reading the chain configuration")?;

    let assets = cli
        .assets
        .clone()
        .or_else(kiln_nftgen::game_assets_dir)
        .context("cannot tell where the game's assets are: pass --assets")?;
    let mut app = App::new();
    let assets = AssetPlugin {
        file_path: assets.to_string_lossy().into_owned(),
        ..default()
    };
    let defaults = DefaultPlugins
        .set(assets)
        .set(ImagePlugin::default_nearest());
    if headless {
        app.add_plugins(
            defaults
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .disable::<WinitPlugin>(),
        )
        .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
            1.0 / 30.0,
        )));
    } else {
        app.add_plugins(defaults.set(WindowPlugin {
            primary_window: Some(Window {
                title: "Kiln village".into(),
                resolution: (app::VIEW.x, app::VIEW.y).into(),
                resizable: false,
                ..default()
            }),
            ..default()
        }))
        // At most 30 frames a second, sooner on input: software renderers leave the models
        // some CPU.
        .insert_resource(WinitSettings {
            focused_mode: UpdateMode::reactive(Duration::from_secs_f64(1.0 / 30.0)),
            unfocused_mode: UpdateMode::reactive(Duration::from_secs_f64(1.0 / 30.0)),
        });
    }
    app.add_plugins(KilnPlugins {
        npc: NpcPlugin::default(),
        art: ArtPlugin {
            backend: cli.art_backend,
            ..default()
        },
        chain: ChainPlugin {
            config: Some(chain),
            ..default()
        },
    })
    .add_plugins(app::DemoPlugin {
        config: app::DemoConfig {
            data_dir: data_dir.clone(),
            out: cli.out.clone(),
            headless,
            launched,
        },
        tour,
    });
    let exit = app.run();
    match exit {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => std::process::exit(i32::from(code.get())),
    }
}
