"""Random-weight checkpoints (Grounding DINO, SAM 2, SAM 3, ...), saved like hub checkpoints.

Weights cannot be downloaded here, so the tests (tiny sizes) and the GPU benchmark (the
real architectures: transformers' default configs are Grounding DINO tiny with a Swin-T
backbone and BERT-base text encoder, and SAM 2.1 Hiera tiny) build their checkpoints from
configs and save them to folders that the adapter loads through ``from_pretrained``.
Grounding DINO's modelling code hard-codes BERT's ids for [CLS], [SEP], "." and "?"
(101, 102, 1012, 1029), so the made-up vocabulary keeps them there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORDS = ("car", "person", "dog", "stop", "sign", "traffic", "light", "civilian", "vehicle", "bus", "tree")


def _vocab(size: int, words: Sequence[str]) -> dict[str, int]:
    tokens = [f"[unused{i}]" for i in range(size)]
    for index, token in (
        (0, "[PAD]"),
        (100, "[UNK]"),
        (101, "[CLS]"),
        (102, "[SEP]"),
        (103, "[MASK]"),
        (1012, "."),
        (1029, "?"),
    ):
        tokens[index] = token
    for offset, word in enumerate(words):
        tokens[2000 + offset] = word
    return {token: i for i, token in enumerate(tokens)}


def save_grounding_dino(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A Grounding DINO checkpoint with processor (image processor + BERT tokenizer) in ``folder``."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(seed)
    vocab = _vocab(30522 if full else 2100, WORDS)
    if full:
        config = GroundingDinoConfig(text_config=BertConfig(vocab_size=len(vocab)))
        image_processor = GroundingDinoImageProcessorPil()
    else:
        backbone = SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_indices=[2, 3, 4],
        )
        text = BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
        config = GroundingDinoConfig(
            backbone_config=backbone,
            text_config=text,
            d_model=32,
            num_queries=20,
            encoder_layers=1,
            decoder_layers=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            num_feature_levels=3,
            max_text_len=32,
        )
        image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    folder.mkdir(parents=True, exist_ok=True)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


DETR_LABELS = {0: "car", 1: "person", 2: "dog"}
DETR_SAYS_LOGIT = 6.0
"""The class logit of ``save_detr(says=...)``'s label; every other logit (the other labels and
"no object") is 0, so each query scores ``exp(6) / (exp(6) + 3)`` = 0.99262 for it."""


def save_detr(folder: Path, seed: int = 0, says: str | None = None) -> Path:
    """A DETR with a 4-stage toy ResNet (classes ``DETR_LABELS``) and its image processor in ``folder``.

    Random weights give every query nearly the same decoder output, so one label wins
    everywhere, at a score that depends on the seed. ``says``: the classifier's weights are
    zeroed and its bias is ``DETR_SAYS_LOGIT`` for that label, 0 elsewhere, so each of the 12
    queries finds ``says`` at a known score, whatever the image.
    """
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    torch.manual_seed(seed)
    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], out_features=["stage4"]
    )
    config = DetrConfig(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=12,
        num_labels=3,
        id2label=DETR_LABELS,
        label2id={v: k for k, v in DETR_LABELS.items()},
    )
    model = DetrForObjectDetection(config).eval()
    if says is not None:
        with torch.no_grad():
            model.class_labels_classifier.weight.zero_()
            model.class_labels_classifier.bias.zero_()
            model.class_labels_classifier.bias[config.label2id[says]] = DETR_SAYS_LOGIT
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def save_sam2(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A SAM 2 checkpoint (``Sam2Model``) in ``folder``; tiny: 128-pixel input, small Hiera."""
    import torch
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(seed)
    options: dict[str, Any] = {}
    if not full:
        hiera = {
            "model_type": "sam2_hiera_det_model",
            "image_size": [128, 128],
            "hidden_size": 8,
            "blocks_per_stage": [1, 1, 2, 1],
            "embed_dim_per_stage": [8, 16, 32, 64],
            "num_attention_heads_per_stage": [1, 1, 1, 1],
            "window_size_per_stage": [4, 4, 4, 2],
            "global_attention_blocks": [3],
            "window_positional_embedding_background_size": [4, 4],
        }
        options = {
            "vision_config": {
                "backbone_config": hiera,
                "backbone_channel_list": [64, 32, 16, 8],
                "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
                "fpn_hidden_size": 32,
            },
            "prompt_encoder_config": {"hidden_size": 32, "image_size": 128, "patch_size": 16},
            "mask_decoder_config": {
                "hidden_size": 32,
                "mlp_dim": 32,
                "num_attention_heads": 2,
                "iou_head_hidden_dim": 32,
            },
        }
    folder.mkdir(parents=True, exist_ok=True)
    Sam2Model(Sam2Config(**options)).eval().save_pretrained(folder)
    return folder


