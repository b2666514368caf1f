//! The crowd on the real model: many NPCs share one context, and an NPC's reply does not depend on
//! who else is talking.

mod common;

use common::{engine, model_path, persona};
use kiln_npc::{ChatEvent, ChatOptions, Engine, EngineConfig, SavedChat, SavedTurn};

const LINES: [&str; 2] = ["Hello! What do you do here?", "What would you give me?"];

/// The turns an NPC remembers, with the exact tokens it generated.
fn turns(saved: &SavedChat) -> Vec<(String, Vec<i32>)> {
    saved
        .turns
        .iter()
        .map(|t: &SavedTurn| (t.raw.clone(), t.generated.clone()))
        .collect()
}

/// Asks `line` of every chat at once and waits for every reply; returns, per chat, its reply's
/// raw text, and the number of chats that had streamed words before the first reply ended.
fn ask_all(chats: &[&kiln_npc::Chat], line: &str) -> (Vec<String>, usize) {
    let ids: Vec<_> = chats.iter().map(|c| c.ask(line).unwrap()).collect();
    let mut done: Vec<Option<String>> = vec![None; chats.len()];
    let mut streamed = vec![false; chats.len()];
    let mut overlap = None;
    while done.iter().any(Option::is_none) {
        let mut sel = crossbeam_channel::Select::new();
        for c in chats {
            sel.recv(c.events());
        }
        let op = sel.select();
        let i = op.index();
        match op.recv(chats[i].events()).expect("worker alive") {
            ChatEvent::Delta { request, .. } if request == ids[i] => streamed[i] = true,
            ChatEvent::Reply { request, reply, .. } if request == ids[i] => {
                overlap.get_or_insert(streamed.iter().filter(|s| **s).count());
                done[i] = Some(reply.say);
            }
            ChatEvent::Failed { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    (
        done.into_iter().map(Option::unwrap).collect(),
        overlap.unwrap(),
    )
}

#[test]
fn a_reply_is_the_same_alone_in_a_crowd_and_after_save_and_load() {
    let names = ["blacksmith", "merchant", "oracle", "blacksmith"];
    let options = |i: usize| ChatOptions::default().with_seed(40 + i as u64);
    // Each NPC alone: two turns, one chat at a time.
    let mut alone = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let chat = engine().chat(persona(name), options(i)).unwrap();
        for line in LINES {
            chat.ask_blocking(line).unwrap();
        }
        alone.push(turns(&chat.snapshot().unwrap()));
    }
    // All four at once: each line is asked of every NPC together, so they generate side by side.
    let chats: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| engine().chat(persona(name), options(i)).unwrap())
        .collect();
    let refs: Vec<&kiln_npc::Chat> = chats.iter().collect();
    let (_, overlap) = ask_all(&refs, LINES[0]);
    assert!(
        overlap >= 2,
        "the replies were not generated side by side ({overlap} streaming when the first ended)"
    );
    let saved: Vec<SavedChat> = chats.iter().map(|c| c.snapshot().unwrap()).collect();
    // One NPC is saved and loaded between the turns, while the others keep their streams.
    drop(chats);
    let mut chats: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if i == 1 {
                engine()
                    .restore_chat(persona(name), saved[i].clone())
                    .unwrap()
            } else {
                engine().chat(persona(name), options(i)).unwrap()
            }
        })
        .collect();
    // The fresh chats (0, 2, 3) replay turn one alone-style first; the restored one waits.
    for c in [&chats[0], &chats[2], &chats[3]] {
        c.ask_blocking(LINES[0]).unwrap();
    }
    let refs: Vec<&kiln_npc::Chat> = chats.iter().collect();
    ask_all(&refs, LINES[1]);
    for (i, c) in chats.iter_mut().enumerate() {
        let got = turns(&c.snapshot().unwrap());
        assert_eq!(got, alone[i], "NPC {i} ({}) replied otherwise", names[i]);
    }
}

