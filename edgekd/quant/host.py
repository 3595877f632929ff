"""Which int8 recipe this machine can judge: 8-bit products saturate on x86 CPUs without VNNI.

onnxruntime (MLAS) and OpenVINO (oneDNN) multiply uint8 activations by int8 weights on AVX2-only
x86 CPUs with `vpmaddubsw`, which adds each pair of products into a saturating int16: two products of
255 x 127 overflow it. VNNI (`vpdpbusd`, AVX-512 VNNI, AVX-VNNI) and AMX accumulate in int32 and do not.
So the same QDQ model gives other answers on such a host, and every int8 accuracy edgekd measures here
(fallback search, QAT checks, the gate) would judge saturation the device never does. With 7-bit weights
(`reduce_range`, onnxruntime's quantization guide recommends it on these CPUs) the pairs fit in int16 on
every x86 CPU, at the same speed, for a small loss of weight precision.

On such a host the recipe is switched to 7-bit weights and the switch is said: the model is then exact
here and on the device, and what the run measures is what ships. `quantize.adapt_to_host: false` keeps
the profile's recipe (build on a VNNI machine for full-range weights).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Optional

from edgekd.core.environment import cpu_info
from edgekd.runtimes.profiles import QuantRecipe

# Any of these makes x86 int8 dot products accumulate in int32 (no saturation).
INT32_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# Test knob: "novnni" makes edgekd act as on an AVX2-only CPU whatever this one has, so a VNNI
# machine can run the suite down the path an AVX2 machine takes (the runtimes stay exact there).
FORCE_ENV = "EDGEKD_FORCE_CPU_PATH"


@dataclass(frozen=True)
class HostChoice:
    recipe: QuantRecipe
    adapted: bool
    note: Optional[str]

    def record(self) -> dict:
        return {"adapted_to_host": self.adapted, **({"host_note": self.note} if self.note else {})}


def saturates_8bit_products() -> bool:
    """True on an x86 host whose int8 kernels sum u8*s8 pairs in int16 (no VNNI, no AMX)."""
    if os.environ.get(FORCE_ENV, "").lower() == "novnni":
        return True
    info = cpu_info()
    if info["arch"] not in ("x86_64", "AMD64", "i686"):
        return False
    return not any(flag in info["flags"] for flag in INT32_DOT_PRODUCT_FLAGS)


def recipe_for_host(recipe: QuantRecipe, adapt: bool = True, target: str = "") -> HostChoice:
    """`recipe` as this host can measure it exactly, with a note to show when it differs or cannot be judged."""
    if recipe.reduce_range or not saturates_8bit_products():
        return HostChoice(recipe, False, None)
    where = f"{target}: " if target else ""
    if not adapt:
        return HostChoice(recipe, False, f"{where}this CPU has no VNNI/AMX (AVX2 only): its int8 kernels saturate the 8-bit "
                          f"products of recipe '{recipe.name}', so int8 accuracy measured here is lower than the device's; "
                          "measure on the device, or set quantize.adapt_to_host: true")
    return HostChoice(recipe.model_copy(update={"reduce_range": True}), True,
                      f"{where}this CPU has no VNNI/AMX (AVX2 only): recipe '{recipe.name}' quantized with 7-bit weights "
                      "(reduce_range) so that int8 accuracy measured here holds on the device too; build on a VNNI "
                      "machine for full-range weights")


def warn_once(choice: HostChoice) -> None:
    if choice.note:
        warnings.warn(choice.note, stacklevel=3)
