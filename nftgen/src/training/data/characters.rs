//! Characters: a villager drawn as a walk-cycle sheet — four directions (rows: down, left,
//! right, up) × three frames (columns: standing, left foot forward, right foot forward) of
//! 16×16 pixels, outlined, on the transparent key.
//!
//! Every frame of a sheet draws the same character: one role, one clothing colour, one hair
//! colour, and one look (skin, hair length, trousers) drawn once per sheet.

use super::palette::{KEY, ix, ramp};
use super::pixels::{OUTLINE, Pixels};
use super::{CharacterSpec, Facing, Hair, Role};
use crate::sampling::noise::NoiseRng;

/// Side of one frame in pixels.
pub const FRAME: i32 = crate::SheetLayout::FRAME as i32;
/// Frames per direction.
pub const FRAMES: i32 = crate::SheetLayout::COLUMNS as i32;

/// What varies between two characters of the same caption.
#[derive(Debug, Clone, Copy)]
struct Look {
    skin: u8,
    long_hair: bool,
    trousers: u8,
}

/// Rows of the body for a role (adults and the child differ).
#[derive(Debug, Clone, Copy)]
struct Body {
    /// Row of the top of the hair.
    top: i32,
    /// Rows of the head below the hair row.
    head: i32,
    /// Rows of the torso.
    torso: i32,
    /// Rows of the legs (the feet are the row below, 15).
    legs: i32,
}

impl Body {
    fn of(role: Role) -> Self {
        match role {
            Role::Child => Body {
                top: 4,
                head: 5,
                torso: 3,
                legs: 2,
            },
            _ => Body {
                top: 1,
                head: 6,
                torso: 4,
                legs: 3,
            },
        }
    }
    /// First torso row.
    fn t0(self) -> i32 {
        self.top + self.head + 1
    }
    /// First leg row.
    fn l0(self) -> i32 {
        self.t0() + self.torso
    }
    /// Row of the eyes.
    fn eyes(self) -> i32 {
        self.top + self.head - 2
    }
}

fn hair_colour(h: Hair) -> u8 {
    match h {
        Hair::Black => ix::CHARCOAL,
        Hair::Brown => ix::WOOD_DARK,
        Hair::Blond => 19,
        Hair::Red => 14,
        Hair::White => ix::PALE_GREY,
    }
}

/// Draws the sheet of `spec`: 48×64 palette indices.
pub(super) fn draw_sheet(spec: CharacterSpec, rng: &mut NoiseRng) -> Pixels {
    let look = Look {
        skin: ix::SKIN[(rng.next_u64() % 4) as usize],
        long_hair: rng.next_u64().is_multiple_of(3),
        trousers: [ix::WOOD_DARK, ix::DARK_GREY, 29][(rng.next_u64() % 3) as usize],
    };
    let mut sheet = Pixels::new(FRAME * FRAMES, FRAME * 4, KEY, false);
    for (row, facing) in Facing::ALL.iter().enumerate() {
        for frame in 0..FRAMES {
            let f = draw_frame(spec, look, *facing, frame);
            sheet.blit(&f, frame * FRAME, row as i32 * FRAME);
        }
    }
    sheet
}

/// One outlined 16×16 frame.
fn draw_frame(spec: CharacterSpec, look: Look, facing: Facing, frame: i32) -> Pixels {
    match facing {
        // The right-facing frames are the left-facing ones mirrored.
        Facing::Right => draw_frame(spec, look, Facing::Left, frame).mirrored(),
        _ => {
            let mut p = Pixels::new(FRAME, FRAME, KEY, false);
            let body = Body::of(spec.role);
            match facing {
                Facing::Left => side(&mut p, spec, look, body, frame),
                _ => front(&mut p, spec, look, body, frame, facing == Facing::Up),
            }
            p.outline(OUTLINE);
            p
        }
    }
}

