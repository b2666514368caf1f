//! Items: weapons, armour, potions, gems and other loot.

use super::canvas::{Canvas, STEEL, WOOD, jitter, uniform};
use super::{Colour, ItemKind, ItemSpec};
use crate::sampling::noise::NoiseRng;

pub(super) fn draw_item(c: &mut Canvas, item: ItemSpec, rng: &mut NoiseRng) {
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
