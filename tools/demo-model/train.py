"""Trains bitnet-rs's built-in demo model: a small BitNet b1.58 transformer.

The model is the graph of transformers' `BitNetForCausalLM` (the one
BitNet-b1.58-2B-4T uses): RMSNorm, RoPE attention with grouped KV heads and a
sub-norm before the output projection, a ReLU² gated MLP with a sub-norm
before the down projection, a tied LM head. Every projection is a BitLinear
trained online with the straight-through estimator: weights ternarized per
tensor with absmean, activations quantized to int8 per token with absmax,
exactly as the engine runs them.

The text is generated here, so nothing is downloaded: short stories from a
small grammar, and additions of two numbers below 100 ("37+48=85"), one
per row as prompts come, in steps that alternate with the stories'. A fixed
set of 200 additions (see `held_out`) is never trained on, in either operand
order; the engine's test answers them and needs 95 % right.

Another 200 additions (see `validation`) are kept out of training too; the
script scores the model on them every `--eval-every` steps and saves the
checkpoint that does best there, so the held-out ones are never used to choose.

The output directory is a Hugging Face checkpoint (`config.json`,
`model.safetensors` with float master weights, `tokenizer.json`) for
`bitnet convert`. The tokenizer is byte-level BPE whose only merges make every
number from 10 to 198 one token (smaller ones are their digit's byte), so an
addition is five tokens, operands at fixed places; all other text is one
token per byte.

    pip install -r tools/demo-model/requirements.txt
    python3 tools/demo-model/train.py --fourier-numbers --out /tmp/demo-1 \
        --steps 4000 --story-every 3 --lr 1e-3 --ema 0.998 --eval-every 250 --seed 22
    python3 tools/demo-model/train.py --resume /tmp/demo-1 --out /tmp/demo-2 \
        --steps 1500 --story-every 3 --lr 2e-4 --warmup 50 --lr-floor 0.1 \
        --ema 0.998 --eval-every 250 --seed 23
    python3 tools/demo-model/train.py --resume /tmp/demo-2 --out /tmp/demo-hf \
        --steps 1500 --story-every 3 --lr 5e-5 --norm-lr 20 --warmup 50 \
        --lr-floor 0.2 --ema 0.998 --eval-every 250 --seed 25
    bitnet convert /tmp/demo-hf -o models/demo.gguf

CPU only; 7000 steps at about 0.4 s each on 2 quiet cores, under an hour
with the evaluations (see README.md for the measured times).
"""

import argparse
import json
import math
import os
import random
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file

HIDDEN = 128
FFN = 384
LAYERS = 4
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
CONTEXT = 256
ROPE_THETA = 10000.0
EPS = 1e-5

BOS = 256
EOS = 257
# Numbers 10..198 are one token each (ids 258..446), made by BPE merges of
# their digits; 0..9 are their digit's byte. So every operand and every sum
# is one token, wherever it stands.
FIRST_NUMBER = 258
VOCAB = FIRST_NUMBER + 189


# ---------------------------------------------------------------- the text


def held_out(a, b):
    """The 200 additions the model never sees: for every a in 0..99 the two b
    with (31a + 17b) mod 50 == 7. The engine's test uses the same rule."""
    return (31 * a + 17 * b) % 50 == 7


def validation(a, b):
    """200 more additions kept out of training, to choose the checkpoint by:
    the held-out ones are only for the final test."""
    return (31 * a + 17 * b) % 50 == 8


def unseen(a, b):
    return held_out(a, b) or held_out(b, a) or validation(a, b) or validation(b, a)


def number(n):
    """The token of 0 <= n <= 198."""
    return ord("0") + n if n < 10 else FIRST_NUMBER + n - 10


def addition(rng):
    """The tokens of "a+b=c" for a pair training may see."""
    while True:
        a, b = rng.randrange(100), rng.randrange(100)
        if not unseen(a, b):
            return [number(a), ord("+"), number(b), ord("="), number(a + b)]


def encode(text):
    """Text → tokens as the converted tokenizer splits it: digit runs that
    spell 0..198 become their number token, everything else its bytes."""
    out = []
    for run in re.findall(r"\d{1,3}|\D+", text):
        if run.isdigit() and str(int(run)) == run and int(run) <= 198:
            out.append(number(int(run)))
        else:
            out.extend(run.encode())
    return out


