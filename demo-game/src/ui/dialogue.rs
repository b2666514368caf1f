//! The dialogue box with the NPC's portrait, the text box the player types into, and the
//! speech bubbles and badges over the NPCs.

use bevy::prelude::*;

use super::widgets::{panel, show, text};
use crate::gameplay::art::VillageArt;
use crate::gameplay::rules::{Addressee, Dialogue, Mode, TypedText};
use crate::gameplay::village::{Badge, Bubble, Villager, sheet_of};
use crate::save::SaveGame;

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

/// The dialogue box, the text box and the bubbles.
pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn).add_systems(
        Update,
        (dialogue_box, bubbles).in_set(crate::app::AppSystems::Ui),
    );
}

fn spawn(mut commands: Commands) {
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
                ImageNode::default(),
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
}

/// A colour for an emotion (the portrait's background takes it on).
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
    mut portrait: Single<(&mut BackgroundColor, &mut ImageNode), With<Portrait>>,
    art: Res<VillageArt>,
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
    // The portrait: the NPC's own painted face (the first frame of their sheet) on the colour
    // of their mood.
    let (background, image) = &mut *portrait;
    background.set_if_neq(BackgroundColor(
        villager.colour.mix(&emotion_colour(&villager.emotion), 0.6),
    ));
    if let Some((sheet, Some(layout))) = art.0.get(sheet_of(&villager.name))
        && image.image != *sheet
    {
        **image = ImageNode::from_atlas_image(
            sheet.clone(),
            TextureAtlas {
                layout: layout.clone(),
                index: 0,
            },
        );
    }
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
    villagers: Query<(Entity, &Villager, &Children)>,
    mut bubbles: Query<&mut Text2d, (With<Bubble>, Without<Badge>)>,
    mut badges: Query<&mut Text2d, (With<Badge>, Without<Bubble>)>,
) {
    for (entity, villager, children) in &villagers {
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
