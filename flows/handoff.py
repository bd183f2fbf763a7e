"""What ``prelabel serve`` hands over, as runs of prelabel's deployments (``prelabel.serve.handoff``).

Tasks a request could not answer within its budget, and tasks just imported, become one run of
the ``preannotate`` deployment *by task id*: the model, its options and the model version the
backend answers with, so the run's predictions are the backend's. The run's idempotency key is
the project, version and tasks, so handing the same tasks over twice (two worker processes, a
retried request) starts one run. Changed annotations become a run of ``pull-annotations``.
Parameters hold no secret: the workers' environment (or a Secret block) has the Label Studio key,
and runs take its URL from there too, so the workers must use the Label Studio the backend does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from flows.params import PreannotateParams, PullParams
from prelabel.core.errors import PrelabelError
from prelabel.serve.settings import ServeSettings

__all__ = ["DeploymentHandoff"]


class DeploymentHandoff:
    """``Handoff`` through the Prefect API at ``PREFECT_API_URL``."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        cache = settings.cache_dir
        # a local cache is named absolutely: the run's worker starts elsewhere on the same machine
        self.cache_dir = cache if cache is None or cache.startswith("s3://") else str(Path(cache).resolve())

    def preannotate(self, project_id: int, task_ids: Sequence[int], model_version: str) -> str:
        deployment = self.settings.preannotate_deployment
        if deployment is None:
            raise PrelabelError("no preannotate deployment is configured")
        ids = sorted(set(task_ids))
        params = PreannotateParams(
            project_id=project_id,
            task_ids=ids,
            model=self.settings.model,
            model_options=self.settings.model_options,
            model_version=model_version,
            label_map=self.settings.label_map,
            plurals=self.settings.plurals,
            cache_dir=self.cache_dir,
            output_dir=f"{self.settings.run_output}/project-{project_id}",
            unmatched_csv=f"{self.settings.run_output}/project-{project_id}/unmatched_labels.csv",
        )
        digest = hashlib.sha256(f"{project_id}:{model_version}:{ids}".encode()).hexdigest()[:32]
        return self._run(deployment, params.model_dump(mode="json", exclude_defaults=True), f"serve-{digest}")

    def pull(self, project_id: int) -> str:
        if not self.settings.pull_out:
            raise PrelabelError("no folder to pull annotations into is configured")
        params = PullParams(project_id=project_id, output_dir=self.settings.pull_out)
        return self._run(self.settings.pull_deployment, params.model_dump(mode="json", exclude_defaults=True))

    def _run(self, deployment: str, params: dict[str, Any], key: str | None = None) -> str:
        """Start a run of ``deployment`` (not waiting for it); its id. Prefect's refusals and an
        unreachable API are one ``PrelabelError``."""
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound, PrefectException

        try:
            run = run_deployment(
                deployment,
                parameters={"params": params},
                timeout=0,
                idempotency_key=key,
                tags=["prelabel-serve"],
                as_subflow=False,
                _sync=True,
            )  # type: ignore[call-arg]
        except ObjectNotFound as exc:
            raise PrelabelError(
                f"Prefect has no deployment {deployment!r}: deploy deployments/prefect.yaml"
            ) from exc
        except (PrefectException, httpx.HTTPError, RuntimeError) as exc:
            raise PrelabelError(f"starting a run of {deployment} failed: {str(exc)[:300]}") from exc
        return str(run.id)  # type: ignore[union-attr]  # _sync: a FlowRun, not a coroutine
