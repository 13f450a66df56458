"""The generated workflows: current, pinned, least-privilege, and safe for self-hosted runners.

zizmor and actionlint check what they can know; the fork/label rule is project policy, so
these tests evaluate each job's `if:` with a small evaluator of GitHub's expression
language, over the events a fork or a maintainer can cause.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import generate
import lanes
import pytest
import yaml

MATRIX = lanes.load()
WORKFLOWS = {path.name: yaml.safe_load(path.read_text()) for path in sorted(generate.WORKFLOWS.glob("*.yml"))}
LABEL = MATRIX.settings["hardware-label"]
REPO = "liger/liger-kernel"


def _jobs():
    for workflow in WORKFLOWS.values():
        yield from workflow["jobs"].items()


def _self_hosted(job: dict) -> bool:
    runs_on = job["runs-on"]
    return "self-hosted" in (runs_on if isinstance(runs_on, list) else [runs_on])


# ------------------------------------------------------------ GitHub expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|&&|\|\||!|\(|\)|,)|'(?P<str>(?:[^']|'')*)'|(?P<num>\d+)|(?P<word>[A-Za-z_][\w.-]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read expression at {text[position:]!r}")
        position = match.end()
        kind = match.lastgroup
        tokens.append((kind, match.group(kind).replace("''", "'") if kind == "str" else match.group(kind)))
    return tokens


def evaluate(expression: str, context: dict) -> object:
    """Evaluate the subset of GitHub's expression syntax that the generated workflows use."""
    tokens = _tokens(expression)
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal position
        token = tokens[position]
        if value is not None and token[1] != value:
            raise ValueError(f"expected {value!r}, got {token[1]!r}")
        position += 1
        return token

    def lookup(path: str) -> object:
        value: object = context
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def call(name: str, args: list) -> object:
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(str(item).lower() == str(needle).lower() for item in haystack)
            return str(needle).lower() in str(haystack or "").lower()
        if name == "fromJSON":
            return json.loads(args[0])
        if name == "always":
            return True
        raise ValueError(f"unknown function {name}")

    def primary() -> object:
        kind, value = take()
        if value == "(" and kind == "op":
            result = disjunction()
            take(")")
            return result
        if kind == "str":
            return value
        if kind == "num":
            return int(value)
        if kind == "word" and peek() == ("op", "("):
            take("(")
            args = []
            while peek() != ("op", ")"):
                args.append(disjunction())
                if peek() == ("op", ","):
                    take(",")
            take(")")
            return call(value, args)
        if kind == "word":
            return (
                {"true": True, "false": False, "null": None}.get(value, lookup(value))
                if "." not in value
                else lookup(value)
            )
        raise ValueError(f"unexpected {value!r}")

    def equal(left: object, right: object) -> bool:
        if isinstance(left, str) and isinstance(right, str):
            return left.lower() == right.lower()
        return left == right

    def comparison() -> object:
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            operator = take()[1]
            right = primary()
            left = equal(left, right) if operator == "==" else not equal(left, right)
        return left

    def negation() -> object:
        if peek() == ("op", "!"):
            take()
            return not negation()
        return comparison()

    def conjunction() -> object:
        left = negation()
        while peek() == ("op", "&&"):
            take()
            right = negation()
            left = right if left else left
        return left

    def disjunction() -> object:
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left if left else right
        return left

    result = disjunction()
    if position != len(tokens):
        raise ValueError(f"trailing tokens in {expression!r}")
    return result


def test_the_evaluator_follows_github_semantics() -> None:
    context = {"github": {"event_name": "push", "ref": "refs/heads/main"}, "x": {"list": ["a", "b"]}}
    assert evaluate("github.event_name == 'PUSH'", context) is True
    assert evaluate("github.event.action == 'labeled'", context) is False
    assert evaluate("github.event.action != 'labeled'", context) is True
    assert evaluate("github.missing || 'fallback'", context) == "fallback"
    assert evaluate("!(github.event_name == 'push') && true", context) is False
    assert evaluate("contains(fromJSON('[\"a\",\"bc\"]'), 'b')", context) is False
    assert evaluate("contains(fromJSON('[\"a\",\"bc\"]'), 'bc')", context) is True


# ---------------------------------------------------------------- the workflows


def test_committed_workflows_are_current() -> None:
    assert generate.stale(MATRIX) == [], "run `python ci/generate.py` and commit the result"


