//! The mint journal: every mint is written down before it is sent, and settled against the chain
//! when a client opens.

use super::*;

/// Polls of a token that shows as minted without a receipt of the mint's own transactions before
/// it is taken as minted by another transaction.
const MINTED_POLLS: u32 = 4;

/// State of a mint in the journal. A mint is two transactions: a commitment, then (at least one
/// block later) the reveal that mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MintState {
    /// The commitment is signed and (maybe) sent; no receipt seen yet.
    Committing,
    /// The commitment is mined; the reveal is signed and (maybe) sent; no receipt seen yet.
    Pending,
    /// Mined and successful.
    Confirmed,
    /// Mined and reverted, or refused by the node when sent.
    Failed,
    /// Could not be settled (the node refused to resend it and it could not be signed again,
    /// or the node failed): `reason` says why. It stops nothing else; the next client that
    /// mints tries it again.
    Unresolved,
}

/// One mint in the journal (`<data_dir>/journal/<chain id>/<token id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The token.
    pub token_id: TokenId,
    /// Where the mint stands.
    pub state: MintState,
    /// The transaction of the current step: the commitment while committing, then the reveal.
    pub tx: TxHash,
    /// That transaction signed (EIP-2718 bytes, 0x-hex), resent if the chain lost it.
    pub raw_tx: String,
    /// Its nonce.
    pub nonce: u64,
    /// Its fees (max fee, priority fee, wei per gas), the floor of a fee bump.
    #[serde(default)]
    pub fees: Option<(u128, u128)>,
    /// Earlier signatures of the current step (fee bumps, signed again): a receipt of any of
    /// them settles the step.
    #[serde(default)]
    pub replaced: Vec<TxHash>,
    /// The signing account (the creator, who receives the token).
    pub from: CreatorAddress,
    /// The canonical recipe bytes (0x-hex), to sign the mint again if its nonce went elsewhere.
    pub recipe: String,
    /// The image's content hash.
    pub content_hash: ContentHash,
    /// The commitment's salt (0x-hex, 32 bytes), revealed by the mint.
    #[serde(default)]
    pub salt: String,
    /// The commitment transaction, signed (0x-hex): sent again if the local chain lost the mint.
    #[serde(default)]
    pub commit_raw_tx: Option<String>,
    /// The commitment's transaction, once mined.
    #[serde(default)]
    pub commit_tx: Option<TxHash>,
    /// The block the commitment was mined in.
    #[serde(default)]
    pub commit_block: Option<u64>,
    /// Gas the commitment used.
    #[serde(default)]
    pub commit_gas_used: Option<u64>,
    /// The contract.
    pub contract: CreatorAddress,
    /// The reveal's block, once confirmed.
    pub block: Option<u64>,
    /// Gas the reveal used, once confirmed.
    pub gas_used: Option<u64>,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    /// The most its transactions may pay per gas (wei), fixed when the mint began (see
    /// [`ChainConfig::max_fee_per_gas`](super::ChainConfig::max_fee_per_gas)): fee bumps stop
    /// there, across restarts too.
    #[serde(default)]
    pub fee_cap: Option<u128>,
    /// Fee bumps of the current step so far (at most `max_fee_bumps`).
    #[serde(default)]
    pub fee_bumps: u32,
    /// Why the current step waits without a fee bump (its fee at the ceiling, its bumps used
    /// up, an earlier transaction of the account unmined), for the creator to read.
    #[serde(default)]
    pub waiting: Option<String>,
}

impl JournalEntry {
    /// The step an open entry is at: [`MintState::Committing`] until the commitment is mined,
    /// then [`MintState::Pending`]; settled states are their own.
    pub fn step(&self) -> MintState {
        match self.state {
            MintState::Unresolved if self.commit_block.is_some() => MintState::Pending,
            MintState::Unresolved => MintState::Committing,
            s => s,
        }
    }

