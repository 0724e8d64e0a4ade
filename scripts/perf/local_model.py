"""How fast the embedded model runs here: SmolLM2-135M-Instruct on llama.cpp.

    .venv/bin/python scripts/perf/local_model.py [--runs 5]

Prints the load time and, as medians over the runs, generation speed for free text and for a
grammar-constrained tool call (what the seed agent's steps use), in tokens per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dgm.fm import local

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a shell command.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    }
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    model = local.LocalModel()
    print(f"local_model: {local.model_file().name}, load {time.perf_counter() - start:.2f} s")
    cases = {
        "free text (256 tokens)": {
            "messages": [{"role": "user", "content": "Write a long story about a robot."}],
            "max_tokens": 256,
        },
        "constrained tool call": {
            "messages": [{"role": "user", "content": "List the files in the repository."}],
            "tools": TOOLS,
            "max_tokens": 128,
        },
    }
    for name, body in cases.items():
        speeds, tokens = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            answer = model.chat(body)
            elapsed = time.perf_counter() - start
            generated = answer["usage"]["completion_tokens"]
            speeds.append(generated / elapsed)
            tokens.append(generated)
        print(
            f"{name:<24} median {statistics.median(speeds):6.1f} tokens/s "
            f"({statistics.median(tokens):.0f} tokens per answer, prompt included in the time)"
        )


if __name__ == "__main__":
    main()
