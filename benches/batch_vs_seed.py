#!/usr/bin/env python3
"""`bitnet batch` against the seed's recipe for many prompts: separate
`bitnet run` processes splitting the cores, no batching. Alternates the two
(seed, batch, seed, batch, ...) so a loaded machine's drift hits both, and
prints generated tok/s (all generated tokens / wall time, prompt processing
included) and their ratio per round, and the CPU time (user + system, all
threads) each spent per generated token: on a loaded machine wall time
swings with the other work, while CPU time per token stays close to what
the same work costs on a quiet one. Standard library only.

    python3 benches/batch_vs_seed.py -m b2.gguf -f benches/prompts-12.txt -n 32 --rounds 3
    python3 benches/batch_vs_seed.py ... --procs 1 --threads 2      # seed as one `run -t 2`
    python3 benches/batch_vs_seed.py ... --batch-args="--instances 1 -t 2 --batch-size 12"
"""
import argparse
import concurrent.futures
import json
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import time


def cpu_seconds():
    """User + system time of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def seed(args, prompts):
    """`--procs` workers, each running `bitnet run -t THREADS` on one prompt at a time."""
    def one(prompt):
        cmd = [args.bin, "run", "-m", args.model, "-t", str(args.threads), "-n", str(args.n),
               "--temp", str(args.temp), "--json", "-p", prompt]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        return len(out["token_ids"]), out["timings"]["decode_tok_s"]

    start, cpu = time.perf_counter(), cpu_seconds()
    with concurrent.futures.ThreadPoolExecutor(args.procs) as pool:
        runs = list(pool.map(one, prompts))
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    # The processes decode side by side: together, `procs` times one's speed.
    decode = args.procs * statistics.mean(rate for _, rate in runs)
    return sum(tokens for tokens, _ in runs), wall, cpu, decode


def batch(args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.jsonl")
        cmd = [args.bin, "batch", "-m", args.model, "-f", args.file, "-n", str(args.n),
               "--temp", str(args.temp), "-o", out] + shlex.split(args.batch_args)
        start, cpu = time.perf_counter(), cpu_seconds()
        subprocess.run(cmd, check=True, capture_output=True)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        records = [json.loads(line) for line in open(out)]
    tokens = sum(len(r["tokens"]) for r in records)
    ttft = max(r["timings"]["ttft_ms"] for r in records) / 1e3
    # After the last first token every sequence is decoding.
    decode = (tokens - len(records)) / (wall - ttft)
    return tokens, wall, cpu, ttft, decode


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default="target/release/bitnet")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-f", "--file", required=True, help="one prompt per line")
    p.add_argument("-n", type=int, default=32, help="tokens per prompt")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--procs", type=int, default=2, help="seed: parallel `run` processes")
    p.add_argument("--threads", type=int, default=1, help="seed: `run -t`")
    p.add_argument("--temp", type=float, default=0.0)
    p.add_argument("--batch-args", default="", help="extra `bitnet batch` flags")
    args = p.parse_args()
    prompts = [line for line in open(args.file).read().splitlines() if line.strip()]
    ratios, cpu_ratios, decode_ratios = [], [], []
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        s_tok, s_wall, s_cpu, s_dec = seed(args, prompts)
        b_tok, b_wall, b_cpu, ttft, b_dec = batch(args)
        s_rate, b_rate = s_tok / s_wall, b_tok / b_wall
        s_ms, b_ms = 1e3 * s_cpu / s_tok, 1e3 * b_cpu / b_tok
        ratios.append(b_rate / s_rate)
        cpu_ratios.append(s_ms / b_ms)
        decode_ratios.append(b_dec / s_dec)
        print(f"round {r + 1} (load {load:.1f}): seed {args.procs} x run -t {args.threads}: "
              f"{s_tok} tok in {s_wall:.1f} s = {s_rate:.2f} tok/s, {s_ms:.0f} CPU ms/tok, "
              f"decoding {s_dec:.2f} tok/s | batch: {b_tok} tok in {b_wall:.1f} s = "
              f"{b_rate:.2f} tok/s, {b_ms:.0f} CPU ms/tok, decoding {b_dec:.2f} tok/s after the "
              f"last first token at {ttft:.1f} s | ratios: {ratios[-1]:.2f} tok/s, "
              f"{cpu_ratios[-1]:.2f} CPU, {decode_ratios[-1]:.2f} decoding", flush=True)
    for name, v in [("tok/s", ratios), ("CPU time per token", cpu_ratios),
                    ("decoding tok/s (the limit for long generations)", decode_ratios)]:
        print(f"batch / seed, {name}: median {statistics.median(v):.2f}, "
              f"min {min(v):.2f}, max {max(v):.2f} over {len(v)} rounds")


if __name__ == "__main__":
    main()
