//! An NPC's shop panel.

use bevy::prelude::*;

use super::widgets::{panel, text};
use crate::gameplay::rules::Mode;
use crate::gameplay::village::Villager;

#[derive(Component)]
struct ShopPanel;
#[derive(Component)]
struct ShopText;

/// The shop panel.
pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, shop.in_set(crate::app::AppSystems::Ui));
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            top: px(120),
            left: px(300),
            width: px(360),
            padding: UiRect::all(px(12)),
            border: UiRect::all(px(2)),
            ..default()
        }),
        BorderColor::all(Color::srgb(0.3, 0.8, 0.5)),
        ShopPanel,
        Visibility::Hidden,
        children![(text("", 15.0), ShopText)],
    ));
}

fn shop(
    mode: Res<Mode>,
    villagers: Query<&Villager>,
    mut panel: Single<&mut Visibility, With<ShopPanel>>,
    mut body: Single<&mut Text, With<ShopText>>,
) {
    if !mode.is_changed() {
        return;
    }
    let Mode::Shop(npc) = *mode else {
        **panel = Visibility::Hidden;
        return;
    };
    **panel = Visibility::Inherited;
    body.0 = match villagers.get(npc) {
        Ok(v) if !v.wares.is_empty() => {
            format!(
                "{}'s shop\n\n- {}\n\n(Esc closes)",
                v.name,
                v.wares.join("\n- ")
            )
        }
        Ok(v) => format!("{} has nothing to sell.\n\n(Esc closes)", v.name),
        Err(_) => String::new(),
    };
}
