//! The f32 canvas the procedural samples are drawn on.

use crate::sampling::noise::NoiseRng;

/// Uniform value in [lo, hi) from the stream.
pub(super) fn uniform(rng: &mut NoiseRng, lo: f32, hi: f32) -> f32 {
    let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    lo + (hi - lo) * u
}

pub(super) struct Canvas {
    pub(super) w: usize,
    pub(super) h: usize,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    pub(super) fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![[0.0; 3]; w * h],
        }
    }

    pub(super) fn blend(&mut self, x: i32, y: i32, c: [f32; 3], a: f32) {
        if x < 0 || y < 0 || x >= self.w as i32 || y >= self.h as i32 {
            return;
        }
        let p = &mut self.px[y as usize * self.w + x as usize];
        for k in 0..3 {
            p[k] = p[k] * (1.0 - a) + c[k] * a;
        }
    }

    pub(super) fn set(&mut self, x: i32, y: i32, c: [f32; 3]) {
        self.blend(x, y, c, 1.0);
    }

    /// Fills pixels whose centre satisfies `inside`, shading by `shade(x, y)`.
    pub(super) fn fill(
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

    pub(super) fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [f32; 3]) {
        self.fill(
            c,
            |x, y| x >= x0 && x < x1 && y >= y0 && y < y1,
            |x, _| 1.1 - 0.3 * (x - x0) / (x1 - x0).max(1.0),
        );
    }

    pub(super) fn circle(&mut self, cx: f32, cy: f32, r: f32, c: [f32; 3]) {
        self.fill(
            c,
            |x, y| (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            |x, y| 1.15 - 0.35 * (((x - cx) + (y - cy)) / (2.0 * r) + 0.5),
        );
    }

    pub(super) fn ring(&mut self, cx: f32, cy: f32, r0: f32, r1: f32, c: [f32; 3]) {
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
    pub(super) fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, c: [f32; 3]) {
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

    pub(super) fn triangle(&mut self, p: [(f32, f32); 3], c: [f32; 3], shade_top: f32) {
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

    pub(super) fn to_rgba8(&self) -> Vec<u8> {
        self.px
            .iter()
            .flat_map(|p| {
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [q(p[0]), q(p[1]), q(p[2]), 255]
            })
            .collect()
    }
}

pub(super) fn jitter(c: [f32; 3], rng: &mut NoiseRng, amount: f32) -> [f32; 3] {
    let s = uniform(rng, 1.0 - amount, 1.0 + amount);
    c.map(|v| (v * s).clamp(0.0, 1.0))
}

pub(super) const WOOD: [f32; 3] = [0.45, 0.28, 0.12];
pub(super) const STEEL: [f32; 3] = [0.62, 0.64, 0.68];
