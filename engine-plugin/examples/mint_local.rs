//! Mint on a local chain, headless: the player greets the blacksmith (the reply streams in),
//! the altar paints a potion, mints it on an anvil chain of its own (started, and stopped when
//! the app exits) and verifies the token by re-running its recipe; then the app exits.
//!
//! ```sh
//! cargo run -p bevy_kiln --example mint_local
//! ```
//!
//! anvil comes from `$KILN_ANVIL`, Kiln's cache (`kiln fetch-anvil`) or the `PATH`.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

use std::time::Duration;

use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy_kiln::ChainConfig;
use bevy_kiln::prelude::*;

#[derive(Component)]
struct Altar;

#[derive(Resource, Default)]
struct Done {
    replied: bool,
    verified: bool,
}

fn main() -> AppExit {
    let data = std::env::temp_dir().join("kiln-example-mint-local");
    App::new()
        .add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(16))),
            AssetPlugin::default(),
        ))
        .add_plugins(KilnPlugins {
            chain: ChainPlugin {
                config: Some(ChainConfig::local(data)),
                ..default()
            },
            ..default()
        })
        .init_resource::<Done>()
        .add_systems(Startup, setup)
        .add_systems(Update, (mint_when_painted, verify_when_minted, report))
        .add_observer(|delta: On<NpcReplyDelta>| {
            print!("{}", delta.text);
            let _ = std::io::Write::flush(&mut std::io::stdout());
        })
        .run()
}

fn setup(
    mut commands: Commands,
    assets: Res<AssetServer>,
    mut said: MessageWriter<PlayerSaid>,
    mut paint: MessageWriter<GenerateArt>,
    wallet: Res<KilnWallet>,
) {
    let bram = commands
        .spawn(Npc::new(assets.load("npcs/blacksmith.toml")))
        .id();
    said.write(PlayerSaid::new(
        bram,
        "Good morning! What are you forging today?",
    ));
    print!("Player: Good morning! What are you forging today?\nBram: ");
    let altar = commands.spawn(Altar).id();
    paint.write(GenerateArt {
        prompt: "a glowing green potion".into(),
        kind: ArtKind::Item,
        seed: std::process::id().into(),
        creator: wallet.0,
        requester: altar,
    });
}

fn mint_when_painted(mut ready: MessageReader<ArtReady>, mut mint: MessageWriter<MintArt>) {
    for r in ready.read() {
        println!(
            "\n[altar] painted \"{}\" (seed {}), content hash {}",
            r.record.prompt, r.record.seed, r.content_hash
        );
        mint.write(MintArt {
            requester: r.requester,
            art: r.art.clone(),
        });
    }
}

fn verify_when_minted(
    mut minted: MessageReader<ArtMinted>,
    mut failed: MessageReader<MintFailed>,
    mut verify: MessageWriter<VerifyToken>,
    mut done: ResMut<Done>,
) {
    for m in minted.read() {
        println!("[altar] minted token {} in block {}", m.token_id, m.block);
        verify.write(VerifyToken {
            requester: m.requester,
            token_id: m.token_id,
        });
    }
    for f in failed.read() {
        println!("[altar] mint failed: {}", f.reason);
        done.verified = true;
    }
}

fn report(
    mut replies: MessageReader<NpcReplied>,
    mut verdicts: MessageReader<TokenVerified>,
    mut failed: MessageReader<ArtFailed>,
    mut done: ResMut<Done>,
    mut exit: MessageWriter<AppExit>,
) {
    for r in replies.read() {
        println!("  [{} · {}]", r.reply.emotion, r.reply.action);
        done.replied = true;
    }
    for v in verdicts.read() {
        match &v.verdict {
            Ok(verdict) => println!("[altar] verified: {verdict:?}"),
            Err(e) => println!("[altar] cannot verify: {e}"),
        }
        done.verified = true;
    }
    for f in failed.read() {
        println!("[altar] painting failed: {}", f.reason);
        done.verified = true;
    }
    if done.replied && done.verified {
        exit.write(AppExit::Success);
    }
}