    /// Whether the mint still has a step to take.
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            MintState::Committing | MintState::Pending | MintState::Unresolved
        )
    }

    fn bytes(&self, hex: &str) -> Result<Vec<u8>, ChainError> {
        alloy::hex::decode(hex).map_err(|e| ChainError::BadJournal {
            token: self.token_id,
            detail: e.to_string(),
        })
    }

    pub(super) fn recipe_bytes(&self) -> Result<Vec<u8>, ChainError> {
        self.bytes(&self.recipe)
    }

    pub(super) fn salt_word(&self) -> Result<B256, ChainError> {
        let salt = self.bytes(&self.salt)?;
        (salt.len() == 32)
            .then(|| B256::from_slice(&salt))
            .ok_or_else(|| ChainError::BadJournal {
                token: self.token_id,
                detail: "the salt is not 32 bytes".into(),
            })
    }

    pub(super) fn raw(&self) -> Result<Vec<u8>, ChainError> {
        self.bytes(&self.raw_tx)
    }

    /// Makes `signed` the transaction of the entry's new step `state`: the earlier signatures,
    /// fee bumps and the reason it waited belonged to the old step.
    pub(super) fn start_step(&mut self, state: MintState, signed: super::client::Signed) {
        self.state = state;
        self.replaced.clear();
        self.fee_bumps = 0;
        self.waiting = None;
        signed.put(self);
    }

    /// The receipt of a confirmed mint.
    pub fn receipt(&self) -> Option<MintReceipt> {
        (self.state == MintState::Confirmed).then(|| MintReceipt {
            token_id: self.token_id,
            tx: self.tx,
            block: self.block.unwrap_or(0),
            gas_used: self.gas_used.unwrap_or(0),
            commit_tx: self.commit_tx,
            commit_gas_used: self.commit_gas_used,
        })
    }
}

/// A mint that is signed, journaled and broadcast, waiting for its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMint {
    /// The token.
    pub token_id: TokenId,
    /// The transaction.
    pub tx: TxHash,
}

/// How [`ChainClient::open`] settled a journal entry left from before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The token.
    pub token_id: TokenId,
    /// Its state now.
    pub state: MintState,
    /// What was done.
    pub action: &'static str,
    /// Why it could not be settled, for [`MintState::Unresolved`].
    pub reason: Option<String>,
}

/// `wei` per gas in gwei, for people (three decimals).
fn gwei(wei: u128) -> String {
    format!("{:.3}", wei as f64 / 1e9)
}

/// Whether a node's refusal of a resent transaction says it has it already. Nodes word it
/// differently: geth and anvil "already known", Nethermind "already imported", Hardhat
/// "Known transaction".
fn already_known(detail: &str) -> bool {
    let detail = detail.to_lowercase();
    ["already known", "already imported", "known transaction"]
        .iter()
        .any(|s| detail.contains(s))
}

/// An exclusive lock on one mint (`<journal>/<token>.lock`): the process holding it is the one
/// taking the mint through its steps; others leave it alone.
pub(super) type MintLock = nix::fcntl::Flock<std::fs::File>;

/// Opens `path` (created if missing) and locks it as `how` says, waiting for the lock.
pub(super) fn lock_file(
    path: &Path,
    how: nix::fcntl::FlockArg,
) -> Result<nix::fcntl::Flock<std::fs::File>, ChainError> {
    try_lock_file(path, how)?.ok_or_else(|| ChainError::io(path, nix::errno::Errno::EWOULDBLOCK))
}

/// [`lock_file`]; `None` when `how` does not wait (`…Nonblock`) and another holds the lock.
pub(super) fn try_lock_file(
    path: &Path,
    how: nix::fcntl::FlockArg,
) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, ChainError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| ChainError::io(path, e))?;
    match nix::fcntl::Flock::lock(file, how) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(ChainError::io(path, e)),
    }
}

impl ChainClient {
    /// Takes the lock of `token`'s mint for this client (kept until the mint settles or the
    /// client closes). `false` when another process holds it.
    pub(super) fn claim_mint(&self, token: TokenId) -> Result<bool, ChainError> {
        let mut locks = self.mint_locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.contains_key(&token) {
            return Ok(true);
        }
        let path = self.journal_dir.join(format!("{token}.lock"));
        let lock = try_lock_file(&path, nix::fcntl::FlockArg::LockExclusiveNonblock)?;
        Ok(lock.map(|lock| locks.insert(token, lock)).is_some())
    }

    /// Gives up the lock of a settled mint.
    pub(super) fn release_mint(&self, token: TokenId) {
        let mut locks = self.mint_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(&token);
    }

