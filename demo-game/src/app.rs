//! The demo's shape: [`DemoPlugin`] adds the village, its rules, the UI and either the keyboard
//! or the scripted tour, and orders every frame's systems in [`AppSystems`].

use std::path::PathBuf;

use bevy::prelude::*;

use crate::gameplay::{input, rules, village};
use crate::{save, screens, tour, ui};

/// The window's (and the headless picture's) size in logical pixels.
pub const VIEW: UVec2 = UVec2::new(960, 600);

/// Settings the systems read.
#[derive(Resource, Debug, Clone)]
pub struct DemoConfig {
    /// The game's data directory.
    pub data_dir: PathBuf,
    /// Tour output directory.
    pub out: PathBuf,
    /// Rendering without a window.
    pub headless: bool,
    /// When the process started (for the time until the village is in place).
    pub launched: std::time::Instant,
}

/// The order of each frame's systems in `Update`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppSystems {
    /// The village moves: painted scenery arrives, people walk, who is in reach.
    World,
    /// What the player wants, from the keyboard or the tour: intents.
    Input,
    /// The game's rules act on intents and on the engines' results.
    Rules,
    /// The screen shows where things stand.
    Ui,
}

/// The demo game on top of Kiln's plugins (which the caller adds with its configuration).
pub struct DemoPlugin {
    /// Where the game keeps its files, and how it renders.
    pub config: DemoConfig,
    /// Play the scripted tour instead of reading the keyboard.
    pub tour: bool,
}

impl Plugin for DemoPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(
            Update,
            (
                AppSystems::World,
                AppSystems::Input,
                AppSystems::Rules,
                AppSystems::Ui,
            )
                .chain(),
        )
        .insert_resource(ClearColor(Color::srgb(0.08, 0.09, 0.12)))
        .insert_resource(save::SaveGame::load_or_default(&self.config.data_dir))
        .insert_resource(self.config.clone())
        .add_plugins((
            screens::ScreensPlugin,
            village::VillagePlugin,
            rules::RulesPlugin,
            ui::UiPlugin,
        ));
        if self.tour {
            app.add_plugins(tour::TourPlugin);
        } else {
            app.add_plugins(input::KeyboardPlugin);
        }
    }
}
