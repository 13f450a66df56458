"""The liger-kernel 0.8.5 API-parity manifest: what 0.8.5 offers, and what this tree matches.

``build`` reads the 0.8.5 distribution (an unpacked wheel, a ``.whl`` file, or
one fetched with ``--download``) through :mod:`ast`, never importing it (its
modules import triton at top level), and lists every public module with every
public name it defines or re-exports: functions with their signature, classes
with the signature a caller uses (the ``forward`` after ``ctx`` for a
``torch.autograd.Function``, ``__init__`` after ``self`` otherwise), and
constants. Defaults are kept as source text.

Each entry of the written manifest carries ``missing: "<issue>"`` while this
tree does not match it, naming the issue that brings it. Names this project
does not offer on purpose are listed, each with its reason, in ``declined.toml``
beside the manifest (by the module that defines them; a re-export is declined
with its definition): they carry no mark, are counted apart, and a declined
name that matches after all, or names no 0.8.5 entry, is a stale mark. ``--check`` compares
the tree with the manifest and prints the counts; ``--update`` rewrites the
marks from what the tree provides. :func:`compare` is the one statement of
"matches", shared with ``packages/liger-kernel/tests/compat/test_api_manifest.py``:
every 0.8.5 parameter present with the same name, kind, position and default;
extra parameters only after them, and only with defaults.

    python tools/api_manifest.py --source DIR --write     # build from 0.8.5
    python tools/api_manifest.py --check                            # counts, exit 1 on stale marks
    python tools/api_manifest.py --update                           # rewrite the marks
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "packages/liger-kernel/tests/compat/liger_kernel_0_8_5.json"
DECLINED = MANIFEST.with_name("declined.toml")
PACKAGE = "liger_kernel"
VERSION = "0.8.5"

# Decorators that make a module-level function a Triton kernel rather than Python API.
_TRITON_DECORATORS = ("jit", "autotune", "heuristics")
_AUTOGRAD_BASES = {"Function", "torch.autograd.Function", "autograd.Function"}
_NOT_PUBLIC_PARTS = {"testing", "tests", "test"}
# Module-level names that are plumbing, not API: a module's logger, __all__.
_NOT_API = {"logger", "__all__"}


# --------------------------------------------------------------------------- reading 0.8.5


def read_sources(source: str | None, download: bool) -> dict[str, str]:
    """``liger_kernel/...py`` path -> source text, from a directory holding
    ``liger_kernel/``, a wheel, or ``pip download`` into a temporary directory."""
    if download:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, f"liger-kernel=={VERSION}"],
                check=True,
            )
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise SystemExit(f"pip download left no wheel in {tmp}")
            return _read_wheel(wheels[0])
    if source is None:
        raise SystemExit("give --source (a directory or a .whl) or --download")
    path = Path(source)
    if path.suffix == ".whl":
        return _read_wheel(path)
    root = path / PACKAGE if (path / PACKAGE).is_dir() else path
    if not (root / "__init__.py").is_file() or root.name != PACKAGE:
        raise SystemExit(f"{source}: neither a wheel nor a directory holding {PACKAGE}/")
    return {str(p.relative_to(root.parent)): p.read_text() for p in sorted(root.rglob("*.py"))}


def _read_wheel(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: archive.read(name).decode()
            for name in sorted(archive.namelist())
            if name.startswith(f"{PACKAGE}/") and name.endswith(".py")
        }


def module_name(path: str) -> str:
    parts = path[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_public_module(name: str) -> bool:
    parts = name.split(".")
    return not any(p.startswith("_") or p in _NOT_PUBLIC_PARTS for p in parts)


# --------------------------------------------------------------------------- signatures


def signature_of(func: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> list[dict[str, Any]]:
    """Parameters as [{name, kind, default}] with kinds named as ``inspect``
    names them and defaults as source text (None: no default)."""
    a = func.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [
        _param(arg.arg, "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD", default)
        for i, (arg, default) in enumerate(zip(positional, defaults, strict=True))
    ]
    if drop_first and params:
        params.pop(0)
    if a.vararg:
        params.append(_param(a.vararg.arg, "VAR_POSITIONAL", None))
    params += [_param(arg.arg, "KEYWORD_ONLY", d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        params.append(_param(a.kwarg.arg, "VAR_KEYWORD", None))
    return params


def _param(name: str, kind: str, default: ast.expr | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "default": None if default is None else ast.unparse(default)}


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        names.add(ast.unparse(target))
    return names


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    return None


def _dataclass_fields(cls: ast.ClassDef) -> list[dict[str, Any]]:
    return [
        _param(node.target.id, "POSITIONAL_OR_KEYWORD", node.value)
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and "ClassVar" not in ast.unparse(node)
    ]


# --------------------------------------------------------------------------- one module


def _assigned(value: ast.expr | None, whole_target: bool) -> dict[str, Any]:
    """A module-level assignment: an alias of another name (``set_backend =
    set_impl``), a Function's ``apply`` given a functional name (callable,
    signature not recorded: ``apply`` takes what ``forward`` takes), or a constant."""
    if whole_target and isinstance(value, ast.Name):
        return {"kind": "alias", "target": value.id}
    if whole_target and isinstance(value, ast.Attribute) and value.attr == "apply":
        return {"kind": "function", "signature": None}
    return {"kind": "constant"}


@dataclass
class _Module:
    name: str
    is_package: bool
    defined: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> raw entry
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, name or "")
    exported: list[str] = field(default_factory=list)  # names this module offers, in source order
    all_names: list[str] | None = None
    explicit: set[str] = field(default_factory=set)  # private names offered on purpose
    literals: dict[str, str] = field(default_factory=dict)  # module constant -> its literal value

    def with_values(self, signature: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """A default naming a module constant (``chunk_mem_const=_CHUNK_MEM_CONST``)
        also gets the constant's literal value, which a caller sees."""
        for param in signature or ():
            if param["default"] in self.literals:
                param["default_value"] = self.literals[param["default"]]
        return signature


