//! The village: Kiln-painted backdrops (cached on disk), the player, three NPCs, the altar.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::sprite::Anchor;
use bevy_kiln::{ArtFailed, ArtKind, ArtProgress, ArtReady, ArtStatus, GenerateArt, Npc};
use kiln_nftgen::png_io;

use crate::app::{AppSystems, DemoConfig, VIEW};
use crate::save::SaveGame;
use crate::ui::widgets::label;

/// The folder of the data directory that caches painted scenery.
pub const SCENERY_DIR: &str = "scenery";

/// The backdrops: name, prompt and seed (fixed, so every player's village looks the same).
pub const SCENERY: [(&str, &str, u64); 4] = [
    ("village", "a village by day", 7),
    ("forest", "a forest by day", 3),
    ("mountains", "mountains at dawn", 5),
    ("sea", "the sea by day", 11),
];

/// How much a 64×32 backdrop is scaled up (to 480×240).
const SCENERY_SCALE: f32 = 7.5;
/// The walkable area.
pub const WALK_MIN: Vec2 = Vec2::new(-450.0, -190.0);
/// The walkable area.
pub const WALK_MAX: Vec2 = Vec2::new(450.0, 230.0);
/// How close the player must be to talk or to use the altar.
pub const REACH: f32 = 80.0;
/// Walking speed, pixels a second.
pub const SPEED: f32 = 240.0;

/// The player.
#[derive(Component, Debug, Default)]
pub struct Player {
    /// Where the player walks by itself (the tour), if anywhere.
    pub target: Option<Vec2>,
}

/// One of the village's NPCs.
#[derive(Component, Debug, Clone)]
pub struct Villager {
    /// The persona's name.
    pub name: String,
    /// Where the NPC stands.
    pub home: Vec2,
    /// Their usual colour.
    pub colour: Color,
    /// What they give when their action is `give_item`.
    pub gifts: &'static [&'static str],
    /// What their shop sells.
    pub wares: &'static [&'static str],
    /// The emotion of their last reply.
    pub emotion: String,
}

/// An NPC walking away (action `flee`); they come home when the time runs out.
#[derive(Component, Debug)]
pub struct Fleeing {
    /// Where they go.
    pub to: Vec2,
    /// Seconds before they come back.
    pub away: f32,
}

/// A line of text floating over an NPC (their streamed reply).
#[derive(Component, Debug)]
pub struct Bubble;

/// The name and emotion over an NPC.
#[derive(Component, Debug)]
pub struct Badge;

/// The altar, where art is painted.
#[derive(Component, Debug)]
pub struct Altar;

/// The picture shown on the altar.
#[derive(Component, Debug)]
pub struct AltarPicture;

/// A backdrop tile and its recipe.
#[derive(Component, Debug)]
pub struct Backdrop {
    /// The cache file name (without `.png`).
    pub name: &'static str,
    /// Prompt.
    pub prompt: &'static str,
    /// Seed.
    pub seed: u64,
    /// Painted (or loaded from the cache).
    pub ready: bool,
}

/// How far the village's pictures are: loaded from the cache or painted, of how many, and the
/// picture being painted now (prompt, step, steps).
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct VillagePainting {
    /// Pictures the village needs.
    pub total: usize,
    /// Loaded from the cache (their records checked).
    pub cached: usize,
    /// Painted this start.
    pub painted: usize,
    /// Could not be painted (the village shows a placeholder; the game goes on).
    pub failed: usize,
    /// The picture being painted: prompt, step, steps.
    pub current: Option<(String, u32, u32)>,
}

impl VillagePainting {
    /// Pictures settled: in place, or given up on.
    pub fn done(&self) -> usize {
        self.cached + self.painted + self.failed
    }
}

/// What the player can use right now, if anything.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Nearby {
    /// Nothing in reach.
    #[default]
    Nothing,
    /// An NPC.
    Npc(Entity),
    /// The altar.
    Altar,
}

/// The village.
pub struct VillagePlugin;

