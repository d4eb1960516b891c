//! `bitnet chat`: a conversation on stdin/stdout that keeps its KV cache
//! between turns, so each turn only prefills what is new.

use crate::args::ChatArgs;
use crate::generate::{generate, Stop};
use crate::load::{load, sampling};
use bitnet_model::{Message, Role, Sampler, Session};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn run(args: &ChatArgs) -> crate::Result<()> {
    let mut sampler = Sampler::new(sampling(&args.sampling)?);
    let l = load(&args.model)?;
    let template = l.chat_template()?;
    let stops = template.stop_tokens(&l.tok);
    let mut session = Session::new(&l.model, l.ctx, l.kv)?;
    // Ctrl-C ends the current reply; pressed twice while no reply runs, it exits.
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })?;
    let system: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new(Role::System, s.clone()))
        .collect();
    let mut first_turn = true;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    eprintln!(
        "chat ({:?} format, {} tokens of context): /reset starts over, /exit quits",
        template, l.ctx
    );
    loop {
        write!(stdout, "> ")?;
        stdout.flush()?;
        interrupt.store(false, Ordering::Relaxed);
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        match line.trim() {
            "/exit" | "/quit" => break,
            "/reset" => {
                session.reset();
                first_turn = true;
                eprintln!("(conversation reset)");
                continue;
            }
            "" => continue,
            _ => {}
        }
        let user = [Message::new(Role::User, line)];
        let rendered = if first_turn {
            let msgs: Vec<Message> = system.iter().cloned().chain(user.iter().cloned()).collect();
            template.render(&l.tok, &msgs, true)
        } else {
            // The reply's stop token (if any) was not fed: close the turn.
            template
                .render_more(&l.tok, &user, true)
                .map(|more| [template.close_assistant_turn(&l.tok), more].concat())
        };
        let ids = match rendered {
            Ok(ids) => ids,
            // A line too long to be a prompt: say so and keep the conversation.
            Err(e) => {
                eprintln!("({e})");
                continue;
            }
        };
        if ids.len() > session.remaining() {
            eprintln!(
                "(this turn needs {} tokens but only {} of the {}-token context are left; /reset to start over)",
                ids.len(),
                session.remaining(),
                l.ctx
            );
            continue;
        }
        session.prefill(&ids)?;
        first_turn = false;
        let reply = generate(
            &mut session,
            &mut sampler,
            &l.tok,
            &stops,
            args.n_predict,
            Some(&interrupt),
            |piece| {
                stdout.write_all(piece.as_bytes())?;
                stdout.flush()
            },
        )?;
        writeln!(stdout)?;
        if reply.stop == Stop::ContextFull {
            eprintln!("(context full; /reset to start over)");
        }
    }
    Ok(())
}