def _module_level(body: list[ast.stmt]):
    """Statements run at import time, through if/try/with blocks (not functions)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _module_level(block)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def parse_module(name: str, path: str, source: str) -> _Module:
    tree = ast.parse(source, filename=path)
    lines = source.splitlines()
    mod = _Module(name, path.endswith("__init__.py"))
    for node in _module_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = _decorator_names(node)
            is_kernel = any(d.split(".")[-1] in _TRITON_DECORATORS and "triton" in d for d in decorators)
            mod.defined.setdefault(
                node.name,
                {"kind": "triton_kernel" if is_kernel else "function", "signature": signature_of(node, False)},
            )
        elif isinstance(node, ast.ClassDef):
            mod.classes.setdefault(node.name, node)
            mod.defined.setdefault(node.name, {"kind": "class"})
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        if leaf.id == "__all__" and node.value is not None:
                            try:
                                mod.all_names = list(ast.literal_eval(node.value))
                            except ValueError:
                                pass
                        mod.defined.setdefault(leaf.id, _assigned(node.value, leaf is target))
                        if leaf is target and node.value is not None:
                            try:
                                ast.literal_eval(node.value)
                                mod.literals.setdefault(leaf.id, ast.unparse(node.value))
                            except (ValueError, SyntaxError):
                                pass
        elif isinstance(node, ast.AugAssign) and ast.unparse(node.target) == "__all__":
            pass  # extensions of __all__ depend on the environment; the names are imported anyway
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(name, mod.is_package, node)
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            kept = "noqa: F401" in text or "noqa:F401" in text
            for alias in node.names:
                local = alias.asname or alias.name
                mod.imports[local] = (origin, alias.name)
                if origin.split(".")[0] == PACKAGE and (mod.is_package or kept):
                    mod.exported.append(local)
                    if kept:  # an import kept on purpose is offered even under a private name
                        mod.explicit.add(local)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                mod.imports[alias.asname or alias.name.split(".")[0]] = (alias.name if alias.asname else "", "")
    for entry in mod.defined.values():
        mod.with_values(entry.get("signature"))
    for local in mod.defined:
        if local not in mod.exported:
            mod.exported.append(local)
    for local in mod.all_names or ():
        if local not in mod.exported:
            mod.exported.append(local)
    return mod


# --------------------------------------------------------------------------- the whole distribution


class Distribution:
    def __init__(self, sources: dict[str, str]):
        self.modules = {module_name(p): parse_module(module_name(p), p, s) for p, s in sources.items()}

    def entries(self, module: str) -> list[dict[str, Any]]:
        mod = self.modules[module]
        offered = set(mod.all_names or ()) | mod.explicit
        out = []
        for name in mod.exported:
            if (name.startswith("_") and name not in offered) or name in _NOT_API:
                continue
            entry = self.resolve(module, name)
            if entry is None:
                continue
            out.append({"name": name, **entry})
        return out

    def resolve(self, module: str, name: str, seen: frozenset = frozenset()) -> dict[str, Any] | None:
        """What ``module.name`` is: kind and signature, following re-exports."""
        if (module, name) in seen:
            return None
        seen = seen | {(module, name)}
        mod = self.modules.get(module)
        if mod is None:
            if f"{module}.{name}" in self.modules:
                return {"kind": "module", "target": f"{module}.{name}"}
            return {"kind": "external", "origin": module} if module.split(".")[0] != PACKAGE else None
        if name in mod.classes:
            return self._class(module, mod.classes[name], seen)
        if name in mod.defined:
            entry = mod.defined[name]
            if entry["kind"] == "alias":
                return self.resolve(module, entry["target"], seen) or {"kind": "constant"}
            return dict(entry)
        if name in mod.imports:
            origin, original = mod.imports[name]
            if not original:
                return {"kind": "module", "target": origin} if origin.startswith(PACKAGE) else None
            entry = self.resolve(origin, original, seen)
            if entry is not None and origin.split(".")[0] == PACKAGE and entry["kind"] != "module":
                entry = {**entry, "defined_in": entry.get("defined_in", origin)}
            return entry
        if f"{module}.{name}" in self.modules:
            return {"kind": "module", "target": f"{module}.{name}"}
        return None

    def _class(self, module: str, cls: ast.ClassDef, seen: frozenset) -> dict[str, Any]:
        """kind ``autograd_function`` (signature: forward after ctx) or ``class``
        (signature: __init__ after self, a dataclass's fields; None when the
        class inherits its constructor from outside liger_kernel)."""
        autograd, init, forward = self._walk_bases(module, cls, seen)
        if autograd:
            return {"kind": "autograd_function", "signature": None if forward is None else forward}
        return {"kind": "class", "signature": init}

    def _walk_bases(self, module: str, cls: ast.ClassDef, seen: frozenset) -> tuple[bool, Any, Any]:
        mod = self.modules[module]
        forward = _method(cls, "forward")
        forward_sig = None if forward is None else mod.with_values(signature_of(forward, True))
        init = _method(cls, "__init__")
        if init is not None:
            init_sig = mod.with_values(signature_of(init, True))
        elif "dataclass" in {d.split(".")[-1] for d in _decorator_names(cls)} and not cls.bases:
            init_sig = _dataclass_fields(cls)  # (with a base, the base's fields come first: not known here)
        else:
            init_sig = None
        autograd = False
        for base in cls.bases:
            text = ast.unparse(base)
            if text in _AUTOGRAD_BASES:
                autograd = True
                continue
            head = text.split(".")[0]
            target = None
            if text in mod.classes and (module, text) not in seen:
                target = (module, mod.classes[text])
            elif head in mod.imports:
                origin, original = mod.imports[head]
                target = self._find_class(origin, original, seen)
            if target is None:
                continue
            b_auto, b_init, b_forward = self._walk_bases(target[0], target[1], seen | {(module, cls.name)})
            autograd = autograd or b_auto
            init_sig = init_sig if init_sig is not None or init is not None else b_init
            forward_sig = forward_sig if forward_sig is not None else b_forward
        return autograd, init_sig, forward_sig

    def _find_class(self, module: str, name: str, seen: frozenset) -> tuple[str, ast.ClassDef] | None:
        mod = self.modules.get(module)
        if mod is None or (module, name) in seen:
            return None
        if name in mod.classes:
            return module, mod.classes[name]
        if name in mod.imports:
            origin, original = mod.imports[name]
            return self._find_class(origin, original, seen | {(module, name)})
        return None


def build(sources: dict[str, str]) -> dict[str, Any]:
    dist = Distribution(sources)
    modules = {
        name: {"entries": dist.entries(name)}
        for name in sorted(dist.modules)
        if is_public_module(name) and name.startswith(PACKAGE)
    }
    return {"distribution": "liger-kernel", "version": VERSION, "modules": modules}


# --------------------------------------------------------------------------- comparing with this tree


_MISSING = object()


_FACTORY_DEFAULT = re.compile(r"^field\(\s*default_factory\s*=\s*([\w.]+)\s*\)$")


def _default_matches(text: str, value: Any, namespace: dict[str, Any]) -> bool:
    factory = _FACTORY_DEFAULT.match(text)
    if factory is not None or isinstance(value, _Factory):
        # a dataclass field's factory: 0.8.5's source text against the factory itself
        if factory is None or not isinstance(value, _Factory):
            return False
        try:
            return eval(factory.group(1), dict(namespace)) is value.factory
        except Exception:
            return False
    try:
        expected = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            import torch

            # names such as torch.float32 or a module constant
            expected = eval(text, {"torch": torch, **namespace})
        except Exception:
            return False
    if expected is value:
        return True
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    numbers = (int, float)
    if type(expected) is not type(value) and not (isinstance(expected, numbers) and isinstance(value, numbers)):
        return False
    try:
        return bool(expected == value)
    except Exception:  # an object whose == is not a truth value (a tensor)
        return False


def call_signature(obj: Any, kind: str) -> inspect.Signature | None:
    """The signature a caller sees: a Function's forward after ctx (for this
    project's dispatched Functions, ``check``, which ``apply`` binds against),
    a class's constructor after self, a function's own."""
    if kind == "autograd_function":
        check = inspect.getattr_static(obj, "check", None)
        forward = inspect.getattr_static(obj, "forward", None)
        if isinstance(check, staticmethod) and "forward" not in vars(obj):
            return inspect.signature(check.__func__)
        if forward is None:
            return None
        # forward as written, less its first parameter, as the manifest reads 0.8.5's: ctx of a
        # staticmethod, cls of a classmethod (whose ctx the 0.8.5 entries then keep)
        function = getattr(forward, "__func__", forward)
        params = list(inspect.signature(function).parameters.values())
        return inspect.Signature(params[1:])
    if kind == "triton_kernel":
        obj = getattr(obj, "fn", obj)  # a JITFunction (or autotuner) wraps the Python function
        while hasattr(obj, "fn"):
            obj = obj.fn
    signature = inspect.signature(obj)
    if kind == "class" and dataclasses.is_dataclass(obj):
        signature = _with_factories(obj, signature)
    return signature


@dataclass(frozen=True)
class _Factory:
    """A dataclass field's ``default_factory``, where its signature shows ``<factory>``."""

    factory: Any


