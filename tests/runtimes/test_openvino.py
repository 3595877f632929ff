import pytest

from edgekd.core.errors import ArtifactError
from edgekd.runtimes.openvino import OpenVinoSession, openvino_reason

# What OpenVINO 2026.4 raised compiling onnxruntime's default QDQ model with a bf16 hint on this CPU.
NO_KERNEL = ("Exception from src/inference/src/cpp/core.cpp:132:\nException from src/inference/src/dev/plugin.cpp:59:\n"
             "Check '!implementations.empty()' failed at src/plugins/intel_cpu/src/nodes/executors/executor_factory.hpp:117:\n"
             "No suitable implementations.This may indicate that the provided memory descriptors are not compatible "
             "with any implementation.\n\n\n")


def test_reason_is_the_line_that_says_what_went_wrong():
    assert openvino_reason(RuntimeError(NO_KERNEL)).startswith("No suitable implementations.")
    assert openvino_reason(RuntimeError("Exception from a.cpp:1:\n")) == "Exception from a.cpp:1:"
    assert openvino_reason(RuntimeError("")) == "RuntimeError"


def test_a_file_openvino_cannot_read_is_one_line_naming_it_and_the_hint(tmp_path):
    pytest.importorskip("openvino")
    xml = tmp_path / "model.xml"
    xml.write_text("<net name='truncated'")
    with pytest.raises(ArtifactError, match=r"model\.xml: OpenVINO cannot compile it for CPU at precision hint f32 \(") as err:
        OpenVinoSession(xml, {"INFERENCE_PRECISION_HINT": "f32"})
    assert "\n" not in str(err.value) and "bundle it again" in str(err.value)