impl Plugin for VillagePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Nearby>()
            .insert_resource(VillagePainting {
                total: SCENERY.len(),
                ..default()
            })
            .add_systems(Startup, (spawn_camera, spawn_village))
            .add_systems(
                Update,
                (
                    load_or_paint_scenery,
                    scenery_progress,
                    receive_scenery,
                    walk_to_target,
                    flee,
                    find_nearby,
                )
                    .chain()
                    .in_set(AppSystems::World),
            );
    }
}

/// The shipped NPCs: persona file, home, colour, gifts, wares.
type VillagerSpec = (
    &'static str,
    &'static str,
    Vec2,
    Color,
    &'static [&'static str],
    &'static [&'static str],
);

const VILLAGERS: [VillagerSpec; 3] = [
    (
        "npcs/blacksmith.toml",
        "Bram",
        Vec2::new(-300.0, 70.0),
        Color::srgb(0.85, 0.45, 0.2),
        &["iron nail", "whetstone", "horseshoe"],
        &[
            "short sword - 30 gold",
            "iron helmet - 45 gold",
            "mended blade - 10 gold",
        ],
    ),
    (
        "npcs/merchant.toml",
        "Mira",
        Vec2::new(0.0, 150.0),
        Color::srgb(0.25, 0.75, 0.4),
        &["coil of rope", "old map", "healing potion"],
        &[
            "rope - 2 gold",
            "map of the hills - 8 gold",
            "healing potion - 12 gold",
        ],
    ),
    (
        "npcs/oracle.toml",
        "Sela",
        Vec2::new(300.0, 70.0),
        Color::srgb(0.6, 0.4, 0.9),
        &["star chart", "moonstone"],
        &[],
    ),
];

/// Where the altar stands.
pub const ALTAR_AT: Vec2 = Vec2::new(0.0, -110.0);

fn spawn_camera(
    mut commands: Commands,
    config: Res<DemoConfig>,
    mut images: ResMut<Assets<Image>>,
) {
    if config.headless {
        let mut target =
            Image::new_target_texture(VIEW.x, VIEW.y, TextureFormat::Rgba8UnormSrgb, None);
        target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
        let handle = images.add(target);
        commands.insert_resource(HeadlessTarget(handle.clone()));
        commands.spawn((
            Camera2d,
            bevy::camera::RenderTarget::Image(handle.into()),
            IsDefaultUiCamera,
        ));
    } else {
        commands.spawn((Camera2d, IsDefaultUiCamera));
    }
}

/// The picture the headless camera renders into.
#[derive(Resource, Debug, Clone)]
pub struct HeadlessTarget(pub Handle<Image>);

fn spawn_village(mut commands: Commands, assets: Res<AssetServer>, save: Res<SaveGame>) {
    let size = Vec2::new(64.0, 32.0) * SCENERY_SCALE;
    for (i, (name, prompt, seed)) in SCENERY.into_iter().enumerate() {
        let at = Vec2::new(
            if i % 2 == 0 {
                -size.x / 2.0
            } else {
                size.x / 2.0
            },
            if i < 2 { size.y / 2.0 } else { -size.y / 2.0 },
        );
        let mut sprite = Sprite::from_color(Color::srgb(0.2, 0.24, 0.2), Vec2::ONE);
        sprite.custom_size = Some(size);
        // Dimmed so the characters stand out.
        sprite.color = Color::srgb(0.75, 0.75, 0.75);
        commands.spawn((
            sprite,
            Transform::from_translation(at.extend(0.0)),
            Backdrop {
                name,
                prompt,
                seed,
                ready: false,
            },
        ));
    }

    commands.spawn((
        Sprite::from_color(Color::srgb(0.3, 0.55, 0.95), Vec2::splat(26.0)),
        Transform::from_xyz(0.0, -180.0, 5.0),
        Player::default(),
        children![(label("You", 13.0), Transform::from_xyz(0.0, 24.0, 1.0))],
    ));

    for (persona, name, home, colour, gifts, wares) in VILLAGERS {
        let mut npc = Npc::new(assets.load(persona));
        if let Some(memory) = save.memories.get(name) {
            npc = npc.with_memory(memory.clone());
        }
        commands.spawn((
            Sprite::from_color(colour, Vec2::splat(30.0)),
            Transform::from_translation(home.extend(4.0)),
            npc,
            Villager {
                name: name.to_string(),
                home,
                colour,
                gifts,
                wares,
                emotion: String::new(),
            },
            children![
                (
                    label(name, 14.0),
                    Transform::from_xyz(0.0, 28.0, 1.0),
                    Badge
                ),
                (
                    label("", 13.0),
                    Anchor::BOTTOM_CENTER,
                    bevy::text::TextBounds::new_horizontal(260.0),
                    bevy::text::TextLayout::linebreak(bevy::text::LineBreak::WordBoundary),
                    Transform::from_xyz(0.0, 42.0, 2.0),
                    Bubble,
                ),
            ],
        ));
    }

    commands.spawn((
        Sprite::from_color(Color::srgb(0.55, 0.5, 0.45), Vec2::new(70.0, 24.0)),
        Transform::from_translation(ALTAR_AT.extend(3.0)),
        Altar,
        children![
            (label("Altar", 13.0), Transform::from_xyz(0.0, -22.0, 1.0)),
            (
                Sprite::from_color(Color::NONE, Vec2::splat(64.0)),
                Transform::from_xyz(0.0, 46.0, 1.0),
                AltarPicture,
            ),
        ],
    ));
}

