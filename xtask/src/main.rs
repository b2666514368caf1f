//! Kiln's developer and CI tasks. Run as `cargo xtask <task>`.
//!
//! - `setup`: makes a fresh Debian/Ubuntu machine ready (system packages, the default model).
//! - `fetch-models`: fetches and verifies the default model only.
//! - `demo`: set-up, then the demo village (the scripted tour, headless, where there is no display).
//! - `test`: set-up, then formatting, lints and every test.
//! - `bench npc`: the NPC engine against llama.cpp's own `llama-bench`.
//! - `bench art`: the art pipeline (kiln-sprite sizes and steps, a Stable Diffusion UNet step).
//! - `contracts`: compiles the provenance contract and writes its committed artifact.

mod bench;
mod contracts;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Kiln's developer and CI tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install system packages (as root; otherwise print the command) and fetch the default model.
    Setup,
    /// Fetch the default model into the cache and verify its checksum.
    FetchModels,
    /// Set up, then start the demo village (`kiln-demo`); with no display it plays the scripted
    /// tour headless and writes screenshots and a transcript to `target/demo/`.
    Demo {
        /// Passed on to `kiln-demo` (e.g. `--tour`, `--fresh`, `--headless`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then check formatting and lints and run every test.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Compile the provenance contract (pinned solc-js, EVM prague) and write
    /// `nftgen/contracts/KilnProvenance.json`.
    Contracts,
    /// Benchmarks (`npc`: Kiln's NPC engine side by side with llama-bench; `art`: the art pipeline).
    Bench {
        /// What to benchmark.
        #[arg(value_enum)]
        what: bench::Suite,
        /// Generated tokens per measurement.
        #[arg(long, default_value_t = 128)]
        tokens: u32,
        /// Repetitions per measurement.
        #[arg(long, default_value_t = 3)]
        reps: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::Setup => setup::setup().map(|_| ()),
        Task::FetchModels => setup::fetch_model().map(|_| ()),
        Task::Contracts => {
            let (init, runtime) = contracts::build(&setup::npm_tools()?)?;
            println!(
                "wrote {}: {init} bytes creation code, {runtime} bytes runtime code",
                contracts::ARTIFACT
            );
            Ok(())
        }
        Task::Demo { args } => {
            let model = setup::setup()?;
            cargo(&["build", "-p", "kiln-demo"], &model)?;
            let out = target_dir().join("demo");
            std::fs::create_dir_all(&out)?;
            run(Command::new(target_dir().join("debug/kiln-demo"))
                .arg("--out")
                .arg(&out)
                .args(args)
                .env("BEVY_ASSET_ROOT", &root)
                .env("KILN_NPC_MODEL", &model))
        }
        Task::Test { no_lint } => {
            let model = setup::setup()?;
            if !no_lint {
                run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))
                    .context("formatting: run `cargo fmt --all`")?;
            }
            // Each crate is tested on its own (`-p`), so Cargo does not merge features across
            // crates, and one dev profile serves lints, tests and the demo.
            let mut totals = TestTotals::default();
            // The engines' command lines (and the trainer they need) are features a game leaves
            // off; their tests run them.
            let crates = [
                ("kiln-npc", "cli"),
                ("kiln-nftgen", "cli"),
                ("bevy_kiln", ""),
                ("kiln-demo", ""),
                ("kiln-cli", ""),
                ("xtask", ""),
            ];
            for (krate, features) in crates {
                if !no_lint {
                    cargo(
                        &[
                            "clippy",
                            "-p",
                            krate,
                            "--features",
                            features,
                            "--all-targets",
                            "--",
                            "-D",
                            "warnings",
                        ],
                        &model,
                    )?;
                }
                totals.add(cargo_test(krate, features, &model)?);
            }
            packaging(&model)?;
            if !no_lint {
                deny()?;
            }
            // One closing line for the whole run.
            println!("tests: {} passed, {} failed", totals.passed, totals.failed);
            Ok(())
        }
        Task::Bench { what, tokens, reps } => {
            let model = setup::setup()?;
            bench::run(what, &model, tokens, reps)
        }
    }
}

/// The repository root (the parent of this crate's directory). Taken from the
/// `CARGO_MANIFEST_DIR` that `cargo run` sets at run time, so a binary reused from a shared
/// target directory built in another checkout still works on this one.
fn workspace_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory, as Cargo itself picks it.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs cargo with the model path in the environment.
fn cargo(args: &[&str], model: &Path) -> Result<()> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .env("KILN_NPC_MODEL", model),
    )
}

