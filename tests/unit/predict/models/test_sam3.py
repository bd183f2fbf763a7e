"""SAM 3 from a tiny random-weight checkpoint loaded through the user path (a folder, or the hub cache)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch

from prelabel.convert.masks import coco_size, mask_to_coco
from prelabel.core.errors import SettingsError
from prelabel.predict.models import create_model
from prelabel.predict.models.concepts import Concept, build_concepts, load_prompts
from prelabel.predict.models.instances import box_iou, settle
from prelabel.predict.models.pixels import normalise_pixels
from prelabel.predict.models.roi_align import roi_align
from prelabel.predict.models.sam3 import BOX_AGREEMENT, Sam3
from prelabel.records import Detections
from tests.conftest import random_image_item
from tests.support import python_prints

PHRASES = ["car", "person", "stop sign"]
# Random weights score every query about 0.25: threshold 0 keeps all 5 queries of each phrase,
# and merge_iou above 1 keeps duplicates apart (random masks all overlap), so outputs compare.
OPEN = {"threshold": 0.0, "merge_iou": 1.01, "device": "cpu"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def sam3(folder: Path, **options: Any) -> Sam3:
    return cast(Sam3, create_model("sam3", checkpoint=str(folder), **{**OPEN, **options}))


def _items(count: int) -> list[Any]:
    return [random_image_item(10 + i, (80, 60) if i % 2 else (64, 48)) for i in range(count)]


def _one_forward_each(model: Sam3, item: Any) -> list[tuple[float, str, np.ndarray, dict[str, Any]]]:
    """Reference: one full forward per (image, phrase), as transformers' docs run SAM 3, then the
    processor's post-processing (score = query sigmoid x presence sigmoid; masks: sigmoid,
    bilinear to the image, > 0.5), boxes clipped and taken from the mask where the two disagree."""
    from transformers import AutoTokenizer

    network, processor = model._load()
    tokenizer = AutoTokenizer.from_pretrained(model.checkpoint.path)
    rgb = item.load().rgb
    width, height = rgb.size
    side = (processor["size"]["height"], processor["size"]["width"])
    pixels = normalise_pixels(
        torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None],
        side,
        processor["image_mean"],
        processor["image_std"],
    )
    found = []
    for phrase in model.phrases:
        text = tokenizer([phrase], padding="max_length", max_length=32, return_tensors="pt")
        with torch.inference_mode():
            out = network(pixel_values=pixels, **text)
        scores = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0]
        probs = torch.nn.functional.interpolate(
            out.pred_masks.sigmoid(), (height, width), mode="bilinear", align_corners=False
        )[0]
        size = np.array([width, height, width, height])
        for q in range(len(scores)):
            binary = (probs[q] > 0.5).numpy()
            box = np.minimum(np.clip(out.pred_boxes[0, q].numpy() * size, 0, None), size)
            ys, xs = np.nonzero(binary)
            if len(xs):
                tight = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
                if box_iou(box[None], tight[None])[0] < BOX_AGREEMENT:
                    box = tight
            found.append((float(scores[q]), phrase, box, mask_to_coco(binary) if len(xs) else None))
    return sorted(found, key=lambda f: -f[0])


def test_batched_pass_equals_one_forward_per_image_and_phrase(tiny_sam3: Path) -> None:
    items = _items(5)
    model = sam3(tiny_sam3, classes=PHRASES, batch_size=2, prompt_batch=4)
    calls = []
    network, _ = model._load()
    network.vision_encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    together = model.predict(items)
    assert calls == [2, 2, 1]  # the vision encoder ran once per batch of images, never per phrase
    masks = 0
    for found, item in zip(together, items, strict=True):
        assert isinstance(found, Detections) and len(found) == 15  # 5 queries x 3 phrases
        reference = _one_forward_each(model, item)
        np.testing.assert_allclose(found.scores, [r[0] for r in reference], rtol=1e-5, atol=1e-6)
        assert list(found.labels) == [r[1] for r in reference]
        np.testing.assert_allclose(found.xyxy, np.stack([r[2] for r in reference]), atol=1e-3)
        assert list(found.masks) == [r[3] for r in reference]
        masks += sum(m is not None for m in found.masks)
        assert all(coco_size(m) == (item.info.height, item.info.width) for m in found.masks if m is not None)
    assert masks > 0
    counts = model.drain_counts()
    assert counts["boxes from masks"] > 0 and model.drain_counts() == {}


def test_one_image_at_a_time_gives_the_batch_result(tiny_sam3: Path) -> None:
    items = _items(3)
    model = sam3(tiny_sam3, classes=PHRASES, batch_size=3, prompt_batch=16)
    together = model.predict(items)
    alone = [model.predict([item])[0] for item in items]
    for a, b in zip(together, alone, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert a.labels == b.labels and a.masks == b.masks


def test_segment_false_posts_the_models_boxes_without_masks(tiny_sam3: Path) -> None:
    (boxes,) = sam3(tiny_sam3, classes=PHRASES, segment=False).predict(_items(1))
    (full,) = sam3(tiny_sam3, classes=PHRASES).predict(_items(1))
    assert isinstance(boxes, Detections) and isinstance(full, Detections)
    assert set(boxes.masks) == {None} and len(boxes) == len(full) == 15
    np.testing.assert_allclose(boxes.scores, full.scores)


def test_duplicate_phrases_merge_into_one_region_with_the_better_phrase(tiny_sam3: Path) -> None:
    prompts = {"vehicle": ["car", "truck"]}
    apart = sam3(tiny_sam3, prompts=prompts)
    merged = sam3(tiny_sam3, prompts=prompts, merge_iou=0.5)
    (every,) = apart.predict(_items(1))
    (one,) = merged.predict(_items(1))
    assert isinstance(every, Detections) and isinstance(one, Detections)
    assert len(every) == 10 and set(every.labels) == {"vehicle"}
    counts = merged.drain_counts()
    # random masks overlap: instances of the second phrase merge into the first's
    assert counts["merged: one object, several phrases"] > 0
    assert len(one) + counts["merged: one object, several phrases"] == 10
    assert one.scores[0] == every.scores[0] and set(one.scores) <= set(every.scores)
    assert apart.signature().key != merged.signature().key


# (scores, labels (None: a negative), phrases, vetoes, pairs with IoU 0.9) -> kept, vetoed, merged
SETTLE_CASES = [
    # two phrases find one object: the better score stays, with its own phrase's label
    ([0.6, 0.8], ["car", "vehicle"], [0, 1], [frozenset()] * 2, [(0, 1)], [1], 0, 1),
    # one phrase finds two touching objects: both stay
    ([0.6, 0.8], ["car", "car"], [0, 0], [frozenset()] * 2, [(0, 1)], [1, 0], 0, 0),
    # apart: nothing merges
    ([0.6, 0.8], ["car", "vehicle"], [0, 1], [frozenset()] * 2, [], [1, 0], 0, 0),
    # a better negative of the label vetoes it; a worse one does not
    ([0.5, 0.7], ["person", None], [0, 1], [frozenset(), frozenset({"person"})], [(0, 1)], [], 1, 0),
    ([0.9, 0.7], ["person", None], [0, 1], [frozenset(), frozenset({"person"})], [(0, 1)], [0], 0, 0),
    # a negative of another label vetoes nothing
    ([0.5, 0.7], ["person", None], [0, 1], [frozenset(), frozenset({"dog"})], [(0, 1)], [0], 0, 0),
    # a vetoed instance does not merge away another phrase's
    (
        [0.5, 0.7, 0.4],
        ["person", None, "human"],
        [0, 1, 2],
        [frozenset(), frozenset({"person"}), frozenset()],
        [(0, 1), (0, 2)],
        [2],
        1,
        0,
    ),
    # nothing found
    ([], [], [], [], [], [], 0, 0),
]


@pytest.mark.parametrize(
    ("scores", "labels", "phrases", "vetoes", "pairs", "kept", "vetoed", "merged"), SETTLE_CASES
)
def test_settle(
    scores: list[float],
    labels: list[str | None],
    phrases: list[int],
    vetoes: list[frozenset[str]],
    pairs: list[tuple[int, int]],
    kept: list[int],
    vetoed: int,
    merged: int,
) -> None:
    iou = np.eye(len(scores))
    for a, b in pairs:
        iou[a, b] = iou[b, a] = 0.9
    assert settle(scores, labels, phrases, vetoes, iou, 0.5) == (kept, vetoed, merged)


def test_per_label_thresholds(tiny_sam3: Path) -> None:
    (every,) = sam3(tiny_sam3, classes=PHRASES).predict(_items(1))
    assert isinstance(every, Detections)
    person = np.sort(every.scores[np.array(every.labels) == "person"])
    cut = float((person[1] + person[2]) / 2)  # between the person scores: some kept, some not
    model = create_model(
        "sam3",
        checkpoint=str(tiny_sam3),
        classes=PHRASES,
        **{**OPEN, "threshold.person": cut, "threshold.stop sign": 1.0},
    )
    (some,) = model.predict(_items(1))
    assert isinstance(some, Detections)
    assert some.labels.count("person") == int((person > cut).sum()) == 3
    assert some.labels.count("car") == 5 and "stop sign" not in some.labels
    assert cast(Sam3, model).thresholds == {"car": 0.0, "person": cut, "stop sign": 1.0}
    assert model.signature().key != sam3(tiny_sam3, classes=PHRASES).signature().key


def test_threshold_names_wait_for_the_projects_labels(tiny_sam3: Path) -> None:
    # the command line checks options before the project's labels are known
    create_model("sam3", checkpoint=str(tiny_sam3), **{"threshold.person": 0.5})
    with pytest.raises(SettingsError, match="no label or phrase 'person'"):
        create_model("sam3", checkpoint=str(tiny_sam3), classes="car", **{"threshold.person": 0.5})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold.persn": 0.5}, r"threshold\.persn: no label or phrase 'persn'; known: car, person"),
        ({"threshold.person": "high"}, r"threshold\.person must be a finite number"),
        ({"thresholds": [0.5]}, "thresholds must be a mapping"),
        ({"exemplars": "yes"}, "use exemplars=project"),
        ({"dtype": "int8"}, "dtype"),
        ({"prompts": {"car": ["car"], "vehicle": ["car"]}}, "'car' finds both 'car' and 'vehicle'"),
        ({"prompts": {"person": {"negatives": ["car"]}}}, "'car' is a phrase of 'car' and a negative"),
        ({"prompts": {"person": {"phrase": ["man"]}}}, "unknown key 'phrase'"),
        ({"prompts": {"person": []}}, "give a phrase or a list of phrases"),
        ({"prompts": {"person": ["  "]}}, "non-empty string"),
    ],
)
def test_clear_option_errors(tiny_sam3: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        create_model("sam3", checkpoint=str(tiny_sam3), classes=["car", "person"], **options)


def test_prompts_file_gives_phrases_and_negatives(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(
        "vehicle: [car, truck, bus]\nperson:\n  phrases: person\n  negatives: [mannequin, statue]\n"
    )
    concepts = load_prompts(str(tmp_path / "prompts.yaml"))
    assert concepts == [
        Concept("vehicle", ("car", "truck", "bus")),
        Concept("person", ("person",), ("mannequin", "statue")),
    ]
    # classes the prompts do not label stay their own phrase; a labelled one takes the file's
    assert [c.label for c in build_concepts(["person", "dog"], concepts)] == ["vehicle", "person", "dog"]
    # a class the prompts already ask for (the label map's car for vehicle) is not asked twice
    assert [c.label for c in build_concepts(["car", "person"], concepts)] == ["vehicle", "person"]
    (tmp_path / "bomb.yaml").write_text("a: &x [car]\nb: *x\n")
    with pytest.raises(SettingsError, match="aliases"):
        load_prompts(str(tmp_path / "bomb.yaml"))
    with pytest.raises(SettingsError, match="cannot read"):
        load_prompts(str(tmp_path / "missing.yaml"))


def test_negative_phrases_veto_the_instances_they_cover(tiny_sam3: Path) -> None:
    prompts = {"person": {"phrases": ["person"], "negatives": ["mannequin"]}}
    model = sam3(tiny_sam3, prompts=prompts, merge_iou=0.5)  # a negative vetoes what it covers this much
    (found,) = model.predict(_items(1))
    (plain,) = sam3(tiny_sam3, classes=["person"]).predict(_items(1))
    assert isinstance(found, Detections) and isinstance(plain, Detections)
    vetoed = model.drain_counts()["vetoed by a negative phrase"]
    assert vetoed > 0 and len(found) + vetoed == len(plain) == 5 and set(found.labels) <= {"person"}
    # the negative finds nothing: nothing vetoed
    strict = sam3(tiny_sam3, prompts=prompts, merge_iou=0.5, **{"threshold.mannequin": 1.0})
    (kept,) = strict.predict(_items(1))
    assert isinstance(kept, Detections) and len(kept) == 5
    assert strict.drain_counts()["vetoed by a negative phrase"] == 0


def test_exemplar_boxes_prompt_their_label_on_their_own_image(tiny_sam3: Path) -> None:
    items = _items(2)
    width, height = items[0].info.width, items[0].info.height
    exemplars = {items[0].uri: [["car", 4.0, 6.0, width / 2, height - 3.0], ["bicycle", 0, 0, 5, 5]]}
    plain = sam3(tiny_sam3, classes=["car", "person"])
    shown = sam3(tiny_sam3, classes=["car", "person"], exemplars=exemplars)
    before, after = plain.predict(items), shown.predict(items)
    assert all(isinstance(f, Detections) for f in [*before, *after])
    a0, b0 = cast(Detections, before[0]), cast(Detections, after[0])
    cars = [np.array(f.labels) == "car" for f in (a0, b0)]
    # the car prompt of the first image changed (it saw the box); its person prompt did not
    assert not np.allclose(np.sort(a0.scores[cars[0]]), np.sort(b0.scores[cars[1]]))
    np.testing.assert_allclose(np.sort(a0.scores[~cars[0]]), np.sort(b0.scores[~cars[1]]), rtol=1e-5)
    other = [cast(Detections, found[1]).scores for found in (before, after)]
    np.testing.assert_allclose(other[0], other[1], rtol=1e-5)  # the image without exemplars
    counts = shown.drain_counts()
    assert counts["exemplar boxes"] == 1 and counts["exemplars of labels not prompted"] == 1
    moved = sam3(
        tiny_sam3,
        classes=["car", "person"],
        exemplars={items[0].uri: [["car", 5.0, 6.0, width / 2, height - 3.0]]},
    )
    assert len({m.signature().key for m in (plain, shown, moved)}) == 3


def test_roi_align_samples_a_linear_map_at_each_bins_centre() -> None:
    # bilinear sampling of a linear function is exact, so each bin's average is the function
    # at the bin's centre; a box beyond the map's edge samples zeros there
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    features = torch.stack([2 * ys + 3 * xs, torch.ones_like(xs)])[None]  # (1, 2, 20, 30)
    box = torch.tensor([[3.0, 2.0, 17.0, 16.0]])  # 14 x 14: bins of 2 x 2, 2 x 2 samples each
    (pooled,) = roi_align(features, [box], 7)
    centres = 2.0 + (torch.arange(7.0) + 0.5) * 2
    expected = 2 * centres[:, None] + 3 * (1.0 + centres)[None, :]
    torch.testing.assert_close(pooled[0], expected)
    torch.testing.assert_close(pooled[1], torch.ones(7, 7))
    (outside,) = roi_align(features, [torch.tensor([[28.0, 0.0, 42.0, 14.0]])], 7)
    assert float(outside[1, :, -1].max()) == 0.0 and float(outside[1, :, 0].min()) == 1.0
    assert roi_align(features, [torch.zeros((0, 4))], 7).shape == (0, 2, 7, 7)


def test_roi_align_matches_torchvision() -> None:
    torchvision = pytest.importorskip("torchvision", exc_type=ImportError)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 4, 24, 24, generator=generator)
    boxes = [torch.tensor([[1.0, 2.0, 20.5, 9.0], [-3.0, 10.0, 30.0, 26.0]]), torch.tensor([[5.0, 5, 6, 6]])]
    torch.testing.assert_close(roi_align(features, boxes, 7), torchvision.ops.roi_align(features, boxes, 7))


def test_pixels_match_the_processors_pixel_values(tiny_sam3: Path) -> None:
    pytest.importorskip("torchvision", exc_type=ImportError)
    from transformers import Sam3Processor

    processor = Sam3Processor.from_pretrained(tiny_sam3)
    model = sam3(tiny_sam3, classes=PHRASES)
    _, config = model._load()
    for width, height in [(80, 60), (112, 112), (300, 40)]:
        rgb = np.random.default_rng(width).integers(0, 255, (height, width, 3), dtype=np.uint8)
        reference = processor(images=rgb, return_tensors="pt")["pixel_values"]
        side = (config["size"]["height"], config["size"]["width"])
        ours = normalise_pixels(
            torch.from_numpy(rgb).permute(2, 0, 1)[None], side, config["image_mean"], config["image_std"]
        )
        assert ours.shape == reference.shape
        # the processor rounds its resized pixels to uint8 (one step: 1 / 255 / std 0.5 = 0.0078);
        # measured with torchvision 0.29.1: mean 0.0023-0.0024, max 0.0078 (up to 1920x1080 -> 1008)
        difference = (ours - reference).abs()
        assert float(difference.mean()) < 0.004 and float(difference.max()) < 0.008


def test_weights_from_the_hub_cache_without_the_network(
    tiny_sam3: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SettingsError) as absent:
        create_model("sam3", classes="car")
    message = str(absent.value)
    assert "\n" not in message and "hf download facebook/sam3" in message and str(tmp_path) in message
    assert "checkpoint=DIR" in message
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--facebook--sam3"
    shutil.copytree(tiny_sam3, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    model = cast(Sam3, create_model("sam3", classes="car", **OPEN))
    assert model.signature().revision == f"facebook/sam3@{commit}"
    (found,) = model.predict(_items(1))
    assert isinstance(found, Detections) and len(found) == 5


def test_a_folders_revision_is_what_its_files_are(tiny_sam3: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_sam3, tmp_path / "copy")
    first = sam3(tiny_sam3, classes=PHRASES).signature()
    assert sam3(copy, classes=PHRASES).signature() == first  # same files elsewhere: same key
    config = json.loads((copy / "preprocessor_config.json").read_text())
    (copy / "preprocessor_config.json").write_text(json.dumps({**config, "image_std": [0.4] * 3}))
    assert sam3(copy, classes=PHRASES).signature().revision != first.revision
    with pytest.raises(SettingsError, match=r"no config\.json"):
        create_model("sam3", checkpoint=str(tmp_path))


def test_needs_concepts_and_a_project_for_project_exemplars(tiny_sam3: Path) -> None:
    with pytest.raises(SettingsError, match="needs concepts"):
        sam3(tiny_sam3).predict(_items(1))
    with pytest.raises(SettingsError, match="exemplars=project"):
        sam3(tiny_sam3, classes="car", exemplars="project").predict(_items(1))


def test_the_adapter_registers_without_importing_torch(tiny_sam3: Path) -> None:
    """``prelabel run`` checks the model and its options before any flow: no torch for that."""
    code = (
        "import sys\n"
        "from prelabel.predict.models import create_model\n"
        f"create_model('sam3', checkpoint={str(tiny_sam3)!r}, classes='car', **{{'threshold.car': 0.4}})\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
    )
    python_prints(code)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bf16_finds_what_the_cpu_finds(tiny_sam3: Path) -> None:
    items = _items(4)
    cpu = sam3(tiny_sam3, classes=PHRASES).predict(items)
    gpu = sam3(tiny_sam3, classes=PHRASES, device="cuda").predict(items)
    for a, b in zip(cpu, gpu, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections) and len(a) == len(b) == 15
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=2e-2)


def test_prelabel_models_shows_what_sam3_needs() -> None:
    from typer.testing import CliRunner

    from prelabel_cli.app import app

    shown = CliRunner().invoke(app, ["models"])
    assert shown.exit_code == 0, shown.output
    (line,) = [row for row in shown.output.splitlines() if row.startswith("sam3:")]
    assert "detection, instance-segmentation" in line and "hf download" in line and "checkpoint=DIR" in line
