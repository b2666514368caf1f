//! Provenance on a real chain: every test starts its own anvil (installed by `cargo xtask
//! setup`) in a temporary data directory, deploys the committed contract artifact and mints art
//! painted by the shipped integer kiln-sprite-q weights (the default model).

mod common;

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use common::{assert_success, nftgen, path_str};
use kiln_nftgen::chain::{
    ChainClient, ChainConfig, ChainError, DEV_KEYS, FileRecord, KilnProvenance, MintRejection,
    MintState, Verdict, verify, verify_file,
};
use kiln_nftgen::{
    ArtModel, Control, CreatorAddress, GeneratedArt, GenerationRequest, TokenId, png_io,
};

fn model() -> ArtModel {
    ArtModel::load(kiln_nftgen::default_model_path()).expect("shipped model")
}

/// Paints for the local chain's default wallet (anvil's account 0): with the integer model the
/// creator is part of the picture, so art is painted for the wallet that will mint it.
fn paint(model: &ArtModel, prompt: &str, seed: u64) -> GeneratedArt {
    let me = ChainConfig::local(".").signer_address().unwrap();
    let req = GenerationRequest::new(prompt, seed).steps(8).creator(me);
    model.generate(&req, &mut |_| Control::Continue).unwrap()
}

/// A plain alloy client of `url` signing with `key`, outside Kiln's client (as another tool or
/// a copier would be), with a runtime to drive it.
fn wallet(url: &str, key: &str) -> (tokio::runtime::Runtime, DynProvider) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signer: PrivateKeySigner = key.parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.parse().unwrap())
        .erased();
    (rt, provider)
}

/// Commits to and then reveals `mint(recipe, content, salt)` on `chain`'s contract, signed by
/// `key`, past Kiln's client (as anyone can), and returns the reveal's receipt.
fn mint_directly(
    chain: &ChainClient,
    key: &str,
    recipe: Vec<u8>,
    content: B256,
) -> alloy::rpc::types::TransactionReceipt {
    let sender = key.parse::<PrivateKeySigner>().unwrap().address();
    let salt = B256::repeat_byte(0x5a);
    let commitment = commitment(sender, &recipe, content, salt);
    let to = Address::from(chain.contract().0);
    let commit = KilnProvenance::commitCall { commitment };
    send(
        chain.url(),
        key,
        TransactionRequest::default()
            .with_to(to)
            .with_input(commit.abi_encode()),
    );
    let call = KilnProvenance::mintCall {
        recipe: recipe.into(),
        contentHash: content,
        salt,
    };
    let tx = TransactionRequest::default()
        .with_to(to)
        .with_input(call.abi_encode())
        .with_gas_limit(1_000_000);
    send(chain.url(), key, tx)
}

/// The commitment the contract expects of `sender` for `recipe`, `content` and `salt`.
fn commitment(sender: Address, recipe: &[u8], content: B256, salt: B256) -> B256 {
    use alloy::sol_types::SolValue;
    alloy::primitives::keccak256(
        (sender, alloy::primitives::keccak256(recipe), content, salt).abi_encode(),
    )
}

/// Signs `tx` with `key`, sends it to the node at `url` and waits for its receipt.
fn send(url: &str, key: &str, tx: TransactionRequest) -> alloy::rpc::types::TransactionReceipt {
    let (rt, provider) = wallet(url, key);
    rt.block_on(async {
        provider
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
    })
    .unwrap()
}

fn open(dir: &Path) -> ChainClient {
    ChainClient::open(&ChainConfig::local(dir)).expect("local chain opens")
}

/// A token painted on the GPU verifies on the CPU, and one painted on the CPU verifies on the
/// GPU (lavapipe here): the record names where it was painted, the verdict does not depend on it.
#[test]
#[cfg(feature = "gpu")]
fn a_gpu_painted_token_verifies_on_the_cpu_and_a_cpu_painted_one_on_the_gpu() {
    use kiln_nftgen::chain::{VerifyOptions, verify_with};
    use kiln_nftgen::{ArtBackend, Backend};
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let cpu = model();
    let mut gpu = model();
    gpu.select_backend(ArtBackend::Gpu).unwrap();
    let on_gpu = paint(&gpu, "a purple gem", 21);
    let on_cpu = paint(&cpu, "a purple gem", 22);
    assert_eq!(on_gpu.record.backend, Backend::Wgpu);
    assert_eq!(on_cpu.record.backend, Backend::Cpu);
    let weights = kiln_nftgen::default_model_path();
    for (art, painted, rerun) in [
        (&on_gpu, Backend::Wgpu, ArtBackend::Cpu),
        (&on_cpu, Backend::Cpu, ArtBackend::Gpu),
    ] {
        let token = chain.mint(art).unwrap().token_id;
        assert_eq!(
            chain.record(token).unwrap().unwrap().record.backend,
            painted
        );
        let options = VerifyOptions::default().on(rerun);
        let v = verify_with(&chain, token, None, &weights, &options).unwrap();
        assert_eq!(v.verdict, Verdict::Authentic, "{}", v.summary);
        let expected = if rerun == ArtBackend::Gpu {
            Backend::Wgpu
        } else {
            Backend::Cpu
        };
        assert_eq!(v.rerun_on, Some(expected));
    }
}

#[test]
fn mint_then_verify_is_authentic_and_commit_plus_reveal_cost_at_most_160k_gas() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let model = model();
    // A 22-byte prompt, as the gas target states.
    let art = paint(&model, "a glowing green potion", 7);
    assert_eq!(art.record.prompt.len(), 22);
    let me = chain.account();
    let receipt = chain.mint(&art).unwrap();
    // The first token of a fresh owner pays for a new balance slot: the most expensive case.
    let commit_gas = receipt.commit_gas_used.expect("committed first");
    eprintln!(
        "gas, first token: commit {commit_gas} + reveal {} = {}",
        receipt.gas_used,
        receipt.total_gas()
    );
    assert!(
        receipt.total_gas() <= 160_000,
        "commit + reveal used {} gas",
        receipt.total_gas()
    );
    let second = chain.mint(&paint(&model, "a red sword", 3)).unwrap();
    eprintln!(
        "gas, owner holds one: commit {} + reveal {}",
        second.commit_gas_used.unwrap(),
        second.gas_used
    );
    assert!(second.total_gas() < receipt.total_gas());

    // The token id is the recipe hash of the record bound to the minter.
    let bound = chain.attribute(&art).unwrap();
    assert_eq!(bound.record.creator, Some(me));
    assert_eq!(receipt.token_id.0, bound.recipe_hash.0);
    assert_eq!(bound.content_hash, art.content_hash);

    let record = chain.record(receipt.token_id).unwrap().expect("minted");
    assert_eq!(record.record, bound.record);
    assert_eq!(record.content_hash, art.content_hash);
    assert_eq!((record.creator, record.owner), (me, me));
    assert_eq!(record.tx, receipt.tx);
    assert!(
        record
            .token_uri
            .ends_with(&format!("/tokens/{}.json", receipt.token_id)),
        "{}",
        record.token_uri
    );
    assert_eq!(
        chain.tokens_of(me).unwrap(),
        vec![receipt.token_id, second.token_id]
    );
    assert_eq!(
        chain.tokens_with_content(art.content_hash).unwrap(),
        vec![receipt.token_id]
    );
    assert_eq!(
        chain.content_of(receipt.token_id).unwrap(),
        Some(art.content_hash)
    );
    // The commitment was spent by the reveal.
    let entry = &chain.journal().unwrap()[0];
    assert!(entry.commit_block.unwrap() < receipt.block);

    // Metadata: ERC-721 with attributes plus ERC-7007's fields, image by IPFS CID.
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(chain.store().token_metadata_path(receipt.token_id)).unwrap(),
    )
    .unwrap();
    let png = std::fs::read(chain.store().png_path(art.content_hash)).unwrap();
    assert_eq!(
        meta["image"],
        format!("ipfs://{}", kiln_nftgen::store::cid_v1(&png).unwrap())
    );
    assert_eq!(meta["aigc_type"], "image");
    // ERC-7007's aigc_data is a URI of the content: the PNG, as `image` names it.
    assert_eq!(meta["aigc_data"], meta["image"]);
    assert_eq!(meta["kiln_content_hash"], art.content_hash.to_string());
    assert_eq!(meta["prompt"], "a glowing green potion");
    assert_eq!(meta["proof_type"], "fraud");
    assert!(meta["attributes"].as_array().unwrap().len() >= 7);

    // Verify from the store's copy and from a file.
    let v = verify(
        &chain,
        receipt.token_id,
        None,
        &kiln_nftgen::default_model_path(),
    )
    .unwrap();
    assert_eq!(v.verdict, Verdict::Authentic, "{}", v.summary);
    assert_eq!(v.pipeline.as_deref(), Some("kiln-pipeline/2"));
    assert_eq!(v.matched, ["image", "model", "recipe"]);
    assert!(v.summary.contains("kiln-pipeline/2"), "{}", v.summary);
    let file = dir.path().join("potion.png");
    png_io::write(&file, &art).unwrap();
    let v = verify_file(&chain, &file, &kiln_nftgen::default_model_path()).unwrap();
    assert_eq!(v.verdict, Verdict::Authentic, "{}", v.summary);
    // The file was never attributed; binding it to the minter is not a difference.
    assert_eq!(v.file_record, FileRecord::Matches);
}

#[test]
fn altered_pixel_edited_recipe_and_wrong_model_get_their_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let model = model();
    let art = chain
        .attribute(&paint(&model, "a blue shield", 11))
        .unwrap();
    let token = chain.mint(&art).unwrap().token_id;
    let weights = kiln_nftgen::default_model_path();

    // One pixel changed (the file still carries the original record and stored hash).
    let mut altered = art.clone();
    altered.rgba[4 * 37] ^= 0x01;
    let file = dir.path().join("altered.png");
    png_io::write(&file, &altered).unwrap();
    let v = verify_file(&chain, &file, &weights).unwrap();
    assert_eq!(v.token_id, token);
    let actual = kiln_nftgen::ContentHash::of_rgba8(32, 32, &altered.rgba);
    assert_eq!(
        v.verdict,
        Verdict::ImageAltered {
            expected: art.content_hash,
            actual
        }
    );

    // The original pixels with another seed written into the file's recipe: the chain's record
    // wins, the verdict stands, and the report names the edited field.
    let mut edited = art.clone();
    edited.record.seed = 12;
    let file = dir.path().join("edited.png");
    png_io::write(&file, &edited).unwrap();
    let v = verify_file(&chain, &file, &weights).unwrap();
    assert_eq!(v.token_id, token);
    assert_eq!(v.verdict, Verdict::Authentic);
    assert_eq!(v.file_record, FileRecord::Differs(vec!["seed".into()]));
    assert_eq!(v.chain.unwrap().record.seed, 11);

    // Other weights, and no weights.
    let other = common::tiny_sprite(dir.path(), "other.safetensors", 5);
    let v = verify(&chain, token, None, &other).unwrap();
    assert!(
        matches!(v.verdict, Verdict::ModelDifferent { expected, .. } if expected == art.record.model.sha256),
        "{v:?}"
    );
    let v = verify(&chain, token, None, &dir.path().join("absent.safetensors")).unwrap();
    assert!(matches!(v.verdict, Verdict::ModelMissing { .. }), "{v:?}");

    // No image anywhere, and a token that does not exist.
    std::fs::remove_file(chain.store().png_path(art.content_hash)).unwrap();
    let v = verify(&chain, token, None, &weights).unwrap();
    assert_eq!(
        v.verdict,
        Verdict::ImageMissing {
            expected: art.content_hash
        }
    );
    let v = verify(&chain, kiln_nftgen::TokenId([7; 32]), None, &weights).unwrap();
    assert_eq!(v.verdict, Verdict::TokenUnknown);
}

