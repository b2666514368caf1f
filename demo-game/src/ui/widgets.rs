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

/// A full-window screen over the village, its children centred in a column, gone when the game
/// leaves `screen`.
pub fn full_screen(screen: crate::screens::Screen, row_gap: f32) -> impl Bundle {
    (
        DespawnOnExit(screen),
        Node {
            width: percent(100),
            height: percent(100),
            flex_direction: FlexDirection::Column,
            justify_content: JustifyContent::Center,
            align_items: AlignItems::Center,
            row_gap: px(row_gap),
            ..default()
        },
        BackgroundColor(Color::srgb(0.06, 0.07, 0.1)),
        GlobalZIndex(10),
    )
}

/// A progress bar `width` wide and `height` pixels high whose fill (empty at first) carries
/// `marker`: set the fill's `Node::width` to a percentage.
pub fn progress_bar(width: Val, height: f32, marker: impl Component) -> impl Bundle {
    (
        Node {
            width,
            height: px(height),
            ..default()
        },
        BackgroundColor(Color::srgb(0.2, 0.2, 0.25)),
        children![(
            Node {
                width: percent(0),
                height: percent(100),
                ..default()
            },
            BackgroundColor(Color::srgb(0.95, 0.7, 0.2)),
            marker,
        )],
    )
}
