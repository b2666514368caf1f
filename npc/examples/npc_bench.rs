//! The Kiln side of `cargo xtask bench npc`: prompt and generation speed, time to first token at
//! turn 1 and turn 5, and peak memory, printed as one JSON line.
//!
//! ```text
//! cargo run -p kiln-npc --features cli --example npc_bench -- --model M.gguf --threads 1 --reps 3
//! cargo run -p kiln-npc --features cli --example npc_bench -- --model M.gguf --threads 1 --crowd 1,2,4,8
//! ```
//!
//! `--gpu-layers N` offloads N of the model's layers to a GPU (build with `--features vulkan`,
//! `cuda` or `metal`; llama.cpp's Vulkan backend skips CPU devices such as lavapipe unless
//! `GGML_VK_VISIBLE_DEVICES` names them).
//!
//! With `--crowd`, it measures instead how many tokens per second one engine generates in all
//! when N NPCs reply at once (one JSON line per N).

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
    let mut gpu_layers = 0;
    let mut reps = 3;
    let mut persona = PathBuf::from("assets/npcs/blacksmith.toml");
    let mut crowd: Vec<usize> = Vec::new();
    let mut context = EngineConfig::default().context_size();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--model" => model = val()?.into(),
            "--threads" => threads = val()?.parse()?,
            "--gpu-layers" => gpu_layers = val()?.parse()?,
            "--reps" => reps = val()?.parse()?,
            "--persona" => persona = val()?.into(),
            "--context" => context = val()?.parse()?,
            "--crowd" => {
                crowd = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    if !crowd.is_empty() {
        return crowd_bench(&model, threads, reps, &crowd, context);
    }
    let engine = Engine::load(
        &model,
        EngineConfig::default()
            .with_threads(threads)
            .with_gpu_layers(gpu_layers),
    )?;
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
            "gpu_layers": gpu_layers,
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

/// Aggregate generation speed with `n` NPCs replying at once, for each `n` in `sizes`: the
/// personas of `assets/npcs` in turn, warmed up, all asked one line together. Tokens generated
/// by all of them over the time from the first NPC's first token to the last reply (each reply's
/// prompt and generation times are measured by the worker from the moment it takes the line).
fn crowd_bench(
    model: &std::path::Path,
    threads: u32,
    reps: u64,
    sizes: &[usize],
    context: u32,
) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("assets/npcs")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let personas = files
        .iter()
        .map(Persona::load)
        .collect::<Result<Vec<_>, _>>()?;
    let most = sizes.iter().copied().max().unwrap_or(1) as u32;
    let engine = Engine::load(
        model,
        EngineConfig::default()
            .with_threads(threads)
            .with_context_size(context)
            .with_slots(most),
    )?;
    for &n in sizes {
        let mut rates = Vec::new();
        let (mut tokens, mut depth) = (0, 0);
        let before = engine.work();
        for rep in 0..reps {
            let chats = (0..n)
                .map(|i| {
                    engine.chat(
                        personas[i % personas.len()].clone(),
                        ChatOptions::default().with_seed(100 * rep + i as u64),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            for c in &chats {
                // Wait for the warm-up: a snapshot answers only after it.
                c.snapshot()?;
            }
            let ids = chats
                .iter()
                .map(|c| c.ask(LINES[3]))
                .collect::<Result<Vec<_>, _>>()?;
            let mut stats = Vec::new();
            for (c, id) in chats.iter().zip(ids) {
                stats.push(c.wait(id)?.1);
            }
            let first = stats
                .iter()
                .map(|s| s.prompt_time)
                .min()
                .unwrap_or_default();
            let last = stats
                .iter()
                .map(|s| s.prompt_time + s.generation_time)
                .max()
                .unwrap_or_default();
            tokens = stats.iter().map(|s| s.generated_tokens).sum::<usize>();
            depth = stats.iter().map(|s| s.prompt_tokens).sum::<usize>() / n;
            rates.push(tokens as f64 / secs(last - first));
        }
        // Where the worker's time went while these NPCs replied.
        let after = engine.work();
        let decode = secs(after.generation_decode_time - before.generation_decode_time);
        let sampling = secs(after.sampling_time - before.sampling_time);
        let generated = (after.generated_tokens - before.generated_tokens) as f64;
        let decodes = (after.generation_decodes - before.generation_decodes) as f64;
        println!(
            "{}",
            serde_json::json!({
                "crowd": n,
                "threads": threads,
                "generated_tokens": tokens,
                "depth": depth,
                "gen_tps": median(rates),
                "npcs_per_decode": generated / decodes,
                "decode_tps": generated / decode,
                "sampling_share": sampling / (decode + sampling),
            })
        );
    }
    Ok(())
}
