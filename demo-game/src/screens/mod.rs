//! The game's screens as Bevy [`States`]: the title, the village being painted, the village
//! itself and the gallery of minted art.

mod painting;
mod title;

use bevy::prelude::*;

/// Which screen is up.
#[derive(States, Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Screen {
    /// The title: the game's name and how to start.
    #[default]
    Title,
    /// The village's art is loaded from the cache or painted, with its progress on screen.
    Painting,
    /// Walking about the village.
    Playing,
    /// The gallery of minted art over the village.
    Gallery,
}

/// The screens.
pub struct ScreensPlugin;

impl Plugin for ScreensPlugin {
    fn build(&self, app: &mut App) {
        app.init_state::<Screen>()
            .add_plugins((title::plugin, painting::plugin));
    }
}
