//! The village being painted: on first start every backdrop is painted from its fixed recipe
//! (later starts load the cache, whose records are checked again), with "painting the village
//! 2/4" and the current picture's step on screen. The village opens when all are there.

use bevy::prelude::*;
use bevy_kiln::ArtStatus;

use super::Screen;
use crate::gameplay::village::VillagePainting;
use crate::ui::widgets::{coloured_text, full_screen, progress_bar, text};

#[derive(Component)]
struct Headline;
#[derive(Component)]
struct Detail;
#[derive(Component)]
struct Fill;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(OnEnter(Screen::Painting), spawn)
        .add_systems(
            Update,
            (progress, done)
                .chain()
                .in_set(crate::app::AppSystems::Ui)
                .run_if(in_state(Screen::Painting)),
        );
}

fn spawn(mut commands: Commands) {
    commands.spawn((
        full_screen(Screen::Painting, 12.0),
        children![
            (
                coloured_text("", 30.0, Color::srgb(1.0, 0.78, 0.35)),
                Headline
            ),
            progress_bar(px(420), 16.0, Fill),
            (text("", 16.0), Detail),
        ],
    ));
}

fn progress(
    painting: Res<VillagePainting>,
    status: Res<ArtStatus>,
    mut headline: Single<&mut Text, (With<Headline>, Without<Detail>)>,
    mut detail: Single<&mut Text, (With<Detail>, Without<Headline>)>,
    mut fill: Single<&mut Node, With<Fill>>,
) {
    let mut head = format!(
        "Painting the village {}/{}",
        painting.done(),
        painting.total
    );
    if painting.failed > 0 {
        head.push_str(&format!(" ({} could not be painted)", painting.failed));
    }
    headline.set_if_neq(Text(head));
    let line = match &*status {
        ArtStatus::Loading => "loading the art model".to_string(),
        ArtStatus::Unavailable(reason) => format!("the art model is unavailable: {reason}"),
        ArtStatus::Ready(model) => match &painting.current {
            Some((prompt, step, total)) => {
                format!("\"{prompt}\", step {step} of {total} ({model})")
            }
            None => format!("checking the cached pictures ({model})"),
        },
    };
    detail.set_if_neq(Text(line));
    let share = if painting.total == 0 {
        1.0
    } else {
        painting.done() as f32 / painting.total as f32
    };
    fill.width = percent(share * 100.0);
}

/// Opens the village once every picture is there, or at once when the art model cannot load
/// (the village then keeps its placeholders and the game goes on).
fn done(
    painting: Res<VillagePainting>,
    status: Res<ArtStatus>,
    mut next: ResMut<NextState<Screen>>,
) {
    if painting.done() == painting.total || matches!(*status, ArtStatus::Unavailable(_)) {
        next.set(Screen::Playing);
    }
}
