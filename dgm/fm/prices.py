"""What a model's tokens cost, for metering and USD budgets.

Prices are US dollars per million tokens as the providers published them in 2025; a run's
config can override or add any model. A dated name (`claude-sonnet-4-5-20250929`) takes the
price of the longest listed name it extends. Anthropic's cache writes and reads are counted
as input tokens at the input price, which overstates their cost: budgets err on the safe side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Price(NamedTuple):
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens


PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.4),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "gpt-4.1-nano": Price(0.1, 0.4),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "o1": Price(15.0, 60.0),
    "o3": Price(2.0, 8.0),
    "o3-mini": Price(1.1, 4.4),
    "o4-mini": Price(1.1, 4.4),
}


def price_of(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`, or None for a model nobody priced (local models cost nothing)."""
    table = {**PRICES, **(overrides or {})}
    name = model.rsplit("/", 1)[-1]  # "openai/gpt-4o" as OpenAI-compatible routers name it
    matches = [k for k in table if name == k or name.startswith(k + "-")]
    return table[max(matches, key=len)] if matches else None


def cost_usd(
    model: str, input_tokens: int, output_tokens: int, overrides: Mapping[str, Price] | None = None
) -> float:
    price = price_of(model, overrides) or Price(0.0, 0.0)
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000
