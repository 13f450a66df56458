"""The public API of liger-kernel 0.8.5, name by name, against this tree.

``liger_kernel_0_8_5.json`` lists every public module of 0.8.5 and every public
name it defines or re-exports, with the signature a caller uses (written by
``tools/api_manifest.py`` from the 0.8.5 wheel, without importing it).

A name matches when it exists in the same module, is the same kind of thing
(class, autograd Function, function, module), and its signature keeps every
0.8.5 parameter with the same name, kind, position and default. Extra
parameters are allowed only after the 0.8.5 ones, and only with defaults, so
that every 0.8.5 call, positional or keyword, still binds. For an autograd
Function the signature is its ``forward`` after ``ctx`` (for this project's
dispatched Functions, their ``check``, which ``apply`` binds against).

Entries marked ``missing: "<issue>"`` are not matched yet; the test asserts
they really are still missing or mismatched, so that whoever adds one must
remove its mark (``python tools/api_manifest.py --update``) and the manifest
stays the truth. Names not offered on purpose are listed with their reasons in
``declined.toml``; the test asserts each really is absent or different here,
carries no mark, and names a 0.8.5 entry.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
MANIFEST = json.loads((HERE / "liger_kernel_0_8_5.json").read_text())
# an unpacked 0.8.5 wheel (the folder holding liger_kernel/), where a developer has one
REFERENCE = Path(os.environ.get("LIGER_KERNEL_0_8_5_SOURCE", "/nonexistent"))


def _load_tool():
    spec = importlib.util.spec_from_file_location("api_manifest", REPO / "tools" / "api_manifest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("api_manifest", module)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
DECLINED = tool.load_declined(HERE / "declined.toml")


@pytest.mark.parametrize("module", sorted(MANIFEST["modules"]))
def test_module_matches_its_manifest_entries(module):
    data = MANIFEST["modules"][module]
    module_problems = tool.status(module)
    if "missing" in data:
        assert module_problems, f"{module} imports now: remove its missing mark (issue {data['missing']})"
        unmarked = [
            e["name"]
            for e in data["entries"]
            if "missing" not in e and tool.declined_reason(DECLINED, module, e) is None
        ]
        assert not unmarked, f"{module} is missing, but these of its names are not marked: {unmarked}"
        return
    if module_problems and tool.module_declined(module, data, DECLINED):
        return  # not offered on purpose: each of its names is declined with a reason
    assert not module_problems, module_problems
    failures = []
    for entry in data["entries"]:
        problems = tool.status(module, entry)
        if tool.declined_reason(DECLINED, module, entry) is not None:
            if not problems:
                failures.append(f"{entry['name']}: declined, but it matches now; remove it from declined.toml")
            elif "missing" in entry:
                failures.append(f"{entry['name']}: declined, remove its missing mark (issue {entry['missing']})")
            continue
        if "missing" in entry and not problems:
            failures.append(f"{entry['name']}: matches now, remove its missing mark (issue {entry['missing']})")
        elif "missing" not in entry and problems:
            failures.append(f"{entry['name']}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


def test_every_declined_name_is_a_0_8_5_entry_with_a_reason():
    assert DECLINED, "declined.toml lists nothing"
    assert not tool.unknown_declined(MANIFEST, DECLINED)
    for (module, name), reason in DECLINED.items():
        assert isinstance(reason, str) and len(reason.split()) >= 4, (module, name, reason)


def test_declined_names_are_counted_apart_and_a_true_file_is_no_stale_mark():
    launch = {"name": "rms_norm_forward", "kind": "function", "signature": []}
    manifest = {
        "version": "0.8.5",
        "modules": {
            "liger_kernel.ops": {
                "entries": [
                    {**launch, "defined_in": "liger_kernel.ops.rms_norm"},
                    {"name": "LigerRMSNormFunction", "kind": "autograd_function", "signature": None},
                    {"name": "nowhere", "kind": "function", "signature": [], "missing": "22"},
                ]
            },
            "liger_kernel.ops.rms_norm": {"entries": [dict(launch)]},
        },
    }
    declined = {("liger_kernel.ops.rms_norm", "rms_norm_forward"): "returns kernel internals"}
    matched, missing, refused = tool.counts(manifest, declined)
    assert (matched, dict(missing)) == (1, {"22": 1})
    assert refused == [
        ("liger_kernel.ops.rms_norm_forward", "returns kernel internals"),  # the re-export, with its definition
        ("liger_kernel.ops.rms_norm.rms_norm_forward", "returns kernel internals"),
    ]
    assert "declined 2, with reasons" in tool.report(manifest, declined)
    assert "liger_kernel.ops.rms_norm_forward: returns kernel internals" in tool.report(manifest, declined)
    assert tool.stale_marks(manifest, declined) == []
    # a mark on a declined name, a declined name that matches, one that names no entry: all stale
    manifest["modules"]["liger_kernel.ops"]["entries"][0]["missing"] = "22"
    assert tool.stale_marks(manifest, declined) == ["liger_kernel.ops.rms_norm_forward: declined, remove missing=22"]
    assert tool.update_marks(manifest, declined)["modules"]["liger_kernel.ops"]["entries"][0].get("missing") is None
    offered = {("liger_kernel.ops", "LigerRMSNormFunction"): "not offered", ("liger_kernel.ops", "gone"): "x y z w"}
    stale = tool.stale_marks(manifest, {**declined, **offered})
    assert "liger_kernel.ops.gone: declined, but 0.8.5 has no such name here" in stale
    assert any(line.startswith("liger_kernel.ops.LigerRMSNormFunction: declined, but it matches now") for line in stale)


def test_every_mark_names_a_known_issue():
    issues = {"22", "23", "24", "27"}
    marks = [d.get("missing") for d in MANIFEST["modules"].values()]
    marks += [e.get("missing") for d in MANIFEST["modules"].values() for e in d["entries"]]
    assert {m for m in marks if m is not None} <= issues


def test_the_names_frameworks_import_are_matched():
    wanted = {
        "liger_kernel.utils": {"infer_device", "infer_comm_backend", "is_npu_available", "PEFT_AVAILABLE"},
        "liger_kernel.ops.utils": {
            "calculate_settings",
            "compare_version",
            "ensure_contiguous",
            "torch_to_triton_dtype",
        },
        "liger_kernel.transformers.functional": {"CrossEntropyOutput", "liger_cross_entropy"},
    }
    for module, names in wanted.items():
        matched = {e["name"] for e in MANIFEST["modules"][module]["entries"] if "missing" not in e}
        assert names <= matched, (module, names - matched)


@pytest.mark.skipif(
    not (REFERENCE / "liger_kernel").is_dir(), reason="LIGER_KERNEL_0_8_5_SOURCE names no unpacked liger-kernel 0.8.5"
)
def test_the_manifest_is_what_the_tool_reads_from_0_8_5():
    fresh = tool.build(tool.read_sources(str(REFERENCE), download=False))

    def strip(manifest):
        return {
            m: [{k: v for k, v in e.items() if k != "missing"} for e in d["entries"]]
            for m, d in manifest["modules"].items()
        }

    assert strip(fresh) == strip(MANIFEST)


def test_core_modules_import_without_triton():
    """liger_kernel.ops.* (and the helpers) import where triton cannot be imported."""
    modules = [
        m
        for m, d in MANIFEST["modules"].items()
        if "missing" not in d
        and not tool.module_declined(m, d, DECLINED)
        and not m.startswith("liger_kernel.triton")
        and m.startswith("liger_kernel.")
    ]
    script = textwrap.dedent(
        f"""
        import importlib, sys
        sys.modules["triton"] = None  # any import of triton now raises ImportError
        failed = []
        for name in {modules!r}:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                failed.append(f"{{name}}: {{exc}}")
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------ the comparison itself


