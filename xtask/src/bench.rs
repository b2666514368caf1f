//! `cargo xtask bench`: speed measured against a reference run in the same script.
//!
//! `bench npc` runs Kiln's NPC engine (`npc/examples/npc_bench.rs`) and llama.cpp's own
//! `llama-bench` on the same GGUF, thread count, batch size and context depth, and prints them side
//! by side. The reference is built here from llama.cpp's `tools/llama-bench` source — taken from
//! the PyPI source package of `llama-cpp-python` (the Rust crate strips `tools/`) — and linked
//! against the very llama.cpp static libraries `llama-cpp-sys-2` built for Kiln, so both sides run
//! the same kernels with the same compiler flags.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::setup::cache_dir;

/// What to benchmark.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Suite {
    /// The NPC engine next to llama.cpp's own llama-bench.
    Npc,
    /// The art pipeline: kiln-sprite per size and step count, one Stable Diffusion UNet step.
    Art,
    /// The Bevy plugin: main-thread frame time with an NPC talking and art painting, versus idle.
    Plugin,
}

/// The `llama-cpp-python` source release whose `llama-bench` source is used. Its `llama.h`
/// differs from the one vendored by `llama-cpp-sys-2` 0.1.160 only in two state-file version
/// numbers; the kernels and the library are the crate's own (see the module docs).
const LLAMA_CPP_PYTHON: &str = "llama-cpp-python==0.3.36";
/// The SHA-256 of its source release (pip refuses other bytes).
const LLAMA_CPP_PYTHON_SHA256: &str =
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";

/// Runs a benchmark suite.
pub fn run(what: Suite, model: &Path, tokens: u32, reps: u32) -> Result<()> {
    match what {
        Suite::Npc => npc(model, tokens, reps),
        Suite::Art => art(model),
        Suite::Plugin => plugin(model),
    }
}

/// `bevy_kiln`'s frame-time benchmark: p50/p99 of `App::update` idle and busy, and what Kiln adds.
fn plugin(model: &Path) -> Result<()> {
    crate::cargo(
        &["build", "-p", "bevy_kiln", "--example", "frame_bench"],
        model,
    )?;
    let bin = crate::target_dir().join("debug/examples/frame_bench");
    println!(
        "\nmain thread per frame (App::update, 60 Hz pacing), microseconds: wall clock, and the main thread's own CPU time\n"
    );
    println!(
        "| workers | phase | frames | wall p50 | wall p99 | wall max | CPU p50 | CPU p99 | NPC replies | deltas | pictures |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut added = Vec::new();
    for (priority, art) in [
        ("background", "cpu"),
        ("idle", "cpu"),
        ("normal", "cpu"),
        ("background", "gpu"),
    ] {
        eprintln!(
            "xtask: measuring frame times, workers at `{priority}` priority, art on the {art} (about a minute)"
        );
        let out = output(
            Command::new(&bin)
                .args([priority, art])
                .env("KILN_NPC_MODEL", model),
        )?;
        let priority = format!("{priority}, art on {art}");
        let rows: Vec<Value> = out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let phase = |p: &str| rows.iter().find(|r| r["phase"] == p).cloned();
        let (Some(idle), Some(busy)) = (phase("idle"), phase("busy")) else {
            bail!("frame_bench printed no results");
        };
        let f = |r: &Value, clock: &str, k: &str| r[clock][k].as_f64().unwrap_or(f64::NAN);
        for r in [&idle, &busy] {
            println!(
                "| {priority} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                r["phase"].as_str().unwrap_or("?"),
                r["frames"],
                f(r, "wall", "p50_us"),
                f(r, "wall", "p99_us"),
                f(r, "wall", "max_us"),
                f(r, "cpu", "p50_us"),
                f(r, "cpu", "p99_us"),
                r["replies"],
                r["deltas"],
                r["pictures"]
            );
        }
        let diff = |clock: &str| f(&busy, clock, "p99_us") - f(&idle, clock, "p99_us");
        added.push((priority, diff("wall"), diff("cpu")));
    }
    println!("\nadded at p99 while busy (target < 1000 µs):");
    for (priority, wall, cpu) in added {
        println!("- workers `{priority}`: wall clock {wall:.0} µs, main-thread CPU {cpu:.0} µs");
    }
    Ok(())
}

/// A process that keeps one core busy, as a game or a build would.
struct Spinner(Child);

impl Spinner {
    fn start() -> Result<Self> {
        Ok(Spinner(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .context("starting the load generator")?,
        ))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The newest `llama-cpp-sys-2` build output (static libraries and its cmake build tree).
fn llama_out_dir() -> Result<PathBuf> {
    let build = crate::target_dir().join("debug/build");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(&build).with_context(|| format!("reading {}", build.display()))? {
        let out = e?.path().join("out");
        let lib = out.join("lib/libllama.a");
        if let Ok(m) = std::fs::metadata(&lib).and_then(|m| m.modified())
            && is_sys_build(&out)
            && best.as_ref().is_none_or(|(t, _)| m > *t)
        {
            best = Some((m, out));
        }
    }
    best.map(|(_, p)| p)
        .context("no llama-cpp-sys-2 build found: build kiln-npc first")
}

fn is_sys_build(out: &Path) -> bool {
    out.parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("llama-cpp-sys-2-"))
}

/// A reference tool of llama.cpp's `tools/`: `llama-bench` (one sequence) or `batched-bench`
/// (several sequences in one context, as Kiln's crowd runs them).
#[derive(Clone, Copy)]
enum Tool {
    LlamaBench,
    BatchedBench,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::LlamaBench => "llama-bench",
            Tool::BatchedBench => "batched-bench",
        }
    }
    /// Where its sources are kept in the cache (`src` for llama-bench, as before).
    fn src(self, dir: &Path) -> PathBuf {
        match self {
            Tool::LlamaBench => dir.join("src"),
            Tool::BatchedBench => dir.join("src-batched"),
        }
    }
}

