//! Model instances on their own threads, each driving a [`Batcher`]; the
//! HTTP side only submits jobs and reads their text back over channels.

use super::metrics::Metrics;
use bitnet_model::{
    Batcher, Event, FinishReason, KvType, Model, Request, SamplerConfig, SeqId, SeqStats,
    TextStream, Tokenizer,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// One request as the instance threads see it.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids (checked against the context and vocabulary).
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplerConfig,
    pub stop_tokens: Vec<u32>,
    /// Texts that end the reply; matched on the detokenized text.
    pub stop_strings: Vec<String>,
    /// Where the reply goes; a closed receiver cancels the job.
    pub reply: UnboundedSender<Chunk>,
}

/// What a job sends back, in order: text pieces, then exactly one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Text(String),
    Done(Outcome),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub end: End,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A stop token or stop string.
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
    /// The server is shutting down.
    Cancelled,
    /// The engine failed (the message says how).
    Failed(String),
}

impl End {
    /// OpenAI's `finish_reason`.
    pub fn finish_reason(&self) -> &'static str {
        match self {
            End::Stop => "stop",
            End::Length => "length",
            End::Cancelled | End::Failed(_) => "error",
        }
    }
}

/// Why a job was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Every slot is busy and the queue is full.
    QueueFull,
    /// The instances are gone (shutdown).
    Closed,
}

enum Command {
    Run(SeqId, Job),
    CancelAll,
}

/// Live counts of one instance, read by /metrics.
#[derive(Debug, Default)]
pub struct InstanceLoad {
    /// Jobs assigned and not yet ended (waiting or running).
    pub assigned: AtomicUsize,
    /// Jobs in the batcher.
    pub active: AtomicUsize,
}

/// One instance as the HTTP side sees it.
#[derive(Debug)]
pub struct Instance {
    pub model: Arc<Model>,
    pub load: Arc<InstanceLoad>,
    commands: Mutex<Option<Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The instances and the admission bound.
#[derive(Debug)]
pub struct Scheduler {
    pub instances: Vec<Instance>,
    /// Running plus waiting jobs allowed at once.
    capacity: usize,
    /// Jobs submitted and not yet ended, over all instances.
    in_flight: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

/// How instances are built.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub threads: usize,
    /// CPUs its workers are pinned to (empty: not pinned).
    pub cpus: Vec<usize>,
    pub slots: usize,
    pub ctx: usize,
    pub kv: KvType,
    /// Prompt tokens one step reads at most.
    pub prefill_budget: usize,
}

impl Scheduler {
    /// Starts one thread per spec, each with its own instance of `model`,
    /// and waits until every one is ready.
    pub fn start(
        model: &Model,
        specs: &[InstanceSpec],
        max_queue: usize,
        tok: &Arc<Tokenizer>,
        metrics: &Arc<Metrics>,
    ) -> crate::Result<Scheduler> {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut instances = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let (tx, rx) = std::sync::mpsc::channel();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let load = Arc::new(InstanceLoad::default());
            let mut worker = Worker {
                tok: Arc::clone(tok),
                metrics: Arc::clone(metrics),
                load: Arc::clone(&load),
                in_flight: Arc::clone(&in_flight),
                waiting: VecDeque::new(),
                running: HashMap::new(),
            };
            let mut instance = model.instance();
            let spec = spec.clone();
            let thread = std::thread::Builder::new()
                .name(format!("bitnet-instance-{index}"))
                .spawn(move || {
                    // The pool pins its calling thread, so it is built here.
                    instance.set_threads_on(spec.threads, &spec.cpus, !spec.cpus.is_empty());
                    let instance = Arc::new(instance);
                    // Every slot's memory is taken now, so a load never
                    // grows the server and a machine short of it fails here.
                    let batcher = Batcher::new(&instance, spec.slots, spec.ctx, spec.kv)
                        .map(|b| b.with_prefill_budget(spec.prefill_budget))
                        .and_then(|mut b| b.reserve().map(|()| b));
                    match batcher {
                        Ok(batcher) => {
                            let _ = ready_tx.send(Ok(Arc::clone(&instance)));
                            worker.run(batcher, &rx);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                })?;
            let model = ready_rx
                .recv()
                .map_err(|_| format!("instance {index} failed to start"))??;
            instances.push(Instance {
                model,
                load,
                commands: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            });
        }
        let slots: usize = specs.iter().map(|s| s.slots).sum();
        Ok(Scheduler {
            instances,
            capacity: slots + max_queue,
            in_flight,
            next_id: AtomicU64::new(1),
        })
    }

    /// Hands `job` to the least-loaded instance.
    pub fn submit(&self, job: Job) -> Result<(), Rejected> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map_err(|_| Rejected::QueueFull)?;
        let instance = self
            .instances
            .iter()
            .min_by_key(|i| i.load.assigned.load(Ordering::Acquire))
            .expect("at least one instance");
        instance.load.assigned.fetch_add(1, Ordering::AcqRel);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sent = match &*instance.commands.lock().expect("commands lock") {
            Some(tx) => tx.send(Command::Run(id, job)).is_ok(),
            None => false,
        };
        if !sent {
            instance.load.assigned.fetch_sub(1, Ordering::AcqRel);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::Closed);
        }
        Ok(())
    }

