"""A stand-in for the Hugging Face Hub's file API, for tests: enough of it for ``hf_hub_download``.

It serves folders as model repositories on 127.0.0.1 (``HF_ENDPOINT=server.url``): ``HEAD``/``GET
/{org}/{name}/resolve/{revision}/{file}`` with the headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``,
``X-Linked-Etag`` / ``X-Linked-Size`` for the LFS weights, ``Content-Length``) and its error codes
(``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``). The cache is then laid out by the library's
own download code, as it would be from the real Hub.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".pt", ".bin")


class FakeHub:
    """``with FakeHub({"org/name": {"main": folder, "v2": other}}) as hub: ... hub.url``; ``hub.requests`` logs."""

    def __init__(self, repos: dict[str, dict[str, Path]]) -> None:
        self.repos = {repo: {rev: Path(p) for rev, p in revs.items()} for repo, revs in repos.items()}
        self.commits = {
            repo: {rev: hashlib.sha1(f"{repo}@{rev}:{p}".encode()).hexdigest() for rev, p in revs.items()}
            for repo, revs in self.repos.items()
        }
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _folder(self, repo: str, rev: str) -> tuple[Path, str] | None:
        revs = self.repos[repo]
        for name, commit in self.commits[repo].items():
            if rev in (name, commit):
                return revs[name], commit
        return None

    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append(f"{h.command} {path}")
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(h, 404, "EntryNotFound")
        repo, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo not in self.repos:
            return self._error(h, 401, "RepoNotFound")
        found = self._folder(repo, rev)
        if found is None:
            return self._error(h, 404, "RevisionNotFound")
        folder, commit = found
        file = folder / filename
        if not file.is_file():
            return self._error(h, 404, "EntryNotFound", commit)
        data = file.read_bytes()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("X-Repo-Commit", commit)
        if file.suffix in LFS_SUFFIXES:  # as the Hub answers for a file stored in LFS
            h.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            h.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            h.send_header("X-Linked-Size", str(len(data)))
        else:
            git_blob = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()  # git's id of a small file
            h.send_header("ETag", f'"{git_blob}"')
        h.end_headers()
        if body:
            h.wfile.write(data)

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, status: int, code: str, commit: str | None = None) -> None:
        msg = f'{{"error": "{code}"}}'.encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(msg)))
        if commit:
            h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(msg)
