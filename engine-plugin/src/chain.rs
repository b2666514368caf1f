//! Minting and verification on a chain worker thread (feature `chain`).

use std::path::PathBuf;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use kiln_nftgen::chain::{ChainClient, ChainConfig, ChainError, Verdict, Verification};
use kiln_nftgen::{CreatorAddress, GeneratedArt, TokenId, TxHash};

use crate::{KilnSystems, configure_sets};

/// Minting and verification. The worker thread connects at start-up: to the configured RPC, or
/// to the embedded local chain (anvil), which it starts or joins and where it deploys the
/// contract once. Mints left pending by an earlier run are settled then.
#[derive(Debug, Clone)]
pub struct ChainPlugin {
    /// Where the chain is and who signs [default: `ChainConfig::load` of Kiln's data directory,
    /// i.e. the local chain unless `KILN_RPC_URL` or `chain.toml` say otherwise].
    pub config: Option<ChainConfig>,
    /// The art model verification re-runs recipes on [default: the shipped kiln-sprite-q; tokens
    /// of the f32 pipeline/1 find the shipped kiln-sprite weights by their hash].
    pub art_model: PathBuf,
}

impl Default for ChainPlugin {
    fn default() -> Self {
        Self {
            config: None,
            art_model: kiln_nftgen::default_model_path(),
        }
    }
}

/// Mint `art` to the wallet, which becomes its creator (commit, a block, reveal).
#[derive(Message, Debug, Clone)]
pub struct MintArt {
    /// Who asked.
    pub requester: Entity,
    /// The art (from [`ArtReady`](crate::ArtReady)).
    pub art: Arc<GeneratedArt>,
}

/// The art is minted.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct ArtMinted {
    /// Who asked.
    pub requester: Entity,
    /// The token (its recipe hash).
    pub token_id: TokenId,
    /// The transaction.
    pub tx: TxHash,
    /// Its block.
    pub block: u64,
    /// The minted picture in Kiln's content store (PNG, its attributed record embedded).
    pub png: PathBuf,
}

/// The mint failed (refused by the contract, a dead RPC, a timeout …); nothing was lost: a mint
/// left pending is settled on the next start.
#[derive(Message, Debug, Clone)]
pub struct MintFailed {
    /// Who asked.
    pub requester: Entity,
    /// Why, in one line.
    pub reason: String,
}

/// Verify a token: image, model and a bit-exact re-run of its recipe.
#[derive(Message, Debug, Clone, Copy)]
pub struct VerifyToken {
    /// Who asked.
    pub requester: Entity,
    /// The token.
    pub token_id: TokenId,
}

/// A verification's result.
#[derive(Message, Debug, Clone)]
pub struct TokenVerified {
    /// Who asked.
    pub requester: Entity,
    /// The token.
    pub token_id: TokenId,
    /// The verdict (an unreachable chain is reported as `Err`).
    pub verdict: Result<Verdict, String>,
    /// The full report, when the chain answered.
    pub report: Option<Box<Verification>>,
}

/// Where the chain connection stands.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// Connecting (starting the local chain, deploying, settling the journal).
    Connecting,
    /// Connected.
    Ready {
        /// The wallet.
        account: CreatorAddress,
        /// The contract.
        contract: CreatorAddress,
        /// The chain.
        chain_id: u64,
    },
    /// Could not connect (the reason); mints and verifications fail with it.
    Unavailable(String),
}

enum Job {
    Mint(MintArt),
    Verify(VerifyToken),
}

enum Out {
    Connected(Result<ChainStatus, String>),
    Minted(ArtMinted),
    MintFailed(MintFailed),
    Verified(TokenVerified),
}

#[derive(Resource)]
struct ChainWorker {
    jobs: Option<Sender<Job>>,
    out: Receiver<Out>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ChainWorker {
    fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }
}

