//! The README's quick start, as a game developer follows it: a fresh Cargo project in a temporary
//! folder outside this workspace, its `Cargo.toml` and `src/main.rs` taken from the README's
//! "Quick start" section, the models fetched with the documented commands, then `cargo run`
//! with no display. It must print a streamed NPC reply (from the model, not a fallback line), a
//! painted item and a token that verifies, and exit by itself.
//!
//! The project builds into this workspace's target folder with this workspace's lock file, so
//! it reuses what the tests already compiled (only Kiln's own crates and the game build again).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the game may take: its build (Kiln's crates, the game) and its run.
const DEADLINE: Duration = Duration::from_secs(25 * 60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fenced blocks (`lang`, text) of the README section that starts with `heading`.
fn section_blocks(readme: &str, heading: &str) -> Vec<(String, String)> {
    let start = readme.find(heading).expect("the README has the section");
    let rest = &readme[start + heading.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// The target folder this test binary was built in (`<target>/debug/deps/quickstart-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Runs `cmd` to completion within the deadline, returning (success, stdout, stderr).
fn run(cmd: &mut Command, started: Instant) -> (bool, String, String) {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} ran past {DEADLINE:?}; stderr:\n{}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (
        status.success(),
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

#[test]
fn readme_quick_start_runs_in_a_fresh_project_outside_the_repository() {
    let started = Instant::now();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = section_blocks(&readme, "\n## Quick start\n");
    let block = |lang: &str| {
        let found: Vec<&String> = blocks
            .iter()
            .filter(|(l, _)| l == lang)
            .map(|(_, b)| b)
            .collect();
        found
    };
    let [manifest] = block("toml")[..] else {
        panic!("the quick start has one toml block");
    };
    let [main_rs] = block("rust")[..] else {
        panic!("the quick start has one rust block");
    };
    let [commands] = block("sh")[..] else {
        panic!("the quick start has one sh block");
    };

    // A fresh project beside a "checkout" of Kiln: `../kiln` is a link to this repository.
    let tmp = tempfile::tempdir().unwrap();
    let kiln = std::fs::canonicalize(repo()).unwrap();
    std::os::unix::fs::symlink(&kiln, tmp.path().join("kiln")).unwrap();
    let game = tmp.path().join("my-game");
    std::fs::create_dir_all(game.join("src")).unwrap();
    assert!(
        !game.starts_with(&kiln),
        "the game must live outside the workspace"
    );
    std::fs::write(
        game.join("Cargo.toml"),
        format!(
            "[package]\nname = \"my-game\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n{manifest}"
        ),
    )
    .unwrap();
    std::fs::write(game.join("src/main.rs"), main_rs).unwrap();
    // The workspace's lock file pins the same versions, so the tests' build is reused.
    std::fs::copy(kiln.join("Cargo.lock"), game.join("Cargo.lock")).unwrap();

    // A game developer's environment: none of this repository's test settings.
    let data = tmp.path().join("data");
    let env = |cmd: &mut Command| {
        cmd.current_dir(&game)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("KILN_DATA_DIR", &data)
            .env_remove("KILN_NPC_MODEL")
            .env_remove("KILN_ART_MODEL")
            // A developer's exported wallet and chain never reach a test's mints.
            .env_remove("KILN_RPC_URL")
            .env_remove("KILN_PRIVATE_KEY")
            .env_remove("KILN_CONTRACT")
            .env_remove("BEVY_ASSET_ROOT")
            .env_remove("CARGO_MANIFEST_DIR")
            .env_remove("RUST_LOG");
    };

    // The documented set-up commands, as written.
    for line in commands.lines().filter(|l| l.starts_with("cargo ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(&words[1..]);
        env(&mut cmd);
        let (ok, out, err) = run(&mut cmd, started);
        assert!(ok, "`{line}` failed:\n{out}\n{err}");
    }

    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet"]);
    env(&mut cmd);
    let (ok, out, err) = run(&mut cmd, started);
    eprintln!("the game printed:\n{out}");
    assert!(ok, "the quick start game failed:\n{out}\n{err}");

    // The reply was streamed by the model: text after "Bram: ", and not the fallback line.
    let reply = out
        .lines()
        .find_map(|l| l.strip_prefix("Bram: "))
        .and_then(|l| l.split("  [").next())
        .expect("the game prints Bram's reply");
    assert!(
        reply.chars().any(char::is_alphabetic),
        "an empty reply: {reply:?}"
    );
    assert!(
        !reply.contains("too loud to talk"),
        "the NPC model did not load (fallback line): {err}"
    );
    assert!(
        out.contains("painted \"a glowing green potion\""),
        "no painted item:\n{out}"
    );
    assert!(out.contains("minted token "), "no token:\n{out}");
    assert!(
        out.contains("\nverified: Ok(Authentic)"),
        "the token did not verify:\n{out}"
    );
}