#[test]
fn copies_reattributions_and_repeats_cannot_take_or_block_a_creators_token() {
    let dir = tempfile::tempdir().unwrap();
    let alice = open(dir.path());
    // Bob joins the same local chain with anvil's second account.
    let bob =
        ChainClient::open(&ChainConfig::local(dir.path()).with_local_key(DEV_KEYS[1])).unwrap();
    assert_eq!(bob.contract(), alice.contract());
    assert_ne!(bob.account(), alice.account());
    let model = model();
    let art = alice
        .attribute(&paint(&model, "a golden crown", 5))
        .unwrap();

    // Bob cannot claim Alice's recipe through Kiln…
    assert!(matches!(
        bob.mint(&art),
        Err(ChainError::CreatorMismatch { creator, signer }) if creator == alice.account() && signer == bob.account()
    ));
    // …nor by sending her exact reveal himself (a copied pending transaction).
    let call = KilnProvenance::mintCall {
        recipe: art.record.canonical_bytes().into(),
        contentHash: B256::from(art.content_hash.0),
        salt: B256::ZERO,
    };
    let (rt, provider) = wallet(bob.url(), DEV_KEYS[1]);
    let tx = TransactionRequest::default()
        .with_to(Address::from(alice.contract().0))
        .with_input(call.abi_encode());
    let err = rt.block_on(provider.call(tx).into_future()).unwrap_err();
    let decoded = err
        .as_error_resp()
        .and_then(|e| e.as_decoded_interface_error::<KilnProvenance::KilnProvenanceErrors>());
    assert!(
        matches!(decoded, Some(KilnProvenance::KilnProvenanceErrors::NotCreator(ref e))
            if e.creator.0 == alice.account().0 && e.sender.0 == bob.account().0),
        "{err}"
    );

    // Bob re-attributes Alice's pixels to himself before she mints (he saw her PNG): an
    // unattributed copy is refused before anything is sent (its pixels depend on the creator);
    // one naming him mints — the contract cannot see pixels — but it blocks nothing, and it
    // does not verify: his recipe paints another picture.
    let mut unattributed = art.clone();
    unattributed.record.creator = None;
    assert!(matches!(
        bob.mint(&unattributed),
        Err(ChainError::CreatorNotPainted { signer, .. }) if signer == bob.account()
    ));
    let mut reattributed = art.clone();
    reattributed.record.creator = Some(bob.account());
    reattributed.recipe_hash = reattributed.record.recipe_hash();
    let squat = bob.mint(&reattributed).unwrap().token_id;
    let token = alice.mint(&art).unwrap().token_id;
    let weights = kiln_nftgen::default_model_path();
    let v = verify(&alice, token, None, &weights).unwrap();
    assert_eq!(v.verdict, Verdict::Authentic, "{}", v.summary);
    let v = verify(&alice, squat, None, &weights).unwrap();
    assert!(
        matches!(v.verdict, Verdict::NotReproducible { expected, actual: Some(a), .. } if expected == art.content_hash && a != expected),
        "{v:?}"
    );
    assert_eq!(
        alice.tokens_with_content(art.content_hash).unwrap(),
        vec![squat, token]
    );
    // Bob's claim did not replace the stored image's record: it is the first claimant's, and
    // Alice's file verifies as hers.
    let stored = kiln_nftgen::png_io::read(&alice.store().png_path(art.content_hash)).unwrap();
    assert_eq!(stored.record, reattributed.record);
    let file = dir.path().join("crown.png");
    png_io::write(&file, &art).unwrap();
    let v = verify_file(&alice, &file, &weights).unwrap();
    assert_eq!((v.token_id, v.verdict), (token, Verdict::Authentic));

    // Alice again: refused in simulation, so nothing was sent…
    let nonce = || {
        rt.block_on(
            provider
                .get_transaction_count(Address::from(alice.account().0))
                .into_future(),
        )
        .unwrap()
    };
    let nonce_before = nonce();
    assert!(matches!(
        alice.mint(&art),
        Err(ChainError::Rejected(MintRejection::AlreadyMinted { token_id })) if token_id == token
    ));
    assert_eq!(nonce_before, nonce());
    // …and the next mint is mined at once (no nonce gap left by the refusal).
    let next = alice.mint(&paint(&model, "a silver key", 2)).unwrap();
    assert!(alice.exists(next.token_id).unwrap());
    assert_eq!(alice.tokens_of(bob.account()).unwrap(), vec![squat]);

    // The contract's own facts: interfaces and royalty.
    let c = KilnProvenance::new(Address::from(alice.contract().0), &provider);
    for id in [
        "0x702c55a6",
        "0x80ac58cd",
        "0x5b5e139f",
        "0x2a55205a",
        "0x01ffc9a7",
    ] {
        let id: [u8; 4] = alloy::hex::decode(id).unwrap().try_into().unwrap();
        assert!(
            rt.block_on(c.supportsInterface(id.into()).call().into_future())
                .unwrap(),
            "{id:?}"
        );
    }
    let (receiver, amount) = {
        let r = rt
            .block_on(
                c.royaltyInfo(U256::from_be_bytes(token.0), U256::from(10_000u64))
                    .call()
                    .into_future(),
            )
            .unwrap();
        (r.receiver, r.royaltyAmount)
    };
    assert_eq!(receiver.0, alice.account().0);
    assert_eq!(amount, U256::from(500u64));
    let ok = rt
        .block_on(
            c.verify(
                art.record.canonical_bytes().into(),
                art.content_hash.0.to_vec().into(),
                Vec::<u8>::new().into(),
            )
            .call()
            .into_future(),
        )
        .unwrap();
    assert!(ok, "ERC-7007 verify of the minted recipe and content");
}

#[test]
fn a_mint_interrupted_by_a_crash_is_resolved_on_restart_and_never_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let model = model();
    let art = paint(&model, "a purple potion", 9);
    let (token, tx) = {
        let chain = open(dir.path());
        // Let anvil save the deployed contract, then hold transactions in the mempool.
        std::thread::sleep(Duration::from_millis(1500));
        chain.set_automine(false).unwrap();
        let pending = chain.submit(&art).unwrap();
        let journal = chain.journal().unwrap();
        assert_eq!(journal.len(), 1);
        assert_eq!(journal[0].state, MintState::Committing);
        // anvil dies between send and receipt.
        chain.local_chain().unwrap().kill();
        assert!(matches!(
            chain.confirm(&pending),
            Err(ChainError::Rpc { .. } | ChainError::Timeout { .. })
        ));
        (pending.token_id, pending.tx)
    };
    // The next start finds the pending mint, which the chain never mined, and sends it again.
    let chain = open(dir.path());
    let res = chain.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state, res[0].action),
        (token, MintState::Confirmed, "sent again")
    );
    let entry = &chain.journal().unwrap()[0];
    assert_eq!(
        (entry.state, entry.commit_tx),
        (MintState::Confirmed, Some(tx))
    );
    assert_eq!(chain.tokens_of(chain.account()).unwrap(), vec![token]);
    // Minting it again is refused; there is one token.
    assert!(matches!(
        chain.mint(&art),
        Err(ChainError::Rejected(MintRejection::AlreadyMinted { .. }))
    ));
    drop(chain);
    // A clean restart keeps the token (anvil's state file) and resolves nothing.
    let chain = open(dir.path());
    assert!(chain.resolutions().is_empty());
    assert_eq!(chain.tokens_of(chain.account()).unwrap(), vec![token]);
    assert_eq!(
        verify(&chain, token, None, &kiln_nftgen::default_model_path())
            .unwrap()
            .verdict,
        Verdict::Authentic
    );
}

#[test]
fn a_frozen_rpc_times_out_and_the_mint_completes_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let config = ChainConfig::local(dir.path())
        .with_timeouts(Duration::from_millis(700), Duration::from_secs(2));
    let chain = ChainClient::open(&config).unwrap();
    let model = model();
    let art = paint(&model, "a green ring", 4);
    let local = chain.local_chain().unwrap();

    // Frozen before the mint: the simulation times out, nothing is journaled.
    local.freeze();
    let started = Instant::now();
    let err = chain.mint(&art).unwrap_err();
    assert!(matches!(err, ChainError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(chain.journal().unwrap().is_empty());
    local.thaw();

    // Frozen between send and receipt: the receipt wait times out, the journal holds the
    // pending mint, and confirming later completes it.
    chain.set_automine(false).unwrap();
    let pending = chain.submit(&art).unwrap();
    local.freeze();
    let err = chain.confirm(&pending).unwrap_err();
    assert!(matches!(err, ChainError::Timeout { .. }), "{err}");
    assert_eq!(chain.journal().unwrap()[0].state, MintState::Committing);
    local.thaw();
    chain.set_automine(true).unwrap();
    let receipt = chain.confirm(&pending).unwrap();
    assert_eq!(receipt.token_id, pending.token_id);
    assert_eq!(chain.journal().unwrap()[0].state, MintState::Confirmed);
}

#[test]
fn a_dead_rpc_and_bad_config_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of localhost.
    std::fs::write(
        dir.path().join("chain.toml"),
        format!(
            "rpc_url = \"http://127.0.0.1:9\"\nprivate_key = \"{}\"\ncontract = \"0x5fbdb2315678afecb367f032d93f642f64180aa3\"\n",
            DEV_KEYS[0]
        ),
    )
    .unwrap();
    let config = ChainConfig::load_file(dir.path()).unwrap();
    let err = ChainClient::open(&config).unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    std::fs::write(dir.path().join("chain.toml"), "rpc_url = \"http://x\"\n").unwrap();
    let err = ChainConfig::load_file(dir.path()).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
    std::fs::write(dir.path().join("chain.toml"), "colour = 1\n").unwrap();
    assert!(matches!(
        ChainConfig::load_file(dir.path()),
        Err(ChainError::Config(_))
    ));
}

#[test]
fn cli_mint_verify_tokens_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let png = dir.path().join("item.png");
    let env = [("KILN_DATA_DIR", path_str(&data))];
    let out = nftgen(
        &[
            "generate",
            "--prompt",
            "an orange gem",
            "--seed",
            "3",
            "--steps",
            "8",
            "--out",
            path_str(&png),
        ],
        &env,
    );
    assert_success(&out);

    let out = nftgen(&["mint", path_str(&png), "--json"], &env);
    assert_success(&out);
    let minted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = minted["token_id"].as_str().unwrap().to_string();
    assert!(minted["gas_used"].as_u64().unwrap() <= 130_000);
    assert_eq!(minted["owner"], minted["creator"]);

    let out = nftgen(&["verify", &token, "--json"], &env);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "authentic");
    let out = nftgen(&["verify", path_str(&png)], &env);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("authentic"));

    let out = nftgen(&["tokens", "--json"], &env);
    assert_success(&out);
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["tokens"][0]["token_id"], token.as_str());
    assert_eq!(t["tokens"][0]["prompt"], "an orange gem");

    // Failures: one line on stderr, exit 1; with --json one line on stdout.
    let out = nftgen(&["mint", path_str(&png), "--json"], &env);
    assert_eq!(out.status.code(), Some(1));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["ok"], false);
    assert!(
        e["error"].as_str().unwrap().contains("already minted"),
        "{e}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    let out = nftgen(&["verify", "0x1234"], &env);
    assert_eq!(out.status.code(), Some(1));
    let unknown = format!("0x{}", "ab".repeat(32));
    let out = nftgen(&["verify", &unknown, "--json"], &env);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "token_unknown");
    let out = nftgen(
        &["tokens", "--owner", &CreatorAddress([9; 20]).to_string()],
        &env,
    );
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 token(s)"));
}

#[test]
fn recompiling_the_contract_gives_the_committed_bytecode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let npm = npm_tools();
    let out_file = tempfile::NamedTempFile::new().unwrap();
    // solc-js writes to a file: its output to a pipe is cut at 64 KiB.
    let status = std::process::Command::new("node")
        .arg(npm.join("node_modules/solc/solc.js"))
        .args(["--standard-json", "--base-path"])
        .arg(root.join("nftgen/contracts"))
        .arg("--include-path")
        .arg(npm.join("node_modules"))
        .stdin(std::fs::File::open(root.join("nftgen/contracts/solc-input.json")).unwrap())
        .stdout(out_file.reopen().unwrap())
        .status()
        .expect("node runs");
    assert!(status.success());
    let text = std::fs::read_to_string(out_file.path()).unwrap();
    let output: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let fresh = &output["contracts"]["src/KilnProvenance.sol"]["KilnProvenance"]["evm"];
    let artifact: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("nftgen/contracts/KilnProvenance.json")).unwrap(),
    )
    .unwrap();
    let hex = |v: &serde_json::Value| format!("0x{}", v.as_str().unwrap());
    assert_eq!(hex(&fresh["bytecode"]["object"]), artifact["bytecode"]);
    assert_eq!(
        hex(&fresh["deployedBytecode"]["object"]),
        artifact["deployedBytecode"]
    );
    assert_eq!(artifact["settings"]["evmVersion"], "prague");
    assert_eq!(artifact["compiler"], "0.8.37+commit.f401782d");
    // The Rust binding is built from the same artifact.
    assert_eq!(
        alloy::hex::encode_prefixed(&KilnProvenance::BYTECODE[..]),
        artifact["bytecode"].as_str().unwrap()
    );
}

#[test]
fn a_mint_whose_process_died_before_the_receipt_is_confirmed_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let art = paint(&model(), "a white scroll", 8);
    let pending = {
        let chain = open(dir.path());
        // Sent, but this process never asks for the receipt.
        chain.submit(&art).unwrap()
    };
    // A damaged journal file beside it does not stop the others.
    let journal = std::fs::read_dir(dir.path().join("journal/31337"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(journal.with_file_name("damaged.json"), "{\"token_id\":").unwrap();
    let chain = open(dir.path());
    let res = chain.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state),
        (pending.token_id, MintState::Confirmed)
    );
    // Mined before anvil stopped ("receipt found"), or still in its mempool when it stopped,
    // which anvil does not save ("sent again"): either way the mint lands, once.
    assert!(
        ["receipt found", "sent again"].contains(&res[0].action),
        "{res:?}"
    );
    assert_eq!(chain.journal().unwrap().len(), 1);
    assert_eq!(
        chain.tokens_of(chain.account()).unwrap(),
        vec![pending.token_id]
    );
}

#[test]
fn local_chains_started_at_once_each_get_their_own_node() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let chains: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| s.spawn(|| kiln_nftgen::chain::LocalChain::start(d.path()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut urls: Vec<String> = chains.iter().map(|c| c.url()).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 4, "{urls:?}");
    assert!(chains.iter().all(|c| c.owned()));
    // A second handle on the same directory joins the running node.
    let joined = kiln_nftgen::chain::LocalChain::start(dirs[0].path()).unwrap();
    assert_eq!(
        (joined.url(), joined.pid()),
        (chains[0].url(), chains[0].pid())
    );
    assert!(!joined.owned());
}

#[test]
fn an_unreadable_state_file_is_kept_aside_and_the_journal_replays_the_mints() {
    let dir = tempfile::tempdir().unwrap();
    let model = model();
    let (contract, tokens) = {
        let chain = open(dir.path());
        let a = chain.mint(&paint(&model, "a black bow", 1)).unwrap();
        let b = chain.mint(&paint(&model, "a yellow helmet", 2)).unwrap();
        (chain.contract(), vec![a.token_id, b.token_id])
    };
    // A state file cut short (a crash mid-write, a bad copy).
    let state = dir.path().join("local-chain/anvil-state.json");
    let bytes = std::fs::read(&state).unwrap();
    std::fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();

    let chain = open(dir.path());
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("local-chain"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("anvil-state.json.unreadable-"))
        .collect();
    assert_eq!(kept.len(), 1, "the unreadable file is kept");
    // Same deployer, same nonce: the same contract address; the signed mints replayed in order.
    assert_eq!(chain.contract(), contract);
    assert_eq!(chain.resolutions().len(), 2, "{:?}", chain.resolutions());
    assert!(
        chain.resolutions().iter().all(|r| r.action == "sent again"),
        "{:?}",
        chain.resolutions()
    );
    assert_eq!(chain.tokens_of(chain.account()).unwrap(), tokens);
}

