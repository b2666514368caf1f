//! The village: the player and three NPCs as Kiln-painted sprite sheets that walk in four
//! directions, the altar, a camera that follows the player, and who is in reach. The map and
//! the pictures are [`super::map`] and [`super::art`].

use bevy::prelude::*;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::sprite::Anchor;
use bevy_kiln::{Npc, NpcConverse, Talking};

use super::art::UsesArt;
pub use super::art::VillagePainting;
pub use super::map::ALTAR_AT;
use super::map::{HALF, SCALE, depth};
use crate::app::{AppSystems, DemoConfig, VIEW};
use crate::save::SaveGame;
use crate::ui::widgets::label;

/// The walkable area (the map less a margin).
pub const WALK_MIN: Vec2 = Vec2::new(-HALF.x + 24.0, -HALF.y + 24.0);
/// The walkable area.
pub const WALK_MAX: Vec2 = Vec2::new(HALF.x - 24.0, HALF.y - 48.0);
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
            .init_resource::<Chatter>()
            .add_plugins(super::art::plugin)
            .add_systems(
                Startup,
                (spawn_camera, super::map::spawn_map, spawn_village),
            )
            .add_systems(
                Update,
                (
                    walk_to_target,
                    flee,
                    find_nearby,
                    villagers_chat,
                    animate,
                    follow,
                )
                    .chain()
                    .in_set(AppSystems::World),
            );
    }
}

/// A character that walks: which way it faces and where its walk cycle is.
#[derive(Component, Debug, Default)]
pub struct Walker {
    /// Sheet row: 0 down, 1 left, 2 right, 3 up.
    row: usize,
    /// Seconds walked (the cycle's clock).
    walked: f32,
    /// Where it stood last frame.
    last: Option<Vec2>,
}

/// Frames of the walk cycle (sheet columns): standing, a step, standing, the other step.
const CYCLE: [usize; 4] = [1, 0, 2, 0];
/// Walk-cycle frames a second.
const CYCLE_FPS: f32 = 8.0;

/// Turns each walker towards where it moves, runs its walk cycle while it moves and stands it
/// still when it stops; also keeps sprites lower on the screen in front.
fn animate(time: Res<Time>, mut walkers: Query<(&mut Walker, &mut Transform, &mut Sprite)>) {
    for (mut w, mut transform, mut sprite) in &mut walkers {
        let here = transform.translation.truncate();
        let moved = w.last.map_or(Vec2::ZERO, |l| here - l);
        w.last = Some(here);
        let moving = moved.length() > 0.01;
        if moving {
            w.row = if moved.x.abs() > moved.y.abs() {
                if moved.x < 0.0 { 1 } else { 2 }
            } else if moved.y < 0.0 {
                0
            } else {
                3
            };
            w.walked += time.delta_secs();
        } else {
            w.walked = 0.0;
        }
        let column = if moving {
            CYCLE[(w.walked * CYCLE_FPS) as usize % CYCLE.len()]
        } else {
            0
        };
        if let Some(atlas) = &mut sprite.texture_atlas {
            let index = w.row * 3 + column;
            if atlas.index != index {
                atlas.index = index;
            }
        }
        transform.translation.z = depth(here.y);
    }
}

/// The camera follows the player, kept over the map.
fn follow(
    player: Single<&Transform, With<Player>>,
    mut camera: Single<&mut Transform, (With<Camera2d>, Without<Player>)>,
) {
    let half_view = VIEW.as_vec2() / 2.0;
    let limit = (HALF - half_view).max(Vec2::ZERO);
    let at = player.translation.truncate().clamp(-limit, limit);
    camera.translation = at.extend(camera.translation.z);
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
        Vec2::new(-360.0, 100.0),
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
        Vec2::new(400.0, 110.0),
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
        Vec2::new(-480.0, -390.0),
        Color::srgb(0.6, 0.4, 0.9),
        &["star chart", "moonstone"],
        &[],
    ),
];

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

