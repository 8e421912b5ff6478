"""The package's shape: the sans-I/O boundary and the curated public API."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import wskit
import wskit.core
import wskit.errors


def test_importing_the_core_loads_no_event_loop_library():
    code = textwrap.dedent(
        """
        import sys
        import wskit.core
        loaded = sorted(name for name in ("anyio", "trio", "asyncio") if name in sys.modules)
        print(",".join(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_core_modules_import_only_stdlib_wsproto_and_wskit():
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import wskit.core
        added = set(sys.modules) - before
        new = {name.split(".")[0] for name in added}
        stdlib = set(sys.stdlib_module_names)
        # The one optional exception: websockets' C masking routine, nothing
        # else of that package (wskit.core.masking).
        extra = {name for name in added if name.startswith("websockets.")}
        extra -= {"websockets.speedups", "websockets.imports", "websockets.version"}
        print(",".join(sorted(new - stdlib - {"wskit", "wsproto", "h11", "websockets"} | extra)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_only_one_core_module_imports_wsproto():
    import pathlib

    core = pathlib.Path(wskit.core.__file__).parent
    importers = sorted(
        path.name
        for path in core.glob("*.py")
        if any(
            line.startswith(("import wsproto", "from wsproto"))
            for line in path.read_text().splitlines()
        )
    )
    assert importers == ["_wsproto.py"]


def _public_names(module):
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(module.__name__.split(".")[0])
        and not isinstance(value, type(sys))
    )


def test_all_lists_exactly_what_each_package_exports():
    for module in (wskit, wskit.core, wskit.errors):
        exported = set(module.__all__)
        assert len(exported) == len(module.__all__), f"{module.__name__}.__all__ has duplicates"
        missing = [name for name in exported if not hasattr(module, name)]
        assert missing == [], f"{module.__name__}.__all__ names missing attributes"
        unlisted = [name for name in _public_names(module) if name not in exported]
        assert unlisted == [], f"{module.__name__} exports names missing from __all__"


def test_every_error_is_reexported_from_the_top_level_package():
    assert set(wskit.errors.__all__) <= set(wskit.__all__)
    for name in wskit.errors.__all__:
        assert getattr(wskit, name) is getattr(wskit.errors, name)


def test_every_public_name_has_a_docstring():
    for module in (wskit, wskit.core, wskit.errors):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) or callable(value):
                assert (value.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"
