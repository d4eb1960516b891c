//! A progress bar for long work (perplexity, batch, tune):
//! drawn on stderr only when stderr is a terminal, so pipes and logs stay
//! clean. Shareable between threads (`inc` takes `&self`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Redraws at most this often; a terminal cannot show faster updates.
const REDRAW: Duration = Duration::from_millis(100);
/// Characters of the bar itself.
const BAR_WIDTH: usize = 30;

/// `label [=====>    ] done/total pct% rate/s ETA m:ss`, one line on stderr.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    start: Instant,
    /// Whether to draw at all (stderr is a terminal).
    draw: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    done: u64,
    /// What is being worked on now, shown after the counts.
    note: String,
    last_draw: Option<Instant>,
    finished: bool,
}

impl Progress {
    /// A bar counting up to `total` units of work, drawn when stderr is a
    /// terminal and silent otherwise.
    pub fn new(total: u64, label: impl Into<String>) -> Progress {
        Progress::with_drawing(total, label, std::io::stderr().is_terminal())
    }

    fn with_drawing(total: u64, label: impl Into<String>, draw: bool) -> Progress {
        Progress {
            label: label.into(),
            total,
            start: Instant::now(),
            draw,
            state: Mutex::new(State {
                done: 0,
                note: String::new(),
                last_draw: None,
                finished: false,
            }),
        }
    }

    /// Records `n` more units done (capped at the total).
    pub fn inc(&self, n: u64) {
        self.inc_noting(n, None);
    }

    /// [`Progress::inc`], and from now on shows `note` (what is being worked
    /// on) after the counts.
    pub fn inc_noting(&self, n: u64, note: Option<&str>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(note) = note {
            s.note = note.to_string();
        }
        s.done = (s.done + n).min(self.total);
        let now = Instant::now();
        let due = s.last_draw.is_none_or(|t| now - t >= REDRAW) || s.done == self.total;
        if self.draw && !s.finished && due {
            s.last_draw = Some(now);
            self.redraw(&s, false);
        }
    }

    /// Draws the final state and ends the line, so what follows on stderr
    /// starts on a line of its own. Idempotent; also run on drop.
    pub fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.draw && !s.finished {
            self.redraw(&s, true);
        }
        s.finished = true;
    }

    fn redraw(&self, s: &State, end: bool) {
        let mut line = render(&self.label, s.done, self.total, self.start.elapsed());
        if !s.note.is_empty() && !end {
            line.push_str(" | ");
            line.push_str(&s.note);
        }
        // `\r` returns to the line start, `\x1b[K` clears what a longer
        // previous line left behind.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K{}", if end { "\n" } else { "" });
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One line of the bar: label, bar, count, percentage, rate and the time
/// left at that rate (or, when done, the time taken).
fn render(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
    let mut bar = "=".repeat(filled);
    if filled < BAR_WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let time = if done >= total {
        format!("in {}", clock(secs))
    } else if rate > 0.0 {
        format!("ETA {}", clock((total - done) as f64 / rate))
    } else {
        "ETA ?".into()
    };
    format!(
        "{label} [{bar}] {done}/{total} {:3.0}% {rate:.1}/s {time}",
        fraction * 100.0
    )
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bar_count_rate_and_eta() {
        let line = render("perplexity", 25, 100, Duration::from_secs(5));
        assert_eq!(
            line,
            "perplexity [=======>                      ] 25/100  25% 5.0/s ETA 0:15"
        );
        let done = render("x", 100, 100, Duration::from_secs(3725));
        assert!(
            done.contains(&format!("[{}]", "=".repeat(BAR_WIDTH))),
            "{done}"
        );
        assert!(done.ends_with("100% 0.0/s in 1:02:05"), "{done}");
        assert!(render("x", 0, 10, Duration::ZERO).ends_with("ETA ?"));
        // Nothing to do is already done.
        assert!(render("x", 0, 0, Duration::ZERO).contains("100%"));
    }

    #[test]
    fn counts_cap_at_the_total_and_finish_is_idempotent() {
        let p = Progress::with_drawing(10, "t", false);
        p.inc(4);
        p.inc(40);
        assert_eq!(p.state.lock().unwrap().done, 10);
        p.finish();
        p.finish();
        assert!(p.state.lock().unwrap().finished);
    }

    #[test]
    fn is_shared_between_threads() {
        let p = Progress::with_drawing(1000, "t", false);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..250).for_each(|_| p.inc(1)));
            }
        });
        assert_eq!(p.state.lock().unwrap().done, 1000);
    }
}