/// A character seen from the front (`back`: from behind).
fn front(p: &mut Pixels, spec: CharacterSpec, look: Look, b: Body, frame: i32, back: bool) {
    let cloth = ramp(spec.clothing);
    let hair = hair_colour(spec.hair);
    let (t0, l0) = (b.t0(), b.l0());
    // Legs and feet: in a step one foot is a row higher (lifted).
    let lift = |leg: i32| i32::from((frame == 1 && leg == 1) || (frame == 2 && leg == 0));
    for (leg, x) in [(0, 6), (1, 8)] {
        let up = lift(leg);
        p.rect(x, l0, 2, b.legs - up, look.trousers);
        p.hline(x, l0 + b.legs - up, 2, ix::WOOD_DARKEST);
    }
    // Torso with a shaded side, arms, hands.
    p.rect(5, t0, 6, b.torso, cloth[1]);
    p.vline(if back { 5 } else { 10 }, t0, b.torso, cloth[0]);
    p.hline(6, t0, 4, cloth[2]);
    let swing = |arm: i32| match frame {
        1 => i32::from(arm == 0),
        2 => i32::from(arm == 1),
        _ => 0,
    };
    for (arm, x) in [(0, 4), (1, 11)] {
        let n = b.torso - 1 - swing(arm);
        p.vline(x, t0, n, cloth[0]);
        p.set(x, t0 + n, look.skin);
    }
    if spec.role != Role::Child {
        p.hline(5, l0 - 1, 6, ix::WOOD_DARK);
    }
    // Head: face, hair, eyes.
    p.rect(5, b.top + 1, 6, b.head, look.skin);
    p.hline(6, b.top, 4, hair);
    p.hline(5, b.top + 1, 6, hair);
    if back {
        p.rect(5, b.top + 1, 6, b.head - 1, hair);
        if look.long_hair {
            p.rect(5, b.top + b.head, 6, 2, hair);
        }
    } else {
        p.vline(
            5,
            b.top + 1,
            if look.long_hair { b.head + 1 } else { 2 },
            hair,
        );
        p.vline(
            10,
            b.top + 1,
            if look.long_hair { b.head + 1 } else { 2 },
            hair,
        );
        p.set(6, b.eyes(), ix::BLACK);
        p.set(9, b.eyes(), ix::BLACK);
    }
    role_front(p, spec, look.skin, b, back, frame);
}

/// What the role adds seen from the front or the back.
fn role_front(p: &mut Pixels, spec: CharacterSpec, skin: u8, b: Body, back: bool, frame: i32) {
    let cloth = ramp(spec.clothing);
    let (t0, l0) = (b.t0(), b.l0());
    match spec.role {
        Role::Blacksmith => {
            if back {
                p.hline(5, t0 + 1, 6, ix::WOOD_DARK);
            } else {
                p.rect(6, t0 + 1, 4, b.torso + 1, ix::WOOD);
                p.hline(6, t0 + 1, 4, ix::WOOD_LIGHT);
            }
            // The hammer in the right hand (on the left of a back view).
            let x = if back { 3 } else { 12 };
            p.vline(x, t0 + 1, 3, ix::WOOD_DARK);
            p.hline(x - 1, t0, 3, ix::GREY);
        }
        Role::Merchant => {
            if back {
                p.rect(6, t0, 4, b.torso + 1, ix::TAN);
                p.hline(6, t0, 4, ix::WOOD_LIGHT);
                p.hline(6, t0 + b.torso, 4, ix::WOOD);
            } else {
                p.vline(6, t0, 3, ix::WOOD_DARK);
                p.vline(9, t0, 3, ix::WOOD_DARK);
                p.rect(9, l0 - 1, 2, 2, 18);
            }
        }
        Role::Oracle => {
            // A robe to the feet over the legs, a hood, a staff with a shining orb.
            robe(p, cloth, l0, (4, 8), frame, [6, 9]);
            p.rect(4, b.top, 8, b.head + 1, cloth[0]);
            if !back {
                p.rect(6, b.top + 2, 4, b.head - 1, skin);
                p.set(6, b.eyes(), ix::BLACK);
                p.set(9, b.eyes(), ix::BLACK);
            }
            let x = if back { 2 } else { 13 };
            p.vline(x, b.top + 1, 15 - b.top, ix::WOOD_DARK);
            p.rect(x, b.top - 1, 1, 2, ramp(super::Colour::Cyan)[2]);
        }
        Role::Guard => {
            p.rect(5, b.top, 6, 3, ix::LIGHT_GREY);
            p.hline(5, b.top + 2, 6, ix::MID_GREY);
            if !back {
                p.set(7, b.top + 3, ix::MID_GREY);
                p.set(8, b.top + 3, ix::MID_GREY);
            }
            p.set(4, t0, ix::MID_GREY);
            p.set(11, t0, ix::MID_GREY);
            let x = if back { 2 } else { 13 };
            p.vline(x, 2, 14, ix::WOOD_DARK);
            p.vline(x, 0, 2, ix::PALE_GREY);
        }
        Role::Farmer => {
            p.rect(5, b.top - 1, 6, 2, 18);
            p.hline(3, b.top + 1, 10, 19);
        }
        Role::Child => {}
        Role::Traveller => {
            if back {
                p.rect(4, t0, 8, b.torso + 2, cloth[0]);
                p.hline(4, t0, 8, cloth[1]);
            } else {
                p.vline(4, t0, b.torso + 1, cloth[0]);
                p.vline(11, t0, b.torso + 1, cloth[0]);
                p.hline(5, t0, 6, cloth[0]);
            }
        }
    }
}