def test_a_stale_workflow_is_detected(tmp_path: Path) -> None:
    for path, text in generate.render(MATRIX).items():
        target = tmp_path / path.relative_to(lanes.ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    assert generate.stale(MATRIX, root=tmp_path) == []
    hardware = tmp_path / ".github" / "workflows" / "hardware.yml"
    hardware.write_text(hardware.read_text().replace("bash ci/gates/nvidia.sh 1", "true"))
    diffs = generate.stale(MATRIX, root=tmp_path)
    assert len(diffs) == 1 and "-        run: true" in diffs[0]


def test_the_yaml_writer_round_trips() -> None:
    for path, text in generate.render(MATRIX).items():
        if path.suffix == ".yml":
            document = yaml.safe_load(text)
            assert document["jobs"], path
    tricky = {"a": ["on", "1.5", "x: y", "#c", "${{ x }}", "-v", "a, b"], "b": {"on": True, "c": "yes"}}
    assert yaml.safe_load(generate.to_yaml(tricky)) == tricky


def test_every_lane_has_one_job_and_nothing_else_runs() -> None:
    cpu, hardware = WORKFLOWS["ci.yml"]["jobs"], WORKFLOWS["hardware.yml"]["jobs"]
    assert set(cpu) == {"changes"} | {lane.name for lane in MATRIX.cpu_lanes}
    assert set(hardware) == {"changes"} | {lane.name for lane in MATRIX.hardware_lanes}
    for lane in MATRIX.cpu_lanes:
        job = cpu[lane.name]
        assert job["runs-on"] == "ubuntu-latest"
        assert job["steps"][-1]["run"] == f"python ci/lanes.py run {lane.name}"


def test_actions_are_pinned_to_full_commits() -> None:
    for name, job in _jobs():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (name, step["uses"])


def test_permissions_are_read_only_and_triggers_are_safe() -> None:
    for file, workflow in WORKFLOWS.items():
        assert workflow["permissions"] == {"contents": "read"}, file
        assert not any("permissions" in job for _, job in workflow["jobs"].items()), file
        assert not {"pull_request_target", "workflow_run"} & set(workflow["on"]), file
        assert workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is True
        assert "schedule" in workflow["on"]


def test_checkouts_keep_no_credentials() -> None:
    for name, job in _jobs():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_self_hosted_jobs_start_clean_gate_first_and_clean_up() -> None:
    for lane in MATRIX.hardware_lanes:
        job = WORKFLOWS["hardware.yml"]["jobs"][lane.name]
        assert _self_hosted(job)
        steps = job["steps"]
        assert "-delete" in steps[0]["run"] and "uses" not in steps[0]
        assert steps[1]["uses"].startswith("actions/checkout@")
        assert steps[2]["run"] == lane.gate_command  # nothing is installed before the gate
        assert steps[-1]["if"] == "always()" and "-delete" in steps[-1]["run"]
        assert steps[-2]["env"]["LIGER_KERNEL_STRICT"] == "1"
    for name, job in WORKFLOWS["ci.yml"]["jobs"].items():
        assert not _self_hosted(job), name


def _context(event_name: str, action: str | None = None, label: str | None = None, fork: bool = False) -> dict:
    event: dict = {}
    if event_name == "pull_request":
        head_repo = "someone/liger-kernel" if fork else REPO
        event = {"action": action, "pull_request": {"head": {"repo": {"full_name": head_repo}}, "number": 7}}
        if label:
            event["label"] = {"name": label}
    everything = json.dumps([lane.name for lane in MATRIX.lanes])
    return {
        "github": {"event_name": event_name, "event": event, "repository": REPO},
        "needs": {"changes": {"outputs": {"lanes": everything}}},
    }


@pytest.mark.parametrize(
    ("event", "runs"),
    [
        (_context("pull_request", "opened", fork=True), False),
        (_context("pull_request", "synchronize", fork=True), False),
        (_context("pull_request", "reopened", fork=True), False),
        (_context("pull_request", "labeled", label="bug", fork=True), False),
        (_context("pull_request", "labeled", label=LABEL, fork=True), True),
        (_context("pull_request", "opened"), True),
        (_context("pull_request", "synchronize"), True),
        (_context("pull_request", "labeled", label="bug"), False),
        (_context("push"), True),
        (_context("schedule"), True),
        (_context("workflow_dispatch"), True),
    ],
)
def test_fork_code_reaches_self_hosted_runners_only_through_the_label(event: dict, runs: bool) -> None:
    for name, job in _jobs():
        if _self_hosted(job):
            assert bool(evaluate(job["if"], event)) is runs, name


def test_jobs_run_only_when_their_lane_is_selected() -> None:
    for file, workflow in WORKFLOWS.items():
        for name, job in workflow["jobs"].items():
            if name == "changes":
                assert "if" not in job and not _self_hosted(job)
                continue
            context = _context("push")
            assert evaluate(job["if"], context), (file, name)
            others = json.dumps([lane.name for lane in MATRIX.lanes if lane.name != name])
            context["needs"]["changes"]["outputs"]["lanes"] = others
            assert not evaluate(job["if"], context), (file, name)


def test_an_unrelated_label_does_not_cancel_a_hardware_run() -> None:
    group = WORKFLOWS["hardware.yml"]["concurrency"]["group"]
    expression = re.findall(r"\$\{\{(.*?)\}\}", group)

    def resolved(context: dict) -> str:
        context["github"]["ref"] = "refs/pull/7/merge"
        return "".join(str(evaluate(part, context)) for part in expression)

    code = resolved(_context("pull_request", "synchronize"))
    assert resolved(_context("pull_request", "labeled", label="bug")) != code
    assert resolved(_context("pull_request", "labeled", label=LABEL)) != code