#[test]
fn a_pending_mint_whose_nonce_went_elsewhere_is_signed_again() {
    let dir = tempfile::tempdir().unwrap();
    let art = paint(&model(), "a cyan gem", 6);
    let token = {
        let chain = open(dir.path());
        std::thread::sleep(Duration::from_millis(1500));
        chain.set_automine(false).unwrap();
        let pending = chain.submit(&art).unwrap();
        chain.local_chain().unwrap().kill();
        pending.token_id
    };
    // Meanwhile the same wallet spends that nonce on another transaction.
    {
        let node = kiln_nftgen::chain::LocalChain::start(dir.path().join("local-chain")).unwrap();
        let tx = TransactionRequest::default()
            .with_to(Address::from([0x11; 20]))
            .with_value(U256::from(1u64));
        send(&node.url(), DEV_KEYS[0], tx);
        // Dropping the node stops it gracefully: anvil writes its state.
    }
    let chain = open(dir.path());
    let res = chain.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state, res[0].action),
        (token, MintState::Confirmed, "signed again")
    );
    let entry = &chain.journal().unwrap()[0];
    assert_eq!(entry.state, MintState::Confirmed);
    assert_eq!(chain.tokens_of(chain.account()).unwrap(), vec![token]);
}

/// A copier who rewrites the creator of someone's recipe to their own address and mints it
/// first (with the victim's content hash, past Kiln's client) gets a token whose recipe paints
/// another picture: verification says `not_reproducible`.
#[test]
fn a_recipe_copied_to_another_creator_verifies_not_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    // Alice's client starts the chain and deploys the contract; Bob joins it.
    let _alice = open(dir.path());
    let bob =
        ChainClient::open(&ChainConfig::local(dir.path()).with_local_key(DEV_KEYS[1])).unwrap();
    let model = model();
    let art = paint(&model, "a pink ring", 12);
    let mut copied = art.record.clone();
    copied.creator = Some(bob.account());
    let receipt = mint_directly(
        &bob,
        DEV_KEYS[1],
        copied.canonical_bytes(),
        B256::from(art.content_hash.0),
    );
    assert!(receipt.status());
    let stolen = kiln_nftgen::TokenId::from(copied.recipe_hash());
    // The copy's image is Alice's pixels; its recipe paints Bob's picture.
    let file = dir.path().join("ring.png");
    png_io::write(&file, &art).unwrap();
    let v = verify(
        &bob,
        stolen,
        Some(&file),
        &kiln_nftgen::default_model_path(),
    )
    .unwrap();
    assert!(
        matches!(v.verdict, Verdict::NotReproducible { actual: Some(a), .. } if a != art.content_hash),
        "{}",
        v.summary
    );
    assert_eq!(v.matched, ["image", "model"]);
}

/// Tokens of every model Kiln has shipped keep verifying — the frozen f32 pipeline/1 and each
/// integer model of pipeline/2: the verifier finds the shipped weights by the recorded hash when
/// the default model is passed. Pipeline/1 tokens (minted where the contract's owner allows
/// them, as contracts deployed before creator binding did) reproduce, and say that the creator
/// is not bound.
#[test]
fn tokens_of_every_shipped_model_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let shipped = kiln_nftgen::shipped_model_paths();
    assert!(shipped.len() >= 3, "{shipped:?}");
    assert!(
        call_contract(
            &chain,
            DEV_KEYS[0],
            KilnProvenance::setPipelineCall {
                pipeline: "kiln-pipeline/1".into(),
                allowed: true,
            }
        )
        .status()
    );
    let mut pipelines = Vec::new();
    for (i, path) in shipped.into_iter().enumerate() {
        let model = ArtModel::load(&path).unwrap();
        let req = GenerationRequest::new("a green axe", 2)
            .steps(6)
            .creator(chain.account());
        let art = model.generate(&req, &mut |_| Control::Continue).unwrap();
        let v2 = art.record.pipeline == kiln_nftgen::PIPELINE_2;
        let token = if v2 {
            chain.mint(&art).unwrap().token_id
        } else {
            let recipe = art.record.canonical_bytes();
            assert!(
                mint_directly(&chain, DEV_KEYS[0], recipe, B256::from(art.content_hash.0)).status()
            );
            TokenId::from(art.recipe_hash)
        };
        let file = dir.path().join(format!("{i}.png"));
        png_io::write(&file, &art).unwrap();
        let v = verify(
            &chain,
            token,
            Some(&file),
            &kiln_nftgen::default_model_path(),
        )
        .unwrap();
        let expected = if v2 {
            Verdict::Authentic
        } else {
            Verdict::CreatorNotBound {
                creator: chain.account(),
            }
        };
        assert_eq!(v.verdict, expected, "{}: {}", path.display(), v.summary);
        assert_eq!(v.pipeline.as_deref(), Some(art.record.pipeline.as_str()));
        pipelines.push(art.record.pipeline);
    }
    assert!(pipelines.iter().any(|p| p == "kiln-pipeline/1"));
    assert!(pipelines.iter().filter(|p| *p == "kiln-pipeline/2").count() >= 2);
}

/// Keys and credentials never reach the output: a typo in chain.toml is reported by file, line
/// and field without echoing the line, and a dead endpoint whose URL carries a user, password
/// and API key is reported by host only.
#[test]
fn secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    let digits = &key[2..];
    let all = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    std::fs::write(
        dir.path().join("chain.toml"),
        format!("# wallet\nprivate-key = \"{key}\"\n"),
    )
    .unwrap();
    let out = nftgen(&["tokens", "--data-dir", d], &[]);
    let text = all(&out);
    assert!(!out.status.success());
    assert!(!text.contains(digits), "{text}");
    assert!(
        text.contains("chain.toml, line 2") && text.contains("`private-key`"),
        "{text}"
    );

    std::fs::remove_file(dir.path().join("chain.toml")).unwrap();
    let out = nftgen(
        &["tokens", "--data-dir", d],
        &[
            (
                "KILN_RPC_URL",
                "http://alice:hunter2@127.0.0.1:9/v3/APIKEY123?token=T0KEN",
            ),
            ("KILN_PRIVATE_KEY", key),
            (
                "KILN_CONTRACT",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ),
        ],
    );
    let text = all(&out);
    assert!(!out.status.success());
    for leak in [digits, "hunter2", "APIKEY123", "T0KEN", "alice"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    assert!(text.contains("127.0.0.1:9"), "{text}");
}

/// One stuck mint never bricks the chain commands. A mint signed by an unfunded key is refused
/// by the node: it is journaled as failed, not left pending, and `tokens` still works. Planted
/// back as pending, it cannot be settled (the node refuses it and this wallet cannot sign for
/// that account): the next mint marks it unresolved, says why, and goes through; `tokens` and
/// `verify` never touch the journal.
#[test]
fn a_stuck_journal_entry_never_bricks_the_chain_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let unfunded = "0x8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f";
    let poor = [("KILN_PRIVATE_KEY", unfunded)];
    let a = dir.path().join("a.png");
    let gen_args = |out: &Path, prompt: &'static str| {
        vec![
            "generate".to_string(),
            "--prompt".into(),
            prompt.into(),
            "--seed".into(),
            "1".into(),
            "--steps".into(),
            "4".into(),
            "--out".into(),
            out.display().to_string(),
            "--data-dir".into(),
            d.to_string(),
        ]
    };
    let run = |args: &[String], env: &[(&str, &str)]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        nftgen(&refs, env)
    };
    // The funded wallet deploys the contract first.
    assert_success(&nftgen(&["tokens", "--data-dir", d], &[]));
    assert_success(&run(&gen_args(&a, "a red sword"), &poor));
    let refused = nftgen(&["mint", path_str(&a), "--data-dir", d], &poor);
    assert!(!refused.status.success());
    let tokens = nftgen(&["tokens", "--data-dir", d, "--json"], &[]);
    assert_success(&tokens);

    // Plant the refused mint back as pending.
    let chain = ChainClient::open_read_only(&ChainConfig::local(dir.path())).unwrap();
    let journal = chain.journal().unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, MintState::Failed, "{:?}", journal[0]);
    let path = dir
        .path()
        .join(format!("journal/31337/{}.json", journal[0].token_id));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"failed\"", "\"pending\"")).unwrap();
    drop(chain);

    assert_success(&nftgen(&["tokens", "--data-dir", d], &[]));
    let b = dir.path().join("b.png");
    assert_success(&run(&gen_args(&b, "a blue shield"), &[]));
    let minted = nftgen(&["mint", path_str(&b), "--data-dir", d, "--json"], &[]);
    assert_success(&minted);
    let err = String::from_utf8_lossy(&minted.stderr);
    assert!(err.contains("cannot be settled"), "{err}");
    let token = serde_json::from_slice::<serde_json::Value>(&minted.stdout).unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let chain = ChainClient::open_read_only(&ChainConfig::local(dir.path())).unwrap();
    let states: Vec<MintState> = chain.journal().unwrap().iter().map(|e| e.state).collect();
    assert!(states.contains(&MintState::Unresolved) && states.contains(&MintState::Confirmed));
    drop(chain);
    let verified = nftgen(&["verify", &token, "--data-dir", d, "--json"], &[]);
    assert_success(&verified);
}

/// Canonical recipe bytes of `record` with its scheduler field replaced by `scheduler`: well
/// formed for the contract, but not a recipe Kiln can run.
fn with_scheduler(record: &kiln_nftgen::GenerationRecord, scheduler: &[u8]) -> Vec<u8> {
    let bytes = record.canonical_bytes();
    let mut p = 25;
    let string_end =
        |p: usize| p + 4 + u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
    p = string_end(p) + 32; // model id, model hash
    p = string_end(string_end(p)) + 8; // prompt, negative prompt, seed
    let mut out = bytes[..p].to_vec();
    out.extend_from_slice(&(scheduler.len() as u32).to_be_bytes());
    out.extend_from_slice(scheduler);
    out.extend_from_slice(&bytes[string_end(p)..]);
    out
}

/// Junk is refused on chain (the contract walks the recipe's fields), and a token whose record
/// is well formed but not a recipe Kiln can run gives a `record_invalid` verdict, and `tokens`
/// lists it as unreadable, instead of both aborting.
#[test]
fn junk_records_are_refused_or_verdicts_never_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let art = chain
        .attribute(&paint(&model(), "a silver ring", 4))
        .unwrap();
    let mut junk = art.record.canonical_bytes()[..25].to_vec();
    junk.extend_from_slice(b"\x1b[2K not a recipe");
    let receipt = mint_directly(&chain, DEV_KEYS[0], junk, B256::repeat_byte(0x42));
    assert!(!receipt.status(), "junk minted");
    let junk = with_scheduler(&art.record, b"\x1b[2K not a scheduler");
    let receipt = mint_directly(&chain, DEV_KEYS[0], junk.clone(), B256::repeat_byte(0x42));
    assert!(receipt.status());
    let token = kiln_nftgen::TokenId(alloy::primitives::keccak256(&junk).0);
    assert!(chain.exists(token).unwrap());
    let v = verify(&chain, token, None, &kiln_nftgen::default_model_path()).unwrap();
    assert!(
        matches!(v.verdict, Verdict::RecordInvalid { .. }),
        "{}",
        v.summary
    );
    // A real token beside it still lists.
    chain.mint(&art).unwrap();
    drop(chain);
    let d = path_str(dir.path());
    let out = nftgen(&["tokens", "--data-dir", d], &[]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 token(s)") && text.contains("unreadable record"),
        "{text}"
    );
    assert!(
        text.contains("a silver ring") && !text.contains('\x1b'),
        "{text}"
    );
    let out = nftgen(&["verify", &token.to_string(), "--data-dir", d], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("record invalid"));
}

/// Starting a data directory afresh stops the node running for it first (here started by
/// another client, as another process would) and removes only Kiln's own entries: the user's
/// `chain.toml` and other files stay.
#[test]
fn clearing_a_data_dir_stops_its_node_and_keeps_what_is_not_kilns() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    chain
        .mint(
            &chain
                .attribute(&paint(&model(), "a gray helmet", 3))
                .unwrap(),
        )
        .unwrap();
    let pid = chain.local_chain().unwrap().pid();
    std::fs::write(dir.path().join("chain.toml"), "# my settings\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let removed = kiln_nftgen::chain::clear_data_dir(dir.path(), &["notes-not-there"]).unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    // The node is gone (at most a zombie until its parent, this process, reaps it).
    assert!(!running(pid), "the node still runs");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["chain.toml", "notes.txt"]);
    drop(chain);

    // Mints journaled on another chain (pending ones need their salts) are never removed, nor
    // the content store while they exist; the local chain's journal goes.
    let remote = dir.path().join("journal/11155111");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::write(remote.join("0xab.json"), "{}").unwrap();
    std::fs::create_dir_all(dir.path().join("journal/31337")).unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    kiln_nftgen::chain::clear_data_dir(dir.path(), &[]).unwrap();
    assert!(remote.join("0xab.json").is_file());
    assert!(dir.path().join("store").is_dir());
    assert!(!dir.path().join("journal/31337").exists());
    std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
    std::fs::remove_dir_all(dir.path().join("store")).unwrap();
    // A fresh start on the same directory works.
    assert!(
        open(dir.path())
            .tokens_of(creator_of_dev_key())
            .unwrap()
            .is_empty()
    );
}

fn creator_of_dev_key() -> CreatorAddress {
    ChainConfig::local("/nonexistent").signer_address().unwrap()
}

