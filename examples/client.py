"""Use a running smg gateway with the official ``openai`` client, then look at its workers.

    python examples/client.py --url http://127.0.0.1:30000

Lists the models, asks one question without and one with streaming, asks a follow-up that
shares the first turn's prefix (cache_aware sends it to the same worker), and prints the
gateway's view of its workers (``GET /workers``) and load reports (``GET /get_loads``).
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import openai


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:30000", help="the gateway")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.url + "/v1", api_key="not-needed")

    models = [m.id for m in client.models.list()]
    print("models:", models)
    model = models[0]

    history = [{"role": "user", "content": "Tell me a short story about a fox and a dog."}]
    reply = client.chat.completions.create(model=model, messages=history, max_tokens=24)
    print("\nanswer:", reply.choices[0].message.content)
    print("usage:", reply.usage.prompt_tokens, "prompt tokens,", reply.usage.completion_tokens, "completion")

    history += [{"role": "assistant", "content": reply.choices[0].message.content},
                {"role": "user", "content": "And then what happened?"}]
    print("\nstreamed follow-up: ", end="", flush=True)
    stream = client.chat.completions.create(model=model, messages=history, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True})
    cached = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage is not None and chunk.usage.prompt_tokens_details is not None:
            cached = chunk.usage.prompt_tokens_details.cached_tokens
    print(f"\n(prompt tokens the worker had cached: {cached})")

    print("\nworkers:")
    for w in get(args.url + "/workers")["workers"]:
        print(f"  {w['url']}  {w['status']:<9} in flight {w['load']}  sent {w['processed']}")
    for w in get(args.url + "/get_loads")["workers"]:
        print(f"  {w['worker']}  load report: {w['report']}")


if __name__ == "__main__":
    main()