#[test]
fn more_npcs_than_streams_take_turns_and_reply_the_same() {
    // One stream for three NPCs: each line makes the NPC evaluate its whole history again.
    let small = Engine::load(model_path(), EngineConfig::default().with_slots(1)).unwrap();
    let names = ["blacksmith", "merchant", "oracle"];
    let make = |e: &Engine| -> Vec<kiln_npc::Chat> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                e.chat(persona(n), ChatOptions::default().with_seed(i as u64))
                    .unwrap()
            })
            .collect()
    };
    let crowded = make(&small);
    let roomy = make(engine());
    for line in LINES {
        let refs: Vec<&kiln_npc::Chat> = crowded.iter().collect();
        ask_all(&refs, line);
        for c in &roomy {
            c.ask_blocking(line).unwrap();
        }
    }
    for (a, b) in crowded.iter().zip(&roomy) {
        assert_eq!(turns(&a.snapshot().unwrap()), turns(&b.snapshot().unwrap()));
    }
}

#[test]
fn cli_crowd_replies_as_each_npc_would_alone() {
    let dir = common::assets().join("npcs");
    let line = "Good morning! Any news?";
    let run = common::npc_cli;
    let crowd = run(&[
        "crowd".as_ref(),
        "--json".as_ref(),
        "--seed".as_ref(),
        "9".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        line.as_ref(),
    ]);
    let lines: Vec<serde_json::Value> = crowd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(lines.len(), files.len(), "{crowd}");
    for (got, file) in lines.iter().zip(&files) {
        let alone = run(&[
            "say".as_ref(),
            "--json".as_ref(),
            "--seed".as_ref(),
            "9".as_ref(),
            "--persona".as_ref(),
            file.as_os_str(),
            line.as_ref(),
        ]);
        let mut alone: serde_json::Value = serde_json::from_str(alone.trim()).unwrap();
        alone["npc"] = got["npc"].clone();
        assert_eq!(*got, alone, "{}", file.display());
        let p = kiln_npc::Persona::load(file).unwrap();
        assert_eq!(got["npc"], p.name());
    }
}

#[test]
fn cli_converse_alternates_and_replays_from_the_seed() {
    let npcs = common::assets().join("npcs");
    let (a, b) = (npcs.join("blacksmith.toml"), npcs.join("merchant.toml"));
    let run = || {
        common::npc_cli(&[
            "converse".as_ref(),
            "--json".as_ref(),
            "--turns".as_ref(),
            "4".as_ref(),
            "--seed".as_ref(),
            "3".as_ref(),
            "--a".as_ref(),
            a.as_os_str(),
            "--b".as_ref(),
            b.as_os_str(),
        ])
    };
    let first = run();
    let speakers: Vec<String> = first
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["npc"].to_string())
        .collect();
    assert_eq!(
        speakers,
        ["\"Bram\"", "\"Mira\"", "\"Bram\"", "\"Mira\""],
        "{first}"
    );
    assert_eq!(run(), first, "the same seed gives the same conversation");
}

#[test]
fn npcs_with_one_persona_evaluate_it_once_and_reply_as_alone() {
    let shared = Engine::load(model_path(), EngineConfig::default().with_slots(2)).unwrap();
    let options = |seed| ChatOptions::default().with_seed(seed).with_warm_up(false);
    let first = shared.chat(persona("oracle"), options(1)).unwrap();
    first.ask_blocking(LINES[0]).unwrap();
    let before = shared.work().shared_prefix_tokens;
    let second = shared.chat(persona("oracle"), options(2)).unwrap();
    let id = second.ask(LINES[0]).unwrap();
    let (_, stats) = second.wait(id).unwrap();
    let shared_tokens = shared.work().shared_prefix_tokens - before;
    assert_eq!(shared_tokens, stats.persona_tokens as u64, "{stats:?}");
    assert!(stats.reused_tokens >= stats.persona_tokens, "{stats:?}");
    // The copied persona gives the reply an evaluated one gives (on an engine of its own).
    let solo = Engine::load(model_path(), EngineConfig::default().with_slots(1)).unwrap();
    let alone = solo.chat(persona("oracle"), options(2)).unwrap();
    alone.ask_blocking(LINES[0]).unwrap();
    assert_eq!(
        turns(&second.snapshot().unwrap()),
        turns(&alone.snapshot().unwrap())
    );
}
