//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the Llama-3
//! (`llama-bpe`) or GPT-2 (`default`) pre-tokenizer, read from GGUF metadata.

use crate::error::ModelError;
use crate::gguf::Gguf;
use fancy_regex::Regex;
use std::collections::HashMap;

/// How text is split into pieces before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// Llama 3's split regex (`llama-bpe`): digit runs of at most 3, case-insensitive contractions.
    Llama3,
    /// GPT-2's split regex (`default`), what bitnet.cpp falls back to.
    Gpt2,
    /// SentencePiece (`tokenizer.ggml.model = llama`): no regex; spaces
    /// become `▁` and the whole text is one piece.
    SentencePiece,
}

impl PreTokenizer {
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            PreTokenizer::Llama3 => {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            }
            PreTokenizer::Gpt2 => {
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
            }
            // Unused: SentencePiece does not split with a regex.
            PreTokenizer::SentencePiece => r"(?s).+",
        }
    }

    /// The name used by `tokenizer.ggml.pre`.
    pub fn name(self) -> &'static str {
        match self {
            PreTokenizer::Llama3 => "llama-bpe",
            PreTokenizer::Gpt2 => "default",
            PreTokenizer::SentencePiece => "none (SentencePiece)",
        }
    }
}

/// The longest prompt text, in bytes (1 MiB), that
/// [`Tokenizer::encode_prompt`] and [`ChatTemplate::render`](crate::ChatTemplate::render)
/// accept. A token covers at least one byte, so even a 128k-token context
/// is filled well before it; the bound keeps a runaway input (tokenizing
/// runs at roughly a second per MiB) from stalling the engine.
pub const MAX_PROMPT_BYTES: usize = 1 << 20;

/// [`MAX_PROMPT_BYTES`], checked.
pub(crate) fn check_prompt_len(bytes: usize) -> Result<(), ModelError> {
    if bytes > MAX_PROMPT_BYTES {
        return Err(ModelError::PromptTooLong {
            bytes,
            max: MAX_PROMPT_BYTES,
        });
    }
    Ok(())
}

/// GGUF token types (`tokenizer.ggml.token_type`).
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// A byte-level BPE tokenizer.
pub struct Tokenizer {
    /// Each token's bytes as it decodes (control tokens: their text).
    bytes: Vec<Vec<u8>>,
    /// Byte-level-encoded token string → id.
    ids: HashMap<String, u32>,
    model: Model,
    /// Special tokens' texts, longest first, for `parse_special`.
    specials: Vec<(String, u32)>,
    is_control: Vec<bool>,
    /// Control and user-defined tokens.
    is_special: Vec<bool>,
    pub pre: PreTokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// `<|eot_id|>`, found by its text (not a GGUF key).
    pub eot: Option<u32>,
    pub add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.bytes.len())
            .field("pre", &self.pre)
            .finish()
    }
}

/// What turns a piece of text into ids.
enum Model {
    Bpe {
        /// (left, right) → (rank, merged id).
        merges: HashMap<(u32, u32), (u32, u32)>,
        /// Id of the single-byte token for each byte value.
        byte_ids: Box<[u32; 256]>,
        split: Regex,
        /// Llama 3's `ignore_merges`: a piece that is itself a token (not a
        /// special one) is that token, even where its merges would not
        /// rebuild it, as Hugging Face's tokenizer and llama.cpp do.
        whole_pieces: bool,
    },
    Spm {
        scores: Vec<f32>,
        /// `<0xXX>` tokens, the fallback for characters outside the vocabulary.
        byte_ids: Box<[Option<u32>; 256]>,
        unk: Option<u32>,
        add_space_prefix: bool,
    },
}

/// Merges the piece's bytes, lowest-ranked pair first (leftmost on ties).
fn bpe(
    merges: &HashMap<(u32, u32), (u32, u32)>,
    byte_ids: &[u32; 256],
    piece: &str,
    out: &mut Vec<u32>,
) {
    let mut syms: Vec<u32> = piece.bytes().map(|b| byte_ids[b as usize]).collect();
    merge_pairs(&mut syms, |l, r| {
        merges.get(&(l, r)).map(|&(rank, id)| (rank as i64, id))
    });
    out.extend_from_slice(&syms);
}

