//! NpcPlugin on the real SmolLM2 model (`KILN_NPC_MODEL`, set by `cargo xtask test`).

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

mod common;

use std::time::Duration;

use bevy::prelude::*;
use bevy_kiln::{
    Choices, Npc, NpcChoices, NpcConverse, NpcEngineStatus, NpcPersonaFailed, NpcPlugin,
    NpcRemembered, NpcReplied, NpcReplyDelta, PlayerSaid, Talking,
};
use common::{app, record, run_until, seen};

#[derive(Resource, Default)]
struct Deltas(Vec<(Entity, String)>);

fn talking_app(plugin: NpcPlugin) -> App {
    let mut app = app(plugin);
    record::<NpcReplied>(&mut app);
    app.init_resource::<Deltas>().add_observer(
        |d: On<NpcReplyDelta>, mut deltas: ResMut<Deltas>| {
            deltas.0.push((d.entity, d.text.clone()));
        },
    );
    app
}

fn spawn_npc(app: &mut App, persona: &str) -> Entity {
    let handle = app
        .world()
        .resource::<AssetServer>()
        .load(format!("npcs/{persona}.toml"));
    app.world_mut().spawn(Npc::new(handle)).id()
}

#[test]
fn a_player_line_streams_deltas_then_a_typed_reply() {
    let mut app = talking_app(NpcPlugin::default());
    let npc = spawn_npc(&mut app, "merchant");
    // Said on the first frame: the model and the persona are still loading; the line waits.
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "Do you sell rope?"));
    let mut saw_talking = false;
    run_until(
        &mut app,
        Duration::from_secs(120),
        "the merchant's reply",
        |app| {
            saw_talking |= app.world().get::<Talking>(npc).is_some();
            !seen::<NpcReplied>(app).is_empty()
        },
    );
    assert_eq!(
        *app.world().resource::<NpcEngineStatus>(),
        NpcEngineStatus::Ready
    );
    let replies = seen::<NpcReplied>(&app);
    assert_eq!(replies.len(), 1);
    let r = &replies[0];
    assert_eq!(r.npc, npc);
    assert!(!r.fallback);
    let deltas = &app.world().resource::<Deltas>().0;
    assert!(deltas.len() > 1, "the reply streamed in pieces: {deltas:?}");
    assert!(deltas.iter().all(|(e, _)| *e == npc));
    let streamed: String = deltas.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(streamed.trim(), r.reply.say.trim());
    let persona =
        kiln_npc::Persona::load(format!("{}/npcs/merchant.toml", common::assets_dir())).unwrap();
    assert!(persona.allows_action(&r.reply.action), "{}", r.reply.action);
    assert!(
        persona.allows_emotion(&r.reply.emotion),
        "{}",
        r.reply.emotion
    );
    assert!(saw_talking, "Talking was on the NPC while it replied");
    assert!(
        app.world().get::<Talking>(npc).is_none(),
        "and is gone after"
    );

    // A second line continues the conversation.
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "How much is it?"));
    run_until(&mut app, Duration::from_secs(60), "a second reply", |app| {
        seen::<NpcReplied>(app).len() == 2
    });
}

#[test]
fn despawning_a_talking_npc_cancels_its_reply_and_the_game_goes_on() {
    let mut app = talking_app(NpcPlugin::default());
    let npc = spawn_npc(&mut app, "blacksmith");
    app.world_mut().write_message(PlayerSaid::new(
        npc,
        "Tell me the story of your forge, in detail.",
    ));
    run_until(
        &mut app,
        Duration::from_secs(120),
        "the first delta",
        |app| !app.world().resource::<Deltas>().0.is_empty(),
    );
    app.world_mut().despawn(npc);
    for _ in 0..50 {
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        seen::<NpcReplied>(&app).is_empty(),
        "no reply after the despawn"
    );
    // Another NPC still talks.
    let other = spawn_npc(&mut app, "oracle");
    app.world_mut()
        .write_message(PlayerSaid::new(other, "Hello!"));
    run_until(
        &mut app,
        Duration::from_secs(60),
        "the oracle's reply",
        |app| !seen::<NpcReplied>(app).is_empty(),
    );
    assert_eq!(seen::<NpcReplied>(&app)[0].npc, other);
}

