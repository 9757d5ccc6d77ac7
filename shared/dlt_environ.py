"""dlt's environment-variable config provider, answering the same values with less work.

dlt resolves its own configuration (destination, normalizers, writers, load and extract
settings) from its provider chain many times per pipeline run: about 90 resolutions and 1,000
environment lookups for one small table. For every lookup of a secret-typed field, dlt's
`EnvironProvider` first works out from the type hint whether the field is a secret, and if so
tries to read a file under `/run/secrets` (Docker and Kubernetes secrets), then reads the
variable. The hint test alone was a tenth of a small job's time.

`FastEnvironProvider` gives the same answers: when `/run/secrets` is a folder it does exactly
what dlt does; when there is none (Azure Functions, this machine) no file can be read there, so
it reads the variable only. Whether the folder exists is looked up once per process: secret
mounts are made when a container starts, before the process does.

May import: dlt's configuration providers only.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Optional, Tuple, Type

from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import EnvironProvider
from dlt.common.configuration.providers.environ import SECRET_STORAGE_PATH
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext


@lru_cache(maxsize=1)
def secret_files() -> bool:
    """Whether the Docker/Kubernetes secrets folder exists (once per process)."""
    return os.path.isdir(os.path.dirname(SECRET_STORAGE_PATH))


class FastEnvironProvider(EnvironProvider):
    """dlt's `EnvironProvider`, skipping the secret-file probe where no secrets folder exists."""

    def get_value(
        self, key: str, hint: Type[Any], pipeline_name: str, *sections: str
    ) -> Tuple[Optional[Any], str]:
        if secret_files():
            return super().get_value(key, hint, pipeline_name, *sections)
        name = self.get_key_name(key, pipeline_name, *sections)
        return os.environ.get(name), name


def use_fast_environ() -> None:
    """Put `FastEnvironProvider` in place of dlt's environment provider in this process's chain
    (again after dlt rebuilt its chain; a no-op when it is in place)."""
    providers = Container()[PluggableRunContext].providers
    name = EnvironProvider().name
    if name in providers and type(providers[name]) is EnvironProvider:
        providers[name] = FastEnvironProvider()
