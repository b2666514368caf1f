//! A canvas of palette indices for pixel art: characters, tiles and props are drawn pixel by
//! pixel in palette colours, with no blending, so every sample is palette-true by construction.

use super::palette::{KEY, ix};

/// An image of palette indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pixels {
    pub(super) w: i32,
    pub(super) h: i32,
    pub(super) px: Vec<u8>,
    /// Whether drawing wraps around the edges (seamless tiles).
    wrap: bool,
}

impl Pixels {
    /// A `w × h` image filled with `fill`; `wrap` makes every drawing wrap around the edges.
    pub(super) fn new(w: i32, h: i32, fill: u8, wrap: bool) -> Self {
        Self {
            w,
            h,
            px: vec![fill; (w * h) as usize],
            wrap,
        }
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        let (x, y) = if self.wrap {
            (x.rem_euclid(self.w), y.rem_euclid(self.h))
        } else {
            (x, y)
        };
        (x >= 0 && y >= 0 && x < self.w && y < self.h).then(|| (y * self.w + x) as usize)
    }

    /// The entry at (x, y) (wrapped on a wrapping canvas; the key outside a plain one).
    pub(super) fn get(&self, x: i32, y: i32) -> u8 {
        self.index(x, y).map_or(KEY, |i| self.px[i])
    }

    /// Sets one pixel (ignored outside a plain canvas).
    pub(super) fn set(&mut self, x: i32, y: i32, c: u8) {
        if let Some(i) = self.index(x, y) {
            self.px[i] = c;
        }
    }

    /// Fills the `w × h` rectangle at (x, y).
    pub(super) fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, c: u8) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A horizontal run of `n` pixels from (x, y).
    pub(super) fn hline(&mut self, x: i32, y: i32, n: i32, c: u8) {
        self.rect(x, y, n, 1, c);
    }

    /// A vertical run of `n` pixels from (x, y).
    pub(super) fn vline(&mut self, x: i32, y: i32, n: i32, c: u8) {
        self.rect(x, y, 1, n, c);
    }

    /// A filled disc of radius `r` (pixel centres within r + 0.5) around (cx, cy).
    pub(super) fn disc(&mut self, cx: i32, cy: i32, r: i32, c: u8) {
        let lim = r * r + r;
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy <= lim {
                    self.set(cx + dx, cy + dy, c);
                }
            }
        }
    }

    /// Outlines the figure: every key pixel next to (4-neighbour) a non-key pixel becomes `c`.
    pub(super) fn outline(&mut self, c: u8) {
        let before = self.clone();
        for y in 0..self.h {
            for x in 0..self.w {
                if before.get(x, y) != KEY {
                    continue;
                }
                let near = [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .any(|&(dx, dy)| !matches!(before.get(x + dx, y + dy), KEY));
                if near {
                    self.set(x, y, c);
                }
            }
        }
    }

    /// Copies `src` with its top-left corner at (x, y), key pixels included.
    pub(super) fn blit(&mut self, src: &Pixels, x: i32, y: i32) {
        for sy in 0..src.h {
            for sx in 0..src.w {
                self.set(x + sx, y + sy, src.get(sx, sy));
            }
        }
    }

    /// A flipped copy (mirror image left to right).
    pub(super) fn mirrored(&self) -> Pixels {
        let mut out = self.clone();
        for y in 0..self.h {
            for x in 0..self.w {
                out.set(self.w - 1 - x, y, self.get(x, y));
            }
        }
        out
    }
}

/// The outline colour of sprites.
pub(super) const OUTLINE: u8 = ix::BLACK;
