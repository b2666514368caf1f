//! Persona checks on the real model: how often an NPC keeps its name, refuses what it cannot do,
//! and stays within its sentence limit. `npc eval` prints them; the test suite gates on them.

use crate::{ChatError, ChatOptions, Choices, Engine, NpcReply, Persona};

/// Replies to one line over many seeds.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The player's line.
    pub line: String,
    /// One reply per seed, seeds `0..n` in order.
    pub replies: Vec<NpcReply>,
}

impl Probe {
    /// Fraction of replies whose `say` contains `needle` (case-insensitive).
    pub fn rate_containing(&self, needle: &str) -> f64 {
        let needle = needle.to_lowercase();
        self.rate(|r| r.say.to_lowercase().contains(&needle))
    }
    /// Fraction of replies whose action is `action`.
    pub fn rate_action(&self, action: &str) -> f64 {
        self.rate(|r| r.action == action)
    }
    /// Fraction of replies for which `f` holds.
    pub fn rate(&self, f: impl Fn(&NpcReply) -> bool) -> f64 {
        if self.replies.is_empty() {
            return 0.0;
        }
        self.replies.iter().filter(|r| f(r)).count() as f64 / self.replies.len() as f64
    }
}

/// Asks `line` as the first turn of a fresh conversation once per seed in `0..seeds`.
/// The persona's prompt is evaluated once and reused for every seed; `options` gives the
/// sampling and context settings (its seed is replaced).
pub fn probe(
    engine: &Engine,
    persona: &Persona,
    line: &str,
    seeds: u64,
    options: ChatOptions,
) -> Result<Probe, ChatError> {
    probe_with(engine, persona, line, seeds, options, &Choices::new())
}

/// Like [`probe`], with `choices` offered for action arguments every turn.
pub fn probe_with(
    engine: &Engine,
    persona: &Persona,
    line: &str,
    seeds: u64,
    options: ChatOptions,
    choices: &Choices,
) -> Result<Probe, ChatError> {
    let chat = engine.chat(persona.clone(), options)?;
    let mut replies = Vec::new();
    for seed in 0..seeds {
        chat.reset_with_seed(seed)?;
        let id = chat.ask_with(line, choices.clone())?;
        replies.push(chat.wait(id)?.0);
    }
    Ok(Probe {
        line: line.to_string(),
        replies,
    })
}
