//! `cargo xtask bench`: speed measured against a reference run in the same script.

use std::path::Path;

use anyhow::Result;

/// What to benchmark.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Suite {
    /// The NPC engine next to llama.cpp's own llama-bench.
    Npc,
}

/// Runs a benchmark suite.
pub fn run(what: Suite, model: &Path, tokens: u32, reps: u32) -> Result<()> {
    match what {
        Suite::Npc => {
            let _ = (model, tokens, reps);
            anyhow::bail!("not written yet")
        }
    }
}
