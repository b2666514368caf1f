//! The title screen: the game's name, what Kiln does here, and Enter to start.

use bevy::prelude::*;

use super::Screen;
use crate::ui::widgets::{coloured_text, full_screen, text};

pub(super) fn plugin(app: &mut App) {
    app.add_systems(OnEnter(Screen::Title), spawn)
        .add_systems(Update, start.run_if(in_state(Screen::Title)));
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        full_screen(Screen::Title, 18.0),
        children![
            coloured_text("Kiln village", 56.0, Color::srgb(1.0, 0.78, 0.35)),
            text(
                "The villagers talk through a language model on your machine.",
                18.0
            ),
            text(
                "The altar paints what you describe; mint it, and anyone can check it.",
                18.0
            ),
            coloured_text("Press Enter to start", 22.0, Color::srgb(0.6, 0.85, 1.0)),
        ],
    ));
}

fn start(keys: Res<ButtonInput<KeyCode>>, mut next: ResMut<NextState<Screen>>) {
    if keys.just_pressed(KeyCode::Enter) || keys.just_pressed(KeyCode::Space) {
        next.set(Screen::Painting);
    }
}
