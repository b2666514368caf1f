//! The status line (engines, chain, hints), the notice and the inventory.

use bevy::prelude::*;
use bevy_kiln::{ArtDevice, ArtStatus, Backend, ChainStatus, NpcEngineStatus};

use super::widgets::{coloured_text, panel, text};
use crate::gameplay::rules::{Addressee, Mode, Notice, short};
use crate::gameplay::village::Nearby;
use crate::save::SaveGame;
use crate::screens::Screen;

#[derive(Component)]
struct StatusText;
#[derive(Component)]
struct NoticeText;
#[derive(Component)]
struct InventoryText;

/// The status line, the notice and the inventory.
pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn).add_systems(
        Update,
        (status_line, inventory).in_set(crate::app::AppSystems::Ui),
    );
}

fn spawn(mut commands: Commands) {
    // Top: status and notice; top right: inventory.
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            top: px(0),
            left: px(0),
            width: percent(100),
            padding: UiRect::all(px(6)),
            flex_direction: FlexDirection::Column,
            ..default()
        }),
        children![
            (text("", 13.0), StatusText),
            (
                coloured_text("", 15.0, Color::srgb(1.0, 0.85, 0.4)),
                NoticeText
            ),
        ],
    ));
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            top: px(52),
            right: px(6),
            max_width: px(260),
            padding: UiRect::all(px(6)),
            ..default()
        }),
        children![(text("", 13.0), InventoryText)],
    ));
}

fn status_line(
    npc: Res<NpcEngineStatus>,
    art: Res<ArtStatus>,
    device: Res<ArtDevice>,
    chain: Res<ChainStatus>,
    mode: Res<Mode>,
    screen: Res<State<Screen>>,
    nearby: Res<Nearby>,
    notice: Res<Notice>,
    mut status: Single<&mut Text, (With<StatusText>, Without<NoticeText>)>,
    mut notice_text: Single<&mut Text, (With<NoticeText>, Without<StatusText>)>,
) {
    let npc = match &*npc {
        NpcEngineStatus::Loading => "loading".to_string(),
        NpcEngineStatus::Ready => "ready".to_string(),
        NpcEngineStatus::Unavailable(_) => "unavailable (fallback lines)".to_string(),
    };
    let art = match &*art {
        ArtStatus::Loading => "loading".to_string(),
        ArtStatus::Ready(id) => match device.backend {
            Some(Backend::Wgpu) => format!("{id} on GPU"),
            Some(_) => format!("{id} on CPU"),
            None => id.clone(),
        },
        ArtStatus::Unavailable(_) => "unavailable".to_string(),
    };
    let chain = match &*chain {
        ChainStatus::Connecting => "starting".to_string(),
        ChainStatus::Ready {
            account, chain_id, ..
        } => format!("chain {chain_id}, wallet {}", short(&account.to_string())),
        ChainStatus::Unavailable(_) => "unavailable".to_string(),
    };
    let hint = match (&*mode, *nearby) {
        (Mode::Typing(Addressee::Altar), _) => "describe an item, Enter paints it, Esc cancels",
        (Mode::Typing(_), _) => "type your line, Enter says it, Esc cancels",
        _ if *screen.get() == Screen::Gallery => "V verifies again | G or Esc closes",
        (Mode::Shop(_), _) => "Esc closes",
        (Mode::Walking, Nearby::Npc(_)) => "E talk | M mint | G gallery",
        (Mode::Walking, Nearby::Altar) => "E paint at the altar | M mint | G gallery",
        (Mode::Walking, Nearby::Nothing) => "arrows/WASD walk | G gallery",
    };
    status.set_if_neq(Text(format!("NPCs: {npc} | art: {art} | {chain} | {hint}")));
    if notice_text.0 != notice.0 {
        notice_text.0.clone_from(&notice.0);
    }
}

fn inventory(save: Res<SaveGame>, mut text: Single<&mut Text, With<InventoryText>>) {
    if !save.is_changed() {
        return;
    }
    text.0 = if save.inventory.is_empty() {
        "Inventory: empty".into()
    } else {
        format!("Inventory:\n- {}", save.inventory.join("\n- "))
    };
}