    /// Jobs waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        let active: usize = self
            .instances
            .iter()
            .map(|i| i.load.active.load(Ordering::Acquire))
            .sum();
        self.in_flight
            .load(Ordering::Acquire)
            .saturating_sub(active)
    }

    /// Ends every job now; each gets `Done` with [`End::Cancelled`].
    pub fn cancel_all(&self) {
        for i in &self.instances {
            if let Some(tx) = &*i.commands.lock().expect("commands lock") {
                let _ = tx.send(Command::CancelAll);
            }
        }
    }

    /// Stops taking jobs, lets each instance finish what it holds, and
    /// joins the threads.
    pub fn shutdown(&self) {
        for i in &self.instances {
            i.commands.lock().expect("commands lock").take();
        }
        for i in &self.instances {
            if let Some(t) = i.thread.lock().expect("thread lock").take() {
                let _ = t.join();
            }
        }
    }
}

/// A job in the batcher.
struct Running {
    reply: UnboundedSender<Chunk>,
    text: TextStream,
    stops: StopMatcher,
    prompt_tokens: usize,
}

/// The state of one instance thread.
struct Worker {
    tok: Arc<Tokenizer>,
    metrics: Arc<Metrics>,
    load: Arc<InstanceLoad>,
    in_flight: Arc<AtomicUsize>,
    waiting: VecDeque<(SeqId, Job)>,
    running: HashMap<SeqId, Running>,
}