def _params(signature: str) -> list[inspect.Parameter]:
    namespace: dict = {}
    exec(f"def f{signature}: pass", namespace)
    return list(inspect.signature(namespace["f"]).parameters.values())


def _expected(signature: str) -> list[dict]:
    import ast

    return tool.signature_of(ast.parse(f"def f{signature}: pass").body[0], False)


@pytest.mark.parametrize(
    "ours, matches",
    [
        ("(a, b, c=1, *, d='x')", True),
        ("(a, b, c=1, *, d='x', e=None)", True),  # an extra option, with a default, at the end
        ("(a, b, c=1, *, d='x', e)", False),  # an extra option without a default
        ("(a, c=1, b=2, *, d='x')", False),  # reordered
        ("(a, b, c=2, *, d='x')", False),  # another default
        ("(a, b, c=1, d='x')", False),  # keyword-only became positional
        ("(a, b=None, c=1, *, d='x')", False),  # a default where 0.8.5 has none
        ("(a, bb, c=1, *, d='x')", False),  # renamed
        ("(a, b, c=True, *, d='x')", False),  # True is not 1
        ("(a, b, c=1.0, *, d='x')", True),  # 1.0 == 1 for a number
    ],
)
def test_compare_parameters(ours, matches):
    problems = tool.compare_parameters(_expected("(a, b, c=1, *, d='x')"), _params(ours), {})
    assert (not problems) is matches, problems


@pytest.mark.parametrize("dtype, matches", [("float32", True), ("float16", False)])
def test_defaults_that_name_things_are_evaluated(dtype, matches):
    import torch

    expected = _expected("(x, dtype=torch.float32)")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    ours = [inspect.Parameter("x", kind), inspect.Parameter("dtype", kind, default=getattr(torch, dtype))]
    assert (not tool.compare_parameters(expected, ours, {})) is matches