/// An oracle's robe from the belt (row `l0 - 1`) to the feet over `(x, width)` columns, with a
/// dark hem; in a step, the foot at `feet[frame - 1]` shows under it.
fn robe(
    p: &mut Pixels,
    cloth: [u8; 4],
    l0: i32,
    (x, width): (i32, i32),
    frame: i32,
    feet: [i32; 2],
) {
    p.rect(x, l0 - 1, width, 16 - (l0 - 1), cloth[1]);
    p.hline(x, 15, width, cloth[0]);
    if frame > 0 {
        p.set(feet[(frame - 1) as usize], 15, ix::WOOD_DARKEST);
    }
}

/// A character seen from the side, facing left.
fn side(p: &mut Pixels, spec: CharacterSpec, look: Look, b: Body, frame: i32) {
    let cloth = ramp(spec.clothing);
    let hair = hair_colour(spec.hair);
    let (t0, l0) = (b.t0(), b.l0());
    // Legs: together when standing, apart in a step (the front one ahead of the body).
    let legs: &[(i32, i32)] = match frame {
        0 => &[(7, 0)],
        1 => &[(5, 0), (9, 0)],
        _ => &[(6, 1), (8, 0)],
    };
    for &(x, up) in legs {
        p.rect(x, l0, 2, b.legs - up, look.trousers);
        p.hline(x, l0 + b.legs - up, 2, ix::WOOD_DARKEST);
    }
    p.rect(6, t0, 4, b.torso, cloth[1]);
    p.vline(9, t0, b.torso, cloth[0]);
    if spec.role != Role::Child {
        p.hline(6, l0 - 1, 4, ix::WOOD_DARK);
    }
    // The near arm swings with the step.
    let hand_x = match frame {
        1 => 6,
        2 => 9,
        _ => 7,
    };
    p.vline(7, t0, b.torso - 1, cloth[0]);
    p.set(hand_x, t0 + b.torso - 1, look.skin);
    // Head facing left: face on the left, hair on the back of the head.
    p.rect(5, b.top + 1, 6, b.head, look.skin);
    p.hline(6, b.top, 4, hair);
    p.hline(5, b.top + 1, 6, hair);
    p.rect(
        8,
        b.top + 1,
        3,
        if look.long_hair { b.head + 1 } else { 3 },
        hair,
    );
    p.set(6, b.eyes(), ix::BLACK);
    role_side(p, spec, look.skin, b, frame);
}

/// What the role adds seen from the side.
fn role_side(p: &mut Pixels, spec: CharacterSpec, skin: u8, b: Body, frame: i32) {
    let cloth = ramp(spec.clothing);
    let (t0, l0) = (b.t0(), b.l0());
    match spec.role {
        Role::Blacksmith => {
            p.rect(5, t0 + 1, 2, b.torso + 1, ix::WOOD);
            p.vline(4, t0 + 1, 3, ix::WOOD_DARK);
            p.hline(3, t0, 3, ix::GREY);
        }
        Role::Merchant => {
            p.rect(10, t0, 2, b.torso, ix::TAN);
            p.vline(11, t0, b.torso, ix::WOOD_LIGHT);
            p.set(6, l0 - 1, 18);
        }
        Role::Oracle => {
            robe(p, cloth, l0, (5, 6), frame, [5, 6]);
            p.rect(5, b.top, 6, b.head + 1, cloth[0]);
            p.rect(5, b.top + 2, 3, b.head - 1, skin);
            p.set(6, b.eyes(), ix::BLACK);
            p.vline(3, b.top + 1, 15 - b.top, ix::WOOD_DARK);
            p.rect(3, b.top - 1, 1, 2, ramp(super::Colour::Cyan)[2]);
        }
        Role::Guard => {
            p.rect(5, b.top, 6, 3, ix::LIGHT_GREY);
            p.hline(5, b.top + 2, 6, ix::MID_GREY);
            p.set(8, t0, ix::MID_GREY);
            p.vline(4, 2, 14, ix::WOOD_DARK);
            p.vline(4, 0, 2, ix::PALE_GREY);
        }
        Role::Farmer => {
            p.rect(5, b.top - 1, 6, 2, 18);
            p.hline(3, b.top + 1, 10, 19);
        }
        Role::Child => {}
        Role::Traveller => {
            p.rect(9, t0, 3, b.torso + 2, cloth[0]);
        }
    }
}