def _with_factories(cls: type, signature: inspect.Signature) -> inspect.Signature:
    factories = {
        f.name: f.default_factory for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING
    }
    return signature.replace(
        parameters=[
            p.replace(default=_Factory(factories[p.name])) if p.name in factories else p
            for p in signature.parameters.values()
        ]
    )


def compare(entry: dict[str, Any], obj: Any, module: Any) -> list[str]:
    """Why ``obj`` (found as ``module.<entry name>``) does not match the 0.8.5
    entry; empty when it matches."""
    kind = entry["kind"]
    if kind == "module":
        return [] if inspect.ismodule(obj) else [f"is {type(obj).__name__}, not a module"]
    if kind in ("autograd_function", "class") and not inspect.isclass(obj):
        return [f"is {type(obj).__name__}, not a class"]
    if kind in ("function", "triton_kernel") and not callable(obj):
        return [f"is {type(obj).__name__}, not callable"]
    expected = entry.get("signature")
    if expected is None:
        return []
    try:
        actual = call_signature(obj, kind)
    except (TypeError, ValueError) as exc:
        return [f"no signature: {exc}"]
    if actual is None:
        return ["no forward"]
    return compare_parameters(expected, list(actual.parameters.values()), vars(module))


def compare_parameters(expected: list[dict[str, Any]], actual: list[inspect.Parameter], namespace: dict) -> list[str]:
    problems = []
    for position, want in enumerate(expected):
        if position >= len(actual):
            problems.append(f"parameter {want['name']!r} (position {position}) is missing")
            continue
        have = actual[position]
        if have.name != want["name"]:
            problems.append(f"position {position}: {have.name!r}, 0.8.5 has {want['name']!r}")
            continue
        if have.kind.name != want["kind"]:
            problems.append(f"{want['name']!r} is {have.kind.name}, 0.8.5 has {want['kind']}")
        if want["default"] is None:
            if have.default is not inspect.Parameter.empty:
                problems.append(f"{want['name']!r} has a default ({have.default!r}); 0.8.5 has none")
        elif have.default is inspect.Parameter.empty:
            problems.append(f"{want['name']!r} has no default; 0.8.5 has {want['default']}")
        elif not _default_matches(want.get("default_value", want["default"]), have.default, namespace):
            problems.append(f"{want['name']!r} defaults to {have.default!r}; 0.8.5 has {want['default']}")
    for extra in actual[len(expected) :]:
        variadic = extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD)
        if extra.default is inspect.Parameter.empty and not variadic:
            problems.append(f"extra parameter {extra.name!r} has no default")
    return problems