/// A mempool watcher copies Alice's pending reveal — as is, and with the recipe's creator
/// rewritten to his own address — and sends both first with a higher tip (automine off, so all
/// three wait for the same block). Both copies revert; Alice's token is minted and authentic.
#[test]
fn a_reveal_copied_from_the_mempool_cannot_take_the_mint() {
    let dir = tempfile::tempdir().unwrap();
    let alice = open(dir.path());
    let url = alice.url().to_string();
    let contract = Address::from(alice.contract().0);
    let art = alice
        .attribute(&paint(&model(), "a crimson banner", 21))
        .unwrap();
    let token = kiln_nftgen::TokenId::from(art.recipe_hash);
    let journal = dir.path().join(format!("journal/31337/{token}.json"));
    // The commitment is mined; then blocks wait for an explicit mine.
    let pending = alice.submit(&art).unwrap();
    let (rt, bob) = wallet(&url, DEV_KEYS[1]);
    let mine_automatically = |on: bool| {
        rt.block_on(bob.raw_request::<_, ()>("evm_setAutomine".into(), (on,)))
            .unwrap()
    };
    while rt
        .block_on(
            bob.get_transaction_receipt(B256::from(pending.tx.0))
                .into_future(),
        )
        .unwrap()
        .is_none()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    mine_automatically(false);
    let waiter = std::thread::spawn(move || alice.confirm(&pending).map(|r| (r, alice)));
    // Alice's reveal reaches the mempool.
    let reveal = loop {
        let entry: kiln_nftgen::chain::JournalEntry =
            serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
        if entry.state == MintState::Pending {
            break entry.tx;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen = rt
        .block_on(
            bob.get_transaction_by_hash(B256::from(reveal.0))
                .into_future(),
        )
        .unwrap()
        .expect("the reveal is in the mempool");
    let input = alloy::consensus::Transaction::input(&seen).clone();
    let call = KilnProvenance::mintCall::abi_decode(&input).unwrap();
    let mut rewritten = call.recipe.to_vec();
    rewritten[5..25].copy_from_slice(&DEV_ADDRESS_1);
    let copies: Vec<B256> = [call.recipe.to_vec(), rewritten]
        .into_iter()
        .map(|recipe| {
            let copy = KilnProvenance::mintCall {
                recipe: recipe.into(),
                contentHash: call.contentHash,
                salt: call.salt,
            };
            let tx = TransactionRequest::default()
                .with_to(contract)
                .with_input(copy.abi_encode())
                .with_gas_limit(500_000)
                .with_max_priority_fee_per_gas(50_000_000_000)
                .with_max_fee_per_gas(100_000_000_000);
            *rt.block_on(bob.send_transaction(tx).into_future())
                .unwrap()
                .tx_hash()
        })
        .collect();
    rt.block_on(bob.raw_request::<_, serde_json::Value>("evm_mine".into(), ()))
        .unwrap();
    mine_automatically(true);
    let (receipt, alice) = waiter.join().unwrap().expect("Alice's mint confirms");
    assert_eq!(receipt.token_id, token);
    let block = rt
        .block_on(bob.get_block_by_number(receipt.block.into()).into_future())
        .unwrap()
        .unwrap();
    let order: Vec<B256> = block.transactions.hashes().collect();
    for copy in &copies {
        let r = rt
            .block_on(bob.get_transaction_receipt(*copy).into_future())
            .unwrap()
            .expect("the copy was mined");
        assert!(!r.status(), "a copied reveal succeeded");
        assert_eq!(r.block_number, Some(receipt.block), "same block");
        let (copy_at, alice_at) = (
            order.iter().position(|h| h == copy).unwrap(),
            order.iter().position(|h| h.0 == receipt.tx.0).unwrap(),
        );
        assert!(copy_at < alice_at, "the copies ran first: {order:?}");
    }
    let v = verify(&alice, token, None, &kiln_nftgen::default_model_path()).unwrap();
    assert_eq!(v.verdict, Verdict::Authentic, "{}", v.summary);
    assert_eq!(alice.tokens_of(alice.account()).unwrap(), vec![token]);
}

/// anvil's second dev account (`DEV_KEYS[1]`).
const DEV_ADDRESS_1: [u8; 20] = [
    0x70, 0x99, 0x79, 0x70, 0xc5, 0x18, 0x12, 0xdc, 0x3a, 0x01, 0x0c, 0x7d, 0x01, 0xb5, 0x0e, 0x0d,
    0x17, 0xdc, 0x79, 0xc8,
];

/// The pipeline string of `r` when `r` is canonical recipe bytes v1 by structure alone
/// (RECIPE.md): the prefix, then the fields, ending exactly at the end — the contract's rule,
/// written again here. `None` for bytes that are not well formed.
fn pipeline_of(r: &[u8]) -> Option<&[u8]> {
    if r.len() < 25 || r[..5] != *b"KILN\x01" {
        return None;
    }
    let string = |p: Option<usize>| {
        let p = p?;
        let len = u32::from_be_bytes(r.get(p..p + 4)?.try_into().ok()?) as usize;
        (p + 4 + len <= r.len()).then_some(p + 4 + len)
    };
    let mut p = string(Some(25)).map(|p| p + 32);
    p = string(string(p)).map(|p| p + 8);
    p = string(p).map(|p| p + 16);
    let pipeline = p.map(|p| p + 4);
    let pipeline_end = string(p);
    p = string(string(pipeline_end));
    if p != Some(r.len()) {
        return None;
    }
    Some(&r[pipeline?..pipeline_end?])
}

/// Property test of the contract's recipe check on the real node: real recipes, cut short,
/// lengthened, with a length field or a byte changed, or wholly random after the prefix; sent
/// by their creator, by someone else, and again after a mint. The node's answer must be the
/// one the rules give: `RecipeMalformed` exactly for bytes that are not well formed, else
/// `NotCreator` for another sender, `PipelineNotAllowed` for any pipeline but
/// `kiln-pipeline/2`, `AlreadyMinted` for a minted recipe, and otherwise `CommitmentMissing`
/// (nothing mints without a commitment).
#[test]
fn the_contract_refuses_exactly_the_recipes_that_are_not_well_formed() {
    use KilnProvenance::KilnProvenanceErrors as E;
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let (rt, provider) = wallet(chain.url(), DEV_KEYS[0]);
    let contract = Address::from(chain.contract().0);
    let me = Address::from(chain.account().0);
    let minted = chain.attribute(&paint(&model(), "a tin cup", 2)).unwrap();
    chain.mint(&minted).unwrap();
    let answer = |recipe: &[u8], from: Address| {
        let call = KilnProvenance::mintCall {
            recipe: recipe.to_vec().into(),
            contentHash: B256::repeat_byte(7),
            salt: B256::ZERO,
        };
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_to(contract)
            .with_input(call.abi_encode());
        let err = rt
            .block_on(provider.call(tx).into_future())
            .expect_err("nothing mints without a commitment");
        err.as_error_resp()
            .and_then(|e| e.as_decoded_interface_error::<E>())
            .unwrap_or_else(|| panic!("undecoded revert: {err}"))
    };
    let base = minted.record.canonical_bytes();
    let mut state = 0x9e37_79b9u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    let (mut good, mut bad) = (0, 0);
    for case in 0..360 {
        let mut r = base.clone();
        match case % 6 {
            0 => r.truncate(25 + next() % (r.len() - 25)),
            1 => r.extend((0..1 + next() % 8).map(|_| next() as u8)),
            2 => {
                // A string's length field: the model id's (25) or the prompt's.
                let at = [25, 25 + 4 + minted.record.model.id.len() + 32][next() % 2] + next() % 4;
                r[at] = r[at].wrapping_add(1 + (next() % 255) as u8);
            }
            3 => {
                let at = 25 + next() % (r.len() - 25);
                r[at] = next() as u8;
            }
            4 => {
                r.truncate(25);
                r.extend((0..next() % 200).map(|_| next() as u8));
            }
            _ => r[next() % 5] ^= 1 << (next() % 8),
        }
        let creator = Address::from_slice(r.get(5..25).unwrap_or(&[0; 20]));
        let got = answer(&r, me);
        if let Some(pipeline) = pipeline_of(&r) {
            good += 1;
            let v2 = pipeline == b"kiln-pipeline/2";
            match got {
                E::CommitmentMissing(_) => assert!(creator == me && v2, "case {case}"),
                E::NotCreator(ref e) => assert_ne!(e.creator, me, "case {case}"),
                E::PipelineNotAllowed(_) => assert!(creator == me && !v2, "case {case}"),
                E::AlreadyMinted(_) => assert_eq!(r, base, "case {case}"),
                other => panic!("case {case}: well formed, got {other:?}"),
            }
        } else {
            bad += 1;
            assert!(matches!(got, E::RecipeMalformed(_)), "case {case}: {got:?}");
        }
    }
    eprintln!("{good} well-formed and {bad} malformed variants answered as the rules say");
    assert!(good >= 30 && bad >= 100, "{good} / {bad}");
    // Another sender, and a replay of the minted recipe.
    let bob: Address = DEV_ADDRESS_1.into();
    assert!(matches!(answer(&base, bob), E::NotCreator(_)));
    assert!(matches!(answer(&base, me), E::AlreadyMinted(_)));
    let fresh = chain
        .attribute(&paint(&model(), "a tin cup", 3))
        .unwrap()
        .record
        .canonical_bytes();
    assert!(matches!(answer(&fresh, me), E::CommitmentMissing(_)));
    assert!(matches!(answer(&fresh, bob), E::NotCreator(_)));
}

/// `nftgen` with the test environment, as a child process to watch and kill.
fn nftgen_child(args: &[&str]) -> std::process::Child {
    common::nftgen_command(args, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nftgen runs")
}

/// The pid of the node running for data directory `dir`, if one is.
fn node_pid(dir: &Path) -> Option<i32> {
    let running: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("local-chain/anvil.json")).ok()?).ok()?;
    running["pid"].as_i64().map(|p| p as i32)
}

/// Whether process `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.trim_start().chars().next()),
            Some('Z' | 'X')
        )
    })
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The process that started the node is killed (SIGKILL) in the middle of a mint. With no
/// other user the node stops by itself (no orphan); the next client resolves the mint, once.
/// With another user the node lives on until that one leaves too.
#[test]
fn an_owner_killed_mid_mint_leaves_no_orphan_and_the_mint_lands_once() {
    let model = model();
    for other_user in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = path_str(dir.path());
        let art = paint(&model, "a copper lantern", 30 + other_user as u64);
        let png = dir.path().join("lantern.png");
        png_io::write(&png, &art).unwrap();
        let token = open_token(&art);
        let mut child = nftgen_child(&["mint", path_str(&png), "--no-check", "--data-dir", d]);
        // Killed as soon as the mint is journaled (committing or later).
        let journal = dir.path().join(format!("journal/31337/{token}.json"));
        wait_until("the mint's journal entry", Duration::from_secs(60), || {
            journal.exists()
        });
        let other = other_user.then(|| open(dir.path()));
        child.kill().unwrap();
        child.wait().unwrap();
        let pid = node_pid(dir.path()).expect("a node was started");
        if let Some(other) = other {
            std::thread::sleep(Duration::from_millis(500));
            assert!(running(pid), "the node stopped under its other user");
            assert_eq!(other.local_chain().unwrap().pid(), pid);
            drop(other);
        }
        wait_until("the orphaned node to stop", Duration::from_secs(15), || {
            !running(pid)
        });
        let chain = open(dir.path());
        assert_eq!(chain.tokens_of(chain.account()).unwrap(), vec![token]);
        let entries = chain.journal().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].state, MintState::Confirmed, "{entries:?}");
    }
}

/// The token id `art` gets when minted by the local chain's default wallet.
fn open_token(art: &GeneratedArt) -> kiln_nftgen::TokenId {
    let mut record = art.record.clone();
    record.creator = Some(ChainConfig::local(".").signer_address().unwrap());
    kiln_nftgen::TokenId::from(record.recipe_hash())
}

/// Two processes mint 10 pictures each, with one key, into one fresh data directory, each
/// mint its own `nftgen` run: they start, join and leave the node in every order. Every token
/// is minted once, the journal equals the chain, and no node is left running.
#[test]
fn two_processes_minting_twenty_times_share_one_node_and_one_nonce_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let model = model();
    let files: Vec<(std::path::PathBuf, kiln_nftgen::TokenId)> = (0..20)
        .map(|i| {
            let art = paint(&model, "a small blue bead", 100 + i);
            let png = dir.path().join(format!("bead-{i}.png"));
            png_io::write(&png, &art).unwrap();
            (png, open_token(&art))
        })
        .collect();
    std::thread::scope(|s| {
        for half in files.chunks(10) {
            s.spawn(move || {
                for (png, _) in half {
                    let out = nftgen(&["mint", path_str(png), "--no-check", "--data-dir", d], &[]);
                    assert_success(&out);
                }
            });
        }
    });
    let pid = node_pid(dir.path());
    let chain = open(dir.path());
    let mut minted = chain.tokens_of(chain.account()).unwrap();
    let mut expected: Vec<_> = files.iter().map(|(_, t)| *t).collect();
    minted.sort();
    expected.sort();
    assert_eq!(minted, expected);
    let journal = chain.journal().unwrap();
    assert_eq!(journal.len(), 20);
    assert!(journal.iter().all(|e| e.state == MintState::Confirmed));
    let mut journaled: Vec<_> = journal.iter().map(|e| e.token_id).collect();
    journaled.sort();
    assert_eq!(journaled, expected);
    drop(chain);
    if let Some(pid) = pid {
        wait_until("the node to stop", Duration::from_secs(15), || {
            !running(pid)
        });
    }
    assert!(node_pid(dir.path()).is_none_or(|p| !running(p)));
}

