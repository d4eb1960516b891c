"""Drives `bitnet serve` with the official openai client; prints one JSON
object with what each call returned. Usage: client.py BASE_URL API_KEY"""
import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
out = {}

messages = [{"role": "user", "content": "hi there"}]
r = client.chat.completions.create(model="m", messages=messages, max_tokens=6, temperature=0)
out["chat"] = [r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens]

text, finish = "", None
for chunk in client.chat.completions.create(
    model="m", messages=messages, max_tokens=6, temperature=0, stream=True
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
out["chat_stream"] = [text, finish]

prompt = "def fibonacci(n):\n    return"
r = client.completions.create(model="m", prompt=prompt, max_tokens=8, temperature=0)
out["completion"] = [r.choices[0].text, r.choices[0].finish_reason, r.usage.prompt_tokens]

text, usage = "", None
for chunk in client.completions.create(
    model="m", prompt=prompt, max_tokens=8, temperature=0, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        text += chunk.choices[0].text
    if chunk.usage:
        usage = chunk.usage.total_tokens
out["completion_stream"] = [text, usage]

out["models"] = [m.id for m in client.models.list()]

try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    out["bad_key"] = "accepted"
except openai.AuthenticationError as e:
    out["bad_key"] = e.status_code

print(json.dumps(out))
