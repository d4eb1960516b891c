//! Chat prompt formats, rendered straight to token ids: the template's
//! markers become their special tokens, while message text is encoded with
//! special-token parsing off, so a user who types `<|eot_id|>` cannot end a
//! turn or forge one.

use crate::config::Arch;
use crate::error::ModelError;
use crate::tokenizer::{check_prompt_len, Tokenizer};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn title(self) -> &'static str {
        match self {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// The prompt formats this engine renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// BitNet-b1.58-2B-4T (transformers' template): `"{Role}: {content}<|eot_id|>"`
    /// per message, then `"Assistant: "`. The GGUF's own template is a
    /// placeholder that degrades output, so it is not used.
    Bitnet,
    /// Llama 3: `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`,
    /// then the assistant header.
    Llama3,
    /// ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n`, then `<|im_start|>assistant\n`.
    ChatMl,
    /// Fallback for files whose template is unknown: `"{Role}: {content}\n"`
    /// per message, then `"Assistant:"`.
    Plain,
}

impl ChatTemplate {
    /// The format for a model: 2B-4T's for the BitNet archs, else recognised
    /// from the file's `tokenizer.chat_template` (Llama 3, ChatML), else [`ChatTemplate::Plain`].
    pub fn for_model(arch: Arch, file_template: Option<&str>, tok: &Tokenizer) -> ChatTemplate {
        let has = |t: &str| tok.token_id(t).is_some();
        match (arch, file_template) {
            (Arch::BitnetB158, _) if has("<|eot_id|>") => ChatTemplate::Bitnet,
            (_, Some(t)) if t.contains("<|start_header_id|>") && has("<|start_header_id|>") => {
                ChatTemplate::Llama3
            }
            (_, Some(t)) if t.contains("<|im_start|>") && has("<|im_start|>") => {
                ChatTemplate::ChatMl
            }
            _ => ChatTemplate::Plain,
        }
    }

    /// Token ids of `messages` (BOS first when the model adds one), ending
    /// with the assistant's generation prompt when `generation_prompt`; an
    /// error when the messages' text is longer than
    /// [`MAX_PROMPT_BYTES`](crate::tokenizer::MAX_PROMPT_BYTES).
    pub fn render(
        &self,
        tok: &Tokenizer,
        messages: &[Message],
        generation_prompt: bool,
    ) -> Result<Vec<u32>, ModelError> {
        check_prompt_len(messages.iter().map(|m| m.content.len()).sum())?;
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (tok.add_bos, tok.bos) {
            ids.push(bos);
        }
        let special = |ids: &mut Vec<u32>, text: &str| match tok.token_id(text) {
            Some(id) => ids.push(id),
            None => ids.extend(tok.encode(text, false)),
        };
        let text = |ids: &mut Vec<u32>, text: &str| ids.extend(tok.encode(text, false));
        for m in messages {
            match self {
                ChatTemplate::Bitnet => {
                    text(&mut ids, &format!("{}: {}", m.role.title(), m.content));
                    special(&mut ids, "<|eot_id|>");
                }
                ChatTemplate::Llama3 => {
                    special(&mut ids, "<|start_header_id|>");
                    text(&mut ids, m.role.lower());
                    special(&mut ids, "<|end_header_id|>");
                    text(&mut ids, &format!("\n\n{}", m.content));
                    special(&mut ids, "<|eot_id|>");
                }
                ChatTemplate::ChatMl => {
                    special(&mut ids, "<|im_start|>");
                    text(&mut ids, &format!("{}\n{}", m.role.lower(), m.content));
                    special(&mut ids, "<|im_end|>");
                    text(&mut ids, "\n");
                }
                ChatTemplate::Plain => {
                    text(&mut ids, &format!("{}: {}\n", m.role.title(), m.content))
                }
            }
        }
        if generation_prompt {
            match self {
                ChatTemplate::Bitnet => text(&mut ids, "Assistant: "),
                ChatTemplate::Llama3 => {
                    special(&mut ids, "<|start_header_id|>");
                    text(&mut ids, "assistant");
                    special(&mut ids, "<|end_header_id|>");
                    text(&mut ids, "\n\n");
                }
                ChatTemplate::ChatMl => {
                    special(&mut ids, "<|im_start|>");
                    text(&mut ids, "assistant\n");
                }
                ChatTemplate::Plain => text(&mut ids, "Assistant:"),
            }
        }
        Ok(ids)
    }

    /// Tokens that close an assistant turn the model ended with a stop token
    /// (which is not fed back), so the next turn can follow it.
    pub fn close_assistant_turn(&self, tok: &Tokenizer) -> Vec<u32> {
        let mut ids = Vec::new();
        match (self, tok.eot) {
            (ChatTemplate::Bitnet | ChatTemplate::Llama3, Some(eot)) => ids.push(eot),
            (ChatTemplate::ChatMl, _) => {
                ids.extend(tok.token_id("<|im_end|>"));
                ids.extend(tok.encode("\n", false));
            }
            _ => ids.extend(tok.encode("\n", false)),
        }
        ids
    }

    /// [`ChatTemplate::render`] without BOS: the continuation of a conversation.
    pub fn render_more(
        &self,
        tok: &Tokenizer,
        messages: &[Message],
        generation_prompt: bool,
    ) -> Result<Vec<u32>, ModelError> {
        let mut ids = self.render(tok, messages, generation_prompt)?;
        if let (true, Some(bos)) = (tok.add_bos, tok.bos) {
            if ids.first() == Some(&bos) {
                ids.remove(0);
            }
        }
        Ok(ids)
    }

    /// Tokens that end the assistant's turn (besides EOS).
    pub fn stop_tokens(&self, tok: &Tokenizer) -> Vec<u32> {
        let mut stops: Vec<u32> = [tok.eos, tok.eot].into_iter().flatten().collect();
        if let (ChatTemplate::ChatMl, Some(id)) = (self, tok.token_id("<|im_end|>")) {
            stops.push(id);
        }
        stops
    }
}
