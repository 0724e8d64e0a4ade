"""An FM judge of interestingness, in the manner of OMNI: is this change worthwhile, and new
beside the archive members most like it? The verdict is an archive event (`judged`) that
novelty's `judge` option reads back, so a resumed run asks nothing twice."""

from __future__ import annotations

from dataclasses import dataclass

from archive import Archive
from archive.events import EventKind
from dgm.fm.client import first_json_object
from dgm.fm.errors import FMError
from dgm.gateway import Gateway

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"interesting": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["interesting", "reason"],
    "additionalProperties": False,
}
SYSTEM = (
    "You judge changes to a self-improving coding agent. A change is interesting when it is "
    "worthwhile (it could make the agent solve more tasks) and new (the archive members shown "
    "do not already do it). Answer in JSON only."
)
PATCH_CHARS = 6000


@dataclass(frozen=True)
class Verdict:
    interesting: bool
    reason: str


def judge(
    archive: Archive,
    gateway: Gateway,
    child_id: str,
    neighbours: list[str],
    *,
    model: str,
    run_id: str | None = None,
) -> Verdict | None:
    """Ask `model` about the child's change beside its neighbours (ids, nearest first); keep
    and return the verdict (None: no usable answer, nothing kept)."""
    child = archive.node(child_id)
    patch_ref = child.meta.get("patch_blob")
    patch = archive.blobs.get(patch_ref).decode(errors="replace") if patch_ref else ""
    shown = [f"- {archive.node(n).summary or '(no description)'}" for n in neighbours]
    prompt = (
        f"# The change\n{child.proposal.strip()}\n\n```diff\n{patch[:PATCH_CHARS]}\n```\n\n"
        "# Archive members most like it (what each changed)\n"
        + ("\n".join(shown) or "(none yet)")
        + '\n\nIs the change interesting? Answer {"interesting": true or false, "reason": "..."}'
    )
    lease = gateway.open_unit(f"judge:{child_id[:8]}", node_id=child_id)
    try:
        answer = gateway.client(model, lease).complete(
            [{"role": "user", "content": prompt}], system=SYSTEM, max_tokens=300,
            json_schema=VERDICT_SCHEMA,
        )  # fmt: skip
    except FMError:
        return None
    finally:
        gateway.close_unit(lease)
    verdict = _parse(answer.text)
    if verdict is not None:
        payload = {"interesting": verdict.interesting, "reason": verdict.reason, "model": model}
        archive.append_event(EventKind.JUDGED, payload, run_id=run_id, node_id=child_id)
    return verdict


def _parse(text: str) -> Verdict | None:
    value = first_json_object(text)
    if value is None or not isinstance(value.get("interesting"), bool):
        return None
    return Verdict(value["interesting"], str(value.get("reason", "")))