def decode(tokens):
    text = bytearray()
    for t in tokens:
        if t < 256:
            text.append(t)
        elif t >= FIRST_NUMBER:
            text += str(t - FIRST_NUMBER + 10).encode()
    return text.decode(errors="replace")


NAMES = {
    "Lily": "she", "Mia": "she", "Anna": "she", "Zoe": "she", "Emma": "she",
    "Sara": "she", "Tom": "he", "Ben": "he", "Sam": "he", "Max": "he",
    "Leo": "he", "Jack": "he",
}
BEINGS = [
    "little girl", "little boy", "small dog", "brave cat", "happy bird",
    "tiny frog", "kind bear", "curious fox", "young rabbit", "friendly duck",
]
PLACES = [
    "a small house", "a big forest", "a quiet town", "a green valley",
    "a little farm", "a sunny village", "a house by the sea",
]
SPOTS = ["park", "garden", "river", "hill", "lake", "woods", "beach", "field"]
LIKES = [
    "play with a ball", "run in the grass", "sing songs", "look at the stars",
    "pick flowers", "climb trees", "draw pictures", "jump in puddles",
    "read books", "help the birds",
]
THINGS = [
    "a red ball", "a shiny stone", "a big box", "a little boat", "a blue hat",
    "an old key", "a yellow kite", "a lost puppy", "a pretty shell",
    "a tiny bell",
]
FEELINGS = ["happy", "surprised", "excited", "curious", "proud"]
FRIENDS = ["mom", "dad", "best friend", "grandma", "little sister", "teacher"]
ENDINGS = [
    "They played together all day.",
    "They laughed and had a lot of fun.",
    "They shared it and became good friends.",
    "They took good care of it.",
]
MORALS = [
    "Sharing makes everyone happy.",
    "It is good to be kind.",
    "Friends make every day better.",
    "Being brave helps you find new things.",
]


def story(rng):
    name = rng.choice(list(NAMES))
    he = NAMES[name]
    He = he.capitalize()
    his = "her" if he == "she" else "his"
    thing = rng.choice(THINGS)
    the_thing = "the " + thing.split(" ", 1)[1]
    spot = rng.choice(SPOTS)
    being = rng.choice(BEINGS)
    a = "an" if being[0] in "aeiou" else "a"
    friend = rng.choice(FRIENDS)
    if rng.random() < 0.5:
        lines = [f"Once upon a time, there was {a} {being} named {name}."]
    else:
        lines = [f"Once upon a time, in {rng.choice(PLACES)}, there lived {a} {being} named {name}."]
    lines.append(f"{name} loved to {rng.choice(LIKES)}.")
    lines.append(rng.choice([
        f"One day, {name} went to the {spot} and found {thing}.",
        f"One day, {name} saw {thing} near the {spot}.",
    ]))
    lines.append(f"{name} was very {rng.choice(FEELINGS)}.")
    lines.append(rng.choice([
        f"{He} showed {the_thing} to {his} {friend}.",
        f"{He} ran home to show {his} {friend}.",
        f"{He} asked {his} {friend} to come and see.",
    ]))
    lines.append(rng.choice(ENDINGS))
    if rng.random() < 0.3:
        lines.append(rng.choice(MORALS))
    lines.append("The end.")
    return " ".join(lines)


def story_rows(rng, batch):
    """`batch` windows of CONTEXT + 1 tokens, each starting at a story's BOS
    and packed with whole stories; padded with EOS, which is not scored."""
    tokens = np.full((batch, CONTEXT + 1), EOS, dtype=np.int32)
    mask = np.zeros((batch, CONTEXT), dtype=np.float32)
    for r in range(batch):
        seq = []
        while True:
            doc = [BOS, *story(rng).encode(), EOS]
            if seq and len(seq) + len(doc) > CONTEXT + 1:
                break
            seq += doc
        seq = seq[: CONTEXT + 1]
        tokens[r, : len(seq)] = seq
        mask[r, : len(seq) - 1] = 1.0
    return tokens, mask


SUM_LEN = 8


def addition_rows(rng, batch):
    """`batch` rows of one addition each, at the start as prompts are."""
    tokens = np.full((batch, SUM_LEN + 1), EOS, dtype=np.int32)
    mask = np.zeros((batch, SUM_LEN), dtype=np.float32)
    for r in range(batch):
        seq = [BOS, *addition(rng), EOS]
        tokens[r, : len(seq)] = seq
        mask[r, : len(seq) - 1] = 1.0
    return tokens, mask


