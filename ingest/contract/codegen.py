"""Regenerates the Python bindings of the device wire contract from its ``.proto`` files.

Run ``python -m ingest.contract.codegen`` after editing the .proto; a test fails while the
committed bindings differ from what this produces.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO_NAMES = ("alarm_panel.proto", "telemetry.proto")
GENERATED_NAMES = tuple(
    f"{name.removesuffix('.proto')}_pb2{suffix}"
    for name in PROTO_NAMES
    for suffix in (".py", ".pyi")
)


class CodegenError(RuntimeError):
    """protoc rejected the contract or is not installed."""


def contract_dir() -> Path:
    """Folder holding the .proto and its committed bindings."""
    return Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Compile the contract into ``out_dir`` and return the files written."""
    try:
        from grpc_tools import protoc  # noqa: PLC0415 - only needed by developers
    except ImportError as exc:
        raise CodegenError("grpcio-tools is required: pip install 'fleetwatch[test]'") from exc
    include = str(resources.files("grpc_tools") / "_proto")
    src = contract_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{src}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(str(src / name) for name in PROTO_NAMES),
    ]
    if protoc.main(args) != 0:
        raise CodegenError(f"protoc failed on {', '.join(PROTO_NAMES)}")
    return [out_dir / name for name in GENERATED_NAMES]


def main() -> int:
    """Regenerate the committed bindings in place."""
    for path in generate(contract_dir()):
        sys.stdout.write(f"wrote {path.name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
