"""Flow parameters as pydantic models: the Prefect UI builds its run form from them.

Secrets are never parameters: the Label Studio key comes from the environment
(``PRELABEL_LS_API_KEY``) or from a Prefect Secret block named in ``api_key_block``.
A parameter backed by a setting (batch sizes, the pixel limit) defaults to None: the run
then takes its ``PRELABEL_*`` setting (``flows.common.RunSizes``), so each default has one
source, ``prelabel.core.settings.Settings``.

Each description is also the help of the matching ``prelabel`` option (``prelabel_cli.options``
reads it), so the Prefect UI's run form and ``--help`` say the same words; a parameter named
differently before keeps its old name as an alias (``out``) for stored runs and callers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator

from prelabel.core.defaults import DEFAULT_KEYPOINT_TOLERANCE, DEFAULT_TOLERANCE
from prelabel.labelstudio.formats import Format

__all__ = [
    "ExportParams",
    "ExportShardParams",
    "FeaturesParams",
    "InferParams",
    "IngestParams",
    "LabelStudioParams",
    "PostParams",
    "PreannotateParams",
    "PullParams",
    "QualityParams",
]

_SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey")
_TASK_BATCH = "Images per Prefect task run; default PRELABEL_TASK_BATCH_SIZE."
_OUTPUT_FOLDER = AliasChoices("output_dir", "out")  # `out` before the one name for output folders
_SHARD_IMAGES = "Image URIs of this shard, in the run's order (empty when images_ref names them)."
_SHARD_REF = "The shared cache's record of this shard's images (URIs stay out of stored parameters)."


class LabelStudioParams(BaseModel):
    """Where the project is."""

    project_id: int = Field(ge=1, description="Label Studio project id, e.g. 3.")
    ls_url: str | None = Field(
        default=None, description="Label Studio URL; default PRELABEL_LS_URL (else LABEL_STUDIO_URL)."
    )
    api_key_block: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the Label Studio key (else the env).",
    )


class _PostOptions(LabelStudioParams):
    label_map: dict[str, str] = Field(
        default_factory=dict, description='Model label -> project label, e.g. {"car": "civilian vehicle"}.'
    )
    label_map_file: str | None = Field(
        default=None,
        description='A JSON or YAML file of model label -> project label, e.g. {"car": "civilian vehicle"}.',
    )
    plurals: bool = Field(default=False, description="Let 'cars' match the label 'car'.")
    model_version: str | None = Field(
        default=None,
        description="The predictions' model version; default: the model's name and a digest of its settings.",
    )
    masks: bool | None = Field(
        default=None,
        description="Post masks (true needs BrushLabels) or none (false); default: when the project has "
        "BrushLabels.",
    )
    polygon_tolerance: float = Field(
        default=DEFAULT_TOLERANCE,
        ge=0,
        le=100,
        description="Pixels a polygon traced from a mask may stray from the mask's outline.",
    )
    import_new: bool = Field(default=False, description="Import images without a task as new tasks first.")
    task_data: list[str] = Field(
        default_factory=list,
        description="Manifest columns copied into each new task's data (with import-new and a manifest), "
        "e.g. label and camera.",
    )
    show_predictions: bool = Field(
        default=False, description="Set the project's model version to this run's, so annotators see it."
    )
    fuzzy: bool = Field(
        default=False,
        description="Also pair similar names (never names whose numbers differ); see matches.csv.",
    )
    overwrite: bool = Field(
        default=False, description="Replace this model version's predictions of these tasks."
    )
    dry_run: bool = Field(
        default=False, description="Read, match, infer and report; create, upload and post nothing."
    )
    wait_seconds: float = Field(
        default=600.0,
        ge=0,
        le=86_400,
        description="Seconds to wait while another run holds the project; then give up (exit code 3).",
    )
    batch_size: int | None = Field(default=None, ge=1, le=10_000, description=_TASK_BATCH)
    post_chunk_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Predictions per bulk POST; default PRELABEL_POST_BATCH_SIZE.",
    )
    output_dir: str = Field(
        default="prelabel-output", description="Folder for the reports, the payloads and the contact sheet."
    )
    unmatched_csv: str = Field(
        default="unmatched_labels.csv", description="CSV file the unmatched labels are appended to."
    )

    @model_validator(mode="after")
    def _unmatched_labels_apart(self) -> Self:
        """The run writes ``output_dir/unmatched.csv`` (files and tasks left unpaired) after the
        labels are appended: the same file would lose the labels."""
        files_report = Path(self.output_dir, "unmatched.csv").expanduser().resolve()
        if Path(self.unmatched_csv).expanduser().resolve() == files_report:
            raise ValueError(
                f"unmatched_csv {self.unmatched_csv!r} is the run's report of unmatched files and tasks "
                "(output_dir/unmatched.csv): give the labels another file, e.g. unmatched_labels.csv"
            )
        return self

    @model_validator(mode="after")
    def _task_data_from_manifest(self) -> Self:
        if self.task_data and not (self.import_new and getattr(self, "manifest", None)):
            raise ValueError("task_data (manifest columns for new tasks) needs import_new and a manifest")
        return self

    contact_sheet_size: int = Field(
        default=12, ge=0, le=100, description="Images drawn on the contact sheet."
    )
    save_payloads: bool = Field(
        default=True, description="Write each prediction as JSON in output_dir/payloads."
    )


class _ModelSettings(BaseModel):
    model: str = Field(
        default="ocr",
        description="Model: ocr, sam3, grounded-sam2, dinox, detr, ..., or a chain such as "
        "detr+vitpose+siglip (see `prelabel models`).",
    )
    model_options: dict[str, Any] = Field(
        default_factory=dict,
        description="The model's options, e.g. threshold=0.5 (in a chain: vitpose.threshold=0.5); see "
        "`prelabel models`.",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Prediction cache: a folder or s3://bucket/prefix; default PRELABEL_CACHE_DIR.",
    )
    refresh: bool = Field(default=False, description="Ignore cached predictions and run the model again.")
    max_image_pixels: int | None = Field(
        default=None,
        ge=1,
        description="Refuse images with more pixels than this (decompression bombs); default "
        "PRELABEL_MAX_IMAGE_PIXELS.",
    )

    @field_validator("model_options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Parameters are stored by Prefect and shown in its UI: secrets come from the environment."""
        secret = [k for k in options if any(word in k.lower() for word in _SECRET_WORDS)]
        if secret:
            raise ValueError(
                f"model option {secret[0]!r} looks like a secret: flow parameters are stored and shown; "
                "set it in the environment (e.g. PRELABEL_DINOX_TOKEN) instead"
            )
        return options