def status(module_name_: str, entry: dict[str, Any] | None = None) -> list[str]:
    """Why this tree does not match a module (entry None) or one of its
    entries; empty when it matches."""
    try:
        module = importlib.import_module(module_name_)
    except Exception as exc:  # an import failure of ours is a mismatch, reported with its cause
        return [f"import {module_name_} failed: {type(exc).__name__}: {exc}"]
    if entry is None:
        return []
    obj = getattr(module, entry["name"], _MISSING)
    if obj is _MISSING:
        return [f"{module_name_} has no {entry['name']!r}"]
    return compare(entry, obj, module)


# --------------------------------------------------------------------------- which issue brings what

# Which issue brings a missing name: 27 the rest of the op set, 23 the text model
# families and MoE experts, 24 the vision-language families, 22 everything else
# of the drop-in (registry, chunked-loss options, PEFT/TRL, helpers).
_OPS_27 = (
    "grpo_loss fused_linear_kl_div fused_ce_tvd fused_linear_scaled_cross_entropy vocab_parallel_cross_entropy "
    "multi_token_attention fused_neighborhood_attention tiled_mlp modulated_rms_norm mhc attn_res experimental "
    "mm_int8int2 megatron cute cutedsl cutile"
).split()
_OPS_23 = "fused_moe fused_moe_kernels moe llama4_rope mlp relu_squared".split()
_VLM = (
    "llava internvl paligemma pixtral qwen2_vl qwen2_5_vl qwen3_vl qwen3_vl_moe glm4v glm4v_moe mllama smolvlm "
    "gemma3 gemma4 llama4 qwen3_5 qwen3_5_moe"
).split()
_NAMES_27 = re.compile(
    r"fused_?ce_?tvd|fused_?linear_?kl_?div|modulated_?rms_?norm|multi_?token_?attention|mhc|tiled|"
    r"vocab_?parallel|neighborhood|attn_?res|embedding|grpo|scaled_?cross_?entropy|mm_?int8",
    re.IGNORECASE,
)
_NAMES_23 = re.compile(
    r"experts|block_?sparse_?top2|qwen3_?moe|falcon_?h1|muse_?glimmer|hunyuan|qwen3_?next|olmo2|glm4|gpt_?oss|"
    r"liger_?mlp|relu_?squared|llama4|fused_?gate_?up|fused_?moe|moe_?config",
    re.IGNORECASE,
)
_NAMES_24 = re.compile(
    r"gemma3|gemma4|llava|internvl|paligemma|pixtral|qwen2_?5?_?vl|qwen3_?vl|qwen3_?5|glm4v|smolvlm|mllama|vision",
    re.IGNORECASE,
)


