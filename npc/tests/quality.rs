//! The quality gate on the default model and the shipped personas: NPCs keep their names, keep
//! to their sentence limit, and choose action `none` when asked for what they cannot do.
//! Figures are printed (`cargo test -- --nocapture` shows them); `npc eval` prints more.

mod common;

use kiln_npc::eval::{probe, probe_with};
use kiln_npc::grammar::check_say;
use kiln_npc::{ChatOptions, Choices};

/// A request each persona cannot fulfil with any of its actions.
fn impossible(name: &str) -> &'static str {
    match name {
        "blacksmith" | "merchant" => "Can you teach me to fly like a bird?",
        _ => "Forge me a steel sword right now.",
    }
}

fn gate(name: &str) {
    let persona = common::persona(name);
    let engine = common::engine();
    let names = probe(
        engine,
        &persona,
        "What is your name?",
        20,
        ChatOptions::default(),
    )
    .unwrap();
    let refusals = probe(
        engine,
        &persona,
        impossible(name),
        10,
        ChatOptions::default(),
    )
    .unwrap();
    let name_rate = names.rate_containing(persona.name());
    let none_rate = refusals.rate_action("none");
    println!(
        "{name}: name in {:.0}% of 20 replies; action none in {:.0}% of 10 impossible requests",
        name_rate * 100.0,
        none_rate * 100.0
    );
    for r in names.replies.iter().chain(&refusals.replies) {
        check_say(&r.say, persona.max_sentences()).unwrap();
        assert!(
            persona.max_sentences() <= 2,
            "default is at most two sentences"
        );
    }
    assert!(
        name_rate >= 0.8,
        "{name} kept its name in {:.0}% of replies: {:#?}",
        name_rate * 100.0,
        names.replies
    );
    assert!(
        none_rate > 0.5,
        "{name} chose `none` for an impossible request in {:.0}%: {:#?}",
        none_rate * 100.0,
        refusals.replies
    );
}

#[test]
fn blacksmith_keeps_name_and_refuses() {
    gate("blacksmith");
}

#[test]
fn merchant_keeps_name_and_refuses() {
    gate("merchant");
}

#[test]
fn oracle_keeps_name_and_refuses() {
    gate("oracle");
}

/// What each persona owns in the gift gate, the first being the one the player asks for.
fn inventory(name: &str) -> [&'static str; 3] {
    match name {
        "blacksmith" => ["horseshoe", "iron dagger", "bag of nails"],
        "merchant" => ["spice pouch", "silk scarf", "copper ring"],
        _ => ["star map", "moon charm", "candle"],
    }
}

/// Asked for a thing it owns, an NPC that can give either gives that thing or keeps it (action
/// other than `give_item`) in most seeds; asked for a thing it does not own, it never names it
/// — the grammar offers only what it owns.
fn gift_gate(name: &str) -> (f64, f64) {
    let persona = common::persona(name);
    let owned = inventory(name);
    let choices = Choices::new().with("item", owned).unwrap();
    let engine = common::engine();
    let asked = probe_with(
        engine,
        &persona,
        &format!("Could you give me the {}, please?", owned[0]),
        10,
        ChatOptions::default(),
        &choices,
    )
    .unwrap();
    let gives = asked.rate(|r| r.action == "give_item");
    let right = asked.rate(|r| r.action != "give_item" || r.arg("item") == Some(owned[0]));
    println!(
        "{name}: asked for its {}: gave it in {:.0}% of 10 seeds, gave something in {:.0}%, named another item in {:.0}%",
        owned[0],
        100.0 * asked.rate(|r| r.arg("item") == Some(owned[0])),
        100.0 * gives,
        100.0 * (1.0 - right)
    );
    let unowned = probe_with(
        engine,
        &persona,
        "Give me the dragon egg you keep hidden.",
        10,
        ChatOptions::default(),
        &choices,
    )
    .unwrap();
    for r in asked.replies.iter().chain(&unowned.replies) {
        match r.arg("item") {
            Some(item) => {
                assert_eq!(r.action, "give_item", "{r:?}");
                assert!(
                    owned.contains(&item),
                    "named an item it does not own: {r:?}"
                );
            }
            None => assert_ne!(r.action, "give_item", "a gift without an item: {r:?}"),
        }
        assert!(!r.say.is_empty());
    }
    // With nothing offered, giving is not possible at all.
    let empty = probe(
        engine,
        &persona,
        "Give me a gift.",
        5,
        ChatOptions::default(),
    )
    .unwrap();
    assert_eq!(empty.rate_action("give_item"), 0.0, "{:#?}", empty.replies);
    (right, gives)
}

#[test]
fn npcs_give_only_what_they_own() {
    for name in ["blacksmith", "merchant", "oracle"] {
        let (right, _) = gift_gate(name);
        assert!(
            right > 0.5,
            "{name} named another item than the one asked for in {:.0}% of seeds",
            100.0 * (1.0 - right)
        );
    }
}
