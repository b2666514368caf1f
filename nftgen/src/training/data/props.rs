//! Buildings and props: 32×32 pixel art on the transparent key, outlined — houses, market
//! stalls, a well, trees, a fence, an anvil, an altar, barrels and crates.

use super::palette::{KEY, ix, ramp};
use super::pixels::{OUTLINE, Pixels};
use super::{Colour, PropKind, PropSpec};
use crate::sampling::noise::NoiseRng;

/// Side of a prop in pixels.
pub const PROP: i32 = 32;

fn pick(rng: &mut NoiseRng, n: i32) -> i32 {
    (rng.next_u64() % n as u64) as i32
}

/// Draws `spec` as 32×32 palette indices.
pub(super) fn draw_prop(spec: PropSpec, rng: &mut NoiseRng) -> Pixels {
    let mut p = Pixels::new(PROP, PROP, KEY, false);
    // Small offsets and sizes vary between samples of one caption.
    let dx = pick(rng, 3) - 1;
    let c = ramp(spec.colour.unwrap_or(Colour::Red));
    match spec.kind {
        PropKind::House => {
            let wall = [ix::TAN, ix::PALE_GREY, ix::WOOD_LIGHT][pick(rng, 3) as usize];
            let (x0, w) = (5 + dx, 22);
            p.rect(x0, 15, w, 15, wall);
            p.vline(x0 + w - 1, 15, 15, ix::WOOD);
            // The roof: rows widening down to the eaves, shaded, with a dark edge.
            for r in 0..11 {
                let half = 3 + r + r / 3;
                let cx = x0 + w / 2;
                p.hline(
                    cx - half,
                    4 + r,
                    2 * half,
                    if r % 3 == 2 { c[0] } else { c[1] },
                );
                p.set(cx - half, 4 + r, c[2]);
            }
            p.hline(x0 - 2, 15, w + 4, c[0]);
            // Door and window.
            let door = x0 + 3 + pick(rng, 4);
            p.rect(door, 22, 5, 8, ix::WOOD_DARK);
            p.set(door + 3, 26, 19);
            let win = if door > x0 + 10 { x0 + 3 } else { x0 + 14 };
            p.rect(win, 19, 5, 5, ramp(Colour::Blue)[3]);
            p.hline(win, 21, 5, ix::WOOD_DARK);
            p.vline(win + 2, 19, 5, ix::WOOD_DARK);
        }
        PropKind::Stall => {
            let x0 = 4 + dx;
            // Posts, counter, goods, striped awning.
            p.vline(x0 + 1, 10, 20, ix::WOOD_DARK);
            p.vline(x0 + 22, 10, 20, ix::WOOD_DARK);
            p.rect(x0, 20, 24, 9, ix::WOOD);
            p.hline(x0, 20, 24, ix::WOOD_LIGHT);
            p.hline(x0, 28, 24, ix::WOOD_DARK);
            for k in 0..4 {
                let goods = [ramp(Colour::Red)[2], ramp(Colour::Green)[2], 19, ix::TAN];
                p.rect(x0 + 3 + 5 * k, 17, 3, 3, goods[pick(rng, 4) as usize]);
            }
            for x in 0..26 {
                let stripe = if (x / 3) % 2 == 0 { c[1] } else { ix::WHITE };
                p.vline(x0 - 1 + x, 5, 6, stripe);
                p.set(
                    x0 - 1 + x,
                    11,
                    if (x / 3) % 2 == 0 {
                        c[0]
                    } else {
                        ix::PALE_GREY
                    },
                );
            }
        }
        PropKind::Well => {
            let x0 = 8 + dx;
            p.rect(x0, 20, 16, 10, ix::GREY);
            for (k, y) in [21, 24, 27].into_iter().enumerate() {
                p.hline(x0, y, 16, ix::DARK_GREY);
                p.vline(x0 + 4 + 4 * (k as i32 % 2), y + 1, 2, ix::DARK_GREY);
            }
            p.hline(x0, 20, 16, ix::LIGHT_GREY);
            p.rect(x0 + 2, 18, 12, 2, ramp(Colour::Blue)[0]);
            p.vline(x0 + 1, 8, 12, ix::WOOD_DARK);
            p.vline(x0 + 14, 8, 12, ix::WOOD_DARK);
            for r in 0..4 {
                p.hline(x0 - 1 + 2 - r / 2, 4 + r, 18 - 2 * (2 - r / 2), ix::WOOD);
            }
            p.vline(x0 + 8, 9, 6, ix::WOOD_LIGHT);
            p.rect(x0 + 7, 14, 3, 3, ix::WOOD_DARK);
        }
        PropKind::Oak => {
            let g = ramp(Colour::Green);
            let cx = 16 + dx;
            p.rect(cx - 2, 20, 4, 11, ix::WOOD_DARK);
            p.vline(cx + 1, 20, 11, ix::WOOD_DARKEST);
            p.disc(cx, 12, 10, g[0]);
            p.disc(cx - 1, 11, 8, g[1]);
            p.disc(cx - 3, 8, 4, g[2]);
            for _ in 0..6 {
                let (x, y) = (cx - 6 + pick(rng, 12), 5 + pick(rng, 12));
                p.set(x, y, g[3]);
            }
        }
        PropKind::Pine => {
            let g = ramp(Colour::Green);
            let cx = 16 + dx;
            p.rect(cx - 1, 25, 3, 6, ix::WOOD_DARK);
            for tier in 0..3 {
                let top = 2 + tier * 7;
                for r in 0..9 {
                    let half = 2 + r + tier;
                    p.hline(cx - half, top + r, 2 * half + 1, g[0]);
                    p.hline(cx - half + 1, top + r, half, ix::MOSS);
                }
            }
        }
        PropKind::Fence => {
            for x in (1..32).step_by(6) {
                p.rect(x + dx.max(0), 12, 3, 18, ix::WOOD);
                p.vline(x + dx.max(0) + 2, 12, 18, ix::WOOD_DARK);
                p.set(x + dx.max(0) + 1, 11, ix::WOOD);
            }
            for y in [16, 24] {
                p.rect(0, y, 32, 2, ix::WOOD_LIGHT);
                p.hline(0, y + 1, 32, ix::WOOD);
            }
        }
        PropKind::Anvil => {
            let x0 = 6 + dx;
            p.rect(x0 + 5, 22, 10, 9, ix::WOOD);
            p.vline(x0 + 14, 22, 9, ix::WOOD_DARK);
            p.rect(x0 + 7, 18, 6, 4, ix::DARK_GREY);
            p.rect(x0, 12, 20, 6, ix::GREY);
            p.hline(x0, 12, 20, ix::MID_GREY);
            for k in 0..4 {
                p.hline(x0 - 4 + k, 12 + k, 4 - k, ix::GREY);
            }
            p.hline(x0, 17, 20, ix::DARK_GREY);
        }
        PropKind::Altar => {
            let x0 = 5 + dx;
            p.rect(x0, 18, 22, 12, ix::MID_GREY);
            p.hline(x0, 18, 22, ix::LIGHT_GREY);
            p.vline(x0 + 21, 18, 12, ix::GREY);
            p.rect(x0 + 4, 22, 14, 2, ix::GREY);
            p.rect(x0 - 1, 16, 24, 2, ix::PALE_GREY);
            // The flame.
            let cx = x0 + 11;
            for r in 0..9 {
                let half = (r + 1) / 2;
                p.hline(cx - half, 7 + r, 2 * half + 1, c[1]);
            }
            for r in 0..6 {
                let half = r / 2;
                p.hline(cx - half, 10 + r, 2 * half + 1, c[2]);
            }
            p.vline(cx, 12, 3, c[3]);
        }
        PropKind::Barrel => {
            let x0 = 9 + dx;
            p.rect(x0, 10, 14, 20, ix::WOOD);
            p.vline(x0, 12, 16, ix::WOOD_DARK);
            p.vline(x0 + 13, 12, 16, ix::WOOD_DARK);
            p.vline(x0 + 4, 10, 20, ix::WOOD_LIGHT);
            for y in [13, 26] {
                p.rect(x0 - 1, y, 16, 2, ix::GREY);
            }
            p.hline(x0 + 1, 10, 12, ix::WOOD_DARK);
        }
        PropKind::Crate => {
            let x0 = 7 + dx;
            p.rect(x0, 12, 18, 18, ix::WOOD_LIGHT);
            for (x, y, w, h) in [
                (x0, 12, 18, 2),
                (x0, 28, 18, 2),
                (x0, 12, 2, 18),
                (x0 + 16, 12, 2, 18),
            ] {
                p.rect(x, y, w, h, ix::WOOD);
            }
            for k in 0..14 {
                p.set(x0 + 2 + k, 14 + k, ix::WOOD);
                p.set(x0 + 3 + k, 14 + k, ix::WOOD_DARK);
            }
        }
    }
    p.outline(OUTLINE);
    p
}
