//! Talk to an NPC, headless: the player says two lines to Bram the blacksmith (a persona asset
//! from the game's `assets/npcs/`); each reply streams in as the model writes it, then the app
//! exits.
//!
//! ```sh
//! cargo run -p bevy_kiln --example talk
//! ```
//!
//! Under `cargo run` in this repository the assets are the repository's `assets/` (its cargo
//! config sets `BEVY_ASSET_ROOT`); in your game they are your game's `assets/`.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

use std::time::Duration;

use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy_kiln::prelude::*;

/// What the player says, in order.
const LINES: [&str; 2] = [
    "Good morning! What are you forging today?",
    "Could you sell me a horseshoe for luck?",
];

fn main() -> AppExit {
    App::new()
        .add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(10))),
            AssetPlugin::default(),
            // Only the NPC plugin: no art, no chain.
            NpcPlugin::default(),
        ))
        .add_systems(Startup, spawn_bram)
        .add_systems(Update, next_line)
        .add_observer(|delta: On<NpcReplyDelta>| {
            print!("{}", delta.text);
            let _ = std::io::Write::flush(&mut std::io::stdout());
        })
        .run()
}

fn spawn_bram(
    mut commands: Commands,
    assets: Res<AssetServer>,
    mut said: MessageWriter<PlayerSaid>,
) {
    let bram = commands
        .spawn(Npc::new(assets.load("npcs/blacksmith.toml")))
        .id();
    // Lines wait while the persona and the model load.
    said.write(PlayerSaid::new(bram, LINES[0]));
    print!("Player: {}\nBram: ", LINES[0]);
}

fn next_line(
    mut replies: MessageReader<NpcReplied>,
    mut said: MessageWriter<PlayerSaid>,
    mut asked: Local<usize>,
    mut exit: MessageWriter<AppExit>,
) {
    for r in replies.read() {
        let source = if r.fallback { "fallback line" } else { "model" };
        println!("  [{} · {} · {source}]", r.reply.emotion, r.reply.action);
        *asked += 1;
        match LINES.get(*asked) {
            Some(line) => {
                said.write(PlayerSaid::new(r.npc, *line));
                print!("Player: {line}\nBram: ");
            }
            None => {
                exit.write(AppExit::Success);
            }
        }
    }
}
