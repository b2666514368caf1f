//! Procedural, captioned pixel art: the training data of kiln-sprite.
//!
//! Every sample is a pure function of `(seed, index)`: the same pair always gives the same
//! parameters, caption and pixels. Items (32×32) are weapons, armour, potions, gems and other
//! loot in a main colour, optionally glowing; scenes (64×32) are a terrain under a sky that
//! shows the time of day, with weather and, at dusk or night, moons. The caption is built from
//! the parameters ("a glowing green potion", "a desert at dusk with two moons").
//!
//! The second data set ([`DataSet::V2`], [`sample_v2`]) is pixel art in [`palette::PALETTE`]
//! only: the same items redrawn crisp (outlined, on a flat ground) and scenes snapped to the
//! palette, plus characters as walk-cycle sheets
//! (48×64: four directions × three frames of 16×16), seamless 16×16 ground tiles, and 32×32
//! buildings and props. Characters and props stand on the palette's transparent key.

use std::fmt;

use crate::sampling::noise::NoiseRng;

mod canvas;
mod characters;
mod items;
pub mod palette;
mod pixels;
mod props;
mod scenes;
mod tiles;

use canvas::Canvas;
use items::draw_item;
use scenes::draw_scene;

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ItemKind {
    Sword,
    Axe,
    Bow,
    Shield,
    Helmet,
    Potion,
    Gem,
    Ring,
    Key,
    Scroll,
}

/// Main colour of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Colour {
    Red,
    Orange,
    Gold,
    Green,
    Cyan,
    Blue,
    Purple,
    Pink,
    Silver,
    Black,
}

/// Landscape of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Terrain {
    Mountains,
    Forest,
    Sea,
    Desert,
    Village,
}

/// Time of day of a scene (sets the sky).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum TimeOfDay {
    Dawn,
    Day,
    Dusk,
    Night,
}

/// Weather of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Weather {
    Clear,
    Rain,
    Snow,
    Fog,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:expr),* $(,)? }) => {
        impl $t {
            /// Every value, in a fixed order.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            /// The word used in captions.
            pub fn word(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.word())
            }
        }
    };
}

names!(ItemKind { Sword => "sword", Axe => "axe", Bow => "bow", Shield => "shield", Helmet => "helmet",
    Potion => "potion", Gem => "gem", Ring => "ring", Key => "key", Scroll => "scroll" });
names!(Colour { Red => "red", Orange => "orange", Gold => "gold", Green => "green", Cyan => "cyan",
    Blue => "blue", Purple => "purple", Pink => "pink", Silver => "silver", Black => "black" });
names!(Terrain { Mountains => "mountains", Forest => "forest", Sea => "sea", Desert => "desert",
    Village => "village" });
names!(TimeOfDay { Dawn => "dawn", Day => "day", Dusk => "dusk", Night => "night" });
names!(Weather { Clear => "clear", Rain => "rain", Snow => "snow", Fog => "fog" });

/// A villager's role (what they wear and carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Role {
    Blacksmith,
    Merchant,
    Oracle,
    Guard,
    Farmer,
    Child,
    Traveller,
}

/// Hair colour of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Hair {
    Black,
    Brown,
    Blond,
    Red,
    White,
}

/// Which way a character faces: the rows of a sheet, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Facing {
    Down,
    Left,
    Right,
    Up,
}

/// What a ground tile is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum GroundKind {
    Grass,
    Dirt,
    Cobblestone,
    Sand,
    Water,
    Planks,
    Snow,
}

/// A building or prop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum PropKind {
    House,
    Stall,
    Well,
    Oak,
    Pine,
    Fence,
    Anvil,
    Altar,
    Barrel,
    Crate,
}

names!(Role { Blacksmith => "blacksmith", Merchant => "merchant", Oracle => "oracle",
    Guard => "guard", Farmer => "farmer", Child => "child", Traveller => "traveller" });
names!(Hair { Black => "black", Brown => "brown", Blond => "blond", Red => "red", White => "white" });
names!(Facing { Down => "down", Left => "left", Right => "right", Up => "up" });
names!(GroundKind { Grass => "grass", Dirt => "dirt path", Cobblestone => "cobblestone",
    Sand => "sand", Water => "water", Planks => "wooden floor", Snow => "snow" });
names!(PropKind { House => "house", Stall => "market stall", Well => "well", Oak => "oak tree",
    Pine => "pine tree", Fence => "fence", Anvil => "anvil", Altar => "altar", Barrel => "barrel",
    Crate => "crate" });

impl PropKind {
    /// Whether the prop's caption names a colour (a roof, an awning, a flame).
    pub fn coloured(self) -> bool {
        matches!(self, PropKind::House | PropKind::Stall | PropKind::Altar)
    }
}

