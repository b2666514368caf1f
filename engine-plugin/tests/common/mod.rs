//! Helpers for the plugin tests: a headless app on `MinimalPlugins` + `AssetPlugin`, driven by
//! hand until a condition holds.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::prelude::*;

/// The repository's `assets/` directory.
pub fn assets_dir() -> String {
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    format!("{crate_dir}/../assets")
}

/// A headless app with Kiln's asset root, plus `plugins`.
pub fn app<M>(plugins: impl bevy::app::Plugins<M>) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets_dir(),
            ..default()
        },
    ))
    .add_plugins(plugins);
    app.finish();
    app.cleanup();
    app
}

/// Runs frames until `done` holds, failing after `limit`.
pub fn run_until(
    app: &mut App,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&mut App) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        app.update();
        if done(app) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Collects every message of type `M` into a resource `Seen<M>`.
#[derive(Resource)]
pub struct Seen<M>(pub Vec<M>);

impl<M> Default for Seen<M> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// Adds a system that copies every `M` into `Seen<M>`.
pub fn record<M: Message + Clone>(app: &mut App) {
    app.init_resource::<Seen<M>>().add_systems(
        Update,
        |mut r: MessageReader<M>, mut seen: ResMut<Seen<M>>| {
            seen.0.extend(r.read().cloned());
        },
    );
}

/// The messages of type `M` seen so far.
pub fn seen<M: Message + Clone>(app: &App) -> &[M] {
    &app.world().resource::<Seen<M>>().0
}