/// A character's sprite: 16×16 frames drawn three times as large, standing on its feet.
fn character(name: &'static str, at: Vec2) -> impl Bundle {
    (
        Sprite::from_color(Color::NONE, Vec2::splat(16.0 * SCALE)),
        Anchor::BOTTOM_CENTER,
        Transform::from_translation(at.extend(depth(at.y))),
        UsesArt(name),
        Walker::default(),
    )
}

fn spawn_village(mut commands: Commands, assets: Res<AssetServer>, save: Res<SaveGame>) {
    commands.spawn((
        character("player", Vec2::new(0.0, -260.0)),
        Player::default(),
        children![(label("You", 13.0), Transform::from_xyz(0.0, 56.0, 1.0))],
    ));

    for (persona, name, home, colour, gifts, wares) in VILLAGERS {
        let mut npc = Npc::new(assets.load(persona));
        if let Some(memory) = save.memories.get(name) {
            npc = npc.with_memory(memory.clone());
        }
        commands.spawn((
            character(sheet_of(name), home),
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
                    Transform::from_xyz(0.0, 58.0, 1.0),
                    Badge
                ),
                (
                    label("", 13.0),
                    Anchor::BOTTOM_CENTER,
                    bevy::text::TextBounds::new_horizontal(260.0),
                    bevy::text::TextLayout::linebreak(bevy::text::LineBreak::WordBoundary),
                    Transform::from_xyz(0.0, 72.0, 2.0),
                    Bubble,
                ),
            ],
        ));
    }

    commands.spawn((
        super::map::prop("altar", ALTAR_AT),
        Altar,
        children![
            (label("Altar", 13.0), Transform::from_xyz(0.0, -14.0, 1.0)),
            (
                Sprite::from_color(Color::NONE, Vec2::splat(64.0)),
                Transform::from_xyz(0.0, 140.0, 1.0),
                AltarPicture,
            ),
        ],
    ));
}

/// The picture of a villager's sprite sheet (see [`super::art::PICTURES`]).
pub fn sheet_of(name: &str) -> &'static str {
    match name {
        "Bram" => "bram",
        "Mira" => "mira",
        "Sela" => "sela",
        _ => "player",
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

/// Villagers talk among themselves when the player walks by (not up to them): the one passed
/// and the villager nearest to them exchange a few lines ([`NpcConverse`]), at most once every
/// [`Chatter::every`] seconds. The scripted tour turns it off so its own lines are answered in
/// order.
#[derive(Resource, Debug, Clone)]
pub struct Chatter {
    /// Whether villagers chat at all.
    pub enabled: bool,
    /// Seconds between two chats.
    pub every: f32,
    /// When the next may start (seconds since start-up).
    next: f32,
}

impl Chatter {
    /// No chatter.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

impl Default for Chatter {
    fn default() -> Self {
        Self {
            enabled: true,
            every: 90.0,
            next: 10.0,
        }
    }
}

fn villagers_chat(
    time: Res<Time>,
    mut chatter: ResMut<Chatter>,
    mode: Res<super::rules::Mode>,
    player: Single<&Transform, With<Player>>,
    villagers: Query<(Entity, &Transform, Has<Talking>), (With<Villager>, Without<Player>)>,
    mut converse: MessageWriter<NpcConverse>,
) {
    let now = time.elapsed_secs();
    if !chatter.enabled || now < chatter.next || *mode != super::rules::Mode::Walking {
        return;
    }
    let here = player.translation.truncate();
    // Walking by: within a few steps of a villager, but not in reach to talk.
    let Some((passed, at, busy)) = villagers.iter().find(|(_, t, _)| {
        let d = here.distance(t.translation.truncate());
        (REACH..REACH * 2.5).contains(&d)
    }) else {
        return;
    };
    let other = villagers
        .iter()
        .filter(|(e, _, _)| *e != passed)
        .min_by(|a, b| {
            let da = a.1.translation.distance(at.translation);
            let db = b.1.translation.distance(at.translation);
            da.total_cmp(&db)
        });
    let Some((other, _, other_busy)) = other else {
        return;
    };
    if busy || other_busy {
        return;
    }
    converse.write(NpcConverse {
        a: passed,
        b: other,
        topic: "Did you see that traveller walk past? What do you make of them?".into(),
        turns: 2,
    });
    chatter.next = now + chatter.every;
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