/// Repeatedly replaces the adjacent pair `(l, r)` for which `merge(l, r)`
/// gives the lowest key (leftmost among equal keys) by the symbol it
/// returns, until no pair merges. The symbols form a linked list and the
/// candidate pairs wait in a heap, dropped when stale, so a piece of `n`
/// symbols costs O(n log n) rather than the O(n²) of rescanning it after
/// every merge (one long word in a prompt must not stall the engine).
fn merge_pairs<S: Copy + PartialEq>(syms: &mut Vec<S>, merge: impl Fn(S, S) -> Option<(i64, S)>) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    const NONE: usize = usize::MAX;
    let n = syms.len();
    if n < 2 {
        return;
    }
    let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    prev[0] = NONE;
    let mut alive = vec![true; n];
    // (key, left position, right position): min-heap by key then position.
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, syms: &[S], l: usize, r: usize| {
        if let Some((key, _)) = merge(syms[l], syms[r]) {
            heap.push(Reverse((key, l, r)));
        }
    };
    for i in 0..n - 1 {
        push(&mut heap, syms, i, i + 1);
    }
    while let Some(Reverse((key, l, r))) = heap.pop() {
        // Stale: either side merged since (merging changes the left
        // symbol and unlinks the right one).
        if !alive[l] || !alive[r] || next[l] != r {
            continue;
        }
        let Some((k, merged)) = merge(syms[l], syms[r]) else {
            continue;
        };
        if k != key {
            continue;
        }
        syms[l] = merged;
        alive[r] = false;
        next[l] = next[r];
        if next[r] != NONE {
            prev[next[r]] = l;
        }
        if prev[l] != NONE {
            push(&mut heap, syms, prev[l], l);
        }
        if next[l] != NONE {
            push(&mut heap, syms, l, next[l]);
        }
    }
    let mut at = 0;
    let mut kept = 0;
    while at != NONE {
        syms[kept] = syms[at];
        kept += 1;
        at = next[at];
    }
    syms.truncate(kept);
}

/// SentencePiece's visible space.
const SPM_SPACE: char = '\u{2581}';
/// GGUF token type of `<0xXX>` byte tokens.
const TYPE_BYTE: i32 = 6;
const TYPE_UNKNOWN: i32 = 2;

/// GPT-2's reversible byte ↔ printable-character map.
pub(crate) fn byte_chars() -> [char; 256] {
    BYTE_CHARS
}

