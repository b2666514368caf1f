//! The village's map: a grass field of Kiln's seamless tiles with a cobblestone square, dirt
//! paths and a pond, the houses, the stall, the well, the altar, trees, a fence and barrels.
//! Every sprite here shows a picture of [`super::art::PICTURES`].

use bevy::prelude::*;

use super::art::UsesArt;

/// Pixels of the screen per pixel of art.
pub const SCALE: f32 = 3.0;
/// Side of a ground tile on screen.
pub const TILE: f32 = 16.0 * SCALE;
/// Tiles across and down.
pub const TILES: IVec2 = IVec2::new(30, 20);
/// Half the map's size on screen (the map is centred on the origin).
pub const HALF: Vec2 = Vec2::new(TILES.x as f32 * TILE / 2.0, TILES.y as f32 * TILE / 2.0);

/// Depth of a sprite standing at `y`: lower on screen is nearer (drawn over).
pub fn depth(y: f32) -> f32 {
    10.0 - y / 1000.0
}

/// Which ground tile lies at tile (x, y) (x right, y up, 0 at the map's centre).
fn ground(x: i32, y: i32) -> &'static str {
    let pond = (7..=11).contains(&x) && (-8..=-5).contains(&y);
    let square = (-4..=4).contains(&x) && (-4..=2).contains(&y);
    let path = (y == -1 && x.abs() <= 13) || (x == 0 && (-9..=8).contains(&y));
    if pond {
        "water"
    } else if square {
        "cobblestone"
    } else if path {
        "path"
    } else if (x * 7 + y * 13).rem_euclid(17) == 0 {
        "flowers"
    } else if (x * 5 + y * 3).rem_euclid(4) == 0 {
        "grass-2"
    } else {
        "grass"
    }
}

/// The buildings and props: picture and where it stands (the foot of the picture).
pub const PROPS: &[(&str, Vec2)] = &[
    ("forge", Vec2::new(-480.0, 200.0)),
    ("anvil", Vec2::new(-360.0, 150.0)),
    ("stall", Vec2::new(400.0, 200.0)),
    ("barrel", Vec2::new(510.0, 170.0)),
    ("crate", Vec2::new(300.0, 160.0)),
    ("tower", Vec2::new(-480.0, -300.0)),
    ("cottage", Vec2::new(200.0, 330.0)),
    ("well", Vec2::new(140.0, 20.0)),
    ("fence", Vec2::new(-200.0, 300.0)),
    ("fence", Vec2::new(-104.0, 300.0)),
    ("oak", Vec2::new(-640.0, 380.0)),
    ("oak-2", Vec2::new(620.0, -140.0)),
    ("oak", Vec2::new(-300.0, -430.0)),
    ("pine", Vec2::new(660.0, 380.0)),
    ("pine-2", Vec2::new(-660.0, -80.0)),
    ("pine", Vec2::new(560.0, -420.0)),
    ("pine-2", Vec2::new(-40.0, 420.0)),
];

/// Where the altar stands.
pub const ALTAR_AT: Vec2 = Vec2::new(0.0, -110.0);

/// A placeholder colour until a picture is there.
const WAITING: Color = Color::srgb(0.25, 0.32, 0.22);

/// Spawns the ground and the props (the altar is spawned by the village, which owns it).
pub(super) fn spawn_map(mut commands: Commands) {
    for ty in 0..TILES.y {
        for tx in 0..TILES.x {
            let (x, y) = (tx - TILES.x / 2, ty - TILES.y / 2);
            let at = Vec2::new(x as f32 * TILE + TILE / 2.0, y as f32 * TILE + TILE / 2.0);
            commands.spawn((
                Sprite::from_color(WAITING, Vec2::splat(TILE)),
                Transform::from_translation(at.extend(0.0)),
                UsesArt(ground(x, y)),
            ));
        }
    }
    for &(name, foot) in PROPS {
        commands.spawn(prop(name, foot));
    }
}

/// A 32×32 picture standing with its foot at `foot`.
pub fn prop(name: &'static str, foot: Vec2) -> impl Bundle {
    (
        Sprite::from_color(Color::NONE, Vec2::splat(32.0 * SCALE)),
        bevy::sprite::Anchor::BOTTOM_CENTER,
        Transform::from_translation(foot.extend(depth(foot.y))),
        UsesArt(name),
    )
}