# --------------------------------------------------------------- the model


def ste(x, q):
    """`q` forward, identity backward (the straight-through estimator)."""
    return x + jax.lax.stop_gradient(q - x)


def bitlinear(x, w):
    """y = x Wᵀ with W absmean-ternarized and x absmax-quantized per token."""
    ws = jnp.maximum(jnp.mean(jnp.abs(w)), 1e-5)
    wq = jnp.clip(jnp.round(w / ws), -1, 1) * ws
    xs = 127.0 / jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), 1e-5)
    xq = jnp.clip(jnp.round(x * xs), -128, 127) / xs
    return ste(x, xq) @ ste(w, wq).T


def rms_norm(x, g):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + EPS) * g


def rope(x, pos):
    """transformers' rotate-half RoPE; x is [batch, time, heads, HEAD_DIM]."""
    inv = ROPE_THETA ** (-jnp.arange(0, HEAD_DIM, 2, dtype=jnp.float32) / HEAD_DIM)
    ang = pos[:, None].astype(jnp.float32) * inv[None, :]
    cos = jnp.concatenate([jnp.cos(ang)] * 2, -1)[None, :, None, :]
    sin = jnp.concatenate([jnp.sin(ang)] * 2, -1)[None, :, None, :]
    half = HEAD_DIM // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def forward(p, tokens):
    """Logits [batch, time, VOCAB] for tokens [batch, time]."""
    b, t = tokens.shape
    pos = jnp.arange(t)
    x = p["model.embed_tokens.weight"][tokens]
    causal = jnp.tril(jnp.ones((t, t), dtype=bool))
    for i in range(LAYERS):
        w = lambda n: p[f"model.layers.{i}.{n}"]
        h = rms_norm(x, w("input_layernorm.weight"))
        q = bitlinear(h, w("self_attn.q_proj.weight")).reshape(b, t, HEADS, HEAD_DIM)
        k = bitlinear(h, w("self_attn.k_proj.weight")).reshape(b, t, KV_HEADS, HEAD_DIM)
        v = bitlinear(h, w("self_attn.v_proj.weight")).reshape(b, t, KV_HEADS, HEAD_DIM)
        q, k = rope(q, pos), rope(k, pos)
        group = HEADS // KV_HEADS
        k = jnp.repeat(k, group, axis=2)
        v = jnp.repeat(v, group, axis=2)
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(HEAD_DIM)
        s = jnp.where(causal, s, -jnp.inf)
        a = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, -1), v).reshape(b, t, HIDDEN)
        a = rms_norm(a, w("self_attn.attn_sub_norm.weight"))
        x = x + bitlinear(a, w("self_attn.o_proj.weight"))
        h = rms_norm(x, w("post_attention_layernorm.weight"))
        g = jnp.square(jax.nn.relu(bitlinear(h, w("mlp.gate_proj.weight"))))
        m = rms_norm(g * bitlinear(h, w("mlp.up_proj.weight")), w("mlp.ffn_sub_norm.weight"))
        x = x + bitlinear(m, w("mlp.down_proj.weight"))
    x = rms_norm(x, p["model.norm.weight"])
    return x @ p["model.embed_tokens.weight"].T


def init(seed):
    rng = np.random.default_rng(seed)
    normal = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float32)
    ones = lambda n: np.ones(n, dtype=np.float32)
    p = {"model.embed_tokens.weight": normal(VOCAB, HIDDEN), "model.norm.weight": ones(HIDDEN)}
    kv = KV_HEADS * HEAD_DIM
    for i in range(LAYERS):
        for n, v in {
            "input_layernorm.weight": ones(HIDDEN),
            "post_attention_layernorm.weight": ones(HIDDEN),
            "self_attn.q_proj.weight": normal(HIDDEN, HIDDEN),
            "self_attn.k_proj.weight": normal(kv, HIDDEN),
            "self_attn.v_proj.weight": normal(kv, HIDDEN),
            "self_attn.o_proj.weight": normal(HIDDEN, HIDDEN),
            "self_attn.attn_sub_norm.weight": ones(HIDDEN),
            "mlp.gate_proj.weight": normal(FFN, HIDDEN),
            "mlp.up_proj.weight": normal(FFN, HIDDEN),
            "mlp.down_proj.weight": normal(HIDDEN, FFN),
            "mlp.ffn_sub_norm.weight": ones(FFN),
        }.items():
            p[f"model.layers.{i}.{n}"] = v
    return {k: jnp.asarray(v) for k, v in p.items()}


