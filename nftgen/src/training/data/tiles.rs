//! Ground tiles: 16×16 pixel-art textures that tile seamlessly on both axes. Every drawing
//! wraps around the edges (the canvas is a torus) and the whole tile is shifted by a random
//! amount, so no place in a tile is special: its right edge continues its left edge and its
//! bottom its top.

use super::palette::{ix, ramp};
use super::pixels::Pixels;
use super::{Colour, GroundKind, TileSpec};
use crate::sampling::noise::NoiseRng;

/// Side of a tile in pixels.
pub const TILE: i32 = crate::SheetLayout::TILE_SIZE.0 as i32;

fn pick(rng: &mut NoiseRng, n: i32) -> i32 {
    (rng.next_u64() % n as u64) as i32
}

/// Draws `spec` as 16×16 palette indices.
pub(super) fn draw_tile(spec: TileSpec, rng: &mut NoiseRng) -> Pixels {
    let base = match spec.ground {
        GroundKind::Grass => ramp(Colour::Green)[1],
        GroundKind::Dirt => ix::WOOD,
        GroundKind::Cobblestone => ix::DARK_GREY,
        GroundKind::Sand => ix::SAND,
        GroundKind::Water => ramp(Colour::Blue)[1],
        GroundKind::Planks => ix::WOOD_LIGHT,
        GroundKind::Snow => ix::WHITE,
    };
    let mut p = Pixels::new(TILE, TILE, base, true);
    match spec.ground {
        GroundKind::Grass => {
            let g = ramp(Colour::Green);
            for _ in 0..22 {
                let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                p.set(x, y, g[0]);
                p.set(x, y - 1, g[2]);
            }
            for _ in 0..6 {
                p.set(pick(rng, TILE), pick(rng, TILE), g[3]);
            }
            if let Some(c) = spec.flowers {
                let f = ramp(c);
                for _ in 0..5 {
                    let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                    p.set(x, y, f[2]);
                    p.set(x + 1, y, f[1]);
                    p.set(x, y + 1, f[1]);
                    p.set(x - 1, y, f[1]);
                    p.set(x, y - 1, f[3]);
                }
            }
        }
        GroundKind::Dirt => {
            for _ in 0..16 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::WOOD_DARK);
            }
            for _ in 0..5 {
                let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                p.rect(x, y, 2, 1, ix::GREY);
                p.set(x, y - 1, ix::MID_GREY);
            }
            for _ in 0..8 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::WOOD_LIGHT);
            }
        }
        GroundKind::Cobblestone => {
            // Two courses of stones 8 rows high; each course's joints are offset at random.
            for course in 0..2 {
                let y0 = course * 8;
                let mut x = pick(rng, TILE);
                let end = x + TILE;
                while x < end {
                    let w = (4 + pick(rng, 3)).min(end - x);
                    let w = if end - x - w < 3 { end - x } else { w };
                    let stone = [ix::GREY, ix::MID_GREY][pick(rng, 2) as usize];
                    p.rect(x + 1, y0 + 1, w - 1, 6, stone);
                    p.hline(x + 1, y0 + 1, w - 2, ix::LIGHT_GREY);
                    p.hline(x + 1, y0 + 6, w - 1, ix::DARK_GREY);
                    p.set(x + w - 1, y0 + 1, ix::GREY);
                    x += w;
                }
            }
        }
        GroundKind::Sand => {
            for _ in 0..3 {
                let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                for k in 0..7 {
                    p.set(x + k, y + (k / 3) % 2, ix::SAND_DARK);
                }
            }
            for _ in 0..10 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::TAN);
            }
            for _ in 0..5 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::WARM_LIGHT);
            }
        }
        GroundKind::Water => {
            let b = ramp(Colour::Blue);
            for _ in 0..10 {
                p.set(pick(rng, TILE), pick(rng, TILE), b[0]);
            }
            for _ in 0..6 {
                let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                p.hline(x, y, 3, b[2]);
                p.set(x + 1, y - 1, b[3]);
            }
        }
        GroundKind::Planks => {
            // Four boards of four rows; each board's joint sits at its own column.
            for board in 0..4 {
                let y = board * 4;
                p.hline(0, y + 3, TILE, ix::WOOD_DARK);
                p.hline(0, y, TILE, ix::TAN);
                let joint = pick(rng, TILE);
                p.vline(joint, y, 3, ix::WOOD_DARK);
                for _ in 0..2 {
                    p.hline(pick(rng, TILE), y + 1 + pick(rng, 2), 3, ix::WOOD);
                }
            }
        }
        GroundKind::Snow => {
            for _ in 0..14 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::PALE_GREY);
            }
            for _ in 0..6 {
                let (x, y) = (pick(rng, TILE), pick(rng, TILE));
                p.hline(x, y, 2, ramp(Colour::Blue)[3]);
            }
            for _ in 0..4 {
                p.set(pick(rng, TILE), pick(rng, TILE), ix::COLD_LIGHT);
            }
        }
    }
    // A random shift (whole tile, wrapping): no row or column is special.
    let (dx, dy) = (pick(rng, TILE), pick(rng, TILE));
    let mut out = Pixels::new(TILE, TILE, base, true);
    out.blit(&p, dx, dy);
    out
}
