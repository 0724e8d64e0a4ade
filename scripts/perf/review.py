"""The safety review: what it detects, what it costs.

    .venv/bin/python scripts/perf/review.py [--fm-sample 6] [--model smollm2-135m-instruct]

The static reviewer runs on the test corpus (`tests/test_review_corpus.py`: malicious or sloppy
changes to the seed agent and benign ones, each a child of the seed in a fresh archive). It
prints the detection table (kind x expected level x level found, each change once), the
benign changes rated above low (false positives), and the static reviewer's wall time per
child (the diff read from git, the rules, bandit, the review stored).

Then the FM reviewer (`review_with_model`, metered by a gateway as in a run) on a sample of
the children, with the embedded model unless the environment names an upstream: tokens in
and out per child and seconds. The tokens in (rubric, findings, diff) are what any model
reads, within the tokenizer's differences; the tokens out are the model's own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from archive import Archive, Origin
from dgm.expand import SEED_AGENT
from dgm.review import Risk
from dgm.review.gates import ReviewPolicy
from dgm.review.service import findings_of, review_node, review_with_model, reviewers

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the corpus is the tests'
from tests.test_review_corpus import BENIGN, MALICIOUS, add_child, kind_of


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fm-sample", type=int, default=6, help="Children the FM reviews.")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with Archive.init(root / "archive") as archive:
            seed = archive.add_node(SEED_AGENT, origin=Origin.SEED).id
            corpus = (archive, seed, root)
            static = reviewers(ReviewPolicy(fm=False))
            seconds, rows, false_positives, children = [], [], [], []
            for name, rule, level, edit in MALICIOUS:
                node = add_child(corpus, name, edit)
                start = time.perf_counter()
                review = review_node(archive, node, static)
                seconds.append(time.perf_counter() - start)
                found = Risk(review.risk)
                caught = found.rank >= level.rank and any(
                    f.rule == rule and f.level.rank >= level.rank for f in findings_of(review)
                )
                rows.append((kind_of(rule), name, level, found, caught))
                children.append(node)
            for name, edit in BENIGN:
                node = add_child(corpus, name, edit)
                start = time.perf_counter()
                review = review_node(archive, node, static)
                seconds.append(time.perf_counter() - start)
                if review.risk != "low":
                    false_positives.append((name, review.reason))
                children.append(node)
            _detections(rows)
            print(f"\nbenign changes above low: {len(false_positives)} of {len(BENIGN)}")
            for name, reason in false_positives:
                print(f"  {name}: {reason}")
            print(
                f"\nstatic review per child ({len(seconds)} children): median "
                f"{statistics.median(seconds):.3f} s, max {max(seconds):.3f} s"
            )
            if args.fm_sample:
                _fm_cost(archive, children, args.fm_sample, args.model)


def _detections(rows: list[tuple[str, str, Risk, Risk, bool]]) -> None:
    print(f"{'kind':<13} {'change':<44} {'expected':<9} {'found':<9} ok")
    for kind, name, expected, found, ok in sorted(rows, key=lambda r: r[0]):
        mark = "yes" if ok else "NO"
        print(f"{kind:<13} {name[:44]:<44} {expected.value:<9} {found.value:<9} {mark}")
    missed = sum(not ok for *_, ok in rows)
    print(f"malicious changes below their level: {missed} of {len(rows)}")


def _fm_cost(archive: Archive, children: list[str], sample: int, model: str) -> None:
    step = max(1, len(children) // sample)
    chosen = children[::step][:sample]
    print(f"\nFM reviewer ({model}) on {len(chosen)} children:")
    print(f"{'diff lines':>10} {'tokens in':>10} {'tokens out':>10} {'seconds':>8}  note")
    totals = []
    for node in chosen:
        review = review_with_model(archive, node, ReviewPolicy(), model)
        fm = (review.details or {}).get("fm", {})
        calls = archive.fm_calls(node_id=node)
        tokens_in = sum(c.input_tokens for c in calls)
        tokens_out = sum(c.output_tokens for c in calls)
        child = archive.node(node)
        lines = archive.git.diff(archive.node(child.parent_id).commit, child.commit).count("\n")
        note = fm.get("error") or f"risk {fm.get('risk')}"
        print(f"{lines:>10} {tokens_in:>10} {tokens_out:>10} {fm.get('seconds', 0):>8.1f}  {note}")
        if tokens_in:
            totals.append((tokens_in, tokens_out))
    if totals:
        print(
            f"median per child: {statistics.median(t[0] for t in totals):.0f} tokens in, "
            f"{statistics.median(t[1] for t in totals):.0f} out"
        )


if __name__ == "__main__":
    main()