FOURIER_PERIODS = (2, 5, 10, 20, 50, 100, 200, 400)


def fourier_numbers(p, scale=0.1):
    """Gives each number token (0..198) an embedding that starts with
    cos and sin of 2πn/T for a few periods T. The LM head is tied, so a
    hidden state carrying those features of a+b scores the sum token highest;
    the gated ReLU² MLP forms the products that angle addition needs. From
    plain random embeddings the additions are learned far more slowly."""
    e = np.array(p["model.embed_tokens.weight"])
    for n in range(199):
        angles = [2 * math.pi * n / t for t in FOURIER_PERIODS]
        features = [f(a) for a in angles for f in (math.cos, math.sin)]
        e[number(n), : len(features)] = np.array(features) * scale
    return {**p, "model.embed_tokens.weight": jnp.asarray(e)}


def loss_fn(p, tokens, mask):
    logits = forward(p, tokens[:, :-1])
    logp = jax.nn.log_softmax(logits, -1)
    nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]
    return jnp.sum(nll * mask) / jnp.sum(mask)


def lr_at(step, steps, peak, warm=100, floor=0.05):
    """Linear warm-up over `warm` steps, then a cosine down to `floor` × peak."""
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


@jax.jit
def train_step(p, m, v, tokens, mask, lr, step, norm_lr=1.0):
    """One AdamW step (β = 0.9, 0.98; weight decay on matrices only; the
    norms' gains move `norm_lr` times faster)."""
    loss, g = jax.value_and_grad(loss_fn)(p, tokens, mask)
    b1, b2 = 0.9, 0.98
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
    c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)

    def update(w, m, v):
        decay = 0.05 * w if w.ndim == 2 else 0.0
        rate = lr if w.ndim == 2 else lr * norm_lr
        return w - rate * ((m / c1) / (jnp.sqrt(v / c2) + 1e-8) + decay)

    return jax.tree.map(update, p, m, v), m, v, loss


@jax.jit
def average(avg, p, decay):
    """Exponential moving average of the weights: the ternary trits of the
    raw weights flicker from step to step; those of the average settle."""
    return jax.tree.map(lambda a, w: decay * a + (1 - decay) * w, avg, p)


# ----------------------------------------------------------- evaluation

@jax.jit
def next_tokens(p, tokens, lengths):
    """The greedy next token of each row of tokens [batch, CONTEXT] whose
    first `lengths[row]` entries are filled (one shape: compiled once)."""
    logits = forward(p, tokens)
    return jnp.argmax(logits[jnp.arange(tokens.shape[0]), lengths - 1], -1)


def generate(p, prompts, n):
    """Greedy continuations (text, up to n tokens or EOS) of text prompts."""
    tokens = np.full((len(prompts), CONTEXT), EOS, dtype=np.int32)
    lengths = np.zeros(len(prompts), dtype=np.int32)
    for r, prompt in enumerate(prompts):
        ids = [BOS, *encode(prompt)]
        tokens[r, : len(ids)] = ids
        lengths[r] = len(ids)
    out = [[] for _ in prompts]
    done = np.zeros(len(prompts), dtype=bool)
    for _ in range(n):
        nxt = np.asarray(next_tokens(p, jnp.asarray(tokens), jnp.asarray(lengths)))
        for r, t in enumerate(nxt):
            if done[r] or t in (BOS, EOS) or lengths[r] >= CONTEXT:
                done[r] = True
                continue
            out[r].append(int(t))
            tokens[r, lengths[r]] = t
            lengths[r] += 1
        if done.all():
            break
    return [decode(o) for o in out]


def accuracy(p, split):
    """Greedy answers to the 200 additions of `split` (`held_out`, as the
    engine's test asks, or `validation`)."""
    pairs = [(a, b) for a in range(100) for b in range(100) if split(a, b)]
    answers = generate(p, [f"{a}+{b}=" for a, b in pairs], 3)
    right = sum(ans == str(a + b) for ans, (a, b) in zip(answers, pairs))
    return right / len(pairs)


