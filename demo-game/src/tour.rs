//! The scripted tour: walks to each NPC and talks, paints at the altar, mints, verifies, opens
//! the gallery; takes a screenshot after each scene and writes a transcript, then exits
//! (non-zero if a step did not happen in time).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy_kiln::{ArtMinted, ArtReady, ChainStatus, NpcEngineStatus, NpcReplied, TokenVerified};
use serde_json::{Value, json};

use crate::app::{AppSystems, DemoConfig};
use crate::gameplay::rules::{AltarState, Intent, Mode};
use crate::gameplay::village::{
    ALTAR_AT, Altar, HeadlessTarget, Player, VillagePainting, Villager,
};
use crate::save::SaveGame;
use crate::screens::Screen;

/// What each NPC is asked.
pub const LINES: [(&str, &str); 3] = [
    ("Bram", "Can you mend my sword?"),
    ("Mira", "Show me what you have for sale."),
    ("Sela", "What do the stars say about me?"),
];

/// What the altar is asked to paint.
pub const ALTAR_PROMPT: &str = "a glowing blue sword";

#[derive(Debug, Clone)]
enum Step {
    Start,
    WaitVillage,
    WalkTo(Vec2),
    WalkToNpc(&'static str),
    Arrive,
    Do(Intent),
    WaitReply(&'static str),
    WaitPainted,
    WaitMinted,
    WaitVerified,
    Frames(u32),
    Shot(&'static str),
}

#[derive(Resource)]
struct Tour {
    steps: Vec<Step>,
    at: usize,
    started: Instant,
    step_started: Instant,
    frames: u32,
    shots: Vec<PathBuf>,
    saved: usize,
    conversations: Vec<Value>,
    art: Option<Value>,
    minted: Option<Value>,
    verification: Option<Value>,
    sprites: Vec<Value>,
    /// Frame times (ms) once the village is in place: every sprite, tile and panel on screen.
    frame_ms: Vec<f32>,
    finished: Option<Result<(), String>>,
    reported: bool,
}

/// Plays the tour.
pub struct TourPlugin;

impl Plugin for TourPlugin {
    fn build(&self, app: &mut App) {
        let mut steps = vec![
            Step::Frames(3),
            Step::Shot("00-title"),
            Step::Start,
            Step::WaitVillage,
            Step::Frames(5),
            Step::Shot("01-village"),
        ];
        for (i, (name, line)) in LINES.into_iter().enumerate() {
            steps.extend([
                Step::WalkToNpc(name),
                Step::Arrive,
                Step::Do(Intent::Interact),
                Step::Do(Intent::Submit(line.into())),
                Step::WaitReply(name),
                Step::Frames(5),
                Step::Shot(["02-bram", "03-mira", "04-sela"][i]),
                Step::Do(Intent::Close),
            ]);
        }
        steps.extend([
            Step::WalkTo(ALTAR_AT - Vec2::new(0.0, 40.0)),
            Step::Arrive,
            Step::Do(Intent::Interact),
            Step::Do(Intent::Submit(ALTAR_PROMPT.into())),
            Step::WaitPainted,
            Step::Frames(5),
            Step::Shot("05-altar"),
            Step::Do(Intent::Mint),
            Step::WaitMinted,
            Step::WaitVerified,
            Step::Do(Intent::ToggleGallery),
            Step::Frames(8),
            Step::Shot("06-gallery"),
        ]);
        let now = Instant::now();
        // The tour's lines must be the ones answered: no villager chatter on the way.
        app.insert_resource(crate::gameplay::village::Chatter::off());
        app.insert_resource(Tour {
            steps,
            at: 0,
            started: now,
            step_started: now,
            frames: 0,
            shots: Vec::new(),
            saved: 0,
            conversations: Vec::new(),
            art: None,
            minted: None,
            verification: None,
            sprites: Vec::new(),
            frame_ms: Vec::new(),
            finished: None,
            reported: false,
        })
        .add_systems(
            Update,
            (time_frames, record, play, finish)
                .chain()
                .in_set(AppSystems::Input),
        );
    }
}

/// Frame times once the village is painted, for the transcript.
fn time_frames(time: Res<Time<Real>>, painting: Res<VillagePainting>, mut tour: ResMut<Tour>) {
    if painting.settled.is_some() && tour.finished.is_none() {
        tour.frame_ms.push(time.delta_secs() * 1000.0);
    }
}

/// Frame-time figures (ms): frames, mean, median, 95th percentile, slowest.
fn frame_figures(ms: &[f32]) -> Value {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f32::total_cmp);
    let at = |q: f32| {
        sorted
            .get(((sorted.len() as f32 - 1.0) * q) as usize)
            .copied()
    };
    json!({
        "frames": sorted.len(),
        "mean_ms": (!sorted.is_empty()).then(|| sorted.iter().sum::<f32>() / sorted.len() as f32),
        "median_ms": at(0.5),
        "p95_ms": at(0.95),
        "max_ms": sorted.last(),
    })
}

/// How long a step may take before the tour gives up.
fn limit(step: &Step) -> Duration {
    match step {
        Step::WaitVillage => Duration::from_secs(300),
        Step::WaitReply(_) | Step::WaitVerified => Duration::from_secs(180),
        Step::WaitPainted | Step::WaitMinted => Duration::from_secs(120),
        _ => Duration::from_secs(30),
    }
}

fn record(
    mut tour: ResMut<Tour>,
    mut replies: MessageReader<NpcReplied>,
    mut ready: MessageReader<ArtReady>,
    mut minted: MessageReader<ArtMinted>,
    mut verified: MessageReader<TokenVerified>,
    villagers: Query<&Villager>,
    altar: Single<Entity, With<Altar>>,
) {
    for r in replies.read() {
        let name = villagers
            .get(r.npc)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        let said = LINES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .unwrap_or_default();
        println!(
            "tour: You to {name}: {said}\ntour: {name} ({}, action {}): {}{}",
            r.reply.emotion,
            r.reply.action,
            r.reply.say,
            if r.fallback { " [fallback line]" } else { "" }
        );
        tour.conversations.push(json!({
            "npc": name,
            "player": said,
            "say": r.reply.say,
            "emotion": r.reply.emotion,
            "action": r.reply.action,
            "fallback": r.fallback,
        }));
    }
    for r in ready.read().filter(|r| r.requester == *altar) {
        println!(
            "tour: the altar painted \"{}\" (seed {}, content hash {})",
            r.record.prompt, r.record.seed, r.content_hash
        );
        tour.art = Some(json!({
            "prompt": r.record.prompt,
            "seed": r.record.seed,
            "content_hash": r.content_hash.to_string(),
            "model": r.record.model.id,
        }));
    }
    for m in minted.read() {
        println!(
            "tour: minted token {} (tx {}, block {})",
            m.token_id, m.tx, m.block
        );
        tour.minted = Some(json!({
            "token_id": m.token_id.to_string(),
            "tx": m.tx.to_string(),
            "block": m.block,
        }));
    }
    for v in verified.read() {
        let (verdict, summary) = match &v.verdict {
            Ok(verdict) => (
                crate::gameplay::rules::verdict_name(verdict),
                verdict.describe(),
            ),
            Err(e) => ("error".to_string(), e.clone()),
        };
        println!("tour: token {} verified: {summary}", v.token_id);
        tour.verification = Some(json!({
            "token_id": v.token_id.to_string(),
            "verdict": verdict,
            "summary": summary,
        }));
    }
}

fn play(
    mut tour: ResMut<Tour>,
    mut commands: Commands,
    config: Res<DemoConfig>,
    headless: Option<Res<HeadlessTarget>>,
    screen: Res<State<Screen>>,
    mut next_screen: ResMut<NextState<Screen>>,
    npc_status: Res<NpcEngineStatus>,
    chain: Res<ChainStatus>,
    altar_state: Res<AltarState>,
    save: Res<SaveGame>,
    mode: Res<Mode>,
    villagers: Query<(&Villager, &Transform)>,
    camera: Single<(&Camera, &GlobalTransform)>,
    mut player: Single<&mut Player>,
    mut intents: MessageWriter<Intent>,
) {
    if tour.finished.is_some() {
        return;
    }
    // A screenshot shows the frame it was taken in: nothing moves on until it is saved.
    if tour.saved < tour.shots.len() {
        if tour.step_started.elapsed() > Duration::from_secs(30) {
            tour.finished = Some(Err("a screenshot was not captured within 30 s".into()));
        }
        return;
    }
    // A few steps can complete in one frame; waits end the frame.
    for _ in 0..4 {
        let Some(step) = tour.steps.get(tour.at).cloned() else {
            tour.finished = Some(Ok(()));
            return;
        };
        if tour.step_started.elapsed() > limit(&step) {
            tour.finished = Some(Err(format!(
                "step {} ({step:?}) did not happen within {:?}",
                tour.at + 1,
                limit(&step)
            )));
            return;
        }
        let done = match &step {
            Step::Start => {
                next_screen.set(Screen::Painting);
                true
            }
            Step::WaitVillage => {
                *screen.get() == Screen::Playing
                    && *npc_status != NpcEngineStatus::Loading
                    && *chain != ChainStatus::Connecting
            }
            Step::WalkTo(to) => {
                player.target = Some(*to);
                true
            }
            Step::WalkToNpc(name) => {
                if let Some((_, t)) = villagers.iter().find(|(v, _)| v.name == *name) {
                    player.target = Some(t.translation.truncate() - Vec2::new(0.0, 45.0));
                }
                true
            }
            Step::Arrive => player.target.is_none(),
            Step::Do(intent) => {
                intents.write(intent.clone());
                true
            }
            Step::WaitReply(name) => tour.conversations.iter().any(|c| c["npc"] == *name),
            Step::WaitPainted => match &*altar_state {
                AltarState::Painted { .. } => true,
                AltarState::Failed(reason) => {
                    tour.finished = Some(Err(reason.clone()));
                    return;
                }
                _ => false,
            },
            Step::WaitMinted => tour.minted.is_some(),
            Step::WaitVerified => {
                tour.verification.is_some() && save.gallery.iter().all(|e| e.verdict != "verifying")
            }
            Step::Frames(n) => {
                tour.frames += 1;
                if tour.frames >= *n {
                    tour.frames = 0;
                    true
                } else {
                    false
                }
            }
            Step::Shot(name) => {
                let path = config.out.join(format!("{name}.png"));
                let _ = std::fs::remove_file(&path);
                let shot = match &headless {
                    Some(target) => Screenshot::image(target.0.clone()),
                    None => Screenshot::primary_window(),
                };
                println!("tour: screenshot {} ({:?})", path.display(), *mode);
                // Where each character's sprite is in this picture (for the test's check that
                // they are painted pictures, not flat colours): in the village (not the title
                // or the gallery over it), sprites wholly on screen.
                let (camera, at) = *camera;
                let size = camera.logical_viewport_size().unwrap_or_default();
                let playing = *screen.get() == Screen::Playing;
                for (v, t) in villagers.iter().filter(|_| playing) {
                    let foot = t.translation.truncate();
                    let corners = [foot + Vec2::new(-24.0, 48.0), foot + Vec2::new(24.0, 0.0)];
                    let seen: Vec<Vec2> = corners
                        .iter()
                        .filter_map(|c| camera.world_to_viewport(at, c.extend(0.0)).ok())
                        .collect();
                    let inside = |p: Vec2| p.cmpge(Vec2::ZERO).all() && p.cmple(size).all();
                    if let [a, b] = seen[..]
                        && inside(a)
                        && inside(b)
                    {
                        tour.sprites.push(json!({
                            "shot": name,
                            "npc": v.name,
                            "rect": [a.x, a.y, b.x, b.y],
                        }));
                    }
                }
                commands
                    .spawn(shot)
                    .observe(save_to_disk(path.clone()))
                    .observe(|_: On<ScreenshotCaptured>, mut tour: ResMut<Tour>| {
                        tour.saved += 1;
                    });
                tour.shots.push(path);
                tour.at += 1;
                tour.step_started = Instant::now();
                return;
            }
        };
        if !done {
            return;
        }
        tour.at += 1;
        tour.step_started = Instant::now();
    }
}

fn finish(
    mut tour: ResMut<Tour>,
    config: Res<DemoConfig>,
    painting: Res<VillagePainting>,
    device: Res<bevy_kiln::ArtDevice>,
    mut exit: MessageWriter<AppExit>,
) {
    if tour.reported {
        return;
    }
    let Some(outcome) = tour.finished.clone() else {
        return;
    };
    // Screenshots are written by observers a frame or two after they are asked for.
    let written = tour.saved >= tour.shots.len() && tour.shots.iter().all(|p| p.exists());
    if outcome.is_ok() && !written && tour.step_started.elapsed() < Duration::from_secs(30) {
        return;
    }
    let outcome = match outcome {
        Ok(()) if !written => Err("the screenshots were not written".to_string()),
        other => other,
    };
    let transcript = json!({
        "ok": outcome.is_ok(),
        "error": outcome.as_ref().err(),
        "seconds": tour.started.elapsed().as_secs_f64(),
        "headless": config.headless,
        "conversations": tour.conversations,
        "art": tour.art,
        "village": {
            "pictures": painting.total,
            "from_cache": painting.cached,
            "painted": painting.painted,
            "seconds": painting.settled.map(|s| s.0),
            "ready_after_start_seconds": painting.settled.map(|s| s.1),
        },
        "art_device": {
            "backend": device.backend.map(|b| b.as_str()),
            "adapter": device.adapter,
            "shared_with_renderer": device.shared_with_renderer,
        },
        "minted": tour.minted,
        "verification": tour.verification,
        "screenshots": tour.shots,
        "sprites": tour.sprites,
        "frame_time": frame_figures(&tour.frame_ms),
    });
    let path = config.out.join("transcript.json");
    let text = serde_json::to_string_pretty(&transcript).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("tour: cannot write {}: {e}", path.display());
    }
    let mut lines = Vec::new();
    for c in &tour.conversations {
        lines.push(format!(
            "You to {}: {}",
            str_of(&c["npc"]),
            str_of(&c["player"])
        ));
        lines.push(format!(
            "{} ({}, action {}): {}",
            str_of(&c["npc"]),
            str_of(&c["emotion"]),
            str_of(&c["action"]),
            str_of(&c["say"])
        ));
    }
    if let Some(a) = &tour.art {
        lines.push(format!(
            "Altar painted \"{}\" (seed {})",
            str_of(&a["prompt"]),
            a["seed"]
        ));
    }
    if let Some(m) = &tour.minted {
        lines.push(format!("Minted token {}", str_of(&m["token_id"])));
    }
    if let Some(v) = &tour.verification {
        lines.push(format!("Verified: {}", str_of(&v["summary"])));
    }
    let _ = std::fs::write(config.out.join("transcript.txt"), lines.join("\n") + "\n");
    match outcome {
        Ok(()) => {
            println!(
                "tour: done in {:.0} s; screenshots and transcript in {}",
                tour.started.elapsed().as_secs_f64(),
                config.out.display()
            );
            exit.write(AppExit::Success);
        }
        Err(e) => {
            eprintln!(
                "tour: failed: {e}; what happened so far is in {}",
                path.display()
            );
            exit.write(AppExit::error());
        }
    }
    tour.reported = true;
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}
