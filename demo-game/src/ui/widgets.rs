//! Widget functions: the text, panels and visibility every screen builds from.

use bevy::prelude::*;

/// White UI text of `size` pixels.
pub fn text(s: impl Into<String>, size: f32) -> impl Bundle {
    coloured_text(s, size, Color::WHITE)
}

/// UI text of `size` pixels in `colour`.
pub fn coloured_text(s: impl Into<String>, size: f32, colour: Color) -> impl Bundle {
    (
        Text::new(s),
        TextFont {
            font_size: FontSize::Px(size),
            ..default()
        },
        TextColor(colour),
    )
}

/// A dark, slightly transparent panel laid out by `node`.
pub fn panel(node: Node) -> impl Bundle {
    (node, BackgroundColor(Color::srgba(0.05, 0.05, 0.08, 0.88)))
}

/// Shown or hidden.
pub fn show(visible: bool) -> Visibility {
    if visible {
        Visibility::Inherited
    } else {
        Visibility::Hidden
    }
}

/// White world-space text of `size` pixels (names and speech over the village's people).
pub fn label(text: impl Into<String>, size: f32) -> impl Bundle {
    (
        Text2d::new(text),
        TextFont {
            font_size: FontSize::Px(size),
            ..default()
        },
        TextColor(Color::WHITE),
    )
}
