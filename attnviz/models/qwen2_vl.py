"""Qwen2-VL (and the checkpoints fine-tuned from it, e.g. Reason-RFT), Qwen2.5-VL, Qwen3-VL and GLM-4.1V.

Each image is resized to multiples of patch·merge (14·2 = 28 px); ``image_grid_thw[i] = (t, h, w)`` in patches;
image i contributes ``t·h·w / merge²`` placeholder tokens, one contiguous run, raster order over the merged
``(h / merge, w / merge)`` grid, images in prompt order. Qwen2.5-VL is laid out the same way; Qwen3-VL too, with
16-px patches (32-px cells); GLM-4.1V too (its vision tower merges each 2x2 block of patches with a strided
convolution instead of an MLP, over the same patch order).

Video (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): ``video_grid_thw[v] = (t, h, w)``: ``t`` temporal patches of 2 frames each,
``t·h·w / merge²`` ``<|video_pad|>`` tokens, t-major, then raster order over the merged grid (one run for Qwen2-VL
and Qwen2.5-VL; one run per temporal patch for Qwen3-VL, each after its ``<t seconds>`` time stamp). Each temporal
patch becomes a geometry entry of its own (:class:`attnviz.trace.ImageGeometry` ``video``, ``frames``, ``time_s``).
The clip's frames go in as sampled (``do_sample_frames=False``) with their frame numbers and rate, so the model's
time positions (Qwen2.5-VL's seconds per patch, Qwen3-VL's time stamps) are the video's own.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from attnviz.chat import CHATML, GLM
from attnviz.clips import PAIR, Clip
from attnviz.errors import AttnvizError
from attnviz.models.base import ModelAdapter, chat_prompt, text_kwargs
from attnviz.trace import ImageGeometry


def placeholder_runs(input_ids: torch.Tensor, token_id: int) -> list[tuple[int, int]]:
    """(S,) ids -> [(start, length)] of each contiguous run of ``token_id``, in order."""
    is_tok = (input_ids == token_id).to(torch.int8)
    edges = torch.diff(is_tok, prepend=torch.zeros(1, dtype=torch.int8), append=torch.zeros(1, dtype=torch.int8))
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


class Qwen2VLAdapter(ModelAdapter):
    family = "Qwen2-VL"
    model_types = ("qwen2_vl",)
    chat_formats = (CHATML,)  # Qwen2-VL, Qwen2.5-VL and Qwen3-VL alike
    video = True

    def _patch_and_merge(self) -> tuple[int, int]:
        image_processor = self.processor.image_processor
        return int(image_processor.patch_size), int(image_processor.merge_size)

    def image_geometry(self, inputs: dict[str, Any], image_sizes: list[tuple[int, int]]) -> list[ImageGeometry]:
        # the whole image is resized, never cropped: the grid covers all of it and the sizes are not needed
        grids = inputs.get("image_grid_thw")
        if grids is None:
            return []
        patch, merge = self._patch_and_merge()
        runs = placeholder_runs(inputs["input_ids"][0], self.image_token_id())
        if len(runs) != len(grids):
            raise AttnvizError(
                f"found {len(runs)} image-token runs in the prompt but {len(grids)} images were processed; "
                "the chat template must place each image once"
            )
        geometries = []
        for index, ((start, length), (t, h, w)) in enumerate(zip(runs, grids.tolist(), strict=True)):
            grid_h, grid_w = h // merge, w // merge
            if t * grid_h * grid_w != length:
                raise AttnvizError(f"image {index}: {length} tokens do not tile a {t}x{grid_h}x{grid_w} grid")
            geometries.append(
                ImageGeometry(index, start, grid_h * t, grid_w, pixel_h=h * patch, pixel_w=w * patch)
            )
        return geometries


    def prepare_video(
        self, question: str, images: list[Image.Image], clips: list[Clip]
    ) -> tuple[str, dict[str, Any], list[ImageGeometry]]:
        prompt = chat_prompt(self.processor, question, len(images), len(clips))
        inputs = self.prepare_video_inputs(prompt, images, clips)
        geometry = self.image_geometry(inputs, [image.size for image in images])
        return prompt, inputs, geometry + self.video_geometry(inputs, clips, len(geometry))

    def prepare_video_inputs(self, prompt: str, images: list[Image.Image], clips: list[Clip]) -> dict[str, Any]:
        """Processor output for the prompt, its images and its clips' frames as sampled (tensors, batch of one)."""
        video_processor = self.processor.video_processor
        if int(video_processor.temporal_patch_size) != PAIR:
            raise AttnvizError(
                f"the video processor's temporal_patch_size is {video_processor.temporal_patch_size}; attnviz draws "
                f"a video's temporal patches as pairs of frames ({PAIR})"
            )
        # the reference (qwen-vl-utils) pixel budget per frame, transformers' coming default (silences its warning)
        capped = {"cap_pixels_per_frame": True} if hasattr(video_processor, "cap_pixels_per_frame") else {}
        return dict(self.processor(
            text=[prompt], images=images or None, videos=[clip.array() for clip in clips],
            video_metadata=[clip.metadata() for clip in clips], do_sample_frames=False, return_tensors="pt",
            **capped, **text_kwargs(self.tokenizer, prompt),
        ))

    def video_geometry(self, inputs: dict[str, Any], clips: list[Clip], first: int) -> list[ImageGeometry]:
        """One entry per temporal patch of every clip, indexed from ``first``: its cells are the patch's run of
        ``merge``-merged video tokens, raster order."""
        video_processor = self.processor.video_processor
        patch, merge = int(video_processor.patch_size), int(video_processor.merge_size)
        video_id = self.config.video_token_id
        positions = torch.nonzero(inputs["input_ids"][0] == video_id).flatten().tolist()
        grids = inputs["video_grid_thw"].tolist()
        if len(positions) != sum(t * h * w // merge**2 for t, h, w in grids):
            raise AttnvizError(f"found {len(positions)} video tokens in the prompt, not what the video grids {grids} "
                               "need; the chat template must place each video once")
        geometries: list[ImageGeometry] = []
        at = 0  # video tokens taken so far
        for video, (clip, (t, h, w)) in enumerate(zip(clips, grids, strict=True)):
            if t != clip.n_pairs:
                raise AttnvizError(f"video {clip.path}: {t} temporal patches for {len(clip.frames)} frames")
            cells = (h // merge) * (w // merge)
            for k in range(t):
                run, at = positions[at : at + cells], at + cells
                if run[-1] - run[0] != cells - 1:
                    raise AttnvizError(f"video {clip.path}: the tokens of temporal patch {k} are not one run")
                geometries.append(ImageGeometry(
                    first + len(geometries), run[0], h // merge, w // merge, pixel_h=h * patch, pixel_w=w * patch,
                    video=video, frames=(PAIR * k, PAIR * k + PAIR - 1), n_frames=len(clip.frames),
                    time_s=clip.times[PAIR * k],
                ))
        return geometries


class Qwen25VLAdapter(Qwen2VLAdapter):
    """Qwen2.5-VL: the same placeholder layout (its vision tower restores raster order after window attention)."""

    family = "Qwen2.5-VL"
    model_types = ("qwen2_5_vl",)


class Qwen3VLAdapter(Qwen2VLAdapter):
    """Qwen3-VL: the same layout with 16-px patches (a merged cell is 32 px)."""

    family = "Qwen3-VL"
    model_types = ("qwen3_vl",)


class Glm4vAdapter(Qwen2VLAdapter):
    """GLM-4.1V-Thinking: Qwen2-VL's grids (14-px patches, 2x2 merged: 28-px cells), between ``<|begin_of_image|>``
    and ``<|end_of_image|>``; its own turns (``<|user|>`` / ``<|assistant|>``)."""

    family = "GLM-4.1V"
    model_types = ("glm4v",)
    chat_formats = (GLM,)
    video = False  # its video prompt (frame time stamps, its own processor) is not supported yet
