//! Procedural, captioned pixel art: the training data of kiln-sprite.
//!
//! Every sample is a pure function of `(seed, index)`: the same pair always gives the same
//! parameters, caption and pixels. Items (32×32) are weapons, armour, potions, gems and other
//! loot in a main colour, optionally glowing; scenes (64×32) are a terrain under a sky that
//! shows the time of day, with weather and, at dusk or night, moons. The caption is built from
//! the parameters ("a glowing green potion", "a desert at dusk with two moons").

use std::fmt;

use crate::sampling::noise::NoiseRng;

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

/// Uniform value in [lo, hi) from the stream.
fn uniform(rng: &mut NoiseRng, lo: f32, hi: f32) -> f32 {
    let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    lo + (hi - lo) * u
}

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![[0.0; 3]; w * h],
        }
    }

    fn blend(&mut self, x: i32, y: i32, c: [f32; 3], a: f32) {
        if x < 0 || y < 0 || x >= self.w as i32 || y >= self.h as i32 {
            return;
        }
        let p = &mut self.px[y as usize * self.w + x as usize];
        for k in 0..3 {
            p[k] = p[k] * (1.0 - a) + c[k] * a;
        }
    }

    fn set(&mut self, x: i32, y: i32, c: [f32; 3]) {
        self.blend(x, y, c, 1.0);
    }

    /// Fills pixels whose centre satisfies `inside`, shading by `shade(x, y)`.
    fn fill(
        &mut self,
        c: [f32; 3],
        inside: impl Fn(f32, f32) -> bool,
        shade: impl Fn(f32, f32) -> f32,
    ) {
        for y in 0..self.h as i32 {
            for x in 0..self.w as i32 {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                if inside(fx, fy) {
                    let s = shade(fx, fy);
                    self.set(
                        x,
                        y,
                        [c[0] * s, c[1] * s, c[2] * s].map(|v| v.clamp(0.0, 1.0)),
                    );
                }
            }
        }
    }

    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [f32; 3]) {
        self.fill(
            c,
            |x, y| x >= x0 && x < x1 && y >= y0 && y < y1,
            |x, _| 1.1 - 0.3 * (x - x0) / (x1 - x0).max(1.0),
        );
    }

    fn circle(&mut self, cx: f32, cy: f32, r: f32, c: [f32; 3]) {
        self.fill(
            c,
            |x, y| (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            |x, y| 1.15 - 0.35 * (((x - cx) + (y - cy)) / (2.0 * r) + 0.5),
        );
    }

    fn ring(&mut self, cx: f32, cy: f32, r0: f32, r1: f32, c: [f32; 3]) {
        self.fill(
            c,
            |x, y| {
                let d = (x - cx).powi(2) + (y - cy).powi(2);
                d <= r1 * r1 && d >= r0 * r0
            },
            |x, _| 1.1 - 0.3 * ((x - cx) / r1 + 0.5),
        );
    }

    /// A thick segment from (x0, y0) to (x1, y1).
    fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, c: [f32; 3]) {
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = (dx * dx + dy * dy).max(1e-6);
        self.fill(
            c,
            |x, y| {
                let t = (((x - x0) * dx + (y - y0) * dy) / len2).clamp(0.0, 1.0);
                let (px, py) = (x0 + t * dx, y0 + t * dy);
                (x - px).powi(2) + (y - py).powi(2) <= (width / 2.0).powi(2)
            },
            |_, _| 1.0,
        );
    }

    fn triangle(&mut self, p: [(f32, f32); 3], c: [f32; 3], shade_top: f32) {
        let edge = |a: (f32, f32), b: (f32, f32), x: f32, y: f32| {
            (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0)
        };
        let top = p.iter().map(|q| q.1).fold(f32::MAX, f32::min);
        let bottom = p.iter().map(|q| q.1).fold(f32::MIN, f32::max);
        self.fill(
            c,
            |x, y| {
                let e = [
                    edge(p[0], p[1], x, y),
                    edge(p[1], p[2], x, y),
                    edge(p[2], p[0], x, y),
                ];
                e.iter().all(|&v| v >= 0.0) || e.iter().all(|&v| v <= 0.0)
            },
            |_, y| shade_top + (1.0 - shade_top) * (y - top) / (bottom - top).max(1.0),
        );
    }

    fn to_rgba8(&self) -> Vec<u8> {
        self.px
            .iter()
            .flat_map(|p| {
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [q(p[0]), q(p[1]), q(p[2]), 255]
            })
            .collect()
    }
}

fn jitter(c: [f32; 3], rng: &mut NoiseRng, amount: f32) -> [f32; 3] {
    let s = uniform(rng, 1.0 - amount, 1.0 + amount);
    c.map(|v| (v * s).clamp(0.0, 1.0))
}

