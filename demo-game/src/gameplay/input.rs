//! The keyboard: arrows/WASD walk, E interacts, typing fills the text box, Enter submits, M
//! mints, G opens the gallery, V re-verifies, Esc closes. It only writes [`Intent`]s (and moves
//! the player); the rules do the rest.

use bevy::input::keyboard::{Key, KeyboardInput};
use bevy::prelude::*;

use crate::app::AppSystems;
use crate::gameplay::rules::{Intent, Mode, TypedText};
use crate::gameplay::village::{Player, SPEED, WALK_MAX, WALK_MIN};
use crate::screens::Screen;

/// The keyboard: arrows/WASD walk, E interacts, typing fills the text box, Enter submits,
/// M mints, G opens the gallery, V re-verifies, Esc closes.
pub struct KeyboardPlugin;

impl Plugin for KeyboardPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            keyboard
                .in_set(AppSystems::Input)
                .run_if(in_state(Screen::Playing).or_else(in_state(Screen::Gallery))),
        );
    }
}

fn keyboard(
    keys: Res<ButtonInput<KeyCode>>,
    mut typing: MessageReader<KeyboardInput>,
    mode: Res<Mode>,
    mut typed: ResMut<TypedText>,
    mut intents: MessageWriter<Intent>,
    time: Res<Time>,
    player: Single<&mut Transform, With<Player>>,
) {
    if let Mode::Typing(_) = *mode {
        for key in typing.read().filter(|k| k.state.is_pressed()) {
            match &key.logical_key {
                Key::Enter => intents.write(Intent::Submit(typed.0.clone())),
                Key::Escape => intents.write(Intent::Close),
                Key::Backspace => {
                    typed.0.pop();
                    continue;
                }
                Key::Space => {
                    typed.0.push(' ');
                    continue;
                }
                Key::Character(c) if typed.0.chars().count() < 200 => {
                    typed.0.push_str(c);
                    continue;
                }
                _ => continue,
            };
        }
        return;
    }
    typing.clear();
    for (key, intent) in [
        (KeyCode::KeyE, Intent::Interact),
        (KeyCode::KeyM, Intent::Mint),
        (KeyCode::KeyG, Intent::ToggleGallery),
        (KeyCode::KeyV, Intent::Reverify),
        (KeyCode::Escape, Intent::Close),
    ] {
        if keys.just_pressed(key) {
            intents.write(intent);
        }
    }
    let mut dir = Vec2::ZERO;
    for (keys_for, d) in [
        ([KeyCode::ArrowLeft, KeyCode::KeyA], Vec2::NEG_X),
        ([KeyCode::ArrowRight, KeyCode::KeyD], Vec2::X),
        ([KeyCode::ArrowUp, KeyCode::KeyW], Vec2::Y),
        ([KeyCode::ArrowDown, KeyCode::KeyS], Vec2::NEG_Y),
    ] {
        if keys.any_pressed(keys_for) {
            dir += d;
        }
    }
    if dir != Vec2::ZERO {
        let mut transform = player.into_inner();
        let next = transform.translation.truncate() + dir.normalize() * SPEED * time.delta_secs();
        transform.translation = next
            .clamp(WALK_MIN, WALK_MAX)
            .extend(transform.translation.z);
    }
}
