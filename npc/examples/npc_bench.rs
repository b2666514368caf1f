//! The Kiln side of `cargo xtask bench npc`: prompt and generation speed, time to first token at
//! turn 1 and turn 5, and peak memory, printed as one JSON line.
//!
//! ```text
//! cargo run -p kiln-npc --example npc_bench -- --model M.gguf --threads 1 --reps 3
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use kiln_npc::{ChatOptions, Engine, EngineConfig, Persona, TurnStats};

const LINES: [&str; 5] = [
    "Hello! Who are you?",
    "What do you sell here?",
    "How much is a sword?",
    "Have you heard about the wolves on the north road?",
    "Thank you, goodbye!",
];

/// How long the simulated player reads a reply before the next line.
const PLAYER_PAUSE_MS: u64 = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() -> Result<()> {
    let mut model = kiln_npc::default_model_path();
    let mut threads = 1;
    let mut reps = 3;
    let mut persona = PathBuf::from("assets/npcs/blacksmith.toml");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--model" => model = val()?.into(),
            "--threads" => threads = val()?.parse()?,
            "--reps" => reps = val()?.parse()?,
            "--persona" => persona = val()?.into(),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let engine = Engine::load(&model, EngineConfig::default().with_threads(threads))?;
    let persona = Persona::load(&persona)?;

    let (mut prompt_tps, mut gen_tps, mut ttft1, mut ttft5) = (vec![], vec![], vec![], vec![]);
    let mut prompt_tokens = 0;
    let mut depth = vec![];
    for rep in 0..reps {
        // Prompt speed: no warm-up, so turn one evaluates the whole persona in batches.
        let cold = engine.chat(
            persona.clone(),
            ChatOptions::default().with_seed(rep).with_warm_up(false),
        )?;
        let (_, s) = cold.wait(cold.ask(LINES[0])?)?;
        prompt_tokens = s.evaluated_tokens;
        prompt_tps.push(s.evaluated_tokens as f64 / secs(s.prompt_time));
        drop(cold);

        // A five-turn conversation with the persona warmed up, as in a game.
        let chat = engine.chat(persona.clone(), ChatOptions::default().with_seed(rep))?;
        // Let the warm-up finish: a snapshot answers only after it.
        chat.snapshot()?;
        let stats: Vec<TurnStats> = LINES
            .iter()
            .map(|l| {
                // The player reads the last reply before answering.
                std::thread::sleep(Duration::from_millis(PLAYER_PAUSE_MS));
                chat.wait(chat.ask(*l)?).map(|(_, s)| s)
            })
            .collect::<Result<_, _>>()?;
        let decodes: usize = stats.iter().map(|s| s.generated_tokens - 1).sum();
        let gen_time: f64 = stats.iter().map(|s| secs(s.generation_time)).sum();
        gen_tps.push(decodes as f64 / gen_time);
        depth.extend(stats.iter().map(|s| s.prompt_tokens as f64));
        ttft1.push(secs(stats[0].time_to_first_token) * 1000.0);
        ttft5.push(secs(stats[4].time_to_first_token) * 1000.0);
    }
    let mean_depth = depth.iter().sum::<f64>() / depth.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "prompt_tokens": prompt_tokens,
            "prompt_tps": median(prompt_tps),
            "gen_tps": median(gen_tps),
            "gen_depth": mean_depth.round(),
            "ttft1_ms": median(ttft1),
            "ttft5_ms": median(ttft5),
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
