//! A static thread pool: persistent workers, one job at a time, every
//! worker given the same index on every job so it keeps "its" rows (and
//! their cache lines). No work stealing: the split is the caller's, from
//! [`bitnet_kernels::partition_chunk`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Busy and waiting time of one worker, in nanoseconds, readable while jobs run.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub busy_ns: AtomicU64,
    pub wait_ns: AtomicU64,
    pub jobs: AtomicU64,
    /// The worker's OS thread id (Linux `/proc/self/task/<tid>`; 0 until
    /// known or elsewhere). Worker 0's is that of the thread that last ran a job.
    pub tid: AtomicU64,
}

/// The calling thread's OS id (Linux; 0 elsewhere), read once per thread.
fn current_tid() -> u64 {
    thread_local! {
        // "/proc/thread-self" links to "<pid>/task/<tid>".
        static TID: u64 = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse().ok())
            .unwrap_or(0);
    }
    TID.with(|t| *t)
}

/// A type-erased `&dyn Fn(worker, workers)` valid for one job.
type JobRef = *const (dyn Fn(usize, usize) + Sync);

/// The current job and how many workers (indices `0..active`) take part.
#[derive(Clone, Copy)]
struct Job {
    f: SendJob,
    active: usize,
}

struct Shared {
    /// Serializes `run` calls from different threads.
    run_lock: Mutex<()>,
    /// Bumped once per job; workers wait for it to move.
    generation: AtomicU64,
    job: Mutex<Option<Job>>,
    /// Workers (excluding the caller) still running the current job.
    pending: AtomicUsize,
    stop: AtomicBool,
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Workers asleep on `wake` (or about to be): a job is announced with
    /// a `notify_all`, a syscall, only when one is. Between the steps of a
    /// decoded token every worker is still spinning.
    sleepers: AtomicUsize,
    stats: Vec<WorkerStats>,
}

#[derive(Clone, Copy)]
struct SendJob(JobRef);
// SAFETY: the pointee is `Sync` and outlives every use: `ThreadPool::run`
// does not return until all workers have finished with it.
unsafe impl Send for SendJob {}

/// Persistent workers; the calling thread is worker 0.
pub struct ThreadPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads)
            .finish()
    }
}

/// Spins this many times before parking. Measured on 2B-4T decode with 2
/// threads: 2 000 beats 20 000 both on a quiet machine (24–25 against
/// 20–21 tok/s) and with a competing process (12.4 against 8.8), where a
/// long spin steals the core the serial work between ops needs.
const SPINS: u32 = 2_000;

impl ThreadPool {
    /// `threads` workers in all (the caller counts as one). With `pin`,
    /// worker `i` is bound to the `i`-th CPU this process may run on (Linux).
    pub fn new(threads: usize, pin: bool) -> ThreadPool {
        ThreadPool::with_cpus(threads, &ThreadPool::default_cpus(pin))
    }

    /// The CPUs [`ThreadPool::new`] pins to: with `pin`, every CPU this
    /// process may run on, in order (Linux; empty elsewhere or without `pin`).
    pub fn default_cpus(pin: bool) -> Vec<usize> {
        if pin {
            allowed_cpus()
        } else {
            Vec::new()
        }
    }

