//! Main-thread frame time with Kiln busy versus idle (run by `cargo xtask bench plugin`).
//!
//! One headless app with `NpcPlugin` and `ArtPlugin` on the real models. After both have loaded,
//! it times `App::update` for `FRAMES` frames with nothing asked of Kiln (idle), then for
//! `FRAMES` frames while an NPC talks without pause and the art worker paints without pause
//! (busy), and prints one JSON line per phase: frame-time percentiles in microseconds.
//!
//! The first argument picks the workers' priority: `background` (the default), `idle` or `normal`.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy_kiln::{
    ArtKind, ArtPlugin, ArtReady, ArtStatus, GenerateArt, Npc, NpcEngineStatus, NpcPlugin,
    NpcReplied, PlayerSaid, WorkerPriority,
};

const FRAMES: usize = 1500;
/// The frame pacing of a 60 Hz game: the app sleeps out the rest of each frame.
const FRAME: Duration = Duration::from_micros(16_667);

#[derive(Resource, Default)]
struct Busy {
    on: bool,
    replies: u32,
    pictures: u32,
    deltas: u32,
}

#[derive(Component)]
struct Bram;

fn main() {
    let priority = match std::env::args().nth(1).as_deref() {
        None | Some("background") => WorkerPriority::Background,
        Some("idle") => WorkerPriority::Idle,
        Some("normal") => WorkerPriority::Normal,
        Some(other) => panic!("unknown priority `{other}` (background, idle or normal)"),
    };
    // The second argument: where the art worker paints (`cpu`, the default, `gpu` or `auto`).
    let backend: bevy_kiln::ArtBackend = std::env::args()
        .nth(2)
        .as_deref()
        .unwrap_or("cpu")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            // The game's assets (`BEVY_ASSET_ROOT`: this repository's, under cargo).
            ..default()
        },
        NpcPlugin {
            priority,
            ..default()
        },
        ArtPlugin {
            priority,
            backend,
            ..default()
        },
    ))
    .init_resource::<Busy>()
    .add_systems(
        Startup,
        |mut commands: Commands, assets: Res<AssetServer>| {
            commands.spawn((Npc::new(assets.load("npcs/blacksmith.toml")), Bram));
        },
    )
    .add_systems(Update, keep_busy)
    .add_observer(|_: On<bevy_kiln::NpcReplyDelta>, mut busy: ResMut<Busy>| busy.deltas += 1);
    app.finish();
    app.cleanup();

    // Wait for both models.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        app.update();
        let npc_ready = *app.world().resource::<NpcEngineStatus>() != NpcEngineStatus::Loading;
        let art_ready = *app.world().resource::<ArtStatus>() != ArtStatus::Loading;
        if npc_ready && art_ready {
            break;
        }
        assert!(Instant::now() < deadline, "models did not load");
        std::thread::sleep(Duration::from_millis(5));
    }
    for phase in ["idle", "busy"] {
        app.world_mut().resource_mut::<Busy>().on = phase == "busy";
        let mut wall = Vec::with_capacity(FRAMES);
        let mut cpu = Vec::with_capacity(FRAMES);
        for _ in 0..FRAMES {
            let (start, cpu_start) = (Instant::now(), thread_cpu());
            app.update();
            let took = start.elapsed();
            wall.push(took);
            cpu.push(thread_cpu().saturating_sub(cpu_start));
            std::thread::sleep(FRAME.saturating_sub(took));
        }
        let busy = app.world().resource::<Busy>();
        println!(
            "{{\"phase\":\"{phase}\",\"frames\":{FRAMES},\"wall\":{},\"cpu\":{},\"replies\":{},\"deltas\":{},\"pictures\":{}}}",
            percentiles(wall),
            percentiles(cpu),
            busy.replies,
            busy.deltas,
            busy.pictures
        );
    }
}

/// CPU time this thread has used (what the main thread itself spent, whatever else ran).
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// `{"p50_us":…,"p99_us":…,"max_us":…}` of the durations.
fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let us = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    format!(
        "{{\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
        us(0.5),
        us(0.99),
        us(1.0)
    )
}

/// While busy: a new line as soon as Bram has answered, a new picture as soon as one is ready.
fn keep_busy(
    mut busy: ResMut<Busy>,
    bram: Single<Entity, With<Bram>>,
    mut replied: MessageReader<NpcReplied>,
    mut ready: MessageReader<ArtReady>,
    mut say: MessageWriter<PlayerSaid>,
    mut paint: MessageWriter<GenerateArt>,
    mut started: Local<bool>,
) {
    let replies = replied.read().count() as u32;
    let pictures = ready.read().count() as u32;
    if !busy.on {
        return;
    }
    busy.replies += replies;
    busy.pictures += pictures;
    let kick_off = !*started;
    *started = true;
    for _ in 0..(replies + u32::from(kick_off)) {
        say.write(PlayerSaid::new(
            *bram,
            "Tell me about your work at the forge.",
        ));
    }
    for i in 0..(pictures + u32::from(kick_off)) {
        paint.write(GenerateArt {
            prompt: "a glowing blue sword".into(),
            kind: ArtKind::Item,
            seed: u64::from(busy.pictures + i),
            creator: None,
            requester: *bram,
        });
    }
}
