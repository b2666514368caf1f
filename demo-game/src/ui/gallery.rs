//! The gallery of minted art: a thumbnail, the prompt and the last verdict of each token.

use std::collections::HashMap;

use bevy::prelude::*;

use super::widgets::{coloured_text, panel, show, text};
use crate::gameplay::rules::short;
use crate::save::SaveGame;
use crate::screens::Screen;

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

/// The gallery panel.
pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Thumbnails>()
        .add_systems(Startup, spawn)
        .add_systems(
            Update,
            (gallery, finish_thumbnails).in_set(crate::app::AppSystems::Ui),
        );
}

fn spawn(mut commands: Commands) {
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

fn gallery(
    screen: Res<State<Screen>>,
    save: Res<SaveGame>,
    mut thumbnails: ResMut<Thumbnails>,
    images: Res<Assets<Image>>,
    mut panel: Single<&mut Visibility, With<GalleryPanel>>,
    rows: Single<Entity, With<GalleryRows>>,
    mut commands: Commands,
) {
    if !screen.is_changed() && !save.is_changed() {
        return;
    }
    let open = *screen.get() == Screen::Gallery;
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