impl Colour {
    /// Base RGB of the colour.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [0.86, 0.12, 0.12],
            Colour::Orange => [0.95, 0.50, 0.08],
            Colour::Gold => [0.95, 0.80, 0.15],
            Colour::Green => [0.15, 0.75, 0.20],
            Colour::Cyan => [0.15, 0.80, 0.85],
            Colour::Blue => [0.15, 0.30, 0.90],
            Colour::Purple => [0.55, 0.20, 0.80],
            Colour::Pink => [0.95, 0.45, 0.70],
            Colour::Silver => [0.75, 0.78, 0.82],
            Colour::Black => [0.12, 0.12, 0.14],
        }
    }
}

/// Parameters of an item sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemSpec {
    /// What it is.
    pub kind: ItemKind,
    /// Main colour.
    pub colour: Colour,
    /// Whether it glows (a halo around it).
    pub glowing: bool,
}

/// Parameters of a scene sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SceneSpec {
    /// Landscape.
    pub terrain: Terrain,
    /// Time of day.
    pub time: TimeOfDay,
    /// Weather.
    pub weather: Weather,
    /// Moons in the sky (0–2; only at dusk or night, in clear weather).
    pub moons: u8,
}

/// Parameters of a character sample: one walk-cycle sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharacterSpec {
    /// Role.
    pub role: Role,
    /// Colour of their clothes.
    pub clothing: Colour,
    /// Colour of their hair.
    pub hair: Hair,
}

/// Parameters of a ground tile sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileSpec {
    /// What the ground is.
    pub ground: GroundKind,
    /// Flowers in the grass (grass only).
    pub flowers: Option<Colour>,
}

/// Parameters of a building or prop sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropSpec {
    /// What it is.
    pub kind: PropKind,
    /// The colour of its roof, awning or flame ([`PropKind::coloured`] kinds only).
    pub colour: Option<Colour>,
}

/// Parameters of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleSpec {
    /// An item, 32×32.
    Item(ItemSpec),
    /// A scene, 64×32.
    Scene(SceneSpec),
    /// A character's walk-cycle sheet, 48×64 (second data set).
    Character(CharacterSpec),
    /// A seamless ground tile, 16×16 (second data set).
    Tile(TileSpec),
    /// A building or prop, 32×32 (second data set).
    Prop(PropSpec),
}

/// Size of item samples.
pub const ITEM_SIZE: (u32, u32) = (32, 32);
/// Size of scene samples.
pub const SCENE_SIZE: (u32, u32) = (64, 32);
/// Size of character sheets: 3 frames × 4 directions of 16×16.
pub const SHEET_SIZE: (u32, u32) = (
    (characters::FRAME * characters::FRAMES) as u32,
    (characters::FRAME * 4) as u32,
);
/// Side of one frame of a character sheet.
pub const FRAME_SIZE: u32 = characters::FRAME as u32;
/// Frames per direction in a character sheet.
pub const SHEET_FRAMES: u32 = characters::FRAMES as u32;
/// Size of ground tiles.
pub const TILE_SIZE: (u32, u32) = (tiles::TILE as u32, tiles::TILE as u32);
/// Size of buildings and props.
pub const PROP_SIZE: (u32, u32) = (props::PROP as u32, props::PROP as u32);

impl CharacterSpec {
    /// "a <role> in <colour> with <hair> hair" ("an oracle …").
    pub fn caption(&self) -> String {
        let article = if self.role == Role::Oracle { "an" } else { "a" };
        format!(
            "{article} {} in {} with {} hair",
            self.role, self.clothing, self.hair
        )
    }
}

impl TileSpec {
    /// "a <ground> tile[ with <colour> flowers]".
    pub fn caption(&self) -> String {
        match self.flowers {
            Some(c) => format!("a {} tile with {c} flowers", self.ground),
            None => format!("a {} tile", self.ground),
        }
    }
}

impl PropSpec {
    /// "a house with a <colour> roof", "a market stall with a <colour> awning", "an altar with
    /// a <colour> flame", "an oak tree", "a well", ….
    pub fn caption(&self) -> String {
        let article = if matches!(self.kind, PropKind::Oak | PropKind::Anvil | PropKind::Altar) {
            "an"
        } else {
            "a"
        };
        let part = match self.kind {
            PropKind::House => " roof",
            PropKind::Stall => " awning",
            PropKind::Altar => " flame",
            _ => "",
        };
        match self.colour {
            Some(c) if self.kind.coloured() => format!("{article} {} with a {c}{part}", self.kind),
            _ => format!("{article} {}", self.kind),
        }
    }
}

impl ItemSpec {
    /// "a [glowing ]<colour> <kind>".
    pub fn caption(&self) -> String {
        format!(
            "a {}{} {}",
            if self.glowing { "glowing " } else { "" },
            self.colour,
            self.kind
        )
    }
}

impl SceneSpec {
    /// "<terrain phrase> <time phrase>[ <weather phrase>][ with one|two moon(s)]".
    pub fn caption(&self) -> String {
        let place = match self.terrain {
            Terrain::Mountains => "mountains",
            Terrain::Forest => "a forest",
            Terrain::Sea => "the sea",
            Terrain::Desert => "a desert",
            Terrain::Village => "a village",
        };
        let time = match self.time {
            TimeOfDay::Day => "by day",
            t => return self.finish(format!("{place} at {t}")),
        };
        self.finish(format!("{place} {time}"))
    }

