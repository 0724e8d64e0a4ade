"""What a parent agent should improve, as the diagnosis model sees it, asked in the shape of
DGM's prompts (prompts/self_improvement_prompt.py of jennyzzt/dgm):

- the system message: what the agent is made of, its code, and the request for ONE detailed
  improvement of its coding ability that is not specific to any one task or repository;
- for a failed task: the agent's log, the task, the patch it made, the hidden tests that judge
  it (SWE-bench's test patch, Polyglot's test files; the agent never saw them) and their
  results, then five JSON fields (what happened, possible improvements, the one to make, how,
  and the improvement written as an issue);
- for DGM's special entries (`solve_empty_patches`, `solve_stochasticity`,
  `solve_contextlength`): a prompt of their own, four JSON fields. On Polyglot, DGM asks about
  stochasticity a quarter of the time and about empty patches when the task's patch was empty,
  both with the agent's log.

The answer is held to a JSON schema and asked for again when it is not usable. The problem
statement the parent then works on is DGM's: what the agent is made of, then the suggestion
and the issue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dgm.fm.client import FMClient, first_json_object
from dgm.fm.errors import FMError

SPECIAL_ENTRIES = ("solve_empty_patches", "solve_stochasticity", "solve_contextlength")
STOCHASTICITY_CHANCE_POLYGLOT = 0.25  # get_diagnose_prompt_polyglot's `random.random() < 0.25`

AGENT_SUMMARY = """# The coding agent

- `coding_agent.py` is its entry point and loop: it reads the task, talks to the model, runs
  the tools the model calls, and writes what it changed as `patch.diff` and what it did as
  `trajectory.jsonl` in its output folder. Its command line (`--task-file --repo --out --model
  --max-steps`) and those two files are how it is run and judged: keep them.
- `llm.py` reaches the model (OpenAI's or Anthropic's format) through the URL and key in its
  environment; `tools.py` holds the tools (a persistent bash shell, a file editor).
- `tests/` holds its own tests; a change must keep them passing.
- Tools should work in any repository and for any task: nothing specific to one of them.
"""

SYSTEM = """{summary}
# The coding agent's code
----- code start -----
{code}
----- code end -----

Your job: find ONE detailed plan that would make this agent a better coder. It must help on
tasks in general, not on one particular task or repository."""

TASK = """The coding agent tried the task below and failed.

# The agent's log
----- log start -----
{log}
----- log end -----

# The task
----- task start -----
{statement}
----- task end -----

# The agent's patch
----- patch start -----
{patch}
----- patch end -----

# The hidden tests
The tests that judge whether the task is solved. The agent never sees them: it has to write
tests of its own.
----- tests start -----
{tests}
----- tests end -----

# The hidden tests' results
----- results start -----
{results}
----- results end -----

Answer with one JSON object with these string fields:
- "log_summarization": how the agent went about the task, which tools it used and how, and
  where it went wrong;
- "potential_improvements": changes to the agent that would improve its coding in general
  (better tools or workflow usable in any repository), not fixes for this task; the
  environment and its dependencies are set up already, leave them out;
- "improvement_proposal": the ONE improvement with the most impact among them, in detail;
- "implementation_suggestion": how to build it in the agent's code as it is (change an
  existing tool rather than add one, where that serves);
- "problem_description": the improvement written as an issue a software engineer could
  implement from, with the agent's code in front of them."""

SPECIAL_FIELDS = """Answer with one JSON object with these string fields:
- "potential_improvements": changes to the agent's system that would help (the environment and
  its dependencies are set up already, leave them out);
- "improvement_proposal": the ONE improvement with the most impact among them, in detail;
- "implementation_suggestion": how to build it in the agent's code as it is;
- "problem_description": the improvement written as an issue a software engineer could
  implement from, with the agent's code in front of them."""

SPECIAL = {
    "solve_empty_patches": """Some of the agent's attempts ended with an empty patch: the agent
is not sure to leave a change, or leaves one that only touches tests and not the code under
repair. Make it handle that: the simplest way is to have it try again when it has no patch.""",
    "solve_stochasticity": """The agent is stochastic: it may not make the right patch the first
time. Make it take that into account, for example by trying several times and keeping the
best patch, judged by tests it writes and runs, or by giving it its earlier attempts and their
results as context.""",
    "solve_contextlength": """On some tasks the agent's conversation grew past what the model
accepts, and the model refused it (a context-length error). Make the agent handle that when it
happens: catch the error and shorten what it sends (summarise or drop old tool output). Leave
the conversation alone while it fits.""",
}
LOG = """

# The agent's log
----- log start -----
{log}
----- log end -----"""

TASK_FIELDS = (
    "log_summarization", "potential_improvements", "improvement_proposal",
    "implementation_suggestion", "problem_description",
)  # fmt: skip


@dataclass(frozen=True)
class Failure:
    """What a failed attempt at a task shows the diagnosis model."""

    statement: str
    patch: str
    tests: str
    results: str
    log: str
    empty: bool  # its patch was empty


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    fields: tuple[str, ...]


def prompt(
    entry: str, code: str, failure: Failure | None, *, polyglot: bool, rng: random.Random
) -> Prompt:
    """The messages for an entry: a special one, or a task (with its `failure`)."""
    system = SYSTEM.format(summary=AGENT_SUMMARY, code=code)
    if failure is not None and polyglot:  # DGM's Polyglot diagnosis picks a prompt itself
        if rng.random() < STOCHASTICITY_CHANCE_POLYGLOT:
            entry = "solve_stochasticity"
        elif failure.empty:
            entry = "solve_empty_patches"
    if entry in SPECIAL:
        log = LOG.format(log=failure.log) if failure is not None else ""
        return Prompt(system, SPECIAL[entry] + log + "\n\n" + SPECIAL_FIELDS, TASK_FIELDS[1:])
    if failure is None:
        raise ValueError(f"entry {entry!r} needs the failure it is about")
    user = TASK.format(
        log=failure.log, statement=failure.statement, patch=failure.patch or "(empty)",
        tests=failure.tests, results=failure.results,
    )  # fmt: skip
    return Prompt(system, user, TASK_FIELDS)


def answer_schema(fields: tuple[str, ...]) -> dict:
    """The JSON schema a diagnosis answer is held to: every field, a string."""
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in fields},
        "required": list(fields),
    }


def diagnose(
    client: FMClient, asked: Prompt, *, attempts: int = 3, max_tokens: int = 4096
) -> dict[str, str]:
    """The diagnosis model's answer, its fields all there (asked again up to `attempts`)."""
    schema = answer_schema(asked.fields)
    messages = [{"role": "user", "content": asked.user}]
    for _ in range(attempts):
        answer = client.complete(
            messages, system=asked.system, max_tokens=max_tokens, json_schema=schema
        )
        found = first_json_object(answer.text)
        if found and found.get("problem_description"):
            return {k: str(v) for k, v in found.items()}
        again = "That was not the JSON object asked for: " + ", ".join(asked.fields) + "."
        messages += [
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": again},
        ]
    raise FMError(f"no usable diagnosis in {attempts} answers")


def problem_statement(diagnosis: dict[str, str]) -> str:
    """DGM's problem statement: what the agent is made of, then "To implement" with the
    suggestion and the issue."""
    parts = [
        diagnosis.get("implementation_suggestion", "").strip(),
        diagnosis.get("problem_description", "").strip(),
    ]
    body = "\n\n".join(part for part in parts if part)
    return f"{AGENT_SUMMARY}\n# To implement\n\n{body}\n"
