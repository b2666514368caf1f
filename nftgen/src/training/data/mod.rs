//! Procedural, captioned pixel art: the training data of kiln-sprite.
//!
//! Every sample is a pure function of `(seed, index)`: the same pair always gives the same
//! parameters, caption and pixels. Items (32×32) are weapons, armour, potions, gems and other
//! loot in a main colour, optionally glowing; scenes (64×32) are a terrain under a sky that
//! shows the time of day, with weather and, at dusk or night, moons. The caption is built from
//! the parameters ("a glowing green potion", "a desert at dusk with two moons").

use std::fmt;

use crate::sampling::noise::NoiseRng;

mod canvas;
mod items;
mod scenes;

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

/// Parameters of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleSpec {
    /// An item, 32×32.
    Item(ItemSpec),
    /// A scene, 64×32.
    Scene(SceneSpec),
}

/// Size of item samples.
pub const ITEM_SIZE: (u32, u32) = (32, 32);
/// Size of scene samples.
pub const SCENE_SIZE: (u32, u32) = (64, 32);

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
        }
    }

    /// (width, height) of the sample.
    pub fn size(&self) -> (u32, u32) {
        match self {
            SampleSpec::Item(_) => ITEM_SIZE,
            SampleSpec::Scene(_) => SCENE_SIZE,
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
pub fn is_held_out(spec: &SampleSpec) -> bool {
    match spec {
        SampleSpec::Item(i) => {
            (index_of(ItemKind::ALL, &i.kind) + 3 * index_of(Colour::ALL, &i.colour)) % 10 == 0
        }
        SampleSpec::Scene(s) => {
            (index_of(Terrain::ALL, &s.terrain) + index_of(TimeOfDay::ALL, &s.time)) % 5 == 0
        }
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
    /// RGBA8 pixels (alpha 255).
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
    let mut c = Canvas::new(w as usize, h as usize);
    match spec {
        SampleSpec::Item(i) => draw_item(&mut c, i, rng),
        SampleSpec::Scene(s) => draw_scene(&mut c, s, rng),
    }
    Sample {
        spec,
        caption: spec.caption(),
        width: w,
        height: h,
        rgba: c.to_rgba8(),
    }
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
}
