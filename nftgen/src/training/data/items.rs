//! Items: weapons, armour, potions, gems and other loot.

use super::canvas::{Canvas, STEEL, WOOD, jitter, uniform};
use super::palette::{KEY, PALETTE, ix, nearest, ramp};
use super::pixels::{OUTLINE, Pixels};
use super::{Colour, ItemKind, ItemSpec};
use crate::sampling::noise::NoiseRng;

/// The flat background of items drawn for the second data set, which the palette step turns
/// into the key (magenta; no palette colour but the key is near it).
pub(super) const KEY_RGB: [f32; 3] = [1.0, 0.0, 1.0];

/// Draws `item` and returns its centre. With `key`, the background is flat [`KEY_RGB`] and
/// there is no glow (the second data set draws both in palette colours); the random stream is
/// used alike either way.
pub(super) fn draw_item(
    c: &mut Canvas,
    item: ItemSpec,
    rng: &mut NoiseRng,
    key: bool,
) -> (f32, f32) {
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
    if key {
        bg = KEY_RGB;
        c.fill(bg, |_, _| true, |_, _| 1.0);
    } else {
        c.fill(
            bg,
            |_, _| true,
            |x, y| 1.2 - 0.6 * (((x - w / 2.0).powi(2) + (y - h / 2.0).powi(2)).sqrt() / w),
        );
    }
    let main = jitter(item.colour.rgb(), rng, 0.08);
    let (ox, oy) = (uniform(rng, -2.5, 2.5), uniform(rng, -2.5, 2.5));
    let (cx, cy) = (16.0 + ox, 16.0 + oy);
    if item.glowing && !key {
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
    (cx, cy)
}

/// An item of the second data set: drawn on the key, snapped to the palette, outlined, with
/// its glow as a light rim in a dark halo of its colour's ramp, on a flat background.
pub(super) fn draw_item_v2(item: ItemSpec, rng: &mut NoiseRng) -> Pixels {
    let (w, h) = super::ITEM_SIZE;
    let mut c = Canvas::new(w as usize, h as usize);
    let (cx, cy) = draw_item(&mut c, item, rng, true);
    let mut p = Pixels::new(w as i32, h as i32, KEY, false);
    for (i, px) in c.to_rgba8().chunks(4).enumerate() {
        // Shaded key (a carved-out part) is still the key.
        let key = px[1] < 40 && px[0] > 120 && px[2] > 120;
        if !key {
            p.px[i] = 1 + nearest(&PALETTE[1..], [px[0], px[1], px[2]]) as u8;
        }
    }
    p.outline(OUTLINE);
    let r = ramp(item.colour);
    if item.glowing {
        // A light rim around the outline, in a dark halo.
        p.outline(r[2]);
    }
    let pick = |rng: &mut NoiseRng, all: &[u8]| all[(rng.next_u64() % all.len() as u64) as usize];
    let bg = if item.colour == Colour::Black {
        pick(rng, &[ix::LIGHT_GREY, ix::PALE_GREY])
    } else {
        pick(rng, &[ix::CHARCOAL, ix::DARK_GREY, 55, 56])
    };
    for y in 0..p.h {
        for x in 0..p.w {
            if p.get(x, y) != KEY {
                continue;
            }
            let d2 = (x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2);
            let glow = if item.glowing && d2 <= 13.0 * 13.0 {
                r[0]
            } else {
                bg
            };
            p.set(x, y, glow);
        }
    }
    p
}
