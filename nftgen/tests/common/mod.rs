//! Helpers shared by the art engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_nftgen::sprite::{self, SpriteConfig};

/// Writes the tiny kiln-sprite config with random weights (seed) to `dir/name`.
pub fn tiny_sprite(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let cfg = SpriteConfig::tiny();
    sprite::save(&path, &cfg, &sprite::random_weights(&cfg, seed).unwrap()).unwrap();
    path
}

/// Runs the `nftgen` binary with extra environment variables.
pub fn nftgen(args: &[&str], env: &[(&str, &str)]) -> Output {
    nftgen_command(args, env).output().expect("nftgen runs")
}

/// The `nftgen` command [`nftgen`] runs, to spawn, watch and kill.
pub fn nftgen_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nftgen"));
    cmd.args(args)
        .env_remove("KILN_ART_MODEL")
        // A developer's own chain settings must never reach a test (nor pick its default
        // creator); tests that need them pass them in `env`.
        .env_remove("KILN_RPC_URL")
        .env_remove("KILN_PRIVATE_KEY")
        .env_remove("KILN_CONTRACT")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Asserts a successful run, showing its stderr otherwise.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a failed run: non-zero exit and exactly one line on stderr containing `needle`
/// (besides progress lines).
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    let other: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("step ")).collect();
    assert_eq!(other.len(), 1, "one line expected: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "`{needle}` not in: {stderr}"
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