# Names that exist here but whose 0.8.5 signature has an option that needs
# kernel work: partial rotary (rotary_dim) and the gate/down multipliers of
# Falcon-H1's MLP come with the text families.
_SIGNATURE_ISSUES = {
    "LigerRopeFunction": "23",
    "liger_rope": "23",
    "liger_rotary_pos_emb": "23",
    "LigerSiLUMulFunction": "23",
}


def issue_for(module: str, name: str | None) -> str:
    """The issue that brings a missing 0.8.5 module or name."""
    if name in _SIGNATURE_ISSUES:
        return _SIGNATURE_ISSUES[name]
    parts = module.split(".")
    if any(p in _OPS_27 for p in parts[1:]) or (name and _NAMES_27.search(name)):
        return "27"
    family = parts[3] if parts[1:3] == ["transformers", "model"] and len(parts) > 3 else None
    if name and name.startswith("apply_liger_kernel_to_"):
        family = name[len("apply_liger_kernel_to_") :].removesuffix("_text")
    if family in _VLM or (name and _NAMES_24.search(name)):
        return "24"
    if family not in (None, "loss_utils", "output_classes"):
        return "23"
    if any(p in _OPS_23 for p in parts[1:]) or (name and _NAMES_23.search(name)):
        return "23"
    return "22"