    /// `threads` workers; worker `i` is bound to `cpus[i % cpus.len()]`
    /// (none when `cpus` is empty). The calling thread, worker 0, is bound
    /// to `cpus[0]` now.
    pub fn with_cpus(threads: usize, cpus: &[usize]) -> ThreadPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            run_lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            job: Mutex::new(None),
            pending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
            sleepers: AtomicUsize::new(0),
            stats: (0..threads).map(|_| WorkerStats::default()).collect(),
        });
        if let Some(&cpu) = cpus.first() {
            pin_current(cpu);
        }
        let handles = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                let cpu = cpus.get(index % cpus.len().max(1)).copied();
                std::thread::Builder::new()
                    .name(format!("bitnet-worker-{index}"))
                    .spawn(move || {
                        if let Some(cpu) = cpu {
                            pin_current(cpu);
                        }
                        shared.stats[index]
                            .tid
                            .store(current_tid(), Ordering::Relaxed);
                        worker(&shared, index)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool {
            shared,
            handles,
            threads,
        }
    }

    /// Workers, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Per-worker counters (index 0 is the calling thread).
    pub fn stats(&self) -> &[WorkerStats] {
        &self.shared.stats
    }

    /// Runs `f(worker, workers)` on every worker and returns when all are done.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        self.run_on(self.threads, f);
    }

    /// Runs `f(worker, active)` on workers `0..active` only (clamped to
    /// `1..=threads`); the others stay idle. Returns when all are done.
    pub fn run_on(&self, active: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let active = active.clamp(1, self.threads);
        let _one_job_at_a_time = self.shared.run_lock.lock().expect("pool lock");
        self.shared.stats[0]
            .tid
            .store(current_tid(), Ordering::Relaxed);
        let start = Instant::now();
        if active == 1 {
            f(0, 1);
            record(&self.shared.stats[0], start, Instant::now());
            return;
        }
        // SAFETY: only the lifetime is erased. Workers call the job between
        // the generation bump below and their `pending` decrement, and this
        // function waits for `pending` to reach zero before returning, so
        // `f` outlives every call.
        let job: JobRef =
            unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), JobRef>(f) };
        *self.shared.job.lock().expect("pool lock") = Some(Job {
            f: SendJob(job),
            active,
        });
        self.shared.pending.store(active - 1, Ordering::Release);
        // SeqCst with the sleeper's count-then-check in `worker`: either we
        // see its count here, or it sees this generation and does not wait.
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.shared.wake_lock.lock().expect("pool lock");
            self.shared.wake.notify_all();
        }
        f(0, active);
        let busy_end = Instant::now();
        let mut spins = 0u32;
        while self.shared.pending.load(Ordering::Acquire) != 0 {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        let stats = &self.shared.stats[0];
        record(stats, start, busy_end);
        stats
            .wait_ns
            .fetch_add(busy_end.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

fn record(stats: &WorkerStats, start: Instant, end: Instant) {
    stats
        .busy_ns
        .fetch_add((end - start).as_nanos() as u64, Ordering::Relaxed);
    stats.jobs.fetch_add(1, Ordering::Relaxed);
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    let stats = &shared.stats[index];
    loop {
        let wait_start = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            if shared.generation.load(Ordering::Acquire) != seen {
                break;
            }
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                let guard = shared.wake_lock.lock().expect("pool lock");
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                if shared.generation.load(Ordering::SeqCst) == seen
                    && !shared.stop.load(Ordering::Acquire)
                {
                    let _unused = shared.wake.wait(guard).expect("pool lock");
                }
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
        seen = shared.generation.load(Ordering::Acquire);
        let start = Instant::now();
        let job = shared
            .job
            .lock()
            .expect("pool lock")
            .expect("a job is published before the bump");
        if index >= job.active {
            // Not part of this job: `pending` does not count this worker.
            continue;
        }
        stats
            .wait_ns
            .fetch_add((start - wait_start).as_nanos() as u64, Ordering::Relaxed);
        // SAFETY: see `ThreadPool::run_on`: the job is alive until `pending` hits zero.
        unsafe { (*job.f.0)(index, job.active) };
        record(stats, start, Instant::now());
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _guard = self.shared.wake_lock.lock().expect("pool lock");
            self.shared.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The CPUs this process may run on, in order (Linux; empty elsewhere).
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // /proc/self/status "Cpus_allowed_list: 0-3,6"
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim();
        let mut cpus = Vec::new();
        for part in list.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                cpus.extend(a..=b);
            }
        }
        cpus
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Binds the calling thread to one CPU; best effort (failure keeps it unbound).
fn pin_current(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        // A cpu_set_t is 1024 bits; `sched_setaffinity(0, …)` applies to the calling thread.
        let mut set = [0u64; 16];
        if cpu < 1024 {
            set[cpu / 64] |= 1 << (cpu % 64);
            // SAFETY: a raw syscall with a pointer to a live, correctly sized mask.
            unsafe { sched_setaffinity(0, std::mem::size_of_val(&set), set.as_ptr()) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

#[cfg(target_os = "linux")]
extern "C" {
    fn sched_setaffinity(pid: i32, cpusetsize: usize, mask: *const u64) -> i32;
}

/// A raw output pointer handed to workers that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(pub *mut T);

impl<T> SharedOut<T> {
    /// The pointer. (A method, so closures capture the whole `Sync` wrapper
    /// rather than its raw-pointer field.)
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}
// SAFETY: only used to write disjoint ranges from different workers, inside
// one `ThreadPool::run` that the owner of the buffer waits on.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_worker_runs_each_job_once_with_its_own_index() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(threads, false);
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.run(&|i, n| {
                    assert_eq!(n, threads);
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
            assert!(pool
                .stats()
                .iter()
                .all(|s| s.jobs.load(Ordering::Relaxed) == 200));
        }
    }

    #[test]
    fn sleeping_workers_wake_for_every_job() {
        // Gaps of a few spins' length up to well past `SPINS`, so workers
        // are caught spinning, falling asleep, and asleep when a job comes.
        let pool = ThreadPool::new(3, false);
        let ran = AtomicUsize::new(0);
        for round in 0..300u64 {
            if round % 3 != 0 {
                std::thread::sleep(std::time::Duration::from_micros(round % 7 * 40));
            }
            pool.run(&|_, _| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(ran.load(Ordering::Relaxed), 900);
    }

    #[test]
    fn run_on_uses_only_the_first_workers() {
        let pool = ThreadPool::new(3, false);
        for active in [1, 2, 3, 7] {
            for _ in 0..100 {
                let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                pool.run_on(active, &|i, n| {
                    assert_eq!(n, active.min(3));
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                for (i, h) in hits.iter().enumerate() {
                    assert_eq!(h.load(Ordering::Relaxed), usize::from(i < active));
                }
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn workers_report_their_thread_ids() {
        let pool = ThreadPool::new(3, false);
        pool.run(&|_, _| {});
        let tids: Vec<u64> = pool
            .stats()
            .iter()
            .map(|s| s.tid.load(Ordering::Relaxed))
            .collect();
        assert_eq!(tids[0], current_tid());
        for (i, &tid) in tids.iter().enumerate() {
            let task = format!("/proc/self/task/{tid}");
            assert!(std::path::Path::new(&task).exists(), "worker {i}: {task}");
        }
        assert!(tids[1] != tids[0] && tids[2] != tids[1] && tids[2] != tids[0]);
    }

    #[test]
    fn pinned_pool_runs() {
        let pool = ThreadPool::new(2, true);
        let sum = AtomicUsize::new(0);
        pool.run(&|i, _| {
            sum.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }
}
