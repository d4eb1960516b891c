//! The token loop shared by `run` and `chat`.

use bitnet_model::{Sampler, Session, TextStream, Tokenizer};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Length,
    EndOfText,
    ContextFull,
    Interrupted,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Length => "length",
            Stop::EndOfText => "end of text",
            Stop::ContextFull => "context full",
            Stop::Interrupted => "interrupted",
        }
    }
}

/// What a reply produced.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
    pub ids: Vec<u32>,
    pub stop: Stop,
}

/// Samples up to `n` tokens after what `session` holds, feeding each back,
/// and hands complete UTF-8 text to `emit` as it arrives. A stop token ends
/// the reply and is not fed; `interrupt` (when set) ends it early.
pub fn generate(
    session: &mut Session<'_>,
    sampler: &mut Sampler,
    tok: &Tokenizer,
    stops: &[u32],
    n: usize,
    interrupt: Option<&AtomicBool>,
    mut emit: impl FnMut(&str) -> std::io::Result<()>,
) -> crate::Result<Reply> {
    let mut stream = TextStream::default();
    let mut reply = Reply {
        text: String::new(),
        ids: Vec::new(),
        stop: Stop::Length,
    };
    for _ in 0..n {
        if interrupt.is_some_and(|f| f.swap(false, Ordering::Relaxed)) {
            reply.stop = Stop::Interrupted;
            break;
        }
        if session.remaining() == 0 {
            reply.stop = Stop::ContextFull;
            break;
        }
        let next = session.sample(sampler);
        if stops.contains(&next) {
            reply.stop = Stop::EndOfText;
            break;
        }
        reply.ids.push(next);
        let piece = if tok.is_control(next) {
            String::new()
        } else {
            stream.push(tok.token_bytes(next))
        };
        emit(&piece)?;
        reply.text.push_str(&piece);
        session.push_for(next, sampler)?;
    }
    let tail = stream.finish();
    emit(&tail)?;
    reply.text.push_str(&tail);
    Ok(reply)
}
