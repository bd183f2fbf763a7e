"""Ingest end to end: S3 prefix and URL list runs post what the same local folder posts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from flows.ingest import ingest_flow
from flows.params import IngestParams, PreannotateParams
from flows.preannotate import preannotate
from prelabel.core.errors import SourceError
from prelabel.core.settings import load_settings
from prelabel.ingest.manifest import read_manifest
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.store.s3 import s3_client
from tests.support.cli import CliRun
from tests.support.http_faults import Site, serve

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(autouse=True)
def _env(label_studio: LocalLabelStudio, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", label_studio.legacy_token.get_secret_value())
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "k",
        "S3_SECRET_ACCESS_KEY": "s",
    }
    for key, value in env.items():
        monkeypatch.setenv(f"PRELABEL_{key}", value)


def _results(client: LabelStudioClient, project: Project) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per model version, per task: the prediction's results without their region ids."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task in client.iter_tasks(project.id, full=True):
        for prediction in task.predictions:
            regions = [{k: v for k, v in r.items() if k != "id"} for r in prediction["result"]]
            found.setdefault(prediction["model_version"], {})[str(task.id)] = regions
    return found


def test_s3_and_url_list_runs_post_what_the_folder_posts(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, detr_says_car: Path
) -> None:
    samples = {s.name: s.data for s in make_samples()}
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in samples.items():
        (folder / name).write_bytes(data)
    s3 = s3_client(load_settings())
    s3.create_bucket(Bucket="photos")
    for name, data in samples.items():
        s3.put_object(Bucket="photos", Key=f"batch1/{name}", Body=data)
    common = {
        "project_id": project.id,
        "model": "detr",
        "batch_size": 2,
        "cache_dir": str(tmp_path / "cache"),
        "model_options": {"checkpoint": str(detr_says_car), "threshold": 0.5, "device": "cpu"},
        "output_dir": str(tmp_path / "out"),
        "unmatched_csv": str(tmp_path / "out" / "u.csv"),
        "label_map": {"car": "civilian vehicle"},
    }
    local = preannotate(
        PreannotateParams.model_validate(
            {**common, "input_dir": str(folder), "import_new": True, "model_version": "local"}
        )
    )
    assert (local.imported, local.posted) == (4, 4)

    s3_done = ingest_flow(IngestParams(source="s3://photos/batch1", out=str(tmp_path / "s3.csv")))
    assert s3_done.kept == 4 and {r.name for r in read_manifest(tmp_path / "s3.csv")} == set(samples)
    from_s3 = preannotate(
        PreannotateParams.model_validate(
            {**common, "manifest": str(tmp_path / "s3.csv"), "model_version": "s3"}
        )
    )
    assert (from_s3.matched, from_s3.imported, from_s3.cached, from_s3.posted) == (4, 0, 4, 4)

    with serve(Site(samples)) as site:
        (tmp_path / "urls.txt").write_text("\n".join(f"{site.url}/img/{n}" for n in samples))
        ingest_flow(IngestParams(source=str(tmp_path / "urls.txt"), out=str(tmp_path / "urls.csv")))
        urls = {"manifest": str(tmp_path / "urls.csv"), "model_version": "urls", "refresh": True}
        from_urls = preannotate(PreannotateParams.model_validate({**common, **urls}))
    assert (from_urls.matched, from_urls.inferred, from_urls.posted) == (4, 4, 4)

    results = _results(ls_client, project)
    assert set(results) == {"local", "s3", "urls"} and len(results["local"]) == 4
    # the model finds "car" 12 times an image, and the label map renames it
    for regions in results["local"].values():
        assert [r["value"]["rectanglelabels"] for r in regions] == [["civilian vehicle"]] * 12
    assert (local.unmatched_labels, from_s3.unmatched_labels, from_urls.unmatched_labels) == (0, 0, 0)
    assert results["s3"] == results["local"] and results["urls"] == results["local"]


def test_ingest_command_with_a_sample(label_studio: LocalLabelStudio, tmp_path: Path, cli: CliRun) -> None:
    listing = tmp_path / "urls.csv"
    with serve(Site({s.name: s.data for s in make_samples()})) as site:
        rows = [f"{site.url}/img/{s.name},{'a' if i < 3 else 'b'}" for i, s in enumerate(make_samples())]
        listing.write_text("url,label\n" + "\n".join([*rows, f"{site.url}/missing/x.jpg,b"]) + "\n")
        done = cli(
            "ingest",
            "--source",
            str(listing),
            "--manifest",
            str(tmp_path / "m.csv"),
            "--sample",
            "4",
            "--stratify-by",
            "label",
            "--seed",
            "3",
            "--allow-failures",
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a: 2 of 3" in done.stdout and "b: 2 of 2" in done.stdout
    rows = read_manifest(tmp_path / "m.csv")
    assert len(rows) == 3 and all(r.sha256 for r in rows)  # stratum b holds the missing image
    assert "missing/x.jpg" in (tmp_path / "m_errors.csv").read_text()
    assert (tmp_path / "m_strata.csv").read_text().splitlines()[1:] == ["a,3,2", "b,2,2"]


def test_a_projects_own_images_as_a_source(
    ls_client: LabelStudioClient, project: Project, tmp_path: Path, tiny_detr: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for sample in make_samples():
        (folder / sample.name).write_bytes(sample.data)
    ls_client.upload_files(project.id, sorted(folder.iterdir()))
    done = ingest_flow(IngestParams(source=f"ls://{project.id}", out=str(tmp_path / "project.csv")))
    assert (done.kept, done.failed) == (4, 0)
    rows = read_manifest(tmp_path / "project.csv")
    assert all(r.uri.startswith(f"{load_settings().ls_url.rstrip('/')}/data/upload/") for r in rows)
    assert {r.sha256 for r in rows} == {hashlib.sha256(s.data).hexdigest() for s in make_samples()}
    summary = preannotate(
        PreannotateParams.model_validate(
            {
                "project_id": project.id,
                "manifest": str(tmp_path / "project.csv"),
                "model": "detr",
                "model_options": {"checkpoint": str(tiny_detr), "threshold": 0.0, "device": "cpu"},
                "model_version": "from-project",
                "cache_dir": str(tmp_path / "cache"),
                "output_dir": str(tmp_path / "out"),
                "unmatched_csv": str(tmp_path / "out" / "u.csv"),
            }
        )
    )
    assert (summary.matched, summary.imported, summary.posted, summary.failed) == (4, 0, 4, 0)
    with pytest.raises(SourceError, match="expected ls://PROJECT_ID"):
        ingest_flow(IngestParams(source="ls://three", out=str(tmp_path / "bad.csv")))