def save_sam2_video(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A SAM 2 video tracker checkpoint (``Sam2VideoModel``) in ``folder``; tiny: 128-pixel input,
    the small Hiera of ``save_sam2``, 32-pixel masks. Memory attention mixes 64-channel memories
    into the image features, so the widths are 128 (a multiple of 64 above it), and its rotary
    embedding spans the 8 x 8 last feature map. ``full``: transformers' default config
    (facebook/sam2.1-hiera-tiny's architecture)."""
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    torch.manual_seed(seed)
    options: dict[str, Any] = {}
    if not full:
        hiera = {
            "model_type": "sam2_hiera_det_model",
            "image_size": [128, 128],
            "hidden_size": 8,
            "blocks_per_stage": [1, 1, 2, 1],
            "embed_dim_per_stage": [8, 16, 32, 64],
            "num_attention_heads_per_stage": [1, 1, 1, 1],
            "window_size_per_stage": [4, 4, 4, 2],
            "global_attention_blocks": [3],
            "window_positional_embedding_background_size": [4, 4],
        }
        width = 128
        options = {
            "vision_config": {
                "model_type": "sam2_vision_model",
                "backbone_config": hiera,
                "backbone_channel_list": [64, 32, 16, 8],
                "fpn_hidden_size": width,
                "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
            },
            "prompt_encoder_config": {"hidden_size": width, "image_size": 128, "patch_size": 16},
            "mask_decoder_config": {
                "hidden_size": width,
                "mlp_dim": 32,
                "num_attention_heads": 2,
                "iou_head_hidden_dim": 32,
            },
            "image_size": 128,
            "memory_attention_hidden_size": width,
            "memory_attention_num_layers": 1,
            "memory_attention_feed_forward_hidden_size": 32,
            "memory_attention_rope_feat_sizes": [8, 8],
            "memory_encoder_hidden_size": width,
            "mask_downsampler_embed_dim": width,
            "memory_fuser_embed_dim": width,
            "memory_fuser_intermediate_dim": 32,
            "memory_fuser_num_layers": 1,
        }
    folder.mkdir(parents=True, exist_ok=True)
    Sam2VideoModel(Sam2VideoConfig(**options)).eval().save_pretrained(folder)
    return folder


def save_dinov2_registers(folder: Path, seed: int = 0) -> Path:
    """A tiny DINOv2-with-registers (32-pixel input, 2 registers) and its image processor."""
    import torch
    from transformers import BitImageProcessorPil, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(seed)
    config = Dinov2WithRegistersConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
        num_register_tokens=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    Dinov2WithRegistersModel(config).eval().save_pretrained(folder)
    BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


def save_siglip2_vision(folder: Path, seed: int = 0) -> Path:
    """A tiny SigLIP 2 vision tower (NaFlex: up to 16 patches of 8 pixels) and its image processor."""
    import torch
    from transformers import Siglip2ImageProcessorPil, Siglip2VisionConfig, Siglip2VisionModel

    torch.manual_seed(seed)
    config = Siglip2VisionConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=8,
        num_patches=16,
    )
    folder.mkdir(parents=True, exist_ok=True)
    Siglip2VisionModel(config).eval().save_pretrained(folder)
    Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16).save_pretrained(folder)
    return folder


SIGLIP_WORDS = ("a", "photo", "of", ".", "car", "dog", "person", "cat", "tree", "bus", "indoor", "outdoor")


