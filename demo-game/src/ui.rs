//! What the player sees: status and hints, inventory, the dialogue box and text box, speech
//! bubbles, the altar's progress bar, the shop panel and the gallery.

use std::collections::HashMap;

use bevy::prelude::*;
use bevy_kiln::{ArtDevice, ArtStatus, Backend, ChainStatus, NpcEngineStatus};

use crate::play::{Addressee, AltarState, Dialogue, Mode, Notice, TypedText, short};
use crate::save::SaveGame;
use crate::village::{AltarPicture, Badge, Bubble, Nearby, Villager};

/// The UI.
pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Thumbnails>()
            .add_systems(Startup, spawn_ui)
            .add_systems(
                Update,
                (
                    status_line,
                    inventory,
                    dialogue_box,
                    bubbles,
                    altar,
                    shop,
                    gallery,
                    finish_thumbnails,
                )
                    .after(crate::play::PlaySet),
            );
    }
}

#[derive(Component)]
struct StatusText;
#[derive(Component)]
struct NoticeText;
#[derive(Component)]
struct InventoryText;
#[derive(Component)]
struct DialoguePanel;
#[derive(Component)]
struct Portrait;
#[derive(Component)]
struct DialogueText;
#[derive(Component)]
struct TextBox;
#[derive(Component)]
struct TextBoxText;
#[derive(Component)]
struct ProgressPanel;
#[derive(Component)]
struct ProgressFill;
#[derive(Component)]
struct ProgressText;
#[derive(Component)]
struct ShopPanel;
#[derive(Component)]
struct ShopText;
#[derive(Component)]
struct GalleryPanel;
#[derive(Component)]
struct GalleryRows;

/// Gallery thumbnails by token id, and the ones still being decoded: a gallery file may come
/// from anyone, so it is read off the main thread (the PNG reader caps its size before
/// allocating) and a frame never waits for it.
#[derive(Resource, Default)]
struct Thumbnails(
    HashMap<String, Handle<Image>>,
    Vec<(Handle<Image>, bevy::tasks::Task<Option<Image>>)>,
);

/// Puts decoded thumbnails in place (an unreadable file leaves its placeholder empty).
fn finish_thumbnails(mut thumbnails: ResMut<Thumbnails>, mut images: ResMut<Assets<Image>>) {
    thumbnails.1.retain_mut(|(handle, task)| {
        let Some(decoded) = bevy::tasks::block_on(bevy::tasks::poll_once(task)) else {
            return true;
        };
        if let Some(image) = decoded {
            let _ = images.insert(handle.id(), image);
        }
        false
    });
}

fn text(s: impl Into<String>, size: f32) -> impl Bundle {
    coloured_text(s, size, Color::WHITE)
}

fn coloured_text(s: impl Into<String>, size: f32, colour: Color) -> impl Bundle {
    (
        Text::new(s),
        TextFont {
            font_size: FontSize::Px(size),
            ..default()
        },
        TextColor(colour),
    )
}

fn panel(node: Node) -> impl Bundle {
    (node, BackgroundColor(Color::srgba(0.05, 0.05, 0.08, 0.88)))
}

fn spawn_ui(mut commands: Commands) {
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
    // Bottom: the dialogue box with a portrait, and the text box.
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            bottom: px(0),
            left: px(0),
            width: percent(100),
            height: px(118),
            padding: UiRect::all(px(8)),
            column_gap: px(10),
            ..default()
        }),
        DialoguePanel,
        Visibility::Hidden,
        children![
            (
                Node {
                    width: px(64),
                    height: px(64),
                    ..default()
                },
                BackgroundColor(Color::WHITE),
                Portrait,
            ),
            (
                text("", 14.0),
                Node {
                    flex_grow: 1.0,
                    ..default()
                },
                DialogueText,
            ),
        ],
    ));
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            bottom: px(126),
            left: px(120),
            width: px(720),
            padding: UiRect::all(px(8)),
            border: UiRect::all(px(2)),
            ..default()
        }),
        BorderColor::all(Color::srgb(0.9, 0.8, 0.4)),
        TextBox,
        Visibility::Hidden,
        children![(text("", 16.0), TextBoxText)],
    ));
    // The altar's progress bar.
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
            (
                Node {
                    width: percent(100),
                    height: px(12),
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
                    ProgressFill,
                )],
            ),
        ],
    ));
    // The shop.
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
    // The gallery.
    commands.spawn((
        panel(Node {
            position_type: PositionType::Absolute,
            top: px(60),
            left: px(120),
            width: px(720),
            height: px(400),
            padding: UiRect::all(px(12)),
            flex_direction: FlexDirection::Column,
            row_gap: px(8),
            border: UiRect::all(px(2)),
            overflow: Overflow::clip(),
            ..default()
        }),
        BorderColor::all(Color::srgb(0.6, 0.5, 0.95)),
        GalleryPanel,
        Visibility::Hidden,
        children![
            text(
                "Gallery - your minted art (V verifies again, G or Esc closes)",
                16.0
            ),
            (
                Node {
                    flex_direction: FlexDirection::Column,
                    row_gap: px(6),
                    ..default()
                },
                GalleryRows,
            ),
        ],
    ));
}

