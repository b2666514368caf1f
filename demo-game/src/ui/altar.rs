//! The altar's progress bar and the picture on the altar.

use bevy::prelude::*;

use super::widgets::{panel, progress_bar, text};
use crate::gameplay::rules::AltarState;
use crate::gameplay::village::AltarPicture;

#[derive(Component)]
struct ProgressPanel;
#[derive(Component)]
struct ProgressFill;
#[derive(Component)]
struct ProgressText;

/// The altar's progress bar.
pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn)
        .add_systems(Update, altar.in_set(crate::app::AppSystems::Ui));
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            bottom: px(126),
            left: px(330),
            width: px(300),
            padding: UiRect::all(px(6)),
            flex_direction: FlexDirection::Column,
            row_gap: px(4),
            ..default()
        }),
        ProgressPanel,
        Visibility::Hidden,
        children![
            (text("", 13.0), ProgressText),
            progress_bar(percent(100), 12.0, ProgressFill),
        ],
    ));
}

fn altar(
    state: Res<AltarState>,
    mut picture: Single<&mut Sprite, With<AltarPicture>>,
    mut panel: Single<&mut Visibility, With<ProgressPanel>>,
    mut fill: Single<&mut Node, With<ProgressFill>>,
    mut label: Single<&mut Text, With<ProgressText>>,
) {
    if !state.is_changed() {
        return;
    }
    match &*state {
        AltarState::Painting {
            prompt,
            step,
            total,
        } => {
            **panel = Visibility::Inherited;
            let share = if *total == 0 {
                0.0
            } else {
                *step as f32 / *total as f32
            };
            fill.width = percent(share * 100.0);
            label.0 = format!("Painting \"{prompt}\": step {step} of {total}");
        }
        AltarState::Painted { image, .. } => {
            **panel = Visibility::Hidden;
            picture.image = image.clone();
            picture.color = Color::WHITE;
        }
        AltarState::Failed(reason) => {
            **panel = Visibility::Inherited;
            fill.width = percent(0);
            label.0.clone_from(reason);
        }
        AltarState::Idle => **panel = Visibility::Hidden,
    }
}