/// Builds (or reuses) a reference tool linked against Kiln's llama.cpp libraries.
fn llama_tool(tool: Tool) -> Result<PathBuf> {
    let out = llama_out_dir()?;
    let dir = cache_dir().join("llama-bench");
    std::fs::create_dir_all(&dir)?;
    let src = tool.src(&dir);
    if !src.join(format!("{}.cpp", tool.name())).is_file() {
        let tmp = dir.join("sdist");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        eprintln!(
            "xtask: fetching the {} source from {LLAMA_CPP_PYTHON} (PyPI sdist)",
            tool.name()
        );
        crate::setup::pip_download(
            LLAMA_CPP_PYTHON,
            LLAMA_CPP_PYTHON_SHA256,
            "--no-binary=:all:",
            &tmp,
        )?;
        let extract = "import sys, tarfile, pathlib\n\
             out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)\n\
             with tarfile.open(next(pathlib.Path(sys.argv[1]).glob('*.tar.gz'))) as t:\n    \
             for m in t.getmembers():\n        \
             if '/vendor/llama.cpp/tools/' + sys.argv[3] + '/' in m.name and m.name.endswith('.cpp'):\n            \
             (out / pathlib.Path(m.name).name).write_bytes(t.extractfile(m).read())\n";
        crate::run(
            Command::new("python3")
                .args(["-c", extract])
                .arg(&tmp)
                .arg(&src)
                .arg(tool.name()),
        )?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let bin = dir.join(tool.name());
    let lib = out.join("lib/libllama.a");
    let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if bin.is_file() && fresh(&bin) >= fresh(&lib) {
        return Ok(bin);
    }
    let llama = std::fs::read_to_string(out.join("build/CMakeCache.txt"))?
        .lines()
        .find_map(|l| l.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
        .map(PathBuf::from)
        .context("llama.cpp source directory not in CMakeCache.txt")?;
    eprintln!("xtask: building {} against {}", tool.name(), out.display());
    let mut cmd = Command::new("g++");
    cmd.args(["-O3", "-std=c++17", "-DNDEBUG", "-o"])
        .arg(&bin)
        .arg(src.join(format!("{}.cpp", tool.name())))
        .arg(src.join("main.cpp"));
    for inc in ["include", "ggml/include", "common", "vendor"] {
        cmd.arg("-I").arg(llama.join(inc));
    }
    for a in [
        "build/common/libllama-common.a",
        "build/common/libllama-common-base.a",
        "lib/libllama.a",
        "lib/libggml.a",
        "lib/libggml-cpu.a",
        "lib/libggml-base.a",
        "build/vendor/hash/libvendor-hash.a",
        "build/vendor/cpp-httplib/libcpp-httplib.a",
    ] {
        cmd.arg(out.join(a));
    }
    cmd.args(["-fopenmp", "-lpthread", "-lssl", "-lcrypto"]);
    crate::run(&mut cmd)?;
    Ok(bin)
}

/// Average tokens/s of the single test a llama-bench JSON run reports.
fn llama_bench_ts(bin: &Path, model: &Path, threads: u32, args: &[String]) -> Result<f64> {
    let json = output(
        Command::new(bin)
            .arg("-m")
            .arg(model)
            .args([
                "-t",
                &threads.to_string(),
                "-b",
                "128",
                "-ub",
                "128",
                "-o",
                "json",
            ])
            .args(args),
    )?;
    let v: Value = serde_json::from_str(&json).context("llama-bench JSON")?;
    v.as_array()
        .and_then(|a| a.first())
        .and_then(|t| t["avg_ts"].as_f64())
        .context("llama-bench printed no avg_ts")
}

fn npc(model: &Path, tokens: u32, reps: u32) -> Result<()> {
    crate::cargo(
        &[
            "build",
            "-p",
            "kiln-npc",
            "--features",
            "cli",
            "--example",
            "npc_bench",
        ],
        model,
    )?;
    let kiln = crate::target_dir().join("debug/examples/npc_bench");
    let reference = llama_tool(Tool::LlamaBench)?;
    let batched = llama_tool(Tool::BatchedBench)?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();

    let mut rows = Vec::new();
    for (threads, busy) in [(1, false), (2, false), (1, true), (2, true)] {
        let reps = if busy { 1 } else { reps };
        eprintln!(
            "xtask: measuring {threads} thread(s), {}",
            if busy { "other core busy" } else { "quiet" }
        );
        let _load = if busy { Some(Spinner::start()?) } else { None };
        let k: Value = serde_json::from_str(&output(
            Command::new(&kiln).arg("--model").arg(model).args([
                "--threads",
                &threads.to_string(),
                "--reps",
                &reps.to_string(),
            ]),
        )?)?;
        let f = |key: &str| k[key].as_f64().unwrap_or(f64::NAN);
        let pp = llama_bench_ts(
            &reference,
            model,
            threads,
            &[
                "-p".into(),
                format!("{}", f("prompt_tokens")),
                "-n".into(),
                "0".into(),
                "-r".into(),
                reps.to_string(),
            ],
        )?;
        let tg = llama_bench_ts(
            &reference,
            model,
            threads,
            &[
                "-p".into(),
                "0".into(),
                "-n".into(),
                tokens.to_string(),
                "-d".into(),
                format!("{}", f("gen_depth")),
                "-r".into(),
                reps.to_string(),
            ],
        )?;
        rows.push((threads, busy, k.clone(), pp, tg));
    }

    println!("\nNPC engine vs llama-bench — {} on {cpu}", model.display());
    println!(
        "(same llama.cpp libraries; batch 64; generation at the context depth of a 5-turn chat)\n"
    );
    println!(
        "| threads | load | prompt tok/s Kiln | llama-bench | ratio | gen tok/s Kiln | llama-bench | ratio | first token turn 1 | turn 5 | t5/t1 | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (threads, busy, k, pp, tg) in rows {
        let f = |key: &str| k[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {threads} | {} | {:.0} ({} tok) | {pp:.0} | {:.2} | {:.1} (depth {}) | {tg:.1} | {:.2} | {:.0} ms | {:.0} ms | {:.2} | {:.0} MiB |",
            if busy { "other core busy" } else { "quiet" },
            f("prompt_tps"),
            f("prompt_tokens"),
            f("prompt_tps") / pp,
            f("gen_tps"),
            f("gen_depth"),
            f("gen_tps") / tg,
            f("ttft1_ms"),
            f("ttft5_ms"),
            f("ttft5_ms") / f("ttft1_ms"),
            f("peak_rss_mib"),
        );
    }
    println!("\nTargets: generation ≥ 0.95× llama-bench; turn-5 first token ≤ 1.2× turn 1.");
    crowd(&kiln, &batched, model, reps)
}

/// NPCs replying at once on one engine, against llama.cpp's `batched-bench` with as many
/// sequences at the same depth, on one thread and on two.
fn crowd(kiln: &Path, batched: &Path, model: &Path, reps: u32) -> Result<()> {
    const SIZES: [u32; 4] = [1, 2, 4, 8];
    let list = SIZES.map(|n| n.to_string()).join(",");
    let mut rows = Vec::new();
    for threads in [1, 2] {
        eprintln!("xtask: measuring crowds of {list} NPCs on {threads} thread(s)");
        let out = output(Command::new(kiln).arg("--model").arg(model).args([
            "--threads",
            &threads.to_string(),
            "--reps",
            &reps.to_string(),
            "--crowd",
            &list,
        ]))?;
        let k: Vec<Value> = out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let depth = k
            .first()
            .and_then(|r| r["depth"].as_u64())
            .context("npc_bench printed no crowd")?;
        // The reference twice: a KV stream per sequence (Kiln's layout) and one unified cache
        // (what the stronger reply promise gives up).
        let reference = |kv: &str| -> Result<Vec<Value>> {
            let json = output(Command::new(batched).arg("-m").arg(model).args([
                "-c",
                &((depth as u32 + 64) * SIZES[3]).to_string(),
                "-b",
                "512",
                "-ub",
                "512",
                "-npp",
                &depth.to_string(),
                "-ntg",
                "32",
                "-npl",
                &list,
                "-t",
                &threads.to_string(),
                kv,
                "--output-format",
                "jsonl",
            ]))?;
            json.lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).context("batched-bench JSON"))
                .collect()
        };
        rows.push((threads, depth, k, reference("-no-kvu")?, reference("-kvu")?));
    }
    println!(
        "\nA crowd on one engine: N NPCs asked at once, each reply one token per decode, at the depth of a persona (tok/s of all NPCs together)\n"
    );
    println!(
        "| threads | NPCs | Kiln, first token to last reply | Kiln, in its decodes | NPCs per decode | batched-bench, a stream per sequence (same depth) | Kiln / batched-bench | × one NPC: Kiln | × one: batched-bench | batched-bench, unified KV |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (threads, depth, k, split, unified) in rows {
        let kiln_at = |n: u32| k.iter().find(|r| r["crowd"].as_u64() == Some(n.into()));
        let speed = |rows: &[Value], n: u32| {
            rows.iter()
                .find(|r| r["pl"].as_u64() == Some(n.into()))
                .and_then(|r| r["speed_tg"].as_f64())
                .unwrap_or(f64::NAN)
        };
        let ref_at = |n: u32| speed(&split, n);
        let f = |r: Option<&Value>, key: &str| r.and_then(|r| r[key].as_f64()).unwrap_or(f64::NAN);
        let alone = f(kiln_at(1), "gen_tps");
        for n in SIZES {
            let r = kiln_at(n);
            println!(
                "| {threads} | {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} |",
                f(r, "gen_tps"),
                f(r, "decode_tps"),
                f(r, "npcs_per_decode"),
                ref_at(n),
                f(r, "decode_tps") / ref_at(n),
                f(r, "gen_tps") / alone,
                ref_at(n) / ref_at(1),
                speed(&unified, n),
            );
        }
        println!("(depth {depth} tokens)");
    }
    println!("\nTarget: 4 NPCs at once ≥ 2.5× one alone; Kiln's decodes ≥ 0.95× batched-bench's.");
    Ok(())
}

