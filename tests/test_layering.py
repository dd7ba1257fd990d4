"""The layering rule as a test: a module may import its own layer and the layers below it,
never one above. Every import counts, including those inside functions.

    0  errors, atomic, config, checkpoint, precision, device, io  what every layer may use
    1  data, viz                              datasets know nothing of models
    2  models, text                           networks know nothing of objectives or samplers
    3  diffusion                              objectives, schedules, guidance
    4  pipelines                              compose the above for inference
    5  train, eval                            may run pipelines (sample grids, benchmarks)
    6  cli                                    only parses and calls
"""

import ast
from pathlib import Path

import filmstrip

LAYERS = {
    "errors": 0,
    "atomic": 0,
    "config": 0,
    "checkpoint": 0,
    "precision": 0,
    "device": 0,
    "io": 0,
    "data": 1,
    "viz": 1,
    "models": 2,
    "text": 2,
    "diffusion": 3,
    "pipelines": 4,
    "train": 5,
    "eval": 5,
    "world": 5,
    "cli": 6,
    "__main__": 6,
}
ROOT = Path(filmstrip.__file__).parent


def layer_of(module: str) -> int | None:
    """'filmstrip.models.dit' -> 2; None for the package itself."""
    parts = module.split(".")
    if parts[0] != "filmstrip" or len(parts) < 2:
        return None
    return LAYERS[parts[1]]


def imported_modules(source: str, module: str) -> list[str]:
    """Every filmstrip module that `source` imports, resolving relative imports."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base]) if base else ".".join(package)
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names if base == "filmstrip"]
    return [m for m in out if m == "filmstrip" or m.startswith("filmstrip.")]


def upward_imports(sources: dict[str, str]) -> list[str]:
    """'a -> b' for each import from a lower layer to a higher one."""
    bad = []
    for module, source in sources.items():
        own = layer_of(module)
        for target in imported_modules(source, module):
            other = layer_of(target)
            if own is not None and other is not None and other > own:
                bad.append(f"{module} (layer {own}) -> {target} (layer {other})")
    return bad


def package_sources() -> dict[str, str]:
    sources = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        sources[".".join(parts)] = path.read_text()
    return sources


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or p.is_dir()}
    names -= {"__init__", "__pycache__", "weights"}
    assert names <= set(LAYERS), f"give these a layer: {sorted(names - set(LAYERS))}"


def test_no_module_imports_a_higher_layer():
    assert upward_imports(package_sources()) == []


def test_the_rule_catches_a_planted_upward_import():
    sources = package_sources()
    planted = dict(sources)
    planted["filmstrip.models.dit"] += (
        "\n\ndef late():\n    from filmstrip.pipelines.generate import generate\n"
    )
    planted["filmstrip.data.latents"] += "\nfrom ..models import vae\n"
    assert sorted(upward_imports(planted)) == [
        "filmstrip.data.latents (layer 1) -> filmstrip.models (layer 2)",
        "filmstrip.models.dit (layer 2) -> filmstrip.pipelines.generate (layer 4)",
    ]
