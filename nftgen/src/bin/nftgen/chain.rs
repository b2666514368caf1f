//! `nftgen mint`, `verify`, `tokens` and `deploy`: provenance on chain.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kiln_nftgen::chain::{ChainClient, ChainConfig, Verification, default_data_dir};
use kiln_nftgen::{CreatorAddress, GeneratedArt, TokenId, png_io, store};
use serde_json::json;

/// Options every chain command takes.
#[derive(clap::Args)]
pub struct ChainArgs {
    /// Data directory: local chain state, mint journal, content store and `chain.toml`
    /// [default: $KILN_DATA_DIR, else ~/.local/share/kiln].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Print one JSON line on stdout (also for errors).
    #[arg(long, global = true)]
    pub json: bool,
}

impl ChainArgs {
    /// Opens the chain to mint: mints left pending by an earlier run are settled first, and
    /// the ones that cannot be are reported (they stop nothing).
    fn open(&self) -> anyhow::Result<ChainClient> {
        let client = ChainClient::open(&self.config()?)?;
        for r in client.resolutions() {
            match &r.reason {
                Some(reason) => eprintln!(
                    "nftgen: an earlier mint of {} cannot be settled: {}",
                    r.token_id,
                    kiln_nftgen::printable(reason)
                ),
                None => eprintln!(
                    "nftgen: an earlier mint of {} was left pending: {} ({:?})",
                    r.token_id, r.action, r.state
                ),
            }
        }
        Ok(client)
    }

    /// Opens the chain to read and verify, leaving the journal alone.
    fn open_read_only(&self) -> anyhow::Result<ChainClient> {
        Ok(ChainClient::open_read_only(&self.config()?)?)
    }

    fn config(&self) -> anyhow::Result<ChainConfig> {
        let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        Ok(ChainConfig::load(&dir)?)
    }
}

/// Reads a Kiln PNG as art to mint, refusing one whose pixels do not match its stored hash.
fn read_art(file: &Path) -> anyhow::Result<GeneratedArt> {
    let png = png_io::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !png.pixels_match() {
        bail!(
            "{}: its pixels do not match the content hash stored in it (the image was altered)",
            file.display()
        );
    }
    Ok(GeneratedArt {
        recipe_hash: png.record.recipe_hash(),
        record: png.record,
        width: png.width,
        height: png.height,
        rgba: png.rgba,
        content_hash: png.content_hash,
    })
}

/// `nftgen mint FILE.png`.
pub fn mint(
    args: &ChainArgs,
    file: &Path,
    model: Option<PathBuf>,
    no_check: bool,
) -> anyhow::Result<bool> {
    let art = read_art(file)?;
    if !no_check {
        // Mint only what the recipe really paints: re-run it first.
        let model = super::load_model(model, kiln_nftgen::DevicePreference::Cpu)?;
        if model.hash() != art.record.model.sha256 {
            bail!(
                "the recipe names model {} ({}), but {} is {}: pass --model with its weights",
                kiln_nftgen::printable(&art.record.model.id),
                art.record.model.sha256,
                model.path().display(),
                model.hash()
            );
        }
        let again = model.regenerate(&art.record, &mut |_| kiln_nftgen::Control::Continue)?;
        if again.content_hash != art.content_hash {
            bail!(
                "re-running the recipe gives {} but the image is {}: refusing to mint art its recipe does not paint",
                again.content_hash,
                art.content_hash
            );
        }
    }
    let chain = args.open()?;
    // Minted to its creator, the signing wallet: the contract mints to no one else.
    let to = chain.account();
    let receipt = chain.mint(&art)?;
    let png = chain.store().png_path(art.content_hash);
    let png_cid = std::fs::read(&png).ok().and_then(|b| store::cid_v1(&b));
    let meta = chain.store().token_metadata_path(receipt.token_id);
    let meta_cid = std::fs::read(&meta).ok().and_then(|b| store::cid_v1(&b));
    if args.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "token_id": receipt.token_id,
                "tx": receipt.tx,
                "block": receipt.block,
                "gas_used": receipt.gas_used,
                "commit_tx": receipt.commit_tx,
                "commit_gas_used": receipt.commit_gas_used,
                "owner": to,
                "creator": chain.account(),
                "contract": chain.contract(),
                "chain_id": chain.chain_id(),
                "content_hash": art.content_hash,
                "png": png,
                "png_cid": png_cid,
                "metadata": meta,
                "metadata_cid": meta_cid,
            })
        );
    } else {
        println!("minted token {}", receipt.token_id);
        println!("  owner     {to}");
        println!("  creator   {}", chain.account());
        if let (Some(tx), Some(gas)) = (receipt.commit_tx, receipt.commit_gas_used) {
            println!("  commit    {tx} ({gas} gas)");
        }
        println!(
            "  tx        {} (block {}, {} gas)",
            receipt.tx, receipt.block, receipt.gas_used
        );
        println!(
            "  contract  {} on chain {}",
            chain.contract(),
            chain.chain_id()
        );
        println!("  image     {}", png.display());
        if let Some(cid) = png_cid {
            println!("            ipfs://{cid}");
        }
        println!("  metadata  {}", meta.display());
    }
    Ok(true)
}

