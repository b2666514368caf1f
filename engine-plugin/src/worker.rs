//! One worker pattern for Kiln's engine threads (art, NPC, chain).
//!
//! A worker is a named thread at its plugin's [`WorkerPriority`], fed by a job queue. A panic in
//! it becomes a typed failure message for the plugin (never a silent stall), and shutting it
//! down closes the queue and waits for the thread only up to a deadline: exiting the game never
//! hangs on a model or an RPC.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

/// How long the game's exit waits for a worker to finish its current step before leaving it.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// A worker thread and its job queue. Dropping it shuts the worker down (see the module docs).
pub(crate) struct Worker<J> {
    name: &'static str,
    jobs: Option<Sender<J>>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static> Worker<J> {
    /// Starts `body` on a thread named `kiln-<name>` at `priority`, handing it the job queue.
    /// If `body` panics, `on_panic` gets the panic's message (to send as the worker's typed
    /// failure) and the thread ends; the queue then refuses jobs.
    pub(crate) fn spawn(
        name: &'static str,
        priority: WorkerPriority,
        body: impl FnOnce(Receiver<J>) + Send + 'static,
        on_panic: impl FnOnce(String) + Send + 'static,
    ) -> Result<Self, String> {
        let (jobs, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name(format!("kiln-{name}"))
            .spawn(move || {
                priority.apply_to_this_thread();
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(rx))) {
                    let message = panic_message(panic.as_ref());
                    tracing::error!("the {name} worker panicked: {message}");
                    on_panic(message);
                }
            })
            .map_err(|e| format!("cannot start the {name} worker: {e}"))?;
        Ok(Self {
            name,
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }
}

impl<J> Worker<J> {
    /// Queues a job; `false` when the worker has stopped.
    pub(crate) fn send(&self, job: J) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Closes the job queue and waits up to `deadline` for the thread to end. Returns whether
    /// it ended in time (if not, it is left to finish on its own).
    pub(crate) fn shut_down(&mut self, deadline: Duration) -> bool {
        self.jobs = None;
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let until = Instant::now() + deadline;
        while !thread.is_finished() {
            if Instant::now() >= until {
                tracing::warn!(
                    "the {} worker did not stop within {deadline:?}; the game goes on without waiting",
                    self.name
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = thread.join();
        true
    }
}

impl<J> Drop for Worker<J> {
    fn drop(&mut self) {
        self.shut_down(SHUTDOWN_DEADLINE);
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs `f`, turning a panic into `Err` with its message (for one job of a worker that goes on).
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

/// How Kiln's worker threads (and the threads they start: llama.cpp's, candle's) share the CPU
/// with the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WorkerPriority {
    /// The lowest normal priority (nice 19 on Linux): the game's threads win the CPU whenever
    /// they want it, and the workers still get a small share of a saturated machine.
    #[default]
    Background,
    /// Run only on CPU time nothing else wants (`SCHED_IDLE` on Linux; `Background` elsewhere):
    /// the least frame-time cost, but replies and pictures stall while the game, or anything
    /// else on the machine, keeps every core busy.
    Idle,
    /// The priority of the thread that built the app.
    Normal,
}

impl WorkerPriority {
    /// Applies the priority to the calling thread; threads it starts later inherit it.
    pub(crate) fn apply_to_this_thread(self) {
        use thread_priority::{ThreadPriority, set_current_thread_priority};
        let result = match self {
            WorkerPriority::Normal => return,
            WorkerPriority::Background => set_current_thread_priority(ThreadPriority::Min),
            #[cfg(target_os = "linux")]
            WorkerPriority::Idle => {
                use thread_priority::unix::{
                    NormalThreadSchedulePolicy, ThreadSchedulePolicy,
                    set_thread_priority_and_policy, thread_native_id,
                };
                set_thread_priority_and_policy(
                    thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                )
                .or_else(|_| set_current_thread_priority(ThreadPriority::Min))
            }
            #[cfg(not(target_os = "linux"))]
            WorkerPriority::Idle => set_current_thread_priority(ThreadPriority::Min),
        };
        if let Err(e) = result {
            tracing::debug!("cannot lower a worker thread's priority: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_reports_and_refuses_jobs_and_shutdown_keeps_its_deadline() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker: Worker<u32> = Worker::spawn(
            "test",
            WorkerPriority::Normal,
            |jobs| {
                let n = jobs.recv().unwrap();
                panic!("job {n} broke");
            },
            move |m| tx.send(m).unwrap(),
        )
        .unwrap();
        assert!(worker.send(7));
        let message = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(message, "job 7 broke");
        // The thread has ended: its queue refuses further jobs.
        let until = Instant::now() + Duration::from_secs(5);
        while worker.send(8) {
            assert!(Instant::now() < until, "the queue still takes jobs");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A worker stuck in a long step is left behind after the deadline, not waited for.
        let mut stuck: Worker<()> = Worker::spawn(
            "stuck",
            WorkerPriority::Normal,
            |_| std::thread::sleep(Duration::from_secs(3)),
            |_| {},
        )
        .unwrap();
        let started = Instant::now();
        assert!(!stuck.shut_down(Duration::from_millis(100)));
        assert!(started.elapsed() < Duration::from_secs(1));
        // One that stops when its queue closes is joined.
        let mut quick: Worker<()> = Worker::spawn(
            "quick",
            WorkerPriority::Normal,
            |jobs| for () in jobs.iter() {},
            |_| {},
        )
        .unwrap();
        assert!(quick.shut_down(Duration::from_secs(5)));
        assert_eq!(catch(|| 3), Ok(3));
        assert_eq!(catch(|| -> u8 { panic!("no") }), Err("no".into()));
    }
}