@dataclasses.dataclass
class _Gate:
    modules: list = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(
    "factory, field, matches",
    [
        ("list", dataclasses.field(default_factory=list), True),
        ("_Gate", dataclasses.field(default_factory=_Gate), True),  # a factory named in the module
        ("list", dataclasses.field(default_factory=tuple), False),  # another factory
        ("list", dataclasses.field(default=None), False),  # a plain default where 0.8.5 has a factory
        ("list", dataclasses.field(), False),  # no default
    ],
)
def test_dataclass_default_factories_are_compared(factory, field, matches):
    entry = {
        "name": "Info",
        "kind": "class",
        "signature": [
            {"name": "name", "kind": "POSITIONAL_OR_KEYWORD", "default": None},
            {"name": "items", "kind": "POSITIONAL_OR_KEYWORD", "default": f"field(default_factory={factory})"},
        ],
    }
    ours = dataclasses.make_dataclass("Info", [("name", str), ("items", object, field)])
    problems = tool.compare(entry, ours, types.SimpleNamespace(_Gate=_Gate))
    assert (not problems) is matches, problems


SOURCES = {
    "liger_kernel/__init__.py": "",
    "liger_kernel/ops/__init__.py": "from liger_kernel.ops.norm import NormFunction\nfrom liger_kernel.ops import _hidden\n",
    "liger_kernel/ops/norm.py": textwrap.dedent(
        """
        import torch
        from liger_kernel.ops.utils import helper
        _SIZE = 8
        LIMIT = 4

        class NormFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx, X, eps, size=_SIZE, *, mode="a"):
                return X

        class Base(torch.nn.Module):
            def __init__(self, hidden, eps=1e-6):
                super().__init__()

        class Child(Base):
            pass

        def _private(x):
            return x

        @triton.jit
        def kernel(X_ptr, BLOCK: tl.constexpr):
            pass
        """
    ),
    "liger_kernel/ops/utils.py": "def helper(n, *args, **kwargs):\n    return n\n\n\ndef _quiet():\n    pass\n",
    "liger_kernel/ops/_hidden.py": "def secret():\n    pass\n",
    "liger_kernel/testing/__init__.py": "def fixture():\n    pass\n",
    "liger_kernel/shim.py": "from liger_kernel.ops.utils import _quiet  # noqa: F401\nfrom liger_kernel.ops.utils import helper\n",
}


def test_build_reads_names_and_signatures_without_importing():
    manifest = tool.build(SOURCES)
    modules = manifest["modules"]
    assert set(modules) == {
        "liger_kernel",
        "liger_kernel.ops",
        "liger_kernel.ops.norm",
        "liger_kernel.ops.utils",
        "liger_kernel.shim",
    }
    norm = {e["name"]: e for e in modules["liger_kernel.ops.norm"]["entries"]}
    # an internal import is not a re-export; private names are left out
    assert set(norm) == {"LIMIT", "NormFunction", "Base", "Child", "kernel"}
    forward = norm["NormFunction"]["signature"]
    assert norm["NormFunction"]["kind"] == "autograd_function"
    assert [(p["name"], p["kind"], p["default"]) for p in forward] == [
        ("X", "POSITIONAL_OR_KEYWORD", None),
        ("eps", "POSITIONAL_OR_KEYWORD", None),
        ("size", "POSITIONAL_OR_KEYWORD", "_SIZE"),
        ("mode", "KEYWORD_ONLY", "'a'"),
    ]
    assert forward[2]["default_value"] == "8"
    # a class without __init__ takes its base's
    assert norm["Child"]["signature"] == norm["Base"]["signature"]
    assert [p["name"] for p in norm["Base"]["signature"]] == ["hidden", "eps"]
    assert norm["kernel"]["kind"] == "triton_kernel"
    # a package re-exports what it imports, with the definition's signature
    ops = {e["name"]: e for e in modules["liger_kernel.ops"]["entries"]}
    assert set(ops) == {"NormFunction"} and ops["NormFunction"]["signature"] == forward
    # an import kept on purpose (noqa: F401) is offered, even under a private name
    assert [e["name"] for e in modules["liger_kernel.shim"]["entries"]] == ["_quiet"]


def test_drift_from_0_8_5_names_each_changed_entry():
    """``api_manifest.py --check --download`` (the upgrade lane) fails on a manifest that no longer
    lists what 0.8.5 offers: a signature changed, a name dropped, a name added."""
    import copy

    assert tool.manifest_drift(MANIFEST, MANIFEST) == []
    edited = copy.deepcopy(MANIFEST)
    module = "liger_kernel.utils"
    entries = edited["modules"][module]["entries"]
    dropped = entries.pop()
    entries[0] = {**entries[0], "signature": "(changed)"}
    entries.append({"name": "not_in_0_8_5", "kind": "function"})
    drift = tool.manifest_drift(MANIFEST, edited)
    assert len(drift) == 3, drift
    assert f"{module}.{dropped['name']}: in 0.8.5, not in the manifest" in drift
    assert f"{module}.not_in_0_8_5: in the manifest, not in 0.8.5" in drift
    assert any(line.startswith(f"{module}.{entries[0]['name']}: ") for line in drift)