    /// The journal's entries, oldest first. An unreadable entry is skipped with a warning (and
    /// left on disk for a person to look at), so one damaged file cannot stop the rest.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, ChainError> {
        let mut entries = Vec::new();
        let dir = &self.journal_dir;
        for e in std::fs::read_dir(dir).map_err(|e| ChainError::io(dir, e))? {
            let path = e.map_err(|e| ChainError::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let entry = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<JournalEntry>(&b).map_err(|e| e.to_string())
                    });
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable mint journal entry");
                        continue;
                    }
                };
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                entries.push((modified, entry));
            }
        }
        entries.sort_by_key(|(m, e)| (*m, e.token_id));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    pub(super) fn journal_path(&self, token: TokenId) -> PathBuf {
        self.journal_dir.join(format!("{token}.json"))
    }

    pub(super) fn write_journal(&self, entry: &JournalEntry) -> Result<(), ChainError> {
        let bytes = serde_json::to_vec_pretty(entry).expect("serialises");
        let path = self.journal_path(entry.token_id);
        write_atomic(&path, &bytes).map_err(|e| ChainError::io(&path, e))?;
        Ok(())
    }

    /// Takes `e` as far as it goes before `deadline`: waits for the current step's receipt
    /// (sending it again, signing it again or bumping its fee as needed), then from a mined
    /// commitment signs, journals and sends the reveal, and from a mined reveal waits for the
    /// configured confirmations. Every step is journaled before it is sent. Returns the entry
    /// as it stands (settled, or an error with the entry left open on disk) and what was done.
    pub(super) fn advance(
        &self,
        mut e: JournalEntry,
        deadline: Instant,
    ) -> Result<(JournalEntry, &'static str), ChainError> {
        let mut action = "receipt found";
        loop {
            let reveal = match e.step() {
                MintState::Committing => false,
                MintState::Pending => true,
                _ => return Ok((e, action)),
            };
            let Some(receipt) = self.await_step(&mut e, deadline, &mut action)? else {
                e.state = MintState::Confirmed;
                e.reason = None;
                self.write_journal(&e)?;
                return Ok((e, "token found on chain"));
            };
            let block = receipt.block_number.unwrap_or(0);
            if !receipt.status() {
                e.state = MintState::Failed;
                e.block = Some(block);
                e.reason = Some(format!(
                    "the {} reverted on chain (tx {})",
                    if reveal { "mint" } else { "commitment" },
                    tx_hash(receipt.transaction_hash)
                ));
                self.write_journal(&e)?;
                return Ok((e, action));
            }
            if reveal {
                if !self.await_confirmations(&receipt, deadline)? {
                    continue;
                }
                e.state = MintState::Confirmed;
                e.tx = tx_hash(receipt.transaction_hash);
                e.block = Some(block);
                e.gas_used = Some(receipt.gas_used);
                e.reason = None;
                self.write_journal(&e)?;
                tracing::info!(token = %e.token_id, block, gas = receipt.gas_used, "mint confirmed");
                return Ok((e, action));
            }
            e.commit_tx = Some(tx_hash(receipt.transaction_hash));
            e.commit_block = Some(block);
            e.commit_gas_used = Some(receipt.gas_used);
            self.start_reveal(&mut e, deadline)?;
        }
    }

    /// Signs the reveal of a mined commitment, journals it and sends it. A commitment the
    /// contract no longer has (expired after `MAX_COMMITMENT_AGE` blocks, or taken out by a
    /// reorganisation) is made again with a fresh salt instead.
    fn start_reveal(&self, e: &mut JournalEntry, deadline: Instant) -> Result<(), ChainError> {
        let _lock = self.account_lock()?;
        let signed = match self.sign_step(e, MintState::Pending, None, None, deadline) {
            Err(ChainError::Rejected(
                why @ (MintRejection::CommitmentExpired { .. } | MintRejection::CommitmentMissing),
            )) => {
                tracing::warn!(token = %e.token_id, %why, "the commitment is gone; committing again with a fresh salt");
                return self.recommit(e, deadline);
            }
            other => other?,
        };
        e.start_step(MintState::Pending, signed);
        self.write_journal(e)?;
        tracing::info!(token = %e.token_id, tx = %e.tx, "commitment mined; reveal signed and journaled; sending");
        self.send_new(e)
    }

    /// Starts `e` again from a new commitment with a fresh salt: signed, then journaled (salt
    /// and transaction in one write) before it is sent, so a crash leaves either the old state
    /// or the new one. The caller holds the account lock.
    fn recommit(&self, e: &mut JournalEntry, deadline: Instant) -> Result<(), ChainError> {
        e.salt = self.fresh_salt()?;
        let signed = self.sign_step(e, MintState::Committing, None, None, deadline)?;
        e.commit_raw_tx = Some(alloy::hex::encode_prefixed(&signed.raw));
        e.commit_tx = None;
        e.commit_block = None;
        e.commit_gas_used = None;
        e.start_step(MintState::Committing, signed);
        self.write_journal(e)?;
        tracing::info!(token = %e.token_id, tx = %e.tx, "new commitment signed and journaled; sending");
        self.send_new(e)
    }

    /// Sends the freshly signed step of `e`. A refusal (no funds, a fee or nonce the node will
    /// not take) settles it — this transaction will never be mined — unless the token exists;
    /// a timeout leaves it open (the node may have it).
    pub(super) fn send_new(&self, e: &mut JournalEntry) -> Result<(), ChainError> {
        let err = match self.send_raw(&e.raw()?) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // Only the node's own refusal settles it: a request that got no answer may have
        // delivered the transaction, which may mint.
        if let ChainError::Refused { detail, .. } = &err {
            e.state = if self.exists(e.token_id).unwrap_or(false) {
                MintState::Confirmed
            } else {
                MintState::Failed
            };
            e.reason = Some(format!("the node refused the transaction: {detail}"));
            self.write_journal(e)?;
        }
        Err(err)
    }

    /// Waits for a receipt of the current step of `e` (its transaction or an earlier signature
    /// of it); `None` when the token turned up minted. Sends it again when the node does not
    /// know it, signs it again when the node refuses the old bytes, bumps its fees when it sits
    /// unmined on a remote chain.
    fn await_step(
        &self,
        e: &mut JournalEntry,
        deadline: Instant,
        action: &mut &'static str,
    ) -> Result<Option<TransactionReceipt>, ChainError> {
        let mut checked = false;
        let mut minted_polls = 0;
        let mut bump_at = Instant::now() + self.fee_bump_after;
        loop {
            // Asked before the receipts, so a token minted by one of them has its receipt found.
            let minted = e.step() == MintState::Pending && self.exists(e.token_id)?;
            for h in std::iter::once(e.tx).chain(e.replaced.iter().copied()) {
                if let Some(r) = self.rpc(
                    "eth_getTransactionReceipt",
                    self.provider.get_transaction_receipt(B256::from(h.0)),
                )? {
                    return Ok(Some(r));
                }
            }
            if minted {
                // A node may show a block's state a moment before it serves the block's
                // receipts (anvil did, in CI): the token is taken as minted elsewhere only when
                // no receipt of ours turns up over a few polls.
                minted_polls += 1;
                if minted_polls >= MINTED_POLLS {
                    return Ok(None);
                }
                std::thread::sleep(self.poll_interval());
                continue;
            }
            if !checked {
                checked = true;
                let known = self
                    .rpc(
                        "eth_getTransactionByHash",
                        self.provider.get_transaction_by_hash(B256::from(e.tx.0)),
                    )?
                    .is_some();
                if !known {
                    *action = self.send_again(e, deadline)?;
                    continue;
                }
            } else if self.local.is_none() && Instant::now() >= bump_at {
                self.bump_fees(e, deadline)?;
                *action = "fee bumped";
                bump_at = Instant::now() + self.fee_bump_after;
            }
            self.before(deadline, || match &e.waiting {
                Some(why) => format!("the receipt of {} ({why})", e.tx),
                None => format!("the receipt of {}", e.tx),
            })?;
            std::thread::sleep(self.poll_interval());
        }
    }

    /// The chain does not know the step's transaction: sends the same bytes again, or, when the
    /// node refuses them (their nonce went elsewhere, their fee is below the base fee now, …)
    /// and this client holds the key, signs the step again with a fresh nonce and fees.
    fn send_again(
        &self,
        e: &mut JournalEntry,
        deadline: Instant,
    ) -> Result<&'static str, ChainError> {
        tracing::warn!(token = %e.token_id, tx = %e.tx, "the chain does not know this transaction; sending it again");
        match self.send_raw(&e.raw()?) {
            Ok(()) => Ok("sent again"),
            Err(ChainError::Refused { detail, .. }) if already_known(&detail) => Ok("sent again"),
            Err(ChainError::Refused { detail, .. }) if e.from == self.account() => {
                tracing::warn!(token = %e.token_id, %detail, "the node refused the old transaction; signing it again");
                let _lock = self.account_lock()?;
                let signed = self.sign_step(e, e.step(), None, None, deadline)?;
                e.replaced.push(e.tx);
                signed.put(e);
                e.state = e.step();
                self.write_journal(e)?;
                self.send_raw(&e.raw()?)?;
                Ok("signed again")
            }
            Err(err) => Err(err),
        }
    }

    /// Signs the step again at the same nonce with higher fees (at least 1/8 above the old,
    /// which nodes require of a replacement), journals and sends it. A refusal is left for the
    /// next receipt check: the old transaction may just have been mined.
    ///
    /// Bounded: never above the mint's fee ceiling, at most `max_fee_bumps` times a step, and
    /// never while an earlier transaction of the account is unmined (a higher fee cannot move
    /// a transaction that waits for a lower nonce). When it does not bump it says why
    /// ([`JournalEntry::waiting`]).
    fn bump_fees(&self, e: &mut JournalEntry, deadline: Instant) -> Result<(), ChainError> {
        if e.from != self.account() {
            return self.wait_because(e, "signed by another account: only it can bump the fee");
        }
        let cap = match e.fee_cap {
            Some(cap) => cap,
            None => {
                // Journaled before fee ceilings: the ceiling starts from the chain as it is now.
                let cap = self.fee_cap()?.max(e.fees.map_or(0, |f| f.0));
                e.fee_cap = Some(cap);
                cap
            }
        };
        if e.fee_bumps >= self.max_fee_bumps {
            let why = format!(
                "not bumped again: {} fee bumps made, the most allowed (max_fee_bumps)",
                e.fee_bumps
            );
            return self.wait_because(e, &why);
        }
        let (max, tip) = e.fees.unwrap_or((0, 0));
        let floor = (max + max / 8 + 1, tip + tip / 8 + 1);
        if floor.0 > cap {
            let why = format!(
                "not bumped: its fee is at the ceiling of {} gwei per gas (max_fee_gwei)",
                gwei(cap)
            );
            return self.wait_because(e, &why);
        }
        let mined = self.rpc(
            "eth_getTransactionCount",
            self.provider.get_transaction_count(self.account).latest(),
        )?;
        if e.nonce > mined {
            let why = format!(
                "not bumped: it has nonce {} and the account's next is {mined}, so an earlier transaction of this account waits unmined; a higher fee cannot help until it is",
                e.nonce
            );
            return self.wait_because(e, &why);
        }
        let _lock = self.account_lock()?;
        let signed = match self.sign_step(e, e.step(), Some(e.nonce), Some(floor), deadline) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(token = %e.token_id, error = %err, "cannot bump the fee now");
                return Ok(());
            }
        };
        tracing::warn!(token = %e.token_id, old = %e.tx, new = %tx_hash(signed.hash), max_fee_gwei = %gwei(signed.fees.0), "the transaction sits unmined; bumping its fee");
        e.replaced.push(e.tx);
        signed.put(e);
        e.fee_bumps += 1;
        e.waiting = None;
        self.write_journal(e)?;
        if let Err(err) = self.send_raw(&e.raw()?) {
            tracing::warn!(token = %e.token_id, error = %err, "the node refused the fee bump");
        }
        Ok(())
    }

    /// Records why the step of `e` waits without a fee bump (once per reason: journaled and
    /// logged when it changes).
    fn wait_because(&self, e: &mut JournalEntry, why: &str) -> Result<(), ChainError> {
        if e.waiting.as_deref() != Some(why) {
            tracing::warn!(token = %e.token_id, tx = %e.tx, "the mint waits: {why}");
            e.waiting = Some(why.to_string());
            self.write_journal(e)?;
        }
        Ok(())
    }

    /// Waits until `receipt`'s block has the configured confirmations, then checks that the
    /// transaction is still in that block; false when a reorganisation took it out.
    fn await_confirmations(
        &self,
        receipt: &TransactionReceipt,
        deadline: Instant,
    ) -> Result<bool, ChainError> {
        if self.confirmations <= 1 {
            return Ok(true);
        }
        let block = receipt.block_number.unwrap_or(0);
        loop {
            let head = self.rpc("eth_blockNumber", self.provider.get_block_number())?;
            if head + 1 >= block + self.confirmations {
                break;
            }
            self.before(deadline, || {
                format!("{} confirmations of block {block}", self.confirmations)
            })?;
            std::thread::sleep(self.poll_interval());
        }
        let now = self.rpc(
            "eth_getTransactionReceipt",
            self.provider
                .get_transaction_receipt(receipt.transaction_hash),
        )?;
        let kept = now.is_some_and(|r| r.block_hash == receipt.block_hash && r.status());
        if !kept {
            tracing::warn!(tx = %receipt.transaction_hash, block, "a reorganisation took the mint out of its block; waiting for it again");
        }
        Ok(kept)
    }

    /// Settles the journal against the chain: every open mint is taken as far as it goes
    /// ([`advance`](Self::advance)); on the local chain, a confirmed mint the chain lost (a
    /// crash before anvil saved its state) is committed and revealed again from its journaled
    /// commitment. An entry that cannot be settled is marked [`MintState::Unresolved`] with the
    /// reason and never stops the others, nor the client. All of it takes at most the receipt
    /// timeout; what is left waits for the next run.
    pub(super) fn resolve_journal(&self) -> Result<Vec<Resolution>, ChainError> {
        let mut out = Vec::new();
        let mut entries = self.journal()?;
        // Replays must go in nonce order per account, or later ones wait behind a gap.
        entries.sort_by_key(|e| (e.from, e.nonce));
        let deadline = Instant::now() + self.receipt_timeout;
        for entry in entries {
            if entry.contract != creator(self.contract) {
                continue;
            }
            let check_confirmed = self.local.is_some() && entry.state == MintState::Confirmed;
            if !entry.is_open() && !check_confirmed {
                continue;
            }
            if Instant::now() >= deadline {
                tracing::warn!(token = %entry.token_id, "journal: out of time; left for the next run");
                continue;
            }
            if !self.claim_mint(entry.token_id)? {
                tracing::info!(token = %entry.token_id, "journal: another process is taking this mint through; leaving it");
                continue;
            }
            let resolved = self.resolve_entry(&entry, deadline);
            self.release_mint(entry.token_id);
            match resolved {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(token = %entry.token_id, %reason, "journal: this mint cannot be settled now");
                    let mut marked = self.read_entry(entry.token_id).unwrap_or(entry.clone());
                    marked.state = MintState::Unresolved;
                    marked.reason = Some(reason);
                    self.write_journal(&marked)?;
                    out.push(Resolution {
                        token_id: entry.token_id,
                        state: MintState::Unresolved,
                        action: "could not be settled",
                        reason: marked.reason,
                    });
                }
            }
        }
        for r in &out {
            tracing::info!(token = %r.token_id, state = ?r.state, action = r.action, "journal resolved");
        }
        Ok(out)
    }

    /// Settles one journal entry (see [`resolve_journal`](Self::resolve_journal)).
    fn resolve_entry(
        &self,
        entry: &JournalEntry,
        deadline: Instant,
    ) -> Result<Option<Resolution>, ChainError> {
        let mut entry = entry.clone();
        if entry.state == MintState::Confirmed {
            if self.exists(entry.token_id)? {
                return Ok(None);
            }
            let Some(raw) = entry.commit_raw_tx.clone() else {
                return Err(ChainError::BadJournal {
                    token: entry.token_id,
                    detail: "the local chain lost this mint and its commitment was not journaled"
                        .into(),
                });
            };
            tracing::warn!(token = %entry.token_id, "the local chain lost this mint; committing and revealing it again");
            entry.state = MintState::Committing;
            entry.tx = entry.commit_tx.unwrap_or(entry.tx);
            entry.raw_tx = raw;
            entry.replaced.clear();
            entry.commit_block = None;
            self.write_journal(&entry)?;
        }
        let (settled, action) = self.advance(entry, deadline)?;
        Ok(Some(Resolution {
            token_id: settled.token_id,
            state: settled.state,
            action,
            reason: settled.reason,
        }))
    }

    /// Holds this account's signing lock on this chain (`<journal>/<account>.lock`) until
    /// dropped: one process at a time takes a nonce, journals and sends, so two processes
    /// minting with one key never sign two transactions with one nonce.
    pub(super) fn account_lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, ChainError> {
        let path = self.journal_dir.join(format!("{}.lock", self.account()));
        lock_file(&path, nix::fcntl::FlockArg::LockExclusive)
    }

    /// How often to poll a node: often on the local chain (it mines at once), less elsewhere.
    pub(super) fn poll_interval(&self) -> Duration {
        if self.local.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(500)
        }
    }

    /// The journal entry of `token`, if one is readable.
    pub(super) fn read_entry(&self, token: TokenId) -> Option<JournalEntry> {
        let bytes = std::fs::read(self.journal_path(token)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