    fn finish(&self, mut s: String) -> String {
        match self.weather {
            Weather::Clear => {}
            Weather::Rain => s.push_str(" in the rain"),
            Weather::Snow => s.push_str(" in the snow"),
            Weather::Fog => s.push_str(" in fog"),
        }
        match self.moons {
            1 => s.push_str(" with one moon"),
            2 => s.push_str(" with two moons"),
            _ => {}
        }
        s
    }
}

impl SampleSpec {
    /// The caption.
    pub fn caption(&self) -> String {
        match self {
            SampleSpec::Item(i) => i.caption(),
            SampleSpec::Scene(s) => s.caption(),
            SampleSpec::Character(c) => c.caption(),
            SampleSpec::Tile(t) => t.caption(),
            SampleSpec::Prop(p) => p.caption(),
        }
    }

    /// (width, height) of the sample.
    pub fn size(&self) -> (u32, u32) {
        match self {
            SampleSpec::Item(_) => ITEM_SIZE,
            SampleSpec::Scene(_) => SCENE_SIZE,
            SampleSpec::Character(_) => SHEET_SIZE,
            SampleSpec::Tile(_) => TILE_SIZE,
            SampleSpec::Prop(_) => PROP_SIZE,
        }
    }

    /// Draws the parameters of sample `index` of the data set seeded `seed`: items and scenes
    /// alternate (even index → item). Held-out combinations ([`is_held_out`]) are never drawn.
    pub fn draw(seed: u64, index: u64) -> (Self, NoiseRng) {
        let mut rng = NoiseRng::new(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        loop {
            let spec = Self::draw_any(&mut rng, index.is_multiple_of(2));
            if !is_held_out(&spec) {
                return (spec, rng);
            }
        }
    }
}

pub(crate) fn index_of<T: PartialEq>(all: &[T], v: &T) -> usize {
    all.iter().position(|x| x == v).expect("value is in ALL")
}

/// Combinations kept out of training so evaluation can test generalisation: the item
/// kind × colour pairs with `(kind + 3·colour) mod 10 = 0` (one colour per kind, 10 of 100), and
/// the terrain × time-of-day pairs with `(terrain + time) mod 5 = 0` (4 of 20), indices in
/// `ALL` order. Every kind, colour, terrain and time is still seen, only not together.
///
/// The second data set also keeps out the role × clothing pairs with
/// `(role + 3·colour) mod 10 = 0` (one colour per role, 7 of 70) and the coloured prop × colour
/// pairs with `(prop + 3·colour) mod 10 = 0` (3 of 30: a red-roofed house, a green-awning
/// stall, an orange-flamed altar). Tiles keep nothing out.
pub fn is_held_out(spec: &SampleSpec) -> bool {
    let pair = |a: usize, c: &Colour| (a + 3 * index_of(Colour::ALL, c)).is_multiple_of(10);
    match spec {
        SampleSpec::Item(i) => pair(index_of(ItemKind::ALL, &i.kind), &i.colour),
        SampleSpec::Scene(s) => {
            (index_of(Terrain::ALL, &s.terrain) + index_of(TimeOfDay::ALL, &s.time)) % 5 == 0
        }
        SampleSpec::Character(c) => pair(index_of(Role::ALL, &c.role), &c.clothing),
        SampleSpec::Tile(_) => false,
        SampleSpec::Prop(p) => p
            .colour
            .is_some_and(|c| pair(index_of(PropKind::ALL, &p.kind), &c)),
    }
}

impl SampleSpec {
    /// Draws an item (`item`) or a scene over all combinations, held-out ones included, in the
    /// stream order the data set uses: kind, colour, glow; or time, weather, moons, terrain.
    pub(crate) fn draw_any(rng: &mut NoiseRng, item: bool) -> Self {
        let pick = |rng: &mut NoiseRng, n: usize| (rng.next_u64() % n as u64) as usize;
        if item {
            SampleSpec::Item(ItemSpec {
                kind: ItemKind::ALL[pick(rng, ItemKind::ALL.len())],
                colour: Colour::ALL[pick(rng, Colour::ALL.len())],
                glowing: pick(rng, 3) == 0,
            })
        } else {
            let time = TimeOfDay::ALL[pick(rng, TimeOfDay::ALL.len())];
            let weather = Weather::ALL[pick(rng, Weather::ALL.len())];
            let moons = if matches!(time, TimeOfDay::Dusk | TimeOfDay::Night)
                && weather == Weather::Clear
            {
                pick(rng, 3) as u8
            } else {
                0
            };
            SampleSpec::Scene(SceneSpec {
                terrain: Terrain::ALL[pick(rng, Terrain::ALL.len())],
                time,
                weather,
                moons,
            })
        }
    }
}

/// Every word that can appear in a caption, in a fixed order (the prompt encoder's vocabulary).
pub fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = [
        "a", "glowing", "the", "at", "by", "in", "with", "one", "two", "moon", "moons",
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    for w in ItemKind::ALL
        .iter()
        .map(|k| k.word())
        .chain(Colour::ALL.iter().map(|c| c.word()))
        .chain(Terrain::ALL.iter().map(|t| t.word()))
        .chain(TimeOfDay::ALL.iter().map(|t| t.word()))
        .chain(Weather::ALL.iter().map(|w| w.word()))
    {
        if !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
    }
    words
}

/// One rendered sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its parameters.
    pub spec: SampleSpec,
    /// Its caption.
    pub caption: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 pixels (alpha 255, except the second data set's transparent key).
    pub rgba: Vec<u8>,
}

/// Renders sample `index` of the data set seeded `seed`.
pub fn sample(seed: u64, index: u64) -> Sample {
    let (spec, mut rng) = SampleSpec::draw(seed, index);
    render(spec, &mut rng)
}

/// Renders given parameters with variation drawn from `rng`.
pub fn render(spec: SampleSpec, rng: &mut NoiseRng) -> Sample {
    let (w, h) = spec.size();
    let rgba = match spec {
        SampleSpec::Item(_) | SampleSpec::Scene(_) => {
            let mut c = Canvas::new(w as usize, h as usize);
            match spec {
                SampleSpec::Item(i) => {
                    draw_item(&mut c, i, rng, false);
                }
                SampleSpec::Scene(s) => draw_scene(&mut c, s, rng, false),
                _ => unreachable!("matched above"),
            }
            c.to_rgba8()
        }
        SampleSpec::Character(c) => palette::to_rgba8(&characters::draw_sheet(c, rng).px),
        SampleSpec::Tile(t) => palette::to_rgba8(&tiles::draw_tile(t, rng).px),
        SampleSpec::Prop(p) => palette::to_rgba8(&props::draw_prop(p, rng).px),
    };
    Sample::new(spec, rgba)
}

impl Sample {
    /// A sample of `spec` with these pixels (its size's worth of RGBA8).
    fn new(spec: SampleSpec, rgba: Vec<u8>) -> Self {
        let (width, height) = spec.size();
        debug_assert_eq!(rgba.len(), (width * height * 4) as usize);
        Sample {
            spec,
            caption: spec.caption(),
            width,
            height,
            rgba,
        }
    }
}

/// The procedural data sets.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DataSet {
    /// Items and scenes with smooth shading (kiln-sprite v1 and kiln-sprite-q v1.x).
    #[default]
    V1,
    /// Pixel art in Kiln's palette: items, scenes, character sheets, tiles, props.
    V2,
}