const WOOD: [f32; 3] = [0.45, 0.28, 0.12];
const STEEL: [f32; 3] = [0.62, 0.64, 0.68];

fn draw_item(c: &mut Canvas, item: ItemSpec, rng: &mut NoiseRng) {
    // Dark, slightly tinted background with a soft vignette.
    let mut bg = [
        uniform(rng, 0.05, 0.16),
        uniform(rng, 0.05, 0.14),
        uniform(rng, 0.08, 0.2),
    ];
    if item.colour == Colour::Black {
        // A black item needs a light ground to be seen.
        bg = bg.map(|v| v + 0.5);
    }
    let (w, h) = (c.w as f32, c.h as f32);
    c.fill(
        bg,
        |_, _| true,
        |x, y| 1.2 - 0.6 * (((x - w / 2.0).powi(2) + (y - h / 2.0).powi(2)).sqrt() / w),
    );
    let main = jitter(item.colour.rgb(), rng, 0.08);
    let (ox, oy) = (uniform(rng, -2.5, 2.5), uniform(rng, -2.5, 2.5));
    let (cx, cy) = (16.0 + ox, 16.0 + oy);
    if item.glowing {
        let glow = item.colour.rgb().map(|v| (v * 0.6 + 0.4).min(1.0));
        for y in 0..c.h as i32 {
            for x in 0..c.w as i32 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let a = (1.0 - d / 15.0).clamp(0.0, 1.0) * 0.75;
                c.blend(x, y, glow, a);
            }
        }
    }
    let s = uniform(rng, 0.85, 1.1);
    match item.kind {
        ItemKind::Sword => {
            c.line(
                cx - 8.0 * s,
                cy + 8.0 * s,
                cx + 9.0 * s,
                cy - 9.0 * s,
                3.0,
                main,
            );
            c.line(
                cx - 9.0 * s,
                cy + 3.0 * s,
                cx - 3.0 * s,
                cy + 9.0 * s,
                2.0,
                STEEL,
            );
            c.line(
                cx - 12.0 * s,
                cy + 12.0 * s,
                cx - 7.0 * s,
                cy + 7.0 * s,
                2.5,
                WOOD,
            );
        }
        ItemKind::Axe => {
            c.line(
                cx - 9.0 * s,
                cy + 11.0 * s,
                cx + 6.0 * s,
                cy - 10.0 * s,
                2.5,
                WOOD,
            );
            c.circle(cx + 5.0 * s, cy - 6.0 * s, 6.5 * s, main);
            c.circle(cx + 1.0 * s, cy - 9.0 * s, 3.5 * s, bg);
        }
        ItemKind::Bow => {
            c.ring(cx + 6.0 * s, cy, 11.0 * s, 13.5 * s, main);
            c.rect(0.0, 0.0, cx + 4.0 * s, 32.0, bg);
            c.line(
                cx + 4.0 * s,
                cy - 12.0 * s,
                cx + 4.0 * s,
                cy + 12.0 * s,
                1.0,
                [0.9, 0.9, 0.85],
            );
        }
        ItemKind::Shield => {
            c.rect(
                cx - 9.0 * s,
                cy - 10.0 * s,
                cx + 9.0 * s,
                cy + 2.0 * s,
                main,
            );
            c.triangle(
                [
                    (cx - 9.0 * s, cy + 2.0 * s),
                    (cx + 9.0 * s, cy + 2.0 * s),
                    (cx, cy + 12.0 * s),
                ],
                main,
                1.0,
            );
            c.line(cx, cy - 9.0 * s, cx, cy + 10.0 * s, 2.0, STEEL);
        }
        ItemKind::Helmet => {
            c.circle(cx, cy, 9.5 * s, main);
            c.rect(cx - 10.0 * s, cy, cx + 10.0 * s, cy + 10.0 * s, bg);
            c.rect(cx - 11.0 * s, cy, cx + 11.0 * s, cy + 3.0 * s, main);
            c.rect(
                cx - 1.5 * s,
                cy - 2.0 * s,
                cx + 1.5 * s,
                cy + 7.0 * s,
                STEEL,
            );
        }
        ItemKind::Potion => {
            c.circle(cx, cy + 3.0 * s, 8.0 * s, main);
            c.rect(
                cx - 2.5 * s,
                cy - 11.0 * s,
                cx + 2.5 * s,
                cy - 3.0 * s,
                [0.75, 0.85, 0.9],
            );
            c.rect(
                cx - 3.0 * s,
                cy - 13.0 * s,
                cx + 3.0 * s,
                cy - 10.0 * s,
                WOOD,
            );
            c.circle(cx - 3.0 * s, cy + 0.5 * s, 1.6 * s, [1.0, 1.0, 1.0]);
        }
        ItemKind::Gem => {
            c.triangle(
                [
                    (cx - 9.0 * s, cy - 3.0 * s),
                    (cx + 9.0 * s, cy - 3.0 * s),
                    (cx, cy + 11.0 * s),
                ],
                main,
                1.2,
            );
            c.triangle(
                [
                    (cx - 9.0 * s, cy - 3.0 * s),
                    (cx - 5.0 * s, cy - 9.0 * s),
                    (cx + 9.0 * s, cy - 3.0 * s),
                ],
                main,
                1.4,
            );
            c.triangle(
                [
                    (cx + 9.0 * s, cy - 3.0 * s),
                    (cx - 5.0 * s, cy - 9.0 * s),
                    (cx + 5.0 * s, cy - 9.0 * s),
                ],
                main,
                1.5,
            );
        }
        ItemKind::Ring => {
            c.ring(cx, cy + 2.0 * s, 5.5 * s, 9.0 * s, main);
            c.circle(cx, cy - 8.0 * s, 3.5 * s, [0.9, 0.95, 1.0]);
        }
        ItemKind::Key => {
            c.ring(cx - 6.0 * s, cy - 6.0 * s, 2.5 * s, 5.5 * s, main);
            c.line(
                cx - 2.0 * s,
                cy - 2.0 * s,
                cx + 10.0 * s,
                cy + 10.0 * s,
                2.5,
                main,
            );
            c.line(
                cx + 6.0 * s,
                cy + 6.0 * s,
                cx + 9.0 * s,
                cy + 3.0 * s,
                2.0,
                main,
            );
        }
        ItemKind::Scroll => {
            c.rect(
                cx - 8.0 * s,
                cy - 9.0 * s,
                cx + 8.0 * s,
                cy + 9.0 * s,
                [0.92, 0.86, 0.68],
            );
            c.rect(
                cx - 10.0 * s,
                cy - 11.0 * s,
                cx + 10.0 * s,
                cy - 8.0 * s,
                main,
            );
            c.rect(
                cx - 10.0 * s,
                cy + 8.0 * s,
                cx + 10.0 * s,
                cy + 11.0 * s,
                main,
            );
            for k in 0..3 {
                let y = cy - 4.0 * s + k as f32 * 4.0 * s;
                c.line(cx - 5.0 * s, y, cx + 5.0 * s, y, 1.0, [0.35, 0.3, 0.25]);
            }
        }
    }
}

