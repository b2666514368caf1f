//! Typed errors of the chain client.

use std::path::PathBuf;
use std::time::Duration;

use crate::{CreatorAddress, TokenId, TxHash};

/// Why the contract refused a mint (decoded from its revert data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintRejection {
    /// The sender is not the creator the recipe names.
    #[error("only the recipe's creator {creator} may mint it (sender {sender})")]
    NotCreator {
        /// The creator in the recipe.
        creator: CreatorAddress,
        /// Who tried.
        sender: CreatorAddress,
    },
    /// The recipe is already minted.
    #[error("token {token_id} is already minted")]
    AlreadyMinted {
        /// The token.
        token_id: TokenId,
    },
    /// The recipe bytes are not canonical recipe bytes v1 (the contract stopped decoding them
    /// at `offset`).
    #[error("the contract refused the recipe bytes as malformed (at byte {offset})")]
    RecipeMalformed {
        /// Where decoding stopped.
        offset: u64,
    },
    /// The content hash is zero.
    #[error("the content hash is invalid")]
    ContentHashInvalid,
    /// No commitment matches the reveal (the commitment was not mined, or names another
    /// sender, recipe, content hash or salt).
    #[error("no commitment matches this mint")]
    CommitmentMissing,
    /// The commitment is too recent: the reveal may be mined from `reveal_from` on.
    #[error("the commitment is too recent: the mint may be mined from block {reveal_from} on")]
    CommitmentTooRecent {
        /// The first block the reveal is accepted in.
        reveal_from: u64,
    },
    /// The commitment expired (after `last_block`); a new one is needed.
    #[error("the commitment expired after block {last_block}")]
    CommitmentExpired {
        /// The last block the reveal was accepted in.
        last_block: u64,
    },
    /// The recipe's pipeline does not paint its creator into the picture (`kiln-pipeline/1`,
    /// or one the contract does not know): anyone could mint it naming themselves.
    #[error(
        "the contract mints only recipes that paint their creator into the picture; `{pipeline}` does not"
    )]
    PipelineNotAllowed {
        /// The recipe's pipeline.
        pipeline: String,
    },
    /// The creator minted this picture already, as token `token_id` (another recipe with the
    /// same pixels: one picture is one token).
    #[error("this creator minted this picture already, as token {token_id}")]
    ContentAlreadyMinted {
        /// The token minted earlier.
        token_id: TokenId,
    },
    /// Reverted for another reason (the decoded error or the raw revert data).
    #[error("the contract reverted: {0}")]
    Other(String),
}

/// A chain operation failed. Nothing on disk is lost: pending mints stay in the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The configuration is invalid (names the field).
    #[error("chain config: {0}")]
    Config(String),
    /// anvil is not installed where Kiln looks for it.
    #[error("anvil not found (looked in {looked}); run `cargo xtask setup` or set KILN_ANVIL")]
    AnvilNotFound {
        /// The places looked in.
        looked: String,
    },
    /// anvil did not start or answer.
    #[error("local chain: {0}")]
    LocalChain(String),
    /// The RPC endpoint failed (connection refused, HTTP error, bad response).
    #[error("RPC {url}: {detail}")]
    Rpc {
        /// The endpoint.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The node answered a transaction with a refusal (no funds, a nonce or fee it will not
    /// take): this transaction will not be mined.
    #[error("RPC {url} refused the transaction: {detail}")]
    Refused {
        /// The endpoint.
        url: String,
        /// The node's words.
        detail: String,
    },
    /// A request or a receipt wait took longer than its limit.
    #[error("RPC {url}: no answer to {what} within {after:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// What was waited for.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// The contract refused the mint.
    #[error("mint refused: {0}")]
    Rejected(MintRejection),
    /// A mint failed for good: its commitment or its reveal reverted on chain, or the node
    /// refused a transaction (the journal keeps the entry and the reason).
    #[error("the mint of token {token} failed: {reason}")]
    MintFailed {
        /// The token.
        token: TokenId,
        /// Why.
        reason: String,
    },
    /// Another process is taking this mint through its steps (its journal entry is locked).
    #[error("token {token} is being minted by another process")]
    MintBusy {
        /// The token.
        token: TokenId,
    },
    /// The transaction was mined but reverted.
    #[error("transaction {tx} reverted in block {block}")]
    Reverted {
        /// The transaction.
        tx: TxHash,
        /// Its block.
        block: u64,
    },
    /// The art's record names a creator other than the signing account.
    #[error("the recipe names creator {creator}, but this wallet is {signer}")]
    CreatorMismatch {
        /// The creator in the record.
        creator: CreatorAddress,
        /// The signing account.
        signer: CreatorAddress,
    },
    /// A `kiln-pipeline/2` recipe painted without a creator: its pixels depend on the creator,
    /// so attributing it now would name a recipe that paints another picture.
    #[error(
        "this {pipeline} recipe was painted without a creator, and its pixels depend on the creator: it cannot be attributed to {signer} afterwards; paint it again for this wallet (`nftgen generate --creator {signer}`, the default when a wallet is configured)"
    )]
    CreatorNotPainted {
        /// The record's pipeline.
        pipeline: String,
        /// The signing account.
        signer: CreatorAddress,
    },
    /// The art's pipeline does not paint its creator into the picture (`kiln-pipeline/1`):
    /// anyone could mint the same recipe naming themselves, so Kiln does not mint it.
    #[error(
        "{pipeline} does not paint its creator into the picture, so a token of it could not prove who made it: paint it with the integer model (kiln-pipeline/2) to mint it"
    )]
    CreatorNotBound {
        /// The record's pipeline.
        pipeline: String,
    },
    /// No contract code at the configured address.
    #[error("no contract at {address} on chain {chain_id}")]
    NoContract {
        /// The address.
        address: CreatorAddress,
        /// The chain.
        chain_id: u64,
    },
    /// The address holds an older KilnProvenance (without commit–reveal, or without the list of
    /// creator-bound pipelines and the one-token-per-picture index) or another contract.
    #[error(
        "the contract at {address} is not this version of KilnProvenance (it lacks commit–reveal or creator-bound mints): deploy a new one with `nftgen deploy`"
    )]
    OldContract {
        /// The contract.
        address: CreatorAddress,
    },
    /// The token does not exist.
    #[error("token {0} does not exist")]
    UnknownToken(TokenId),
    /// The chain's record of a token is inconsistent (its event does not match its storage).
    #[error("token {token}: {detail}")]
    BadRecord {
        /// The token.
        token: TokenId,
        /// What did not match.
        detail: String,
    },
    /// A journal entry holds bytes that do not decode (it was edited or damaged).
    #[error("mint journal entry {token}: {detail}")]
    BadJournal {
        /// The token.
        token: TokenId,
        /// What does not decode.
        detail: String,
    },
    /// A file (journal, state, store) could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Storing the art failed.
    #[error(transparent)]
    Store(#[from] crate::provenance::store::StoreError),
    /// The GPU asked for to re-run a recipe could not be used.
    #[error(transparent)]
    Gpu(#[from] crate::GpuError),
}

impl ChainError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            detail: e.to_string(),
        }
    }
}

impl From<MintRejection> for ChainError {
    fn from(r: MintRejection) -> Self {
        Self::Rejected(r)
    }
}
