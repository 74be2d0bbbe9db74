"""A small Hugging Face Hub look-alike HTTP server, so that tests exercise the real clients.

Hub behaviour (push, pull, revisions, auth errors) is tested through the real ``huggingface_hub``
client and the real ``datasets`` library talking HTTP to this server, never by stubbing ``HfApi``.
The server implements ONLY the routes those clients actually call in our tests (see ``ROUTES`` and
the handler docstrings, each names the client call it serves), with the status codes, JSON shapes
and headers the clients check, as the real Hub sends them:

* repos (models and datasets) live in memory; every commit is a full snapshot ``{path: file}`` with a
  40-hex sha; ``main`` (the only branch) and tags point to commits; a commit sha works as revision;
* a new repo starts with one commit holding the Hub's default ``.gitattributes``; ``preupload``
  answers "lfs" for paths matched by the repo's ``.gitattributes``, binary samples and files over
  10 MB, "regular" otherwise, like the Hub;
* LFS uploads use the "basic" transfer: the batch API hands out a pre-signed-style PUT URL on this
  server plus a ``verify`` action;
* one valid token (``hf_test_token``, user ``tester``); an invalid token is refused with a plain 401
  on every route; private repos answer 401 + ``X-Error-Code: RepoNotFound`` to anonymous reads;
* Xet is not implemented: the ``hub`` fixture sets ``HF_HUB_DISABLE_XET`` so clients use LFS.

The ``hub`` pytest fixture starts a fresh server per test on 127.0.0.1 (port 0) and points both
libraries at it for the duration of the test. A request the server does not implement is answered
404/405 and logged with its method and path; a request that crashes the server is answered 400 (not
5xx: the clients would retry 5xx for ~20 s). Either one fails the test at teardown.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import hashlib
import json
import logging
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

logger = logging.getLogger("hub_server")

VALID_TOKEN = "hf_test_token"
USER = "tester"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores larger files in LFS whatever their name
REPO_TYPES = {"models": "model", "datasets": "dataset"}  # URL segment -> repo type
URL_PREFIXES = {"model": "", "dataset": "datasets/"}  # repo type -> prefix of web / resolve / git URLs
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"  # the Hub's message; the client checks it
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.7z", "*.arrow", "*.bin", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.msgpack", "*.npy",
                    "*.npz", "*.onnx", "*.parquet", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors",
                    "*.tar", "*.zip", "*.zst", "*tfevents*")
).encode()


# ----------------------------------------------------------------------------------------- storage
def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid``/``blobId`` and regular files' ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    lfs: bool  # committed as an LFS pointer ("lfsFile") rather than inline ("file")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        """The LFS pointer file git stores in place of the content."""
        lines = ["version https://git-lfs.github.com/spec/v1", f"oid sha256:{self.sha256}", f"size {len(self.content)}"]
        return ("\n".join(lines) + "\n").encode()

    @property
    def oid(self) -> str:
        """git oid: of the pointer file for LFS files, of the content otherwise."""
        return git_blob_oid(self.pointer if self.lfs else self.content)

    @property
    def etag(self) -> str:
        """The Hub's ETag of a file (the client names cached blobs after it): sha256 for LFS, git oid else."""
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content (the "S3 bucket")

    def resolve(self, revision: str) -> Commit | None:
        """A branch, a tag or a full commit sha -> commit."""
        sha = self.branches.get(revision) or self.tags.get(revision) or revision
        return self.commits.get(sha)

    def add_commit(self, branch: str, files: dict[str, StoredFile], title: str, message: str = "") -> Commit:
        parent = self.branches.get(branch)
        digest = hashlib.sha1(f"{self.repo_type}/{self.repo_id}\n{parent}\n{title}\n{len(self.commits)}".encode())
        for path in sorted(files):
            digest.update(f"\n{path} {files[path].oid}".encode())
        commit = Commit(digest.hexdigest(), parent, title, message, now_iso(), files)
        self.commits[commit.sha] = commit
        self.branches[branch] = commit.sha
        return commit


