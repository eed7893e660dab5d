"""Check a built one-folder bundle and print its size with its biggest parts.

    python installer/check_bundle.py build/dist/onnx-forge [--json]

Fails (exit 1) when the bundle ships a Visual C++ runtime DLL (the system's current one must be used), lacks the
onnxruntime library in onnxruntime/capi, lacks the builder's or onnxruntime.transformers' .py files on disk, or
still carries what the spec trims (torch's tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VC_RUNTIME = ("msvcp140", "vcruntime140", "concrt140")


def size_of(path: Path) -> int:
    """Bytes on disk; symbolic links (PyInstaller links libraries into _internal/) count nothing."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def builder_sources() -> list[str]:
    """The installed model builder's top-level .py files (builder.py imports its neighbours by bare name, and which
    they are changes between generations: quantized_model.py up to 0.14, builder_config.py from 0.18)."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_genai")
    models = Path(spec.origin).parent / "models" if spec and spec.origin else None
    if models is None or not models.is_dir():
        return ["onnxruntime_genai/models/builder.py"]
    found = sorted(path.relative_to(models.parent.parent).as_posix() for path in models.glob("*.py"))
    return [*found, "onnxruntime_genai/models/builders/base.py"]


def internal_dir(bundle: Path) -> Path:
    internal = bundle / "_internal"
    return internal if internal.is_dir() else bundle


def breakdown(bundle: Path, top: int = 10) -> dict[str, object]:
    internal = internal_dir(bundle)
    parts = sorted(((size_of(item), item) for item in internal.iterdir()), key=lambda pair: -pair[0])
    files = sorted(
        ((item.stat().st_size, item) for item in bundle.rglob("*") if item.is_file() and not item.is_symlink()),
        key=lambda pair: -pair[0],
    )
    return {
        "bundle": str(bundle),
        "total_mb": round(size_of(bundle) / 1e6, 1),
        "files": len(files),
        "top_parts_mb": {item.relative_to(bundle).as_posix(): round(size / 1e6, 1) for size, item in parts[:top]},
        "top_files_mb": {item.relative_to(bundle).as_posix(): round(size / 1e6, 1) for size, item in files[:top]},
    }


def problems(bundle: Path) -> list[str]:
    internal = internal_dir(bundle)
    found = []
    vc = [item.name for item in bundle.rglob("*.dll") if item.name.lower().startswith(VC_RUNTIME)]
    if vc:
        found.append(f"Visual C++ runtime DLLs are bundled (the installer relies on the system's): {sorted(vc)}")
    capi = internal / "onnxruntime" / "capi"
    runtime = [*capi.glob("onnxruntime.dll"), *capi.glob("libonnxruntime.so.*"), *capi.glob("libonnxruntime*.dylib")]
    if not runtime:
        found.append(f"no onnxruntime library in {capi}")
    on_disk = [
        *builder_sources(),
        "onnxruntime/transformers/float16.py",
        "onnxruntime/transformers/fusion_utils.py",
        "onnxruntime/transformers/onnx_model.py",
        "resources/demo/config.json",
    ]
    found += [f"{name} is not on disk in the bundle" for name in on_disk if not (internal / name).is_file()]
    if (internal / "torch" / "test").exists():
        found.append("torch/test is bundled (the spec trims it)")
    if sys.platform.startswith("linux") and not (internal / "torch" / "bin" / "torch_shm_manager").is_file():
        found.append("torch/bin/torch_shm_manager is missing: torch will not import")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the one-folder bundle (build/dist/onnx-forge)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = breakdown(args.bundle)
    report["problems"] = problems(args.bundle)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"bundle {report['bundle']}: {report['total_mb']} MB in {report['files']} files")
        print("biggest parts:")
        for name, mb in report["top_parts_mb"].items():
            print(f"  {mb:9.1f} MB  {name}")
        print("biggest files:")
        for name, mb in report["top_files_mb"].items():
            print(f"  {mb:9.1f} MB  {name}")
        for problem in report["problems"]:
            print(f"error: {problem}", file=sys.stderr)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
