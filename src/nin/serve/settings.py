"""The service's settings: one frozen dataclass, passed to worker processes as JSON in the environment."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nin.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE
from nin.errors import ConfigError

if TYPE_CHECKING:
    from nin.serve.fetch import HostAllowlist

ENV_VAR = "NIN_SERVE_SETTINGS"
ERROR_MODES = ("modelhub", "http")


@dataclass(frozen=True)
class ServeSettings:
    """What ``nin serve`` runs and its limits."""

    checkpoint: str = ""  # .pt checkpoint or .onnx export
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 (the same answers on every machine) | bf16 | auto (bf16 where native)
    threads: int = 0  # torch / onnxruntime intra-op threads per worker (0 = library default)
    max_upload_bytes: int = 10 * 1024 * 1024  # upload cap (and fileurl download cap), bytes
    max_pixels: int = DEFAULT_MAX_PIXELS  # decoded image cap, pixels
    max_side: int = DEFAULT_MAX_SIDE  # decoded image cap, px a side
    samples_dir: str = ""  # folder of sample images ("" = the defaults for the model)
    modelhub_contrib: str = ""  # a ModelHub contribution folder whose card is served ("" = generate one)
    errors: str = "modelhub"  # modelhub: ModelHub's 400 for every error on its routes | http: distinct statuses
    allow_fileurl: bool = False  # enable GET /api/predict?fileurl=
    fileurl_timeout_s: float = 10.0  # whole download, seconds
    fileurl_allow_hosts: tuple[str, ...] = ()  # hosts, addresses or networks allowed although private
    fileurl_allow_private: bool = False  # allow every loopback/private host (library use, trusted networks)
    max_batch: int = 32  # images per forward pass (1 = no micro-batching)
    max_wait_ms: float = 0.0  # extra wait for a batch to fill (0 = only batch requests already queued)
    max_queue: int = 256  # requests waiting for inference; more get 503
    decode_concurrency: int = 4  # images decoded at once (bounds decoder memory)
    body_timeout_s: float = 30.0  # a request body must arrive whole within this (slow clients get 408)
    drain_timeout_s: float = 30.0  # on SIGTERM, the longest wait for requests in flight before stopping
    top: int = 5  # ModelHub config: entries the front end shows
    sort: bool = True  # ModelHub config: sort them by probability

    def __post_init__(self) -> None:
        positive = ("max_upload_bytes", "max_pixels", "max_side", "max_batch", "max_queue", "decode_concurrency", "top")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        if self.fileurl_timeout_s <= 0 or self.max_wait_ms < 0 or self.threads < 0:
            raise ConfigError("fileurl timeout must be > 0, max-wait-ms and threads >= 0")
        if self.body_timeout_s <= 0 or self.drain_timeout_s < 0:
            raise ConfigError("--body-timeout must be > 0 and --drain-timeout >= 0")
        if self.errors not in ERROR_MODES:
            raise ConfigError(f"errors must be one of {', '.join(ERROR_MODES)}, got {self.errors!r}")
        # JSON brings lists back; a tuple keeps the settings hashable and comparable.
        object.__setattr__(self, "fileurl_allow_hosts", tuple(str(h) for h in self.fileurl_allow_hosts))
        if self.fileurl_allow_hosts and not self.allow_fileurl:
            raise ConfigError("--fileurl-allow-hosts only matters with --allow-fileurl; add --allow-fileurl")
        _ = self.fileurl_allowlist  # parsed now, so a bad entry fails here, in one line
        if self.modelhub_contrib and self.samples_dir:
            raise ConfigError(
                "--samples and --modelhub-contrib both name the samples; the contribution's sample_data/ is "
                "served, so drop --samples"
            )

    @functools.cached_property
    def fileurl_allowlist(self) -> HostAllowlist:
        """``fileurl_allow_hosts`` parsed once (each fileurl request checks every redirect hop against it)."""
        from nin.serve.fetch import HostAllowlist

        return HostAllowlist(self.fileurl_allow_hosts)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in names})

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(ENV_VAR)
        if not text:
            raise ConfigError(f"{ENV_VAR} is not set; start the service with `nin serve CHECKPOINT`")
        return cls.from_json(text)