# --------------------------------------------------------------------------- marks


def evaluate(manifest: dict[str, Any]) -> dict[tuple[str, str | None], list[str]]:
    """(module, name or None) -> problems, for every module and entry."""
    results = {}
    for module, data in manifest["modules"].items():
        results[(module, None)] = status(module)
        for entry in data["entries"]:
            results[(module, entry["name"])] = status(module, entry) if not results[(module, None)] else ["module"]
    return results


def load_declined(path: Path = DECLINED) -> dict[tuple[str, str], str]:
    """(defining module, name) -> why this project does not offer it."""
    if not path.is_file():
        return {}
    tables = tomllib.loads(path.read_text())
    return {(module, name): reason for module, names in tables.items() for name, reason in names.items()}


def declined_reason(declined: dict[tuple[str, str], str], module: str, entry: dict[str, Any]) -> str | None:
    """Why ``module.<entry>`` is declined (it, or the definition it re-exports), or None."""
    for origin in (module, entry.get("defined_in")):
        if origin is not None and (origin, entry["name"]) in declined:
            return declined[(origin, entry["name"])]
    return None


#: the key of a declined.toml table that declines its module as a whole
MODULE_KEY = "__module__"


def unknown_declined(manifest: dict[str, Any], declined: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Declined (module, name) pairs that name no entry (or, for MODULE_KEY, no module) of the manifest."""
    known = {(m, e["name"]) for m, d in manifest["modules"].items() for e in d["entries"]}
    known |= {(m, MODULE_KEY) for m in manifest["modules"]}
    return sorted(key for key in declined if key not in known)


def module_declined(module: str, data: dict[str, Any], declined: dict[tuple[str, str], str]) -> bool:
    """The module is declined as a whole (its table's ``__module__`` key: one without public names) or
    every name of it is: the module itself is not offered, and not missing."""
    if (module, MODULE_KEY) in declined:
        return True
    return bool(data["entries"]) and all(declined_reason(declined, module, e) is not None for e in data["entries"])


def update_marks(manifest: dict[str, Any], declined: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    declined = load_declined() if declined is None else declined
    results = evaluate(manifest)
    for module, data in manifest["modules"].items():
        if module_declined(module, data, declined):
            data.pop("missing", None)
        else:
            _mark(data, results[(module, None)], issue_for(module, None), data.get("missing"))
        for entry in data["entries"]:
            if declined_reason(declined, module, entry) is not None:
                entry.pop("missing", None)
                continue
            _mark(entry, results[(module, entry["name"])], issue_for(module, entry["name"]), entry.get("missing"))
    return manifest


def _mark(item: dict[str, Any], problems: list[str], issue: str, old: str | None) -> None:
    if problems:
        item["missing"] = old or issue
    else:
        item.pop("missing", None)


def counts(
    manifest: dict[str, Any], declined: dict[tuple[str, str], str] | None = None
) -> tuple[int, Counter, list[tuple[str, str]]]:
    """Matched names, missing names by issue, and the declined (label, reason) pairs."""
    declined = load_declined() if declined is None else declined
    matched, missing, refused = 0, Counter(), []
    for module, data in manifest["modules"].items():
        for entry in data["entries"]:
            reason = declined_reason(declined, module, entry)
            if reason is not None:
                refused.append((f"{module}.{entry['name']}", reason))
            elif "missing" in entry:
                missing[entry["missing"]] += 1
            else:
                matched += 1
    return matched, missing, refused


def stale_marks(manifest: dict[str, Any], declined: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Marks that disagree with the tree: a mark on what now matches, or no
    mark on what does not; a declined name that matches, carries a mark, or
    names no entry."""
    declined = load_declined() if declined is None else declined
    results = evaluate(manifest)
    stale = [f"{m}.{n}: declined, but 0.8.5 has no such name here" for m, n in unknown_declined(manifest, declined)]
    for module, data in manifest["modules"].items():
        items = [(None, data)] + [(e["name"], e) for e in data["entries"]]
        for name, item in items:
            label = module if name is None else f"{module}.{name}"
            problems = results[(module, name)]
            if name is not None and declined_reason(declined, module, item) is not None:
                if not problems:
                    stale.append(f"{label}: declined, but it matches now; remove it from {DECLINED.name}")
                elif "missing" in item:
                    stale.append(f"{label}: declined, remove missing={item['missing']}")
                continue
            if name is None and module_declined(module, data, declined):
                if "missing" in item:
                    stale.append(f"{label}: every name declined, remove missing={item['missing']}")
                continue
            if problems and "missing" not in item:
                stale.append(f"{label}: not matched ({'; '.join(problems)}) but not marked missing")
            elif not problems and "missing" in item:
                stale.append(f"{label}: matches now, remove missing={item['missing']}")
    return stale


def report(manifest: dict[str, Any], declined: dict[tuple[str, str], str] | None = None) -> str:
    matched, missing, refused = counts(manifest, declined)
    total = matched + sum(missing.values()) + len(refused)
    modules_missing = Counter(d["missing"] for d in manifest["modules"].values() if "missing" in d)
    by_issue = ", ".join(f"#{issue}: {n}" for issue, n in sorted(missing.items()))
    mod_issue = ", ".join(f"#{issue}: {n}" for issue, n in sorted(modules_missing.items()))
    lines = [
        f"liger-kernel {manifest['version']}: {total} names in {len(manifest['modules'])} modules",
        f"matched {matched} / missing {sum(missing.values())} ({by_issue or 'none'}) / declined {len(refused)}",
        f"modules missing: {sum(modules_missing.values())} ({mod_issue or 'none'})",
    ]
    if refused:
        lines.append(f"declined {len(refused)}, with reasons ({DECLINED.name}):")
        lines += [f"  {label}: {reason}" for label, reason in refused]
    return "\n".join(lines)


def _write(manifest: dict[str, Any], path: Path) -> None:
    """JSON with one line per entry: small, and a changed mark is a one-line diff."""
    lines = ["{", f' "distribution": {json.dumps(manifest["distribution"])},', f' "version": {json.dumps(VERSION)},']
    lines.append(' "modules": {')
    modules = list(manifest["modules"].items())
    for m, (name, data) in enumerate(modules):
        head = {k: v for k, v in data.items() if k != "entries"}
        opening = json.dumps(head)[:-1] + (", " if head else "") + '"entries": ['
        entries = [f"   {json.dumps(entry)}" for entry in data["entries"]]
        body = ",\n".join(entries)
        closing = "]}" + ("," if m < len(modules) - 1 else "")
        lines.append(f"  {json.dumps(name)}: {opening}" + (f"\n{body}\n  {closing}" if entries else closing))
    lines += [" }", "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="an unpacked 0.8.5 wheel (the directory holding liger_kernel/) or a .whl")
    parser.add_argument("--download", action="store_true", help=f"pip download liger-kernel=={VERSION} (no deps)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="the manifest file (default: %(default)s)")
    parser.add_argument(
        "--declined", type=Path, default=DECLINED, help="names not offered on purpose (default: %(default)s)"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="build the manifest from 0.8.5 and mark it from this tree")
    action.add_argument("--check", action="store_true", help="print matched / missing by issue; exit 1 on stale marks")
    action.add_argument("--update", action="store_true", help="rewrite the missing marks from what this tree provides")
    args = parser.parse_args(argv)

    declined = load_declined(args.declined)
    if args.write:
        manifest = update_marks(build(read_sources(args.source, args.download)), declined)
        _write(manifest, args.manifest)
        print(report(manifest, declined))
        return 0
    manifest = json.loads(args.manifest.read_text())
    if args.update:
        manifest = update_marks(manifest, declined)
        _write(manifest, args.manifest)
        print(report(manifest, declined))
        return 0
    print(report(manifest, declined))
    stale = stale_marks(manifest, declined)
    for line in stale:
        print(f"stale: {line}")
    if args.source or args.download:
        # the stored names and signatures must still be what 0.8.5 itself offers
        drift = manifest_drift(build(read_sources(args.source, args.download)), manifest)
        for line in drift:
            print(f"differs from {VERSION}: {line}")
        stale = stale or drift
    return 1 if stale else 0


def manifest_drift(fresh: dict, stored: dict) -> list[str]:
    """Where ``stored`` lists other modules, names or signatures than ``fresh``
    (built from 0.8.5), ignoring the missing marks."""

    def entries(manifest: dict) -> dict[tuple[str, str], dict]:
        return {
            (module, entry["name"]): {k: v for k, v in entry.items() if k != "missing"}
            for module, data in manifest["modules"].items()
            for entry in data["entries"]
        }

    new, old = entries(fresh), entries(stored)
    lines = [f"{m}.{n}: in {VERSION}, not in the manifest" for m, n in sorted(new.keys() - old.keys())]
    lines += [f"{m}.{n}: in the manifest, not in {VERSION}" for m, n in sorted(old.keys() - new.keys())]
    lines += [
        f"{m}.{n}: {old[m, n]} != {new[m, n]}" for m, n in sorted(new.keys() & old.keys()) if new[m, n] != old[m, n]
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
