"""Generator directories, the Hub and model cards.

A saved generator is a directory (or a Hub model repo) laid out like a diffusers pipeline::

    generator_config.json   which generator, its config, its components and a sha256 per file
    schema.json             the record schema (datasets Features + learned field statistics)
    model/                  the causal LM: config.json + model.safetensors (or a LoRA adapter)
    tokenizer/              the tokenizer files
    README.md               the model card

Nothing is pickled and loading runs no code from the directory: weights are safetensors, everything
else is JSON, and every file is checked against its recorded hash before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any

from . import __version__
from .errors import GeneratorLoadError, HFSynthError

GENERATOR_CONFIG_FILE = "generator_config.json"
SCHEMA_FILE = "schema.json"
MODEL_CARD_FILE = "README.md"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(directory: str, exclude: tuple[str, ...] = (GENERATOR_CONFIG_FILE, MODEL_CARD_FILE)) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``directory`` (POSIX separators)."""
    hashes = {}
    for root, _, files in os.walk(directory):
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, directory).replace(os.sep, "/")
            if rel not in exclude:
                hashes[rel] = sha256_file(full)
    return dict(sorted(hashes.items()))


def generator_fingerprint(directory: str) -> str:
    """Names a saved generator's content: its config file lists the sha256 of every other file."""
    with open(os.path.join(directory, GENERATOR_CONFIG_FILE), "rb") as f:
        return hashlib.sha256(f.read() + __version__.encode()).hexdigest()[:16]


def hub_commit(directory: str) -> str | None:
    """The commit of a Hub snapshot directory (``.../snapshots/<commit sha>``), else ``None``."""
    parent, name = os.path.split(os.path.normpath(directory))
    return name if os.path.basename(parent) == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", name) else None


def verify_files(directory: str, hashes: dict[str, str]) -> None:
    """Raise :class:`GeneratorLoadError` naming the first missing or corrupted file."""
    for rel, expected in hashes.items():
        full = os.path.join(directory, rel)
        if not os.path.isfile(full):
            raise GeneratorLoadError(f"generator file {rel} is missing from {directory}")
        if sha256_file(full) != expected:
            raise GeneratorLoadError(f"generator file {rel} in {directory} is truncated or corrupted (sha256 mismatch)")


def read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise GeneratorLoadError(f"{what} is missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise GeneratorLoadError(f"{what} is corrupted: {path} ({err})") from None


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def resolve_generator_dir(path_or_id: str, revision: str | None = None, token: str | bool | None = None) -> str:
    """A local directory holding the generator: ``path_or_id`` itself or a Hub snapshot of it."""
    if os.path.isdir(path_or_id):
        if not os.path.isfile(os.path.join(path_or_id, GENERATOR_CONFIG_FILE)):
            raise GeneratorLoadError(f"{path_or_id} is not an hf_synth generator (no {GENERATOR_CONFIG_FILE})")
        return path_or_id
    if os.path.exists(path_or_id) or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1:
        raise GeneratorLoadError(f"no generator directory at {path_or_id}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        directory = snapshot_download(path_or_id, revision=revision, token=token, repo_type="model")
    except RevisionNotFoundError:
        raise GeneratorLoadError(f"the Hub repo {path_or_id!r} has no revision {revision!r}") from None
    except GatedRepoError:
        raise GeneratorLoadError(f"the Hub repo {path_or_id!r} is gated: accept its terms and pass a token") from None
    except RepositoryNotFoundError:
        raise GeneratorLoadError(
            f"no Hub repo {path_or_id!r}, or no access to it (check the id, and pass a token for private repos)"
        ) from None
    except LocalEntryNotFoundError:
        raise GeneratorLoadError(
            f"{path_or_id!r} is neither a local generator directory nor cached, and the Hub cannot be reached "
            "(HF_HUB_OFFLINE is set or there is no network)"
        ) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        detail = (err.server_message or str(err)).strip().splitlines()[0]
        if status == 401:  # a token was sent and refused (no access without a token is RepositoryNotFoundError)
            raise GeneratorLoadError(
                f"the Hub rejected the token used to download {path_or_id!r} (401 Unauthorized: {detail}); "
                "pass a valid token, or none for a public repo"
            ) from None
        raise GeneratorLoadError(f"cannot download {path_or_id!r} from the Hub (HTTP {status}: {detail})") from None
    if not os.path.isfile(os.path.join(directory, GENERATOR_CONFIG_FILE)):
        raise GeneratorLoadError(f"the Hub repo {path_or_id!r} is not an hf_synth generator (no {GENERATOR_CONFIG_FILE})")
    return directory


def replace_directory(tmp: str, directory: str) -> None:
    """Move a finished temporary directory into place, replacing an older one."""
    if os.path.isdir(directory):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(directory)))
        os.rmdir(old)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)


def push_folder(folder: str, repo_id: str, *, private: bool | None, token: str | bool | None, commit_message: str) -> Any:
    """Create the model repo if needed and upload ``folder``; returns the ``CommitInfo``."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model", commit_message=commit_message)
    except HfHubHTTPError as err:
        raise push_error(repo_id, err) from None


def push_error(repo_id: str, err: Any) -> HFSynthError:
    """A one-line error for a failed upload (the client's own message spans several lines)."""
    status = err.response.status_code if err.response is not None else None
    detail = (err.server_message or str(err)).strip().splitlines()[0]
    if status == 401:
        return HFSynthError(
            f"cannot push to {repo_id!r}: the Hub rejected the credentials (401 Unauthorized: {detail}); "
            "pass token= a valid token with write access, or log in with `hf auth login`"
        )
    if status == 403:
        return HFSynthError(f"cannot push to {repo_id!r}: the token has no write access there (403 Forbidden: {detail})")
    return HFSynthError(f"cannot push to {repo_id!r} (HTTP {status}: {detail})")


def render_model_card(template_name: str, **context: Any) -> str:
    """Render a model card template from ``model_cards/`` with jinja2."""
    from importlib import resources

    import jinja2

    source = resources.files("hf_synth.model_cards").joinpath(template_name).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(source).render(**context)
