//! The examples, run as a game developer runs them: each must finish by itself, headless, and
//! print what it promises (on the real models, a real anvil).

use std::path::PathBuf;
use std::process::Command;

/// An example's binary. `cargo test` builds the examples beside the test binaries; built again
/// here (a no-op then) so that running only this test works too.
fn example(name: &str) -> Command {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "bevy_kiln", "--example", name])
        .status()
        .unwrap();
    assert!(status.success(), "cannot build the example {name}");
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin: PathBuf = dir.join(name);
    assert!(bin.is_file(), "{} was not built", bin.display());
    let mut cmd = Command::new(bin);
    // A developer's exported wallet and chain never reach an example run by a test.
    cmd.env_remove("KILN_RPC_URL")
        .env_remove("KILN_PRIVATE_KEY")
        .env_remove("KILN_CONTRACT");
    cmd
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn talk_streams_two_replies_from_the_model() {
    let out = run(example("talk"));
    assert_eq!(out.matches("Player: ").count(), 2, "{out}");
    assert_eq!(
        out.matches(" · model]").count(),
        2,
        "not the model's replies:\n{out}"
    );
}

#[test]
fn paint_writes_an_item_a_sheet_with_its_atlas_and_a_tile_that_verify_as_kiln_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = example("paint");
    cmd.arg(dir.path());
    let out = run(cmd);
    assert!(out.contains("with an atlas"), "{out}");
    for file in ["potion.png", "guard.png", "stones.png"] {
        let png = bevy_kiln::kiln_nftgen::png_io::read(&dir.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(png.stored_content_hash, Some(png.content_hash), "{file}");
        assert!(
            out.contains(&png.content_hash.to_string()),
            "{file}'s hash is not the one printed:\n{out}"
        );
    }
}

#[test]
fn mint_local_mints_and_verifies_a_token() {
    let out = run(example("mint_local"));
    assert!(out.contains("[altar] minted token "), "{out}");
    assert!(out.contains("[altar] verified: Authentic"), "{out}");
}
