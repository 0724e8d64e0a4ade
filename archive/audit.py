"""The audit log: every review, decision, gate passage and export, as entries chained by
hash (each entry's hash covers its number, content and the hash of the entry before it).

The chain's head (the last entry's number and hash) is also kept outside the table, in the
git ref `refs/dgm/audit` of the archive's store, and a new entry follows the head, not the
table: so an entry changed, reordered, deleted or cut off the end is found by `verify`,
even by someone who rewrote the table consistently. A crash between writing the head and
committing the entry reads as a missing entry: the log says so rather than stay silent."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
HEAD_REF = "refs/dgm/audit"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    kind: str  # review | decision | gate | export
    node_id: str | None
    run_id: str | None
    actor: str
    payload: dict[str, Any]
    at: str
    prev: str
    hash: str


def entry_hash(
    seq: int,
    kind: str,
    node_id: str | None,
    run_id: str | None,
    actor: str,
    payload: dict[str, Any],
    at: str,
    prev: str,
) -> str:
    body = {
        "seq": seq,
        "kind": kind,
        "node": node_id,
        "run": run_id,
        "actor": actor,
        "payload": payload,
        "at": at,
        "prev": prev,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_head(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, digest = text.split()
    return int(seq), digest


def format_head(seq: int, digest: str) -> str:
    return f"{seq} {digest}\n"


@dataclass(frozen=True)
class AuditReport:
    entries: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(entries: list[AuditEntry], head: tuple[int, str] | None) -> AuditReport:
    """The first entry that breaks the chain, or the head it does not reach."""
    prev, expected = GENESIS, 1
    for e in entries:
        if e.seq != expected:
            return AuditReport(
                len(entries),
                expected,
                f"entry {expected} is missing (the log goes on at entry {e.seq}): deleted",
            )
        if e.prev != prev:
            return AuditReport(
                len(entries),
                e.seq,
                f"entry {e.seq} does not follow entry "
                f"{e.seq - 1}: reordered, or the one before it rewritten",
            )
        digest = entry_hash(e.seq, e.kind, e.node_id, e.run_id, e.actor, e.payload, e.at, e.prev)
        if digest != e.hash:
            return AuditReport(
                len(entries), e.seq, f"entry {e.seq} does not match its hash: edited"
            )
        prev, expected = e.hash, expected + 1
    last = expected - 1
    if head is None:
        if entries:
            return AuditReport(
                len(entries), 1, f"the log's head ({HEAD_REF}) is missing from the git store"
            )
        return AuditReport(0)
    head_seq, head_hash = head
    if head_seq > last:
        return AuditReport(
            len(entries),
            last + 1,
            f"the log ends at entry {last} but its head is entry {head_seq}: truncated",
        )
    if head_seq < last:
        return AuditReport(
            len(entries),
            head_seq + 1,
            f"entries after the head (entry {head_seq}) were added outside dgm",
        )
    if entries and head_hash != prev:
        return AuditReport(
            len(entries),
            last,
            f"entry {last} is not the head the git store keeps: the log was rewritten",
        )
    return AuditReport(len(entries))