const BYTE_CHARS: [char; 256] = {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    let mut b = 0u32;
    while b < 256 {
        let printable =
            (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        map[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            next += 1;
            char::from_u32(next - 1).expect("valid")
        };
        b += 1;
    }
    map
};

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Config(format!("tokenizer: {}", msg.into()))
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, ModelError> {
        let spm = match g.get_str("tokenizer.ggml.model")? {
            Some("gpt2") => false,
            Some("llama") => true,
            Some(other) => {
                return Err(bad(format!(
                    "model {other:?} is not supported (gpt2 byte-level BPE and llama SentencePiece are)"
                )))
            }
            None => return Err(bad("required metadata \"tokenizer.ggml.model\" is missing")),
        };
        let tokens = g
            .get_str_array("tokenizer.ggml.tokens")?
            .ok_or_else(|| bad("required metadata \"tokenizer.ggml.tokens\" is missing"))?;
        let types: Vec<i32> = match g.get_array_4byte("tokenizer.ggml.token_type", 5)? {
            Some(t) => t.into_iter().map(i32::from_le_bytes).collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(bad(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let merges = g
            .get_str_array("tokenizer.ggml.merges")?
            .unwrap_or_default();
        let pre = match g.get_str("tokenizer.ggml.pre")? {
            _ if spm => PreTokenizer::SentencePiece,
            Some("llama-bpe" | "llama3" | "llama-v3") => PreTokenizer::Llama3,
            Some("default" | "gpt2") => PreTokenizer::Gpt2,
            Some(other) => {
                return Err(bad(format!(
                    "pre-tokenizer {other:?} is not supported (llama-bpe, default)"
                )))
            }
            // The official BitNet-2B-4T file lacks the key; its vocabulary is Llama 3's.
            None if tokens.len() == 128_256 && tokens.contains(&"<|begin_of_text|>") => {
                PreTokenizer::Llama3
            }
            None => PreTokenizer::Gpt2,
        };
        let special_id = |key: &str| -> Result<Option<u32>, ModelError> {
            match g.get_u64(key)? {
                Some(id) if (id as usize) < tokens.len() => Ok(Some(id as u32)),
                Some(id) => Err(bad(format!(
                    "{key} = {id} is outside the vocabulary of {}",
                    tokens.len()
                ))),
                None => Ok(None),
            }
        };
        let mut tok = if spm {
            let scores: Vec<f32> = match g.get_array_4byte("tokenizer.ggml.scores", 6)? {
                Some(v) => v.into_iter().map(f32::from_le_bytes).collect(),
                None => vec![0.0; tokens.len()],
            };
            if scores.len() != tokens.len() {
                return Err(bad(format!(
                    "{} scores for {} tokens",
                    scores.len(),
                    tokens.len()
                )));
            }
            let prefix = g
                .get_bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true);
            Tokenizer::new_spm(&tokens, &types, &scores, prefix)?
        } else {
            Tokenizer::new(&tokens, &types, &merges, pre)?
        };
        tok.bos = special_id("tokenizer.ggml.bos_token_id")?;
        tok.eos = special_id("tokenizer.ggml.eos_token_id")?;
        tok.eot = match special_id("tokenizer.ggml.eot_token_id")? {
            Some(id) => Some(id),
            None => tokens
                .iter()
                .position(|&t| t == "<|eot_id|>")
                .map(|i| i as u32),
        };
        tok.add_bos = g
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(tok.bos.is_some());
        Ok(tok)
    }

    /// Builds a tokenizer from a vocabulary (byte-level-encoded strings),
    /// GGUF token types and `"left right"` merges in rank order.
    pub fn new(
        tokens: &[&str],
        types: &[i32],
        merges: &[&str],
        pre: PreTokenizer,
    ) -> Result<Tokenizer, ModelError> {
        let chars = byte_chars();
        let mut char_byte: HashMap<char, u8> = HashMap::with_capacity(256);
        for (b, &c) in chars.iter().enumerate() {
            char_byte.insert(c, b as u8);
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut specials = Vec::new();
        let mut is_control = Vec::with_capacity(tokens.len());
        let mut is_special = Vec::with_capacity(tokens.len());
        for (i, (&t, &ty)) in tokens.iter().zip(types).enumerate() {
            let special = ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED;
            is_control.push(ty == TYPE_CONTROL);
            is_special.push(special);
            if special {
                specials.push((t.to_string(), i as u32));
                bytes.push(t.as_bytes().to_vec());
            } else {
                // Characters outside the byte map decode as their own UTF-8.
                let mut b = Vec::with_capacity(t.len());
                for c in t.chars() {
                    match char_byte.get(&c) {
                        Some(&v) => b.push(v),
                        None => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                bytes.push(b);
            }
            ids.entry(t.to_string()).or_insert(i as u32);
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let mut byte_ids = [0u32; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = *ids
                .get(c.encode_utf8(&mut [0; 4]) as &str)
                .ok_or_else(|| bad(format!("the vocabulary has no token for byte {b:#04x}")))?;
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let (l, r) = m
                .split_once(' ')
                .ok_or_else(|| bad(format!("merge {rank} ({m:?}) is not \"left right\"")))?;
            let (Some(&li), Some(&ri), Some(&out)) =
                (ids.get(l), ids.get(r), ids.get(&format!("{l}{r}")))
            else {
                return Err(bad(format!(
                    "merge {rank} ({m:?}) names tokens outside the vocabulary"
                )));
            };
            merge_map.entry((li, ri)).or_insert((rank as u32, out));
        }
        let split = Regex::new(pre.pattern()).map_err(|e| bad(format!("split regex: {e}")))?;
        Ok(Tokenizer {
            bytes,
            ids,
            model: Model::Bpe {
                merges: merge_map,
                byte_ids: Box::new(byte_ids),
                split,
                whole_pieces: pre == PreTokenizer::Llama3,
            },
            specials,
            is_control,
            is_special,
            pre,
            bos: None,
            eos: None,
            eot: None,
            add_bos: false,
        })
    }

    /// Builds a SentencePiece tokenizer (llama.cpp's `llama` vocabulary type)
    /// from tokens, GGUF token types and scores (higher merges first).
    pub fn new_spm(
        tokens: &[&str],
        types: &[i32],
        scores: &[f32],
        add_space_prefix: bool,
    ) -> Result<Tokenizer, ModelError> {
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut specials = Vec::new();
        let mut is_control = Vec::with_capacity(tokens.len());
        let mut is_special = Vec::with_capacity(tokens.len());
        let mut byte_ids = [None; 256];
        let mut unk = None;
        for (i, (&t, &ty)) in tokens.iter().zip(types).enumerate() {
            is_control.push(ty == TYPE_CONTROL);
            is_special.push(ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED);
            let hex = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'));
            let decoded = match (ty, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (TYPE_BYTE, Some(b)) => {
                    byte_ids[b as usize] = Some(i as u32);
                    vec![b]
                }
                (TYPE_CONTROL | TYPE_USER_DEFINED, _) => {
                    specials.push((t.to_string(), i as u32));
                    t.as_bytes().to_vec()
                }
                _ => t.replace(SPM_SPACE, " ").into_bytes(),
            };
            if ty == TYPE_UNKNOWN && unk.is_none() {
                unk = Some(i as u32);
            }
            bytes.push(decoded);
            ids.entry(t.to_string()).or_insert(i as u32);
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(Tokenizer {
            bytes,
            ids,
            model: Model::Spm {
                scores: scores.to_vec(),
                byte_ids: Box::new(byte_ids),
                unk,
                add_space_prefix,
            },
            specials,
            is_control,
            is_special,
            pre: PreTokenizer::SentencePiece,
            bos: None,
            eos: None,
            eot: None,
            add_bos: false,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// The id of a token given by its vocabulary string.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Encodes `text` (no BOS). With `parse_special`, texts of control and
    /// user-defined tokens (e.g. `<|eot_id|>`) become those tokens; without
    /// it they are ordinary text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        // SentencePiece prefixes a space at the start and after a special token.
        let mut after_special = true;
        while !rest.is_empty() {
            let next = if parse_special {
                self.next_special(rest)
            } else {
                None
            };
            let (plain, special) = match next {
                Some((at, len, id)) => (&rest[..at], Some((len, id))),
                None => (rest, None),
            };
            if !plain.is_empty() {
                self.encode_plain(plain, after_special, &mut out);
            }
            match special {
                Some((len, id)) => {
                    out.push(id);
                    after_special = true;
                    rest = &rest[plain.len() + len..];
                }
                None => rest = "",
            }
        }
        out
    }

    /// `[BOS] + encode(text)` when the model asks for BOS; an error when
    /// `text` is longer than [`MAX_PROMPT_BYTES`].
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, ModelError> {
        check_prompt_len(text.len())?;
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        ids.extend(self.encode(text, parse_special));
        Ok(ids)
    }

    /// The earliest special token in `text`: (byte offset, length, id).
    fn next_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        self.specials
            .iter()
            .filter_map(|(s, id)| text.find(s.as_str()).map(|at| (at, s.len(), *id)))
            .min_by_key(|&(at, len, _)| (at, usize::MAX - len))
    }

    fn encode_plain(&self, text: &str, after_special: bool, out: &mut Vec<u32>) {
        match &self.model {
            Model::Bpe {
                merges,
                byte_ids,
                split,
                whole_pieces,
            } => {
                let piece = |p: &str, out: &mut Vec<u32>| match whole_pieces
                    .then(|| self.whole_piece(p))
                    .flatten()
                {
                    Some(id) => out.push(id),
                    None => bpe(merges, byte_ids, p, out),
                };
                let mut last = 0;
                for m in split.find_iter(text) {
                    // The pattern covers every character; a regex error (backtrack
                    // limit) falls back to the rest of the text as one piece.
                    let Ok(m) = m else { break };
                    if m.start() > last {
                        piece(&text[last..m.start()], out);
                    }
                    piece(m.as_str(), out);
                    last = m.end();
                }
                if last < text.len() {
                    piece(&text[last..], out);
                }
            }
            Model::Spm {
                scores,
                byte_ids,
                unk,
                add_space_prefix,
            } => {
                let mut escaped = String::with_capacity(text.len() + 3);
                if *add_space_prefix && after_special {
                    escaped.push(SPM_SPACE);
                }
                escaped.extend(text.chars().map(|c| if c == ' ' { SPM_SPACE } else { c }));
                self.spm(&escaped, scores, byte_ids, *unk, out);
            }
        }
    }

    /// The id of the ordinary (not special) token whose bytes are `piece`.
    fn whole_piece(&self, piece: &str) -> Option<u32> {
        let encoded: String = piece.bytes().map(|b| BYTE_CHARS[b as usize]).collect();
        let id = *self.ids.get(&encoded)?;
        (!self.is_special[id as usize]).then_some(id)
    }

    /// SentencePiece: start from single characters and repeatedly merge the
    /// adjacent pair whose concatenation is the highest-scoring token
    /// (leftmost on ties); characters left outside the vocabulary fall back
    /// to their `<0xXX>` byte tokens.
    fn spm(
        &self,
        text: &str,
        scores: &[f32],
        byte_ids: &[Option<u32>; 256],
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) {
        // Symbols are byte ranges of `text`.
        let mut syms: Vec<(usize, usize)> = text
            .char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect();
        merge_pairs(&mut syms, |(a, _), (_, b)| {
            let id = *self.ids.get(&text[a..b])?;
            // Highest score first: the negated total-order key of the f32.
            let bits = scores[id as usize].to_bits() as i32;
            let ordered = bits ^ (((bits >> 31) as u32) >> 1) as i32;
            Some((-(ordered as i64), (a, b)))
        });
        for (a, b) in syms {
            match self.ids.get(&text[a..b]) {
                Some(&id) => out.push(id),
                None => {
                    for byte in text[a..b].bytes() {
                        out.extend(byte_ids[byte as usize].or(unk));
                    }
                }
            }
        }
    }

    /// The bytes token `id` decodes to (control tokens: their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], |b| b.as_slice())
    }

    /// Whether `id` is a control token (BOS, EOS, `<|eot_id|>`, …).
    pub fn is_control(&self, id: u32) -> bool {
        self.is_control.get(id as usize).copied().unwrap_or(false)
    }

    /// Decodes ids to text; control tokens are skipped unless `with_special`.
    /// Invalid UTF-8 (a split multi-byte character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], with_special: bool) -> String {
        let text = self.decode_raw(ids, with_special);
        match &self.model {
            // The space SentencePiece prefixed at the start is not part of the text.
            Model::Spm {
                add_space_prefix: true,
                ..
            } => {
                let start = ids.iter().position(|&i| !self.is_control(i)).unwrap_or(0);
                if start == 0 || ids[..start].iter().all(|&i| Some(i) == self.bos) {
                    if let Some(t) = text.strip_prefix(' ') {
                        return t.to_string();
                    }
                }
                text
            }
            _ => text,
        }
    }

    fn decode_raw(&self, ids: &[u32], with_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if with_special || !self.is_control(id) {
                bytes.extend_from_slice(self.token_bytes(id));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte, then "ab", "bc" and "abc" (merges: "b c", then "a b",
    /// so merging "abc" gives "a" + "bc", never "abc"), and "xyz" as a
    /// user-defined token.
    fn tokenizer(pre: PreTokenizer) -> Tokenizer {
        let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        tokens.extend(["ab", "bc", "abc", "xyz"].map(String::from));
        let mut types = vec![1; tokens.len()];
        types[tokens.len() - 1] = TYPE_USER_DEFINED;
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        Tokenizer::new(&tokens, &types, &["b c", "a b"], pre).unwrap()
    }

    #[test]
    fn llama3_pieces_that_are_tokens_skip_the_merges() {
        let (a, bc, abc) = (u32::from(b'a'), 257, 258);
        let llama3 = tokenizer(PreTokenizer::Llama3);
        assert_eq!(llama3.encode("abc", false), [abc]);
        assert_eq!(llama3.encode("abc abc", false)[0], abc);
        // Not a piece on its own: merged as usual.
        assert_eq!(llama3.encode("abcd", false)[..2], [a, bc]);
        // A special token's text is never taken whole from plain text.
        let xyz = "xyz".bytes().map(u32::from).collect::<Vec<_>>();
        assert_eq!(llama3.encode("xyz", false), xyz);
        // GPT-2's split keeps the merges.
        assert_eq!(tokenizer(PreTokenizer::Gpt2).encode("abc", false), [a, bc]);
    }
}
