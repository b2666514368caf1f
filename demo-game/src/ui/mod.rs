//! What the player sees: status and hints, inventory, the dialogue box and text box, speech
//! bubbles, the altar's progress bar, the shop panel and the gallery. Each part spawns its own
//! panel from the [`widgets`] and updates it in [`AppSystems::Ui`](crate::app::AppSystems::Ui).

mod altar;
mod dialogue;
mod gallery;
mod hud;
mod shop;
pub mod widgets;

use bevy::prelude::*;

/// The UI.
pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            hud::plugin,
            dialogue::plugin,
            altar::plugin,
            shop::plugin,
            gallery::plugin,
        ));
    }
}