impl Drop for ChainWorker {
    /// Closes the job queue and waits for the worker, so a local chain it started is stopped
    /// (and its state written) before the app goes away.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Plugin for ChainPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        let (jobs, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (out_tx, out) = crossbeam_channel::unbounded::<Out>();
        let config = self.config.clone();
        let model = self.art_model.clone();
        // Loaded once, here: the wallet is known from the configuration alone, so games can
        // paint for it at once; the worker connects with the same configuration.
        let config = config.map_or_else(
            || ChainConfig::load(kiln_nftgen::chain::default_data_dir()),
            Ok,
        );
        let wallet = config.as_ref().ok().and_then(|c| c.signer_address().ok());
        let spawned = std::thread::Builder::new()
            .name("kiln-chain".into())
            .spawn(move || {
                // Verification re-runs recipes here: background work, like painting.
                crate::WorkerPriority::Background.apply_to_this_thread();
                worker(config, &model, &job_rx, &out_tx);
            });
        let (status, thread) = match spawned {
            Ok(t) => (ChainStatus::Connecting, Some(t)),
            Err(e) => (
                ChainStatus::Unavailable(format!("cannot start the chain worker: {e}")),
                None,
            ),
        };
        app.add_message::<MintArt>()
            .add_message::<ArtMinted>()
            .add_message::<MintFailed>()
            .add_message::<VerifyToken>()
            .add_message::<TokenVerified>()
            .insert_resource(status)
            .insert_resource(crate::KilnWallet(wallet))
            .insert_resource(ChainWorker {
                jobs: Some(jobs),
                out,
                thread,
            })
            .add_systems(PreUpdate, receive_chain.in_set(KilnSystems::Receive))
            .add_systems(PostUpdate, dispatch_chain.in_set(KilnSystems::Dispatch));
    }
}

fn worker(
    config: Result<ChainConfig, ChainError>,
    model: &std::path::Path,
    jobs: &Receiver<Job>,
    out: &Sender<Out>,
) {
    let client = config
        .and_then(|c| ChainClient::open(&c))
        .map_err(|e| e.to_string());
    let status = client.as_ref().map(|c| ChainStatus::Ready {
        account: c.account(),
        contract: c.contract(),
        chain_id: c.chain_id(),
    });
    if out
        .send(Out::Connected(status.map_err(Clone::clone)))
        .is_err()
    {
        return;
    }
    for job in jobs.iter() {
        let sent = match (job, &client) {
            (Job::Mint(m), Ok(c)) => match c.mint(&m.art) {
                Ok(r) => out.send(Out::Minted(ArtMinted {
                    requester: m.requester,
                    token_id: r.token_id,
                    tx: r.tx,
                    block: r.block,
                    png: c.store().png_path(m.art.content_hash),
                })),
                Err(e) => out.send(Out::MintFailed(MintFailed {
                    requester: m.requester,
                    reason: e.to_string(),
                })),
            },
            (Job::Mint(m), Err(e)) => out.send(Out::MintFailed(MintFailed {
                requester: m.requester,
                reason: format!("no chain: {e}"),
            })),
            (Job::Verify(v), client) => {
                let result = client
                    .as_ref()
                    .map_err(|e| format!("no chain: {e}"))
                    .and_then(|c| {
                        kiln_nftgen::chain::verify(c, v.token_id, None, model)
                            .map_err(|e| e.to_string())
                    });
                out.send(Out::Verified(TokenVerified {
                    requester: v.requester,
                    token_id: v.token_id,
                    verdict: result
                        .as_ref()
                        .map(|r| r.verdict.clone())
                        .map_err(Clone::clone),
                    report: result.ok().map(Box::new),
                }))
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn dispatch_chain(
    mut mints: MessageReader<MintArt>,
    mut verifies: MessageReader<VerifyToken>,
    worker: Res<ChainWorker>,
    mut failed: MessageWriter<MintFailed>,
) {
    for m in mints.read() {
        if !worker.send(Job::Mint(m.clone())) {
            failed.write(MintFailed {
                requester: m.requester,
                reason: "the chain worker has stopped".into(),
            });
        }
    }
    for v in verifies.read() {
        if !worker.send(Job::Verify(*v)) {
            warn!("the chain worker has stopped; cannot verify {}", v.token_id);
        }
    }
}

fn receive_chain(
    worker: Res<ChainWorker>,
    mut status: ResMut<ChainStatus>,
    mut minted: MessageWriter<ArtMinted>,
    mut failed: MessageWriter<MintFailed>,
    mut verified: MessageWriter<TokenVerified>,
) {
    for out in worker.out.try_iter() {
        match out {
            Out::Connected(Ok(s)) => {
                info!("chain ready: {s:?}");
                *status = s;
            }
            Out::Connected(Err(e)) => {
                warn!("chain unavailable, mints will fail: {e}");
                *status = ChainStatus::Unavailable(e);
            }
            Out::Minted(m) => {
                minted.write(m);
            }
            Out::MintFailed(f) => {
                failed.write(f);
            }
            Out::Verified(v) => {
                verified.write(v);
            }
        }
    }
}
