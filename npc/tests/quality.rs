//! The quality gate on the default model and the shipped personas: NPCs keep their names, keep
//! to their sentence limit, and choose action `none` when asked for what they cannot do.
//! Figures are printed (`cargo test -- --nocapture` shows them); `npc eval` prints more.

mod common;

use kiln_npc::ChatOptions;
use kiln_npc::eval::probe;
use kiln_npc::grammar::check_say;

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