/// Anyone can mint a recipe that would run for hours (2048² at 1000 steps here): verification
/// does not re-run one over the cost limit, and says so; the limit is the caller's to raise.
#[test]
fn verification_refuses_to_rerun_a_recipe_over_its_cost_limit() {
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let weights = kiln_nftgen::default_model_path();
    let art = chain
        .attribute(&paint(&model(), "a wooden wheel", 6))
        .unwrap();
    let token = chain.mint(&art).unwrap().token_id;
    let cost = kiln_nftgen::chain::recipe_cost(&art.record);
    assert_eq!(cost, 32 * 32 * 8);
    let v = kiln_nftgen::chain::verify_with_limit(&chain, token, None, &weights, cost - 1).unwrap();
    assert_eq!(
        v.verdict,
        Verdict::CostOverLimit {
            cost,
            limit: cost - 1
        }
    );
    assert_eq!(v.matched, ["image", "model"]);
    assert_eq!(
        kiln_nftgen::chain::verify_with_limit(&chain, token, None, &weights, cost)
            .unwrap()
            .verdict,
        Verdict::Authentic
    );
    // Claimed by another account (its creator already minted these pixels as one token).
    let mut huge = art.record.clone();
    (huge.width, huge.height, huge.steps) = (2048, 2048, 1000);
    huge.creator = Some(CreatorAddress(DEV_ADDRESS_1));
    let receipt = mint_directly(
        &chain,
        DEV_KEYS[1],
        huge.canonical_bytes(),
        B256::from(art.content_hash.0),
    );
    assert!(receipt.status());
    let started = Instant::now();
    let v = verify(
        &chain,
        kiln_nftgen::TokenId::from(huge.recipe_hash()),
        None,
        &weights,
    )
    .unwrap();
    assert!(
        matches!(v.verdict, Verdict::CostOverLimit { cost, .. } if cost == 2048 * 2048 * 1000),
        "{}",
        v.summary
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Two journal entries of one mint, as the journal writes them in turn.
fn power_cut_entries() -> [kiln_nftgen::chain::JournalEntry; 2] {
    let committing: kiln_nftgen::chain::JournalEntry = serde_json::from_value(serde_json::json!({
        "token_id": format!("0x{}", "ab".repeat(32)),
        "state": "committing",
        "tx": format!("0x{}", "01".repeat(32)),
        "raw_tx": format!("0x{}", "02".repeat(400)),
        "nonce": 7,
        "from": format!("0x{}", "03".repeat(20)),
        "recipe": format!("0x{}", "04".repeat(184)),
        "content_hash": format!("0x{}", "05".repeat(32)),
        "salt": format!("0x{}", "06".repeat(32)),
        "contract": format!("0x{}", "07".repeat(20)),
        "block": null,
        "gas_used": null,
        "reason": null,
    }))
    .unwrap();
    let mut confirmed = committing.clone();
    confirmed.state = MintState::Confirmed;
    confirmed.block = Some(12);
    confirmed.gas_used = Some(108_944);
    confirmed.reason = Some("x".repeat(3000));
    [committing, confirmed]
}

/// The child side of the power-cut test (run by it as a separate process; a no-op otherwise):
/// rewrites one journal entry with the journal's atomic write, in turn, until killed.
#[test]
fn power_cut_child_writer() {
    let Some(path) = std::env::var_os("KILN_POWER_CUT_FILE") else {
        return;
    };
    let entries = power_cut_entries();
    for i in 0.. {
        let bytes = serde_json::to_vec_pretty(&entries[i % 2]).unwrap();
        kiln_nftgen::store::write_atomic(Path::new(&path), &bytes).unwrap();
    }
}

/// kill -9 at random moments of a process rewriting a journal entry (between write, flush and
/// rename): the entry on disk is always one whole version, never a mix or a cut, and the
/// temporary files a killed writer leaves are not taken for entries.
#[test]
fn a_journal_entry_survives_kill_9_at_any_moment_of_its_write() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal/31337");
    std::fs::create_dir_all(&journal).unwrap();
    let file = journal.join(format!("0x{}.json", "ab".repeat(32)));
    let entries = power_cut_entries();
    let mut seen = [0, 0];
    let mut state = 0x1234_5678u32;
    for round in 0..25 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "power_cut_child_writer", "--test-threads", "1"])
            .env("KILN_POWER_CUT_FILE", &file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the first write", Duration::from_secs(20), || file.exists());
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        std::thread::sleep(Duration::from_micros(500 + (state % 20_000) as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        let on_disk: kiln_nftgen::chain::JournalEntry =
            serde_json::from_slice(&std::fs::read(&file).unwrap())
                .unwrap_or_else(|e| panic!("round {round}: a cut entry: {e}"));
        let which = entries
            .iter()
            .position(|e| *e == on_disk)
            .unwrap_or_else(|| panic!("round {round}: a mixed entry"));
        seen[which] += 1;
    }
    eprintln!("after 25 kills: {seen:?} (committing, confirmed)");
    // The journal reads one entry; the killed writers' temporary files are not entries.
    let chain = open(dir.path());
    let listed = chain.journal().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(entries.contains(&listed[0]));
}

/// Hardhat's node (npm `hardhat`, its EDR engine; installed by `cargo xtask setup` beside
/// anvil), in a temporary project that links Kiln's npm tools. Killed when dropped.
struct Hardhat {
    child: std::process::Child,
    url: String,
    _project: tempfile::TempDir,
}

impl Hardhat {
    fn start() -> Self {
        let npm = npm_tools();
        let project = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            npm.join("node_modules"),
            project.path().join("node_modules"),
        )
        .unwrap();
        std::fs::write(
            project.path().join("hardhat.config.js"),
            "module.exports = {};\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = project.path().join("node.log");
        let child = std::process::Command::new("node")
            .arg("node_modules/hardhat/internal/cli/cli.js")
            .args([
                "node",
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .current_dir(project.path())
            .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
            .env_remove("KILN_PRIVATE_KEY")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs");
        let mut node = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _project: project,
        };
        wait_until("Hardhat's node to listen", Duration::from_secs(90), || {
            assert!(
                node.child.try_wait().unwrap().is_none(),
                "Hardhat's node exited: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Started HTTP"))
        });
        node
    }

    /// How many requests of `method` the node has served (it logs one line per request).
    fn calls(&self, method: &str) -> usize {
        std::fs::read_to_string(self._project.path().join("node.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(method))
            .count()
    }
}

impl Drop for Hardhat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `chain.toml` for the node at `url` (a "remote" chain to Kiln) into `dir`, signing
/// with `key`, with extra settings.
fn remote_config(dir: &Path, url: &str, key: &str, extra: &str) -> ChainConfig {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("chain.toml"),
        format!("rpc_url = \"{url}\"\nprivate_key = \"{key}\"\n{extra}"),
    )
    .unwrap();
    ChainConfig::load_file(dir).unwrap()
}

/// Deploys a provenance contract on the node at `url` with `nftgen`'s own path (the signer
/// becomes its owner); returns `contract = "0x…"` for a `chain.toml`.
fn deploy_on(url: &str, dir: &Path) -> String {
    let config = remote_config(&dir.join("deployer"), url, DEV_KEYS[0], "");
    let deployer = ChainClient::open_for_deploy(&config).unwrap();
    let receipt = deployer.deploy_contract("file:///tokens/", 500).unwrap();
    format!(
        "contract = \"{}\"\n",
        receipt.contract_address.expect("deployed")
    )
}

/// Deploys the contract on the node at `url` ([`deploy_on`]) and returns its address.
fn deployed_address(url: &str, dir: &Path) -> Address {
    deploy_on(url, dir)
        .trim()
        .trim_start_matches("contract = \"")
        .trim_end_matches('"')
        .parse()
        .unwrap()
}

/// A raw JSON-RPC call to the node at `url`.
fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let (rt, provider) = wallet(url, DEV_KEYS[0]);
    rt.block_on(provider.raw_request::<_, serde_json::Value>(method.to_string().into(), params))
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Kiln's chain flows on one EVM node reached over its RPC URL, as any chain is: mint with
/// commit–reveal, a copied reveal and a repeat refused with typed errors, a client that stopped
/// between commitment and reveal, a commitment dropped from the mempool whose nonce another
/// transaction took (the node refuses the old bytes in its own words; the client signs again),
/// a transaction that sits unmined (its fee is bumped and the replacement counts), and log
/// queries in pages of two blocks. `drop_tx` is the node's method to drop a pending
/// transaction.
fn flows_on_node(url: &str, drop_tx: &str) {
    let dir = tempfile::tempdir().unwrap();
    let contract = deploy_on(url, dir.path());
    let data = dir.path().join("alice");
    let config = remote_config(&data, url, DEV_KEYS[0], &contract);
    let model = model();
    let alice = ChainClient::open(&config).unwrap();
    let art = alice
        .attribute(&paint(&model, "a glowing green potion", 40))
        .unwrap();
    let first = alice.mint(&art).unwrap();
    assert!(first.total_gas() <= 160_000, "{}", first.total_gas());
    assert_eq!(
        verify(
            &alice,
            first.token_id,
            None,
            &kiln_nftgen::default_model_path()
        )
        .unwrap()
        .verdict,
        Verdict::Authentic
    );
    assert!(matches!(
        alice.mint(&art),
        Err(ChainError::Rejected(MintRejection::AlreadyMinted { .. }))
    ));
    let (rt, bob) = wallet(url, DEV_KEYS[1]);
    let copy = KilnProvenance::mintCall {
        recipe: art.record.canonical_bytes().into(),
        contentHash: B256::from(art.content_hash.0),
        salt: B256::ZERO,
    };
    let tx = TransactionRequest::default()
        .with_to(Address::from(alice.contract().0))
        .with_input(copy.abi_encode());
    let err = rt.block_on(bob.call(tx).into_future()).unwrap_err();
    assert!(
        matches!(
            err.as_error_resp().and_then(
                |e| e.as_decoded_interface_error::<KilnProvenance::KilnProvenanceErrors>()
            ),
            Some(KilnProvenance::KilnProvenanceErrors::NotCreator(_))
        ),
        "{err}"
    );

    // Stopped between the mined commitment and the reveal: the next client reveals it.
    let second = alice.attribute(&paint(&model, "a red sword", 41)).unwrap();
    let pending = alice.submit(&second).unwrap();
    drop(alice);
    let alice = ChainClient::open(&config).unwrap();
    let res = alice.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state, res[0].action),
        (pending.token_id, MintState::Confirmed, "receipt found")
    );

    // A commitment dropped from the mempool, its nonce taken by another transaction.
    rpc(url, "evm_setAutomine", serde_json::json!([false]));
    let third = alice.attribute(&paint(&model, "a cyan gem", 42)).unwrap();
    let dropped = alice.submit(&third).unwrap();
    drop(alice);
    rpc(url, drop_tx, serde_json::json!([dropped.tx.to_string()]));
    rpc(url, "evm_setAutomine", serde_json::json!([true]));
    let spend = TransactionRequest::default()
        .with_to(Address::from([0x11; 20]))
        .with_value(U256::from(1u64));
    send(url, DEV_KEYS[0], spend);
    let alice = ChainClient::open(&config).unwrap();
    let res = alice.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state, res[0].action),
        (dropped.token_id, MintState::Confirmed, "signed again")
    );
    drop(alice);

    // Unmined for longer than fee_bump_after: signed again at its nonce with higher fees.
    let bumping = remote_config(
        &data,
        url,
        DEV_KEYS[0],
        &format!("{contract}fee_bump_after_secs = 1\nlog_page_blocks = 2\n"),
    );
    let alice = ChainClient::open(&bumping).unwrap();
    let fourth = alice
        .attribute(&paint(&model, "a yellow helmet", 43))
        .unwrap();
    rpc(url, "evm_setAutomine", serde_json::json!([false]));
    let pending = alice.submit(&fourth).unwrap();
    let first_commit = pending.tx;
    let waiter = std::thread::spawn(move || alice.confirm(&pending).map(|r| (r, alice)));
    while !waiter.is_finished() {
        std::thread::sleep(Duration::from_millis(2500));
        rpc(url, "evm_mine", serde_json::json!([]));
    }
    rpc(url, "evm_setAutomine", serde_json::json!([true]));
    let (receipt, alice) = waiter.join().unwrap().unwrap();
    assert_ne!(
        receipt.commit_tx,
        Some(first_commit),
        "the bumped commitment was mined, not the first"
    );
    // Every token, found through eth_getLogs in pages of two blocks.
    let mut held = alice.tokens_of(alice.account()).unwrap();
    let mut expected = vec![
        first.token_id,
        TokenId::from(second.recipe_hash),
        dropped.token_id,
        receipt.token_id,
    ];
    held.sort();
    expected.sort();
    assert_eq!(held, expected);
}

#[test]
fn chain_flows_hold_on_hardhats_node() {
    let node = Hardhat::start();
    flows_on_node(&node.url, "hardhat_dropTransaction");
}

#[test]
fn chain_flows_hold_on_anvil_over_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = kiln_nftgen::chain::LocalChain::start(dir.path()).unwrap();
    flows_on_node(&node.url(), "anvil_dropTransaction");
}