/// The groups of the second data set, one image size each: a training batch draws from one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Items and props alternately (even index → item), 32×32.
    Small,
    /// Scenes, 64×32.
    Scene,
    /// Character sheets, 48×64.
    Sheet,
    /// Ground tiles, 16×16.
    Tile,
}

impl Group {
    /// Every group, in a fixed order.
    pub const ALL: [Group; 4] = [Group::Small, Group::Scene, Group::Sheet, Group::Tile];

    /// (width, height) of the group's images.
    pub fn size(self) -> (u32, u32) {
        match self {
            Group::Small => ITEM_SIZE,
            Group::Scene => SCENE_SIZE,
            Group::Sheet => SHEET_SIZE,
            Group::Tile => TILE_SIZE,
        }
    }
}

impl SampleSpec {
    /// Draws the parameters of sample `index` of `group` of the second data set seeded `seed`.
    /// Held-out combinations ([`is_held_out`]) are never drawn.
    pub fn draw_v2(seed: u64, group: Group, index: u64) -> (Self, NoiseRng) {
        let stream: u64 = match group {
            Group::Small => 0x5EED_0001,
            Group::Scene => 0x5EED_0002,
            Group::Sheet => 0x5EED_0003,
            Group::Tile => 0x5EED_0004,
        };
        let mut rng = NoiseRng::new(
            seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)
                ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        loop {
            let spec = Self::draw_any_v2(&mut rng, group, index);
            if !is_held_out(&spec) {
                return (spec, rng);
            }
        }
    }