class _ModelOptions(_ModelSettings):
    input_dir: str | None = Field(default=None, description="Folder of images (searched recursively).")
    manifest: str | None = Field(
        default=None, description="Manifest CSV (from `prelabel ingest`) instead of a folder."
    )

    @model_validator(mode="after")
    def _one_image_source(self) -> Self:
        if (self.input_dir is None) == (self.manifest is None):
            raise ValueError("give exactly one of input_dir and manifest")
        return self


class PreannotateParams(_PostOptions, _ModelOptions):
    """One step: images -> match -> model -> convert -> post -> report."""

    task_ids: list[int] = Field(
        default_factory=list,
        max_length=100_000,
        description="These tasks of the project, each with its own image, instead of input_dir or "
        "manifest (what `prelabel serve` hands over: tasks Label Studio asked for, tasks just imported).",
    )

    @model_validator(mode="after")
    def _one_image_source(self) -> Self:
        """Exactly one of input_dir, manifest and task_ids (replaces the models' two-way check)."""
        given = [name for name in ("input_dir", "manifest", "task_ids") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of input_dir, manifest and task_ids")
        if self.task_ids and self.import_new:
            raise ValueError("task_ids names tasks that exist: import_new does not apply")
        if any(task_id < 1 for task_id in self.task_ids):
            raise ValueError("task_ids are Label Studio task ids (1 or more)")
        return self

    shard_size: int | None = Field(
        default=None,
        ge=1,
        description="Spread inference over GPU workers in shards of this many images "
        "(runs of the infer_deployment); empty: infer in this flow run.",
    )
    infer_deployment: str = Field(
        default="infer-shard/infer-shard", description="The deployment that infers one shard (GPU pool)."
    )
    max_parallel_shards: int = Field(default=4, ge=1, le=256, description="Shards running at once.")
    keyframe_iou: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Video tracks: keyframes are kept so that Label Studio's "
        "interpolation stays within this box IoU of the tracked box on every frame.",
    )
    shard_retries: int = Field(default=1, ge=0, le=5, description="Reruns of a failed or crashed shard.")
    verifier: str | None = Field(
        default=None,
        description="A verifier file (from `prelabel review verifier`): drop the boxes it "
        "rejects before posting; its name and threshold join the model version.",
    )
    min_verified: float = Field(
        default=0.5, ge=0, le=1, description="With a verifier: keep boxes whose P(yes) is at least this."
    )