fn draw_scene(c: &mut Canvas, scene: SceneSpec, rng: &mut NoiseRng) {
    let (w, h) = (c.w as f32, c.h as f32);
    let (top, bottom) = match scene.time {
        TimeOfDay::Dawn => ([0.45, 0.45, 0.75], [1.0, 0.7, 0.45]),
        TimeOfDay::Day => ([0.25, 0.55, 0.95], [0.7, 0.85, 1.0]),
        TimeOfDay::Dusk => ([0.3, 0.15, 0.45], [0.95, 0.45, 0.25]),
        TimeOfDay::Night => ([0.02, 0.02, 0.1], [0.1, 0.12, 0.3]),
    };
    let horizon = uniform(rng, 0.5, 0.62) * h;
    for y in 0..c.h {
        let t = (y as f32 / horizon).min(1.0);
        let col = [0, 1, 2].map(|k| top[k] * (1.0 - t) + bottom[k] * t);
        for x in 0..c.w {
            c.set(x as i32, y as i32, col);
        }
    }
    let light = match scene.time {
        TimeOfDay::Day => 1.0,
        TimeOfDay::Dawn => 0.8,
        TimeOfDay::Dusk => 0.6,
        TimeOfDay::Night => 0.3,
    };
    // Sun or stars and moons.
    match scene.time {
        TimeOfDay::Day | TimeOfDay::Dawn
            if scene.weather == Weather::Clear || scene.weather == Weather::Snow =>
        {
            let sx = uniform(rng, 8.0, w - 8.0);
            let sy = if scene.time == TimeOfDay::Day {
                uniform(rng, 4.0, 8.0)
            } else {
                horizon - 3.0
            };
            c.circle(sx, sy, 3.5, [1.0, 0.95, 0.6]);
        }
        TimeOfDay::Night | TimeOfDay::Dusk => {
            if scene.time == TimeOfDay::Night && scene.weather == Weather::Clear {
                for _ in 0..14 {
                    let (x, y) = (uniform(rng, 0.0, w), uniform(rng, 0.0, horizon * 0.8));
                    c.set(x as i32, y as i32, [0.9, 0.9, 1.0]);
                }
            }
            for m in 0..scene.moons {
                let x = w * (0.25 + 0.45 * m as f32) + uniform(rng, -4.0, 4.0);
                c.circle(
                    x,
                    uniform(rng, 5.0, 8.0),
                    3.0 - m as f32 * 0.5,
                    [0.95, 0.95, 0.85],
                );
            }
        }
        _ => {}
    }
    let shade = |col: [f32; 3]| col.map(|v| v * light);
    match scene.terrain {
        Terrain::Mountains => {
            let n = 3 + (rng.next_u64() % 2) as usize;
            for i in 0..n {
                let cx = w * (i as f32 + 0.5) / n as f32 + uniform(rng, -5.0, 5.0);
                let peak = uniform(rng, 4.0, horizon - 4.0);
                let half = uniform(rng, 12.0, 20.0);
                c.triangle(
                    [(cx - half, h), (cx, peak), (cx + half, h)],
                    shade([0.45, 0.42, 0.45]),
                    1.2,
                );
                let cap = peak + 4.0;
                let k = 4.0 / (h - peak) * half;
                c.triangle(
                    [(cx - k, cap), (cx, peak), (cx + k, cap)],
                    shade([0.95, 0.95, 1.0]),
                    1.0,
                );
            }
        }
        Terrain::Forest => {
            c.rect(0.0, horizon, w, h, shade([0.15, 0.35, 0.12]));
            for _ in 0..14 {
                let x = uniform(rng, 0.0, w);
                let base = uniform(rng, horizon + 2.0, h);
                let th = uniform(rng, 8.0, 14.0);
                c.triangle(
                    [(x - th * 0.35, base), (x, base - th), (x + th * 0.35, base)],
                    shade([0.08, 0.42, 0.12]),
                    1.3,
                );
            }
        }
        Terrain::Sea => {
            c.rect(0.0, horizon, w, h, shade([0.08, 0.3, 0.6]));
            for _ in 0..10 {
                let (x, y) = (uniform(rng, 0.0, w), uniform(rng, horizon + 2.0, h));
                c.line(x - 2.5, y, x + 2.5, y, 1.0, shade([0.6, 0.8, 0.95]));
            }
        }
        Terrain::Desert => {
            let phase = uniform(rng, 0.0, std::f32::consts::TAU);
            let amp = uniform(rng, 1.5, 3.5);
            c.fill(
                shade([0.9, 0.75, 0.42]),
                |x, y| y >= horizon + amp * (x / 9.0 + phase).sin(),
                |x, y| 1.1 - 0.25 * ((x / 7.0 + phase + y / 5.0).sin() * 0.5 + 0.5),
            );
        }
        Terrain::Village => {
            c.rect(0.0, horizon, w, h, shade([0.3, 0.5, 0.2]));
            let n = 3 + (rng.next_u64() % 3) as usize;
            for i in 0..n {
                let x = w * (i as f32 + 0.5) / n as f32 + uniform(rng, -3.0, 3.0);
                let base = horizon + uniform(rng, 4.0, 9.0);
                let hw = uniform(rng, 4.0, 6.0);
                c.rect(x - hw, base - 7.0, x + hw, base, shade([0.85, 0.8, 0.7]));
                c.triangle(
                    [
                        (x - hw - 1.5, base - 7.0),
                        (x, base - 12.0),
                        (x + hw + 1.5, base - 7.0),
                    ],
                    shade([0.7, 0.2, 0.15]),
                    1.2,
                );
                let window = if scene.time == TimeOfDay::Night {
                    [1.0, 0.85, 0.3]
                } else {
                    shade([0.3, 0.3, 0.4])
                };
                c.rect(x - 1.0, base - 5.0, x + 1.0, base - 3.0, window);
            }
        }
    }
    match scene.weather {
        Weather::Clear => {}
        Weather::Rain => {
            for _ in 0..40 {
                let (x, y) = (uniform(rng, 0.0, w), uniform(rng, 0.0, h));
                c.line(x, y, x - 1.0, y + 3.0, 0.8, [0.6, 0.65, 0.8]);
            }
        }
        Weather::Snow => {
            for _ in 0..45 {
                let (x, y) = (uniform(rng, 0.0, w), uniform(rng, 0.0, h));
                c.set(x as i32, y as i32, [1.0, 1.0, 1.0]);
            }
        }
        Weather::Fog => {
            for y in 0..c.h as i32 {
                for x in 0..c.w as i32 {
                    c.blend(x, y, [0.75, 0.75, 0.78], 0.45);
                }
            }
        }
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