/// With two confirmations, a reorganisation that takes the mint out of its block before the
/// second one is noticed: the client sends the mint again and waits anew; the token lands.
#[test]
fn a_mint_reorganised_out_before_its_confirmations_lands_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = kiln_nftgen::chain::LocalChain::start(dir.path().join("node")).unwrap();
    let url = node.url();
    let contract = deploy_on(&url, dir.path());
    let config = remote_config(
        &dir.path().join("alice"),
        &url,
        DEV_KEYS[0],
        &format!("{contract}confirmations = 2\n"),
    );
    let alice = ChainClient::open(&config).unwrap();
    let art = alice.attribute(&paint(&model(), "a tin cup", 44)).unwrap();
    let token = kiln_nftgen::TokenId::from(art.recipe_hash);
    let journal = dir.path().join(format!("alice/journal/31337/{token}.json"));
    let pending = alice.submit(&art).unwrap();
    let waiter = std::thread::spawn(move || alice.confirm(&pending).map(|r| (r, alice)));
    // The reveal is mined (automine) and waits for its second confirmation.
    let (rt, provider) = wallet(&url, DEV_KEYS[0]);
    let first = loop {
        let entry: kiln_nftgen::chain::JournalEntry =
            serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
        if entry.state == MintState::Pending
            && let Some(r) = rt
                .block_on(
                    provider
                        .get_transaction_receipt(B256::from(entry.tx.0))
                        .into_future(),
                )
                .unwrap()
        {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The block holding it is replaced by an empty one.
    rpc(&url, "anvil_reorg", serde_json::json!([1, []]));
    assert!(
        rt.block_on(
            provider
                .get_transaction_receipt(first.transaction_hash)
                .into_future()
        )
        .unwrap()
        .is_none_or(|r| r.block_hash != first.block_hash)
    );
    while !waiter.is_finished() {
        std::thread::sleep(Duration::from_millis(300));
        rpc(&url, "evm_mine", serde_json::json!([]));
    }
    let (receipt, alice) = waiter.join().unwrap().expect("the mint lands");
    let now = rt
        .block_on(
            provider
                .get_transaction_receipt(B256::from(receipt.tx.0))
                .into_future(),
        )
        .unwrap()
        .expect("mined");
    assert_ne!(
        now.block_hash, first.block_hash,
        "mined again, in another block"
    );
    assert!(alice.exists(token).unwrap());
    assert_eq!(alice.journal().unwrap()[0].state, MintState::Confirmed);
}

/// A picture its recipe does not paint (pixels edited, content hash written to match): `mint`
/// re-runs the recipe and refuses it; `--no-check` mints it anyway, and verification re-runs the
/// recipe, gets other pixels and says `not_reproducible`.
#[test]
fn art_its_recipe_does_not_paint_is_refused_or_verifies_not_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let mut art = paint(&model(), "a bronze bell", 45);
    art.rgba[4 * 100] ^= 0x10;
    art.content_hash = kiln_nftgen::ContentHash::of_rgba8(art.width, art.height, &art.rgba);
    let png = dir.path().join("edited.png");
    png_io::write(&png, &art).unwrap();
    let out = nftgen(&["mint", path_str(&png), "--data-dir", d], &[]);
    common::assert_one_line_error(&out, "does not paint");
    let out = nftgen(
        &[
            "mint",
            path_str(&png),
            "--no-check",
            "--data-dir",
            d,
            "--json",
        ],
        &[],
    );
    assert_success(&out);
    let minted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = minted["token_id"].as_str().unwrap();
    let out = nftgen(&["verify", token, "--data-dir", d, "--json"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "not_reproducible", "{v}");
    assert_eq!(v["expected"], art.content_hash.to_string());
    assert!(
        v["actual"].is_string() && v["actual"] != v["expected"],
        "{v}"
    );
}

/// The contract tools `cargo xtask setup` installs (solc, OpenZeppelin, anvil, Hardhat) in
/// Kiln's cache: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, then `npm/`.
fn npm_tools() -> PathBuf {
    let cache = std::env::var_os("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/kiln")))
        .expect("a cache folder");
    let npm = cache.join("npm");
    assert!(
        npm.join("node_modules/solc/solc.js").is_file(),
        "the contract tools are not in {} (run `cargo xtask setup`)",
        npm.display()
    );
    npm
}

/// The shipped integer model (pipeline/2) and the f32 one of pipeline/1.
fn pipeline_1_model() -> ArtModel {
    kiln_nftgen::shipped_model_paths()
        .into_iter()
        .map(|p| ArtModel::load(p).unwrap())
        .find(|m| m.sprite_q_net().is_none())
        .expect("the f32 kiln-sprite of pipeline/1 ships")
}

/// Sends `call` to `chain`'s contract from `key` and waits for its receipt.
fn call_contract(
    chain: &ChainClient,
    key: &str,
    call: impl SolCall,
) -> alloy::rpc::types::TransactionReceipt {
    send(
        chain.url(),
        key,
        TransactionRequest::default()
            .with_to(Address::from(chain.contract().0))
            .with_input(call.abi_encode())
            .with_gas_limit(1_000_000),
    )
}

/// The contract's answer to an `eth_call` of `mint(recipe, content, 0)` from `from`: the
/// decoded error it reverts with.
fn mint_refusal(
    chain: &ChainClient,
    from: Address,
    recipe: Vec<u8>,
    content: B256,
) -> KilnProvenance::KilnProvenanceErrors {
    let (rt, provider) = wallet(chain.url(), DEV_KEYS[0]);
    let call = KilnProvenance::mintCall {
        recipe: recipe.into(),
        contentHash: content,
        salt: B256::ZERO,
    };
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(Address::from(chain.contract().0))
        .with_input(call.abi_encode());
    let err = rt
        .block_on(provider.call(tx).into_future())
        .expect_err("refused");
    err.as_error_resp()
        .and_then(|e| e.as_decoded_interface_error::<KilnProvenance::KilnProvenanceErrors>())
        .unwrap_or_else(|| panic!("undecoded revert: {err}"))
}

/// Pipeline/1 does not paint its creator into the picture, so Alice and Bob painting the same
/// recipe naming themselves get the same pixels. Kiln refuses to mint such art, the contract
/// refuses its recipes, and on a contract whose owner allows them (as contracts deployed before
/// this rule did), Alice's PNG, found through Bob's token, verifies as `creator_not_bound` —
/// never `authentic` with Bob as its creator.
#[test]
fn pipeline_1_art_is_not_minted_and_its_tokens_say_the_creator_is_not_bound() {
    use KilnProvenance::KilnProvenanceErrors as E;
    let dir = tempfile::tempdir().unwrap();
    let alice = open(dir.path());
    let bob =
        ChainClient::open(&ChainConfig::local(dir.path()).with_local_key(DEV_KEYS[1])).unwrap();
    let v1 = pipeline_1_model();
    let painted_for = |who: CreatorAddress| {
        let req = GenerationRequest::new("a golden crown", 9)
            .steps(4)
            .creator(who);
        v1.generate(&req, &mut |_| Control::Continue).unwrap()
    };
    let (mine, his) = (painted_for(alice.account()), painted_for(bob.account()));
    assert_eq!(mine.record.pipeline, kiln_nftgen::PIPELINE);
    assert_eq!(
        mine.content_hash, his.content_hash,
        "pipeline/1 ignores the creator"
    );
    assert_ne!(mine.recipe_hash, his.recipe_hash);

    // Kiln's client refuses before anything is sent; so does the contract.
    assert!(matches!(
        bob.mint(&his),
        Err(ChainError::CreatorNotBound { ref pipeline }) if pipeline == "kiln-pipeline/1"
    ));
    let content = B256::from(his.content_hash.0);
    let recipe = his.record.canonical_bytes();
    let bob_address = Address::from(bob.account().0);
    assert!(matches!(
        mint_refusal(&bob, bob_address, recipe.clone(), content),
        E::PipelineNotAllowed(ref e) if e.pipeline == "kiln-pipeline/1"
    ));
    assert!(!mint_directly(&bob, DEV_KEYS[1], recipe.clone(), content).status());
    // Only the owner changes the list.
    let allow_v1 = KilnProvenance::setPipelineCall {
        pipeline: "kiln-pipeline/1".into(),
        allowed: true,
    };
    assert!(!call_contract(&bob, DEV_KEYS[1], allow_v1).status());
    let allow_v1 = KilnProvenance::setPipelineCall {
        pipeline: "kiln-pipeline/1".into(),
        allowed: true,
    };

    // A contract that still takes pipeline/1 (its owner allows it): Bob mints his copy first.
    assert!(call_contract(&alice, DEV_KEYS[0], allow_v1).status());
    assert!(mint_directly(&bob, DEV_KEYS[1], recipe, content).status());
    let file = dir.path().join("alice.png");
    png_io::write(&file, &mine).unwrap();
    let v = verify_file(&alice, &file, &kiln_nftgen::default_model_path()).unwrap();
    assert_eq!(v.token_id, TokenId::from(his.recipe_hash));
    assert_eq!(
        v.verdict,
        Verdict::CreatorNotBound {
            creator: bob.account()
        },
        "{}",
        v.summary
    );
    assert!(!v.verdict.is_authentic());
    assert!(v.summary.contains("creator not bound"), "{}", v.summary);
    assert_eq!(v.file_record, FileRecord::Differs(vec!["creator".into()]));
    assert_eq!(v.matched, ["image", "model", "recipe"]);
}

/// One picture is one token of its creator: a recipe whose engine, model id or backend was
/// edited (or whose guidance was written `-0.0`) gives the same pixels, so re-running refuses
/// it; on chain, a creator's second recipe claiming a content hash they minted is refused
/// (`ContentAlreadyMinted`, by the contract and by Kiln's client), while another creator's
/// claim is not blocked by it.
#[test]
fn one_picture_is_one_token_of_its_creator() {
    use KilnProvenance::KilnProvenanceErrors as E;
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let model = model();
    let art = chain
        .attribute(&paint(&model, "a golden crown", 12))
        .unwrap();
    let no_op = |_: kiln_nftgen::Progress| Control::Continue;
    assert_eq!(
        model
            .regenerate(&art.record, &mut { no_op })
            .unwrap()
            .content_hash,
        art.content_hash
    );
    let flat = model
        .generate(
            &GenerationRequest::new("a golden crown", 12)
                .steps(8)
                .guidance(-0.0)
                .creator(chain.account()),
            &mut { no_op },
        )
        .unwrap();
    assert!(
        flat.record.guidance == 0.0 && flat.record.guidance.is_sign_positive(),
        "a request's -0.0 is recorded as 0.0"
    );
    type Edit = fn(&mut kiln_nftgen::GenerationRecord);
    let edits: [(&str, Edit); 4] = [
        ("engine", |r| r.engine = "kiln-nftgen 9.9.9".into()),
        ("model id", |r| r.model.id = "kiln-sprite-q-v9".into()),
        ("backend", |r| r.backend = kiln_nftgen::Backend::Cuda),
        ("minus sign", |r| r.guidance = -0.0),
    ];
    for (what, edit) in &edits {
        let mut record = if *what == "minus sign" {
            flat.record.clone()
        } else {
            art.record.clone()
        };
        edit(&mut record);
        let err = model.regenerate(&record, &mut { no_op }).unwrap_err();
        assert!(
            err.to_string()
                .contains(what.split(' ').next_back().unwrap()),
            "{what}: {err}"
        );
    }
    // wgpu paints pipeline/2's bits: a recipe naming it reproduces, as one naming the CPU does.
    let mut on_gpu = art.clone();
    on_gpu.record.backend = kiln_nftgen::Backend::Wgpu;
    on_gpu.recipe_hash = on_gpu.record.recipe_hash();
    assert_eq!(
        model
            .regenerate(&on_gpu.record, &mut { no_op })
            .unwrap()
            .content_hash,
        art.content_hash
    );

    let token = chain.mint(&art).unwrap().token_id;
    let (rt, provider) = wallet(chain.url(), DEV_KEYS[0]);
    let c = KilnProvenance::new(Address::from(chain.contract().0), &provider);
    let indexed = rt
        .block_on(
            c.tokenOf(
                Address::from(chain.account().0),
                B256::from(art.content_hash.0),
            )
            .call()
            .into_future(),
        )
        .unwrap();
    assert_eq!(indexed, U256::from_be_bytes(token.0));
    // The same pixels under another token id of the same creator: refused by the client…
    assert!(matches!(
        chain.mint(&on_gpu),
        Err(ChainError::Rejected(MintRejection::ContentAlreadyMinted { token_id })) if token_id == token
    ));
    // …and by the contract when sent past it.
    let me = Address::from(chain.account().0);
    let content = B256::from(art.content_hash.0);
    let recipe = on_gpu.record.canonical_bytes();
    assert!(matches!(
        mint_refusal(&chain, me, recipe.clone(), content),
        E::ContentAlreadyMinted(ref e) if e.tokenId == U256::from_be_bytes(token.0)
    ));
    assert!(!mint_directly(&chain, DEV_KEYS[0], recipe, content).status());

    // An edited recipe minted past Kiln (its first claim of those pixels) does not verify.
    let other = chain.attribute(&paint(&model, "a silver key", 13)).unwrap();
    let mut edited = other.record.clone();
    edited.engine = "kiln-nftgen 9.9.9".into();
    let bytes = edited.canonical_bytes();
    assert!(
        mint_directly(
            &chain,
            DEV_KEYS[0],
            bytes.clone(),
            B256::from(other.content_hash.0)
        )
        .status()
    );
    let file = dir.path().join("key.png");
    png_io::write(&file, &other).unwrap();
    let edited_token = TokenId(alloy::primitives::keccak256(&bytes).0);
    let v = verify(
        &chain,
        edited_token,
        Some(&file),
        &kiln_nftgen::default_model_path(),
    )
    .unwrap();
    assert!(
        matches!(&v.verdict, Verdict::NotReproducible { actual: None, detail: Some(d), .. } if d.contains("engine")),
        "{}",
        v.summary
    );
}

/// ERC-7007's Final text indexes `tokenId`, `prompt` and `aigcData` in `AigcData`: the mint's
/// event has four topics, the last two the keccak256 of the recipe and of the content hash.
#[test]
fn the_aigc_data_event_follows_erc_7007() {
    use alloy::sol_types::SolEvent;
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path());
    let art = chain.attribute(&paint(&model(), "a tin cup", 14)).unwrap();
    let receipt = chain.mint(&art).unwrap();
    let (rt, provider) = wallet(chain.url(), DEV_KEYS[0]);
    let tx = rt
        .block_on(
            provider
                .get_transaction_receipt(B256::from(receipt.tx.0))
                .into_future(),
        )
        .unwrap()
        .unwrap();
    let signature = alloy::primitives::keccak256("AigcData(uint256,bytes,bytes,bytes)");
    assert_eq!(KilnProvenance::AigcData::SIGNATURE_HASH, signature);
    let log = tx
        .inner
        .logs()
        .iter()
        .find(|l| l.topics().first() == Some(&signature))
        .expect("an AigcData event");
    let topics = log.topics();
    assert_eq!(topics.len(), 4, "{topics:?}");
    assert_eq!(topics[1], B256::from(receipt.token_id.0));
    assert_eq!(
        topics[2],
        alloy::primitives::keccak256(art.record.canonical_bytes())
    );
    assert_eq!(topics[3], alloy::primitives::keccak256(art.content_hash.0));
}

