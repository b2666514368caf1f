//! The village's pictures. Every ground tile, building, prop and character sheet comes from a
//! fixed recipe — the villagers' from their persona's `appearance` — so every player's village
//! looks the same. On each start a cached picture is used when its record checks out (recipe,
//! the model that painted it, the pixels against the recorded hash); the others are painted
//! behind the painting screen and cached as Kiln PNGs. Sprites that show a picture carry
//! [`UsesArt`] and get it when it is there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bevy::image::TextureAtlasLayout;
use bevy::prelude::*;
use bevy_kiln::{ArtFailed, ArtKind, ArtProgress, ArtReady, ArtStatus, GenerateArt, PersonaAsset};
use kiln_nftgen::png_io;

use crate::app::{AppSystems, DemoConfig};

/// The folder of the data directory that caches the village's pictures.
pub const ART_DIR: &str = "village-art";

/// Where a picture's prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// This text.
    Fixed(&'static str),
    /// The `appearance` of the persona at this asset path.
    Persona(&'static str),
}

/// One of the village's pictures: its name (the cache file), prompt, kind and seed.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    /// Name of the picture and of its cache file.
    pub name: &'static str,
    /// What to paint.
    pub prompt: Prompt,
    /// Tile, sheet or (32×32) item/prop.
    pub kind: ArtKind,
    /// Seed.
    pub seed: u64,
}

/// A villager's sheet, painted from the `appearance` of the persona at `persona`.
const fn villager(name: &'static str, persona: &'static str, seed: u64) -> Picture {
    Picture {
        name,
        prompt: Prompt::Persona(persona),
        kind: ArtKind::Sheet,
        seed,
    }
}

const fn fixed(name: &'static str, prompt: &'static str, kind: ArtKind, seed: u64) -> Picture {
    Picture {
        name,
        prompt: Prompt::Fixed(prompt),
        kind,
        seed,
    }
}

/// Every picture of the village.
pub const PICTURES: &[Picture] = &[
    fixed("grass", "a grass tile", ArtKind::Tile, 1),
    fixed("grass-2", "a grass tile", ArtKind::Tile, 2),
    fixed(
        "flowers",
        "a grass tile with pink flowers",
        ArtKind::Tile,
        3,
    ),
    fixed("path", "a dirt path tile", ArtKind::Tile, 4),
    fixed("cobblestone", "a cobblestone tile", ArtKind::Tile, 5),
    fixed("water", "a water tile", ArtKind::Tile, 6),
    fixed("forge", "a house with a blue roof", ArtKind::Item, 7),
    fixed("tower", "a house with a purple roof", ArtKind::Item, 8),
    fixed("cottage", "a house with a green roof", ArtKind::Item, 9),
    fixed(
        "stall",
        "a market stall with a cyan awning",
        ArtKind::Item,
        10,
    ),
    fixed("well", "a well", ArtKind::Item, 11),
    fixed("altar", "an altar with a cyan flame", ArtKind::Item, 12),
    fixed("anvil", "an anvil", ArtKind::Item, 13),
    fixed("oak", "an oak tree", ArtKind::Item, 14),
    fixed("oak-2", "an oak tree", ArtKind::Item, 15),
    fixed("pine", "a pine tree", ArtKind::Item, 16),
    fixed("pine-2", "a pine tree", ArtKind::Item, 17),
    fixed("fence", "a fence", ArtKind::Item, 18),
    fixed("barrel", "a barrel", ArtKind::Item, 19),
    fixed("crate", "a crate", ArtKind::Item, 20),
    fixed(
        "player",
        "a traveller in red with brown hair",
        ArtKind::Sheet,
        21,
    ),
    villager("bram", "npcs/blacksmith.toml", 22),
    villager("mira", "npcs/merchant.toml", 23),
    villager("sela", "npcs/oracle.toml", 24),
];

