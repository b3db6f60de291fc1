"""EdgeTAM's memory cross-attention: RoPE on compressed memories.

With the spatial perceiver (:mod:`.perceiver`) a remembered frame is no longer an h x w grid of the
query's size but ``num_plain`` global latents (no position) followed by a ``grid`` x ``grid`` grid of
window latents. Queries are rotated on their own (h, w) grid as in SAM 2; in each memory frame the
global latents stay unrotated and the window latents are rotated on the latent grid (positions 0..15
per axis, not the query grid's); object-pointer tokens at the end stay unrotated.
"""

from __future__ import annotations

import torch

from masklet.modeling.rope import RoPEAttention


class LatentRoPEAttention(RoPEAttention):
    """:class:`RoPEAttention` whose spatial keys are perceiver latents (see the module docstring).

    Keys: F frames of ``num_plain + grid**2`` tokens, then ``num_k_exclude_rope`` pointer tokens.
    """

    def __init__(self, *args, num_plain: int, grid: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_plain = num_plain
        self.grid = grid

    def rotate_keys(self, k: torch.Tensor, feat_size: tuple[int, int], num_exclude: int) -> torch.Tensor:
        """k: (B, heads, F * (num_plain + grid**2) + num_exclude, d) -> rotated copy, same shape."""
        per_frame = self.num_plain + self.grid**2
        n_mem = k.shape[-2] - num_exclude
        # floor division and modulo rather than divmod: they also take the symbolic sizes of an export
        frames, rem = n_mem // per_frame, n_mem % per_frame
        if rem or n_mem < 0:
            raise ValueError(
                f"{k.shape[-2]} memory keys minus {num_exclude} pointer tokens is not a whole number of "
                f"compressed frames of {per_frame} tokens ({self.num_plain} + {self.grid}x{self.grid})"
            )
        mem = k[..., :n_mem, :].unflatten(-2, (frames, per_frame))  # (B, heads, F, per_frame, d)
        # each frame's window latents on the latent grid, the frames one more batch axis (flattening
        # the frames' strided slices instead would make one frame a special case for a tracer)
        rotated = self.rope.rotate(mem[..., self.num_plain :, :], self.grid, self.grid)
        mem = torch.cat([mem[..., : self.num_plain, :], rotated], dim=-2)
        return torch.cat([mem.flatten(-3, -2), k[..., n_mem:, :]], dim=-2)
