//! Kiln's 64-colour palette: every pixel of the second data set is one of these colours.
//!
//! Entry 0 is the key: the background of characters and props. It is drawn as magenta (no other
//! entry is near it) and carries alpha 0, so a painted sprite comes out with a transparent
//! background. The other entries are a neutral ramp, four-step ramps of the eight item hues,
//! skin, wood, sand, earth, sky and light colours. A model trained on this data carries the
//! palette in its file and snaps its pixels to it (exact integer arithmetic: see
//! [`nearest`]).

/// Red, green, blue and alpha of each palette entry.
pub const PALETTE: [[u8; 4]; 64] = [
    // 0: the key (transparent background of sprites).
    [255, 0, 255, 0],
    // 1–8: neutrals, black to white.
    [16, 16, 20, 255],
    [40, 40, 48, 255],
    [68, 68, 78, 255],
    [100, 100, 112, 255],
    [136, 136, 148, 255],
    [176, 176, 186, 255],
    [214, 214, 220, 255],
    [246, 246, 248, 255],
    // 9–12: red (dark, mid, light, pale).
    [92, 20, 28, 255],
    [170, 36, 40, 255],
    [222, 70, 60, 255],
    [246, 140, 120, 255],
    // 13–16: orange.
    [120, 52, 16, 255],
    [200, 96, 24, 255],
    [242, 140, 40, 255],
    [252, 196, 120, 255],
    // 17–20: gold.
    [128, 96, 20, 255],
    [208, 164, 36, 255],
    [244, 208, 64, 255],
    [252, 238, 150, 255],
    // 21–24: green.
    [24, 72, 32, 255],
    [40, 128, 48, 255],
    [88, 180, 64, 255],
    [170, 224, 110, 255],
    // 25–28: cyan.
    [16, 84, 96, 255],
    [32, 150, 160, 255],
    [72, 204, 208, 255],
    [160, 236, 232, 255],
    // 29–32: blue.
    [24, 36, 110, 255],
    [40, 72, 190, 255],
    [80, 124, 236, 255],
    [150, 186, 252, 255],
    // 33–36: purple.
    [56, 24, 88, 255],
    [110, 48, 160, 255],
    [156, 96, 210, 255],
    [206, 160, 240, 255],
    // 37–40: pink.
    [120, 36, 80, 255],
    [200, 80, 140, 255],
    [240, 128, 180, 255],
    [252, 190, 220, 255],
    // 41–44: skin, light to dark.
    [250, 214, 176, 255],
    [226, 172, 124, 255],
    [176, 116, 76, 255],
    [110, 70, 46, 255],
    // 45–49: wood and leather, dark to light.
    [56, 34, 20, 255],
    [92, 58, 30, 255],
    [136, 88, 44, 255],
    [180, 128, 72, 255],
    [220, 180, 120, 255],
    // 50–51: sand.
    [236, 212, 150, 255],
    [204, 176, 108, 255],
    // 52–54: moss and olive.
    [52, 72, 28, 255],
    [92, 112, 40, 255],
    [136, 152, 64, 255],
    // 55–61: sky: night, deep blue, dusk blue, lavender, pale day, day blue, peach.
    [10, 12, 34, 255],
    [26, 32, 76, 255],
    [60, 70, 140, 255],
    [120, 118, 190, 255],
    [178, 214, 252, 255],
    [64, 140, 240, 255],
    [250, 178, 120, 255],
    // 62–63: warm and cold light.
    [255, 236, 170, 255],
    [230, 240, 255, 255],
];

/// The key entry (transparent background).
pub const KEY: u8 = 0;