/// A sprite that shows picture `0` (a name of [`PICTURES`]).
#[derive(Component, Debug, Clone, Copy)]
pub struct UsesArt(pub &'static str);

/// The painted pictures by name: the image and, for sheets, the atlas layout.
#[derive(Resource, Debug, Default)]
pub struct VillageArt(
    pub HashMap<&'static str, (Handle<Image>, Option<Handle<TextureAtlasLayout>>)>,
);

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
    /// Could not be painted (their sprites keep a placeholder; the game goes on).
    pub failed: usize,
    /// The picture being painted: prompt, step, steps.
    pub current: Option<(String, u32, u32)>,
    /// When the pictures began to be loaded or painted (the art model ready).
    pub began: Option<std::time::Instant>,
    /// Once every picture is settled: seconds from `began`, and seconds since the game started.
    pub settled: Option<(f32, f32)>,
}

impl VillagePainting {
    /// Pictures settled: in place, or given up on.
    pub fn done(&self) -> usize {
        self.cached + self.painted + self.failed
    }
}

/// The entity that asks for one picture (the requester of its [`GenerateArt`]).
#[derive(Component, Debug)]
struct Request {
    picture: Picture,
    prompt: String,
}

/// The personas the pictures' prompts come from, loading.
#[derive(Resource, Debug, Default)]
struct Personas(HashMap<&'static str, Handle<PersonaAsset>>);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<VillageArt>()
        .insert_resource(VillagePainting {
            total: PICTURES.len(),
            ..default()
        })
        .add_systems(Startup, load_personas)
        .add_systems(
            Update,
            (load_or_paint, progress, receive, settle, show)
                .chain()
                .in_set(AppSystems::World),
        );
}

fn load_personas(assets: Res<AssetServer>, mut commands: Commands) {
    let mut personas = Personas::default();
    for p in PICTURES {
        if let Prompt::Persona(path) = p.prompt {
            personas.0.insert(path, assets.load(path));
        }
    }
    commands.insert_resource(personas);
}

fn cache_path(config: &DemoConfig, name: &str) -> PathBuf {
    config.data_dir.join(ART_DIR).join(format!("{name}.png"))
}

