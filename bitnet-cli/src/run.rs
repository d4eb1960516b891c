//! `bitnet run`: prompt in, streamed text out, timings on stderr.

use crate::args::RunArgs;
use crate::error::usage;
use crate::generate::generate;
use crate::load::{load, sampling, Loaded};
use bitnet_model::{ChatTemplate, Message, Role, Sampler, Session};
use std::io::Write;

pub fn run(args: &RunArgs) -> crate::Result<()> {
    let sampling = sampling(&args.sampling)?;
    let l = load(&args.model)?;
    let template = l.chat_template()?;
    let prompt = prompt_ids(args, &l, &template)?;
    let mut session = Session::new(&l.model, l.ctx, l.kv)?;
    session.prefill(&prompt)?;

    let mut sampler = Sampler::new(sampling);
    let stops = template.stop_tokens(&l.tok);
    let mut stdout = std::io::stdout().lock();
    let json = args.json;
    let reply = generate(
        &mut session,
        &mut sampler,
        &l.tok,
        &stops,
        args.n_predict,
        None,
        |piece| {
            if !json {
                stdout.write_all(piece.as_bytes())?;
                stdout.flush()?;
            }
            Ok(())
        },
    )?;
    let t = session.timings;
    let kernels = l.model.dispatch().describe().to_string();
    let threads = match (&l.tuned, l.threads_tuned) {
        (Some(tuned), true) => format!(
            "threads prefill {} / decode {} (tuned profile {})",
            l.phase.prefill,
            l.phase.decode,
            tuned.path.display()
        ),
        _ if l.phase.prefill != l.phase.decode => {
            format!(
                "threads prefill {} / decode {}",
                l.phase.prefill, l.phase.decode
            )
        }
        _ => format!("threads {}", l.threads),
    };
    let threads = if l.pin {
        format!("{threads} (pinned)")
    } else {
        threads
    };
    if json {
        let out = serde_json::json!({
            "text": reply.text,
            "prompt_tokens": prompt.len(),
            "token_ids": reply.ids,
            "stop": reply.stop.name(),
            "timings": {
                "load_ms": l.load_ms,
                "prompt_tok_s": t.prefill_tok_s(),
                "decode_tok_s": t.decode_tok_s(),
                "threads": l.threads,
                "pinned": l.pin,
                "prefill_threads": l.phase.prefill,
                "decode_threads": l.phase.decode,
                "threads_from_profile": l.threads_tuned,
                "kernels": kernels,
            },
        });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout)?;
    }
    eprintln!(
        "load {:.0} ms | prompt {} tok, {:.1} tok/s | generated {} tok, {:.1} tok/s | stop: {} | {threads} | kernels {kernels}",
        l.load_ms,
        t.prefill_tokens,
        t.prefill_tok_s(),
        t.decode_tokens,
        t.decode_tok_s(),
        reply.stop.name(),
    );
    Ok(())
}

/// The token ids `run` feeds for its arguments: the prompt, chat-formatted
/// with `--chat`/`--system`; an error if it is empty or exceeds the context.
pub fn prompt_ids(args: &RunArgs, l: &Loaded, template: &ChatTemplate) -> crate::Result<Vec<u32>> {
    let chat = args.chat || args.system.is_some();
    let prompt = if chat {
        let mut msgs: Vec<Message> = args
            .system
            .iter()
            .map(|s| Message::new(Role::System, s.clone()))
            .collect();
        msgs.push(Message::new(Role::User, args.prompt.clone()));
        template.render(&l.tok, &msgs, true)
    } else {
        l.tok.encode_prompt(&args.prompt, args.special)
    }
    .map_err(|e| usage(format!("-p: {e}")))?;
    if prompt.is_empty() {
        return Err(usage("the prompt is empty and the model adds no BOS token"));
    }
    if prompt.len() > l.ctx {
        return Err(usage(format!(
            "the prompt is {} tokens, longer than the context of {} tokens (raise -c)",
            prompt.len(),
            l.ctx
        )));
    }
    Ok(prompt)
}
