//! The embedded local chain: anvil on 127.0.0.1, with its state in a file so tokens survive
//! restarts.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::ChainError;
use super::journal::{lock_file, try_lock_file};

/// Environment variable naming the anvil binary to run.
pub const ANVIL_ENV: &str = "KILN_ANVIL";
/// Chain id of the local chain.
pub const LOCAL_CHAIN_ID: u64 = 31337;

/// The anvil binary: `$KILN_ANVIL`, else the one `cargo xtask setup` installs from npm into
/// Kiln's cache with the contract tools (`~/.cache/kiln/npm/…`), else the one `kiln fetch-anvil`
/// installs there (`~/.cache/kiln/anvil/…`; the same pinned release), else `anvil` on the PATH.
pub fn find_anvil() -> Result<PathBuf, ChainError> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(ANVIL_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(p);
    }
    for tools in ["npm", "anvil"] {
        let npm = cache_dir()
            .join(tools)
            .join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        if npm.is_file() {
            return Ok(npm);
        }
        looked.push(npm);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("anvil");
        if p.is_file() {
            return Ok(p);
        }
    }
    looked.push("anvil on PATH".into());
    Err(ChainError::AnvilNotFound {
        looked: looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Kiln's cache directory (the rule `cargo xtask setup` uses): `$KILN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
fn cache_dir() -> PathBuf {
    std::env::var_os("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln-cache"))
}

/// What a running local chain writes beside its state, so other processes join it.
#[derive(Debug, Serialize, Deserialize)]
struct Running {
    pid: i32,
    port: u16,
}

/// A local anvil node, shared by every process (and handle) that uses one data directory.
///
/// Each handle holds a lease on the node (a shared `flock` on `users.lock`, which the kernel
/// drops when its process ends, however it ends). Starting and joining happen under an
/// exclusive `node.lock`, so two processes never start two nodes on one state file. Beside each
/// node runs a small watchdog (`sh` + util-linux `flock`) that waits until no lease is held —
/// the last user left, or was killed — and then stops the node gracefully (SIGTERM: anvil writes
/// its state). So a node lives exactly as long as someone uses it, and none is left behind.
/// Each node writes its own log, `anvil-<start time>-<pid>.log` (the newest five are kept).
#[derive(Debug)]
pub struct LocalChain {
    dir: PathBuf,
    port: u16,
    pid: i32,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
    lease: Mutex<Option<nix::fcntl::Flock<std::fs::File>>>,
}

/// The watchdog: waits for an exclusive lock on the lease file (no user left), and holding it
/// (so nobody joins meanwhile), stops the node — only while its pid is still anvil — and waits
/// for it to exit. `$0` is the lease file, `$1` the node's pid.
const WATCHDOG: &str = r#"exec flock -x "$0" sh -c '
if grep -q anvil "/proc/$0/cmdline" 2>/dev/null; then
  kill -CONT "$0"; kill -TERM "$0"
  i=0
  while kill -0 "$0" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$0" 2>/dev/null
fi
rm -f "$(dirname "$1")/anvil.json"' "$1" "$0""#;

impl LocalChain {
    /// Starts anvil with its state in `dir` (`anvil-state.json`, dumped every second and on
    /// exit), or joins the one already running for `dir`.
    pub fn start(dir: impl AsRef<Path>) -> Result<Self, ChainError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| ChainError::io(&dir, e))?;
        let running_file = dir.join("anvil.json");
        // One process at a time starts or joins; a watchdog stopping the node holds the lease
        // file exclusively, so the lease below waits until that node is gone.
        let _starting = lock_file(&dir.join("node.lock"), nix::fcntl::FlockArg::LockExclusive)?;
        let users = dir.join("users.lock");
        let lease = lock_file(&users, nix::fcntl::FlockArg::LockShared)?;
        if let Some(r) = live_node(&running_file) {
            tracing::info!(
                port = r.port,
                pid = r.pid,
                "joining the running local chain"
            );
            return Ok(Self {
                dir,
                port: r.port,
                pid: r.pid,
                child: Mutex::new(None),
                watchdog: Mutex::new(None),
                lease: Mutex::new(Some(lease)),
            });
        }
        let anvil = find_anvil()?;
        // anvil picks the port itself (`--port 0`) and prints it: choosing a free port here and
        // handing it over would race with other processes doing the same.
        let log_path = dir.join(format!(
            "anvil-{}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            std::process::id()
        ));
        prune_logs(&dir, 4);
        let state = dir.join("anvil-state.json");
        let spawn = || {
            let log = std::fs::File::create(&log_path).map_err(|e| ChainError::io(&log_path, e))?;
            let log2 = log.try_clone().map_err(|e| ChainError::io(&log_path, e))?;
            Command::new(&anvil)
                .args(["--host", "127.0.0.1", "--port", "0"])
                .args(["--chain-id", &LOCAL_CHAIN_ID.to_string()])
                .arg("--state")
                .arg(&state)
                .args(["--state-interval", "1"])
                // Only Kiln talks to it, never a web page: no CORS headers.
                .arg("--no-cors")
                // The node needs none of Kiln's settings, least of all a signing key.
                .env_remove(super::config::PRIVATE_KEY_ENV)
                .env_remove(super::config::RPC_URL_ENV)
                .env_remove(super::config::CONTRACT_ENV)
                // Its own process group: Ctrl-C in the terminal of the process that started it
                // must not stop a node that other processes lease.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| ChainError::LocalChain(format!("cannot run {}: {e}", anvil.display())))
        };
        let mut child = spawn()?;
        let mut retried = false;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let port = log.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("Listening on 127.0.0.1:")
                    .and_then(|p| p.trim().parse::<u16>().ok())
            });
            if let Some(port) = port.filter(|p| answers(*p)) {
                let pid = child.id() as i32;
                let running = serde_json::to_vec(&Running { pid, port }).expect("serialises");
                crate::provenance::store::write_atomic(&running_file, &running)
                    .map_err(|e| ChainError::io(&running_file, e))?;
                let watchdog = Command::new("sh")
                    .args(["-c", WATCHDOG])
                    .arg(&users)
                    .arg(pid.to_string())
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| {
                        let _ = child.kill();
                        ChainError::LocalChain(format!("cannot start the node's watchdog: {e}"))
                    })?;
                tracing::info!(port, pid, dir = %dir.display(), log = %log_path.display(), "local chain started");
                return Ok(Self {
                    dir,
                    port,
                    pid,
                    child: Mutex::new(Some(child)),
                    watchdog: Mutex::new(Some(watchdog)),
                    lease: Mutex::new(Some(lease)),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Read again: the log may have grown between the read above and the exit.
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let reason = log
                    .lines()
                    .find(|l| l.to_lowercase().starts_with("error"))
                    .or_else(|| log.trim().lines().last())
                    .unwrap_or("")
                    .to_string();
                if reason.contains("anvil-state.json") && !retried {
                    // An unreadable state file (a crash mid-write, a bad copy): keep it aside and
                    // start an empty chain; the mint journal replays the signed mints into it.
                    let aside = dir.join(format!(
                        "anvil-state.json.unreadable-{}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                    ));
                    std::fs::rename(&state, &aside).map_err(|e| ChainError::io(&state, e))?;
                    tracing::warn!(%reason, kept = %aside.display(), "the local chain's state file is unreadable; starting an empty chain");
                    retried = true;
                    child = spawn()?;
                    continue;
                }
                return Err(ChainError::LocalChain(format!(
                    "anvil exited ({status}): {reason}"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChainError::LocalChain(format!(
                    "anvil did not start listening within 15 s (log: {})",
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the node running for `dir`, whichever process started it (SIGTERM, then SIGKILL
    /// after 10 s), so that its files can be removed under no live node. Returns whether one was
    /// running. A process id is only signalled while its port still answers as a node and, on
    /// Linux, while the process is anvil, so a recycled id is never hit.
    pub fn stop_running(dir: impl AsRef<Path>) -> Result<bool, ChainError> {
        let running_file = dir.as_ref().join("anvil.json");
        let Some(r) = live_node(&running_file) else {
            let _ = std::fs::remove_file(&running_file);
            return Ok(false);
        };
        tracing::info!(pid = r.pid, "stopping the local chain");
        // A child of this process stays a zombie until its owner waits: no longer running is
        // what counts.
        if !terminate(r.pid, || !alive(r.pid)) {
            tracing::warn!(pid = r.pid, "anvil did not stop within 10 s; killing it");
            let _ = kill(Pid::from_raw(r.pid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&running_file);
        Ok(true)
    }

    /// The directory holding the state file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// anvil's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the node still answers on its port (it may have been stopped: Ctrl-C in the
    /// terminal that started it, a crash, a kill). A client whose node is gone opens again
    /// ([`ChainClient::open`](super::ChainClient::open) starts or joins one).
    pub fn is_running(&self) -> bool {
        answers(self.port)
    }

    /// Whether this handle started the node (its process is the node's parent).
    pub fn owned(&self) -> bool {
        self.child.lock().is_ok_and(|c| c.is_some())
    }

    /// Kills anvil at once (SIGKILL), as a crash would: state since its last dump is lost.
    /// For tests of failure handling.
    pub fn kill(&self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Ok(mut c) = self.child.lock()
            && let Some(mut child) = c.take()
        {
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("anvil.json"));
    }

    /// Freezes anvil (SIGSTOP): it keeps its port but answers nothing until [`thaw`](Self::thaw).
    /// For tests of timeouts.
    pub fn freeze(&self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGSTOP);
    }

    /// Resumes a frozen anvil (SIGCONT).
    pub fn thaw(&self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGCONT);
    }

    /// Leaves the node: gives up this handle's lease. When it was the last one, the node's
    /// watchdog stops the node gracefully (SIGTERM; anvil writes its state); this waits for
    /// that (up to 15 s) when this handle started it, so its process leaves no zombie.
    pub fn leave(&self) {
        if let Ok(mut lease) = self.lease.lock() {
            lease.take();
        }
        let Ok(mut guard) = self.child.lock() else {
            return;
        };
        let Some(mut child) = guard.take() else {
            return;
        };
        // The watchdog holds the lease file exclusively while it stops the node; when no one
        // does after a moment, others still use the node and it lives on.
        let started = Instant::now();
        loop {
            if matches!(child.try_wait(), Ok(Some(_))) {
                tracing::info!(pid = self.pid, "local chain stopped");
                break;
            }
            let watchdog_idle = || {
                matches!(
                    try_lock_file(
                        &self.dir.join("users.lock"),
                        nix::fcntl::FlockArg::LockSharedNonblock,
                    ),
                    Ok(Some(_))
                )
            };
            let waited = started.elapsed();
            if waited > Duration::from_secs(15)
                || (waited > Duration::from_millis(500) && watchdog_idle())
            {
                tracing::info!(pid = self.pid, "left the local chain to its other users");
                // Reaped by whoever outlives it; the watchdog stops it when they leave.
                std::mem::forget(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(mut w) = self.watchdog.lock()
            && let Some(mut w) = w.take()
        {
            let _ = w.wait();
        }
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Removes all but the newest `keep` node logs in `dir`.
fn prune_logs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("anvil-") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for old in &logs[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

/// The node a running file names, if it is still that node: its process runs, is anvil (checked
/// where /proc tells), and its port answers — so a recycled process id is never taken for it.
fn live_node(running_file: &Path) -> Option<Running> {
    let r: Running = serde_json::from_slice(&std::fs::read(running_file).ok()?).ok()?;
    let is_anvil = std::fs::read(format!("/proc/{}/cmdline", r.pid))
        .map(|c| String::from_utf8_lossy(&c).contains("anvil"))
        .unwrap_or(true);
    (alive(r.pid) && is_anvil && answers(r.port)).then_some(r)
}

/// Asks anvil to stop (SIGCONT in case it is frozen, then SIGTERM; it writes its state) and
/// waits up to 10 s for `exited()`. Returns whether it did.
fn terminate(pid: i32, mut exited: impl FnMut() -> bool) -> bool {
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGCONT);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if exited() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    exited()
}

/// Whether process `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // /proc/<pid>/stat: "pid (comm) state …"; Z is a zombie, X dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => true,
    }
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}
