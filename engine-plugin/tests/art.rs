//! ArtPlugin on the shipped kiln-sprite weights.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

mod common;

use std::time::Duration;

use bevy::image::{Image, ImageSampler};
use bevy::prelude::*;
use bevy_kiln::{
    ArtBackend, ArtDevice, ArtFailed, ArtKind, ArtPlugin, ArtProgress, ArtReady, ArtStatus,
    Backend, GenerateArt,
};
use common::{app, record, run_until, seen};
use kiln_nftgen::{ArtModel, Control, GenerationRequest};

fn art_app(plugin: ArtPlugin) -> App {
    let mut app = app(plugin);
    record::<ArtProgress>(&mut app);
    record::<ArtReady>(&mut app);
    record::<ArtFailed>(&mut app);
    app
}

#[test]
fn an_art_request_becomes_an_image_with_the_pixels_nftgen_paints() {
    let mut app = art_app(ArtPlugin {
        steps: Some(8),
        ..Default::default()
    });
    let altar = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(GenerateArt {
        prompt: "a glowing green potion".into(),
        kind: ArtKind::Item,
        seed: 42,
        creator: None,
        requester: altar,
    });
    app.world_mut().write_message(GenerateArt {
        prompt: "a forest at dusk".into(),
        kind: ArtKind::Scene,
        seed: 1,
        creator: None,
        requester: altar,
    });
    // A character sheet: twelve 16×16 frames with their atlas layout.
    let villager = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(GenerateArt {
        prompt: "a guard in blue with black hair".into(),
        kind: ArtKind::Sheet,
        seed: 3,
        creator: None,
        requester: villager,
    });
    // A request the recipe refuses (an empty prompt) fails alone, with the reason.
    let stranger = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(GenerateArt {
        prompt: " ".into(),
        kind: ArtKind::Item,
        seed: 4,
        creator: None,
        requester: stranger,
    });
    run_until(&mut app, Duration::from_secs(60), "three pictures", |app| {
        seen::<ArtReady>(app).len() == 3 && seen::<ArtFailed>(app).len() == 1
    });
    let refused = &seen::<ArtFailed>(&app)[0];
    assert_eq!(refused.requester, stranger);
    assert!(refused.reason.contains("empty"), "{}", refused.reason);
    assert!(
        matches!(app.world().resource::<ArtStatus>(), ArtStatus::Ready(id) if id == "kiln-sprite-q-v2")
    );
    let steps: Vec<u32> = seen::<ArtProgress>(&app).iter().map(|p| p.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6, 7, 8].repeat(3));
    assert!(
        seen::<ArtReady>(&app)[..2]
            .iter()
            .all(|r| r.atlas.is_none())
    );
    assert!(seen::<ArtProgress>(&app).iter().all(|p| p.total == 8));
    let sheet = &seen::<ArtReady>(&app)[2];
    assert_eq!(sheet.requester, villager);
    assert_eq!((sheet.record.width, sheet.record.height), (48, 64));
    let atlas = sheet
        .atlas
        .as_ref()
        .expect("a sheet comes with its atlas layout");
    let layouts = app.world().resource::<Assets<TextureAtlasLayout>>();
    let layout = layouts.get(atlas).expect("the layout asset exists");
    assert_eq!(layout.textures.len(), 12);
    assert_eq!(layout.textures[0].size(), UVec2::splat(16));

    // The record alone reproduces the picture (what `nftgen generate` and `nftgen verify` run),
    // and it is the record `nftgen generate` writes for the same prompt, seed and steps.
    let model = ArtModel::load(kiln_nftgen::default_model_path()).unwrap();
    let ready = &seen::<ArtReady>(&app)[0];
    let expected = model
        .regenerate(&ready.record, &mut |_| Control::Continue)
        .unwrap();
    let fresh = model
        .record_for(&GenerationRequest::new("a glowing green potion", 42).steps(8))
        .unwrap();
    assert_eq!(ready.requester, altar);
    assert_eq!(ready.record, fresh);
    assert_eq!(ready.record, expected.record);
    assert_eq!(ready.content_hash, expected.content_hash);
    let images = app.world().resource::<Assets<Image>>();
    let image = images.get(&ready.image).expect("the image asset exists");
    assert_eq!((image.width(), image.height()), (32, 32));
    assert_eq!(image.data.as_deref(), Some(expected.rgba.as_slice()));
    assert_eq!(image.sampler, ImageSampler::nearest());

    let scene = &seen::<ArtReady>(&app)[1];
    assert_eq!((scene.record.width, scene.record.height), (64, 32));
    // With no renderer and no hardware GPU (lavapipe is passed over), `Auto` paints on the CPU.
    let device = app.world().resource::<ArtDevice>();
    eprintln!("ArtBackend::Auto chose {device:?}");
    if device.adapter.is_none() {
        assert_eq!(device.backend, Some(Backend::Cpu));
    }
}

/// `ArtBackend::Gpu` in a headless app opens a GPU of its own (Mesa's lavapipe here) and paints
/// the CPU's pixels there; the record says `wgpu`.
#[test]
fn the_art_worker_paints_the_same_pixels_on_a_headless_gpu() {
    let mut app = art_app(ArtPlugin {
        steps: Some(4),
        backend: ArtBackend::Gpu,
        ..Default::default()
    });
    let altar = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(GenerateArt {
        prompt: "a blue potion".into(),
        kind: ArtKind::Item,
        seed: 3,
        creator: None,
        requester: altar,
    });
    run_until(&mut app, Duration::from_secs(120), "a picture", |app| {
        !seen::<ArtReady>(app).is_empty() || !seen::<ArtFailed>(app).is_empty()
    });
    assert!(
        seen::<ArtFailed>(&app).is_empty(),
        "{:?}",
        seen::<ArtFailed>(&app)
    );
    let device = app.world().resource::<ArtDevice>().clone();
    assert_eq!(device.backend, Some(Backend::Wgpu));
    assert!(
        device.adapter.is_some() && !device.shared_with_renderer,
        "{device:?}"
    );
    let ready = &seen::<ArtReady>(&app)[0];
    assert_eq!(ready.record.backend, Backend::Wgpu);
    let cpu = ArtModel::load(kiln_nftgen::default_model_path()).unwrap();
    let expected = cpu
        .generate(
            &GenerationRequest::new("a blue potion", 3).steps(4),
            &mut |_| Control::Continue,
        )
        .unwrap();
    assert_eq!(ready.content_hash, expected.content_hash);
}

#[test]
fn a_missing_art_model_fails_requests_with_a_reason() {
    let mut app = art_app(ArtPlugin {
        model: "/nonexistent/kiln-sprite.safetensors".into(),
        ..Default::default()
    });
    let altar = app.world_mut().spawn_empty().id();
    app.world_mut().write_message(GenerateArt {
        prompt: "a red sword".into(),
        kind: ArtKind::Item,
        seed: 1,
        creator: None,
        requester: altar,
    });
    run_until(&mut app, Duration::from_secs(20), "the failure", |app| {
        !seen::<ArtFailed>(app).is_empty()
    });
    let f = &seen::<ArtFailed>(&app)[0];
    assert_eq!(f.requester, altar);
    assert!(f.reason.contains("nonexistent"), "{}", f.reason);
    assert!(matches!(
        app.world().resource::<ArtStatus>(),
        ArtStatus::Unavailable(_)
    ));
}
