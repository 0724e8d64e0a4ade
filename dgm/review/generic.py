"""Generic Python risks, from a maintained analyser: bandit's checks through its API, run on
the parent's and the child's versions of the changed files (written to a scratch folder:
bandit reads files; nothing is imported or run)."""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

from dgm.review.findings import Finding, Risk

SKIPPED = ("B101",)  # assert_used: tests assert, and agents' tests are ours to read
LEVELS = {"HIGH": Risk.HIGH, "MEDIUM": Risk.MEDIUM, "LOW": Risk.LOW, "UNDEFINED": Risk.LOW}


def bandit_findings(files: dict[str, str]) -> list[Finding]:
    """bandit's findings on `files` (path -> source), one per issue, at bandit's severity."""
    if not files:
        return []
    with warnings.catch_warnings():  # bandit's plugin loading warns of stevedore's API
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core import config, manager

    logging.getLogger("bandit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="dgm-review-") as scratch:
        root = Path(scratch)
        paths = {}
        for rel, source in files.items():
            path = root / f"{len(paths)}.py"  # the agent's path never names a host file
            path.write_text(source)
            paths[str(path)] = rel
        bandit = manager.BanditManager(
            config.BanditConfig(), "file", quiet=True, profile={"exclude": list(SKIPPED)}
        )
        bandit.discover_files(list(paths))
        bandit.run_tests()
        found = []
        for issue in bandit.get_issue_list():
            rel = paths[issue.fname]
            lines = files[rel].splitlines()
            line = lines[issue.lineno - 1].strip() if 0 < issue.lineno <= len(lines) else ""
            found.append(
                Finding(
                    f"bandit:{issue.test_id}",
                    LEVELS.get(issue.severity, Risk.LOW),
                    rel,
                    issue.lineno,
                    line[:200],
                    f"{issue.test}: {issue.text}",
                )
            )
        return found
