//! Scenes: a terrain under a sky that shows the time of day, with weather and moons.

use super::canvas::{Canvas, uniform};
use super::{SceneSpec, Terrain, TimeOfDay, Weather};
use crate::sampling::noise::NoiseRng;

/// Draws `scene`. With `pixel_art` (the second data set, snapped to the palette afterwards),
/// night is lighter and fog thinner, so that a night or a foggy scene keeps more than one or
/// two palette colours.
pub(super) fn draw_scene(c: &mut Canvas, scene: SceneSpec, rng: &mut NoiseRng, pixel_art: bool) {
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
        TimeOfDay::Night if pixel_art => 0.55,
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
                    c.blend(
                        x,
                        y,
                        [0.75, 0.75, 0.78],
                        if pixel_art { 0.25 } else { 0.45 },
                    );
                }
            }
        }
    }
}