# ---------------------------------------------------------------- output


def bytes_to_unicode():
    """GPT-2's byte → printable character map used by byte-level BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def number_merges():
    """BPE merges that make each of 10..198 one token: the two-digit ones in
    numeric order, then for each three-digit number the merge that joins
    the two pieces the two-digit merges leave (found by running BPE)."""
    merges = [(str(n)[0], str(n)[1]) for n in range(10, 100)]
    rank = {m: i for i, m in enumerate(merges)}
    for n in range(100, 199):
        parts = list(str(n))
        while len(parts) > 2:
            i = min(range(len(parts) - 1), key=lambda i: (rank.get((parts[i], parts[i + 1]), 1e9), i))
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        merges.append(tuple(parts))
        rank[tuple(parts)] = len(merges) - 1
    return merges


def tokenizer_json():
    chars = bytes_to_unicode()
    vocab = {chars[b]: b for b in range(256)}
    vocab.update({str(n): number(n) for n in range(10, 199)})
    merges = [f"{l} {r}" for l, r in number_merges()]
    special = lambda i, s: {
        "id": i, "content": s, "single_word": False, "lstrip": False,
        "rstrip": False, "normalized": False, "special": True,
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(BOS, "<|begin_of_text|>"), special(EOS, "<|end_of_text|>")],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT},
                 "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None,
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def config_json():
    return {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "hidden_act": "relu2",
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": EPS,
        "rope_theta": ROPE_THETA,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "torch_dtype": "float32",
    }


def save(p, out):
    os.makedirs(out, exist_ok=True)
    save_file({k: np.asarray(v) for k, v in p.items()}, os.path.join(out, "model.safetensors"))
    for name, obj in [("config.json", config_json()), ("tokenizer.json", tokenizer_json())]:
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)


def load(directory):
    from safetensors.numpy import load_file

    return {k: jnp.asarray(v) for k, v in load_file(os.path.join(directory, "model.safetensors")).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="Hugging Face checkpoint directory to write")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--story-every", type=int, default=2,
                    help="every N-th step is a story step, the others additions")
    ap.add_argument("--resume", help="start from this checkpoint directory's weights")
    ap.add_argument("--stop-after", type=int, help="stop (and save) after this many of --steps")
    ap.add_argument("--fourier-numbers", action="store_true",
                    help="set the number tokens' embeddings to Fourier features first")
    ap.add_argument("--story-batch", type=int, default=8)
    ap.add_argument("--sum-batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100, help="steps of linear warm-up")
    ap.add_argument("--lr-floor", type=float, default=0.05,
                    help="the cosine schedule ends at this fraction of --lr")
    ap.add_argument("--norm-lr", type=float, default=1.0,
                    help="the norms' gains learn this many times faster than the matrices")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="evaluate and save an exponential moving average of the weights with this decay")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=200)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    p = init(args.seed) if args.resume is None else load(args.resume)
    if args.fourier_numbers:
        p = fourier_numbers(p)
    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    avg = p
    best = -1.0
    start = time.time()
    last = args.stop_after or args.steps
    for step in range(last):
        if step % args.story_every == 0:
            tokens, mask = story_rows(rng, args.story_batch)
        else:
            tokens, mask = addition_rows(rng, args.sum_batch)
        lr = lr_at(step, args.steps, args.lr, args.warmup, args.lr_floor)
        p, m, v, loss = train_step(p, m, v, tokens, mask, lr, step, args.norm_lr)
        avg = average(avg, p, args.ema) if args.ema else p
        if step % 50 == 0 or step == last - 1:
            print(f"step {step:5d}  loss {float(loss):.4f}  lr {lr:.2e}  "
                  f"{time.time() - start:6.0f} s", flush=True)
        if (step + 1) % args.eval_every == 0 or step == last - 1:
            val = accuracy(avg, validation)
            print(f"  additions right: {val:.1%} validation, "
                  f"{accuracy(avg, held_out):.1%} held out", flush=True)
            text = generate(avg, ["Once upon a time"], 160)[0]
            print(f"  Once upon a time{text}", flush=True)
            # Keep the checkpoint that does best on validation.
            if val >= best:
                best = val
                save(avg, args.out)
    print(f"wrote {args.out} (validation {best:.1%}) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