class HubError(Exception):
    """An error answered the way the Hub does: JSON ``{"error": message}`` plus X-Error-* headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 **body: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


def repo_not_found(status: int = 404) -> HubError:
    return HubError(status, "Repository not found", "RepoNotFound")


# ----------------------------------------------------------------------------------------- the server
class HubServer:
    """The fixture object: ``endpoint``, ``token`` and ``user`` for tests, plus the server state."""

    token = VALID_TOKEN
    user = USER

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.range_requests: list[tuple[str, str]] = []  # (path, Range header) of partial reads
        self.unhandled: list[str] = []  # "METHOD path" of requests no route serves
        self.errors: list[str] = []  # tracebacks of requests that crashed the server
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-server", daemon=True)

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def repo_url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- access checks ------------------------------------------------------------------------
    def get_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        """A repo readable by ``user``; private repos look missing (401 + RepoNotFound) to others."""
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise repo_not_found()
        if repo.private and user != repo_id.split("/")[0]:
            raise repo_not_found(401)
        return repo

    def get_writable_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        require_user(user)
        repo = self.get_repo(repo_type, repo_id, user)
        if repo_id.split("/")[0] != user:
            raise HubError(403, f"You don't have the rights to write to {repo_type} {repo_id}")
        return repo

    def get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


def require_user(user: str | None) -> str:
    if user is None:  # anonymous write; an invalid token never gets this far (see _Handler.user)
        raise HubError(401, "Invalid username or password.")
    return user


def lfs_mode(commit: Commit, path: str, size: int, sample: bytes) -> bool:
    """Whether the Hub wants ``path`` uploaded through LFS (preupload's ``uploadMode``)."""
    gitattributes = commit.files.get(".gitattributes")
    patterns = []
    for line in (gitattributes.content.decode(errors="replace") if gitattributes else "").splitlines():
        parts = line.split()
        if len(parts) > 1 and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    name = path.rsplit("/", 1)[-1]
    matched = any(fnmatch.fnmatchcase(path if "/" in p else name, p.lstrip("/")) for p in patterns)
    return matched or size >= LFS_SIZE_THRESHOLD or b"\0" in sample


# ---------------------------------------------------------------------------- JSON shapes of entries
def file_entry(path: str, f: StoredFile) -> dict[str, Any]:
    """A file as listed by /tree and /paths-info (parsed by ``RepoFile``)."""
    entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": len(f.content), "path": path}
    if f.lfs:
        entry["lfs"] = {"oid": f.sha256, "size": len(f.content), "pointerSize": len(f.pointer)}
    return entry


def folder_entry(path: str, files: dict[str, StoredFile]) -> dict[str, Any]:
    """A folder (parsed by ``RepoFolder``); its oid is a stand-in hash of its content."""
    digest = hashlib.sha1(b"tree")
    for p in sorted(files):
        if p.startswith(path + "/"):
            digest.update(f"{p} {files[p].oid}\n".encode())
    return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": path}


def list_tree(files: dict[str, StoredFile], folder: str, recursive: bool) -> list[dict[str, Any]] | None:
    """Entries under ``folder`` ("" = root), folders first; None when ``folder`` is not a folder."""
    prefix = folder + "/" if folder else ""
    folders: set[str] = set()
    listed: list[str] = []
    for path in files:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            folders.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            listed.append(path)
    if folder and not folders and not listed:
        return None
    return [folder_entry(p, files) for p in sorted(folders)] + [file_entry(p, files[p]) for p in sorted(listed)]


def repo_info_json(repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
    siblings = []
    for path in sorted(commit.files):
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:  # files_metadata=True
            f = commit.files[path]
            sibling.update(size=len(f.content), blobId=f.oid)
            if f.lfs:
                sibling["lfs"] = {"size": len(f.content), "sha256": f.sha256, "pointerSize": len(f.pointer)}
        siblings.append(sibling)
    return {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": commit.sha,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(len(f.content) for f in commit.files.values()),
    }


# ------------------------------------------------------------------------------------------- routes
@dataclass
class Request:
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    user: str | None  # "tester" with the valid token, None anonymous

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HubError(400, "Invalid JSON body") from None

    def flag(self, name: str) -> bool:
        return self.query.get(name, [""])[0].lower() in ("1", "true")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # bytes, or anything JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)


def whoami(hub: HubServer, req: Request) -> Response:
    """GET /api/whoami-v2 -- HfApi.whoami."""
    if req.user is None:
        raise HubError(401, INVALID_CREDENTIALS)
    return Response(body={"type": "user", "id": "0" * 24, "name": req.user, "fullname": "Test User",
                          "email": f"{req.user}@example.com", "emailVerified": True, "isPro": False, "orgs": [],
                          "auth": {"type": "access_token",
                                   "accessToken": {"displayName": "tests", "role": "write", "createdAt": now_iso()}}})


def agent_harnesses(hub: HubServer, req: Request) -> Response:
    """GET /api/agent-harnesses -- the registry huggingface_hub's user-agent builder fetches once per process."""
    return Response(body={"standardEnvVars": [], "harnesses": {}})


def validate_yaml(hub: HubServer, req: Request) -> Response:
    """POST /api/validate-yaml -- create_commit validates a committed README.md's metadata: accept it."""
    return Response(body={"errors": [], "warnings": []})


def create_repo(hub: HubServer, req: Request) -> Response:
    """POST /api/repos/create -- HfApi.create_repo (409 for an existing repo: exist_ok relies on it)."""
    user = require_user(req.user)
    payload = req.json()
    repo_type = payload.get("type") or "model"
    if repo_type not in URL_PREFIXES:
        raise HubError(400, f"The test Hub does not implement {repo_type} repos")
    namespace = payload.get("organization") or user
    if namespace != user:
        raise HubError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
    repo_id = f"{namespace}/{payload['name']}"
    private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
    with hub.lock:
        if (repo_type, repo_id) in hub.repos:
            repo = hub.repos[(repo_type, repo_id)]
            # the client reads "url" from this 409 when exist_ok=True
            raise HubError(409, f"You already created this {repo_type} repo", url=hub.repo_url(repo))
        repo = hub.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private, now_iso())
        repo.add_commit("main", {".gitattributes": StoredFile(DEFAULT_GITATTRIBUTES, False)}, "initial commit")
    return Response(body={"url": hub.repo_url(repo), "name": repo_id, "id": repo_id})


def repo_info(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str = "main") -> Response:
    """GET /api/{models,datasets}/{repo_id}[/revision/{revision}] -- HfApi.repo_info / model_info / dataset_info
    (snapshot_download, HfFileSystem, datasets)."""
    repo = hub.get_repo(repo_type, repo_id, req.user)
    commit = hub.get_commit(repo, revision)
    return Response(body=repo_info_json(repo, commit, blobs=req.flag("blobs")))


def tree(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str, path: str = "") -> Response:
    """GET /api/{type}s/{repo_id}/tree/{revision}[/{path}]?recursive= -- HfApi.list_repo_tree (snapshot_download,
    HfFileSystem.ls/find/glob). One page: no ``Link`` header. ``expand`` is ignored (no lastCommit)."""
    repo = hub.get_repo(repo_type, repo_id, req.user)
    commit = hub.get_commit(repo, revision)
    entries = list_tree(commit.files, path.strip("/"), recursive=req.flag("recursive"))
    if entries is None:
        raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
    return Response(body=entries)


def paths_info(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
    """POST /api/{type}s/{repo_id}/paths-info/{revision}, form ``paths=..&paths=..`` -- HfApi.get_paths_info
    (HfFileSystem.info). Missing paths are left out."""
    repo = hub.get_repo(repo_type, repo_id, req.user)
    files = hub.get_commit(repo, revision).files
    form = parse_qs(req.body.decode(), keep_blank_values=True)
    out = []
    for path in (p.strip("/") for p in form.get("paths", [])):
        if path in files:
            out.append(file_entry(path, files[path]))
        elif any(p.startswith(path + "/") for p in files):
            out.append(folder_entry(path, files))
    return Response(body=out)


def list_commits(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
    """GET /api/{type}s/{repo_id}/commits/{revision} -- HfApi.list_repo_commits, newest first, one page."""
    repo = hub.get_repo(repo_type, repo_id, req.user)
    commit: Commit | None = hub.get_commit(repo, revision)
    out = []
    while commit is not None:
        out.append({"id": commit.sha, "title": commit.title, "message": commit.message, "date": commit.date,
                    "authors": [{"user": repo_id.split("/")[0]}]})
        commit = repo.commits.get(commit.parent) if commit.parent else None
    return Response(body=out)


def preupload(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
    """POST /api/{type}s/{repo_id}/preupload/{revision} -- create_commit / preupload_lfs_files asks, per file,
    "lfs" or "regular" upload and the oid of the file already there (unchanged files are then skipped)."""
    repo = hub.get_writable_repo(repo_type, repo_id, req.user)
    commit = hub.get_commit(repo, revision)
    out = []
    for f in req.json()["files"]:
        sample = base64.b64decode(f.get("sample", ""))
        lfs = lfs_mode(commit, f["path"], int(f["size"]), sample)
        existing = commit.files.get(f["path"])
        # the client compares this with sha256 (LFS) or the git oid (regular) of its local file
        oid = None if existing is None else (existing.sha256 if lfs else git_blob_oid(existing.content))
        out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
    return Response(body={"files": out, "commitOid": commit.sha})


def create_commit(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
    """POST /api/{type}s/{repo_id}/commit/{revision}, NDJSON -- HfApi.create_commit (upload_folder, push_to_hub).

    Lines: ``header`` (summary, description, parentCommit), ``file`` (base64 content), ``lfsFile`` (sha256 of an
    object uploaded through the LFS batch API), ``deletedFile``, ``deletedFolder``."""
    repo = hub.get_writable_repo(repo_type, repo_id, req.user)
    if req.flag("create_pr"):
        raise HubError(400, "The test Hub does not implement pull requests")
    if revision not in repo.branches:
        raise HubError(404, f"Invalid rev id: {revision} is not a branch", "RevisionNotFound")
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The commit payload must start with a header line")
    header = lines[0]["value"]
    with hub.lock:
        head = repo.commits[repo.branches[revision]]
        if header.get("parentCommit") not in (None, head.sha):  # datasets retries on 412
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"].strip("/")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
                files[path] = StoredFile(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                content = repo.lfs_objects.get(value["oid"])
                if content is None:
                    raise HubError(400, f"LFS object {value['oid']} for {path} was not uploaded")
                files[path] = StoredFile(content, lfs=True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                for p in [p for p in files if p.startswith(path + "/")]:
                    del files[p]
            else:
                raise HubError(400, f"The test Hub does not implement commit operation {key!r}")
        new = repo.add_commit(revision, files, header.get("summary", ""), header.get("description", ""))
    return Response(body={"success": True, "commitOid": new.sha, "commitUrl": f"{hub.repo_url(repo)}/commit/{new.sha}",
                          "hookOutput": ""})


def create_tag(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str) -> Response:
    """POST /api/{type}s/{repo_id}/tag/{revision}, ``{"tag": ...}`` -- HfApi.create_tag (409 if it exists)."""
    repo = hub.get_writable_repo(repo_type, repo_id, req.user)
    target = hub.get_commit(repo, revision)
    tag = req.json()["tag"]
    with hub.lock:
        if tag in repo.tags or tag in repo.branches:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = target.sha
    return Response(body={})


def lfs_batch(hub: HubServer, req: Request, repo_type: str, repo_id: str) -> Response:
    """POST /{prefix}{repo_id}.git/info/lfs/objects/batch -- the LFS batch API (lfs.post_lfs_batch_info, called by
    preupload_lfs_files). Answers the "basic" transfer: a PUT URL per missing object plus a verify action;
    objects already stored get no actions (the client skips them)."""
    repo = hub.get_writable_repo(repo_type, repo_id, req.user)
    payload = req.json()
    if payload.get("operation") != "upload":
        raise HubError(400, "The test Hub implements only LFS uploads")
    objects = []
    for obj in payload["objects"]:
        oid, size = obj["oid"], obj["size"]
        entry: dict[str, Any] = {"oid": oid, "size": size}
        if oid not in repo.lfs_objects:
            entry["authenticated"] = True
            entry["actions"] = {
                # a pre-signed-style URL: the client PUTs the bytes there without its auth header
                "upload": {"href": f"{hub.endpoint}/_lfs_storage/{repo_type}s/{repo_id}/{oid}", "expires_in": 3600},
                "verify": {"href": f"{hub.repo_url(repo)}.git/info/lfs/objects/verify", "expires_in": 3600},
            }
        objects.append(entry)
    return Response(body={"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                    headers={"Content-Type": "application/vnd.git-lfs+json"})


def lfs_verify(hub: HubServer, req: Request, repo_type: str, repo_id: str) -> Response:
    """POST /{prefix}{repo_id}.git/info/lfs/objects/verify -- lfs_upload's verify action after the PUT."""
    repo = hub.get_writable_repo(repo_type, repo_id, req.user)
    payload = req.json()
    content = repo.lfs_objects.get(payload["oid"])
    if content is None or len(content) != payload["size"]:
        raise HubError(404, f"LFS object {payload['oid']} of size {payload['size']} was not uploaded")
    return Response(body={"success": True})


def lfs_storage_put(hub: HubServer, req: Request, repo_type: str, repo_id: str, oid: str) -> Response:
    """PUT /_lfs_storage/{type}s/{repo_id}/{oid} -- lfs._upload_single_part (the "basic" transfer's upload href)."""
    repo = hub.repos.get((repo_type, repo_id))
    if repo is None:
        raise HubError(404, "No such upload URL")
    if hashlib.sha256(req.body).hexdigest() != oid:
        raise HubError(400, f"Uploaded content does not match sha256 {oid}")
    with hub.lock:
        repo.lfs_objects[oid] = req.body
    return Response(body=b"")


def resolve(hub: HubServer, req: Request, repo_type: str, repo_id: str, revision: str, path: str) -> Response:
    """GET/HEAD /{prefix}{repo_id}/resolve/{revision}/{path} -- hf_hub_download / get_hf_file_metadata /
    HfFileSystem reads. Serves the bytes directly (no CDN redirect) with the headers the client checks: ETag,
    X-Repo-Commit, X-Linked-Etag / X-Linked-Size (LFS), Content-Length; supports one ``Range: bytes=a-b``."""
    repo = hub.get_repo(repo_type, repo_id, req.user)
    commit = hub.get_commit(repo, revision)
    f = commit.files.get(path)
    if f is None:  # the client caches the non-existence under X-Repo-Commit
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
    headers = {"ETag": f'"{f.etag}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
    if f.lfs:
        headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.content))})
    content, size = f.content, len(f.content)
    range_header = req.headers.get("Range")
    if not range_header:
        return Response(body=content, headers=headers)
    unit, _, spec = range_header.partition("=")
    first = spec.split(",")[0].strip()
    start_text, _, end_text = first.partition("-")
    if unit.strip() != "bytes" or not (start_text or end_text):
        raise HubError(400, f"Unsupported Range header {range_header!r}")
    if start_text:
        start, end = int(start_text), min(int(end_text) if end_text else size - 1, size - 1)
    else:  # "bytes=-N": the last N bytes
        start, end = max(size - int(end_text), 0), size - 1
    if start >= size or start > end:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(206, content[start:end + 1], headers)


# (method, route kind) -> handler; parse_route turns a URL path into a route kind and the handler's arguments.
ROUTES: dict[tuple[str, str], Callable[..., Response]] = {
    ("GET", "whoami"): whoami,
    ("GET", "agent-harnesses"): agent_harnesses,
    ("POST", "validate-yaml"): validate_yaml,
    ("POST", "create"): create_repo,
    ("GET", "info"): repo_info,
    ("GET", "revision"): repo_info,
    ("GET", "tree"): tree,
    ("POST", "paths-info"): paths_info,
    ("GET", "commits"): list_commits,
    ("POST", "preupload"): preupload,
    ("POST", "commit"): create_commit,
    ("POST", "tag"): create_tag,
    ("POST", "lfs-batch"): lfs_batch,
    ("POST", "lfs-verify"): lfs_verify,
    ("PUT", "lfs-storage"): lfs_storage_put,
    ("GET", "resolve"): resolve,
    ("HEAD", "resolve"): resolve,
}


def parse_route(segments: list[str]) -> tuple[str, list[str]] | None:
    """Path segments -> (route kind, handler arguments), or None for a path no route serves."""
    match segments:
        case ["api", "whoami-v2"]:
            return "whoami", []
        case ["api", "agent-harnesses"]:
            return "agent-harnesses", []
        case ["api", "validate-yaml"]:
            return "validate-yaml", []
        case ["api", "repos", "create"]:
            return "create", []
        case ["api", ("models" | "datasets") as kind, namespace, name]:
            return "info", [REPO_TYPES[kind], f"{namespace}/{name}"]
        case ["api", ("models" | "datasets") as kind, namespace, name, action, revision, *rest] if action in (
            "revision", "tree", "paths-info", "commits", "preupload", "commit", "tag"
        ):
            if rest and action != "tree":
                return None
            return action, [REPO_TYPES[kind], f"{namespace}/{name}", revision, *(["/".join(rest)] if rest else [])]
        case ["_lfs_storage", ("models" | "datasets") as kind, namespace, name, oid]:
            return "lfs-storage", [REPO_TYPES[kind], f"{namespace}/{name}", oid]
    repo_type = "dataset" if segments[:1] == ["datasets"] else "model"
    rest = segments[1:] if repo_type == "dataset" else segments
    match rest:
        case [namespace, name, "resolve", revision, *path] if path:
            return "resolve", [repo_type, f"{namespace}/{name}", revision, "/".join(path)]
        case [namespace, git_name, "info", "lfs", "objects", ("batch" | "verify") as action]:
            if git_name.endswith(".git"):  # /{repo_id}.git/info/lfs/objects/...
                return f"lfs-{action}", [repo_type, f"{namespace}/{git_name.removesuffix('.git')}"]
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked request bodies; every response says "Connection: close"
    server: Any

    def do_GET(self) -> None:
        self.handle_request()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        logger.debug("%s " + format, self.address_string(), *args)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def user(self) -> str | None:
        """The authenticated user; an invalid token is refused on every route, like the Hub does."""
        authorization = self.headers.get("Authorization")
        if not authorization:
            return None
        if authorization == f"Bearer {VALID_TOKEN}":
            return USER
        raise HubError(401, INVALID_CREDENTIALS)

    def handle_request(self) -> None:
        hub: HubServer = self.server.hub
        url = urlsplit(self.path)
        hub.requests.append((self.command, url.path))
        if self.headers.get("Range"):
            hub.range_requests.append((url.path, self.headers["Range"]))
        try:
            body = self.read_body()
            segments = [unquote(s) for s in url.path.strip("/").split("/")]
            route = parse_route(segments)
            if route is None:
                hub.unhandled.append(f"{self.command} {self.path}")
                logger.warning("test Hub: unhandled route %s %s", self.command, self.path)
                raise HubError(404, f"The test Hub does not implement {self.command} {url.path}")
            kind, args = route
            handler = ROUTES.get((self.command, kind))
            if handler is None:
                hub.unhandled.append(f"{self.command} {self.path}")
                logger.warning("test Hub: unhandled method %s %s", self.command, self.path)
                raise HubError(405, f"The test Hub does not implement {self.command} {url.path}")
            user = None if kind == "lfs-storage" else self.user()  # pre-signed URLs ignore auth
            request = Request(parse_qs(url.query), self.headers, body, user)
            response = handler(hub, request, *args)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            response = Response(err.status, {"error": err.message, **err.body}, headers)
        except Exception:  # a server bug: 400 rather than 5xx (the clients retry 5xx with back-off)
            hub.errors.append(f"{self.command} {self.path}\n{traceback.format_exc()}")
            logger.error("test Hub crashed on %s %s\n%s", self.command, self.path, traceback.format_exc())
            response = Response(400, {"error": "test Hub server error (see the test's teardown)"})
        self.send(response)

    def send(self, response: Response) -> None:
        body = response.body
        headers = dict(response.headers)
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True


# ------------------------------------------------------------------------------------------ fixture
@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """A fresh test Hub, with huggingface_hub and datasets pointed at it for the duration of the test.

    Both libraries copy settings into module globals at import time, so setting environment variables
    is not enough: the copies are patched too (and the env vars, for any code reading them later).
    """
    import datasets
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub import hf_api as hf_api_module
    from huggingface_hub.utils import _http

    server = HubServer().start()
    endpoint = server.endpoint
    cache = tmp_path_factory.mktemp("hub_cache")
    hub_cache = str(cache / "hub")

    # environment: read by code that looks later, and inherited by worker processes
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)  # no real token may leak in (see huggingface_hub.utils._auth)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # the test Hub speaks LFS, not Xet
    monkeypatch.setenv("HF_HUB_CACHE", hub_cache)

    # huggingface_hub.constants: read at call time by most of the library
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {"127.0.0.1"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", hub_cache)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache / "token"))  # does not exist: no stored token
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(cache / "stored_tokens"))
    # ... and the copies made at import time
    monkeypatch.setattr(hf_api_module.api, "endpoint", endpoint)  # behind huggingface_hub.whoami, .create_repo, ...
    monkeypatch.setattr(_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(endpoint)})
    from huggingface_hub.utils import _cache_manager, _git_credential

    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", hub_cache)
    monkeypatch.setattr(_git_credential, "ENDPOINT", endpoint)

    # datasets.config: computed once at import
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "datasets" / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "datasets" / "downloads" / "extracted")
    # hosts the test Hub is not: the download counter on S3 and the dataset viewer (datasets-server.<host>)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)

    # fsspec caches HfFileSystem instances (and their listings) across calls
    huggingface_hub.HfFileSystem.clear_instance_cache()
    try:
        yield server
    finally:
        huggingface_hub.HfFileSystem.clear_instance_cache()
        server.stop()
    problems = [f"unhandled request: {r}" for r in server.unhandled] + [f"server error: {e}" for e in server.errors]
    if problems:
        pytest.fail("the test Hub could not serve every request:\n" + "\n".join(problems), pytrace=False)
