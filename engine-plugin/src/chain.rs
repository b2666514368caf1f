//! Minting and verification on a chain worker thread (feature `chain`).

use std::path::PathBuf;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use kiln_nftgen::chain::{ChainClient, ChainConfig, ChainError, Verdict, Verification};
use kiln_nftgen::{CreatorAddress, GeneratedArt, TokenId, TxHash};

use crate::worker::{Worker, catch};
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
    /// How the chain worker (which re-runs recipes to verify them) shares the CPU with the game.
    pub priority: crate::WorkerPriority,
}

impl Default for ChainPlugin {
    fn default() -> Self {
        Self {
            config: None,
            art_model: kiln_nftgen::default_model_path(),
            priority: crate::WorkerPriority::default(),
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

/// The chain worker. Dropping it closes the job queue and waits for the worker (up to
/// [`crate::SHUTDOWN_DEADLINE`]), so a local chain it started is stopped (and its state
/// written) before the app goes away.
#[derive(Resource)]
struct ChainWorker {
    worker: Option<Worker<Job>>,
    out: Receiver<Out>,
}

impl ChainWorker {
    fn send(&self, job: Job) -> bool {
        self.worker.as_ref().is_some_and(|w| w.send(job))
    }
}

impl Plugin for ChainPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
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
        let crashed = out_tx.clone();
        let spawned = Worker::spawn(
            "chain",
            self.priority,
            move |job_rx: Receiver<Job>| worker(config, &model, &job_rx, &out_tx),
            move |message| {
                let _ = crashed.send(Out::Connected(Err(format!(
                    "the chain worker stopped: {message}"
                ))));
            },
        );
        let (status, worker) = match spawned {
            Ok(w) => (ChainStatus::Connecting, Some(w)),
            Err(e) => (ChainStatus::Unavailable(e), None),
        };
        app.add_message::<MintArt>()
            .add_message::<ArtMinted>()
            .add_message::<MintFailed>()
            .add_message::<VerifyToken>()
            .add_message::<TokenVerified>()
            .insert_resource(status)
            .insert_resource(crate::KilnWallet(wallet))
            .insert_resource(ChainWorker { worker, out })
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
    // Connects (starting or joining the local chain) and tells the game where it stands.
    let connect = |config: &Result<ChainConfig, ChainError>| {
        let client = match config {
            Ok(c) => ChainClient::open(c).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let status = client.as_ref().map(|c| ChainStatus::Ready {
            account: c.account(),
            contract: c.contract(),
            chain_id: c.chain_id(),
        });
        let sent = out.send(Out::Connected(status.map_err(Clone::clone)));
        (client, sent.is_ok())
    };
    let (mut client, listening) = connect(&config);
    if !listening {
        return;
    }
    for job in jobs.iter() {
        let mut answer = attempt(&job, &client, model);
        // The local node stopped under us (Ctrl-C where it was started, a crash): join or
        // start it again, once, and retry the job; if that fails the status says why.
        if answer.node_lost {
            warn!("the local chain stopped; starting or joining it again");
            drop(client);
            let listening;
            (client, listening) = connect(&config);
            if !listening {
                return;
            }
            // Opening settles the journal: a mint the lost node had taken may be done.
            let settled = match (&job, &client) {
                (Job::Mint(m), Ok(c)) => journaled_mint(c, m),
                _ => None,
            };
            if let Some(done) = settled {
                answer = done;
            } else if client.is_ok() {
                answer = attempt(&job, &client, model);
            }
        }
        if out.send(answer.out).is_err() {
            return;
        }
    }
}

/// `m` as the journal has it confirmed, if it does.
fn journaled_mint(c: &ChainClient, m: &MintArt) -> Option<Attempt> {
    let token = c.attribute(&m.art).ok()?.recipe_hash;
    let entry = c
        .journal()
        .ok()?
        .into_iter()
        .find(|e| e.token_id.0 == token.0)?;
    let receipt = entry.receipt()?;
    Some(Attempt {
        out: Out::Minted(ArtMinted {
            requester: m.requester,
            token_id: receipt.token_id,
            tx: receipt.tx,
            block: receipt.block,
            png: c.store().png_path(m.art.content_hash),
        }),
        node_lost: false,
    })
}

/// A job's outcome, and whether it failed because the local node is gone.
struct Attempt {
    out: Out,
    node_lost: bool,
}

/// Runs `job` once. A job that panics fails alone, with the panic's message; the worker goes on.
fn attempt(job: &Job, client: &Result<ChainClient, String>, model: &std::path::Path) -> Attempt {
    let who = match job {
        Job::Mint(m) => (m.requester, None),
        Job::Verify(v) => (v.requester, Some(v.token_id)),
    };
    catch(|| run_job(job, client, model)).unwrap_or_else(|panic| {
        let reason = format!("the chain worker panicked: {panic}");
        let out = match who {
            (requester, None) => Out::MintFailed(MintFailed { requester, reason }),
            (requester, Some(token_id)) => Out::Verified(TokenVerified {
                requester,
                token_id,
                verdict: Err(reason),
                report: None,
            }),
        };
        Attempt {
            out,
            node_lost: false,
        }
    })
}

/// Whether `e` is the local node gone: a request without an answer, and the node no longer
/// answers on its port.
fn node_lost(client: &ChainClient, e: &ChainError) -> bool {
    matches!(e, ChainError::Rpc { .. } | ChainError::Timeout { .. })
        && client.local_chain().is_some_and(|l| !l.is_running())
}

fn run_job(job: &Job, client: &Result<ChainClient, String>, model: &std::path::Path) -> Attempt {
    let done = |out| Attempt {
        out,
        node_lost: false,
    };
    match (job, client) {
        (Job::Mint(m), Ok(c)) => match c.mint(&m.art) {
            Ok(r) => done(Out::Minted(ArtMinted {
                requester: m.requester,
                token_id: r.token_id,
                tx: r.tx,
                block: r.block,
                png: c.store().png_path(m.art.content_hash),
            })),
            Err(e) => Attempt {
                node_lost: node_lost(c, &e),
                out: Out::MintFailed(MintFailed {
                    requester: m.requester,
                    reason: e.to_string(),
                }),
            },
        },
        (Job::Mint(m), Err(e)) => done(Out::MintFailed(MintFailed {
            requester: m.requester,
            reason: format!("no chain: {e}"),
        })),
        (Job::Verify(v), client) => {
            let mut lost = false;
            let result = client
                .as_ref()
                .map_err(|e| format!("no chain: {e}"))
                .and_then(|c| {
                    kiln_nftgen::chain::verify(c, v.token_id, None, model).map_err(|e| {
                        lost = node_lost(c, &e);
                        e.to_string()
                    })
                });
            Attempt {
                node_lost: lost,
                out: Out::Verified(TokenVerified {
                    requester: v.requester,
                    token_id: v.token_id,
                    verdict: result
                        .as_ref()
                        .map(|r| r.verdict.clone())
                        .map_err(Clone::clone),
                    report: result.ok().map(Box::new),
                }),
            }
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