/// Named entries the drawings use.
#[allow(missing_docs)]
pub mod ix {
    pub const BLACK: u8 = 1;
    pub const CHARCOAL: u8 = 2;
    pub const DARK_GREY: u8 = 3;
    pub const GREY: u8 = 4;
    pub const MID_GREY: u8 = 5;
    pub const LIGHT_GREY: u8 = 6;
    pub const PALE_GREY: u8 = 7;
    pub const WHITE: u8 = 8;
    pub const SKIN: [u8; 4] = [41, 42, 43, 44];
    pub const WOOD_DARKEST: u8 = 45;
    pub const WOOD_DARK: u8 = 46;
    pub const WOOD: u8 = 47;
    pub const WOOD_LIGHT: u8 = 48;
    pub const TAN: u8 = 49;
    pub const SAND: u8 = 50;
    pub const SAND_DARK: u8 = 51;
    pub const MOSS: u8 = 52;
    pub const OLIVE: u8 = 53;
    pub const OLIVE_LIGHT: u8 = 54;
    pub const WARM_LIGHT: u8 = 62;
    pub const COLD_LIGHT: u8 = 63;
}

/// The four-step ramp (dark, mid, light, pale) of an item colour.
pub fn ramp(colour: super::Colour) -> [u8; 4] {
    use super::Colour::*;
    match colour {
        Red => [9, 10, 11, 12],
        Orange => [13, 14, 15, 16],
        Gold => [17, 18, 19, 20],
        Green => [21, 22, 23, 24],
        Cyan => [25, 26, 27, 28],
        Blue => [29, 30, 31, 32],
        Purple => [33, 34, 35, 36],
        Pink => [37, 38, 39, 40],
        Silver => [4, 5, 6, 7],
        Black => [1, 2, 3, 4],
    }
}

pub use crate::model::sprite_q::ops::nearest_palette as nearest;

/// Replaces every RGBA8 pixel by its nearest entry of [`PALETTE`] (the pipeline's palette step,
/// [`crate::model::sprite_q::ops::snap_to_palette`]), alpha included.
pub fn snap(rgba: &mut [u8]) {
    crate::model::sprite_q::ops::snap_to_palette(&PALETTE, rgba);
}

/// The colour limit a model of this data set paints with (§9.7 of `RECIPE.md`, the model file's
/// `palette_colours`): `[width, height, most opaque colours]` per size — ground tiles 6,
/// items and props 9, scenes 12, character sheets 10. Each is below the most its kind's
/// samples use (tiles 7, items 11, props 12, scenes 16, sheets 13: `nftgen eval --data-set v2`
/// prints those ranges), so a painted picture reads as one hand-picked palette, not as
/// the speckle of every entry near a colour.
pub const COLOUR_LIMITS: [[u32; 3]; 4] = [[16, 16, 6], [32, 32, 9], [64, 32, 12], [48, 64, 10]];

/// RGBA8 pixels of an image of palette indices.
pub fn to_rgba8(indices: &[u8]) -> Vec<u8> {
    indices
        .iter()
        .flat_map(|&i| PALETTE[usize::from(i)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// The palette goes into every model trained on the second data set, and so into their
    /// hashes and their tokens' pixels: it is pinned.
    #[test]
    fn the_palette_is_pinned_and_snaps_exactly() {
        let bytes: Vec<u8> = PALETTE.iter().flatten().copied().collect();
        assert_eq!(
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "c2579f529e3054fc4f6262fe7a2ff8b2ff616f11bd3b324a52c1699aa13f5454"
        );
        // Every entry is its own nearest, and only the key is transparent.
        for (i, e) in PALETTE.iter().enumerate() {
            assert_eq!(nearest(&PALETTE, [e[0], e[1], e[2]]), i);
            assert_eq!(e[3] == 0, i == usize::from(KEY));
        }
        assert_eq!(nearest(&PALETTE, [250, 10, 240]), usize::from(KEY));
        assert_eq!(nearest(&PALETTE, [0, 0, 0]), usize::from(ix::BLACK));
        let mut px = vec![250, 10, 240, 255, 17, 17, 21, 255];
        snap(&mut px);
        assert_eq!(px, [255, 0, 255, 0, 16, 16, 20, 255]);
    }
}