def save_siglip(folder: Path, seed: int = 0) -> Path:
    """A tiny SigLIP (32-pixel input, 64-token texts) with its processor in ``folder``.

    The tokenizer is a word-level ``tokenizers`` model saved as tokenizer.json: SigLIP's own
    tokenizer class needs a SentencePiece model (and the sentencepiece package), while the
    processor loads any tokenizer the file describes.
    """
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import (
        PreTrainedTokenizerFast,
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
    )

    vocab = {token: i for i, token in enumerate(("<pad>", "<unk>", "</s>", *SIGLIP_WORDS))}
    words = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", unk_token="<unk>", eos_token="</s>", model_max_length=64
    )
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "pad_token_id": 0,
            "bos_token_id": None,
            "eos_token_id": 2,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
    )
    folder.mkdir(parents=True, exist_ok=True)
    SiglipModel(config).eval().save_pretrained(folder)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_vitpose(folder: Path, seed: int = 0) -> Path:
    """A tiny ViTPose (64x48 crops, 16-pixel patches, 17 keypoints, 16x12 heatmaps) and its processor."""
    import torch
    from transformers import (
        VitPoseBackboneConfig,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessorPil,
    )

    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        image_size=[64, 48],
        patch_size=[16, 16],
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        out_indices=[1],
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=17)
    folder.mkdir(parents=True, exist_ok=True)
    VitPoseForPoseEstimation(config).eval().save_pretrained(folder)
    VitPoseImageProcessorPil(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


SAM3_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def save_sam3(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A SAM 3 checkpoint (``Sam3Model``), its CLIP tokenizer and preprocessor config in ``folder``.

    Tiny: a 112-pixel input, 5 queries, 16x16 masks (logits scaled to decide pixels). The
    tokenizer is CLIP's BPE over single letters (no merges: each letter is a token, ``</w>``
    marks a word's last), enough to tell phrases apart; the preprocessor config is written
    as JSON, since ``Sam3ImageProcessor`` needs torchvision to be made. ``full``:
    transformers' default config, the real architecture (840 M parameters, 1008-pixel
    input), for the GPU benchmark.
    """
    import json

    import torch
    from transformers import CLIPTokenizer, Sam3Config, Sam3Model

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in SAM3_LETTERS:
        vocab[letter] = len(vocab)
        vocab[f"{letter}</w>"] = len(vocab)
    tokens = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    side = 1008 if full else 112
    torch.manual_seed(seed)
    if full:
        config = Sam3Config(text_config={"vocab_size": 49408, **tokens})
    else:
        config = Sam3Config(
            vision_config={
                "backbone_config": {
                    "model_type": "sam3_vit_model",
                    "hidden_size": 32,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 4,
                    "intermediate_size": 64,
                    "image_size": side,
                    "patch_size": 14,
                    "window_size": 4,
                    "global_attn_indexes": [1],
                },
                "fpn_hidden_size": 32,
                "scale_factors": [2.0, 1.0],
            },
            text_config={
                "vocab_size": len(vocab),
                "hidden_size": 32,
                "intermediate_size": 64,
                "projection_dim": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "max_position_embeddings": 32,
                **tokens,
            },
            geometry_encoder_config={
                "hidden_size": 32,
                "num_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 64,
            },
            detr_encoder_config={
                "hidden_size": 32,
                "num_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 64,
            },
            detr_decoder_config={
                "hidden_size": 32,
                "num_layers": 1,
                "num_queries": 5,
                "num_attention_heads": 4,
                "intermediate_size": 64,
            },
            mask_decoder_config={"hidden_size": 32, "num_upsampling_stages": 2},
        )
    model = Sam3Model(config).eval()
    if not full:  # a random init's mask logits are ~4e-6, where float noise flips pixels: made ~0.4
        with torch.no_grad():
            model.mask_decoder.mask_embedder.layers[-1].weight.mul_(1e5)
            model.mask_decoder.mask_embedder.layers[-1].bias.mul_(1e5)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    processor = {
        "image_processor_type": "Sam3ImageProcessor",
        "size": {"height": side, "width": side},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder


def _sam3_tiny_vision(side: int, width: int) -> dict[str, Any]:
    """SAM 3's vision tower, tiny: a 2-layer ViT on ``side`` pixels, a ``width``-wide four-scale neck."""
    return {
        "backbone_config": {
            "model_type": "sam3_vit_model",
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "image_size": side,
            "patch_size": 14,
            "window_size": 4,
            "global_attn_indexes": [1],
        },
        "fpn_hidden_size": width,
        "scale_factors": [4.0, 2.0, 1.0, 0.5],
    }


def _sam3_tiny_tracker(vision: dict[str, Any], width: int) -> dict[str, Any]:
    """SAM 3's tracker config, tiny (``width`` a multiple of 64 above 64: memories are 64 wide)."""
    return {
        "vision_config": {"model_type": "sam3_vision_model", **vision},
        "prompt_encoder_config": {"hidden_size": width, "mask_input_channels": 4},
        "mask_decoder_config": {
            "hidden_size": width,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
        "memory_attention_hidden_size": width,
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 64,
        "memory_encoder_hidden_size": width,
        "mask_downsampler_embed_dim": width,
        "memory_fuser_num_layers": 1,
        "memory_fuser_embed_dim": width,
        "memory_fuser_intermediate_dim": 64,
    }


def save_sam3_video(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """A tiny SAM 3 video checkpoint (``Sam3VideoModel``: detector and tracker), its CLIP tokenizer
    and preprocessor config in ``folder``: a 112-pixel input, 5 queries, 32-pixel low-resolution
    masks. The tracker reads the detector's features, so their widths are one (128: the tracker
    wants a multiple of 64 above 64) and the detector's neck has SAM 3's four scales (the
    tracker drops the last). ``full``: transformers' default config, the real architecture, for
    the GPU benchmark."""
    import torch
    from transformers import CLIPTokenizer, Sam3VideoConfig, Sam3VideoModel

    save_sam3(folder)  # the tokenizer and preprocessor config (the image weights are replaced below)
    for stale in folder.glob("*.safetensors"):
        stale.unlink()
    side, width = 112, 128
    vocab = CLIPTokenizer.from_pretrained(folder).get_vocab()
    vision = _sam3_tiny_vision(side, width)
    small = {"num_attention_heads": 4, "intermediate_size": 64}
    detector = {
        "vision_config": vision,
        "text_config": {
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "projection_dim": width,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        "geometry_encoder_config": {"hidden_size": width, "num_layers": 1, **small},
        "detr_encoder_config": {"hidden_size": width, "num_layers": 1, **small},
        "detr_decoder_config": {"hidden_size": width, "num_layers": 1, "num_queries": 5, **small},
        "mask_decoder_config": {"hidden_size": width, "num_upsampling_stages": 2},
    }
    tracker = _sam3_tiny_tracker(vision, width)
    if full:
        tokens = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
        config = Sam3VideoConfig(detector_config={"text_config": {"vocab_size": 49408, **tokens}})
    else:
        config = Sam3VideoConfig(
            detector_config=detector,
            tracker_config=tracker,
            low_res_mask_size=32,
            hotstart_unmatch_thresh=2,
            hotstart_dup_thresh=2,
        )
        config.image_size = side
    torch.manual_seed(seed)
    Sam3VideoModel(config).eval().save_pretrained(folder)
    return folder


def save_sam3_tracker_video(folder: Path, seed: int = 0) -> Path:
    """A tiny SAM 3 tracker (``Sam3TrackerVideoModel``: the video model's tracker alone) in
    ``folder``: a 112-pixel input, ``save_sam3_video``'s tracker."""
    import torch
    from transformers import Sam3TrackerVideoConfig, Sam3TrackerVideoModel

    side, width = 112, 128
    tracker = _sam3_tiny_tracker(_sam3_tiny_vision(side, width), width)
    tracker["prompt_encoder_config"]["image_size"] = side
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    Sam3TrackerVideoModel(Sam3TrackerVideoConfig(**tracker, image_size=side)).eval().save_pretrained(folder)
    return folder