fn scenery_path(config: &DemoConfig, name: &str) -> PathBuf {
    config
        .data_dir
        .join(SCENERY_DIR)
        .join(format!("{name}.png"))
}

/// A cached backdrop, if the file exists, holds this recipe's picture painted by `model`, and
/// its pixels are the ones its record's content hash names.
fn load_cached(path: &std::path::Path, prompt: &str, seed: u64, model: &str) -> Option<Image> {
    let png = png_io::read(path).ok()?;
    if png.record.prompt != prompt
        || png.record.seed != seed
        || png.record.model.id != model
        || !png.pixels_match()
    {
        return None;
    }
    Some(bevy_kiln::pixel_image(png.width, png.height, png.rgba))
}

/// Once the art model is ready: every backdrop whose cached picture checks out is loaded, the
/// others are asked of Kiln.
fn load_or_paint_scenery(
    status: Res<ArtStatus>,
    config: Res<DemoConfig>,
    mut backdrops: Query<(Entity, &mut Backdrop, &mut Sprite)>,
    mut painting: ResMut<VillagePainting>,
    mut images: ResMut<Assets<Image>>,
    mut asked: Local<bool>,
    mut paint: MessageWriter<GenerateArt>,
) {
    let ArtStatus::Ready(model) = &*status else {
        return;
    };
    if *asked {
        return;
    }
    *asked = true;
    for (entity, mut b, mut sprite) in &mut backdrops {
        if let Some(image) = load_cached(&scenery_path(&config, b.name), b.prompt, b.seed, model) {
            sprite.image = images.add(image);
            b.ready = true;
            painting.cached += 1;
            continue;
        }
        info!(
            "painting the {} backdrop: \"{}\" (seed {})",
            b.name, b.prompt, b.seed
        );
        paint.write(GenerateArt {
            prompt: b.prompt.into(),
            kind: ArtKind::Scene,
            seed: b.seed,
            // Scenery belongs to the village, not to a player: painted for no creator.
            creator: None,
            requester: entity,
        });
    }
}

/// The step of the backdrop being painted, for the painting screen.
fn scenery_progress(
    mut progress: MessageReader<ArtProgress>,
    backdrops: Query<&Backdrop>,
    mut painting: ResMut<VillagePainting>,
) {
    for p in progress.read() {
        if let Ok(b) = backdrops.get(p.requester) {
            painting.current = Some((b.prompt.to_string(), p.step, p.total));
        }
    }
}

