#!/usr/bin/env python3
"""Load for `bitnet serve`: C concurrent clients each send R streaming
completions; prints completion tok/s (all tokens / wall time), p50/p95
time to first token, and the longest pause between two text chunks of one
stream (median and worst over the streams). Standard library only.

    python3 benches/serve_load.py 127.0.0.1:8080 --clients 4 --requests 3 --max-tokens 32
"""
import argparse
import http.client
import json
import statistics
import threading
import time


def one(addr, prompt, max_tokens):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    ttft, tokens, last, pause = None, 0, None, 0.0
    for line in resp:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["text"]:
            now = time.perf_counter()
            if ttft is None:
                ttft = now - start
            else:
                pause = max(pause, now - last)
            last = now
    conn.close()
    return ttft, tokens, pause


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--requests", type=int, default=3, help="per client")
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args()
    results, lock = [], threading.Lock()

    def client(c):
        for r in range(args.requests):
            res = one(args.addr, f"Client {c} request {r}: once upon a time there was", args.max_tokens)
            with lock:
                results.append(res)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttfts = sorted(t for t, _, _ in results if t is not None)
    tokens = sum(n for _, n, _ in results)
    pauses = sorted(p for _, _, p in results)
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    print(f"clients {args.clients}: {len(results)} requests, {tokens} tokens in {wall:.1f} s = "
          f"{tokens / wall:.1f} tok/s; TTFT p50 {statistics.median(ttfts) * 1e3:.0f} ms, "
          f"p95 {p95 * 1e3:.0f} ms; longest pause p50 {statistics.median(pauses) * 1e3:.0f} ms, "
          f"max {pauses[-1] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