/// A cached picture, if the file exists, holds this recipe's picture painted by `model`, and
/// its pixels are the ones its record's content hash names.
fn load_cached(path: &Path, prompt: &str, seed: u64, model: &str) -> Option<Image> {
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

/// Once the art model and the personas are ready: every picture whose cached file checks out
/// is loaded, the others are asked of Kiln (a persona without an appearance paints a plain
/// traveller).
#[allow(clippy::too_many_arguments)]
fn load_or_paint(
    status: Res<ArtStatus>,
    config: Res<DemoConfig>,
    personas: Res<Personas>,
    persona_assets: Res<Assets<PersonaAsset>>,
    assets: Res<AssetServer>,
    (mut images, mut atlases): (ResMut<Assets<Image>>, ResMut<Assets<TextureAtlasLayout>>),
    (mut art, mut painting): (ResMut<VillageArt>, ResMut<VillagePainting>),
    mut started: Local<bool>,
    mut commands: Commands,
    mut paint: MessageWriter<GenerateArt>,
) {
    let ArtStatus::Ready(model) = &*status else {
        return;
    };
    let loading = personas.0.values().any(|h| {
        persona_assets.get(h).is_none()
            && !matches!(assets.load_state(h), bevy::asset::LoadState::Failed(_))
    });
    if *started || loading {
        return;
    }
    *started = true;
    // One layout serves every cached sheet.
    let mut sheet_atlas = None;
    painting.began = Some(std::time::Instant::now());
    for &picture in PICTURES {
        let prompt = match picture.prompt {
            Prompt::Fixed(p) => p.to_string(),
            Prompt::Persona(path) => personas
                .0
                .get(path)
                .and_then(|h| persona_assets.get(h))
                .and_then(|p| p.0.appearance().map(str::to_string))
                .unwrap_or_else(|| "a traveller in blue with brown hair".into()),
        };
        if let Some(image) = load_cached(
            &cache_path(&config, picture.name),
            &prompt,
            picture.seed,
            model,
        ) {
            let atlas = (picture.kind == ArtKind::Sheet).then(|| {
                sheet_atlas
                    .get_or_insert_with(|| atlases.add(bevy_kiln::sheet_atlas_layout()))
                    .clone()
            });
            art.0.insert(picture.name, (images.add(image), atlas));
            painting.cached += 1;
            continue;
        }
        info!(
            "painting {}: \"{prompt}\" (seed {})",
            picture.name, picture.seed
        );
        let requester = commands
            .spawn(Request {
                picture,
                prompt: prompt.clone(),
            })
            .id();
        paint.write(GenerateArt {
            prompt,
            kind: picture.kind,
            seed: picture.seed,
            // The village's pictures belong to the village, not to a player.
            creator: None,
            requester,
        });
    }
}

/// The step of the picture being painted, for the painting screen.
fn progress(
    mut progress: MessageReader<ArtProgress>,
    requests: Query<&Request>,
    mut painting: ResMut<VillagePainting>,
) {
    for p in progress.read() {
        if let Ok(r) = requests.get(p.requester) {
            painting.current = Some((r.prompt.clone(), p.step, p.total));
        }
    }
}

/// Painted pictures take their place and are written to the cache; one Kiln cannot paint is
/// given up on.
fn receive(
    mut ready: MessageReader<ArtReady>,
    mut failed: MessageReader<ArtFailed>,
    requests: Query<&Request>,
    config: Res<DemoConfig>,
    (mut art, mut painting): (ResMut<VillageArt>, ResMut<VillagePainting>),
) {
    for f in failed.read() {
        if let Ok(request) = requests.get(f.requester) {
            warn!(
                "{} could not be painted: {}",
                request.picture.name, f.reason
            );
            painting.failed += 1;
            painting.current = None;
        }
    }
    for r in ready.read() {
        let Ok(request) = requests.get(r.requester) else {
            continue;
        };
        let name = request.picture.name;
        art.0.insert(name, (r.image.clone(), r.atlas.clone()));
        painting.painted += 1;
        painting.current = None;
        let path = cache_path(&config, name);
        let written = std::fs::create_dir_all(path.parent().unwrap_or(&path))
            .map_err(|e| e.to_string())
            .and_then(|()| png_io::write(&path, &r.art).map_err(|e| e.to_string()));
        if let Err(e) = written {
            warn!("cannot cache the picture {name}: {e}");
        }
    }
}

/// Notes, once, how long the village took to be in place.
fn settle(config: Res<DemoConfig>, mut painting: ResMut<VillagePainting>) {
    if painting.settled.is_some() || painting.done() < painting.total {
        return;
    }
    let Some(began) = painting.began else { return };
    let took = began.elapsed().as_secs_f32();
    let since_start = config.launched.elapsed().as_secs_f32();
    info!(
        "the village's {} pictures are in place: {} from the cache, {} painted, {} failed, in {took:.1} s ({since_start:.1} s after the game started)",
        painting.total, painting.cached, painting.painted, painting.failed
    );
    painting.settled = Some((took, since_start));
}

/// Sprites get their picture (and a sheet's atlas, at its first frame) once it is there.
fn show(art: Res<VillageArt>, mut sprites: Query<(&UsesArt, &mut Sprite)>) {
    if !art.is_changed() {
        return;
    }
    for (uses, mut sprite) in &mut sprites {
        let Some((image, atlas)) = art.0.get(uses.0) else {
            continue;
        };
        if sprite.image == *image {
            continue;
        }
        sprite.image = image.clone();
        sprite.color = Color::WHITE;
        sprite.texture_atlas = atlas.as_ref().map(|layout| TextureAtlas {
            layout: layout.clone(),
            index: 0,
        });
    }
}