class ShardParams(_ModelSettings):
    """One shard of a scaled-out run: infer these images into the shared cache."""

    images: list[str] = Field(default_factory=list, description=_SHARD_IMAGES)
    images_ref: str | None = Field(default=None, description=_SHARD_REF)
    shard: str = Field(description="The shard's key; its marker is written when it is done.")
    batch_size: int | None = Field(default=None, ge=1, le=10_000, description=_TASK_BATCH)


class PostParams(_PostOptions):
    """Two-step, step 2: raw prediction files -> match -> convert -> post -> report."""

    input_dir: str = Field(description="Folder of images with their raw prediction files.")
    raw_dir: str | None = Field(default=None, description="Folder of raw files, if not beside the images.")


class InferParams(_ModelOptions):
    """Two-step, step 1: images -> model -> raw prediction files (+ cache)."""

    output_dir: str = Field(
        validation_alias=_OUTPUT_FOLDER,
        description="Folder for the raw prediction files (<image path>.prelabel.json).",
    )
    batch_size: int | None = Field(default=None, ge=1, le=10_000, description=_TASK_BATCH)


class PullParams(LabelStudioParams):
    """Human annotations back to COCO JSON and Parquet/CSV, incrementally."""

    output_dir: str = Field(
        validation_alias=_OUTPUT_FOLDER, description="Output folder (it also keeps the incremental state)."
    )
    formats: list[Format] = Field(
        default=["coco", "parquet"], description="Export formats: coco, parquet, csv."
    )
    all_annotators: bool = Field(
        default=False, description="Every annotator's annotation, not just the latest."
    )
    full: bool = Field(default=False, description="Fetch everything again instead of only what changed.")


class QualityParams(LabelStudioParams):
    """A model version's predictions against the latest annotations: per-label scores and fates."""

    model_version: str | None = Field(
        default=None,
        min_length=1,
        description="The model version whose predictions are measured (a deployment run without one "
        "measures the project's own, the one its annotators are shown).",
    )
    output_dir: str = Field(
        validation_alias=_OUTPUT_FOLDER,
        description="Output folder: labels.csv, regions.csv, summary.json, charts/; default "
        "prelabel-output/quality/project-P/VERSION.",
    )
    iou_threshold: float = Field(
        default=0.5, gt=0, le=1, description="IoU at which a prediction matches an annotated region."
    )
    keypoint_tolerance: float = Field(
        default=DEFAULT_KEYPOINT_TOLERANCE,
        gt=0,
        le=1,
        description="Distance within which a predicted keypoint matches one people placed, as a fraction "
        "of the image diagonal (0.02 is 44 px on a 1920x1080 image).",
    )


class IngestParams(BaseModel):
    """A source -> a manifest CSV: listing, sampling, download checks, deduplication."""

    source: str = Field(
        description="Folder, s3://bucket/prefix, .txt/.csv URL list, http(s) REST endpoint, "
        "or video file/folder."
    )
    manifest: str = Field(
        validation_alias=AliasChoices("manifest", "out"),
        description="Manifest CSV to write (its reports are written beside it).",
    )
    sample: int | None = Field(default=None, ge=0, description="Draw this many items (before downloading).")
    stratify_by: str | None = Field(default=None, description="Column to stratify the sample by, e.g. label.")
    equal_per_stratum: bool = Field(default=False, description="Equal counts per stratum, not proportional.")
    seed: int = Field(default=0, description="Sampling seed (same seed, same sample).")
    video_fps: float | None = Field(default=None, ge=0, description="Frames per second from videos; 0 = all.")
    videos: bool = Field(
        default=False,
        description="Keep videos whole: a row per video (size, frames, rate), for video projects.",
    )
    frames_dir: str | None = Field(
        default=None, description="Where video frames go; default beside the manifest."
    )
    url_column: str = Field(default="url", description="URL column of a CSV URL list.")
    url_path: str = Field(default="items[].image_url", description="REST: item list and URL field.")
    label_path: str | None = Field(default=None, description="REST: label field of an item (dotted).")
    page_size: int = Field(default=100, ge=1, description="REST: items per page.")
    max_items: int | None = Field(default=None, ge=1, description="REST: stop after this many items.")
    concurrency: int = Field(default=32, ge=1, le=512, description="Downloads at once.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per request.")
    retries: int = Field(default=4, ge=0, description="Retries on 429/5xx/connection errors.")
    max_bytes: int = Field(default=50 * 2**20, ge=1, description="Largest accepted image, in bytes.")

    @model_validator(mode="after")
    def _frames_or_whole_videos(self) -> Self:
        if self.videos and self.video_fps is not None:
            raise ValueError("videos (kept whole) and video_fps (cut into frames) exclude each other")
        return self


