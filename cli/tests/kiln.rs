//! The `kiln` command on the real model file (`KILN_NPC_MODEL`, set by `cargo xtask test`).

use std::path::PathBuf;
use std::process::Command;

fn model() -> PathBuf {
    let path = PathBuf::from(
        std::env::var_os("KILN_NPC_MODEL")
            .expect("KILN_NPC_MODEL names the fetched model (run `cargo xtask test`)"),
    );
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

fn kiln() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_remove("KILN_NPC_MODEL")
        .env_remove("BEVY_ASSET_ROOT");
    cmd
}

#[test]
fn fetch_models_keeps_a_verified_copy_and_prints_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::copy(model(), &dest).unwrap();
    let out = kiln()
        .args(["fetch-models", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dest.display().to_string()
    );
    assert!(err.contains("model ready"), "{err}");
    assert!(
        !err.contains("downloading"),
        "a verified copy was fetched again: {err}"
    );
}

#[test]
fn where_lists_every_place_in_order_and_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("game");
    std::fs::create_dir_all(game.join("assets/models")).unwrap();
    std::fs::copy(
        model(),
        game.join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    let out = kiln()
        .arg("where")
        .env("BEVY_ASSET_ROOT", &game)
        .env("KILN_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let assets = text
        .find("the game's assets")
        .expect("the game's assets are listed");
    let cache = text.find("Kiln's cache").expect("the cache is listed");
    assert!(
        assets < cache,
        "the game's assets come before the cache:\n{text}"
    );
    let line = |what: &str| text.lines().find(|l| l.contains(what)).unwrap().to_string();
    assert!(line("the game's assets").contains("found"), "{text}");
    assert!(line("Kiln's cache").trim_start().starts_with('-'), "{text}");
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = kiln().arg("fetch-everything").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