/// A commitment that expired before its reveal (43,200 blocks: hours on an L2) does not brick
/// the mint: the client commits again with a fresh salt, journaled before it is sent, and the
/// token lands. On Hardhat's node, whose `hardhat_mine` mines the 43,201 blocks at once.
#[test]
fn an_expired_commitment_is_made_again_and_the_mint_lands() {
    let node = Hardhat::start();
    let url = &node.url;
    let dir = tempfile::tempdir().unwrap();
    let contract = deploy_on(url, dir.path());
    let config = remote_config(&dir.path().join("alice"), url, DEV_KEYS[0], &contract);
    let chain = ChainClient::open(&config).unwrap();
    let art = chain
        .attribute(&paint(&model(), "a bronze bell", 15))
        .unwrap();
    let pending = chain.submit(&art).unwrap();
    let token = pending.token_id;
    let journal = dir.path().join(format!("alice/journal/31337/{token}.json"));
    let read = || -> kiln_nftgen::chain::JournalEntry {
        serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap()
    };
    let old_salt = read().salt;
    // The commitment is mined (automine); then the chain moves past its last reveal block.
    rpc(url, "hardhat_mine", serde_json::json!(["0xa8c1"]));
    let receipt = chain.confirm(&pending).expect("the mint lands");
    assert!(chain.exists(token).unwrap());
    assert_ne!(receipt.commit_tx, Some(pending.tx), "committed again");
    let entry = read();
    assert_eq!(entry.state, MintState::Confirmed);
    assert_ne!(entry.salt, old_salt, "a fresh salt");
}

/// Fee bumps are bounded. A commitment that is never mined (the node mines nothing) is bumped
/// at most `max_fee_bumps` times and never above the fee ceiling; one that waits behind an
/// unmined earlier transaction of the account is not bumped at all. The journal and the
/// timeout say why the mint waits.
#[test]
fn fee_bumps_stop_at_their_limit_their_ceiling_and_behind_a_stuck_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let node = kiln_nftgen::chain::LocalChain::start(dir.path().join("node")).unwrap();
    let url = node.url();
    let contract = deploy_on(&url, dir.path());
    let model = model();
    let settings = "fee_bump_after_secs = 0.2\nreceipt_timeout_secs = 3\n";
    rpc(&url, "evm_setAutomine", serde_json::json!([false]));
    let attempt = |name: &str, extra: &str, prompt: &str| {
        let config = remote_config(
            &dir.path().join(name),
            &url,
            DEV_KEYS[0],
            &format!("{contract}{settings}{extra}"),
        );
        let client = ChainClient::open(&config).unwrap();
        let art = client.attribute(&paint(&model, prompt, 16)).unwrap();
        let pending = client.submit(&art).unwrap();
        let err = client.confirm(&pending).unwrap_err();
        assert!(matches!(err, ChainError::Timeout { .. }), "{err}");
        let entry = client
            .journal()
            .unwrap()
            .into_iter()
            .find(|e| e.token_id == pending.token_id)
            .unwrap();
        rpc(&url, "anvil_dropAllTransactions", serde_json::json!([]));
        (err.to_string(), entry)
    };

    // Never mined: two bumps, then it waits and says why.
    let (err, e) = attempt("limit", "max_fee_bumps = 2\n", "a red sword");
    assert_eq!((e.fee_bumps, e.replaced.len()), (2, 2), "{e:?}");
    assert!(err.contains("max_fee_bumps"), "{err}");
    assert!(e.waiting.as_deref().unwrap().contains("max_fee_bumps"));
    assert!(e.fees.unwrap().0 <= e.fee_cap.unwrap());

    // A ceiling of 1.3 times the first fee: bumps of 1/8 stop below it.
    let (rt, provider) = wallet(&url, DEV_KEYS[0]);
    let first = rt
        .block_on(provider.estimate_eip1559_fees().into_future())
        .unwrap()
        .max_fee_per_gas;
    let cap = first * 13 / 10;
    let (err, e) = attempt(
        "ceiling",
        &format!("max_fee_bumps = 50\nmax_fee_gwei = {}\n", cap as f64 / 1e9),
        "a blue shield",
    );
    assert!(e.fee_bumps >= 1 && e.fee_bumps <= 2, "{e:?}");
    assert!(
        e.fees.unwrap().0 <= cap && e.fees.unwrap().1 <= cap,
        "{e:?}"
    );
    assert!(err.contains("ceiling"), "{err}");

    // An earlier transaction of the account waits unmined: a fee bump cannot help.
    let spend = TransactionRequest::default()
        .with_to(Address::from([0x11; 20]))
        .with_value(U256::from(1u64));
    rt.block_on(async { provider.send_transaction(spend).await.map(|_| ()) })
        .unwrap();
    let (err, e) = attempt("stuck", "", "a tin cup");
    assert_eq!(e.fee_bumps, 0, "{e:?}");
    assert!(e.replaced.is_empty());
    assert!(err.contains("earlier transaction"), "{err}");
}

/// Kiln knows every key anvil hands out as public test keys — all ten it prints — so none of
/// them signs on a real chain.
#[test]
fn every_key_anvil_prints_is_a_known_public_test_key() {
    use std::io::BufRead;
    let anvil = kiln_nftgen::chain::find_anvil().unwrap();
    let mut child = std::process::Command::new(anvil)
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut keys = Vec::new();
    let mut in_keys = false;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("Private Keys") {
            in_keys = true;
        } else if in_keys && let Some((_, key)) = line.split_once(") ") {
            keys.push(key.trim().to_string());
            if keys.len() == 10 {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(keys.len(), 10, "{keys:?}");
    for key in &keys {
        assert!(DEV_KEYS.contains(&key.as_str()), "{key}");
        assert!(kiln_nftgen::chain::check_signing_key(key, 1).is_err());
    }
}

/// The process group of process `pid` (field 5 of `/proc/<pid>/stat`).
fn process_group(pid: &str) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: the fields after it start after its closing ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(2).unwrap().parse().unwrap()
}

/// Ctrl-C in the terminal of the process that started the local chain goes to that terminal's
/// foreground process group: the node (which other processes may lease) is in a group of its
/// own.
#[test]
fn the_local_node_runs_in_its_own_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let _chain = open(dir.path());
    let pid = node_pid(dir.path()).expect("the node's pid is recorded");
    assert!(running(pid));
    assert_ne!(process_group(&pid.to_string()), process_group("self"));
}

/// Listing a wallet's tokens scans the contract's logs twice for the whole page (transfers to the
/// owner, then the tokens' `Provenance` events), not once per token: a spammer who sends junk
/// tokens to a victim does not multiply the requests by the chain's length. Pages of the listing
/// are slices of the whole. Counted on Hardhat's node, which logs every request.
#[test]
fn listing_tokens_costs_two_log_scans_not_one_per_token() {
    let node = Hardhat::start();
    let dir = tempfile::tempdir().unwrap();
    let contract = deploy_on(&node.url, dir.path());
    let config = remote_config(
        &dir.path().join("alice"),
        &node.url,
        DEV_KEYS[0],
        &format!("{contract}log_page_blocks = 2\n"),
    );
    let alice = ChainClient::open(&config).unwrap();
    let model = model();
    for (i, prompt) in ["a red sword", "a blue shield", "a tin cup", "a silver key"]
        .into_iter()
        .enumerate()
    {
        alice
            .mint(
                &alice
                    .attribute(&paint(&model, prompt, 50 + i as u64))
                    .unwrap(),
            )
            .unwrap();
    }
    let head = rpc(&node.url, "eth_blockNumber", serde_json::json!([]));
    let head = u64::from_str_radix(head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let pages = head / 2 + 1;
    let before = node.calls("eth_getLogs");
    let rows = alice.records_of(alice.account(), 0, 100).unwrap();
    let scans = node.calls("eth_getLogs") - before;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|(_, r)| r.is_ok()), "{rows:?}");
    assert!(
        scans as u64 <= 2 * pages,
        "{scans} eth_getLogs requests for 4 tokens over {pages} pages of blocks"
    );
    eprintln!("listing 4 tokens: {scans} eth_getLogs requests ({pages} pages of 2 blocks)");
    let page: Vec<TokenId> = alice
        .records_of(alice.account(), 1, 2)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let all: Vec<TokenId> = rows.iter().map(|(t, _)| *t).collect();
    assert_eq!(page, all[1..3]);
}

/// A JSON-RPC proxy in front of `upstream` that, while `cut` is set, forwards
/// `eth_sendRawTransaction` to the node and then drops the connection without answering (as a
/// reset connection or a crashed load balancer would): the node has the transaction, the client
/// has no answer.
fn cutting_proxy(upstream: String, cut: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    /// One HTTP/1.1 message (head and `Content-Length` body) from `r`; `None` at the end.
    fn message(r: &mut BufReader<std::net::TcpStream>) -> Option<Vec<u8>> {
        let mut head = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().ok()?;
            }
            head.extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).ok()?;
        head.extend(body);
        Some(head)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (upstream, cut) = (upstream.clone(), cut.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut client = client;
                let node = std::net::TcpStream::connect(&upstream).unwrap();
                let mut node_reader = BufReader::new(node.try_clone().unwrap());
                let mut node = node;
                while let Some(request) = message(&mut reader) {
                    node.write_all(&request).unwrap();
                    let Some(response) = message(&mut node_reader) else {
                        return;
                    };
                    let sending =
                        String::from_utf8_lossy(&request).contains("eth_sendRawTransaction");
                    if sending && cut.load(std::sync::atomic::Ordering::SeqCst) {
                        return; // the answer never arrives
                    }
                    client.write_all(&response).unwrap();
                }
            });
        }
    });
    url
}

/// A transaction the node took, whose answer was lost on the way back, is not a refusal: the
/// mint stays open in the journal (not `failed`) and the next start finds its receipt and
/// finishes it.
#[test]
fn a_lost_answer_to_a_send_is_not_taken_for_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let node = kiln_nftgen::chain::LocalChain::start(dir.path().join("node")).unwrap();
    let contract = deploy_on(&node.url(), dir.path());
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = cutting_proxy(node.url(), cut.clone());
    let config = remote_config(&dir.path().join("alice"), &proxy, DEV_KEYS[0], &contract);
    let alice = ChainClient::open(&config).unwrap();
    let art = alice
        .attribute(&paint(&model(), "a wooden wheel", 17))
        .unwrap();
    cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = alice.mint(&art).unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err}");
    let entry = alice.journal().unwrap().remove(0);
    assert_eq!(entry.state, MintState::Committing, "{entry:?}");
    drop(alice);
    cut.store(false, std::sync::atomic::Ordering::SeqCst);
    let alice = ChainClient::open(&config).unwrap();
    let res = alice.resolutions();
    assert_eq!(res.len(), 1, "{res:?}");
    assert_eq!(
        (res[0].token_id, res[0].state, res[0].action),
        (entry.token_id, MintState::Confirmed, "receipt found")
    );
    assert!(alice.exists(entry.token_id).unwrap());
}

/// What the contract should answer to one call, by the model of its rules.
type Expect = Result<(), &'static str>;