    /// Draws a spec of `group` over all combinations, held-out ones included (`index` picks
    /// item or prop in the small group).
    pub(crate) fn draw_any_v2(rng: &mut NoiseRng, group: Group, index: u64) -> Self {
        fn pick<T: Copy>(rng: &mut NoiseRng, all: &[T]) -> T {
            all[(rng.next_u64() % all.len() as u64) as usize]
        }
        match group {
            Group::Small if index.is_multiple_of(2) => Self::draw_any(rng, true),
            Group::Small => {
                let kind = pick(rng, PropKind::ALL);
                let colour = pick(rng, Colour::ALL);
                SampleSpec::Prop(PropSpec {
                    kind,
                    colour: kind.coloured().then_some(colour),
                })
            }
            Group::Scene => Self::draw_any(rng, false),
            Group::Sheet => SampleSpec::Character(CharacterSpec {
                role: pick(rng, Role::ALL),
                clothing: pick(rng, Colour::ALL),
                hair: pick(rng, Hair::ALL),
            }),
            Group::Tile => {
                let ground = pick(rng, GroundKind::ALL);
                let colour = pick(rng, Colour::ALL);
                let flowers = ground == GroundKind::Grass && rng.next_u64().is_multiple_of(2);
                SampleSpec::Tile(TileSpec {
                    ground,
                    flowers: flowers.then_some(colour),
                })
            }
        }
    }
}

/// Renders sample `index` of `group` of the second data set seeded `seed`.
pub fn sample_v2(seed: u64, group: Group, index: u64) -> Sample {
    let (spec, mut rng) = SampleSpec::draw_v2(seed, group, index);
    render_v2(spec, &mut rng)
}

/// Renders given parameters as the second data set does: like [`render`], with scenes snapped
/// to the palette and items drawn on the key, snapped, outlined, with a flat background and
/// their glow in palette rings.
pub fn render_v2(spec: SampleSpec, rng: &mut NoiseRng) -> Sample {
    match spec {
        SampleSpec::Item(i) => {
            Sample::new(spec, palette::to_rgba8(&items::draw_item_v2(i, rng).px))
        }
        SampleSpec::Scene(scene) => {
            let (w, h) = spec.size();
            let mut c = Canvas::new(w as usize, h as usize);
            draw_scene(&mut c, scene, rng, true);
            let mut rgba = c.to_rgba8();
            palette::snap(&mut rgba);
            Sample::new(spec, rgba)
        }
        _ => render(spec, rng),
    }
}

/// The second data set's vocabulary: [`vocabulary`] followed by the new words (so the first
/// data set's words keep their ids).
pub fn vocabulary_v2() -> Vec<String> {
    let mut words = vocabulary();
    let new = [
        "an", "tile", "flowers", "hair", "roof", "awning", "flame", "path", "floor", "tree",
    ];
    for w in new
        .iter()
        .copied()
        .chain(Role::ALL.iter().map(|r| r.word()))
        .chain(Hair::ALL.iter().map(|h| h.word()))
        .chain(GroundKind::ALL.iter().flat_map(|g| g.word().split(' ')))
        .chain(PropKind::ALL.iter().flat_map(|p| p.word().split(' ')))
    {
        if !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
    }
    words
}

/// Colour statistics of an RGBA8 image: how many distinct colours it has (alpha included) and
/// what share of its pixels the 12 most common colours cover (0–1). Pixel art has few colours
/// and a dozen cover most of it; a noisy picture has nearly one colour per pixel.
pub fn colour_stats(rgba: &[u8]) -> (usize, f32) {
    let mut counts = std::collections::HashMap::<[u8; 4], usize>::new();
    for p in rgba.chunks_exact(4) {
        *counts.entry([p[0], p[1], p[2], p[3]]).or_default() += 1;
    }
    let mut n: Vec<usize> = counts.values().copied().collect();
    n.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = n.iter().take(12).sum();
    (counts.len(), top as f32 / (rgba.len() / 4).max(1) as f32)
}

/// How visible a tile's wrap-around seams are: the mean absolute RGB step between horizontal
/// and vertical neighbours across the wrap (right edge to left edge, bottom to top) and the same
/// over every interior pair of neighbours. A seamless tile has the first no larger than the
/// second, on average over many tiles.
pub fn seam_steps(rgba: &[u8], width: u32, height: u32) -> (f32, f32) {
    let (w, h) = (width as usize, height as usize);
    let step = |a: usize, b: usize| -> u32 {
        (0..3)
            .map(|k| u32::from(rgba[4 * a + k].abs_diff(rgba[4 * b + k])))
            .sum()
    };
    let (mut wrap, mut nw, mut inner, mut ni) = (0u64, 0u64, 0u64, 0u64);
    for y in 0..h {
        for x in 0..w {
            let here = y * w + x;
            let right = y * w + (x + 1) % w;
            let below = ((y + 1) % h) * w + x;
            for (other, across) in [(right, x + 1 == w), (below, y + 1 == h)] {
                let d = u64::from(step(here, other));
                if across {
                    wrap += d;
                    nw += 1;
                } else {
                    inner += d;
                    ni += 1;
                }
            }
        }
    }
    (
        wrap as f32 / (3 * nw.max(1)) as f32,
        inner as f32 / (3 * ni.max(1)) as f32,
    )
}