class ExportParams(_ModelOptions):
    """Images -> model (through the cache) -> pseudo-labels in S3 or a folder."""

    to: str = Field(description="s3://bucket/prefix or a folder.")
    with_images: bool = Field(
        default=False, description="Write the images too, as displayed (EXIF orientation applied)."
    )
    label_map: dict[str, str] | None = Field(default=None, description="Model label -> exported label.")
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Images per batch: one COCO JSON file and one Prefect task run each; default "
        "PRELABEL_TASK_BATCH_SIZE.",
    )
    output_dir: str = Field(default="prelabel-output", description="Folder for the key list and the errors.")
    keep_original_images: bool = Field(
        default=False,
        description="Write the source bytes unchanged (EXIF kept); boxes and masks then "
        "follow the stored pixel grid, not the displayed one.",
    )
    categories: list[str] = Field(
        default_factory=list,
        description="The COCO categories, in id order; default: the model's classes option, else labels "
        "as first seen. Other labels are counted and left out. Needed with shard_size.",
    )
    shard_size: int | None = Field(
        default=None,
        ge=1,
        description="Spread the export over GPU workers in shards of about this many "
        "images (whole batches; runs of export_deployment); empty: export in this flow run.",
    )
    export_deployment: str = Field(
        default="export-shard/export-shard", description="The deployment that exports one shard (GPU pool)."
    )
    max_parallel_shards: int = Field(default=4, ge=1, le=256, description="Shards running at once.")
    shard_retries: int = Field(default=1, ge=0, le=5, description="Reruns of a failed or crashed shard.")


class ExportShardParams(_ModelSettings):
    """One shard of a scaled-out export: these consecutive batches of the run's images."""

    images: list[str] = Field(default_factory=list, description=_SHARD_IMAGES)
    images_ref: str | None = Field(default=None, description=_SHARD_REF)
    first_batch: int = Field(ge=1, description="Number of the shard's first batch (ids follow from it).")
    batch_size: int = Field(ge=1, le=10_000, description="Images per batch of the whole run.")
    shard: str = Field(description="The shard's key; its marker is written when it is done.")
    to: str = Field(description="s3://bucket/prefix or a folder.")
    with_images: bool = False
    keep_original_images: bool = False
    label_map: dict[str, str] = Field(default_factory=dict)
    categories: list[str] = Field(min_length=1, description="The run's fixed categories, in id order.")


class FeaturesParams(BaseModel):
    """What to embed and with which model (the Prefect UI's run form)."""

    review_set: str = Field(description="The review set's SQLite file (from `prelabel review create`).")
    features: str | None = Field(
        default=None,
        validation_alias=AliasChoices("features", "out"),
        description="Parquet file to write; default <set>.<embedder>.parquet beside the set.",
    )
    embedder: Literal["dinov2", "siglip2"] = Field(
        default="dinov2", description="dinov2 (DINOv2 with registers) or siglip2 (SigLIP 2)."
    )
    checkpoint: str | None = Field(
        default=None,
        description="Hub id or local folder; default facebook/dinov2-with-registers-small (dinov2) or "
        "google/siglip2-base-patch16-naflex (siglip2).",
    )
    revision: str | None = Field(default=None, description="Checkpoint revision to pin.")
    margin: float = Field(
        default=0.1, ge=0, le=10, description="Context kept around a box, as a fraction of its size per side."
    )
    model_batch_size: int | None = Field(
        default=None, ge=1, le=4096, description="Crops per forward pass; default PRELABEL_INFER_BATCH_SIZE."
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Items per Prefect task run; default PRELABEL_TASK_BATCH_SIZE.",
    )
    device: str | None = Field(default=None, description="cuda, cuda:1, cpu; default CUDA when present.")
    cache_dir: str | None = Field(
        default=None, description="Embedding cache (folder or s3://); default PRELABEL_CACHE_DIR."
    )
    refresh: bool = Field(default=False, description="Ignore cached embeddings.")
    ls_url: str | None = Field(
        default=None, description="Label Studio URL for /data/... images; default PRELABEL_LS_URL."
    )
    max_image_pixels: int | None = Field(
        default=None, ge=1, description="Decompression-bomb limit; default PRELABEL_MAX_IMAGE_PIXELS."
    )
