//! Shared set-up for tests on the real model (fetched by `cargo xtask setup`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_npc::{Engine, EngineConfig, Persona};

/// The real SmolLM2 model; fails with a clear message when set-up has not run.
pub fn model_path() -> PathBuf {
    let path = kiln_npc::default_model_path();
    assert!(
        path.is_file(),
        "the test model {} is missing: run `cargo xtask setup` (or set KILN_NPC_MODEL)",
        path.display()
    );
    path
}

/// One engine per test binary.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::load(model_path(), EngineConfig::default().with_slots(8)).expect("load model")
    })
}

/// A shipped persona by file stem.
pub fn persona(name: &str) -> Persona {
    Persona::load(assets().join("npcs").join(format!("{name}.toml"))).expect("shipped persona")
}

/// The repository's `assets/` directory (from the run-time `CARGO_MANIFEST_DIR` that `cargo test`
/// sets, so a test binary reused from another checkout's target directory reads this one).
pub fn assets() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../assets")
}

/// The shipped personas.
pub const PERSONAS: [&str; 3] = ["blacksmith", "merchant", "oracle"];

/// Runs the `npc` CLI with `args` on the test model; asserts it succeeded and returns its
/// standard output.
pub fn npc_cli(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_npc"))
        .args(args)
        .arg("--model")
        .arg(model_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
