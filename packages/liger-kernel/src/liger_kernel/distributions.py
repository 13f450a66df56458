"""Installed distributions that own the same top-level module.

Two wheels that ship the same import package (two builds of ``triton`` from
different vendors, say) install into the same directory: each overwrites the
other's files, pip does not object, and ``import`` then finds a mix of both.
The project cannot stop it (one of them usually comes in as a dependency of
torch itself), but it can see it: a distribution's ``RECORD`` lists the files
it installed. :func:`module_owners` answers who owns a module;
:func:`shared_module_problem` turns two or more owners into a message with the
repair. ``liger-kernel info`` applies them to :data:`CHECKED_MODULES`; a
backend's own import checks can call them for the module it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

#: modules ``liger-kernel info`` checks for more than one owner
CHECKED_MODULES = ("triton",)

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Owner:
    """An installed distribution that ships a module, and what requires it."""

    distribution: str
    version: str
    #: ``"name version"`` of each installed distribution that requires it
    required_by: tuple[str, ...] = ()

    def __str__(self) -> str:
        needed = f" (required by {', '.join(self.required_by)})" if self.required_by else ""
        return f"{self.distribution} {self.version}{needed}"


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _unique_distributions() -> list[metadata.Distribution]:
    """Installed distributions, the first of each name on sys.path (the one imported)."""
    seen: set[str] = set()
    found = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in seen:
            seen.add(canonical(name))
            found.append(dist)
    return found


def _records(dist: metadata.Distribution, paths: tuple[str, ...]) -> bool:
    record = dist.read_text("RECORD")
    if not record or not any(p in record for p in paths):
        return False
    # a RECORD line is "path,hash,size"; a path with a comma in it is quoted
    return any(line.rsplit(",", 2)[0].strip('"') in paths for line in record.splitlines())


def _requirers(names: set[str], dists: list[metadata.Distribution]) -> dict[str, list[str]]:
    """canonical name in ``names`` -> "name version" of the distributions requiring it
    (requirements of an extra are left out: nobody may have asked for the extra)."""
    found: dict[str, list[str]] = {name: [] for name in names}
    for dist in dists:
        for requirement in dist.requires or []:
            match = _NAME.match(requirement)
            _, _, marker = requirement.partition(";")
            if match and canonical(match.group(1)) in found and "extra" not in marker:
                found[canonical(match.group(1))].append(f"{dist.metadata['Name']} {dist.version}")
    return found


def module_owners(module: str) -> list[Owner]:
    """The installed distributions whose RECORD lists ``module/__init__.py``
    (or ``module.py``), with what requires each."""
    paths = (f"{module}/__init__.py", f"{module}.py")
    dists = _unique_distributions()
    owners = [dist for dist in dists if _records(dist, paths)]
    requirers = _requirers({canonical(d.metadata["Name"]) for d in owners}, dists)
    return [
        Owner(d.metadata["Name"], d.version, tuple(sorted(requirers[canonical(d.metadata["Name"])])))
        for d in sorted(owners, key=lambda d: canonical(d.metadata["Name"]))
    ]


def shared_module_problem(module: str, owners: list[Owner] | None = None) -> str | None:
    """What is wrong and how to repair it when more than one distribution owns
    ``module``; None when at most one does. ``owners`` defaults to
    :func:`module_owners`."""
    owners = module_owners(module) if owners is None else owners
    if len(owners) < 2:
        return None
    names = " ".join(o.distribution for o in owners)
    return (
        f"the {module!r} module is installed by {len(owners)} distributions: "
        f"{'; '.join(str(o) for o in owners)}. They write the same files, so the {module!r} "
        f"that is imported is a mix of them. Repair: pip uninstall -y {names}, then reinstall only "
        f"the one your hardware's backend needs (pip install --no-deps NAME). If pip brings another back "
        f"as a dependency of torch (torch's own Linux wheels require triton), install your vendor's "
        f"torch build first, then liger-kernel's extra (README, Install)"
    )
