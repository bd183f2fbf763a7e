"""The review page's images under load, read from a real Label Studio with the key: many
overlapping requests from several reviewers, every one answered with the file's own bytes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from prelabel.core.settings import Settings
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.review.queue import ReviewQueue
from prelabel.review.sets import ReviewSet, items_from_tasks
from prelabel.review.team import Team
from tests.conftest import encode_image
from tests.support.review_server import review_server

TOKENS = {"alice-token-1": "alice", "bob-token-22": "bob", "carol-token-333": "carol"}


def _rect(width: int, height: int) -> dict[str, object]:
    return {
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": width,
        "original_height": height,
        "score": 0.5,
        "value": {"x": 10, "y": 10, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["person"]},
    }


def test_64_overlapping_image_requests_from_3_reviewers_all_answer_with_the_right_bytes(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    files: list[Path] = []
    for seed in range(12):  # distinct content and sizes, so a mixed-up answer shows
        size = (320 + 8 * seed, 240 + 4 * seed)
        pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        files.append(tmp_path / f"photo_{seed}.png")
        files[-1].write_bytes(encode_image(Image.fromarray(pixels), "PNG"))
    task_ids = ls_client.upload_files(project.id, files)
    ls_client.import_predictions(
        project.id,
        [
            {"task": task, "model_version": "m1", "result": [_rect(320 + 8 * n, 240 + 4 * n)]}
            for n, task in enumerate(task_ids)
        ],
    )
    items, _ = items_from_tasks(ls_client.iter_tasks(project.id, full=True), "m1", "image", "box")
    meta = {"source": "project", "project_id": project.id, "model_version": "m1", "ls_url": label_studio.url}
    with ReviewSet.create(tmp_path / "set.sqlite", items, meta) as review_set:
        expected = {
            item.id: files[task_ids.index(item.task_id or 0)].read_bytes() for item in review_set.items()
        }
    assert len(expected) == 12

    queue = ReviewQueue(tmp_path / "set.sqlite", None)
    settings = Settings(ls_url=label_studio.url, ls_api_key=label_studio.legacy_token)
    requests = [(list(TOKENS)[n % 3], n % 12 + 1) for n in range(64)]
    with review_server(queue, settings, Team(tokens=TOKENS)) as url:

        def fetch(request: tuple[str, int]) -> tuple[int, bytes]:
            token, item_id = request
            answer = httpx.get(f"{url}/image/{item_id}", params={"token": token}, timeout=60)
            return answer.status_code, answer.content

        started = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(fetch, requests))
        seconds = time.monotonic() - started
        # The same page keeps working after the burst (the Label Studio client was never closed).
        after = httpx.get(f"{url}/image/1", params={"token": "bob-token-22"}, timeout=60)
    assert [status for status, _ in answers] == [200] * 64
    wrong = [item for (_, item), (_, body) in zip(requests, answers, strict=True) if body != expected[item]]
    assert wrong == []
    assert after.status_code == 200 and after.content == expected[1]
    print(f"64 overlapping image requests, 3 reviewers: {seconds:.2f} s")