#[test]
fn without_a_model_npcs_answer_with_their_fallback_lines() {
    let mut app = talking_app(NpcPlugin {
        model: Some("/nonexistent/model.gguf".into()),
        ..Default::default()
    });
    let npc = spawn_npc(&mut app, "blacksmith");
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "Hello?"));
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "Anyone there?"));
    run_until(
        &mut app,
        Duration::from_secs(20),
        "two fallback replies",
        |app| seen::<NpcReplied>(app).len() == 2,
    );
    assert!(matches!(
        app.world().resource::<NpcEngineStatus>(),
        NpcEngineStatus::Unavailable(reason) if reason.contains("nonexistent")
    ));
    let persona =
        kiln_npc::Persona::load(format!("{}/npcs/blacksmith.toml", common::assets_dir())).unwrap();
    for r in seen::<NpcReplied>(&app) {
        assert!(r.fallback);
        assert!(
            persona.fallback_lines().contains(&r.reply.say.as_str()),
            "{}",
            r.reply.say
        );
        assert_eq!(r.reply.action, "none");
    }
    assert!(app.world().resource::<Deltas>().0.is_empty());

    // An NPC whose persona cannot load stays silent, and the game is told why (the file) and
    // what was dropped; the others go on.
    record::<NpcPersonaFailed>(&mut app);
    let broken = spawn_npc(&mut app, "no-such-persona");
    app.world_mut()
        .write_message(PlayerSaid::new(broken, "Hello?"));
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "Still there?"));
    run_until(
        &mut app,
        Duration::from_secs(20),
        "the blacksmith's third reply",
        |app| seen::<NpcReplied>(app).len() == 3,
    );
    for _ in 0..20 {
        app.update();
    }
    assert!(seen::<NpcReplied>(&app).iter().all(|r| r.npc == npc));
    let failed = seen::<NpcPersonaFailed>(&app);
    assert!(
        !failed.is_empty() && failed.iter().all(|f| f.npc == broken),
        "{failed:?}"
    );
    assert!(failed[0].error.contains("no-such-persona"), "{failed:?}");
    assert_eq!(failed.iter().map(|f| f.dropped_lines).sum::<usize>(), 1);
}

#[test]
fn a_conversation_is_handed_out_after_each_reply_and_taken_up_again() {
    let mut app = talking_app(NpcPlugin::default());
    record::<NpcRemembered>(&mut app);
    let npc = spawn_npc(&mut app, "blacksmith");
    app.world_mut()
        .write_message(PlayerSaid::new(npc, "My name is Tamsin."));
    run_until(&mut app, Duration::from_secs(120), "the memory", |app| {
        !seen::<NpcRemembered>(app).is_empty()
    });
    let first = seen::<NpcRemembered>(&app)[0].clone();
    assert_eq!(first.npc, npc);
    assert_eq!(first.memory.persona, "Bram");
    assert_eq!(first.memory.turns.len(), 1);
    assert_eq!(first.memory.turns[0].player, "My name is Tamsin.");
    assert_eq!(
        first.memory.turns[0].reply,
        seen::<NpcReplied>(&app)[0].reply
    );

    // A new game session: the NPC starts from the saved conversation and adds to it.
    let mut later = talking_app(NpcPlugin::default());
    record::<NpcRemembered>(&mut later);
    let handle = later
        .world()
        .resource::<AssetServer>()
        .load("npcs/blacksmith.toml");
    let bram = later
        .world_mut()
        .spawn(Npc::new(handle).with_memory(first.memory.clone()))
        .id();
    later
        .world_mut()
        .write_message(PlayerSaid::new(bram, "Do you remember me?"));
    run_until(&mut later, Duration::from_secs(120), "the memory", |app| {
        !seen::<NpcRemembered>(app).is_empty()
    });
    let second = &seen::<NpcRemembered>(&later)[0].memory;
    assert_eq!(second.turns.len(), 2);
    assert_eq!(second.turns[0], first.memory.turns[0]);
    assert_eq!(second.turns[1].player, "Do you remember me?");
}

#[test]
fn two_npcs_converse_in_turns_and_gifts_come_from_their_choices() {
    let mut app = talking_app(NpcPlugin::default());
    let bram = spawn_npc(&mut app, "blacksmith");
    let mira = spawn_npc(&mut app, "merchant");
    app.world_mut().entity_mut(bram).insert(NpcChoices(
        Choices::new().with("item", ["horseshoe"]).unwrap(),
    ));
    app.world_mut().write_message(NpcConverse {
        a: bram,
        b: mira,
        topic: "Any news from the north road?".into(),
        turns: 3,
    });
    run_until(
        &mut app,
        Duration::from_secs(240),
        "three replies between Bram and Mira",
        |app| seen::<NpcReplied>(app).len() >= 3,
    );
    for _ in 0..30 {
        app.update();
    }
    let replies = seen::<NpcReplied>(&app);
    let speakers: Vec<Entity> = replies.iter().map(|r| r.npc).collect();
    assert_eq!(speakers, [bram, mira, bram], "{replies:#?}");
    assert!(replies.iter().all(|r| !r.fallback), "{replies:#?}");
    for r in replies {
        // Bram may give only his horseshoe; Mira has nothing offered, so she cannot give.
        match (r.npc == bram, r.reply.action.as_str()) {
            (true, "give_item") => assert_eq!(r.reply.arg("item"), Some("horseshoe")),
            (false, "give_item") => panic!("Mira gave with nothing offered: {r:?}"),
            _ => assert!(r.reply.args.is_empty(), "{r:?}"),
        }
    }
}