/// Test counts summed over `cargo test` runs.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct TestTotals {
    passed: u64,
    failed: u64,
}

impl TestTotals {
    fn add(&mut self, other: TestTotals) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    /// Reads libtest's `test result: ok. 12 passed; 0 failed; …` line.
    fn parse(line: &str) -> Option<TestTotals> {
        let rest = line.strip_prefix("test result: ")?;
        let count = |word: &str| {
            rest.split(';')
                .find_map(|part| part.trim().strip_suffix(word))
                .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
        };
        Some(TestTotals {
            passed: count(" passed")?,
            failed: count(" failed")?,
        })
    }
}

/// The cargo-deny release the checks run with (installed once into Kiln's cache).
const CARGO_DENY: &str = "0.20.2";

/// Licences, bans and sources of the dependency graph (`deny.toml`), with cargo-deny.
fn deny() -> Result<()> {
    let root = setup::cache_dir().join("tools");
    let bin = root.join("bin");
    let installed = Command::new(bin.join("cargo-deny"))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DENY));
    if !installed {
        eprintln!(
            "xtask: installing cargo-deny {CARGO_DENY} into {}",
            root.display()
        );
        run(Command::new("cargo")
            .args([
                "install",
                "--locked",
                "--quiet",
                "cargo-deny",
                "--version",
                CARGO_DENY,
            ])
            .arg("--root")
            .arg(&root)
            // Its own build folder: not the workspace's, whose profile would rebuild it.
            .env("CARGO_TARGET_DIR", root.join("build")))?;
    }
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    run(Command::new("cargo")
        .args(["deny", "check", "licenses", "bans", "sources"])
        .env("PATH", path))
    .context("cargo deny: see deny.toml")
}

/// What a published crate needs lives inside it: kiln-npc, which depends on nothing
/// unpublished, packages and builds from its package alone; the packages of the crates that
/// depend on it (not on crates.io yet, so they cannot be built from their packages) hold
/// everything their sources read (the contract artifact, the embedded model, the kernels).
fn packaging(model: &Path) -> Result<()> {
    // The package builds with the workspace's settings for dependencies, so it reuses the
    // llama.cpp the tests built.
    cargo(
        &[
            "package",
            "-p",
            "kiln-npc",
            "--allow-dirty",
            "--config",
            "profile.dev.package.\"*\".opt-level=3",
            "--config",
            "profile.dev.package.\"*\".debug=false",
        ],
        model,
    )?;
    for (krate, needs) in [
        (
            "kiln-nftgen",
            &[
                "contracts/KilnProvenance.json",
                "models/kiln-sprite-q.safetensors",
                "src/gpu/kernels.wgsl",
                "RECIPE.md",
            ][..],
        ),
        ("bevy_kiln", &["README.md"][..]),
    ] {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["package", "--list", "--allow-dirty", "-p", krate])
            .output()
            .with_context(|| format!("cannot list the package of {krate}"))?;
        if !out.status.success() {
            bail!(
                "cargo package --list -p {krate} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let list = String::from_utf8_lossy(&out.stdout);
        for file in needs {
            if !list.lines().any(|l| l == *file) {
                bail!("the package of {krate} lacks {file}");
            }
        }
        eprintln!(
            "xtask: the package of {krate} holds {} files",
            list.lines().count()
        );
    }
    Ok(())
}

/// Runs `cargo test -p krate`, echoing its output, and sums its result lines.
fn cargo_test(krate: &str, features: &str, model: &Path) -> Result<TestTotals> {
    use std::io::BufRead;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The tests run on the local chain only: a developer's exported chain settings (a real
    // RPC endpoint and key) never reach them.
    cmd.args(["test", "-p", krate, "--features", features])
        .env("KILN_NPC_MODEL", model)
        .env_remove("KILN_RPC_URL")
        .env_remove("KILN_PRIVATE_KEY")
        .env_remove("KILN_CONTRACT")
        .stdout(std::process::Stdio::piped());
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let mut totals = TestTotals::default();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(t) = TestTotals::parse(&line) {
                totals.add(t);
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(totals)
}

/// Runs a command, failing with its command line when it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TestTotals;

    #[test]
    fn reads_libtest_result_lines() {
        let t = TestTotals::parse(
            "test result: ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.39s",
        );
        assert_eq!(
            t,
            Some(TestTotals {
                passed: 12,
                failed: 3
            })
        );
        assert_eq!(TestTotals::parse("running 12 tests"), None);
    }
}