/// The name of the contract error a call reverted with (`"? …"` if it did not decode).
fn revert_name(err: &alloy::transports::TransportError) -> String {
    err.as_error_resp()
        .and_then(|e| e.as_decoded_interface_error::<KilnProvenance::KilnProvenanceErrors>())
        .map(|d| {
            format!("{d:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|| format!("? {err}"))
}

/// Stateful invariant fuzz of the contract on the node at `url`: `steps` random calls — commit,
/// mint and ERC-7007's `addAigcData` (right and wrong sender, salt, token id; a content hash the
/// creator minted already), transfers and approvals by owners and strangers, the two-step
/// ownership hand-over, metadata changes, and blocks mined — each predicted by a model of the
/// contract's rules (success, or the error it reverts with, simulated on the pending block),
/// then sent when it should succeed. After every step, for every recipe of the pool: the
/// creator is the recipe's bytes 5..25 whoever owns the token; `minted`, `ownerOf` and
/// `tokenURI` follow the model; the royalty receiver is the creator after any transfers;
/// `tokenOf(creator, content)` names exactly the minted token (one per creator and content);
/// ERC-7007 `verify` is true exactly for the minted pair; a commitment is consumed exactly once.
fn invariant_fuzz(url: &str, steps: usize, mut seed: u64) {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let contract = deployed_address(url, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = &DEV_KEYS[..4];
    let actors: Vec<Address> = keys
        .iter()
        .map(|k| k.parse::<PrivateKeySigner>().unwrap().address())
        .collect();
    let providers: Vec<DynProvider> = keys.iter().map(|k| wallet(url, k).1).collect();
    let c = KilnProvenance::new(contract, providers[0].clone());
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    // The pool: 2 recipes per actor, over 3 content hashes (so one creator's two recipes
    // can claim one picture), and 3 salts.
    let model = model();
    let recipes: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let req = GenerationRequest::new("a tin cup", i as u64)
                .steps(8)
                .creator(CreatorAddress(actors[i % 4].0.0));
            model.record_for(&req).unwrap().canonical_bytes()
        })
        .collect();
    let contents = [1u8, 2, 3].map(B256::repeat_byte);
    let salts = [7u8, 8, 9].map(B256::repeat_byte);
    let id = |r: &[u8]| U256::from_be_bytes(alloy::primitives::keccak256(r).0);
    let creator_of = |r: &[u8]| Address::from_slice(&r[5..25]);

    // The model.
    let mut minted: HashMap<usize, (B256, Address)> = HashMap::new(); // recipe → (content, owner)
    let mut approved: HashMap<usize, Address> = HashMap::new();
    let mut commitments: HashMap<B256, u64> = HashMap::new();
    let mut owner = actors[0];
    let mut pending_owner = Address::ZERO;
    let mut base = "file:///tokens/".to_string();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let head = |rt: &tokio::runtime::Runtime| {
        rt.block_on(providers[0].get_block_number().into_future())
            .unwrap()
    };

    // Commitments made so far (recipe, content, salt): reveals mostly pick one of these.
    let mut committed: Vec<(usize, B256, B256)> = Vec::new();
    for step in 0..steps {
        let kind = next() % 10;
        let mut a = next() % 4;
        let mut r = next() % recipes.len();
        let mut content = contents[next() % 3];
        let mut salt = salts[next() % 3];
        let other = actors[next() % 4];
        // Bias towards calls that can succeed: reveals of commitments made, by their creator;
        // transfers and approvals of minted tokens, by their holder.
        if matches!(kind, 2..=4) && !committed.is_empty() && next() % 4 != 0 {
            (r, content, salt) = committed[next() % committed.len()];
            if next() % 4 != 0 {
                a = r % 4;
            }
        }
        if matches!(kind, 5..=7) && !minted.is_empty() && next() % 4 != 0 {
            let held: Vec<usize> = minted.keys().copied().collect();
            r = held[next() % held.len()];
            if next() % 3 != 0 {
                a = actors.iter().position(|x| *x == minted[&r].1).unwrap();
            }
        }
        let sender = actors[a];
        let recipe = &recipes[r];
        let block = head(&rt) + 1;
        let commitment = commitment(creator_of(recipe), recipe, content, salt);
        let reveal = |m: &HashMap<usize, (B256, Address)>| -> Expect {
            if creator_of(recipe) != sender {
                return Err("NotCreator");
            }
            if m.contains_key(&r) {
                return Err("AlreadyMinted");
            }
            if m.iter()
                .any(|(&i, (c, _))| creator_of(&recipes[i]) == sender && *c == content)
            {
                return Err("ContentAlreadyMinted");
            }
            match commitments.get(&commitment) {
                None => Err("CommitmentMissing"),
                Some(&at) if block < at + 1 => Err("CommitmentTooRecent"),
                Some(_) => Ok(()),
            }
        };
        let token = id(recipe);
        let (name, call, expect): (&'static str, Bytes, Expect) = match kind {
            0 | 1 => (
                "commit",
                KilnProvenance::commitCall { commitment }
                    .abi_encode()
                    .into(),
                Ok(()),
            ),
            2 | 3 => (
                "mint",
                KilnProvenance::mintCall {
                    recipe: recipe.clone().into(),
                    contentHash: content,
                    salt,
                }
                .abi_encode()
                .into(),
                reveal(&minted),
            ),
            4 => {
                let wrong = next() % 4 == 0;
                let claimed = if wrong { token + U256::from(1) } else { token };
                (
                    "addAigcData",
                    KilnProvenance::addAigcDataCall {
                        tokenId: claimed,
                        prompt: recipe.clone().into(),
                        aigcData: content.to_vec().into(),
                        proof: salt.to_vec().into(),
                    }
                    .abi_encode()
                    .into(),
                    if wrong {
                        Err("TokenIdMismatch")
                    } else {
                        reveal(&minted)
                    },
                )
            }
            5 | 6 => {
                let expect = match minted.get(&r) {
                    None => Err("ERC721NonexistentToken"),
                    Some(&(_, o)) if o == sender || approved.get(&r) == Some(&sender) => Ok(()),
                    Some(_) => Err("ERC721InsufficientApproval"),
                };
                let from = minted.get(&r).map_or(sender, |m| m.1);
                (
                    "transferFrom",
                    KilnProvenance::transferFromCall {
                        from,
                        to: other,
                        tokenId: token,
                    }
                    .abi_encode()
                    .into(),
                    expect,
                )
            }
            7 => {
                let expect = match minted.get(&r) {
                    None => Err("ERC721NonexistentToken"),
                    Some(&(_, o)) if o == sender => Ok(()),
                    Some(_) => Err("ERC721InvalidApprover"),
                };
                (
                    "approve",
                    KilnProvenance::approveCall {
                        to: other,
                        tokenId: token,
                    }
                    .abi_encode()
                    .into(),
                    expect,
                )
            }
            8 => {
                let (name, call): (&'static str, Bytes) = match next() % 3 {
                    0 => (
                        "transferOwnership",
                        KilnProvenance::transferOwnershipCall { newOwner: other }
                            .abi_encode()
                            .into(),
                    ),
                    1 => (
                        "acceptOwnership",
                        KilnProvenance::acceptOwnershipCall {}.abi_encode().into(),
                    ),
                    _ => (
                        "setMetadataBase",
                        KilnProvenance::setMetadataBaseCall {
                            metadataBase: format!("ipfs://base{step}/"),
                        }
                        .abi_encode()
                        .into(),
                    ),
                };
                let expect = match name {
                    "acceptOwnership" if sender != pending_owner => {
                        Err("OwnableUnauthorizedAccount")
                    }
                    "acceptOwnership" => Ok(()),
                    _ if sender != owner => Err("OwnableUnauthorizedAccount"),
                    _ => Ok(()),
                };
                (name, call, expect)
            }
            _ => {
                rpc(url, "evm_mine", serde_json::json!([]));
                continue;
            }
        };
        let tx = TransactionRequest::default()
            .with_from(sender)
            .with_to(contract)
            .with_input(call.clone());
        let simulated = rt.block_on(
            providers[a]
                .call(tx.clone())
                .block(alloy::eips::BlockId::pending())
                .into_future(),
        );
        match (&expect, &simulated) {
            (Ok(()), Ok(_)) => {}
            (Err(want), Err(e)) => {
                let got = revert_name(e);
                assert_eq!(&got, want, "step {step}: {name} by actor {a} on recipe {r}");
                *counts.entry(want).or_default() += 1;
                continue;
            }
            _ => panic!(
                "step {step}: {name} by actor {a} on recipe {r}: expected {expect:?}, the node said {simulated:?}"
            ),
        }
        let sent = rt
            .block_on(providers[a].send_transaction(tx.with_gas_limit(1_000_000)))
            .unwrap();
        let receipt = rt.block_on(sent.get_receipt()).unwrap();
        assert!(receipt.status(), "step {step}: {name} reverted when sent");
        *counts.entry(name).or_default() += 1;
        let mined_in = receipt.block_number.unwrap();
        // The model follows.
        match name {
            "commit" => {
                commitments.entry(commitment).or_insert(mined_in);
                committed.push((r, content, salt));
            }
            "mint" | "addAigcData" => {
                assert!(commitments.remove(&commitment).is_some());
                minted.insert(r, (content, sender));
            }
            "transferFrom" => {
                minted.get_mut(&r).unwrap().1 = other;
                approved.remove(&r);
            }
            "approve" => {
                approved.insert(r, other);
            }
            "transferOwnership" => pending_owner = other,
            "acceptOwnership" => {
                owner = sender;
                pending_owner = Address::ZERO;
            }
            "setMetadataBase" => base = format!("ipfs://base{step}/"),
            _ => unreachable!(),
        }

        // Invariants, on every recipe of the pool.
        assert_eq!(rt.block_on(c.owner().call().into_future()).unwrap(), owner);
        for (i, recipe) in recipes.iter().enumerate() {
            let token = id(recipe);
            let is_minted = rt.block_on(c.minted(token).call().into_future()).unwrap();
            assert_eq!(
                is_minted,
                minted.contains_key(&i),
                "step {step}: recipe {i}"
            );
            for content in contents {
                let verified = rt
                    .block_on(
                        c.verify(recipe.clone().into(), content.to_vec().into(), Bytes::new())
                            .call()
                            .into_future(),
                    )
                    .unwrap();
                assert_eq!(
                    verified,
                    minted.get(&i).is_some_and(|m| m.0 == content),
                    "step {step}: verify of recipe {i}"
                );
            }
            let Some(&(content, holder)) = minted.get(&i) else {
                continue;
            };
            let creator = creator_of(recipe);
            assert_eq!(
                rt.block_on(c.creatorOf(token).call().into_future())
                    .unwrap(),
                creator
            );
            assert_eq!(
                rt.block_on(c.ownerOf(token).call().into_future()).unwrap(),
                holder
            );
            let royalty = rt
                .block_on(
                    c.royaltyInfo(token, U256::from(10_000))
                        .call()
                        .into_future(),
                )
                .unwrap();
            assert_eq!(royalty.receiver, creator);
            assert_eq!(
                rt.block_on(c.tokenOf(creator, content).call().into_future())
                    .unwrap(),
                token
            );
            let uri = rt.block_on(c.tokenURI(token).call().into_future()).unwrap();
            assert!(uri.starts_with(&base), "{uri}");
        }
        for (&commitment, &at) in &commitments {
            let on_chain = rt
                .block_on(c.commitmentBlock(commitment).call().into_future())
                .unwrap();
            assert_eq!(on_chain, U256::from(at), "step {step}");
        }
    }
    eprintln!("invariant fuzz, {steps} steps: {counts:?}");
    for must in [
        "commit",
        "mint",
        "addAigcData",
        "transferFrom",
        "approve",
        "AlreadyMinted",
        "ContentAlreadyMinted",
        "CommitmentMissing",
        "NotCreator",
        "ERC721InsufficientApproval",
    ] {
        assert!(
            counts.contains_key(must),
            "{must} never happened: {counts:?}"
        );
    }
    assert!(minted.len() >= 2, "{minted:?}");
}

#[test]
fn the_contract_keeps_its_invariants_under_random_calls_on_anvil() {
    let dir = tempfile::tempdir().unwrap();
    let node = kiln_nftgen::chain::LocalChain::start(dir.path()).unwrap();
    invariant_fuzz(&node.url(), 500, 0x5eed_0001);
}

#[test]
fn the_contract_keeps_its_invariants_under_random_calls_on_hardhat() {
    let node = Hardhat::start();
    invariant_fuzz(&node.url, 300, 0x5eed_0002);
}

/// The commitment's ages on their edges, on Hardhat's node (whose `hardhat_mine` moves the
/// chain 43,200 blocks at once): a reveal in its commitment's own block is too recent and one
/// block later it mints; a reveal in the commitment's block + 43,200 mints and one block later
/// it is expired; committing again while a commitment is pending changes nothing (a copy of the
/// call cannot delay the reveal), and an expired one starts again.
#[test]
fn commitment_ages_hold_on_both_sides_of_each_edge() {
    let node = Hardhat::start();
    let url = node.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let contract = deployed_address(url, dir.path());
    let (rt, provider) = wallet(url, DEV_KEYS[0]);
    let me = DEV_KEYS[0].parse::<PrivateKeySigner>().unwrap().address();
    let c = KilnProvenance::new(contract, provider.clone());
    let model = model();
    let recipe = |seed: u64| {
        let req = GenerationRequest::new("a tin cup", seed)
            .steps(8)
            .creator(CreatorAddress(me.0.0));
        model.record_for(&req).unwrap().canonical_bytes()
    };
    let salt = B256::repeat_byte(0x42);
    let content = |i: u8| B256::repeat_byte(i);
    let tx = |call: Vec<u8>| {
        TransactionRequest::default()
            .with_to(contract)
            .with_input(call)
            .with_gas_limit(1_000_000)
    };
    let commit_call = |r: &[u8], i: u8| {
        KilnProvenance::commitCall {
            commitment: commitment(me, r, content(i), salt),
        }
        .abi_encode()
    };
    let reveal_call = |r: &[u8], i: u8| {
        KilnProvenance::mintCall {
            recipe: r.to_vec().into(),
            contentHash: content(i),
            salt,
        }
        .abi_encode()
    };
    let send_now = |call: Vec<u8>| {
        let sent = rt.block_on(provider.send_transaction(tx(call))).unwrap();
        rt.block_on(sent.get_receipt()).unwrap()
    };
    let refusal = |call: Vec<u8>| {
        let err = rt
            .block_on(
                provider
                    .call(tx(call).with_from(me))
                    .block(alloy::eips::BlockId::pending())
                    .into_future(),
            )
            .expect_err("refused");
        revert_name(&err)
    };
    let committed_at = |r: &[u8], i: u8| {
        rt.block_on(
            c.commitmentBlock(commitment(me, r, content(i), salt))
                .call()
                .into_future(),
        )
        .unwrap()
    };

    // A reveal in its commitment's own block is too recent; one block later it mints.
    let first = recipe(1);
    rpc(url, "evm_setAutomine", serde_json::json!([false]));
    let commit = rt
        .block_on(provider.send_transaction(tx(commit_call(&first, 1))))
        .unwrap();
    let early = rt
        .block_on(provider.send_transaction(tx(reveal_call(&first, 1))))
        .unwrap();
    rpc(url, "evm_mine", serde_json::json!([]));
    rpc(url, "evm_setAutomine", serde_json::json!([true]));
    let (commit, early) = (
        rt.block_on(commit.get_receipt()).unwrap(),
        rt.block_on(early.get_receipt()).unwrap(),
    );
    assert_eq!(commit.block_number, early.block_number, "one block");
    assert!(commit.status() && !early.status());
    assert!(send_now(reveal_call(&first, 1)).status());

    // The last block a reveal is accepted in, and the first it is not.
    let (last, expired) = (recipe(2), recipe(3));
    let at = send_now(commit_call(&last, 2)).block_number.unwrap();
    rpc(
        url,
        "hardhat_mine",
        serde_json::json!([format!("{:#x}", 43_199)]),
    );
    let in_last = send_now(reveal_call(&last, 2));
    assert_eq!(in_last.block_number, Some(at + 43_200));
    assert!(in_last.status());
    let at = send_now(commit_call(&expired, 3)).block_number.unwrap();
    rpc(
        url,
        "hardhat_mine",
        serde_json::json!([format!("{:#x}", 43_200)]),
    );
    // The pending block is the commitment's + 43,201.
    let head = rt
        .block_on(provider.get_block_number().into_future())
        .unwrap();
    assert_eq!(head, at + 43_200);
    assert_eq!(refusal(reveal_call(&expired, 3)), "CommitmentExpired");
    // Sent anyway, it does not mint (Hardhat refuses a reverting transaction outright).
    let late = rt.block_on(provider.send_transaction(tx(reveal_call(&expired, 3))));
    assert!(late.is_err_and(|e| e.to_string().contains("reverted")));
    assert_eq!(committed_at(&expired, 3), U256::from(at));

    // Committing again: no change while pending; an expired commitment starts again.
    let pending = recipe(4);
    let at = send_now(commit_call(&pending, 4)).block_number.unwrap();
    send_now(commit_call(&pending, 4));
    assert_eq!(committed_at(&pending, 4), U256::from(at));
    let again = send_now(commit_call(&expired, 3)).block_number.unwrap();
    assert_eq!(committed_at(&expired, 3), U256::from(again));
    assert!(send_now(reveal_call(&expired, 3)).status());
    // A commitment is consumed by its reveal: the same reveal again finds no commitment.
    assert_eq!(committed_at(&expired, 3), U256::ZERO);
    assert_eq!(refusal(reveal_call(&expired, 3)), "AlreadyMinted");
}