fn show(visible: bool) -> Visibility {
    if visible {
        Visibility::Inherited
    } else {
        Visibility::Hidden
    }
}

fn status_line(
    npc: Res<NpcEngineStatus>,
    art: Res<ArtStatus>,
    device: Res<ArtDevice>,
    chain: Res<ChainStatus>,
    mode: Res<Mode>,
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
        (Mode::Shop(_), _) | (Mode::Gallery, _) => "Esc closes",
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

/// A colour for an emotion (the portrait and the NPC take it on).
pub fn emotion_colour(emotion: &str) -> Color {
    match emotion {
        "happy" | "amused" => Color::srgb(1.0, 0.85, 0.3),
        "proud" => Color::srgb(0.95, 0.6, 0.2),
        "angry" => Color::srgb(0.9, 0.2, 0.2),
        "tired" => Color::srgb(0.5, 0.5, 0.6),
        "curious" => Color::srgb(0.3, 0.8, 0.9),
        "nervous" | "worried" => Color::srgb(0.7, 0.5, 0.9),
        "sly" => Color::srgb(0.4, 0.7, 0.3),
        "calm" => Color::srgb(0.5, 0.75, 0.95),
        "mysterious" => Color::srgb(0.55, 0.3, 0.85),
        _ => Color::srgb(0.85, 0.85, 0.85),
    }
}

fn dialogue_box(
    dialogue: Res<Dialogue>,
    mode: Res<Mode>,
    typed: Res<TypedText>,
    save: Res<SaveGame>,
    villagers: Query<&Villager>,
    mut panel: Single<&mut Visibility, (With<DialoguePanel>, Without<TextBox>)>,
    mut portrait: Single<&mut BackgroundColor, With<Portrait>>,
    mut body: Single<&mut Text, (With<DialogueText>, Without<TextBoxText>)>,
    mut text_box: Single<&mut Visibility, (With<TextBox>, Without<DialoguePanel>)>,
    mut text_box_text: Single<&mut Text, (With<TextBoxText>, Without<DialogueText>)>,
) {
    let typing = matches!(*mode, Mode::Typing(_));
    text_box.set_if_neq(show(typing));
    if let Mode::Typing(to) = *mode {
        let who = match to {
            Addressee::Altar => "To the altar".to_string(),
            Addressee::Npc(npc) => villagers
                .get(npc)
                .map(|v| format!("To {}", v.name))
                .unwrap_or_default(),
        };
        text_box_text.set_if_neq(Text(format!("{who}: {}_", typed.0)));
    }
    let Some(villager) = dialogue.npc.and_then(|n| villagers.get(n).ok()) else {
        panel.set_if_neq(Visibility::Hidden);
        return;
    };
    panel.set_if_neq(Visibility::Inherited);
    portrait.set_if_neq(BackgroundColor(
        villager.colour.mix(&emotion_colour(&villager.emotion), 0.6),
    ));
    let lines = save
        .transcripts
        .get(&villager.name)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut shown: Vec<String> = lines
        .iter()
        .rev()
        .take(if dialogue.waiting { 2 } else { 3 })
        .rev()
        .map(|l| {
            if l.emotion.is_empty() {
                format!("{}: {}", l.who, l.text)
            } else {
                format!("{} ({}): {}", l.who, l.emotion, l.text)
            }
        })
        .collect();
    if dialogue.waiting {
        shown.push(format!(
            "{}: {}...",
            villager.name,
            dialogue.streaming.trim()
        ));
    }
    body.set_if_neq(Text(shown.join("\n")));
}

fn bubbles(
    dialogue: Res<Dialogue>,
    save: Res<SaveGame>,
    mut villagers: Query<(Entity, &Villager, &mut Sprite, &Children)>,
    mut bubbles: Query<&mut Text2d, (With<Bubble>, Without<Badge>)>,
    mut badges: Query<&mut Text2d, (With<Badge>, Without<Bubble>)>,
) {
    for (entity, villager, mut sprite, children) in &mut villagers {
        let colour = if villager.emotion.is_empty() {
            villager.colour
        } else {
            villager.colour.mix(&emotion_colour(&villager.emotion), 0.6)
        };
        if sprite.color != colour {
            sprite.color = colour;
        }
        let said = if dialogue.npc == Some(entity) {
            if dialogue.waiting {
                dialogue.streaming.trim().to_string()
            } else {
                save.transcripts
                    .get(&villager.name)
                    .and_then(|l| l.last())
                    .filter(|l| l.who == villager.name)
                    .map(|l| l.text.clone())
                    .unwrap_or_default()
            }
        } else {
            String::new()
        };
        for child in children.iter() {
            if let Ok(mut b) = bubbles.get_mut(child)
                && b.0 != said
            {
                b.0.clone_from(&said);
            }
            if let Ok(mut b) = badges.get_mut(child) {
                let badge = if villager.emotion.is_empty() {
                    villager.name.clone()
                } else {
                    format!("{} - {}", villager.name, villager.emotion)
                };
                if b.0 != badge {
                    b.0 = badge;
                }
            }
        }
    }
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

fn gallery(
    mode: Res<Mode>,
    save: Res<SaveGame>,
    mut thumbnails: ResMut<Thumbnails>,
    images: Res<Assets<Image>>,
    mut panel: Single<&mut Visibility, With<GalleryPanel>>,
    rows: Single<Entity, With<GalleryRows>>,
    mut commands: Commands,
) {
    if !mode.is_changed() && !save.is_changed() {
        return;
    }
    let open = *mode == Mode::Gallery;
    **panel = show(open);
    if !open {
        return;
    }
    commands.entity(*rows).despawn_children();
    if save.gallery.is_empty() {
        commands.entity(*rows).with_child(text(
            "Nothing minted yet: paint at the altar, then press M.",
            14.0,
        ));
        return;
    }
    for entry in save.gallery.iter().rev().take(5) {
        let thumb = match thumbnails.0.get(&entry.token_id) {
            Some(h) => h.clone(),
            None => {
                let handle = images.reserve_handle();
                let path = entry.image.clone();
                let task = bevy::tasks::AsyncComputeTaskPool::get().spawn(async move {
                    kiln_nftgen::png_io::read(&path)
                        .ok()
                        .map(|png| bevy_kiln::pixel_image(png.width, png.height, png.rgba))
                });
                thumbnails.1.push((handle.clone(), task));
                thumbnails.0.insert(entry.token_id.clone(), handle.clone());
                handle
            }
        };
        let colour = match entry.verdict.as_str() {
            "authentic" => Color::srgb(0.4, 0.95, 0.5),
            "verifying" => Color::srgb(0.9, 0.9, 0.5),
            _ => Color::srgb(0.95, 0.4, 0.4),
        };
        commands.entity(*rows).with_child((
            Node {
                column_gap: px(10),
                align_items: AlignItems::Center,
                ..default()
            },
            children![
                (
                    ImageNode::new(thumb),
                    Node {
                        width: px(56),
                        height: px(56),
                        ..default()
                    },
                ),
                text(
                    format!("{}  \"{}\"", short(&entry.token_id), entry.prompt),
                    14.0
                ),
                coloured_text(entry.verdict.clone(), 14.0, colour),
            ],
        ));
    }
}