/// `nftgen verify TOKEN_ID|FILE.png`.
pub fn verify(
    args: &ChainArgs,
    target: &str,
    image: Option<&Path>,
    model: Option<PathBuf>,
    max_cost: Option<u64>,
    backend: kiln_nftgen::ArtBackend,
) -> anyhow::Result<bool> {
    let model = model.unwrap_or_else(kiln_nftgen::default_model_path);
    let options = kiln_nftgen::chain::VerifyOptions::default()
        .on(backend)
        .max_cost(max_cost.unwrap_or(kiln_nftgen::chain::DEFAULT_MAX_COST));
    let chain = args.open_read_only()?;
    let as_file = Path::new(target);
    let report: Verification = if as_file.is_file() {
        if image.is_some() {
            bail!("give either a file or --image with a token id, not both");
        }
        kiln_nftgen::chain::verify_file_with(&chain, as_file, &model, &options)?
    } else {
        let token: TokenId = target.parse().with_context(|| {
            format!("`{target}` is neither a file nor a token id (0x and 64 hex digits)")
        })?;
        kiln_nftgen::chain::verify_with(&chain, token, image, &model, &options)?
    };
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = true.into();
        println!("{v}");
    } else {
        // Records on the chain are anyone's text: printed escaped.
        let shown = kiln_nftgen::printable;
        println!("token {}", report.token_id);
        println!("  {}", shown(&report.summary));
        if let Some(c) = &report.chain {
            println!(
                "  recipe    \"{}\" seed {} · {} {} steps · guidance {} · {}x{}",
                shown(&c.record.prompt),
                c.record.seed,
                c.record.steps,
                c.record.scheduler.as_str(),
                c.record.guidance,
                c.record.width,
                c.record.height
            );
            println!(
                "  model     {} ({})",
                shown(&c.record.model.id),
                c.record.model.sha256
            );
            println!("  creator   {}  owner {}", c.creator, c.owner);
            println!("  minted    {} in block {}", c.tx, c.block);
            println!("  painted   on {}", c.record.backend);
        }
        if let Some(b) = report.rerun_on {
            println!("  re-run    on {b}");
        }
        if let Some(p) = &report.image {
            println!("  image     {}", p.display());
        }
        if let kiln_nftgen::chain::FileRecord::Differs(fields) = &report.file_record {
            println!(
                "  note      the file's embedded recipe differs from the chain's in: {} (the chain's record was verified)",
                fields.join(", ")
            );
        }
    }
    Ok(report.verdict.is_authentic())
}

/// `nftgen tokens [--owner ADDR] [--offset N] [--limit N]`.
pub fn tokens(
    args: &ChainArgs,
    owner: Option<&str>,
    offset: usize,
    limit: usize,
) -> anyhow::Result<bool> {
    let owner: Option<CreatorAddress> = owner
        .map(|t| t.parse().with_context(|| format!("--owner `{t}`")))
        .transpose()?;
    let chain = args.open_read_only()?;
    let owner = owner.unwrap_or_else(|| chain.account());
    // A token whose record cannot be read (anyone can mint junk to anyone, a request can
    // fail) is a row saying so, never the end of the listing.
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for (token, row) in chain.records_of(owner, offset, limit)? {
        match row {
            Ok(r) => rows.push(r),
            Err(kiln_nftgen::chain::ChainError::BadRecord { detail, .. }) => {
                unreadable.push((token, detail))
            }
            Err(e) => unreadable.push((token, e.to_string())),
        }
    }
    if args.json {
        let tokens: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "token_id": r.token_id,
                    "prompt": r.record.prompt,
                    "seed": r.record.seed,
                    "model": r.record.model.id,
                    "content_hash": r.content_hash,
                    "creator": r.creator,
                    "block": r.block,
                    "token_uri": r.token_uri,
                })
            })
            .collect();
        let unreadable: Vec<_> = unreadable
            .iter()
            .map(|(token, detail)| json!({"token_id": token, "unreadable": detail}))
            .collect();
        println!(
            "{}",
            json!({"ok": true, "owner": owner, "contract": chain.contract(), "tokens": tokens,
                "unreadable": unreadable})
        );
    } else {
        println!(
            "{} token(s) owned by {owner}",
            rows.len() + unreadable.len()
        );
        for (token, detail) in &unreadable {
            println!(
                "  {token}  unreadable record: {}",
                kiln_nftgen::printable(detail)
            );
        }
        for r in &rows {
            println!(
                "  {}  \"{}\" seed {} ({}, block {})",
                r.token_id,
                kiln_nftgen::printable(&r.record.prompt),
                r.record.seed,
                kiln_nftgen::printable(&r.record.model.id),
                r.block
            );
        }
    }
    Ok(true)
}

/// `nftgen deploy`: a new contract on the configured chain.
pub fn deploy(args: &ChainArgs, metadata_base: &str, royalty_bps: u16) -> anyhow::Result<bool> {
    let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let config = ChainConfig::load(&dir)?;
    let client = ChainClient::open_for_deploy(&config)?;
    let receipt = client.deploy_contract(metadata_base, royalty_bps)?;
    let address = receipt
        .contract_address
        .context("the deployment receipt names no contract")?;
    let block = receipt.block_number.unwrap_or(0);
    if args.json {
        println!(
            "{}",
            json!({"ok": true, "contract": address.to_string(), "block": block, "gas_used": receipt.gas_used})
        );
    } else {
        println!("deployed KilnProvenance at {address} in block {block}");
        println!("set KILN_CONTRACT={address} (and from_block = {block} in chain.toml)");
    }
    Ok(true)
}