/// Painted backdrops replace their placeholders and are written to the cache.
fn receive_scenery(
    mut ready: MessageReader<ArtReady>,
    mut failed: MessageReader<ArtFailed>,
    mut backdrops: Query<(&mut Backdrop, &mut Sprite)>,
    mut painting: ResMut<VillagePainting>,
    config: Res<DemoConfig>,
) {
    for f in failed.read() {
        if let Ok((backdrop, _)) = backdrops.get(f.requester) {
            warn!(
                "the {} backdrop could not be painted: {}",
                backdrop.name, f.reason
            );
            painting.failed += 1;
            painting.current = None;
        }
    }
    for r in ready.read() {
        let Ok((mut backdrop, mut sprite)) = backdrops.get_mut(r.requester) else {
            continue;
        };
        sprite.image = r.image.clone();
        backdrop.ready = true;
        painting.painted += 1;
        painting.current = None;
        let path = scenery_path(&config, backdrop.name);
        let written = std::fs::create_dir_all(path.parent().unwrap_or(&path))
            .map_err(|e| e.to_string())
            .and_then(|()| png_io::write(&path, &r.art).map_err(|e| e.to_string()));
        if let Err(e) = written {
            warn!("cannot cache the {} backdrop: {e}", backdrop.name);
        }
    }
}

fn walk_to_target(time: Res<Time>, player: Single<(&mut Transform, &mut Player)>) {
    let (mut transform, mut player) = player.into_inner();
    let Some(target) = player.target else {
        return;
    };
    let next = transform
        .translation
        .truncate()
        .move_towards(target, SPEED * time.delta_secs());
    if next == target {
        player.target = None;
    }
    transform.translation = next
        .clamp(WALK_MIN, WALK_MAX)
        .extend(transform.translation.z);
}

fn flee(
    time: Res<Time>,
    mut commands: Commands,
    mut npcs: Query<(Entity, &mut Transform, &Villager, Option<&mut Fleeing>)>,
) {
    for (entity, mut transform, villager, fleeing) in &mut npcs {
        let here = transform.translation.truncate();
        let (goal, speed) = match fleeing {
            Some(mut f) => {
                f.away -= time.delta_secs();
                if f.away <= 0.0 {
                    commands.entity(entity).remove::<Fleeing>();
                }
                (f.to, 160.0)
            }
            None => (villager.home, 80.0),
        };
        let next = here.move_towards(goal, speed * time.delta_secs());
        transform.translation = next.extend(transform.translation.z);
    }
}

fn find_nearby(
    player: Single<&Transform, With<Player>>,
    npcs: Query<(Entity, &Transform), (With<Villager>, Without<Player>)>,
    mut nearby: ResMut<Nearby>,
) {
    let here = player.translation.truncate();
    let mut best = (REACH, Nearby::Nothing);
    for (entity, t) in &npcs {
        let d = here.distance(t.translation.truncate());
        if d < best.0 {
            best = (d, Nearby::Npc(entity));
        }
    }
    let d = here.distance(ALTAR_AT);
    if d < best.0 {
        best = (d, Nearby::Altar);
    }
    if *nearby != best.1 {
        *nearby = best.1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backdrop Kiln cannot paint is given up on (its placeholder stays), so the painting
    /// screen still opens the village.
    #[test]
    fn a_backdrop_that_fails_to_paint_is_counted_and_the_village_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_message::<ArtReady>()
            .add_message::<ArtFailed>()
            .insert_resource(DemoConfig {
                data_dir: dir.path().into(),
                out: dir.path().into(),
                headless: true,
            })
            .insert_resource(VillagePainting {
                total: 2,
                cached: 1,
                ..default()
            })
            .add_systems(Update, receive_scenery);
        let backdrop = app
            .world_mut()
            .spawn((
                Sprite::default(),
                Backdrop {
                    name: "sea",
                    prompt: "the sea by day",
                    seed: 11,
                    ready: false,
                },
            ))
            .id();
        let stranger = app.world_mut().spawn_empty().id();
        for requester in [backdrop, stranger] {
            app.world_mut().write_message(ArtFailed {
                requester,
                reason: "the art worker stopped".into(),
            });
        }
        app.update();
        let painting = app.world().resource::<VillagePainting>();
        assert_eq!((painting.failed, painting.done()), (1, 2));
        assert!(!app.world().get::<Backdrop>(backdrop).unwrap().ready);
    }
}