/// `bench art`: the art pipeline at 1 and 2 threads, one table.
fn art(model: &Path) -> Result<()> {
    crate::cargo(
        &[
            "build",
            "-p",
            "kiln-nftgen",
            "--features",
            "cli",
            "--example",
            "art_bench",
        ],
        model,
    )?;
    let bin = crate::target_dir().join("debug/examples/art_bench");
    let mut rows: Vec<Value> = Vec::new();
    for threads in [1, 2] {
        eprintln!("xtask: measuring the art pipeline on {threads} thread(s)");
        let out = output(Command::new(&bin).env("RAYON_NUM_THREADS", threads.to_string()))?;
        for line in out.lines().filter(|l| l.starts_with('{')) {
            rows.push(serde_json::from_str(line)?);
        }
    }
    eprintln!("xtask: measuring the art pipeline on the GPU backend");
    let gpu_out = output(
        Command::new(&bin)
            .arg("--gpu-only")
            .env("RAYON_NUM_THREADS", "1"),
    );
    let gpu_rows: Vec<Value> = match &gpu_out {
        Ok(out) => out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?,
        Err(e) => {
            eprintln!("xtask: the GPU backend did not run: {e:#}");
            Vec::new()
        }
    };
    let get = |what: &str, threads: u64, size: &str, steps: Option<u64>| {
        rows.iter().find(|r| {
            r["what"] == what
                && r["threads"].as_u64() == Some(threads)
                && r["size"] == size
                && (steps.is_none() || r["steps"].as_u64() == steps)
        })
    };
    for what in ["sprite", "sprite-q"] {
        let first = rows.iter().find(|r| r["what"] == what);
        let params = first.and_then(|r| r["params"].as_u64()).unwrap_or(0);
        let model = first.and_then(|r| r["model"].as_str()).unwrap_or(what);
        let (reference, kernel) = if what == "sprite" {
            ("bare candle f32 GEMMs".to_string(), String::new())
        } else {
            let k = first.and_then(|r| r["kernel"].as_str()).unwrap_or("?");
            (
                format!("bare int8 GEMMs, {k} kernel"),
                format!(", int8 dot products: {k}"),
            )
        };
        println!(
            "\n{model} ({:.2} M parameters{kernel}), seconds per image; GEMM = the same matrix products as {reference} (reference)\n",
            params as f64 / 1e6
        );
        println!("| size | steps | 1 thread | GEMM | ratio | 2 threads | GEMM | ratio |");
        println!("|---|---|---|---|---|---|---|---|");
        for size in ["32x32", "64x32", "64x64"] {
            if get(what, 1, size, None).is_none() && get(what, 2, size, None).is_none() {
                continue;
            }
            for steps in [10, 20, 50] {
                let mut line = format!("| {size} | {steps} |");
                for threads in [1, 2] {
                    match get(what, threads, size, Some(steps)) {
                        Some(r) => {
                            let (s, g) = (
                                r["secs"].as_f64().unwrap_or(f64::NAN),
                                r["gemm_secs"].as_f64().unwrap_or(f64::NAN),
                            );
                            line += &format!(" {s:.3} | {g:.3} | {:.2} |", s / g);
                        }
                        None => line += " – | – | – |",
                    }
                }
                println!("{line}");
            }
        }
    }
    println!(
        "\nkiln-pipeline/2 (integer) against kiln-pipeline/1 (f32 on candle), same run, seconds per image (targets for 32x32 at 20 steps on one thread: ≤ 0.55× v1, ≤ 1.3× its bare int8 GEMMs)\n"
    );
    println!("| size | steps | threads | v1 f32 | integer | integer / v1 | integer / its GEMMs |");
    println!("|---|---|---|---|---|---|---|");
    for size in ["32x32", "64x32"] {
        for steps in [10, 20, 50] {
            for threads in [1, 2] {
                if let (Some(v1), Some(q)) = (
                    get("sprite", threads, size, Some(steps)),
                    get("sprite-q", threads, size, Some(steps)),
                ) {
                    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
                    println!(
                        "| {size} | {steps} | {threads} | {:.3} | {:.3} | {:.2} | {:.2} |",
                        f(v1, "secs"),
                        f(q, "secs"),
                        f(q, "secs") / f(v1, "secs"),
                        f(q, "secs") / f(q, "gemm_secs")
                    );
                }
            }
        }
    }
    if let Some(first) = gpu_rows.first() {
        println!(
            "\nkiln-pipeline/2 on the GPU backend (wgpu, adapter: {}) beside the CPU's integer kernels (1 thread), seconds per image; every row painted the same content hash on both (target on a discrete GPU: 32x32 at 20 steps ≤ 0.020 s)\n",
            first["adapter"].as_str().unwrap_or("?")
        );
        println!("| size | steps | GPU | CPU | GPU / CPU |");
        println!("|---|---|---|---|---|");
        for r in &gpu_rows {
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.2} |",
                r["size"].as_str().unwrap_or("?"),
                r["steps"],
                f("secs"),
                f("cpu_secs"),
                f("secs") / f("cpu_secs")
            );
        }
    }
    println!(
        "\nStable Diffusion UNet, one step on 32x32 latents (256x256 pixels in SD), guidance pair of 2, seconds\n"
    );
    println!("| what | 1 thread | 2 threads |");
    println!("|---|---|---|");
    for (what, label) in [
        ("sd-tiny-unet-step", "tiny checkpoint's UNet, one step"),
        (
            "sd-turbo-unet-step",
            "full-size SD 2.1/Turbo UNet (random), one step",
        ),
    ] {
        let cell = |t| {
            get(what, t, "256x256", None)
                .and_then(|r| r["secs"].as_f64())
                .map(|s| format!("{s:.3}"))
                .unwrap_or_else(|| "–".into())
        };
        println!("| {label} | {} | {} |", cell(1), cell(2));
    }
    Ok(())
}