impl Worker {
    fn run(&mut self, mut batcher: Batcher<'_>, commands: &Receiver<Command>) {
        let mut events = Vec::new();
        let mut open = true;
        loop {
            if batcher.is_idle() && self.waiting.is_empty() {
                if !open {
                    return;
                }
                match commands.recv() {
                    Ok(c) => self.command(c, &mut batcher),
                    Err(_) => return,
                }
            }
            loop {
                match commands.try_recv() {
                    Ok(c) => self.command(c, &mut batcher),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.drop_abandoned(&mut batcher);
            self.admit(&mut batcher);
            if batcher.is_idle() {
                continue;
            }
            if let Err(e) = batcher.step(&mut events) {
                let ids: Vec<SeqId> = self.running.keys().copied().collect();
                for id in ids {
                    let stats = batcher.cancel(id);
                    self.end(id, End::Failed(e.to_string()), stats);
                }
                continue;
            }
            for event in events.drain(..) {
                match event {
                    Event::Token { id, token } => self.token(id, token, &mut batcher),
                    Event::Finished { id, reason, stats } => {
                        let end = match reason {
                            FinishReason::Stop => End::Stop,
                            FinishReason::Length | FinishReason::ContextFull => End::Length,
                        };
                        self.end(id, end, Some(stats));
                    }
                }
            }
            self.load.active.store(batcher.active(), Ordering::Release);
        }
    }

    fn command(&mut self, command: Command, batcher: &mut Batcher<'_>) {
        match command {
            Command::Run(id, job) => self.waiting.push_back((id, job)),
            Command::CancelAll => {
                for (_, job) in std::mem::take(&mut self.waiting) {
                    self.reject(job, End::Cancelled);
                }
                let ids: Vec<SeqId> = self.running.keys().copied().collect();
                for id in ids {
                    let stats = batcher.cancel(id);
                    self.end(id, End::Cancelled, stats);
                }
            }
        }
    }

    /// Frees the slots and queue places of clients that went away: checked
    /// before every step, so a dropped stream costs at most one more step.
    fn drop_abandoned(&mut self, batcher: &mut Batcher<'_>) {
        let before = self.waiting.len();
        self.waiting.retain(|(_, job)| !job.reply.is_closed());
        for _ in self.waiting.len()..before {
            self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            self.release();
        }
        let gone: Vec<SeqId> = self
            .running
            .iter()
            .filter(|(_, r)| r.reply.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            let stats = batcher.cancel(id);
            self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            self.end(id, End::Cancelled, stats);
        }
    }

    fn admit(&mut self, batcher: &mut Batcher<'_>) {
        while batcher.free_slots() > 0 {
            let Some((id, job)) = self.waiting.pop_front() else {
                break;
            };
            let prompt_tokens = job.prompt.len();
            let request = Request {
                prompt: job.prompt,
                max_tokens: job.max_tokens,
                sampling: job.sampling,
                stop_tokens: job.stop_tokens,
            };
            match batcher.admit(id, request) {
                Ok(()) => {
                    self.running.insert(
                        id,
                        Running {
                            reply: job.reply,
                            text: TextStream::default(),
                            stops: StopMatcher::new(job.stop_strings),
                            prompt_tokens,
                        },
                    );
                }
                Err(e) => {
                    // The HTTP side checks what admission checks; this is a bug path.
                    let _ = job.reply.send(Chunk::Done(Outcome {
                        end: End::Failed(e.to_string()),
                        prompt_tokens,
                        completion_tokens: 0,
                    }));
                    self.release();
                }
            }
        }
        self.load.active.store(batcher.active(), Ordering::Release);
    }

    fn token(&mut self, id: SeqId, token: u32, batcher: &mut Batcher<'_>) {
        let Some(r) = self.running.get_mut(&id) else {
            return; // ended earlier in this step (stop string)
        };
        let piece = if self.tok.is_control(token) {
            String::new()
        } else {
            r.text.push(self.tok.token_bytes(token))
        };
        let (text, matched) = r.stops.push(&piece);
        if !text.is_empty() && r.reply.send(Chunk::Text(text)).is_err() {
            let stats = batcher.cancel(id);
            self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            self.end(id, End::Cancelled, stats);
        } else if matched {
            let stats = batcher.cancel(id);
            self.end(id, End::Stop, stats);
        }
    }

    /// Sends the held-back text and `Done`, and frees the job's place.
    fn end(&mut self, id: SeqId, end: End, stats: Option<SeqStats>) {
        let Some(mut r) = self.running.remove(&id) else {
            return;
        };
        let mut end = end;
        if matches!(end, End::Stop | End::Length) {
            let tail = r.text.finish();
            let (mut text, matched) = r.stops.push(&tail);
            if matched {
                end = End::Stop;
            } else {
                text.push_str(&r.stops.flush());
            }
            if !text.is_empty() {
                let _ = r.reply.send(Chunk::Text(text));
            }
        }
        let generated = stats.map_or(0, |s| s.generated);
        if let Some(stats) = stats {
            self.metrics.record(&stats);
        }
        let _ = r.reply.send(Chunk::Done(Outcome {
            end,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: generated,
        }));
        self.release();
    }

    fn reject(&mut self, job: Job, end: End) {
        let _ = job.reply.send(Chunk::Done(Outcome {
            end,
            prompt_tokens: job.prompt.len(),
            completion_tokens: 0,
        }));
        self.release();
    }

    fn release(&self) {
        self.load.assigned.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Finds stop strings in streamed text. Text that might be the start of a
/// stop string is held back until it is known not to be one, so a client
/// never sees any part of a stop string.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    done: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops,
            held: String::new(),
            done: false,
        }
    }

    /// Adds `piece`; returns the text now safe to send and whether a stop
    /// string ended the reply (after which everything is swallowed).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.done {
            return (String::new(), true);
        }
        self.held.push_str(piece);
        // Every earlier suffix that could start a match was held back, so
        // a match lies wholly in `held`.
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            self.done = true;
            let text = self.held[..at].to_owned();
            self.held.clear();
            return (text, true);
        }
        let keep = self.longest_partial();
        let send = self.held.len() - keep;
        let text = self.held[..send].to_owned();
        self.held.drain(..send);
        (text, false)
    }

    /// The held-back text (the reply ended without a match).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes at the end of `held` that begin some stop string.
    fn longest_partial(&self) -> usize {
        let held = &self.held;
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len().min(held.len() + 1))
                    .rev()
                    .filter(|&n| s.is_char_boundary(n))
                    .find(|&n| held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0)
    }
}

/// How long a 429 suggests waiting: one typical short reply.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (text, matched) = m.push(p);
            out.push_str(&text);
            if matched {
                return (out, true);
            }
        }
        out.push_str(&m.flush());
        (out, false)
    }

    #[test]
    fn stop_strings_split_across_pieces_are_found_and_never_sent() {
        assert_eq!(
            run(&["END"], &["hello E", "N", "D more"]),
            ("hello ".into(), true)
        );
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), true));
        assert_eq!(run(&["xyz", "b"], &["ab"]), ("a".into(), true));
        // The earliest match wins, whichever stop string it is.
        assert_eq!(run(&["cd", "bcde"], &["abcdef"]), ("a".into(), true));
    }

    #[test]
    fn near_misses_are_released() {
        assert_eq!(run(&["END"], &["E", "N", "d"]), ("ENd".into(), false));
        assert_eq!(run(&["END"], &["hello EN"]), ("hello EN".into(), false));
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("ok E"), ("ok ".into(), false));
        assert_eq!(m.push("x"), ("Ex".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn multibyte_stop_strings() {
        assert_eq!(run(&["🙂!"], &["a🙂", "!b"]), ("a".into(), true));
        assert_eq!(run(&["é"], &["caf", "é au lait"]), ("caf".into(), true));
    }
}