/// One 16×16 frame (column, row) of a sheet's RGBA8 pixels.
pub fn sheet_frame(sheet: &[u8], col: u32, row: u32) -> Vec<u8> {
    let (w, f) = (SHEET_SIZE.0, FRAME_SIZE);
    let mut out = Vec::with_capacity((f * f * 4) as usize);
    for y in 0..f {
        let start = (((row * f + y) * w + col * f) * 4) as usize;
        out.extend_from_slice(&sheet[start..start + (f * 4) as usize]);
    }
    out
}

/// An RGBA8 image borrowed for [`contact_sheet`]: (width, height, pixels).
pub type ImageRef<'a> = (u32, u32, &'a [u8]);

/// Lays images out in a grid (row-major, `cols` per row, dark gutters) as one RGBA8 image, each
/// pixel drawn as a `scale × scale` block; cells are as large as the largest image and smaller
/// images sit in their cell's top-left corner. Returns (width, height, pixels).
pub fn contact_sheet(images: &[ImageRef<'_>], cols: usize, scale: usize) -> (u32, u32, Vec<u8>) {
    let (cols, scale) = (cols.max(1), scale.max(1));
    let gutter = 2 * scale;
    let rows = images.len().div_ceil(cols).max(1);
    let cw = images.iter().map(|i| i.0).max().unwrap_or(1) as usize * scale + gutter;
    let ch = images.iter().map(|i| i.1).max().unwrap_or(1) as usize * scale + gutter;
    let (w, h) = (cols * cw + gutter, rows * ch + gutter);
    let mut out: Vec<u8> = [20u8, 20, 24, 255].repeat(w * h);
    for (i, &(iw, ih, rgba)) in images.iter().enumerate() {
        let (ox, oy) = (gutter + (i % cols) * cw, gutter + (i / cols) * ch);
        for y in 0..ih as usize * scale {
            for x in 0..iw as usize * scale {
                let src = ((y / scale) * iw as usize + x / scale) * 4;
                let dst = ((oy + y) * w + ox + x) * 4;
                out[dst..dst + 4].copy_from_slice(&rgba[src..src + 4]);
            }
        }
    }
    (w as u32, h as u32, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean RGB of the pixels that differ from the sample's corner (background) by a margin.
    fn foreground_mean(s: &Sample) -> [f32; 3] {
        let bg = &s.rgba[..3];
        let mut sum = [0f32; 3];
        let mut n = 0f32;
        for p in s.rgba.chunks(4) {
            let d: i32 = (0..3).map(|k| (p[k] as i32 - bg[k] as i32).abs()).sum();
            if d > 60 {
                for k in 0..3 {
                    sum[k] += p[k] as f32 / 255.0;
                }
                n += 1.0;
            }
        }
        sum.map(|v| v / n.max(1.0))
    }

    #[test]
    fn samples_are_deterministic_and_captioned_from_parameters() {
        for i in 0..40 {
            let a = sample(9, i);
            assert_eq!(a, sample(9, i));
            assert_eq!(a.rgba.len(), (a.width * a.height * 4) as usize);
            assert_eq!(a.caption, a.spec.caption());
            let vocab = vocabulary();
            for w in a.caption.split(' ') {
                assert!(
                    vocab.iter().any(|v| v == w),
                    "`{w}` of `{}` not in the vocabulary",
                    a.caption
                );
            }
            let distinct: std::collections::HashSet<&[u8]> = a.rgba.chunks(4).collect();
            assert!(distinct.len() > 8, "{} is nearly flat", a.caption);
        }
        assert_ne!(sample(9, 0).rgba, sample(10, 0).rgba);
        let item = ItemSpec {
            kind: ItemKind::Potion,
            colour: Colour::Green,
            glowing: true,
        };
        assert_eq!(item.caption(), "a glowing green potion");
        let scene = SceneSpec {
            terrain: Terrain::Desert,
            time: TimeOfDay::Dusk,
            weather: Weather::Clear,
            moons: 2,
        };
        assert_eq!(scene.caption(), "a desert at dusk with two moons");
        let rainy = SceneSpec {
            terrain: Terrain::Forest,
            time: TimeOfDay::Day,
            weather: Weather::Rain,
            moons: 0,
        };
        assert_eq!(rainy.caption(), "a forest by day in the rain");
    }

    #[test]
    fn held_out_combinations_are_never_drawn() {
        let mut item_pairs = 0;
        for &k in ItemKind::ALL {
            for &c in Colour::ALL {
                let spec = SampleSpec::Item(ItemSpec {
                    kind: k,
                    colour: c,
                    glowing: false,
                });
                item_pairs += is_held_out(&spec) as u32;
            }
        }
        assert_eq!(item_pairs, 10);
        let mut seen = std::collections::HashSet::new();
        for i in 0..4000 {
            let (spec, _) = SampleSpec::draw(5, i);
            assert!(!is_held_out(&spec), "{spec:?}");
            if let SampleSpec::Item(it) = spec {
                seen.insert((it.kind, it.colour));
            }
        }
        assert_eq!(seen.len(), 90, "every other pair is drawn");
    }

    #[test]
    fn the_item_colour_is_the_dominant_foreground_colour() {
        // For every kind, the foreground's mean colour is nearer the named colour than any
        // other palette colour for most colours (the tool parts are wood and steel).
        let mut rng = NoiseRng::new(1);
        let mut right = 0;
        let mut total = 0;
        for &kind in ItemKind::ALL {
            for &colour in Colour::ALL {
                let s = render(
                    SampleSpec::Item(ItemSpec {
                        kind,
                        colour,
                        glowing: false,
                    }),
                    &mut rng,
                );
                let m = foreground_mean(&s);
                let nearest = Colour::ALL
                    .iter()
                    .min_by(|a, b| {
                        let d = |c: &Colour| {
                            c.rgb()
                                .iter()
                                .zip(m)
                                .map(|(x, y)| (x - y).powi(2))
                                .sum::<f32>()
                        };
                        d(a).total_cmp(&d(b))
                    })
                    .unwrap();
                right += (*nearest == colour) as u32;
                total += 1;
            }
        }
        assert!(
            right * 100 >= total * 60,
            "colour readable in only {right}/{total} items"
        );
    }

    fn v2_samples(group: Group, n: u64) -> Vec<Sample> {
        (0..n).map(|i| sample_v2(3, group, i)).collect()
    }

    #[test]
    fn the_second_data_set_is_palette_true_deterministic_and_captioned() {
        let vocab = vocabulary_v2();
        assert_eq!(vocab[..vocabulary().len()], vocabulary()[..], "v1 ids kept");
        for group in Group::ALL {
            for (i, s) in v2_samples(group, 24).into_iter().enumerate() {
                assert_eq!(s, sample_v2(3, group, i as u64));
                assert_eq!((s.width, s.height), group.size());
                assert_eq!(s.spec.size(), group.size());
                assert_eq!(s.caption, s.spec.caption());
                for w in s.caption.split(' ') {
                    assert!(vocab.iter().any(|v| v == w), "`{w}` of `{}`", s.caption);
                }
                for p in s.rgba.chunks(4) {
                    assert!(
                        palette::PALETTE.iter().any(|e| e[..] == *p),
                        "{}: {p:?} is not in the palette",
                        s.caption
                    );
                }
                let (distinct, _) = colour_stats(&s.rgba);
                assert!(distinct >= 3, "{} is nearly flat", s.caption);
            }
        }
        assert_ne!(sample_v2(3, Group::Sheet, 0), sample_v2(4, Group::Sheet, 0));
        // The layout the pipeline and the game read is the one the data draws.
        let layout = crate::SheetLayout::get();
        assert_eq!(crate::SheetLayout::SIZE, SHEET_SIZE);
        assert_eq!(crate::SheetLayout::TILE_SIZE, TILE_SIZE);
        assert_eq!((layout.frame, layout.columns), (FRAME_SIZE, SHEET_FRAMES));
        let rows: Vec<&str> = Facing::ALL.iter().map(|f| f.word()).collect();
        assert_eq!(rows, layout.directions);
        let c = CharacterSpec {
            role: Role::Blacksmith,
            clothing: Colour::Red,
            hair: Hair::Brown,
        };
        assert_eq!(c.caption(), "a blacksmith in red with brown hair");
        let t = TileSpec {
            ground: GroundKind::Grass,
            flowers: Some(Colour::Pink),
        };
        assert_eq!(t.caption(), "a grass tile with pink flowers");
        let p = PropSpec {
            kind: PropKind::Altar,
            colour: Some(Colour::Blue),
        };
        assert_eq!(p.caption(), "an altar with a blue flame");
        let p = PropSpec {
            kind: PropKind::Well,
            colour: None,
        };
        assert_eq!(p.caption(), "a well");
    }

    #[test]
    fn held_out_pairs_of_the_second_data_set_are_never_drawn() {
        let character = |role, clothing| {
            SampleSpec::Character(CharacterSpec {
                role,
                clothing,
                hair: Hair::Black,
            })
        };
        let held: Vec<_> = Role::ALL
            .iter()
            .flat_map(|&r| Colour::ALL.iter().map(move |&c| (r, c)))
            .filter(|&(r, c)| is_held_out(&character(r, c)))
            .collect();
        assert_eq!(held.len(), 7);
        assert!(Role::ALL.iter().all(|r| held.iter().any(|h| h.0 == *r)));
        let props = PropKind::ALL
            .iter()
            .flat_map(|&kind| {
                Colour::ALL.iter().map(move |&c| PropSpec {
                    kind,
                    colour: kind.coloured().then_some(c),
                })
            })
            .filter(|p| is_held_out(&SampleSpec::Prop(*p)))
            .count();
        assert_eq!(props, 3);
        let mut seen = std::collections::HashSet::new();
        for i in 0..3000 {
            let (spec, _) = SampleSpec::draw_v2(1, Group::Sheet, i);
            assert!(!is_held_out(&spec), "{spec:?}");
            if let SampleSpec::Character(c) = spec {
                seen.insert((c.role, c.clothing));
            }
            let (spec, _) = SampleSpec::draw_v2(1, Group::Small, i);
            assert!(!is_held_out(&spec), "{spec:?}");
        }
        assert_eq!(seen.len(), 63, "every other role and colour pair is drawn");
    }

    #[test]
    fn tiles_are_seamless_and_shifted_anywhere() {
        let tiles = v2_samples(Group::Tile, 400);
        let (mut wrap, mut inner) = (0.0, 0.0);
        for t in &tiles {
            let (w, i) = seam_steps(&t.rgba, t.width, t.height);
            wrap += w;
            inner += i;
            // Tiled 2×2, a tile is the same texture across the seam: the wrapped neighbour of
            // an edge pixel is the next one in a repeated layout.
            assert_eq!(t.rgba.len(), 16 * 16 * 4);
        }
        let ratio = wrap / inner;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "seam steps {wrap:.1} against interior steps {inner:.1} (ratio {ratio:.2})"
        );
        // A picture that is not seamless (a scene) shows its seams in the same measure.
        let scene = sample_v2(3, Group::Scene, 1);
        let (w, i) = seam_steps(&scene.rgba, scene.width, scene.height);
        assert!(w > 1.5 * i, "a scene's wrap {w:.1} against {i:.1}");
    }

    #[test]
    fn sheets_draw_one_character_walking_in_four_directions() {
        let frame = |s: &Sample, col: u32, row: u32| sheet_frame(&s.rgba, col, row);
        let mirror = |f: &[u8]| -> Vec<u8> {
            f.chunks(4 * FRAME_SIZE as usize)
                .flat_map(|row| row.chunks(4).rev().flatten().copied().collect::<Vec<u8>>())
                .collect()
        };
        for s in v2_samples(Group::Sheet, 40) {
            let SampleSpec::Character(c) = s.spec else {
                panic!("{:?}", s.spec)
            };
            let mid = palette::PALETTE[usize::from(palette::ramp(c.clothing)[1])];
            for row in 0..4 {
                // The right-facing row is the left-facing one mirrored.
                if row == 2 {
                    for col in 0..SHEET_FRAMES {
                        assert_eq!(frame(&s, col, 2), mirror(&frame(&s, col, 1)));
                    }
                }
                let f0 = frame(&s, 0, row);
                for col in 0..SHEET_FRAMES {
                    let f = frame(&s, col, row);
                    // Every frame shows the clothes; the corners are transparent.
                    assert!(
                        f.chunks(4).any(|p| p == mid),
                        "{} frame {col},{row}",
                        s.caption
                    );
                    assert_eq!(f[3], 0, "{}", s.caption);
                    if col > 0 {
                        assert_ne!(
                            f, f0,
                            "{}: frame {col} of row {row} does not move",
                            s.caption
                        );
                    }
                }
            }
            let (distinct, top12) = colour_stats(&s.rgba);
            assert!(
                distinct <= 24 && top12 >= 0.9,
                "{}: {distinct}, {top12}",
                s.caption
            );
        }
    }

    #[test]
    fn pixel_art_has_few_colours_where_v1_had_many() {
        let stats = |samples: &[Sample]| {
            let s: Vec<(usize, f32)> = samples.iter().map(|s| colour_stats(&s.rgba)).collect();
            let max_distinct = s.iter().map(|x| x.0).max().unwrap_or(0);
            let min_top = s.iter().map(|x| x.1).fold(1.0, f32::min);
            (max_distinct, min_top)
        };
        let v1_items: Vec<Sample> = (0..40).map(|i| sample(3, 2 * i)).collect();
        let v2_items: Vec<Sample> = v2_samples(Group::Small, 80)
            .into_iter()
            .filter(|s| matches!(s.spec, SampleSpec::Item(_)))
            .collect();
        let props: Vec<Sample> = v2_samples(Group::Small, 80)
            .into_iter()
            .filter(|s| matches!(s.spec, SampleSpec::Prop(_)))
            .collect();
        let (v1_distinct, v1_top) = stats(&v1_items);
        let (v2_distinct, v2_top) = stats(&v2_items);
        assert!(
            v1_distinct > 30 && v1_top < 0.85,
            "v1 {v1_distinct} {v1_top}"
        );
        assert!(
            v2_distinct <= 30 && v2_top > v1_top,
            "v2 {v2_distinct} {v2_top}"
        );
        let (p_distinct, p_top) = stats(&props);
        assert!(
            p_distinct <= 20 && p_top >= 0.9,
            "props {p_distinct} {p_top}"
        );
        for p in &props {
            // Props stand on the transparent key, with something drawn on it.
            let drawn = p.rgba.chunks(4).filter(|px| px[3] == 255).count();
            assert_eq!(p.rgba[3], 0, "{}", p.caption);
            assert!(
                drawn * 8 > p.rgba.len() / 4,
                "{} is nearly empty",
                p.caption
            );
        }
    }
}
